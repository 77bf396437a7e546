//! One execution environment's lifecycle: the function process in its own
//! process group with its external extensions, its own Runtime API
//! listener, its log pipes, the shutdown phase and the kill.
//!
//! Dropping an [`Environment`] kills its process group and stops its
//! listener: ownership is the lifecycle. The state its parts share is
//! `env_state.rs`; this module is the only one that starts or signals
//! processes (through [`ProcessGroup`], never a raw pid).

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;

use super::env_state::{EnvShared, Invocation};
use super::extensions::{
    Extensions, SHUTDOWN_LIMIT, ShutdownReason, epoch_ms_after, extension_name,
};
use super::log_pipe::PipeSet;
use super::process_group::ProcessGroup;
use super::server::{Admit, ServeOptions};
use super::telemetry::{Telemetry, civil_date};
use super::{FunctionSpec, LogLine, LogStream, Shared};

/// The runtime's share of the shutdown phase: SIGTERM, then SIGKILL.
const RUNTIME_SHUTDOWN_SHARE: Duration = Duration::from_millis(300);

/// Variables Lambda hides from extensions (contract 1.7).
const HIDDEN_FROM_EXTENSIONS: &[&str] = &[
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_XRAY_CONTEXT_MISSING",
    "AWS_XRAY_DAEMON_ADDRESS",
    "LAMBDA_RUNTIME_DIR",
    "LAMBDA_TASK_ROOT",
    "_AWS_XRAY_DAEMON_ADDRESS",
    "_AWS_XRAY_DAEMON_PORT",
    "_HANDLER",
];

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
    group: Arc<ProcessGroup>,
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

        // Up to one queued invocation per slot: handing one over never waits.
        let max_concurrency = spec.max_concurrency.unwrap_or(1).max(1) as usize;
        let (invoke_tx, invoke_rx) = mpsc::channel(max_concurrency);
        let cgroup = super::limits::Cgroup::for_environment(
            emulator.limits.as_ref(),
            id,
            spec.memory_mb,
            spec.vcpus,
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
            current: Mutex::new(std::collections::VecDeque::new()),
            max_concurrency,
            init_reported: AtomicBool::new(false),
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
            .merge(super::telemetry_api::router(shared.clone()));

        let task_root = spec
            .working_dir
            .clone()
            .or_else(|| spec.command.parent().map(|p| p.to_path_buf()))
            .unwrap_or_else(|| ".".into());
        let env = lambda_env(emulator, spec, &runtime_addr.to_string(), &task_root, id);
        let mut cmd = command(&spec.command, &env, &task_root, 0, shared.cgroup.as_ref());
        cmd.args(&spec.args);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting `{}`", spec.command.display()))?;
        let group = match ProcessGroup::of_leader(&child) {
            Ok(group) => Arc::new(group),
            Err(e) => {
                let _ = child.start_kill();
                return Err(e).context(
                    "opening a pidfd for the function process (Linux 5.4 or later is needed)",
                );
            }
        };
        let pid = group.pgid();
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
            .insert(id, group.clone());

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
        if let Err(e) = spawn_extensions(&shared, &spec.extensions, pid, &env) {
            group.kill();
            emulator
                .processes
                .lock()
                .expect("process table")
                .remove(&id);
            server.abort();
            return Err(e);
        }
        let exited = watch_leader(emulator.clone(), shared.clone(), group.clone(), child, id);
        Ok(Environment {
            shared,
            invoke_tx,
            exited,
            spawned_at: Instant::now(),
            initialized: false,
            accounting: None,
            group,
            server,
        })
    }

    /// Resolves when the process has exited, with its status.
    pub async fn wait_exit(&mut self) -> Option<ExitStatus> {
        wait_exit(&mut self.exited).await
    }
}

/// Resolves when the runtime process behind `exited` has exited, with its
/// status (for invocations sharing one environment, each with its own
/// receiver).
pub(crate) async fn wait_exit(
    exited: &mut watch::Receiver<Option<ExitStatus>>,
) -> Option<ExitStatus> {
    loop {
        if let Some(status) = *exited.borrow() {
            return Some(status);
        }
        if exited.changed().await.is_err() {
            return None;
        }
    }
}

