//! The extensions of one execution environment (contract 2.1 and 2.2):
//! who registered for which events, each extension's event queue, the rules
//! that end a phase (init ends when the runtime and every extension wait for
//! their next event; an invocation completes when the runtime has answered
//! and every extension has asked for its next event again), the external
//! extension processes' count, and the shutdown phase's SHUTDOWN event
//! with its reason and deadline.
//!
//! It knows nothing of processes, pools, callers or HTTP: the environment
//! (`environment.rs`, which starts and kills the processes), the Extensions
//! API routes (`extensions_api.rs`) and the pool call into it.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tokio::sync::watch;

/// Most extensions one function may have (Lambda enforces it at register).
pub(crate) const MAX_EXTENSIONS: usize = 10;
/// The shutdown phase with at least one external extension (contract 2.2).
pub(crate) const SHUTDOWN_LIMIT: Duration = Duration::from_millis(2000);

/// Why an environment is shut down, as the SHUTDOWN event says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ShutdownReason {
    /// Normal end: hot reload, emulator stop, Ctrl-C.
    Spindown,
    /// The invocation ran out of time.
    Timeout,
    /// The runtime crashed or failed.
    Failure,
}

impl ShutdownReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ShutdownReason::Spindown => "spindown",
            ShutdownReason::Timeout => "timeout",
            ShutdownReason::Failure => "failure",
        }
    }
}

/// An Extensions API refusal: status, error type, message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub status: u16,
    pub error_type: &'static str,
    pub message: String,
}

fn refuse(status: u16, error_type: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        error_type,
        message: message.into(),
    }
}

/// One registered extension.
struct Registered {
    id: String,
    name: String,
    invoke: bool,
    shutdown: bool,
    /// Events queued and not yet handed over.
    queue: VecDeque<Value>,
    /// An event was handed over and the extension has not asked for the next one yet.
    busy: bool,
    /// Has asked for an event at least once (init done on its side).
    asked: bool,
    /// Reported an error or was told to shut down: no more events.
    gone: bool,
}

impl Registered {
    fn idle(&self) -> bool {
        self.gone || (self.asked && !self.busy && self.queue.is_empty())
    }
}

#[derive(Default)]
struct State {
    registered: Vec<Registered>,
    /// Registration is closed once init is over.
    init_done: bool,
    /// External extension processes still running.
    live: usize,
    /// External extensions whose process ended.
    exited: Vec<String>,
    /// The environment is being shut down: exits are expected.
    ending: bool,
    /// Init failed (an extension crashed or reported init/error): it never
    /// completes, the runtime gets no invocation.
    init_failed: bool,
    /// An extension died or reported exit/error after init: the
    /// environment is reset after its current invocation, as on Lambda.
    broken: bool,
}

/// The extensions of one environment.
pub(crate) struct Extensions {
    /// File names of the external extensions started in this environment
    /// (an extension registers under its file name).
    external: Vec<String>,
    state: Mutex<State>,
    /// Bumped on every change, so waiters re-check their condition.
    changed: watch::Sender<()>,
}

impl Extensions {
    pub fn new(external: Vec<String>) -> Extensions {
        Extensions {
            external,
            state: Mutex::new(State::default()),
            changed: watch::channel(()).0,
        }
    }

    /// The environment is ending: extension exits are expected now.
    pub fn ending(&self) -> bool {
        self.lock().ending
    }

    /// Marks the environment as ending (its shutdown phase has begun).
    pub fn begin_ending(&self) {
        self.lock().ending = true;
    }

    /// Init failed because of an extension (it crashed, or reported it).
    pub fn mark_init_failed(&self) {
        self.lock().init_failed = true;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("extensions")
    }

    fn bump(&self) {
        self.changed.send_replace(());
    }

    /// `POST /extension/register`: returns the new identifier.
    pub fn register(&self, name: &str, events: &[String]) -> Result<String, Refusal> {
        if name.trim().is_empty() {
            return Err(refuse(
                403,
                "Extension.InvalidExtensionName",
                "the Lambda-Extension-Name header is missing or empty",
            ));
        }
        let mut invoke = false;
        let mut shutdown = false;
        for e in events {
            match e.as_str() {
                "INVOKE" => invoke = true,
                "SHUTDOWN" => shutdown = true,
                other => {
                    return Err(refuse(
                        403,
                        "Extension.InvalidEventType",
                        format!("unknown event type `{other}`: allowed are INVOKE and SHUTDOWN"),
                    ));
                }
            }
        }
        let external = self.external.iter().any(|n| n == name);
        if !external && shutdown {
            return Err(refuse(
                403,
                "Extension.InvalidEventType",
                format!(
                    "`{name}` is not an external extension of this function (none has that file name), and internal extensions cannot register for SHUTDOWN"
                ),
            ));
        }
        let mut st = self.lock();
        if st.init_done {
            return Err(refuse(
                403,
                "Extension.RegistrationClosed",
                "extensions can register only during the init phase",
            ));
        }
        if st.registered.len() >= MAX_EXTENSIONS {
            return Err(refuse(
                403,
                "Extension.TooManyExtensions",
                format!("a function may have at most {MAX_EXTENSIONS} extensions"),
            ));
        }
        if st.registered.iter().any(|r| r.name == name) {
            return Err(refuse(
                403,
                "Extension.InvalidExtensionState",
                format!("an extension named `{name}` is already registered"),
            ));
        }
        let id = uuid::Uuid::new_v4().to_string();
        st.registered.push(Registered {
            id: id.clone(),
            name: name.to_string(),
            invoke,
            shutdown,
            queue: VecDeque::new(),
            busy: false,
            asked: false,
            gone: false,
        });
        drop(st);
        self.bump();
        Ok(id)
    }

