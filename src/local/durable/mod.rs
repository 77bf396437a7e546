//! The durable execution service under `cargo fn watch` (issue #29): what
//! Lambda does for a function with a `DurableConfig`, on the machine.
//!
//! Invoking a durable function starts an execution; the service invokes
//! the function with the durable envelope (execution ARN, checkpoint token,
//! the recorded operations), takes its checkpoints, and invokes it again
//! whenever something it waits for happens: a wait's timer, a step's next
//! attempt, a callback completed from outside, a chained invoke of another
//! local function. The history is kept here and is authoritative.
//!
//! Files: `store.rs` the executions as data and the checkpoint rules
//! (pure), `clock.rs` the clock timers are read on (real or fast,
//! skippable), `api.rs` the Lambda API operations and the Invoke API's
//! durable start on the emulator's address, `run.rs` the loop that drives
//! one execution. Imports run `run` -> `api` -> `store` -> `clock`; this
//! file holds the shared state. It invokes functions only through
//! [`Invoker`]; the emulator knows nothing of it.

pub mod api;
pub mod clock;
mod run;
pub mod store;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use axum::extract::Request;
use base64::Engine;
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{Durable, FunctionConfig};
use crate::emulator::{Emulator, FrontHook, Invoker, LOCAL_ACCOUNT_ID};
use crate::ui::Ui;
use clock::{ClockMode, DurableClock};
use store::{CallbackOutcome, Execution, Refusal, SideJob};

/// What the service needs from the running emulator.
#[derive(Clone)]
struct Attached {
    invoker: Invoker,
    ui: Ui,
}

struct Inner {
    clock: DurableClock,
    /// Durable functions by name, as the current generation configures them.
    functions: RwLock<BTreeMap<String, Durable>>,
    executions: Mutex<Vec<Execution>>,
    /// Callback id -> execution ARN.
    callbacks: Mutex<HashMap<String, String>>,
    /// Bumped on every change, so the loops and waiters look again.
    changes: watch::Sender<u64>,
    attached: RwLock<Option<Attached>>,
    region: RwLock<String>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

/// The durable execution service of one watch run (cheap to clone).
#[derive(Clone)]
pub struct DurableService {
    inner: Arc<Inner>,
}

impl DurableService {
    pub fn new(mode: ClockMode) -> DurableService {
        DurableService {
            inner: Arc::new(Inner {
                clock: DurableClock::new(mode),
                functions: RwLock::new(BTreeMap::new()),
                executions: Mutex::new(Vec::new()),
                callbacks: Mutex::new(HashMap::new()),
                changes: watch::Sender::new(0),
                attached: RwLock::new(None),
                region: RwLock::new("us-east-1".into()),
                tasks: Mutex::new(Vec::new()),
            }),
        }
    }

    pub fn clock(&self) -> &DurableClock {
        &self.inner.clock
    }

    /// Attaches to the running emulator: executions invoke through it.
    /// Says where the SDK's Lambda client is pointed when a function is
    /// durable.
    pub fn attach(&self, emulator: &Emulator, ui: Ui) {
        let invoker = emulator.invoker();
        *self.inner.region.write().expect("region") = invoker.region().to_string();
        *self.inner.attached.write().expect("attached") = Some(Attached { invoker, ui });
        if !self.inner.functions.read().expect("functions").is_empty() {
            ui.status(
                "Durable",
                format!(
                    "AWS_ENDPOINT_URL_LAMBDA={} (durable executions, clock {})",
                    emulator.endpoint(),
                    match self.inner.clock.mode() {
                        ClockMode::Real => "real",
                        ClockMode::Fast => "fast",
                    }
                ),
            );
        }
    }

    /// The durable functions of a generation (others are invoked as usual).
    pub fn serve(&self, configs: &[FunctionConfig]) {
        let map = configs
            .iter()
            .filter_map(|c| c.durable.map(|d| (c.name.clone(), d)))
            .collect();
        *self.inner.functions.write().expect("functions") = map;
    }

    /// The variables a durable function gets under watch so the SDK's
    /// Lambda client reaches this service: its endpoint, and placeholder
    /// credentials unless real ones are given (`--aws-credentials`).
    pub fn function_env(endpoint: &str, env: &BTreeMap<String, String>) -> Vec<(String, String)> {
        let mut out = vec![("AWS_ENDPOINT_URL_LAMBDA".to_string(), endpoint.to_string())];
        if !env.contains_key("AWS_ACCESS_KEY_ID") {
            out.push(("AWS_ACCESS_KEY_ID".into(), "cargo-fn-local".into()));
            out.push(("AWS_SECRET_ACCESS_KEY".into(), "cargo-fn-local".into()));
        }
        out
    }

