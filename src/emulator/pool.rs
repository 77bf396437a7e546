//! The environments of one function: warm reuse, the concurrency limits,
//! generations for hot reload, the asynchronous (`Event`) queue, and running
//! one invocation on one environment from hand-off to REPORT.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::sync::{mpsc, oneshot};

use super::environment::{EnvShared, Environment, Invocation, Outcome};
use super::extensions::{ShutdownReason, shut_down};
use super::report::{self, EndStatus, ReportData};
use super::runtime_api::{MAX_RESPONSE_BYTES, error_body};
use super::streaming::{self, ResponseStream, StreamHead, StreamPart};
use super::{FunctionSpec, LOCAL_ACCOUNT_ID, LogStream, Shared};

/// How long a runtime may take to ask for its first event (Lambda's
/// on-demand init limit).
const INIT_LIMIT: Duration = Duration::from_secs(10);

/// Why an invocation could not start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Throttle {
    /// The function's reserved concurrency is in use.
    Reserved,
    /// The emulator-wide limit (`--concurrency`) is in use.
    Account,
}

/// One invocation to run.
pub(crate) struct Job {
    pub request_id: String,
    pub payload: Bytes,
    pub qualifier: Option<String>,
    pub client_context: Option<String>,
    pub cognito_identity: Option<String>,
    pub trace_id: String,
    /// The caller wants the invocation's log (`X-Amz-Log-Type: Tail`), so
    /// the answer waits for END and REPORT. Otherwise the answer goes
    /// first and the accounting follows (see [`FunctionPool::run_streaming`]).
    pub want_log: bool,
}

/// What the caller gets back.
#[derive(Debug)]
pub(crate) struct JobResult {
    pub body: Bytes,
    /// `Some("Unhandled")` when the function failed.
    pub function_error: Option<&'static str>,
    /// The invocation's log (START..REPORT) when the job asked for it
    /// ([`Job::want_log`]); else empty.
    pub log: String,
}

struct PoolState {
    spec: Arc<FunctionSpec>,
    generation: u64,
    idle: Vec<Environment>,
    busy: usize,
    closed: bool,
}

pub(crate) struct FunctionPool {
    emulator: Arc<Shared>,
    state: Mutex<PoolState>,
    events: mpsc::UnboundedSender<Job>,
}

/// An environment slot held for one invocation: either a warm environment
/// or the right to start one. Returning it frees the slot.
pub(crate) struct Lease {
    pool: Arc<FunctionPool>,
    spec: Arc<FunctionSpec>,
    generation: u64,
    env: Option<Environment>,
    handed: Handed,
}

/// What the accounting of an invocation needs of its start.
#[derive(Default)]
struct Handed {
    /// The invocation's trace header, for the XRAY line.
    trace_id: String,
    /// The event and when it was handed over, for the history.
    payload: Bytes,
    at: Option<std::time::SystemTime>,
}

/// How an invocation ended, for its END and REPORT.
struct Ended {
    request_id: String,
    duration: Duration,
    init: Option<Duration>,
    status: EndStatus,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.pool.release(self.env.take(), self.generation);
    }
}

impl FunctionPool {
    pub fn new(emulator: Arc<Shared>, spec: FunctionSpec) -> Arc<FunctionPool> {
        let (events, rx) = mpsc::unbounded_channel();
        let pool = Arc::new(FunctionPool {
            emulator,
            state: Mutex::new(PoolState {
                spec: Arc::new(spec),
                generation: 0,
                idle: Vec::new(),
                busy: 0,
                closed: false,
            }),
            events,
        });
        tokio::spawn(run_events(Arc::downgrade(&pool), rx));
        pool
    }

    /// The spec new invocations get.
    pub fn spec(&self) -> Arc<FunctionSpec> {
        self.state.lock().expect("pool").spec.clone()
    }

    /// Idle and busy environments, and the spec generation (dashboard).
    pub fn counts(&self) -> (usize, usize, u64) {
        let st = self.state.lock().expect("pool");
        (st.idle.len(), st.busy, st.generation)
    }

    pub fn replace_spec(&self, spec: FunctionSpec) {
        let old_idle = {
            let mut st = self.state.lock().expect("pool");
            st.spec = Arc::new(spec);
            st.generation += 1;
            std::mem::take(&mut st.idle)
        };
        // Outside the lock: SHUTDOWN to their extensions, then the kill.
        for env in old_idle {
            shut_down(env, &self.emulator, ShutdownReason::Spindown);
        }
    }

