//! The Extensions API (`2020-01-01`) of one environment: the route table,
//! header checks and error responses of contract 2.1, served on the same
//! listener as the Runtime API. The lifecycle rules live in
//! [`super::extensions`]; this module only speaks HTTP.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use super::LOCAL_ACCOUNT_ID;
use super::LogStream;
use super::env_state::EnvShared;
use super::extensions::Refusal;

pub(crate) const H_NAME: &str = "lambda-extension-name";
pub(crate) const H_IDENTIFIER: &str = "lambda-extension-identifier";
const H_ACCEPT_FEATURE: &str = "lambda-extension-accept-feature";
const H_EVENT_IDENTIFIER: &str = "lambda-extension-event-identifier";
const H_ERROR_TYPE: &str = "lambda-extension-function-error-type";

/// The one route table of the Extensions API.
pub(crate) fn router(env: Arc<EnvShared>) -> Router {
    Router::new()
        .route("/2020-01-01/extension/register", post(register))
        .route("/2020-01-01/extension/event/next", get(next))
        .route("/2020-01-01/extension/init/error", post(init_error))
        .route("/2020-01-01/extension/exit/error", post(exit_error))
        .with_state(env)
}

/// `{"errorType", "errorMessage"}` with a status.
pub(crate) fn refusal(r: Refusal) -> Response {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [("content-type", "application/json")],
        json!({"errorType": r.error_type, "errorMessage": r.message}).to_string(),
    )
        .into_response()
}

fn bad(status: u16, error_type: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        error_type,
        message: message.into(),
    }
}

/// The `Lambda-Extension-Identifier` header: present and a UUID.
pub(crate) fn identifier(headers: &HeaderMap) -> Result<String, Refusal> {
    let Some(value) = headers.get(H_IDENTIFIER) else {
        return Err(bad(
            403,
            "Extension.MissingExtensionIdentifier",
            "the Lambda-Extension-Identifier header is missing",
        ));
    };
    let value = value.to_str().unwrap_or("").trim();
    if uuid::Uuid::parse_str(value).is_err() {
        return Err(bad(
            403,
            "Extension.InvalidExtensionIdentifier",
            "the Lambda-Extension-Identifier header is not a UUID",
        ));
    }
    Ok(value.to_string())
}

/// `POST /extension/register`.
async fn register(State(env): State<Arc<EnvShared>>, headers: HeaderMap, body: Bytes) -> Response {
    let name = headers
        .get(H_NAME)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let parsed: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return refusal(bad(
                403,
                "InvalidRequestFormat",
                format!("the register body is not JSON: {e}"),
            ));
        }
    };
    if parsed.get("configurationKeys").is_some() {
        return refusal(bad(
            403,
            "InvalidRequestFormat",
            "configurationKeys is deprecated and not accepted",
        ));
    }
    let events: Vec<String> = match parsed.get("events") {
        None => Vec::new(),
        Some(v) => match serde_json::from_value(v.clone()) {
            Ok(list) => list,
            Err(_) => {
                return refusal(bad(
                    403,
                    "InvalidRequestFormat",
                    "events must be a list of strings (INVOKE, SHUTDOWN)",
                ));
            }
        },
    };
    let id = match env.extensions.register(&name, &events) {
        Ok(id) => id,
        Err(r) => return refusal(r),
    };
    env.telemetry.platform(
        "platform.extension",
        json!({"name": name, "state": "Ready", "events": events}),
    );
    let mut body = json!({
        "functionName": env.function,
        "functionVersion": "$LATEST",
        "handler": "bootstrap",
    });
    let wants_account = headers
        .get(H_ACCEPT_FEATURE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|f| f.trim() == "accountId"));
    if wants_account {
        body["accountId"] = json!(LOCAL_ACCOUNT_ID);
    }
    let mut response = (
        StatusCode::OK,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(H_IDENTIFIER, v);
    }
    response
}

/// `GET /extension/event/next`.
async fn next(State(env): State<Arc<EnvShared>>, headers: HeaderMap) -> Response {
    let id = match identifier(&headers) {
        Ok(id) => id,
        Err(r) => return refusal(r),
    };
    match env.extensions.next(&id).await {
        Ok(event) => {
            let mut response = (
                StatusCode::OK,
                [("content-type", "application/json")],
                event.to_string(),
            )
                .into_response();
            if let Ok(v) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
                response.headers_mut().insert(H_EVENT_IDENTIFIER, v);
            }
            response
        }
        Err(r) => refusal(r),
    }
}

/// `POST /extension/init/error`: the init phase fails with this error.
async fn init_error(
    State(env): State<Arc<EnvShared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    report_error(&env, &headers, &body, true)
}

/// `POST /extension/exit/error`: the extension stops getting events.
async fn exit_error(
    State(env): State<Arc<EnvShared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    report_error(&env, &headers, &body, false)
}

fn report_error(env: &EnvShared, headers: &HeaderMap, body: &[u8], init: bool) -> Response {
    let id = match identifier(headers) {
        Ok(id) => id,
        Err(r) => return refusal(r),
    };
    let Some(error_type) = headers
        .get(H_ERROR_TYPE)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.trim().is_empty())
        .map(str::to_string)
    else {
        return refusal(bad(
            400,
            "InvalidRequestFormat",
            "the Lambda-Extension-Function-Error-Type header is missing",
        ));
    };
    let (name, during_init) = match env.extensions.failed(&id) {
        Ok(x) => x,
        Err(r) => return refusal(r),
    };
    let message = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.get("errorMessage")
                .and_then(|m| m.as_str())
                .map(str::to_string)
        })
        .unwrap_or_default();
    let route = if init { "init" } else { "exit" };
    env.log(
        LogStream::Platform,
        &format!("EXTENSION Name: {name} {route}/error {error_type} {message}"),
    );
    if init && during_init {
        env.fail_init(
            &error_type,
            &format!("extension `{name}` failed to initialise: {message}"),
        );
    }
    (
        StatusCode::ACCEPTED,
        [("content-type", "application/json")],
        r#"{"status":"OK"}"#,
    )
        .into_response()
}

/// The runtime asks for its next event: on the first call, wait until every
/// extension has finished its init too (contract 2.2).
pub(crate) async fn runtime_waits(env: &EnvShared) {
    if env.extensions.wait_init().await {
        env.telemetry.init_done();
    }
}

/// The runtime took an invocation: INVOKE goes to the extensions
/// registered for it, `platform.start` to telemetry.
pub(crate) fn invocation_started(
    env: &EnvShared,
    request_id: &str,
    invoked_arn: &str,
    trace_id: &str,
    deadline_ms: u128,
) {
    env.telemetry.start(request_id, trace_id);
    env.extensions
        .invoke(request_id, deadline_ms, invoked_arn, trace_id);
}