    /// The name of a registered, live extension.
    pub fn name_of(&self, id: &str) -> Result<String, Refusal> {
        let st = self.lock();
        let r = find(&st, id)?;
        if r.gone {
            return Err(gone(&r.name));
        }
        Ok(r.name.clone())
    }

    /// `GET /extension/event/next`: finishes the extension's previous event
    /// and waits for its next one.
    pub async fn next(&self, id: &str) -> Result<Value, Refusal> {
        let mut rx = self.changed.subscribe();
        {
            let mut st = self.lock();
            let r = find_mut(&mut st, id)?;
            if r.gone {
                return Err(gone(&r.name));
            }
            r.asked = true;
            r.busy = false;
        }
        self.bump();
        loop {
            {
                let mut st = self.lock();
                let r = find_mut(&mut st, id)?;
                if let Some(event) = r.queue.pop_front() {
                    r.busy = true;
                    return Ok(event);
                }
                if r.gone {
                    return Err(gone(&r.name));
                }
            }
            if rx.changed().await.is_err() {
                return Err(refuse(
                    500,
                    "InternalServerError",
                    "the environment is gone",
                ));
            }
        }
    }

    /// `init/error` or `exit/error`: the extension gets no more events.
    /// Returns whether init was still in progress.
    pub fn failed(&self, id: &str) -> Result<(String, bool), Refusal> {
        let mut st = self.lock();
        let init_done = st.init_done;
        st.broken |= init_done && !st.ending;
        let r = find_mut(&mut st, id)?;
        if r.gone {
            return Err(gone(&r.name));
        }
        r.gone = true;
        r.queue.clear();
        let name = r.name.clone();
        drop(st);
        self.bump();
        Ok((name, !init_done))
    }

    /// Init is over when every external extension has registered (or its
    /// process ended) and every registered extension waits for an event.
    /// Closes registration; returns true the first time.
    pub async fn wait_init(&self) -> bool {
        let mut rx = self.changed.subscribe();
        loop {
            {
                let mut st = self.lock();
                if st.init_done {
                    return false;
                }
                let all_started = self.external.iter().all(|name| {
                    st.registered.iter().any(|r| &r.name == name) || st.exited.contains(name)
                });
                if !st.init_failed && all_started && st.registered.iter().all(Registered::idle) {
                    st.init_done = true;
                    return true;
                }
            }
            if rx.changed().await.is_err() {
                return false;
            }
        }
    }

    /// What keeps init from ending, in words; empty when extensions are
    /// not the reason.
    pub fn init_blockers(&self) -> String {
        let st = self.lock();
        let mut out = Vec::new();
        for name in &self.external {
            if !st.registered.iter().any(|r| &r.name == name) && !st.exited.contains(name) {
                out.push(format!("extension `{name}` has not registered"));
            }
        }
        for r in st.registered.iter().filter(|r| !r.idle()) {
            out.push(format!(
                "extension `{}` has not asked for its first event",
                r.name
            ));
        }
        out.join("; ")
    }

    /// Must the environment be reset (an extension failed after init)?
    pub fn broken(&self) -> bool {
        self.lock().broken
    }

    pub fn init_done(&self) -> bool {
        self.lock().init_done
    }

    /// Queues INVOKE for every extension registered for it.
    pub fn invoke(&self, request_id: &str, deadline_ms: u128, arn: &str, trace_id: &str) {
        let event = json!({
            "eventType": "INVOKE",
            "deadlineMs": deadline_ms as u64,
            "requestId": request_id,
            "invokedFunctionArn": arn,
            "tracing": {"type": "X-Amzn-Trace-Id", "value": trace_id},
        });
        let mut st = self.lock();
        for r in st.registered.iter_mut().filter(|r| r.invoke && !r.gone) {
            r.queue.push_back(event.clone());
        }
        drop(st);
        self.bump();
    }

    /// Does every extension wait for its next event right now?
    pub fn all_waiting(&self) -> bool {
        self.lock().registered.iter().all(Registered::idle)
    }

    /// Waits until every extension has asked for its next event (the
    /// invocation is complete), or the deadline. False on the deadline.
    pub async fn wait_idle(&self, deadline: tokio::time::Instant) -> bool {
        let mut rx = self.changed.subscribe();
        loop {
            if self.lock().registered.iter().all(Registered::idle) {
                return true;
            }
            tokio::select! {
                r = rx.changed() => if r.is_err() { return false },
                _ = tokio::time::sleep_until(deadline) => return false,
            }
        }
    }

