//! The state one execution environment shares between its invoker (the
//! pool), its Runtime, Extensions and Telemetry API handlers and its
//! processes' log pipes: the hand-off of invocations (one at a time, or up
//! to the managed-instances concurrency), the init error, the log capture, the extensions' and telemetry's state.
//!
//! Everything about an environment depends on this module and it on none of
//! them: the lifecycle (spawn, shutdown, kill) is `environment.rs`, the
//! HTTP APIs `runtime_api.rs`, `extensions_api.rs` and `telemetry_api.rs`.

use std::collections::VecDeque;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{Notify, mpsc, oneshot};

use super::extensions::Extensions;
use super::log_pipe::PipeSet;
use super::telemetry::Telemetry;
use super::{LogLine, LogStream};

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

/// An invocation the runtime is working on (or has just answered), as the
/// Runtime API sees it.
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
    /// Invocations handed out, oldest first: the ones in progress and the
    /// latest answered ones (a second answer to those is a 403, not a 400).
    /// At most one in progress unless `max_concurrency` says more.
    pub current: Mutex<VecDeque<Current>>,
    /// Invocations the environment serves at once: 1, or the managed
    /// instances' `AWS_LAMBDA_MAX_CONCURRENCY`.
    pub max_concurrency: usize,
    /// Managed instances: the Init Duration went into one REPORT already.
    pub init_reported: AtomicBool,
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

impl EnvShared {
    /// One line an extension wrote: to the sink (prefixed with its name)
    /// and to telemetry as an `extension` record.
    pub fn log_extension(&self, name: &str, line: &str) {
        self.log(LogStream::Extension, &format!("[{name}] {line}"));
        self.telemetry.extension_line(line);
    }

    /// Init failed because of an extension: the error goes at once to the
    /// invocation waiting for init, which discards the environment (its
    /// whole process group) rather than waiting for the init limit.
    pub fn fail_init(&self, error_type: &str, message: &str) {
        self.extensions.mark_init_failed();
        let body = error_body(error_type, message);
        self.init_error
            .lock()
            .expect("init error")
            .get_or_insert(body);
        self.init_failed.notify_one();
    }
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

/// The JSON error body Lambda hands back (`errorType`, `errorMessage`).
pub(crate) fn error_body(error_type: &str, message: &str) -> Bytes {
    Bytes::from(serde_json::json!({"errorType": error_type, "errorMessage": message}).to_string())
}
