//! Local triggers: what `cargo fn watch` runs beside the emulator so
//! event-driven functions are invoked on the machine as AWS would invoke
//! them (issue #14).
//!
//! This module owns the shared shape: [`LocalTriggers`] (started by watch
//! from the configured triggers of each function, stopped on shutdown), the
//! dispatch of AWS JSON-protocol requests (`POST /` with an `X-Amz-Target`)
//! to the local services ([`JsonService`]) and the refusal of AWS calls
//! for services not served (so they never reach a function), the
//! [`Source`] trait every
//! trigger implements for its status and "fire now", and the status/fire
//! API routes. The services and pollers live in their own files (`sqs`,
//! `sqs_poller`, ...).
//!
//! It may use `emulator` (through [`Invoker`] and the emulator's generic
//! front hook) and `config`; the emulator knows nothing of it. Nothing here
//! talks to AWS.

pub mod durable;
pub mod events;
pub mod http_api;
pub mod kinesis;
pub mod s3;
pub mod schedule;
pub mod shard_log;
pub mod sqs;
pub mod sqs_poller;
pub mod stream_poller;
pub mod streams;

use std::sync::{Arc, Mutex, RwLock};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::config::{Trigger, TriggerKind};
use crate::emulator::{Emulator, EmulatorOptions, FrontHook, Invoker, LOCAL_ACCOUNT_ID};
use crate::ui::Ui;

/// Largest request body a local service reads (SQS batches are at most
/// 1 MiB of messages; Kinesis `PutRecords` 5 MiB plus base64).
const MAX_REQUEST: usize = 8 * 1024 * 1024;

/// The largest event a poller hands a function: Lambda's synchronous
/// payload limit, counted on the event as sent (after JSON escaping and
/// base64), the bound the emulator's Invoke API enforces.
pub const MAX_EVENT_BYTES: usize = crate::emulator::MAX_SYNC_REQUEST - 1;

/// The account and region every local resource lives in: the emulator's
/// (its account id, `--region`), the ones in the ARNs of its functions. Local
/// ARNs, queue URLs and records' `awsRegion` are built from this one value,
/// so a stream's ARN, a record's `eventSourceARN` and a failure record's
/// `functionArn` always agree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub account: String,
    pub region: String,
}

impl Scope {
    pub fn new(region: &str) -> Scope {
        Scope {
            account: LOCAL_ACCOUNT_ID.to_string(),
            region: region.to_string(),
        }
    }

    /// The scope of the emulator `invoker` invokes.
    pub fn of(invoker: &Invoker) -> Scope {
        Scope::new(invoker.region())
    }

    /// `arn:aws:<service>:<region>:<account>:<resource>`.
    pub fn arn(&self, service: &str, resource: &str) -> String {
        format!(
            "arn:aws:{service}:{}:{}:{resource}",
            self.region, self.account
        )
    }

    /// The ARN of a function the emulator serves (as its pool builds it).
    pub fn function_arn(&self, function: &str) -> String {
        self.arn("lambda", &format!("function:{function}"))
    }

    /// `arn` moved into this scope: its region and account replaced, the
    /// rest (service, resource) kept. A configured ARN names the real
    /// account; the local resource it stands for lives here.
    pub fn localize(&self, arn: &str) -> String {
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        match parts.as_slice() {
            ["arn", _, service, _, _, resource] => self.arn(service, resource),
            _ => arn.to_string(),
        }
    }
}

impl Default for Scope {
    /// The default emulator's scope.
    fn default() -> Self {
        Scope::new(&EmulatorOptions::default().region)
    }
}

/// An error as an AWS JSON-protocol service answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsError {
    pub status: u16,
    /// The `__type` member, as the service writes it (SQS:
    /// `com.amazonaws.sqs#QueueDoesNotExist`; Kinesis: `ResourceNotFoundException`).
    pub code: String,
    pub message: String,
    /// The `x-amzn-query-error` header (`Code;Sender`), which services that
    /// moved from the query protocol (SQS) send so older clients see their
    /// old error codes.
    pub query_error: Option<String>,
}

impl AwsError {
    pub fn new(status: u16, code: impl Into<String>, message: impl Into<String>) -> Self {
        AwsError {
            status,
            code: code.into(),
            message: message.into(),
            query_error: None,
        }
    }

