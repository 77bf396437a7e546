//! Durable executions as data: each execution's operations (the state the
//! SDK replays from), its history events, its checkpoint token, and the
//! rules a checkpoint must obey. Pure: no I/O, no clock of its own (every
//! change takes `now`), rendered in the Lambda API's JSON shapes
//! (`Operation`, `Event`, `Execution`).
//!
//! The store is authoritative: an update that contradicts what is recorded
//! (another type, sub-type or name under a recorded id, a change to a
//! finished operation) is refused whole, so a replay that diverges fails
//! as on AWS instead of rewriting the history.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::clock::Seconds;

/// The largest first page of operations put in an invocation's envelope
/// (the rest are read with `GetDurableExecutionState`, as on AWS).
const ENVELOPE_PAGE_BYTES: usize = 256 * 1024;
/// Operations per `GetDurableExecutionState` page when none is asked.
pub const STATE_PAGE: usize = 100;

/// An execution's status (`ExecutionStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecStatus {
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Stopped,
}

impl ExecStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ExecStatus::Running => "RUNNING",
            ExecStatus::Succeeded => "SUCCEEDED",
            ExecStatus::Failed => "FAILED",
            ExecStatus::TimedOut => "TIMED_OUT",
            ExecStatus::Stopped => "STOPPED",
        }
    }

    pub fn parse(s: &str) -> Option<ExecStatus> {
        [
            ExecStatus::Running,
            ExecStatus::Succeeded,
            ExecStatus::Failed,
            ExecStatus::TimedOut,
            ExecStatus::Stopped,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }
}

/// Operation types (`OperationType`).
pub const TYPES: &[&str] = &[
    "EXECUTION",
    "STEP",
    "WAIT",
    "CALLBACK",
    "CHAINED_INVOKE",
    "CONTEXT",
];
/// Operation actions (`OperationAction`).
const ACTIONS: &[&str] = &["START", "SUCCEED", "FAIL", "RETRY", "CANCEL"];

/// One operation of an execution (`Operation`).
#[derive(Debug, Clone, PartialEq)]
pub struct Op {
    pub id: String,
    pub parent_id: Option<String>,
    pub name: Option<String>,
    pub op_type: String,
    pub sub_type: Option<String>,
    /// STARTED, PENDING, READY, SUCCEEDED, FAILED, CANCELLED, TIMED_OUT, STOPPED.
    pub status: String,
    pub start: Seconds,
    pub end: Option<Seconds>,
    pub result: Option<String>,
    pub error: Option<Value>,
    /// Failed attempts so far (a step's `Attempt`).
    pub attempt: i64,
    pub next_attempt: Option<Seconds>,
    pub wait_end: Option<Seconds>,
    pub callback_id: Option<String>,
    pub callback_deadline: Option<Seconds>,
    pub heartbeat_timeout: Option<f64>,
    pub heartbeat_deadline: Option<Seconds>,
    pub replay_children: bool,
    /// The EXECUTION operation's input.
    pub input: Option<String>,
}

impl Op {
    fn new(id: &str, op_type: &str, now: Seconds) -> Op {
        Op {
            id: id.to_string(),
            parent_id: None,
            name: None,
            op_type: op_type.to_string(),
            sub_type: None,
            status: "STARTED".into(),
            start: now,
            end: None,
            result: None,
            error: None,
            attempt: 0,
            next_attempt: None,
            wait_end: None,
            callback_id: None,
            callback_deadline: None,
            heartbeat_timeout: None,
            heartbeat_deadline: None,
            replay_children: false,
            input: None,
        }
    }

    pub fn finished(&self) -> bool {
        matches!(
            self.status.as_str(),
            "SUCCEEDED" | "FAILED" | "CANCELLED" | "TIMED_OUT" | "STOPPED"
        )
    }

