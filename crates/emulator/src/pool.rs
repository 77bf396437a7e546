//! The environments of one function: warm reuse, the concurrency limits,
//! generations for hot reload, the asynchronous (`Event`) queue, and running
//! one invocation on one environment from hand-off to REPORT.
//!
//! A managed-instances function (`FunctionSpec::max_concurrency`) shares
//! each environment between up to that many invocations: a lease is a slot
//! of an environment, a new environment starts only when every slot of the
//! others is taken, and a timeout fails only its own invocation (the
//! environment keeps serving the others), as Lambda does there.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::sync::{mpsc, oneshot};

use super::env_state::{EnvShared, Invocation, Outcome, error_body};
use super::environment::{Environment, LaunchError, shut_down, wait_exit};
use super::extensions::ShutdownReason;
use super::report::{self, EndStatus, ReportData};
use super::runtime_api::MAX_RESPONSE_BYTES;
use super::streaming::{self, ResponseStream, StreamHead, StreamPart};
use super::{FunctionSpec, LOCAL_ACCOUNT_ID, LogStream, Shared};

/// How long a runtime may take to ask for its first event (Lambda's
/// on-demand init limit).
const INIT_LIMIT: Duration = Duration::from_secs(10);

/// Managed instances: init may take the function's timeout, at least 130 s.
fn managed_init_limit(spec: &FunctionSpec) -> Duration {
    spec.timeout.max(Duration::from_secs(130))
}

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
    /// Managed instances: environments shared by concurrent invocations.
    shared: Vec<Slotted>,
}

/// A managed-instances environment and how many of its slots are taken.
struct Slotted {
    env: Arc<Environment>,
    generation: u64,
    in_flight: usize,
    /// Init failed: no more invocations go there.
    retired: bool,
}

