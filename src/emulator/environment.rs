//! One execution environment: a function process in its own process group,
//! its own Runtime API listener, its log pipes, and the hand-off of one
//! invocation at a time between the invoker and the runtime.
//!
//! Dropping an [`Environment`] kills its process group and stops its
//! listener: ownership is the lifecycle.

use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use bytes::Bytes;
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::extensions::{Extensions, extension_name};
use super::log_pipe::PipeSet;
use super::server::{Admit, ServeOptions};
use super::telemetry::Telemetry;
use super::{FunctionSpec, LogLine, LogStream, Shared};

/// What the runtime answered for an invocation.
#[derive(Debug)]
pub(crate) enum Outcome {
    Response(Bytes),
    /// `/error`, or a response the emulator refused (too large).
    Error {
        body: Bytes,
    },
    /// A streamed `/response` (response mode `streaming`): its parts arrive
    /// while the runtime produces them; the invocation lasts until they end.
    Stream(super::streaming::ResponseStream),
}

/// An invocation handed to the runtime on `/next`.
pub(crate) struct Invocation {
    pub request_id: String,
    pub payload: Bytes,
    pub timeout: Duration,
    pub invoked_arn: String,
    pub trace_id: String,
    pub client_context: Option<String>,
    pub cognito_identity: Option<String>,
    pub version: String,
    /// Told the instant the runtime takes the invocation.
    pub picked_up: oneshot::Sender<Instant>,
    pub reply: oneshot::Sender<Outcome>,
}

/// The invocation the runtime is working on, as the Runtime API sees it.
pub(crate) struct Current {
    pub request_id: String,
    /// `None` once answered: a second answer is a state error (403).
    pub reply: Option<oneshot::Sender<Outcome>>,
}

/// State the Runtime API handlers of one environment share with the invoker.
pub(crate) struct EnvShared {
    pub function: String,
    pub env_id: u64,
    pub pid: Mutex<Option<i32>>,
    pub next_rx: tokio::sync::Mutex<mpsc::Receiver<Invocation>>,
    pub current: Mutex<Option<Current>>,
    /// Body of `/runtime/init/error`, given to the invocation that started the environment.
    pub init_error: Mutex<Option<Bytes>>,
    /// Told when init fails (`/runtime/init/error`, an extension's crash),
    /// so the waiting invocation fails at once.
    pub init_failed: Notify,
    /// The runtime has taken its first invocation: init is over.
    pub initialized: AtomicBool,
    /// The Runtime API refused the runtime's answer (too large, bad
    /// response mode): its client gives up (the Rust runtime exits), so
    /// the environment is reset after the invocation.
    pub answer_refused: AtomicBool,
    /// Lines of the invocation in progress, for `X-Amz-Log-Type: Tail`.
    pub capture: Mutex<Option<String>>,
    /// Peak resident memory seen so far (MB), and the process's
    /// `/proc/<pid>/status`, kept open: re-read at offset 0 after every
    /// invocation, one syscall instead of three.
    pub max_memory_mb: Mutex<(u64, Option<(i32, std::fs::File)>)>,
    pub sink: super::LogSink,
    /// The stdout/stderr of the function and its extensions, read as lines.
    pub pipes: Arc<PipeSet>,
    /// Extensions API state (registrations, event queues, processes).
    pub extensions: Extensions,
    /// Telemetry and Logs API subscriptions and records.
    pub telemetry: Telemetry,
    /// Memory and CPU limits (`limits.rs`): every process joins at spawn.
    pub cgroup: Option<super::limits::Cgroup>,
}

impl EnvShared {
    /// Writes one line to the sink and, during an invocation, to its capture.
    pub fn log(&self, stream: LogStream, text: &str) {
        (self.sink)(LogLine {
            function: &self.function,
            environment: self.env_id,
            stream,
            text,
        });
        if stream == LogStream::Function {
            self.telemetry.function_line(text);
        }
        if let Some(buf) = self.capture.lock().expect("capture").as_mut() {
            buf.push_str(text);
            buf.push('\n');
        }
    }