    pub fn with_query_error(mut self, value: impl Into<String>) -> Self {
        self.query_error = Some(value.into());
        self
    }

    fn into_response(self, content_type: &str) -> Response {
        let body = json!({"__type": self.code, "message": self.message});
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        let mut resp = (status, body.to_string()).into_response();
        let headers = resp.headers_mut();
        if let Ok(v) = HeaderValue::from_str(content_type) {
            headers.insert("content-type", v);
        }
        if let Some(Ok(q)) = self.query_error.as_deref().map(HeaderValue::from_str) {
            headers.insert("x-amzn-query-error", q);
        }
        resp
    }
}

impl std::fmt::Display for AwsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for AwsError {}

/// A local AWS service speaking the JSON protocol (awsJson1_0/1_1) on the
/// emulator's address.
pub trait JsonService: Send + Sync + 'static {
    /// The part of `X-Amz-Target` before the dot: `AmazonSQS`, `Kinesis_20131202`.
    fn target_prefix(&self) -> &'static str;
    /// Runs `operation` (the part after the dot) with the request's JSON.
    fn call(&self, operation: &str, input: Value) -> BoxFuture<'_, Result<Value, AwsError>>;
    /// The service's own answer to an `operation` whose body is over
    /// the largest body read (its size limit for that operation, in its
    /// shape; by default a bare 413).
    fn too_large(&self, _operation: &str) -> AwsError {
        AwsError::new(
            413,
            "RequestEntityTooLarge",
            format!("Request body is larger than {MAX_REQUEST} bytes"),
        )
    }
}

/// Whether any configured trigger is of a kind `is` accepts.
fn uses(triggers: &[(String, Vec<Trigger>)], is: impl Fn(&TriggerKind) -> bool) -> bool {
    triggers
        .iter()
        .flat_map(|(_, list)| list)
        .any(|t| is(&t.kind))
}

/// One configured trigger running locally: its live status and "fire now".
pub trait Source: Send + Sync + 'static {
    /// The Lambda function name.
    fn function(&self) -> &str;
    /// The trigger's `name`.
    fn trigger(&self) -> &str;
    /// `sqs`, `kinesis`, `dynamodb`, `schedule`, `s3`, `http-api`.
    fn kind(&self) -> &'static str;
    /// Live state for the dashboard: a flat JSON object of display values.
    fn status(&self) -> Value;
    /// Feeds one event now (`None`: a built-in example shaped like AWS's);
    /// the outcome as JSON for the caller to print.
    fn fire(&self, payload: Option<Value>) -> BoxFuture<'_, anyhow::Result<Value>>;
}

/// What a trigger needs to run: the invoker, the watch output, the
/// emulator's endpoint, and the registry to add itself to.
#[derive(Clone)]
pub struct Context {
    pub invoker: Invoker,
    pub ui: Ui,
    /// `http://127.0.0.1:9000`: the base of local service URLs.
    pub endpoint: String,
    pub triggers: LocalTriggers,
}

impl Context {
    /// A line in the watch output, prefixed `[kind:trigger]`.
    pub fn log(&self, kind: &str, trigger: &str, message: impl std::fmt::Display) {
        self.ui
            .status("Trigger", format!("[{kind}:{trigger}] {message}"));
    }
}

#[derive(Default)]
struct Inner {
    services: RwLock<Vec<Arc<dyn JsonService>>>,
    sources: RwLock<Vec<Arc<dyn Source>>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    sqs: RwLock<Option<Arc<sqs::SqsService>>>,
    kinesis: RwLock<Option<kinesis::KinesisService>>,
    /// The clock schedules run on (the system's unless set).
    clock: RwLock<Option<Arc<dyn schedule::Clock>>>,
}

/// The local services and trigger sources of one watch run. Cheap to clone
/// (shared). Made before the emulator (whose front hook and routes it
/// gives), started after it ([`LocalTriggers::start`]).
#[derive(Clone, Default)]
pub struct LocalTriggers {
    inner: Arc<Inner>,
}

impl LocalTriggers {
    pub fn new() -> Self {
        Self::default()
    }