impl Drop for Environment {
    fn drop(&mut self) {
        self.group.kill();
        self.server.abort();
    }
}

/// A process of the environment: a clean environment, output piped, in
/// process group `pgid` (0: a group of its own), in the cgroup.
fn command(
    program: &Path,
    env: &[(String, String)],
    dir: &Path,
    pgid: i32,
    cgroup: Option<&super::limits::Cgroup>,
) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(program);
    cmd.current_dir(dir);
    cmd.env_clear();
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(pgid);
    // The process dies with us even if we are killed without a chance
    // to clean up (PR_SET_PDEATHSIG): no orphans.
    #[cfg(target_os = "linux")]
    // SAFETY: the hook runs in the forked child before exec and only calls
    // prctl(2), which is async-signal-safe; it allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    if let Some(cgroup) = cgroup {
        cgroup.attach(&mut cmd); // the environment's limits (limits.rs)
    }
    cmd
}

/// Watches the runtime process: its exit is published at once, and the
/// rest of its group is killed while it is still unreaped (its zombie
/// keeps the group id from being reused), then it is reaped. With
/// external extensions, the group lives until they have exited.
fn watch_leader(
    emulator: Arc<Shared>,
    shared: Arc<EnvShared>,
    group: Arc<ProcessGroup>,
    mut child: tokio::process::Child,
    id: u64,
) -> watch::Receiver<Option<ExitStatus>> {
    let (exit_tx, exited) = watch::channel(None);
    tokio::spawn(async move {
        let status = match group.leader_exited().await {
            Ok(status) => Some(status),
            Err(e) => {
                // Not expected once the pidfd is open; reaping is then the
                // only way to learn of the exit, and the group is left alone.
                tracing::warn!("watching the function process: {e}");
                group.wait_without_kill(&mut child).await
            }
        };
        if shared.extensions.has_processes() {
            // Extensions outlive the runtime until the shutdown phase
            // (SHUTDOWN, then the group is killed).
            let _ = exit_tx.send(status);
            shared.extensions.processes_gone().await;
            group.reap(&mut child).await;
            emulator
                .processes
                .lock()
                .expect("process table")
                .remove(&id);
            return;
        }
        // Kill anything left in the group, then reap the runtime.
        group.reap(&mut child).await;
        emulator
            .processes
            .lock()
            .expect("process table")
            .remove(&id);
        let _ = exit_tx.send(status);
    });
    exited
}

/// Starts the external extensions in the runtime's process group (`pgid`),
/// with the function's environment minus what Lambda hides from them.
fn spawn_extensions(
    shared: &Arc<EnvShared>,
    paths: &[PathBuf],
    pgid: i32,
    env: &[(String, String)],
) -> Result<()> {
    let env: Vec<(String, String)> = env
        .iter()
        .filter(|(k, _)| !HIDDEN_FROM_EXTENSIONS.contains(&k.as_str()))
        .cloned()
        .collect();
    for path in paths {
        let name = extension_name(path);
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut child = command(path, &env, dir, pgid, shared.cgroup.as_ref())
            .spawn()
            .map_err(|error| LaunchError {
                path: path.clone(),
                error,
            })?;
        shared.extensions.process_started();
        let pipes = [
            child.stdout.take().map(|p| p.into_owned_fd()),
            child.stderr.take().map(|p| p.into_owned_fd()),
        ];
        for pipe in pipes.into_iter().flatten() {
            let weak = Arc::downgrade(shared);
            let owner = name.clone();
            let emit: super::log_pipe::Emit = Arc::new(move |line: &str| {
                if let Some(shared) = weak.upgrade() {
                    shared.log_extension(&owner, line);
                }
            });
            if let Err(e) = pipe.and_then(|fd| shared.pipes.spawn(fd, emit)) {
                tracing::warn!("reading the output of extension `{name}`: {e}");
            }
        }
        let shared = shared.clone();
        tokio::spawn(async move {
            let status = child.wait().await.ok();
            if shared.extensions.ending() {
                // Expected: SHUTDOWN or the kill.
            } else if shared.extensions.init_done() {
                let text = status.map(|s| s.to_string()).unwrap_or_default();
                shared.log(
                    LogStream::Platform,
                    &format!("EXTENSION Name: {name} exited ({text})"),
                );
            } else {
                // An extension that dies during init fails the init.
                let text = status.map(|s| s.to_string()).unwrap_or_default();
                let message = format!("extension `{name}` exited during init ({text})");
                shared.log(LogStream::Platform, &format!("EXTENSION Error: {message}"));
                shared.fail_init("Extension.Crash", &message);
            }
            shared.extensions.process_exited(&name);
        });
    }
    Ok(())
}