    /// The `Operation` JSON the SDK reads (envelope and API alike).
    pub fn to_json(&self) -> Value {
        let mut o = Map::new();
        o.insert("Id".into(), json!(self.id));
        if let Some(p) = &self.parent_id {
            o.insert("ParentId".into(), json!(p));
        }
        if let Some(n) = &self.name {
            o.insert("Name".into(), json!(n));
        }
        o.insert("Type".into(), json!(self.op_type));
        if let Some(s) = &self.sub_type {
            o.insert("SubType".into(), json!(s));
        }
        o.insert("StartTimestamp".into(), json!(self.start));
        if let Some(e) = self.end {
            o.insert("EndTimestamp".into(), json!(e));
        }
        o.insert("Status".into(), json!(self.status));
        let mut d = Map::new();
        if let Some(r) = &self.result {
            d.insert("Result".into(), json!(r));
        }
        if let Some(e) = &self.error {
            d.insert("Error".into(), e.clone());
        }
        match self.op_type.as_str() {
            "EXECUTION" => {
                let input = self.input.clone().unwrap_or_default();
                o.insert("ExecutionDetails".into(), json!({ "InputPayload": input }));
            }
            "STEP" => {
                d.insert("Attempt".into(), json!(self.attempt));
                if let Some(t) = self.next_attempt {
                    d.insert("NextAttemptTimestamp".into(), json!(t));
                }
                o.insert("StepDetails".into(), Value::Object(d));
            }
            "WAIT" => {
                if let Some(t) = self.wait_end {
                    o.insert("WaitDetails".into(), json!({ "ScheduledEndTimestamp": t }));
                }
            }
            "CALLBACK" => {
                if let Some(id) = &self.callback_id {
                    d.insert("CallbackId".into(), json!(id));
                }
                o.insert("CallbackDetails".into(), Value::Object(d));
            }
            "CHAINED_INVOKE" => {
                o.insert("ChainedInvokeDetails".into(), Value::Object(d));
            }
            "CONTEXT" => {
                if self.replay_children {
                    d.insert("ReplayChildren".into(), json!(true));
                }
                o.insert("ContextDetails".into(), Value::Object(d));
            }
            _ => {}
        }
        Value::Object(o)
    }
}

/// Work the service must do outside the store after a checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub enum SideJob {
    /// Run a chained invoke: (operation id, function, payload).
    ChainedInvoke {
        op_id: String,
        function: String,
        payload: String,
    },
}