    /// Serves a local JSON-protocol service on the emulator's address.
    pub fn register_service(&self, service: Arc<dyn JsonService>) {
        self.inner.services.write().expect("services").push(service);
    }

    /// Adds a trigger to the status list and the fire API.
    pub fn add_source(&self, source: Arc<dyn Source>) {
        self.inner.sources.write().expect("sources").push(source);
    }

    /// Runs a background task (a poller, a timer) until [`stop`](Self::stop).
    pub fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        let handle = tokio::spawn(task);
        self.inner.tasks.lock().expect("tasks").push(handle);
    }

    /// Schedules started after this run on `clock` instead of the
    /// system's (a test drives a [`schedule::ManualClock`]).
    pub fn set_clock(&self, clock: Arc<dyn schedule::Clock>) {
        *self.inner.clock.write().expect("clock") = Some(clock);
    }

    fn clock(&self) -> Arc<dyn schedule::Clock> {
        self.inner
            .clock
            .read()
            .expect("clock")
            .clone()
            .unwrap_or_else(|| Arc::new(schedule::SystemClock))
    }

    /// The local SQS service (there is one per run, started by [`start`](Self::start)).
    pub fn sqs(&self) -> Option<Arc<sqs::SqsService>> {
        self.inner.sqs.read().expect("sqs").clone()
    }

    /// The local Kinesis service (one per run, like SQS).
    pub fn kinesis(&self) -> Option<kinesis::KinesisService> {
        self.inner.kinesis.read().expect("kinesis").clone()
    }

    /// Starts the local services and the pollers of `triggers` (function
    /// name, its configured triggers) on a running emulator. Prints the
    /// endpoint variables to use.
    pub fn start(
        &self,
        emulator: &Emulator,
        triggers: &[(String, Vec<Trigger>)],
        ui: Ui,
    ) -> anyhow::Result<()> {
        let cx = Context {
            invoker: emulator.invoker(),
            ui,
            endpoint: emulator.endpoint(),
            triggers: self.clone(),
        };
        // The services outlive a restart (their queues and streams stay).
        let sqs = match self.sqs() {
            Some(sqs) => sqs,
            None => {
                let sqs = sqs::SqsService::new(&cx.endpoint, &Scope::of(&cx.invoker));
                *self.inner.sqs.write().expect("sqs") = Some(sqs.clone());
                self.register_service(sqs.clone());
                // The endpoints answer either way; printed when a trigger reads them.
                if uses(triggers, |k| matches!(k, TriggerKind::Sqs(_))) {
                    ui.status("SQS", format!("AWS_ENDPOINT_URL_SQS={}", cx.endpoint));
                }
                sqs
            }
        };
        let kinesis = match self.kinesis() {
            Some(kinesis) => kinesis,
            None => {
                let kinesis = kinesis::KinesisService::new(Scope::of(&cx.invoker));
                *self.inner.kinesis.write().expect("kinesis") = Some(kinesis.clone());
                self.register_service(Arc::new(kinesis.clone()));
                if uses(triggers, |k| matches!(k, TriggerKind::Kinesis(_))) {
                    ui.status(
                        "Kinesis",
                        format!("AWS_ENDPOINT_URL_KINESIS={}", cx.endpoint),
                    );
                }
                kinesis
            }
        };
        for (function, list) in triggers {
            for trigger in list {
                match &trigger.kind {
                    TriggerKind::Sqs(t) => {
                        sqs_poller::start(&cx, &sqs, function, &trigger.name, t)?;
                    }
                    TriggerKind::Kinesis(_) | TriggerKind::DynamoDb(_) => {
                        streams::start(&cx, &kinesis.0, &sqs, function, trigger)?;
                    }
                    TriggerKind::Schedule(t) => {
                        schedule::start(&cx, function, &trigger.name, t, self.clock())?;
                    }
                    TriggerKind::S3(t) => s3::start(&cx, function, &trigger.name, t),
                    // The routes are the emulator's (watch gives them);
                    // this is the trigger's status and "fire now".
                    TriggerKind::HttpApi(t) => http_api::start(&cx, function, &trigger.name, t),
                }
            }
        }
        Ok(())
    }

    /// After a reload that changed the triggers: stops the pollers and
    /// timers and starts those of `triggers`. Services and their data stay;
    /// a batch in flight finishes its invocation, and its messages come
    /// back after their visibility timeout (at least once).
    pub fn restart(
        &self,
        emulator: &Emulator,
        triggers: &[(String, Vec<Trigger>)],
        ui: Ui,
    ) -> anyhow::Result<()> {
        self.stop();
        self.inner.sources.write().expect("sources").clear();
        self.start(emulator, triggers, ui)
    }

    /// Stops every poller and timer (messages in flight stay in their
    /// queues, invisible until their visibility timeout ends).
    pub fn stop(&self) {
        for task in self.inner.tasks.lock().expect("tasks").drain(..) {
            task.abort();
        }
    }

    /// `[{"function","name","type","status"}, ...]` of every trigger.
    pub fn list(&self) -> Value {
        let sources = self.inner.sources.read().expect("sources");
        Value::Array(
            sources
                .iter()
                .map(|s| {
                    json!({
                        "function": s.function(),
                        "name": s.trigger(),
                        "type": s.kind(),
                        "status": s.status(),
                    })
                })
                .collect(),
        )
    }

    fn source(&self, function: &str, name: &str) -> Option<Arc<dyn Source>> {
        self.inner
            .sources
            .read()
            .expect("sources")
            .iter()
            .find(|s| s.function() == function && s.trigger() == name)
            .cloned()
    }

    fn service(&self, prefix: &str) -> Option<Arc<dyn JsonService>> {
        self.inner
            .services
            .read()
            .expect("services")
            .iter()
            .find(|s| s.target_prefix() == prefix)
            .cloned()
    }

    /// The emulator's front hook: requests whose `X-Amz-Target` names a
    /// registered service go to it. Other AWS API requests (an unknown
    /// `X-Amz-Target`, a query-protocol `Action=...&Version=...` form) get
    /// `UnknownOperationException` naming what is served, so they never
    /// reach a function. Everything else goes to the emulator.
    pub fn front(&self) -> FrontHook {
        let me = self.clone();
        Arc::new(move |req: Request| {
            let me = me.clone();
            Box::pin(async move {
                let target = req
                    .headers()
                    .get("x-amz-target")
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
                let Some(target) = target else {
                    return me.query_protocol(req).await;
                };
                let service = target
                    .split_once('.')
                    .and_then(|(prefix, op)| Some((me.service(prefix)?, op.to_string())));
                match service {
                    Some((service, operation)) => Ok(dispatch(service, &operation, req).await),
                    None => Ok(AwsError::new(
                        400,
                        "UnknownOperationException",
                        format!("`{target}` is not served here: {}", me.served()),
                    )
                    .into_response(json_content_type(&req))),
                }
            })
        })
    }

    /// What this address serves, for errors: the local services' targets.
    fn served(&self) -> String {
        let services = self.inner.services.read().expect("services");
        let prefixes: Vec<String> = services
            .iter()
            .map(|s| format!("{}.*", s.target_prefix()))
            .collect();
        format!(
            "cargo fn watch serves the Lambda API and {} (AWS JSON protocol, `X-Amz-Target`); \
             other AWS services are not emulated (point their clients at AWS or at another local double)",
            if prefixes.is_empty() {
                "no local service".to_string()
            } else {
                prefixes.join(", ")
            }
        )
    }

    /// A `POST` form with `Action` and `Version` is an AWS query-protocol
    /// call (STS, SNS, old SQS clients): refused in the query protocol's
    /// XML error shape. Any other request is handed back with its body.
    async fn query_protocol(&self, req: Request) -> Result<Response, Request> {
        let form = req.method() == axum::http::Method::POST
            && req
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
        if !form {
            return Err(req);
        }
        let (parts, body) = req.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, MAX_REQUEST).await else {
            let too_large = (StatusCode::PAYLOAD_TOO_LARGE, "Request body is too large");
            return Ok(too_large.into_response());
        };
        let mut action = None;
        let mut version = false;
        for (k, v) in form_urlencoded::parse(&bytes) {
            match k.as_ref() {
                "Action" => action = Some(v.into_owned()),
                "Version" => version = true,
                _ => {}
            }
        }
        match action {
            Some(action) if version => Ok(query_error(
                "UnknownOperationException",
                &format!(
                    "the AWS query-protocol action `{action}` is not served here: {}",
                    self.served()
                ),
            )),
            _ => Err(Request::from_parts(parts, Body::from(bytes))),
        }
    }

    /// `GET /_cargo-fn/api/triggers` and
    /// `POST /_cargo-fn/api/triggers/{function}/{name}/fire`.
    pub fn router(&self) -> Router {
        let list = self.clone();
        let fire = self.clone();
        Router::new()
            .route(
                "/_cargo-fn/api/triggers",
                get(move || {
                    let list = list.list();
                    async move { axum::Json(list).into_response() }
                }),
            )
            .route(
                "/_cargo-fn/api/triggers/{function}/{name}/fire",
                post(
                    move |Path((function, name)): Path<(String, String)>, body: Body| {
                        let fire = fire.clone();
                        async move { fire_route(fire, function, name, body).await }
                    },
                ),
            )
    }
}