    pub fn close(&self) {
        let old_idle = {
            let mut st = self.state.lock().expect("pool");
            st.closed = true;
            std::mem::take(&mut st.idle)
        };
        for env in old_idle {
            shut_down(env, &self.emulator, ShutdownReason::Spindown);
        }
    }

    /// Queues an asynchronous invocation.
    pub fn enqueue(&self, job: Job) {
        let _ = self.events.send(job);
    }

    /// Takes a slot: a warm environment when one is idle, else the right to
    /// start one, or a throttle when the limits are reached.
    pub fn acquire(self: &Arc<Self>) -> Result<Lease, Throttle> {
        let mut st = self.state.lock().expect("pool");
        if st.closed {
            return Err(Throttle::Account);
        }
        if let Some(limit) = st.spec.reserved_concurrency
            && st.busy >= limit as usize
        {
            return Err(Throttle::Reserved);
        }
        let limit = self.emulator.options.concurrency;
        let running = &self.emulator.running;
        if running
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < limit).then_some(n + 1)
            })
            .is_err()
        {
            return Err(Throttle::Account);
        }
        st.busy += 1;
        // A runtime that exited while idle left a dead environment: skip it
        // (dropping it reaps its process group); the next one, or a cold start.
        let mut env = st.idle.pop();
        while env.as_ref().is_some_and(|e| e.exited.borrow().is_some()) {
            env = st.idle.pop();
        }
        Ok(Lease {
            pool: self.clone(),
            spec: st.spec.clone(),
            generation: st.generation,
            env,
            handed: Handed::default(),
        })
    }

    fn release(&self, env: Option<Environment>, generation: u64) {
        let dropped = {
            let mut st = self.state.lock().expect("pool");
            st.busy -= 1;
            match env {
                Some(env)
                    if generation == st.generation
                        && !st.closed
                        && !self.emulator.closed.load(Ordering::SeqCst) =>
                {
                    st.idle.push(env);
                    None
                }
                other => other,
            }
        };
        if let Some(env) = dropped {
            shut_down(env, &self.emulator, ShutdownReason::Spindown);
        }
        // Only now: an emulator shutting down waits on `running`, then on
        // `shutting_down`, so this environment is never between the two.
        self.emulator.running.fetch_sub(1, Ordering::SeqCst);
    }

    /// Runs one invocation on the leased slot, from hand-off to REPORT. A
    /// streamed answer is collected (up to the buffered limit).
    pub async fn run(&self, lease: Lease, job: Job) -> JobResult {
        self.run_streaming(lease, job, None).await
    }

    /// Like [`run`](Self::run), but a streamed answer goes to `head` as it
    /// is produced; the result (error, log) comes once the stream has ended.
    /// `head` is dropped unused when the function answers without streaming.
    pub async fn run_streaming(
        &self,
        mut lease: Lease,
        job: Job,
        head: Option<oneshot::Sender<StreamHead>>,
    ) -> JobResult {
        let spec = lease.spec.clone();
        lease.handed = Handed {
            trace_id: job.trace_id.clone(),
            payload: job.payload.clone(),
            at: Some(std::time::SystemTime::now()),
        };
        let mut env = match lease.env.take() {
            Some(env) => env,
            None => match Environment::spawn(&self.emulator, &spec) {
                Ok(env) => env,
                Err(e) => {
                    let error_type = if e.is::<super::extensions::LaunchError>() {
                        "Extension.LaunchError"
                    } else {
                        "Runtime.InvalidEntrypoint"
                    };
                    let body = error_body(
                        error_type,
                        &format!("RequestId: {} Error: {e:#}", job.request_id),
                    );
                    tracing::error!("function `{}`: {e:#}", spec.name);
                    return JobResult {
                        body,
                        function_error: Some("Unhandled"),
                        log: String::new(),
                    };
                }
            },
        };
        // The previous invocation's END and REPORT come before this START.
        if let Some(accounted) = env.accounting.take() {
            let _ = accounted.await;
        }
        let cold = !env.initialized;
        let (picked_tx, picked_rx) = oneshot::channel();
        let (reply_tx, reply_rx) = oneshot::channel();
        let qualifier = job.qualifier.clone();
        let invoked_arn = format!(
            "arn:aws:lambda:{}:{}:function:{}{}",
            self.emulator.options.region,
            LOCAL_ACCOUNT_ID,
            spec.name,
            qualifier.map(|q| format!(":{q}")).unwrap_or_default()
        );
        *env.shared.capture.lock().expect("capture") = Some(String::new());
        let request_id = job.request_id.clone();
        let want_log = job.want_log;
        let invocation = Invocation {
            request_id: job.request_id,
            payload: job.payload,
            timeout: spec.timeout,
            invoked_arn,
            trace_id: job.trace_id,
            client_context: job.client_context,
            cognito_identity: job.cognito_identity,
            version: "$LATEST".to_string(),
            picked_up: picked_tx,
            reply: reply_tx,
        };
        // The channel holds one invocation and the environment is ours, so
        // this never waits; a closed channel means the environment is gone.
        let _ = env.invoke_tx.send(invocation).await;

        // Phase 1: the runtime takes the invocation (on a cold start, after
        // init), or init fails (at once on an init error), or times out.
        let init_failed = env.shared.clone();
        let picked = tokio::select! {
            biased;
            t = picked_rx => t.ok(),
            _ = init_failed.init_failed.notified() => None,
            _ = env.wait_exit() => None,
            _ = tokio::time::sleep(INIT_LIMIT) => None,
        };
        let Some(started) = picked else {
            // Never picked up: init failed, crashed or hung.
            let init = env.spawned_at.elapsed();
            let status = *env.exited.borrow();
            // Cloned, not taken: it keeps `next` refusing a runtime that
            // asks again before the environment is gone (it would get this
            // failed invocation's event, still in the channel).
            let init_error = env.shared.init_error.lock().expect("init").clone();
            let init_blockers = env.shared.extensions.init_blockers();
            let (body, kind) = match (init_error, status) {
                (Some(body), _) => (body, "Runtime.InitError".to_string()),
                (None, Some(status)) => (
                    error_body(
                        "Runtime.ExitError",
                        &format!(
                            "RequestId: {request_id} Error: Runtime exited with error: {}",
                            exit_text(status)
                        ),
                    ),
                    "Runtime.ExitError".to_string(),
                ),
                (None, None) if !init_blockers.is_empty() => (
                    error_body(
                        "Runtime.Unknown",
                        &format!(
                            "RequestId: {request_id} Error: init did not end within {} seconds: {init_blockers}",
                            INIT_LIMIT.as_secs()
                        ),
                    ),
                    "Runtime.Unknown".to_string(),
                ),
                (None, None) => (
                    error_body(
                        "Runtime.Unknown",
                        &format!(
                            "RequestId: {request_id} Error: the runtime did not ask for an event within {} seconds of starting",
                            INIT_LIMIT.as_secs()
                        ),
                    ),
                    "Runtime.Unknown".to_string(),
                ),
            };
            env.shared.log(
                LogStream::Platform,
                &format!("START RequestId: {request_id} Version: $LATEST"),
            );
            return self
                .finish(
                    &mut lease,
                    env,
                    &spec,
                    Ended {
                        request_id,
                        duration: Duration::ZERO,
                        init: Some(init),
                        status: EndStatus::Crashed(kind),
                    },
                    body,
                )
                .await;
        };
        env.initialized = true;
        let init = cold.then(|| started.saturating_duration_since(env.spawned_at));

        // Phase 2: the answer, a crash, or the deadline.
        let deadline = tokio::time::Instant::from_std(started + spec.timeout);
        enum Waited {
            Answer(Outcome),
            Exit,
            Timeout,
        }
        let waited = tokio::select! {
            biased;
            r = reply_rx => match r { Ok(o) => Waited::Answer(o), Err(_) => Waited::Exit },
            _ = env.wait_exit() => Waited::Exit,
            _ = tokio::time::sleep_until(deadline) => Waited::Timeout,
        };
        let (status, body) = match waited {
            Waited::Answer(Outcome::Response(body)) => (EndStatus::Success, body),
            // The environment stays busy, and the deadline applies, until
            // the stream ends.
            Waited::Answer(Outcome::Stream(stream)) => {
                relay(stream, head, &mut env, deadline, &spec, &request_id).await
            }
            // A handled error (a caught panic included) keeps the
            // environment warm, with its state, as on Lambda.
            Waited::Answer(Outcome::Error { body }) => (EndStatus::FunctionError, body),
            Waited::Exit => {
                let status = env.wait_exit().await;
                out_of_memory(&env, &request_id)
                    .unwrap_or_else(|| exited(&env, status, &request_id))
            }
            Waited::Timeout => timed_out(&env, &spec, &request_id),
        };
        // The runtime's answer is complete (a stream's at its end).
        let answered = matches!(status, EndStatus::Success | EndStatus::FunctionError);
        if answered {
            let outcome = if status == EndStatus::Success {
                "success"
            } else {
                "error"
            };
            env.shared
                .telemetry
                .runtime_done(&request_id, outcome, started.elapsed());
        }
        if answered && !env.shared.extensions.all_waiting() {
            // Extensions still busy with the INVOKE: the caller gets the
            // answer now, the invocation completes later (contract 2.2).
            let work = Unfinished {
                lease,
                env,
                spec,
                request_id,
                started,
                init,
                deadline,
            };
            return work.answer_then_wait(status, body);
        }
        let duration = started.elapsed();
        let keeps_env = reset_reason(&env, &status).is_none();
        let ended = Ended {
            request_id,
            duration,
            init,
            status,
        };
        if keeps_env && !want_log {
            return self.answer_then_account(lease, env, spec, ended, body);
        }
        self.finish(&mut lease, env, &spec, ended, body).await
    }

    /// The caller's answer at once; END, REPORT, telemetry and the history
    /// right after, off the caller's path. The environment goes back to
    /// the pool now, and its next invocation starts once this accounting
    /// is done, so the log stays in order.
    fn answer_then_account(
        &self,
        mut lease: Lease,
        mut env: Environment,
        spec: Arc<FunctionSpec>,
        ended: Ended,
        body: Bytes,
    ) -> JobResult {
        let answer = JobResult {
            body: body.clone(),
            function_error: (ended.status != EndStatus::Success).then_some("Unhandled"),
            log: String::new(),
        };
        let (done_tx, done_rx) = oneshot::channel();
        env.accounting = Some(done_rx);
        let shared = env.shared.clone();
        let handed = std::mem::take(&mut lease.handed);
        lease.env = Some(env);
        drop(lease);
        let emulator = self.emulator.clone();
        emulator.accounting.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(async move {
            // Spawned just before the answer is handed over, this task can
            // run first on this worker (seen in a syscall trace: END and
            // REPORT before the caller's answer): yield so the answer goes first.
            tokio::task::yield_now().await;
            account(&emulator, &shared, &spec, &handed, &ended, &body).await;
            let _ = done_tx.send(());
            emulator.accounting.fetch_sub(1, Ordering::SeqCst);
        });
        answer
    }

    /// Writes END/REPORT (and COST, outside the invocation's log), collects
    /// the log, and either keeps the environment warm (after a success or a
    /// handled error) or resets it (after a crash, a timeout, or an
    /// extension's failure).
    async fn finish(
        &self,
        lease: &mut Lease,
        env: Environment,
        spec: &FunctionSpec,
        ended: Ended,
        body: Bytes,
    ) -> JobResult {
        let failed = ended.status != EndStatus::Success;
        let handed = std::mem::take(&mut lease.handed);
        let log = account(&self.emulator, &env.shared, spec, &handed, &ended, &body).await;
        let reset = reset_reason(&env, &ended.status);
        match reset {
            // Back to the pool when the lease drops, in the same step that
            // frees the slot.
            None => lease.env = Some(env),
            Some(reason) => shut_down(env, &self.emulator, reason),
        }
        JobResult {
            body,
            function_error: failed.then_some("Unhandled"),
            log,
        }
    }
}