/// An external extension that could not be started (Lambda's
/// `Extension.LaunchError`).
#[derive(Debug)]
pub(crate) struct LaunchError {
    path: PathBuf,
    error: std::io::Error,
}

impl std::fmt::Display for LaunchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "starting extension `{}`: {}",
            self.path.display(),
            self.error
        )
    }
}

impl std::error::Error for LaunchError {}

/// Ends an environment. Without extensions waiting for SHUTDOWN it is
/// killed at once; otherwise the runtime gets SIGTERM (SIGKILL after its
/// 300 ms share), the extensions get SHUTDOWN with `reason` and a deadline
/// 2 s away, and the process group is killed when they have all exited or
/// asked for another event, or at the deadline.
pub(crate) fn shut_down(mut env: Environment, emulator: &Arc<Shared>, reason: ShutdownReason) {
    // The last invocation's REPORT comes before the shutdown.
    if let Some(accounted) = env.accounting.take()
        && tokio::runtime::Handle::try_current().is_ok()
    {
        emulator.shutting_down.fetch_add(1, Ordering::SeqCst);
        let emulator = emulator.clone();
        tokio::spawn(async move {
            let _ = accounted.await;
            shut_down(env, &emulator, reason);
            emulator.shutting_down.fetch_sub(1, Ordering::SeqCst);
        });
        return;
    }
    env.shared.extensions.begin_ending();
    if env.shared.extensions.shutdown_listeners() == 0
        || tokio::runtime::Handle::try_current().is_err()
    {
        drop(env);
        return;
    }
    emulator.shutting_down.fetch_add(1, Ordering::SeqCst);
    let emulator = emulator.clone();
    tokio::spawn(async move {
        let limit = tokio::time::Instant::now() + SHUTDOWN_LIMIT;
        env.shared.telemetry.flush();
        // Through the pidfd: the runtime or nobody, even if its pid has
        // been reused by the time the SIGKILL goes.
        env.group.signal_leader(libc::SIGTERM);
        let group = env.group.clone();
        tokio::spawn(async move {
            tokio::time::sleep(RUNTIME_SHUTDOWN_SHARE).await;
            group.signal_leader(libc::SIGKILL);
        });
        env.shared
            .extensions
            .shutdown(reason, epoch_ms_after(SHUTDOWN_LIMIT));
        // Done when they have exited, or have all asked for another event
        // (there is none after SHUTDOWN), or at the deadline.
        tokio::select! {
            _ = env.shared.extensions.processes_gone() => {}
            _ = env.shared.extensions.wait_idle(limit) => {}
        }
        drop(env);
        emulator.shutting_down.fetch_sub(1, Ordering::SeqCst);
    });
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
        (
            "AWS_LAMBDA_INITIALIZATION_TYPE".into(),
            if spec.max_concurrency.is_some() {
                "lambda-managed-instances"
            } else {
                "on-demand"
            }
            .into(),
        ),
        (
            "LAMBDA_TASK_ROOT".into(),
            task_root.to_string_lossy().into_owned(),
        ),
        ("LAMBDA_RUNTIME_DIR".into(), "/var/runtime".into()),
        ("_HANDLER".into(), "bootstrap".into()),
    ]);
    // Managed instances: the runtime keeps this many `/next` polls open.
    // The trace id comes per request (`Lambda-Runtime-Trace-Id`), never as
    // `_X_AMZN_TRACE_ID` in the environment.
    if let Some(n) = spec.max_concurrency {
        env.push(("AWS_LAMBDA_MAX_CONCURRENCY".into(), n.to_string()));
    }
    env
}