    /// Waits (briefly) until every line the processes wrote so far is
    /// logged: what the function printed before answering stays inside
    /// START..END.
    pub async fn drain_pipes(&self) {
        self.pipes.drain().await;
    }

    /// Reads the process's peak resident set (VmHWM) and remembers the maximum.
    pub fn sample_memory(&self) -> u64 {
        let pid = *self.pid.lock().expect("pid");
        let mut guard = self.max_memory_mb.lock().expect("memory");
        let (max, status) = &mut *guard;
        // The whole environment's peak, from its cgroup (limits.rs); it
        // leaves out file pages others loaded first, so the RSS counts too.
        if let Some(mb) = self.cgroup.as_ref().and_then(|c| c.peak_mb()) {
            *max = (*max).max(mb);
        }
        if let Some(pid) = pid {
            if status.as_ref().is_none_or(|(p, _)| *p != pid) {
                *status = std::fs::File::open(format!("/proc/{pid}/status"))
                    .ok()
                    .map(|f| (pid, f));
            }
            if let Some(mb) = status.as_ref().and_then(|(_, f)| peak_rss_mb(f)) {
                *max = (*max).max(mb);
            }
        }
        *max
    }
}

/// A live execution environment.
pub(crate) struct Environment {
    pub shared: Arc<EnvShared>,
    pub invoke_tx: mpsc::Sender<Invocation>,
    pub exited: watch::Receiver<Option<ExitStatus>>,
    pub spawned_at: Instant,
    /// Set after the first invocation was picked up (init is over).
    pub initialized: bool,
    /// Resolves when the last invocation's END and REPORT are written
    /// (they follow its answer, see `pool.rs`); its next one waits for it.
    pub accounting: Option<tokio::sync::oneshot::Receiver<()>>,
    pgid: i32,
    server: JoinHandle<()>,
}