impl Slotted {
    fn dead(&self) -> bool {
        self.retired || self.env.exited.borrow().is_some()
    }
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
    /// Managed instances: the environment whose slot this is, or why none
    /// could be started.
    slot: Option<Result<Arc<Environment>, Arc<anyhow::Error>>>,
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
        match self.slot.take() {
            Some(Ok(env)) => self.pool.release_slot(env),
            _ => self.pool.release(self.env.take(), self.generation),
        }
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
                shared: Vec::new(),
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
        // Managed instances: an environment with nothing in flight is warm.
        let waiting = st
            .shared
            .iter()
            .filter(|s| !s.dead() && s.in_flight == 0)
            .count();
        (st.idle.len() + waiting, st.busy, st.generation)
    }

    /// Managed instances: each environment's id and its invocations in
    /// flight (dashboard).
    pub fn in_flight(&self) -> Vec<(u64, usize)> {
        let st = self.state.lock().expect("pool");
        st.shared
            .iter()
            .filter(|s| !s.dead())
            .map(|s| (s.env.shared.env_id, s.in_flight))
            .collect()
    }

    pub fn replace_spec(&self, spec: FunctionSpec) {
        let (old_idle, old_shared) = {
            let mut st = self.state.lock().expect("pool");
            st.spec = Arc::new(spec);
            st.generation += 1;
            let shared = take_unused(&mut st.shared);
            (std::mem::take(&mut st.idle), shared)
        };
        // Outside the lock: SHUTDOWN to their extensions, then the kill.
        for env in old_idle.into_iter().chain(old_shared) {
            shut_down(env, &self.emulator, ShutdownReason::Spindown);
        }
    }

    pub fn close(&self) {
        let (old_idle, old_shared) = {
            let mut st = self.state.lock().expect("pool");
            st.closed = true;
            let shared = take_unused(&mut st.shared);
            (std::mem::take(&mut st.idle), shared)
        };
        for env in old_idle.into_iter().chain(old_shared) {
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
        if let Some(n) = st.spec.max_concurrency {
            let slot = self.take_slot(&mut st, n.max(1) as usize);
            return Ok(Lease {
                pool: self.clone(),
                spec: st.spec.clone(),
                generation: st.generation,
                env: None,
                handed: Handed::default(),
                slot: Some(slot),
            });
        }
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
            slot: None,
        })
    }

    /// Managed instances: a free slot of a live environment of this
    /// generation (the first, so load packs onto the fewest), else a new
    /// environment. Environments that died with nothing in flight go.
    fn take_slot(
        &self,
        st: &mut PoolState,
        per_env: usize,
    ) -> Result<Arc<Environment>, Arc<anyhow::Error>> {
        st.shared.retain(|s| !(s.dead() && s.in_flight == 0));
        let generation = st.generation;
        let loads = st
            .shared
            .iter()
            .map(|s| (s.generation, s.dead(), s.in_flight));
        if let Some(i) = free_slot(loads, generation, per_env) {
            let s = &mut st.shared[i];
            s.in_flight += 1;
            return Ok(s.env.clone());
        }
        let env = Arc::new(Environment::spawn(&self.emulator, &st.spec).map_err(Arc::new)?);
        st.shared.push(Slotted {
            env: env.clone(),
            generation,
            in_flight: 1,
            retired: false,
        });
        Ok(env)
    }

    /// Managed instances: frees the slot; an environment of an old
    /// generation, a closed pool, or a retired or dead one ends with its
    /// last invocation.
    fn release_slot(&self, env: Arc<Environment>) {
        let ended = {
            let mut st = self.state.lock().expect("pool");
            st.busy -= 1;
            let stale_all = st.closed || self.emulator.closed.load(Ordering::SeqCst);
            let generation = st.generation;
            let at = st.shared.iter().position(|s| Arc::ptr_eq(&s.env, &env));
            at.and_then(|i| {
                let s = &mut st.shared[i];
                s.in_flight -= 1;
                let ends =
                    s.in_flight == 0 && (stale_all || s.generation != generation || s.dead());
                ends.then(|| st.shared.remove(i).env)
            })
        };
        drop(env);
        // The pool held the other reference; the lease's is gone.
        if let Some(env) = ended.and_then(|e| Arc::try_unwrap(e).ok()) {
            shut_down(env, &self.emulator, ShutdownReason::Spindown);
        }
        self.emulator.running.fetch_sub(1, Ordering::SeqCst);
    }

    /// Managed instances: no more invocations go to `env` (its init failed).
    fn retire(&self, env: &Arc<Environment>) {
        let mut st = self.state.lock().expect("pool");
        if let Some(s) = st.shared.iter_mut().find(|s| Arc::ptr_eq(&s.env, env)) {
            s.retired = true;
        }
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
        if lease.slot.is_some() {
            return self.run_on_slot(lease, job, head).await;
        }
        let mut env = match lease.env.take() {
            Some(env) => env,
            None => match self.start_environment(&spec, &job.request_id) {
                Ok(env) => env,
                Err(failed) => return failed,
            },
        };
        // The previous invocation's END and REPORT come before this START.
        if let Some(accounted) = env.accounting.take() {
            let _ = accounted.await;
        }
        let cold = !env.initialized;
        let (picked_tx, picked_rx) = oneshot::channel();
        let (reply_tx, reply_rx) = oneshot::channel();
        let invoked_arn = self.invoked_arn(&spec, job.qualifier.as_deref());
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
            let (body, kind) =
                init_failure(&env.shared, *env.exited.borrow(), INIT_LIMIT, &request_id);
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
        let shared = env.shared.clone();
        let (status, body) = await_outcome(
            &shared,
            &mut env.exited,
            reply_rx,
            head,
            deadline,
            &spec,
            &request_id,
        )
        .await;
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

    /// Starts an environment for the leased slot; a failure to start is
    /// the invocation's result (`Extension.LaunchError` when an extension
    /// could not be started, else `Runtime.InvalidEntrypoint`).
    fn start_environment(
        &self,
        spec: &FunctionSpec,
        request_id: &str,
    ) -> Result<Environment, JobResult> {
        Environment::spawn(&self.emulator, spec).map_err(|e| launch_failure(spec, request_id, &e))
    }

    /// Managed instances: one invocation on a slot of a shared environment,
    /// from hand-off to REPORT. Its own deadline: a timeout fails it alone
    /// and the environment keeps serving the others (Lambda's rule there);
    /// END and REPORT per invocation, the Init Duration in the first one
    /// the environment picked up. The slot is free once the answer is in.
    /// `X-Amz-Log-Type: Tail` gets no log: lines of concurrent invocations
    /// cannot be told apart.
    async fn run_on_slot(
        &self,
        mut lease: Lease,
        job: Job,
        head: Option<oneshot::Sender<StreamHead>>,
    ) -> JobResult {
        let spec = lease.spec.clone();
        let (shared, mut exited_rx, invoke_tx, spawned_at) = match lease.slot.as_ref() {
            Some(Ok(env)) => (
                env.shared.clone(),
                env.exited.clone(),
                env.invoke_tx.clone(),
                env.spawned_at,
            ),
            Some(Err(e)) => return launch_failure(&spec, &job.request_id, e),
            None => unreachable!("run_on_slot is called for slot leases"),
        };
        let (picked_tx, picked_rx) = oneshot::channel();
        let (reply_tx, reply_rx) = oneshot::channel();
        let request_id = job.request_id.clone();
        let invocation = Invocation {
            invoked_arn: self.invoked_arn(&spec, job.qualifier.as_deref()),
            request_id: job.request_id,
            payload: job.payload,
            timeout: spec.timeout,
            trace_id: job.trace_id,
            client_context: job.client_context,
            cognito_identity: job.cognito_identity,
            version: "$LATEST".to_string(),
            picked_up: picked_tx,
            reply: reply_tx,
        };
        // The channel holds one invocation per slot: never waits.
        let _ = invoke_tx.send(invocation).await;
        let limit = managed_init_limit(&spec);
        let picked = tokio::select! {
            biased;
            t = picked_rx => t.ok(),
            _ = shared.init_failed.notified() => None,
            _ = wait_exit(&mut exited_rx) => None,
            _ = tokio::time::sleep(limit) => None,
        };
        let (ended, body) = match picked {
            None => {
                // Never picked up: init failed, crashed or hung; the
                // environment takes no more invocations.
                if let Some(Ok(env)) = lease.slot.as_ref() {
                    self.retire(env);
                }
                let status = *exited_rx.borrow();
                let (body, kind) = init_failure(&shared, status, limit, &request_id);
                shared.log(
                    LogStream::Platform,
                    &format!("START RequestId: {request_id} Version: $LATEST"),
                );
                let init = Some(spawned_at.elapsed());
                let status = EndStatus::Crashed(kind);
                let ended = Ended {
                    request_id,
                    duration: Duration::ZERO,
                    init,
                    status,
                };
                (ended, body)
            }
            Some(started) => {
                let init = (!shared.init_reported.swap(true, Ordering::SeqCst))
                    .then(|| started.saturating_duration_since(spawned_at));
                let deadline = tokio::time::Instant::from_std(started + spec.timeout);
                let (status, body) = await_outcome(
                    &shared,
                    &mut exited_rx,
                    reply_rx,
                    head,
                    deadline,
                    &spec,
                    &request_id,
                )
                .await;
                let duration = started.elapsed();
                if let Some(outcome) = match status {
                    EndStatus::Success => Some("success"),
                    EndStatus::FunctionError => Some("error"),
                    _ => None,
                } {
                    shared
                        .telemetry
                        .runtime_done(&request_id, outcome, duration);
                }
                let ended = Ended {
                    request_id,
                    duration,
                    init,
                    status,
                };
                (ended, body)
            }
        };
        let handed = std::mem::take(&mut lease.handed);
        drop(lease);
        let answer = JobResult {
            body: body.clone(),
            function_error: (ended.status != EndStatus::Success).then_some("Unhandled"),
            log: String::new(),
        };
        let emulator = self.emulator.clone();
        emulator.accounting.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(async move {
            // The answer goes first (see answer_then_account).
            tokio::task::yield_now().await;
            account(&emulator, &shared, &spec, &handed, &ended, &body).await;
            emulator.accounting.fetch_sub(1, Ordering::SeqCst);
        });
        answer
    }

    /// The ARN the runtime sees as invoked (with the qualifier called).
    fn invoked_arn(&self, spec: &FunctionSpec, qualifier: Option<&str>) -> String {
        format!(
            "arn:aws:lambda:{}:{}:function:{}{}",
            self.emulator.options.region,
            LOCAL_ACCOUNT_ID,
            spec.name,
            qualifier.map(|q| format!(":{q}")).unwrap_or_default()
        )
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

/// The result of an invocation whose environment could not start
/// (`Extension.LaunchError` when an extension could not be started, else
/// `Runtime.InvalidEntrypoint`).
fn launch_failure(spec: &FunctionSpec, request_id: &str, e: &anyhow::Error) -> JobResult {
    let error_type = if e.is::<LaunchError>() {
        "Extension.LaunchError"
    } else {
        "Runtime.InvalidEntrypoint"
    };
    let body = error_body(error_type, &format!("RequestId: {request_id} Error: {e:#}"));
    tracing::error!("function `{}`: {e:#}", spec.name);
    JobResult {
        body,
        function_error: Some("Unhandled"),
        log: String::new(),
    }
}

/// Which managed-instances environment takes the next invocation, given
/// each one's (generation, dead, invocations in flight): the first live one
/// of `generation` with a free slot, so load packs onto the fewest
/// environments; `None` when every slot is busy (start another).
fn free_slot(
    mut loads: impl Iterator<Item = (u64, bool, usize)>,
    generation: u64,
    per_env: usize,
) -> Option<usize> {
    loads.position(|(g, dead, n)| g == generation && !dead && n < per_env)
}

/// Managed instances: environments of `shared` with nothing in flight,
/// taken out to be shut down (a spec replaced, the pool closed); the busy
/// ones end with their last invocation.
fn take_unused(shared: &mut Vec<Slotted>) -> Vec<Environment> {
    let (unused, busy): (Vec<Slotted>, Vec<Slotted>) = std::mem::take(shared)
        .into_iter()
        .partition(|s| s.in_flight == 0);
    *shared = busy;
    unused
        .into_iter()
        .filter_map(|s| Arc::try_unwrap(s.env).ok())
        .collect()
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

/// The error of an invocation its environment never picked up: init
/// failed (`/init/error`), the runtime exited, or init outlived its limit.
/// The error body and the REPORT's status.
fn init_failure(
    shared: &EnvShared,
    status: Option<std::process::ExitStatus>,
    limit: Duration,
    request_id: &str,
) -> (Bytes, String) {
    // Cloned, not taken: it keeps `next` refusing a runtime that asks
    // again before the environment is gone (it would get this failed
    // invocation's event, still in the channel).
    let init_error = shared.init_error.lock().expect("init").clone();
    let init_blockers = shared.extensions.init_blockers();
    match (init_error, status) {
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
                    limit.as_secs()
                ),
            ),
            "Runtime.Unknown".to_string(),
        ),
        (None, None) => (
            error_body(
                "Runtime.Unknown",
                &format!(
                    "RequestId: {request_id} Error: the runtime did not ask for an event within {} seconds of starting",
                    limit.as_secs()
                ),
            ),
            "Runtime.Unknown".to_string(),
        ),
    }
}

