//! The Runtime API (`2018-06-01`) of one environment: the route table and
//! the rules of contract section 1 (request-id checks before any state
//! change, one answer per invocation, the 6 MB response limit, init errors).
//! A managed-instances environment hands out up to its concurrency at once:
//! several `/next` polls may wait, and each answer is matched to its own
//! request id.

// Checks return the ready-made error response; they run once per request.
#![allow(clippy::result_large_err)]

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::LogStream;
use super::env_state::{Current, EnvShared, Outcome, error_body};
use super::streaming;

/// Largest buffered response a runtime may post (6 MiB + 100 B).
pub(crate) const MAX_RESPONSE_BYTES: usize = 6_291_556;
/// Largest error body we read; Lambda truncates errors far below this.
const MAX_ERROR_BYTES: usize = 1024 * 1024;

pub(crate) const H_REQUEST_ID: &str = "lambda-runtime-aws-request-id";
pub(crate) const H_DEADLINE: &str = "lambda-runtime-deadline-ms";
pub(crate) const H_ARN: &str = "lambda-runtime-invoked-function-arn";
pub(crate) const H_TRACE: &str = "lambda-runtime-trace-id";
pub(crate) const H_CLIENT_CONTEXT: &str = "lambda-runtime-client-context";
pub(crate) const H_COGNITO: &str = "lambda-runtime-cognito-identity";
pub(crate) const H_ERROR_TYPE: &str = "lambda-runtime-function-error-type";
pub(crate) const H_RESPONSE_MODE: &str = "lambda-runtime-function-response-mode";

/// The one route table of the Runtime API.
pub(crate) fn router(env: Arc<EnvShared>) -> Router {
    Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{request_id}/response",
            post(response),
        )
        .route(
            "/2018-06-01/runtime/invocation/{request_id}/error",
            post(error),
        )
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .route("/2018-06-01/ping", get(|| async { "pong" }))
        .fallback(|| async {
            runtime_error(
                StatusCode::NOT_FOUND,
                "NotFound",
                "No such Runtime API route",
            )
        })
        .with_state(env)
}

/// `{"errorType": ..., "errorMessage": ...}` with a status.
fn runtime_error(status: StatusCode, error_type: &str, message: &str) -> Response {
    let body = serde_json::json!({"errorType": error_type, "errorMessage": message});
    (
        status,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// The runtime's refusal (413, 400), with the failed invocation handed to
/// the pool only once the server is done with the refusal's body. A refused
/// answer resets the environment; handed over at once, the reset could kill
/// the runtime before its refusal was written.
fn refuse_then_hand_over(
    refusal: Response,
    reply: tokio::sync::oneshot::Sender<Outcome>,
    outcome: Outcome,
) -> Response {
    let (parts, body) = refusal.into_parts();
    let body = HandOverOnDrop {
        body,
        hand_over: Some((reply, outcome)),
    };
    Response::from_parts(parts, Body::new(body))
}

/// How long a refused runtime keeps running before its environment is reset.
const REFUSAL_GRACE: std::time::Duration = std::time::Duration::from_millis(300);

/// A body that hands an outcome over when the server drops it.
struct HandOverOnDrop {
    body: Body,
    hand_over: Option<(tokio::sync::oneshot::Sender<Outcome>, Outcome)>,
}

impl hyper::body::Body for HandOverOnDrop {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, axum::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

impl Drop for HandOverOnDrop {
    fn drop(&mut self) {
        if let Some((reply, outcome)) = self.hand_over.take() {
            // The refusal leaves the server's buffer here, but the runtime
            // (or a process relaying for it) still has to read it; the
            // reset the failure causes kills the whole process group. A
            // short grace lets the runtime see, and log, why its answer was
            // refused (without it, 2 runs in 6 lost the 413 on a busy host).
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    runtime.spawn(async move {
                        tokio::time::sleep(REFUSAL_GRACE).await;
                        let _ = reply.send(outcome);
                    });
                }
                Err(_) => {
                    let _ = reply.send(outcome);
                }
            }
        }
    }
}

fn accepted() -> Response {
    (
        StatusCode::ACCEPTED,
        [("content-type", "application/json")],
        r#"{"status":"OK"}"#,
    )
        .into_response()
}

fn invalid_request_id() -> Response {
    runtime_error(
        StatusCode::BAD_REQUEST,
        "InvalidRequestID",
        "Invalid request ID",
    )
}

fn already_answered() -> Response {
    runtime_error(
        StatusCode::FORBIDDEN,
        "InvalidStateTransition",
        "State transition from RuntimeResponseSent to InvocationResponse failed for runtime. Error: State transition is not allowed",
    )
}

/// `GET /runtime/invocation/next`: long poll for the next invocation.
async fn next(State(env): State<Arc<EnvShared>>) -> Response {
    // One at a time: a second `/next` before the answer is out of order.
    // Managed instances: more polls than slots simply wait.
    if env.max_concurrency == 1
        && env
            .current
            .lock()
            .expect("current")
            .iter()
            .any(|c| c.reply.is_some())
    {
        return runtime_error(
            StatusCode::FORBIDDEN,
            "InvalidStateTransition",
            "State transition from Running to Ready failed for runtime. Error: the current invocation has not been answered",
        );
    }
    if init_failed(&env) {
        return init_failed_error();
    }
    // Init ends when the runtime and every extension wait for an event.
    super::extensions_api::runtime_waits(&env).await;
    let mut rx = env.next_rx.lock().await;
    let Some(inv) = rx.recv().await else {
        return runtime_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            "Internal Server Error",
        );
    };
    drop(rx);
    if init_failed(&env) {
        // The invocation already failed with the init error; this
        // environment is being discarded and never runs it.
        return init_failed_error();
    }
    env.initialized
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let deadline_ms = (now + inv.timeout).as_millis();
    remember(
        &env,
        Current {
            request_id: inv.request_id.clone(),
            reply: Some(inv.reply),
        },
    );
    env.log(
        LogStream::Platform,
        &format!(
            "START RequestId: {} Version: {}",
            inv.request_id, inv.version
        ),
    );
    super::extensions_api::invocation_started(
        &env,
        &inv.request_id,
        &inv.invoked_arn,
        &inv.trace_id,
        deadline_ms,
    );
    let _ = inv.picked_up.send(Instant::now());

    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    };
    set(H_REQUEST_ID, &inv.request_id);
    set(H_DEADLINE, &deadline_ms.to_string());
    set(H_ARN, &inv.invoked_arn);
    set(H_TRACE, &inv.trace_id);
    if let Some(cc) = &inv.client_context {
        set(H_CLIENT_CONTEXT, cc);
    }
    if let Some(ci) = &inv.cognito_identity {
        set(H_COGNITO, ci);
    }
    set("content-type", "application/json");
    (StatusCode::OK, headers, inv.payload).into_response()
}