async fn fire_route(
    triggers: LocalTriggers,
    function: String,
    name: String,
    body: Body,
) -> Response {
    let message = |status: StatusCode, text: String| {
        (status, axum::Json(json!({ "message": text }))).into_response()
    };
    let Some(source) = triggers.source(&function, &name) else {
        return message(
            StatusCode::NOT_FOUND,
            format!("function `{function}` has no trigger named `{name}`"),
        );
    };
    let Ok(bytes) = axum::body::to_bytes(body, MAX_REQUEST).await else {
        return message(
            StatusCode::BAD_REQUEST,
            format!("the payload is larger than {MAX_REQUEST} bytes"),
        );
    };
    let payload = if bytes.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(v) => Some(v),
            Err(e) => {
                return message(
                    StatusCode::BAD_REQUEST,
                    format!("the payload is not JSON: {e}"),
                );
            }
        }
    };
    match source.fire(payload).await {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => message(StatusCode::BAD_REQUEST, format!("{e:#}")),
    }
}

/// The request's AWS JSON content type (`application/x-amz-json-1.0`
/// when it names none), which the answer repeats.
fn json_content_type(req: &Request) -> &str {
    req.headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .filter(|c| c.starts_with("application/x-amz-json"))
        .unwrap_or("application/x-amz-json-1.0")
}