/// An invocation the runtime has answered while extensions still work on
/// its INVOKE.
struct Unfinished {
    lease: Lease,
    env: Environment,
    spec: Arc<FunctionSpec>,
    request_id: String,
    started: std::time::Instant,
    init: Option<Duration>,
    deadline: tokio::time::Instant,
}

impl Unfinished {
    /// The caller's answer now; END/REPORT, and the environment's return to
    /// the pool, when every extension has asked for its next event (or, at
    /// the deadline, a timeout that resets the environment).
    fn answer_then_wait(self, status: EndStatus, body: Bytes) -> JobResult {
        let answer = JobResult {
            body: body.clone(),
            function_error: (status != EndStatus::Success).then_some("Unhandled"),
            log: self
                .env
                .shared
                .capture
                .lock()
                .expect("capture")
                .clone()
                .unwrap_or_default(),
        };
        tokio::spawn(async move {
            let Unfinished {
                mut lease,
                env,
                spec,
                request_id,
                started,
                init,
                deadline,
            } = self;
            let status = if env.shared.extensions.wait_idle(deadline).await {
                status
            } else {
                let secs = spec.timeout.as_secs_f64();
                env.shared.log(
                    LogStream::Platform,
                    &format!("RequestId: {request_id} Error: Task timed out after {secs:.2} seconds (extensions still running)"),
                );
                EndStatus::Timeout
            };
            let pool = lease.pool.clone();
            let duration = started.elapsed();
            let ended = Ended {
                request_id,
                duration,
                init,
                status,
            };
            pool.finish(&mut lease, env, &spec, ended, body).await;
        });
        answer
    }
}