/// Adds a handed-out invocation, forgetting answered ones (and ones the
/// invoker gave up on, at their deadline) beyond the environment's
/// concurrency.
fn remember(env: &EnvShared, handed: Current) {
    let mut current = env.current.lock().expect("current");
    current.push_back(handed);
    let done = |c: &Current| c.reply.as_ref().is_none_or(|r| r.is_closed());
    let mut excess = current.len().saturating_sub(env.max_concurrency);
    current.retain(|c| {
        if excess > 0 && done(c) {
            excess -= 1;
            false
        } else {
            true
        }
    });
}

/// Has init failed (an init error reported, an extension crashed in init)?
fn init_failed(env: &EnvShared) -> bool {
    env.init_error.lock().expect("init error").is_some()
        && !env.initialized.load(std::sync::atomic::Ordering::SeqCst)
}

fn init_failed_error() -> Response {
    runtime_error(
        StatusCode::FORBIDDEN,
        "InvalidStateTransition",
        "State transition from InitError to Ready failed for runtime. Error: init failed; the environment is being discarded",
    )
}

/// Checks the path id against the invocation in progress, before any state
/// change: unknown or stale id 400, already answered 403.
fn take_reply(
    env: &EnvShared,
    request_id: &str,
) -> Result<tokio::sync::oneshot::Sender<Outcome>, Response> {
    let mut current = env.current.lock().expect("current");
    match current
        .iter_mut()
        .find(|c| !request_id.is_empty() && c.request_id == request_id)
    {
        Some(c) => c.reply.take().ok_or_else(already_answered),
        None => Err(invalid_request_id()),
    }
}

/// Is the id the one in progress and still unanswered? (Checked before
/// reading a body so stale posts are refused without buffering them.)
fn check_id(env: &EnvShared, request_id: &str) -> Result<(), Response> {
    let current = env.current.lock().expect("current");
    match current
        .iter()
        .find(|c| !request_id.is_empty() && c.request_id == request_id)
    {
        Some(c) if c.reply.is_some() => Ok(()),
        Some(_) => Err(already_answered()),
        None => Err(invalid_request_id()),
    }
}

fn check_response_mode(headers: &HeaderMap) -> Result<bool, Response> {
    match headers
        .get(H_RESPONSE_MODE)
        .map(|v| v.to_str().unwrap_or(""))
    {
        None | Some("") => Ok(false),
        Some("streaming") => Ok(true),
        Some(_) => Err(runtime_error(
            StatusCode::BAD_REQUEST,
            "InvalidFunctionResponseMode",
            "Invalid function response mode",
        )),
    }
}