    pub fn durable_config(&self, function: &str) -> Option<Durable> {
        self.inner
            .functions
            .read()
            .expect("functions")
            .get(function)
            .copied()
    }

    /// The front hook: durable operations here, the rest to `next`.
    pub fn front(&self, next: FrontHook) -> FrontHook {
        let me = self.clone();
        Arc::new(move |req: Request| {
            let (me, next) = (me.clone(), next.clone());
            Box::pin(async move {
                match api::serve(&me, req).await {
                    Ok(resp) => Ok(resp),
                    Err(req) => next(req).await,
                }
            })
        })
    }

    /// Stops driving executions (they stay readable until watch ends).
    pub fn stop(&self) {
        for task in self.inner.tasks.lock().expect("tasks").drain(..) {
            task.abort();
        }
    }

    fn changed(&self) {
        self.inner.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn attached(&self) -> Option<Attached> {
        self.inner.attached.read().expect("attached").clone()
    }

    /// Ended executions past their retention are forgotten.
    fn purge(&self, executions: &mut Vec<Execution>) {
        let now = self.inner.clock.now();
        executions.retain(|ex| {
            ex.end
                .is_none_or(|end| now < end + f64::from(ex.retention_days) * 86_400.0)
        });
    }

    /// Runs `f` on the execution `arn` (read only).
    pub fn read<T>(
        &self,
        arn: &str,
        f: impl FnOnce(&Execution) -> Result<T, Refusal>,
    ) -> Result<T, Refusal> {
        let mut all = self.inner.executions.lock().expect("executions");
        self.purge(&mut all);
        let ex = all
            .iter()
            .find(|e| e.arn == arn)
            .ok_or_else(|| Refusal::not_found(format!("Durable execution not found: {arn}")))?;
        f(ex)
    }

    /// Runs `f` on the execution `arn` and tells the waiters.
    fn update<T>(
        &self,
        arn: &str,
        f: impl FnOnce(&mut Execution, f64) -> Result<T, Refusal>,
    ) -> Result<T, Refusal> {
        let out = self.update_quietly(arn, f);
        self.changed();
        out
    }

    /// [`Self::update`] without telling anyone: for the loop's own look
    /// at its execution, which would otherwise wake itself forever.
    fn update_quietly<T>(
        &self,
        arn: &str,
        f: impl FnOnce(&mut Execution, f64) -> Result<T, Refusal>,
    ) -> Result<T, Refusal> {
        let now = self.inner.clock.now();
        let mut all = self.inner.executions.lock().expect("executions");
        let ex = all
            .iter_mut()
            .find(|e| e.arn == arn)
            .ok_or_else(|| Refusal::not_found(format!("Durable execution not found: {arn}")))?;
        f(ex, now)
    }

    /// Snapshots of the executions of `function` that `keep` accepts.
    pub fn executions_of(
        &self,
        function: &str,
        keep: impl Fn(&Execution) -> bool,
    ) -> Vec<Execution> {
        let mut all = self.inner.executions.lock().expect("executions");
        self.purge(&mut all);
        all.iter()
            .filter(|e| e.function == function && keep(e))
            .cloned()
            .collect()
    }

    /// Starts an execution of `function` (or finds the one `name` already
    /// started with the same input, as Lambda's idempotent start does).
    pub fn start_execution(
        &self,
        function: &str,
        name: Option<String>,
        input: String,
    ) -> Result<String, Refusal> {
        let config = self
            .durable_config(function)
            .ok_or_else(|| Refusal::not_found(format!("Function not found: {function}")))?;
        let region = self.inner.region.read().expect("region").clone();
        let function_arn =
            format!("arn:aws:lambda:{region}:{LOCAL_ACCOUNT_ID}:function:{function}:$LATEST");
        let id = uuid::Uuid::new_v4().to_string();
        let name = name.unwrap_or_else(|| id.clone());
        let arn = format!("{function_arn}/durable-execution/{name}/{id}");
        {
            let mut all = self.inner.executions.lock().expect("executions");
            self.purge(&mut all);
            if let Some(same) = all
                .iter()
                .find(|e| e.function == function && e.name == name)
            {
                if same.input == input {
                    return Ok(same.arn.clone());
                }
                return Err(Refusal {
                    status: 409,
                    code: "DurableExecutionAlreadyStartedException",
                    message: format!(
                        "a durable execution named `{name}` of {function} already exists with another input"
                    ),
                });
            }
            let now = self.inner.clock.now();
            all.push(Execution::new(
                arn.clone(),
                name,
                function.to_string(),
                function_arn,
                input,
                config.execution_timeout,
                config.retention_days,
                now,
            ));
        }
        self.changed();
        let task = tokio::spawn(run::drive(self.clone(), arn.clone()));
        self.inner.tasks.lock().expect("tasks").push(task);
        Ok(arn)
    }

    /// Waits until the execution ends; its final state (none if the
    /// service stopped or forgot it).
    pub async fn wait_for_end(&self, arn: &str) -> Option<Execution> {
        let mut changes = self.inner.changes.subscribe();
        loop {
            changes.borrow_and_update();
            match self.read(arn, |ex| Ok(ex.clone())) {
                Ok(ex) if !ex.running() => return Some(ex),
                Ok(_) => {}
                Err(_) => return None,
            }
            if changes.changed().await.is_err() {
                return None;
            }
        }
    }

    /// `CheckpointDurableExecution`.
    pub fn checkpoint(&self, arn: &str, token: &str, updates: &[Value]) -> Result<Value, Refusal> {
        let mut new_ids = Vec::new();
        let (answer, jobs) = self.update(arn, |ex, now| {
            let mut next_id = || {
                let id = callback_id(arn);
                new_ids.push(id.clone());
                id
            };
            ex.checkpoint(token, updates, new_token(), now, &mut next_id)
        })?;
        {
            let mut callbacks = self.inner.callbacks.lock().expect("callbacks");
            for id in new_ids {
                callbacks.insert(id, arn.to_string());
            }
        }
        for job in jobs {
            let SideJob::ChainedInvoke {
                op_id,
                function,
                payload,
            } = job;
            let task = tokio::spawn(run::chained_invoke(
                self.clone(),
                arn.to_string(),
                op_id,
                function,
                payload,
            ));
            self.inner.tasks.lock().expect("tasks").push(task);
        }
        Ok(answer)
    }

    /// `SendDurableExecutionCallbackSuccess` / `Failure` / `Heartbeat`.
    pub fn complete_callback(&self, id: &str, outcome: CallbackOutcome) -> Result<(), Refusal> {
        let arn = self
            .inner
            .callbacks
            .lock()
            .expect("callbacks")
            .get(id)
            .cloned()
            .ok_or_else(|| Refusal::not_found(format!("Callback not found: {id}")))?;
        self.update(&arn, |ex, now| ex.complete_callback(id, outcome, now))
    }

    /// `StopDurableExecution`: the execution ends STOPPED with `error`.
    pub fn stop_execution(&self, arn: &str, error: Option<Value>) -> Result<Value, Refusal> {
        self.update(arn, |ex, now| {
            if !ex.running() {
                return Err(Refusal::invalid(format!(
                    "the durable execution has already ended ({})",
                    ex.status.as_str()
                )));
            }
            let error = error.unwrap_or_else(|| {
                serde_json::json!({
                    "ErrorType": "Stopped",
                    "ErrorMessage": "the execution was stopped (StopDurableExecution)",
                })
            });
            ex.finish(store::ExecStatus::Stopped, None, Some(error), now);
            Ok(serde_json::json!({ "StopTimestamp": now }))
        })
    }

    /// Skips the clock to the next wait or retry timer of any running
    /// execution (never to a timeout: skipping time should not fail what
    /// waits for the outside); the seconds skipped.
    pub fn advance(&self) -> f64 {
        let next = {
            let all = self.inner.executions.lock().expect("executions");
            all.iter()
                .filter_map(|ex| ex.next_timer())
                .min_by(f64::total_cmp)
        };
        let skipped = next.map_or(0.0, |t| self.inner.clock.skip_to(t));
        self.changed();
        skipped
    }
}

/// A fresh checkpoint token: opaque, unguessable.
fn new_token() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(uuid::Uuid::new_v4().as_bytes().repeat(2))
}

/// A callback id: opaque and URL-safe (it travels in a path), naming no
/// secret.
fn callback_id(arn: &str) -> String {
    let raw = format!("{}:{}", arn.len(), uuid::Uuid::new_v4());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}