/// A refused request: the Lambda API error type and message.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl Refusal {
    pub fn invalid(message: impl Into<String>) -> Refusal {
        Refusal {
            status: 400,
            code: "InvalidParameterValueException",
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> Refusal {
        Refusal {
            status: 404,
            code: "ResourceNotFoundException",
            message: message.into(),
        }
    }

    /// What the SDK recognises as a stale token (and retries by failing
    /// the invocation: the service re-invokes with a fresh one).
    fn stale(message: &str) -> Refusal {
        Refusal::invalid(format!("Invalid Checkpoint Token: {message}"))
    }
}

/// One durable execution.
#[derive(Debug, Clone)]
pub struct Execution {
    pub arn: String,
    pub name: String,
    pub function: String,
    pub function_arn: String,
    pub input: String,
    pub status: ExecStatus,
    pub start: Seconds,
    pub end: Option<Seconds>,
    pub result: Option<String>,
    pub error: Option<Value>,
    /// Seconds the execution may run.
    pub timeout: u32,
    pub retention_days: u32,
    /// Operations in the order they were first recorded; the first is
    /// the EXECUTION operation.
    pub ops: Vec<Op>,
    pub events: Vec<Value>,
    /// The one token a checkpoint may use now (none between invocations).
    pub token: Option<String>,
    /// Something happened (a timer, a callback, a chained invoke) that
    /// the function has not seen yet: invoke it again.
    pub needs_invoke: bool,
    /// Invocations made so far.
    pub invocations: u32,
}

impl Execution {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        arn: String,
        name: String,
        function: String,
        function_arn: String,
        input: String,
        timeout: u32,
        retention_days: u32,
        now: Seconds,
    ) -> Execution {
        let mut exec_op = Op::new(&execution_op_id(&arn), "EXECUTION", now);
        exec_op.name = Some(name.clone());
        exec_op.input = Some(input.clone());
        let mut ex = Execution {
            arn,
            name,
            function,
            function_arn,
            input: input.clone(),
            status: ExecStatus::Running,
            start: now,
            end: None,
            result: None,
            error: None,
            timeout,
            retention_days,
            ops: vec![exec_op],
            events: Vec::new(),
            token: None,
            needs_invoke: true,
            invocations: 0,
        };
        let id = ex.ops[0].id.clone();
        ex.event(
            "ExecutionStarted",
            now,
            &id,
            None,
            None,
            None,
            json!({ "Input": { "Payload": input }, "ExecutionTimeout": timeout }),
        );
        ex
    }

    pub fn running(&self) -> bool {
        self.status == ExecStatus::Running
    }

    /// When the execution times out.
    pub fn deadline(&self) -> Seconds {
        self.start + f64::from(self.timeout)
    }

    fn op_index(&self, id: &str) -> Option<usize> {
        self.ops.iter().position(|o| o.id == id)
    }

    pub fn op(&self, id: &str) -> Option<&Op> {
        self.ops.iter().find(|o| o.id == id)
    }

    /// Appends a history event.
    #[allow(clippy::too_many_arguments)]
    fn event(
        &mut self,
        event_type: &str,
        now: Seconds,
        id: &str,
        name: Option<&str>,
        sub_type: Option<&str>,
        parent_id: Option<&str>,
        details: Value,
    ) {
        let mut e = Map::new();
        e.insert("EventType".into(), json!(event_type));
        if let Some(s) = sub_type {
            e.insert("SubType".into(), json!(s));
        }
        e.insert("EventId".into(), json!(self.events.len() + 1));
        e.insert("Id".into(), json!(id));
        if let Some(n) = name {
            e.insert("Name".into(), json!(n));
        }
        e.insert("EventTimestamp".into(), json!(now));
        if let Some(p) = parent_id {
            e.insert("ParentId".into(), json!(p));
        }
        if details.as_object().is_some_and(|d| !d.is_empty()) || event_type != "InvocationCompleted"
        {
            e.insert(format!("{event_type}Details"), details);
        }
        self.events.push(Value::Object(e));
    }

    /// An operation's event, named by its type family and `what`.
    fn op_event(&mut self, index: usize, what: &str, now: Seconds, details: Value) {
        let op = &self.ops[index];
        let family = match op.op_type.as_str() {
            "STEP" => "Step",
            "WAIT" => "Wait",
            "CALLBACK" => "Callback",
            "CHAINED_INVOKE" => "ChainedInvoke",
            "CONTEXT" => "Context",
            _ => "Execution",
        };
        let (id, name, sub, parent) = (
            op.id.clone(),
            op.name.clone(),
            op.sub_type.clone(),
            op.parent_id.clone(),
        );
        self.event(
            &format!("{family}{what}"),
            now,
            &id,
            name.as_deref(),
            sub.as_deref(),
            parent.as_deref(),
            details,
        );
    }

    /// Starts an invocation: a fresh token (the last one is stale from now
    /// on) and the envelope the function is invoked with.
    pub fn begin_invocation(&mut self, token: String) -> Value {
        self.token = Some(token.clone());
        self.needs_invoke = false;
        self.invocations += 1;
        let mut page = Vec::new();
        let mut bytes = 0;
        for op in &self.ops {
            let v = op.to_json();
            bytes += v.to_string().len();
            if !page.is_empty() && bytes > ENVELOPE_PAGE_BYTES {
                break;
            }
            page.push(v);
        }
        let mut state = Map::new();
        if page.len() < self.ops.len() {
            state.insert("NextMarker".into(), json!(page.len().to_string()));
        }
        state.insert("Operations".into(), Value::Array(page));
        json!({
            "DurableExecutionArn": self.arn,
            "CheckpointToken": token,
            "InitialExecutionState": state,
        })
    }

    /// Records an invocation's end in the history.
    pub fn invocation_completed(
        &mut self,
        started: Seconds,
        now: Seconds,
        request_id: &str,
        error: Option<Value>,
    ) {
        let id = self.ops[0].id.clone();
        let mut d = json!({
            "StartTimestamp": started,
            "EndTimestamp": now,
            "RequestId": request_id,
        });
        if let Some(e) = error {
            d["Error"] = json!({ "Payload": e, "Truncated": false });
        }
        self.event("InvocationCompleted", now, &id, None, None, None, d);
    }

    fn check_token(&self, token: &str) -> Result<(), Refusal> {
        if !self.running() {
            return Err(Refusal::stale(&format!(
                "the execution has ended ({})",
                self.status.as_str()
            )));
        }
        match &self.token {
            Some(t) if t == token => Ok(()),
            _ => Err(Refusal::stale(
                "the token was replaced by a later checkpoint or invocation",
            )),
        }
    }

    /// A page of operations for `GetDurableExecutionState`.
    pub fn state_page(
        &self,
        token: &str,
        marker: Option<&str>,
        max: usize,
    ) -> Result<Value, Refusal> {
        self.check_token(token)?;
        page(&self.ops, marker, max, Op::to_json, "Operations")
    }

    /// `CheckpointDurableExecution`: checks every update, then applies them
    /// all (or none) and rotates the token.
    pub fn checkpoint(
        &mut self,
        token: &str,
        updates: &[Value],
        new_token: String,
        now: Seconds,
        callback_ids: &mut dyn FnMut() -> String,
    ) -> Result<(Value, Vec<SideJob>), Refusal> {
        self.check_token(token)?;
        let parsed = updates
            .iter()
            .map(Update::parse)
            .collect::<Result<Vec<_>, _>>()?;
        self.check_updates(&parsed)?;
        let mut touched: Vec<String> = Vec::new();
        let mut jobs = Vec::new();
        for u in &parsed {
            if let Some(job) = self.apply(u, now, callback_ids) {
                jobs.push(job);
            }
            if !touched.contains(&u.id) {
                touched.push(u.id.clone());
            }
        }
        self.token = Some(new_token.clone());
        let ops: Vec<Value> = touched
            .iter()
            .filter_map(|id| self.op(id))
            .map(Op::to_json)
            .collect();
        Ok((
            json!({
                "CheckpointToken": new_token,
                "NewExecutionState": { "Operations": ops },
            }),
            jobs,
        ))
    }

    /// The history is authoritative: an update must agree with what is
    /// recorded under its id, and may not change a finished operation.
    fn check_updates(&self, updates: &[Update]) -> Result<(), Refusal> {
        // Simulate statuses through the batch (a START then a SUCCEED of
        // one step in one call is fine).
        let mut status: BTreeMap<&str, (&str, bool)> = BTreeMap::new();
        for u in updates {
            let recorded = self.op(&u.id);
            if let Some(op) = recorded {
                let diverged = op.op_type != u.op_type
                    || (u.sub_type.is_some() && op.sub_type.is_some() && op.sub_type != u.sub_type)
                    || (u.name.is_some() && op.name.is_some() && op.name != u.name);
                if diverged {
                    return Err(Refusal::invalid(format!(
                        "operation {} is recorded as {} {}{}; this checkpoint says {} {}{}: the replay diverged from the execution's history (non-deterministic code?)",
                        u.id,
                        op.op_type,
                        op.sub_type.as_deref().unwrap_or(""),
                        op.name
                            .as_deref()
                            .map(|n| format!(" `{n}`"))
                            .unwrap_or_default(),
                        u.op_type,
                        u.sub_type.as_deref().unwrap_or(""),
                        u.name
                            .as_deref()
                            .map(|n| format!(" `{n}`"))
                            .unwrap_or_default(),
                    )));
                }
            }
            let finished = status
                .get(u.id.as_str())
                .map(|(_, f)| *f)
                .or(recorded.map(Op::finished))
                .unwrap_or(false);
            if finished && u.op_type != "EXECUTION" {
                return Err(Refusal::invalid(format!(
                    "operation {} ({}) has already finished; {} refused: the history is final (the replay diverged?)",
                    u.id, u.op_type, u.action
                )));
            }
            let ends = matches!(u.action.as_str(), "SUCCEED" | "FAIL" | "CANCEL");
            status.insert(&u.id, (&u.action, ends));
        }
        Ok(())
    }

    fn apply(
        &mut self,
        u: &Update,
        now: Seconds,
        callback_ids: &mut dyn FnMut() -> String,
    ) -> Option<SideJob> {
        if u.op_type == "EXECUTION" {
            match u.action.as_str() {
                "SUCCEED" => self.finish(ExecStatus::Succeeded, u.payload.clone(), None, now),
                "FAIL" => self.finish(ExecStatus::Failed, None, u.error.clone(), now),
                _ => {}
            }
            return None;
        }
        let index = match self.op_index(&u.id) {
            Some(i) => i,
            None => {
                let mut op = Op::new(&u.id, &u.op_type, now);
                op.parent_id = u.parent_id.clone();
                op.name = u.name.clone();
                op.sub_type = u.sub_type.clone();
                self.ops.push(op);
                self.ops.len() - 1
            }
        };
        let mut job = None;
        let op = &mut self.ops[index];
        if op.name.is_none() {
            op.name = u.name.clone();
        }
        if op.sub_type.is_none() {
            op.sub_type = u.sub_type.clone();
        }
        match u.action.as_str() {
            "START" => {
                op.status = "STARTED".into();
                op.result = None;
                op.error = None;
                op.next_attempt = None;
                let details = match op.op_type.as_str() {
                    "WAIT" => {
                        let secs = u.wait_seconds.unwrap_or(0).max(0) as f64;
                        op.wait_end = Some(now + secs);
                        json!({ "Duration": secs as i64, "ScheduledEndTimestamp": now + secs })
                    }
                    "CALLBACK" => {
                        let id = callback_ids();
                        op.callback_id = Some(id.clone());
                        let (timeout, heartbeat) = u.callback_timeouts;
                        op.callback_deadline = (timeout > 0).then_some(now + timeout as f64);
                        op.heartbeat_timeout = (heartbeat > 0).then_some(heartbeat as f64);
                        op.heartbeat_deadline = (heartbeat > 0).then_some(now + heartbeat as f64);
                        json!({ "CallbackId": id, "Timeout": timeout, "HeartbeatTimeout": heartbeat })
                    }
                    "CHAINED_INVOKE" => {
                        let function = u.function_name.clone().unwrap_or_default();
                        let payload = u.payload.clone().unwrap_or_else(|| "{}".into());
                        job = Some(SideJob::ChainedInvoke {
                            op_id: op.id.clone(),
                            function: function.clone(),
                            payload: payload.clone(),
                        });
                        json!({
                            "FunctionName": function,
                            "Input": { "Payload": payload, "Truncated": false },
                            "ExecutedVersion": "$LATEST",
                        })
                    }
                    _ => json!({}),
                };
                self.op_event(index, "Started", now, details);
            }
            "SUCCEED" => {
                op.status = "SUCCEEDED".into();
                op.end = Some(now);
                op.result = u.payload.clone();
                op.replay_children = u.replay_children;
                let current = op.attempt + 1;
                let is_step = op.op_type == "STEP";
                let mut d = json!({ "Result": { "Payload": u.payload, "Truncated": false } });
                if is_step {
                    d["RetryDetails"] = json!({ "CurrentAttempt": current });
                }
                self.op_event(index, "Succeeded", now, d);
            }
            "FAIL" => {
                op.status = "FAILED".into();
                op.end = Some(now);
                op.error = u.error.clone();
                let current = op.attempt + 1;
                let is_step = op.op_type == "STEP";
                let mut d = json!({ "Error": { "Payload": u.error, "Truncated": false } });
                if is_step {
                    d["RetryDetails"] = json!({ "CurrentAttempt": current });
                }
                self.op_event(index, "Failed", now, d);
            }
            "RETRY" => {
                let delay = u.retry_delay.unwrap_or(1).max(0) as f64;
                let current = op.attempt + 1;
                op.status = "PENDING".into();
                op.attempt += 1;
                op.next_attempt = Some(now + delay);
                op.error = u.error.clone();
                if u.payload.is_some() {
                    op.result = u.payload.clone();
                }
                let d = json!({
                    "Error": { "Payload": u.error, "Truncated": false },
                    "RetryDetails": { "CurrentAttempt": current, "NextAttemptDelaySeconds": delay as i64 },
                });
                self.op_event(index, "Failed", now, d);
            }
            "CANCEL" => {
                op.status = "CANCELLED".into();
                op.end = Some(now);
                self.op_event(index, "Cancelled", now, json!({}));
            }
            _ => {}
        }
        job
    }

    /// Ends the execution (once): status, result or error, history.
    pub fn finish(
        &mut self,
        status: ExecStatus,
        result: Option<String>,
        error: Option<Value>,
        now: Seconds,
    ) {
        if !self.running() {
            return;
        }
        self.status = status;
        self.end = Some(now);
        self.result = result.clone();
        self.error = error.clone();
        self.token = None;
        let op = &mut self.ops[0];
        op.status = status.as_str().into();
        op.end = Some(now);
        let id = op.id.clone();
        let (what, details) = match status {
            ExecStatus::Succeeded => (
                "ExecutionSucceeded",
                json!({ "Result": { "Payload": result, "Truncated": false } }),
            ),
            ExecStatus::Failed => (
                "ExecutionFailed",
                json!({ "Error": { "Payload": error, "Truncated": false } }),
            ),
            ExecStatus::TimedOut => (
                "ExecutionTimedOut",
                json!({ "Error": { "Payload": error, "Truncated": false } }),
            ),
            ExecStatus::Stopped => (
                "ExecutionStopped",
                json!({ "Error": { "Payload": error, "Truncated": false } }),
            ),
            ExecStatus::Running => return,
        };
        self.event(what, now, &id, None, None, None, details);
    }

    /// Fires what is due at `now`: finished waits, retry delays over,
    /// callbacks timed out, the execution's own timeout. True when the
    /// function must be invoked to see it.
    pub fn fire_due(&mut self, now: Seconds) -> bool {
        if !self.running() {
            return false;
        }
        if now >= self.deadline() {
            let error = json!({
                "ErrorType": "ExecutionTimedOut",
                "ErrorMessage": format!("the execution ran longer than its execution timeout of {} s", self.timeout),
            });
            self.finish(ExecStatus::TimedOut, None, Some(error), now);
            return false;
        }
        let mut fired = false;
        for i in 0..self.ops.len() {
            let op = &self.ops[i];
            match (op.op_type.as_str(), op.status.as_str()) {
                ("WAIT", "STARTED") if op.wait_end.is_some_and(|t| t <= now) => {
                    let duration = op.wait_end.unwrap_or(now) - op.start;
                    let op = &mut self.ops[i];
                    op.status = "SUCCEEDED".into();
                    op.end = Some(now);
                    self.op_event(
                        i,
                        "Succeeded",
                        now,
                        json!({ "Duration": duration.round() as i64 }),
                    );
                    fired = true;
                }
                ("STEP", "PENDING") if op.next_attempt.is_some_and(|t| t <= now) => {
                    let op = &mut self.ops[i];
                    op.status = "READY".into();
                    op.next_attempt = None;
                    fired = true;
                }
                ("CALLBACK", "STARTED") => {
                    let timed_out = op.callback_deadline.is_some_and(|t| t <= now);
                    let no_heartbeat = op.heartbeat_deadline.is_some_and(|t| t <= now);
                    if timed_out || no_heartbeat {
                        let (kind, message) = if timed_out {
                            ("Callback.Timeout", "the callback was not completed in time")
                        } else {
                            (
                                "Callback.HeartbeatTimeout",
                                "no heartbeat arrived within the heartbeat timeout",
                            )
                        };
                        let error = json!({ "ErrorType": kind, "ErrorMessage": message });
                        let op = &mut self.ops[i];
                        op.status = "TIMED_OUT".into();
                        op.end = Some(now);
                        op.error = Some(error.clone());
                        self.op_event(
                            i,
                            "TimedOut",
                            now,
                            json!({ "Error": { "Payload": error, "Truncated": false } }),
                        );
                        fired = true;
                    }
                }
                _ => {}
            }
        }
        if fired {
            self.needs_invoke = true;
        }
        fired
    }

    /// The next time something is due: (when, whether it is a timer the
    /// function asked for: a wait or a retry delay, which a fast clock
    /// skips to).
    pub fn next_due(&self) -> Option<(Seconds, bool)> {
        if !self.running() {
            return None;
        }
        let mut best: Option<(Seconds, bool)> = Some((self.deadline(), false));
        let mut consider = |t: Option<Seconds>, skippable: bool| {
            if let Some(t) = t
                && best.is_none_or(|(b, _)| t < b)
            {
                best = Some((t, skippable));
            }
        };
        for op in &self.ops {
            match (op.op_type.as_str(), op.status.as_str()) {
                ("WAIT", "STARTED") => consider(op.wait_end, true),
                ("STEP", "PENDING") => consider(op.next_attempt, true),
                ("CALLBACK", "STARTED") => {
                    consider(op.callback_deadline, false);
                    consider(op.heartbeat_deadline, false);
                }
                _ => {}
            }
        }
        best
    }

    /// The next wait's end or step's next attempt, if any.
    pub fn next_timer(&self) -> Option<Seconds> {
        if !self.running() {
            return None;
        }
        self.ops
            .iter()
            .filter_map(|op| match (op.op_type.as_str(), op.status.as_str()) {
                ("WAIT", "STARTED") => op.wait_end,
                ("STEP", "PENDING") => op.next_attempt,
                _ => None,
            })
            .min_by(f64::total_cmp)
    }

    /// A callback's outcome from outside (`SendDurableExecutionCallback*`).
    pub fn complete_callback(
        &mut self,
        callback_id: &str,
        outcome: CallbackOutcome,
        now: Seconds,
    ) -> Result<(), Refusal> {
        let Some(i) = self
            .ops
            .iter()
            .position(|o| o.callback_id.as_deref() == Some(callback_id))
        else {
            return Err(Refusal::not_found(format!(
                "no callback with id {callback_id}"
            )));
        };
        let op = &mut self.ops[i];
        if op.status == "TIMED_OUT" {
            return Err(Refusal {
                status: 400,
                code: "CallbackTimeoutException",
                message: format!("callback {callback_id} has timed out"),
            });
        }
        if op.finished() || !self.status.eq(&ExecStatus::Running) {
            return Err(Refusal::invalid(format!(
                "callback {callback_id} is already complete ({})",
                op.status
            )));
        }
        match outcome {
            CallbackOutcome::Heartbeat => {
                if let Some(h) = op.heartbeat_timeout {
                    op.heartbeat_deadline = Some(now + h);
                }
                return Ok(());
            }
            CallbackOutcome::Success(result) => self.settle(i, Ok(result), now),
            CallbackOutcome::Failure(error) => self.settle(i, Err(error), now),
        }
        Ok(())
    }

    /// A chained invoke's outcome.
    pub fn complete_chained(&mut self, op_id: &str, outcome: Result<String, Value>, now: Seconds) {
        let Some(i) = self.op_index(op_id) else {
            return;
        };
        if self.ops[i].finished() || !self.running() {
            return;
        }
        self.settle(i, outcome, now);
    }

    /// Ends operation `i` from the service's side (a callback answered, a
    /// chained invoke returned) and asks for the invocation whose replay
    /// lets the handler see it.
    fn settle(&mut self, i: usize, outcome: Result<String, Value>, now: Seconds) {
        let op = &mut self.ops[i];
        op.end = Some(now);
        let (what, details) = match outcome {
            Ok(result) => {
                op.status = "SUCCEEDED".into();
                op.result = Some(result.clone());
                (
                    "Succeeded",
                    json!({ "Result": { "Payload": result, "Truncated": false } }),
                )
            }
            Err(error) => {
                op.status = "FAILED".into();
                op.error = Some(error.clone());
                (
                    "Failed",
                    json!({ "Error": { "Payload": error, "Truncated": false } }),
                )
            }
        };
        self.op_event(i, what, now, details);
        self.needs_invoke = true;
    }

    /// `GetDurableExecution`.
    pub fn to_json(&self) -> Value {
        let mut o = self.summary();
        o["InputPayload"] = json!(self.input);
        if let Some(r) = &self.result {
            o["Result"] = json!(r);
        }
        if let Some(e) = &self.error {
            o["Error"] = e.clone();
        }
        o["Version"] = json!("$LATEST");
        o
    }

    /// One entry of `ListDurableExecutionsByFunction` (`Execution`).
    pub fn summary(&self) -> Value {
        let mut o = json!({
            "DurableExecutionArn": self.arn,
            "DurableExecutionName": self.name,
            "FunctionArn": self.function_arn,
            "Status": self.status.as_str(),
            "StartTimestamp": self.start,
        });
        if let Some(e) = self.end {
            o["EndTimestamp"] = json!(e);
        }
        o
    }

    /// `GetDurableExecutionHistory`: events, with their payloads only
    /// when asked (`IncludeExecutionData`).
    pub fn history(
        &self,
        include_data: bool,
        reverse: bool,
        marker: Option<&str>,
        max: usize,
    ) -> Result<Value, Refusal> {
        let mut events: Vec<Value> = self.events.clone();
        if !include_data {
            for e in &mut events {
                strip_payloads(e);
            }
        }
        if reverse {
            events.reverse();
        }
        page(&events, marker, max, |e: &Value| e.clone(), "Events")
    }
}