/// Phase 2 of an invocation: the answer (a stream relayed to `head` until
/// it ends), a crash, or the deadline; the REPORT's status and the body.
async fn await_outcome(
    shared: &EnvShared,
    exited_rx: &mut tokio::sync::watch::Receiver<Option<std::process::ExitStatus>>,
    reply_rx: oneshot::Receiver<Outcome>,
    head: Option<oneshot::Sender<StreamHead>>,
    deadline: tokio::time::Instant,
    spec: &FunctionSpec,
    request_id: &str,
) -> (EndStatus, Bytes) {
    enum Waited {
        Answer(Outcome),
        Exit,
        Timeout,
    }
    let waited = tokio::select! {
        biased;
        r = reply_rx => match r { Ok(o) => Waited::Answer(o), Err(_) => Waited::Exit },
        _ = wait_exit(exited_rx) => Waited::Exit,
        _ = tokio::time::sleep_until(deadline) => Waited::Timeout,
    };
    match waited {
        Waited::Answer(Outcome::Response(body)) => (EndStatus::Success, body),
        // The environment stays busy, and the deadline applies, until
        // the stream ends.
        Waited::Answer(Outcome::Stream(stream)) => {
            relay(stream, head, shared, exited_rx, deadline, spec, request_id).await
        }
        // A handled error (a caught panic included) keeps the
        // environment warm, with its state, as on Lambda.
        Waited::Answer(Outcome::Error { body }) => (EndStatus::FunctionError, body),
        Waited::Exit => {
            let status = wait_exit(exited_rx).await;
            out_of_memory(shared, request_id).unwrap_or_else(|| exited(shared, status, request_id))
        }
        Waited::Timeout => timed_out(shared, spec, request_id),
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
    shared: &EnvShared,
    status: Option<std::process::ExitStatus>,
    request_id: &str,
) -> (EndStatus, Bytes) {
    let text = status.map(exit_text).unwrap_or_else(|| "unknown".into());
    let message = format!("RequestId: {request_id} Error: Runtime exited with error: {text}");
    shared.log(LogStream::Platform, &message);
    (
        EndStatus::Crashed("Runtime.ExitError".into()),
        error_body("Runtime.ExitError", &message),
    )
}

/// Lambda's answer when the environment was killed at its memory limit
/// (contract 10): `Runtime.OutOfMemory`, and REPORT says so.
fn out_of_memory(shared: &EnvShared, request_id: &str) -> Option<(EndStatus, Bytes)> {
    if !shared.cgroup.as_ref()?.oom_killed() {
        return None;
    }
    let message =
        format!("RequestId: {request_id} Error: Runtime exited with error: signal: killed");
    shared.log(LogStream::Platform, &message);
    let kind = "Runtime.OutOfMemory";
    Some((EndStatus::Crashed(kind.into()), error_body(kind, &message)))
}

fn timed_out(shared: &EnvShared, spec: &FunctionSpec, request_id: &str) -> (EndStatus, Bytes) {
    let secs = spec.timeout.as_secs_f64();
    let message = format!("RequestId: {request_id} Error: Task timed out after {secs:.2} seconds");
    shared.log(LogStream::Platform, &message);
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
    shared: &EnvShared,
    exited_rx: &mut tokio::sync::watch::Receiver<Option<std::process::ExitStatus>>,
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
    let stop = |stop: Stop| match stop {
        Stop::Exit(status) => exited(shared, status, request_id),
        Stop::Timeout => timed_out(shared, spec, request_id),
    };
    loop {
        let part = tokio::select! {
            biased;
            p = parts.recv() => Ok(p),
            s = wait_exit(exited_rx) => Err(Stop::Exit(s)),
            _ = tokio::time::sleep_until(deadline) => Err(Stop::Timeout),
        };
        let part = match part {
            Ok(p) => p,
            Err(s) => return stop(s),
        };
        let data = match part {
            None => break,
            Some(StreamPart::Data(data)) => data,
            Some(StreamPart::Error {
                error_type,
                message,
            }) => {
                shared.log(
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
                    s = wait_exit(exited_rx) => Err(Stop::Exit(s)),
                    _ = tokio::time::sleep_until(deadline) => Err(Stop::Timeout),
                };
                match sent {
                    Ok(true) => {}
                    Ok(false) => sink = Sink::Gone,
                    Err(s) => return stop(s),
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

#[cfg(test)]
mod tests {
    use super::free_slot;

    fn pick(loads: &[(u64, bool, usize)], per_env: usize) -> Option<usize> {
        free_slot(loads.iter().copied(), 1, per_env)
    }

    #[test]
    fn slots_fill_the_first_environment_before_another_starts() {
        assert_eq!(pick(&[], 4), None, "none yet: start one");
        assert_eq!(pick(&[(1, false, 0)], 4), Some(0));
        assert_eq!(pick(&[(1, false, 3)], 4), Some(0));
        assert_eq!(pick(&[(1, false, 4)], 4), None, "all busy: a second");
        assert_eq!(pick(&[(1, false, 4), (1, false, 1)], 4), Some(1));
        assert_eq!(pick(&[(1, false, 2), (1, false, 0)], 4), Some(0));
        assert_eq!(pick(&[(1, false, 1)], 1), None, "one slot each");
    }

    #[test]
    fn old_generations_and_dead_environments_take_nothing() {
        assert_eq!(pick(&[(0, false, 0)], 4), None, "replaced by a reload");
        assert_eq!(pick(&[(1, true, 0)], 4), None, "exited or retired");
        assert_eq!(
            pick(&[(0, false, 0), (1, true, 0), (1, false, 2)], 4),
            Some(2)
        );
    }
}