/// Why the environment must be reset after an invocation that ended so;
/// `None` keeps it warm (a success or a handled error, unless an extension
/// broke or the runtime's answer was refused).
fn reset_reason(env: &Environment, status: &EndStatus) -> Option<ShutdownReason> {
    match status {
        EndStatus::Timeout => Some(ShutdownReason::Timeout),
        EndStatus::Crashed(_) => Some(ShutdownReason::Failure),
        EndStatus::Success | EndStatus::FunctionError
            if env.shared.extensions.broken()
                || env.shared.answer_refused.load(Ordering::SeqCst) =>
        {
            Some(ShutdownReason::Failure)
        }
        EndStatus::Success | EndStatus::FunctionError => None,
    }
}

/// END, REPORT (and COST, outside the invocation's log), telemetry's
/// report and the history entry of an ended invocation; its log back.
async fn account(
    emulator: &Shared,
    shared: &EnvShared,
    spec: &FunctionSpec,
    handed: &Handed,
    ended: &Ended,
    body: &Bytes,
) -> String {
    let telemetry_status = match &ended.status {
        EndStatus::Success => "success",
        EndStatus::FunctionError => "error",
        EndStatus::Timeout => "timeout",
        EndStatus::Crashed(_) => "failure",
    };
    shared.drain_pipes().await;
    let max_memory_mb = shared.sample_memory();
    let data = ReportData {
        request_id: &ended.request_id,
        duration: ended.duration,
        memory_mb: spec.memory_mb,
        max_memory_mb,
        init: ended.init,
        status: ended.status.clone(),
        arch: spec.architecture,
        trace: Some(&handed.trace_id),
    };
    for line in report::lines(&data) {
        shared.log(LogStream::Platform, &line);
    }
    shared.telemetry.report(
        &ended.request_id,
        telemetry_status,
        ended.duration,
        report::billed_ms(ended.duration, ended.init),
        spec.memory_mb,
        max_memory_mb,
        ended.init,
    );
    let log = shared
        .capture
        .lock()
        .expect("capture")
        .take()
        .unwrap_or_default();
    // The estimate is the emulator's, not Lambda's: in the watch output,
    // not in the log callers get back.
    shared.log(LogStream::Platform, &report::cost_line(&data));
    if shared.cgroup.is_none()
        && let Some(line) = report::over_memory_line(&data)
    {
        shared.log(LogStream::Platform, &line);
    }
    emulator.history.record(super::history::Finished {
        spec,
        request_id: &ended.request_id,
        started: handed.at.unwrap_or_else(std::time::SystemTime::now),
        duration: ended.duration,
        init: ended.init,
        max_memory_mb,
        status: &ended.status,
        log: &log,
        payload: &handed.payload,
        response: body,
    });
    log
}