/// `POST /runtime/invocation/{id}/response`.
async fn response(
    State(env): State<Arc<EnvShared>>,
    Path(request_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Err(r) = check_id(&env, &request_id) {
        return r;
    }
    let streaming = match check_response_mode(&headers) {
        Ok(s) => s,
        Err(r) => {
            if let Ok(reply) = take_reply(&env, &request_id) {
                env.answer_refused
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                return refuse_then_hand_over(
                    r,
                    reply,
                    Outcome::Error {
                        body: error_body(
                            "Runtime.InvalidResponseModeHeader",
                            "Invalid function response mode",
                        ),
                    },
                );
            }
            return r;
        }
    };
    if streaming {
        return stream_response(&env, &request_id, &headers, body).await;
    }
    let read = read_capped(body, MAX_RESPONSE_BYTES).await;
    let reply = match take_reply(&env, &request_id) {
        Ok(reply) => reply,
        Err(r) => return r,
    };
    match read {
        Ok(bytes) => {
            let _ = reply.send(Outcome::Response(bytes));
            caller_first().await;
            accepted()
        }
        Err(_) => {
            env.answer_refused
                .store(true, std::sync::atomic::Ordering::SeqCst);
            refuse_then_hand_over(
                runtime_error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "RequestEntityTooLarge",
                    &format!("Exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes)."),
                ),
                reply,
                Outcome::Error {
                    body: error_body(
                        "Function.ResponseSizeTooLarge",
                        &format!(
                            "Response payload size exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes)."
                        ),
                    ),
                },
            )
        }
    }
}

/// The body when it is at most `limit` bytes, `Err` when it is larger or
/// cut. An oversized body is still read to its end (up to four times the
/// limit, discarded): a server that answers 413 and closes with the rest
/// unread makes the kernel reset the connection, and the runtime may then
/// lose the 413 it was sent.
async fn read_capped(body: Body, limit: usize) -> Result<Bytes, ()> {
    use http_body_util::BodyExt;
    let mut body = body;
    let mut kept: Vec<u8> = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { return Err(()) };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen += data.len();
        if seen <= limit {
            kept.extend_from_slice(&data);
        } else if seen > limit.saturating_mul(4) {
            return Err(());
        }
    }
    if seen > limit {
        return Err(());
    }
    Ok(Bytes::from(kept))
}

/// A streamed `/response`: the invocation gets the stream at once and its
/// parts as they arrive; the runtime's request ends when its body does
/// (202), or with 413 past the streamed-size limit, 400 when cut.
async fn stream_response(
    env: &EnvShared,
    request_id: &str,
    headers: &HeaderMap,
    body: Body,
) -> Response {
    let reply = match take_reply(env, request_id) {
        Ok(reply) => reply,
        Err(r) => return r,
    };
    let (tx, parts) = tokio::sync::mpsc::channel(streaming::CHANNEL_DEPTH);
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let _ = reply.send(Outcome::Stream(streaming::ResponseStream {
        content_type,
        parts,
    }));
    match streaming::pump(body, tx, streaming::MAX_STREAMED_RESPONSE_BYTES).await {
        streaming::Pumped::Complete => accepted(),
        streaming::Pumped::TooLarge => runtime_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            &format!(
                "Exceeded maximum allowed payload size ({} bytes).",
                streaming::MAX_STREAMED_RESPONSE_BYTES
            ),
        ),
        streaming::Pumped::Truncated => runtime_error(
            StatusCode::BAD_REQUEST,
            "TruncatedHTTPRequest",
            "HTTP request detected as truncated",
        ),
    }
}

/// The error body as the caller sees it: the runtime's JSON unchanged, or
/// one built from the error-type header when the body is missing or not JSON.
fn caller_error_body(headers: &HeaderMap, body: Bytes) -> Bytes {
    if serde_json::from_slice::<serde_json::Value>(&body).is_ok_and(|v| v.is_object()) {
        return body;
    }
    let error_type = headers
        .get(H_ERROR_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("Runtime.Unknown");
    error_body(error_type, &String::from_utf8_lossy(&body))
}

/// `POST /runtime/invocation/{id}/error`.
async fn error(
    State(env): State<Arc<EnvShared>>,
    Path(request_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Err(r) = check_id(&env, &request_id) {
        return r;
    }
    let body = axum::body::to_bytes(body, MAX_ERROR_BYTES)
        .await
        .unwrap_or_default();
    let reply = match take_reply(&env, &request_id) {
        Ok(reply) => reply,
        Err(r) => return r,
    };
    let _ = reply.send(Outcome::Error {
        body: caller_error_body(&headers, body),
    });
    caller_first().await;
    accepted()
}

/// Lets the caller's answer be written before the runtime's 202: the 202
/// wakes the runtime, which can take this CPU before the caller is answered.
async fn caller_first() {
    tokio::task::yield_now().await;
}

/// `POST /runtime/init/error`: the invocation that started this
/// environment fails at once with this error, and the environment is
/// discarded (the runtime is expected to exit; it gets no event).
async fn init_error(State(env): State<Arc<EnvShared>>, headers: HeaderMap, body: Body) -> Response {
    if env.initialized.load(std::sync::atomic::Ordering::SeqCst) {
        return runtime_error(
            StatusCode::FORBIDDEN,
            "InvalidStateTransition",
            "State transition from Ready to InitError failed for runtime. Error: init is over",
        );
    }
    let body = axum::body::to_bytes(body, MAX_ERROR_BYTES)
        .await
        .unwrap_or_default();
    let body = caller_error_body(&headers, body);
    env.log(
        LogStream::Platform,
        &format!(
            "INIT_REPORT Status: error\t{}",
            String::from_utf8_lossy(&body)
        ),
    );
    *env.init_error.lock().expect("init error") = Some(body);
    env.init_failed.notify_one();
    accepted()
}