/// Drops `Payload` members (inputs, results, errors) from an event.
fn strip_payloads(v: &mut Value) {
    if let Value::Object(map) = v {
        map.remove("Payload");
        for (_, child) in map.iter_mut() {
            strip_payloads(child);
        }
    }
}

/// A page of `items` from `marker` (an offset), with `NextMarker`.
fn page<T>(
    items: &[T],
    marker: Option<&str>,
    max: usize,
    render: impl Fn(&T) -> Value,
    member: &str,
) -> Result<Value, Refusal> {
    let from = match marker {
        None | Some("") => 0,
        Some(m) => m
            .parse::<usize>()
            .ok()
            .filter(|n| *n <= items.len())
            .ok_or_else(|| Refusal::invalid(format!("invalid Marker `{m}`")))?,
    };
    let to = (from + max.max(1)).min(items.len());
    let mut out = Map::new();
    out.insert(
        member.into(),
        Value::Array(items[from..to].iter().map(render).collect()),
    );
    if to < items.len() {
        out.insert("NextMarker".into(), json!(to.to_string()));
    }
    Ok(Value::Object(out))
}

/// How a callback was completed from outside.
#[derive(Debug, Clone)]
pub enum CallbackOutcome {
    Success(String),
    Failure(Value),
    Heartbeat,
}