fn exited(
    env: &Environment,
    status: Option<std::process::ExitStatus>,
    request_id: &str,
) -> (EndStatus, Bytes) {
    let text = status.map(exit_text).unwrap_or_else(|| "unknown".into());
    let message = format!("RequestId: {request_id} Error: Runtime exited with error: {text}");
    env.shared.log(LogStream::Platform, &message);
    (
        EndStatus::Crashed("Runtime.ExitError".into()),
        error_body("Runtime.ExitError", &message),
    )
}

/// Lambda's answer when the environment was killed at its memory limit
/// (contract 10): `Runtime.OutOfMemory`, and REPORT says so.
fn out_of_memory(env: &Environment, request_id: &str) -> Option<(EndStatus, Bytes)> {
    if !env.shared.cgroup.as_ref()?.oom_killed() {
        return None;
    }
    let message =
        format!("RequestId: {request_id} Error: Runtime exited with error: signal: killed");
    env.shared.log(LogStream::Platform, &message);
    let kind = "Runtime.OutOfMemory";
    Some((EndStatus::Crashed(kind.into()), error_body(kind, &message)))
}

fn timed_out(env: &Environment, spec: &FunctionSpec, request_id: &str) -> (EndStatus, Bytes) {
    let secs = spec.timeout.as_secs_f64();
    let message = format!("RequestId: {request_id} Error: Task timed out after {secs:.2} seconds");
    env.shared.log(LogStream::Platform, &message);
    (EndStatus::Timeout, error_body("Sandbox.Timedout", &message))
}