    /// Extensions that will get SHUTDOWN.
    pub fn shutdown_listeners(&self) -> usize {
        self.lock()
            .registered
            .iter()
            .filter(|r| r.shutdown && !r.gone)
            .count()
    }

    /// Queues SHUTDOWN for every extension registered for it.
    pub fn shutdown(&self, reason: ShutdownReason, deadline_ms: u128) {
        let event = json!({
            "eventType": "SHUTDOWN",
            "shutdownReason": reason.as_str(),
            "deadlineMs": deadline_ms as u64,
        });
        let mut st = self.lock();
        for r in st.registered.iter_mut().filter(|r| !r.gone) {
            if r.shutdown {
                r.queue.push_back(event.clone());
            }
        }
        drop(st);
        self.bump();
    }

    pub fn has_processes(&self) -> bool {
        !self.external.is_empty()
    }

    pub fn process_started(&self) {
        self.lock().live += 1;
    }

    pub fn process_exited(&self, name: &str) {
        let mut st = self.lock();
        st.live = st.live.saturating_sub(1);
        st.exited.push(name.to_string());
        st.broken |= st.init_done && !st.ending;
        // A dead extension never asks for its next event: do not wait for it.
        for r in st.registered.iter_mut().filter(|r| r.name == name) {
            r.gone = true;
            r.queue.clear();
        }
        drop(st);
        self.bump();
    }

    /// Resolves when every external extension process has ended.
    pub async fn processes_gone(&self) {
        let mut rx = self.changed.subscribe();
        loop {
            if self.lock().live == 0 {
                return;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }
}

fn find<'a>(st: &'a State, id: &str) -> Result<&'a Registered, Refusal> {
    st.registered
        .iter()
        .find(|r| r.id == id)
        .ok_or_else(unknown_id)
}

fn find_mut<'a>(st: &'a mut State, id: &str) -> Result<&'a mut Registered, Refusal> {
    st.registered
        .iter_mut()
        .find(|r| r.id == id)
        .ok_or_else(unknown_id)
}

fn unknown_id() -> Refusal {
    refuse(
        403,
        "Extension.UnknownExtensionIdentifier",
        "no extension is registered with this Lambda-Extension-Identifier",
    )
}

fn gone(name: &str) -> Refusal {
    refuse(
        403,
        "Extension.InvalidExtensionState",
        format!("extension `{name}` reported an error or was shut down: it gets no more events"),
    )
}

/// Milliseconds since the Unix epoch, `after` from now.
pub(crate) fn epoch_ms_after(after: Duration) -> u128 {
    (SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        + after)
        .as_millis()
}

/// The file name an extension registers under.
pub(crate) fn extension_name(path: &std::path::Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn init_waits_for_every_external_extension_and_invoke_for_every_next() {
        let ext = Arc::new(Extensions::new(vec!["a".into()]));
        assert_eq!(
            ext.register("", &[]).unwrap_err().error_type,
            "Extension.InvalidExtensionName"
        );
        assert_eq!(
            ext.register("internal", &["SHUTDOWN".into()])
                .unwrap_err()
                .error_type,
            "Extension.InvalidEventType"
        );
        let id = ext
            .register("a", &["INVOKE".into(), "SHUTDOWN".into()])
            .unwrap();
        // Registered but not waiting yet: init is not over.
        let init = tokio::spawn({
            let ext = ext.clone();
            async move { ext.wait_init().await }
        });
        tokio::task::yield_now().await;
        assert!(!init.is_finished());
        let next = tokio::spawn({
            let ext = ext.clone();
            let id = id.clone();
            async move { ext.next(&id).await }
        });
        assert!(init.await.unwrap());
        assert_eq!(
            ext.register("b", &[]).unwrap_err().error_type,
            "Extension.RegistrationClosed"
        );
        ext.invoke("req-1", 42, "arn", "Root=1");
        let event = next.await.unwrap().unwrap();
        assert_eq!(event["eventType"], "INVOKE");
        assert_eq!(event["requestId"], "req-1");
        // Busy with the INVOKE until it asks again.
        let soon = tokio::time::Instant::now() + Duration::from_millis(1);
        assert!(!ext.wait_idle(soon).await);
        let again = tokio::spawn({
            let ext = ext.clone();
            let id = id.clone();
            async move { ext.next(&id).await }
        });
        let later = tokio::time::Instant::now() + Duration::from_secs(30);
        assert!(ext.wait_idle(later).await);
        ext.shutdown(ShutdownReason::Timeout, 7);
        let event = again.await.unwrap().unwrap();
        assert_eq!(event["eventType"], "SHUTDOWN");
        assert_eq!(event["shutdownReason"], "timeout");
        assert_eq!(event["deadlineMs"], 7);
        // After exit/error (or init/error) nothing more is delivered.
        assert!(ext.failed(&id).is_ok());
        assert_eq!(
            ext.next(&id).await.unwrap_err().error_type,
            "Extension.InvalidExtensionState"
        );
    }
}