impl Environment {
    /// Starts the function process with its own Runtime API listener.
    pub fn spawn(emulator: &Arc<Shared>, spec: &FunctionSpec) -> Result<Environment> {
        let id = emulator.next_env_id.fetch_add(1, Ordering::SeqCst);
        let std_listener = std::net::TcpListener::bind(("127.0.0.1", 0))
            .context("binding a Runtime API listener on 127.0.0.1")?;
        std_listener.set_nonblocking(true)?;
        let runtime_addr = std_listener.local_addr()?;
        let listener = tokio::net::TcpListener::from_std(std_listener)?;

        let (invoke_tx, invoke_rx) = mpsc::channel(1);
        let cgroup = super::limits::Cgroup::for_environment(
            emulator.limits.as_ref(),
            id,
            spec.memory_mb,
            |why| {
                (emulator.options.log_sink)(LogLine {
                    function: &spec.name,
                    environment: id,
                    stream: LogStream::Platform,
                    text: &why,
                })
            },
        );
        let shared = Arc::new(EnvShared {
            function: spec.name.clone(),
            env_id: id,
            pid: Mutex::new(None),
            next_rx: tokio::sync::Mutex::new(invoke_rx),
            current: Mutex::new(None),
            init_error: Mutex::new(None),
            init_failed: Notify::new(),
            initialized: AtomicBool::new(false),
            answer_refused: AtomicBool::new(false),
            capture: Mutex::new(None),
            max_memory_mb: Mutex::new((0, None)),
            sink: emulator.options.log_sink.clone(),
            pipes: Arc::new(PipeSet::default()),
            extensions: Extensions::new(
                spec.extensions.iter().map(|p| extension_name(p)).collect(),
            ),
            telemetry: Telemetry::new(
                spec.env
                    .get("AWS_LAMBDA_LOG_FORMAT")
                    .is_some_and(|f| f == "JSON"),
            ),
            cgroup,
        });
        // One listener serves the Runtime, Extensions and Telemetry APIs;
        // it accepts connections once the process group is known.
        let app = super::runtime_api::router(shared.clone())
            .merge(super::extensions_api::router(shared.clone()))
            .merge(super::telemetry::router(shared.clone()));

        let mut cmd = tokio::process::Command::new(&spec.command);
        cmd.args(&spec.args);
        let task_root = spec
            .working_dir
            .clone()
            .or_else(|| spec.command.parent().map(|p| p.to_path_buf()))
            .unwrap_or_else(|| ".".into());
        cmd.current_dir(&task_root);
        cmd.env_clear();
        let env = lambda_env(emulator, spec, &runtime_addr.to_string(), &task_root, id);
        for (k, v) in &env {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        // The function dies with us even if we are killed without a chance
        // to clean up (PR_SET_PDEATHSIG): no orphans.
        #[cfg(target_os = "linux")]
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        if let Some(cgroup) = &shared.cgroup {
            cgroup.attach(&mut cmd);
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting `{}`", spec.command.display()))?;
        let pid = child.id().map(|p| p as i32).unwrap_or(0);
        let server = super::server::spawn(
            vec![listener],
            app,
            ServeOptions {
                quickack: true,
                admit: Some(own_processes_only(&shared, pid)),
                header_timeout: None,
            },
        );
        *shared.pid.lock().expect("pid") = Some(pid);
        emulator
            .processes
            .lock()
            .expect("process table")
            .insert(id, pid);

        let pipes = [
            child.stdout.take().map(|p| p.into_owned_fd()),
            child.stderr.take().map(|p| p.into_owned_fd()),
        ];
        for pipe in pipes.into_iter().flatten() {
            let weak = Arc::downgrade(&shared);
            let emit: super::log_pipe::Emit = Arc::new(move |line: &str| {
                if let Some(shared) = weak.upgrade() {
                    shared.log(LogStream::Function, line);
                }
            });
            if let Err(e) = pipe.and_then(|fd| shared.pipes.spawn(fd, emit)) {
                tracing::warn!("reading the output of `{}`: {e}", spec.command.display());
            }
        }
        if let Err(e) = super::extensions::spawn_processes(&shared, &spec.extensions, pid, &env) {
            kill_group(pid);
            emulator
                .processes
                .lock()
                .expect("process table")
                .remove(&id);
            server.abort();
            return Err(e);
        }
        let (exit_tx, exited) = watch::channel(None);
        let table = emulator.clone();
        let env_shared = shared.clone();
        tokio::spawn(async move {
            let status = child.wait().await.ok();
            if env_shared.extensions.has_processes() {
                // Extensions outlive the runtime until the shutdown phase
                // (SHUTDOWN, then the group is killed).
                let _ = exit_tx.send(status);
                env_shared.extensions.processes_gone().await;
                kill_group(pid);
                table.processes.lock().expect("process table").remove(&id);
                return;
            }
            // Reap anything left in the group too.
            kill_group(pid);
            table.processes.lock().expect("process table").remove(&id);
            let _ = exit_tx.send(status);
        });

        Ok(Environment {
            shared,
            invoke_tx,
            exited,
            spawned_at: Instant::now(),
            initialized: false,
            accounting: None,
            pgid: pid,
            server,
        })
    }

    /// Resolves when the process has exited, with its status.
    pub async fn wait_exit(&mut self) -> Option<ExitStatus> {
        loop {
            if let Some(status) = *self.exited.borrow() {
                return Some(status);
            }
            if self.exited.changed().await.is_err() {
                return None;
            }
        }
    }
}

impl Drop for Environment {
    fn drop(&mut self) {
        kill_group(self.pgid);
        self.server.abort();
    }
}

/// SIGKILL to a whole process group (the function and anything it started).
pub(crate) fn kill_group(pgid: i32) {
    if pgid > 0 {
        // SAFETY: plain syscall; a stale group id only yields ESRCH.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
}

/// The admission check of an environment's listener: only connections
/// from its own process group (the runtime, what it starts, its external
/// extensions). The first refusal is logged.
fn own_processes_only(shared: &Arc<EnvShared>, pgid: i32) -> Admit {
    let weak = Arc::downgrade(shared);
    let told = AtomicBool::new(false);
    Arc::new(move |peer, local| {
        if super::peer::in_group(peer, local, pgid) {
            return true;
        }
        if !told.swap(true, Ordering::SeqCst)
            && let Some(shared) = weak.upgrade()
        {
            // Straight to the sink: not part of any invocation's log.
            (shared.sink)(LogLine {
                function: &shared.function,
                environment: shared.env_id,
                stream: LogStream::Platform,
                text: &format!(
                    "Runtime API: refused a connection from {peer}: only the processes of this environment may connect"
                ),
            });
        }
        false
    })
}

/// Peak resident set size of a process in MB (rounded up), from /proc.
/// VmHWM of an open `/proc/<pid>/status` (the kernel writes it anew for
/// every read from offset 0).
fn peak_rss_mb(status: &std::fs::File) -> Option<u64> {
    super::limits::read_at_start(status, |text| {
        let line = text.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb.div_ceil(1024))
    })
}

/// The environment Lambda gives a `provided` runtime (contract 1.7 and 8.1).
/// The function's own variables go first so reserved ones win.
fn lambda_env(
    emulator: &Shared,
    spec: &FunctionSpec,
    runtime_api: &str,
    task_root: &std::path::Path,
    env_id: u64,
) -> Vec<(String, String)> {
    let region = &emulator.options.region;
    let mut env: Vec<(String, String)> = vec![
        ("LANG".into(), "en_US.UTF-8".into()),
        (
            "PATH".into(),
            std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()),
        ),
        ("TZ".into(), ":UTC".into()),
        ("AWS_XRAY_CONTEXT_MISSING".into(), "LOG_ERROR".into()),
    ];
    env.extend(spec.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let (y, m, d) = civil_date(now / 86_400);
    env.extend([
        ("AWS_LAMBDA_RUNTIME_API".into(), runtime_api.to_string()),
        ("AWS_LAMBDA_FUNCTION_NAME".into(), spec.name.clone()),
        ("AWS_LAMBDA_FUNCTION_VERSION".into(), "$LATEST".into()),
        (
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE".into(),
            spec.memory_mb.to_string(),
        ),
        ("AWS_REGION".into(), region.clone()),
        ("AWS_DEFAULT_REGION".into(), region.clone()),
        (
            "AWS_LAMBDA_LOG_GROUP_NAME".into(),
            format!("/aws/lambda/{}", spec.name),
        ),
        (
            "AWS_LAMBDA_LOG_STREAM_NAME".into(),
            format!("{y:04}/{m:02}/{d:02}/[$LATEST]{env_id:032x}"),
        ),
        ("AWS_LAMBDA_INITIALIZATION_TYPE".into(), "on-demand".into()),
        (
            "LAMBDA_TASK_ROOT".into(),
            task_root.to_string_lossy().into_owned(),
        ),
        ("LAMBDA_RUNTIME_DIR".into(), "/var/runtime".into()),
        ("_HANDLER".into(), "bootstrap".into()),
    ]);
    env
}

/// Days since the Unix epoch to (year, month, day), proleptic Gregorian.
pub(crate) fn civil_date(days: u64) -> (i64, u32, u32) {
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::civil_date;

    #[test]
    fn civil_date_matches_known_days() {
        assert_eq!(civil_date(0), (1970, 1, 1));
        assert_eq!(civil_date(19_723), (2024, 1, 1));
        assert_eq!(civil_date(11_016), (2000, 2, 29));
    }
}