/// Where streamed bytes go: the caller as they come, or a buffer for a
/// caller that wants the whole answer.
enum Sink {
    Caller(mpsc::Sender<Bytes>),
    /// The caller went away: the invocation still runs to its end.
    Gone,
    Buffer(BytesMut),
}

/// Moves a streamed answer from the runtime to the caller until it ends,
/// fails, the runtime dies, or the deadline passes.
async fn relay(
    stream: ResponseStream,
    head: Option<oneshot::Sender<StreamHead>>,
    env: &mut Environment,
    deadline: tokio::time::Instant,
    spec: &FunctionSpec,
    request_id: &str,
) -> (EndStatus, Bytes) {
    let ResponseStream {
        content_type,
        mut parts,
    } = stream;
    let mut sink = match head {
        Some(head) => {
            let (tx, chunks) = mpsc::channel(streaming::CHANNEL_DEPTH);
            match head.send(StreamHead {
                content_type,
                chunks,
            }) {
                Ok(()) => Sink::Caller(tx),
                Err(_) => Sink::Gone,
            }
        }
        None => Sink::Buffer(BytesMut::new()),
    };
    enum Stop {
        Exit(Option<std::process::ExitStatus>),
        Timeout,
    }
    let stop = |env: &Environment, stop: Stop| match stop {
        Stop::Exit(status) => exited(env, status, request_id),
        Stop::Timeout => timed_out(env, spec, request_id),
    };
    loop {
        let part = tokio::select! {
            biased;
            p = parts.recv() => Ok(p),
            s = env.wait_exit() => Err(Stop::Exit(s)),
            _ = tokio::time::sleep_until(deadline) => Err(Stop::Timeout),
        };
        let part = match part {
            Ok(p) => p,
            Err(s) => return stop(env, s),
        };
        let data = match part {
            None => break,
            Some(StreamPart::Data(data)) => data,
            Some(StreamPart::Error {
                error_type,
                message,
            }) => {
                env.shared.log(
                    LogStream::Platform,
                    &format!("RequestId: {request_id} Error: {error_type}: {message}"),
                );
                return (EndStatus::FunctionError, error_body(&error_type, &message));
            }
        };
        match &mut sink {
            Sink::Caller(tx) => {
                let sent = tokio::select! {
                    biased;
                    r = tx.send(data) => Ok(r.is_ok()),
                    s = env.wait_exit() => Err(Stop::Exit(s)),
                    _ = tokio::time::sleep_until(deadline) => Err(Stop::Timeout),
                };
                match sent {
                    Ok(true) => {}
                    Ok(false) => sink = Sink::Gone,
                    Err(s) => return stop(env, s),
                }
            }
            Sink::Gone => {}
            Sink::Buffer(buf) => {
                if buf.len() + data.len() > MAX_RESPONSE_BYTES {
                    return (
                        EndStatus::FunctionError,
                        error_body(
                            "Function.ResponseSizeTooLarge",
                            &format!(
                                "Response payload size exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes)."
                            ),
                        ),
                    );
                }
                buf.extend_from_slice(&data);
            }
        }
    }
    let body = match sink {
        Sink::Buffer(buf) => buf.freeze(),
        _ => Bytes::new(),
    };
    (EndStatus::Success, body)
}

fn exit_text(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => format!("signal: {sig}"),
        _ => status.to_string(),
    }
}

/// Runs queued `Event` invocations in order, waiting for capacity instead
/// of failing (Lambda retries throttled asynchronous invocations).
async fn run_events(pool: std::sync::Weak<FunctionPool>, mut rx: mpsc::UnboundedReceiver<Job>) {
    while let Some(job) = rx.recv().await {
        loop {
            let Some(p) = pool.upgrade() else { return };
            if p.state.lock().expect("pool").closed {
                return;
            }
            match p.acquire() {
                Ok(lease) => {
                    tokio::spawn(async move {
                        let _ = p.run(lease, job).await;
                    });
                    break;
                }
                Err(_) => {
                    drop(p);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }
}