/// The EXECUTION operation's id: the execution's id (the ARN's last part).
fn execution_op_id(arn: &str) -> String {
    arn.rsplit('/').next().unwrap_or(arn).to_string()
}

/// One `OperationUpdate`, read and checked.
#[derive(Debug, Clone)]
struct Update {
    id: String,
    parent_id: Option<String>,
    name: Option<String>,
    op_type: String,
    sub_type: Option<String>,
    action: String,
    payload: Option<String>,
    error: Option<Value>,
    wait_seconds: Option<i64>,
    retry_delay: Option<i64>,
    callback_timeouts: (i64, i64),
    function_name: Option<String>,
    replay_children: bool,
}

impl Update {
    fn parse(v: &Value) -> Result<Update, Refusal> {
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(String::from);
        let id = s("Id")
            .filter(|i| !i.is_empty() && i.len() <= 64)
            .ok_or_else(|| Refusal::invalid("every update needs an Id of 1-64 characters"))?;
        let op_type = s("Type")
            .filter(|t| TYPES.contains(&t.as_str()))
            .ok_or_else(|| {
                Refusal::invalid(format!(
                    "update {id}: Type must be one of {}",
                    TYPES.join(", ")
                ))
            })?;
        let action = s("Action")
            .filter(|a| ACTIONS.contains(&a.as_str()))
            .ok_or_else(|| {
                Refusal::invalid(format!(
                    "update {id}: Action must be one of {}",
                    ACTIONS.join(", ")
                ))
            })?;
        let int = |obj: &str, k: &str| v.get(obj).and_then(|o| o.get(k)).and_then(Value::as_i64);
        let function_name = v
            .get("ChainedInvokeOptions")
            .and_then(|o| o.get("FunctionName"))
            .and_then(Value::as_str)
            .map(String::from);
        if op_type == "CHAINED_INVOKE" && action == "START" && function_name.is_none() {
            return Err(Refusal::invalid(format!(
                "update {id}: a CHAINED_INVOKE START needs ChainedInvokeOptions.FunctionName"
            )));
        }
        Ok(Update {
            parent_id: s("ParentId"),
            name: s("Name"),
            sub_type: s("SubType"),
            payload: s("Payload"),
            error: v.get("Error").cloned().filter(|e| !e.is_null()),
            wait_seconds: int("WaitOptions", "WaitSeconds"),
            retry_delay: int("StepOptions", "NextAttemptDelaySeconds"),
            callback_timeouts: (
                int("CallbackOptions", "TimeoutSeconds").unwrap_or(0),
                int("CallbackOptions", "HeartbeatTimeoutSeconds").unwrap_or(0),
            ),
            function_name,
            replay_children: v
                .get("ContextOptions")
                .and_then(|o| o.get("ReplayChildren"))
                .and_then(Value::as_bool)
                .unwrap_or(false),
            id,
            op_type,
            action,
        })
    }
}

#[cfg(test)]
mod tests;