/// A 400 in the query protocol's XML error shape (`ErrorResponse`).
fn query_error(code: &str, message: &str) -> Response {
    let escape = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let request_id = uuid::Uuid::new_v4().to_string();
    let body = format!(
        "<ErrorResponse><Error><Type>Sender</Type><Code>{}</Code><Message>{}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>",
        escape(code),
        escape(message)
    );
    let mut resp = (StatusCode::BAD_REQUEST, body).into_response();
    let headers = resp.headers_mut();
    headers.insert("content-type", HeaderValue::from_static("text/xml"));
    if let Ok(id) = HeaderValue::from_str(&request_id) {
        headers.insert("x-amzn-requestid", id);
    }
    resp
}

/// One JSON-protocol request to `service`: body parsed, operation run,
/// answer or error rendered with the request's content type.
async fn dispatch(service: Arc<dyn JsonService>, operation: &str, req: Request) -> Response {
    let content_type = json_content_type(&req).to_string();
    let bytes = match axum::body::to_bytes(req.into_body(), MAX_REQUEST).await {
        Ok(b) => b,
        Err(_) => return service.too_large(operation).into_response(&content_type),
    };
    let input = if bytes.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Default::default())
    } else {
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(v @ Value::Object(_)) => v,
            Ok(_) | Err(_) => {
                return AwsError::new(
                    400,
                    "SerializationException",
                    "Request body is not a JSON object",
                )
                .into_response(&content_type);
            }
        }
    };
    match service.call(operation, input).await {
        Ok(v) => {
            let mut resp = (StatusCode::OK, v.to_string()).into_response();
            if let Ok(ct) = HeaderValue::from_str(&content_type) {
                resp.headers_mut().insert("content-type", ct);
            }
            resp.headers_mut().insert(
                "x-amzn-requestid",
                HeaderValue::from_str(&uuid::Uuid::new_v4().to_string())
                    .expect("uuid is a header value"),
            );
            resp
        }
        Err(e) => e.into_response(&content_type),
    }
}
