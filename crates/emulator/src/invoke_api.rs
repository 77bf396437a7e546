//! The Invoke API (`2015-03-31`) as AWS serves it (contract section 3): the
//! route table, request validation, invocation types, and errors rendered
//! as status + `x-amzn-ErrorType` + JSON body so unmodified SDK clients
//! understand them.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use serde::Deserialize;

use tokio::sync::{mpsc, oneshot};

use super::api_error::ApiError;
use super::pool::{FunctionPool, Job, Lease, Throttle};
use super::{LOCAL_ACCOUNT_ID, Shared};

/// Synchronous requests must be smaller than this (contract 3.1).
pub const MAX_SYNC_REQUEST: usize = 6_291_556;
/// Asynchronous (`Event`) payload limit: 1 MB.
pub(crate) const MAX_ASYNC_REQUEST: usize = 1_048_576;
/// Size limit of `X-Amz-Client-Context`, on its base64 text as sent.
const MAX_CLIENT_CONTEXT: usize = 3_583;
/// Longest `FunctionName` (an ARN with a qualifier), and longest name.
const MAX_FUNCTION_REF: usize = 170;
const MAX_NAME: usize = 64;

/// `X-Amz-Invocation-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InvocationType {
    #[default]
    RequestResponse,
    Event,
    DryRun,
}

impl InvocationType {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "RequestResponse" => Some(Self::RequestResponse),
            "Event" => Some(Self::Event),
            "DryRun" => Some(Self::DryRun),
            _ => None,
        }
    }
}

/// The one route table of the Invoke API.
pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/2015-03-31/functions/{function}/invocations", post(invoke))
        .route(
            "/2021-11-15/functions/{function}/response-streaming-invocations",
            post(invoke_with_response_stream),
        )
}

/// The answer to a path that is neither an operation nor the HTTP front's.
pub(crate) fn unknown_operation() -> Response {
    ApiError::unknown_operation(
        "This emulator serves Invoke (POST /2015-03-31/functions/{FunctionName}/invocations) and function URLs (/lambda-url/{FunctionName}/...)",
    )
    .into_response()
}

#[derive(Debug, Deserialize)]
struct InvokeQuery {
    #[serde(rename = "Qualifier")]
    qualifier: Option<String>,
}

/// A function reference as callers write it: a name, `name:qualifier`, a
/// partial ARN `account:function:name[:qualifier]`, or a full ARN.
fn parse_function_name(raw: &str) -> (String, Option<String>) {
    let rest = match raw.find("function:") {
        Some(i) => &raw[i + "function:".len()..],
        None => raw,
    };
    match rest.split_once(':') {
        Some((name, q)) => (name.to_string(), Some(q.to_string())),
        None => (rest.to_string(), None),
    }
}

/// Checks a `FunctionName` against the Invoke model: 1-170 characters, a
/// name of 1-64 letters, digits, hyphens and underscores, in one of the
/// accepted forms.
fn check_function_ref(raw: &str, name: &str) -> Result<(), ApiError> {
    if raw.chars().count() > MAX_FUNCTION_REF {
        return Err(ApiError::validation(format!(
            "1 validation error detected: Value '{raw}' at 'functionName' failed to satisfy constraint: Member must have length less than or equal to {MAX_FUNCTION_REF}"
        )));
    }
    let prefix_ok = match raw.find("function:") {
        None => true,
        Some(i) => {
            let head = &raw[..i];
            // `arn:aws:lambda:region:account:` or `account:`
            head.is_empty()
                || head.strip_suffix(':').is_some_and(|h| {
                    let parts: Vec<&str> = h.split(':').collect();
                    match parts.as_slice() {
                        [account] => is_account(account),
                        ["arn", partition, "lambda", region, account] => {
                            partition.starts_with("aws")
                                && !region.is_empty()
                                && is_account(account)
                        }
                        _ => false,
                    }
                })
        }
    };
    let name_ok = !name.is_empty()
        && name.chars().count() <= MAX_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !prefix_ok || !name_ok {
        return Err(ApiError::validation(format!(
            "1 validation error detected: Value '{raw}' at 'functionName' failed to satisfy constraint: Member must satisfy regular expression pattern: (arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{{2}}(-gov)?-[a-z]+-\\d{{1}}:)?(\\d{{12}}:)?(function:)?([a-zA-Z0-9-_.]{{1,{MAX_NAME}}})(:(\\$LATEST|[a-zA-Z0-9-_]+))?"
        )));
    }
    Ok(())
}

fn is_account(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

fn valid_qualifier(q: &str) -> bool {
    !q.is_empty()
        && q.len() <= 128
        && (q == "$LATEST"
            || q == "$LATEST.PUBLISHED"
            || q.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '$')))
}

/// The trace header for one invocation: the caller's `X-Amzn-Trace-Id`
/// when it carries a root, else a new one.
pub(crate) fn trace_id_from(incoming: Option<&str>) -> String {
    match incoming {
        Some(h) if h.split(';').any(|p| p.trim().starts_with("Root=1-")) => h.trim().to_string(),
        _ => trace_id(),
    }
}

/// A new X-Ray trace header for one invocation.
fn trace_id() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let a = uuid::Uuid::new_v4().simple().to_string();
    let b = uuid::Uuid::new_v4().simple().to_string();
    format!(
        "Root=1-{secs:08x}-{};Parent={};Sampled=0",
        &a[..24],
        &b[..16]
    )
}

async fn invoke(
    State(emulator): State<Arc<Shared>>,
    Path(function): Path<String>,
    Query(query): Query<InvokeQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    invoke_as(false, emulator, function, query, headers, body).await
}

/// What an Invoke request asks for, once its headers and names are checked.
struct InvokeRequest {
    invocation_type: InvocationType,
    /// `X-Amz-Log-Type: Tail`.
    tail: bool,
    name: String,
    qualifier: Option<String>,
}

/// `Invoke`, or with `stream` the synchronous part of
/// `InvokeWithResponseStream` (same validation, limits and throttles). The
/// checks run in Lambda's order: headers, names, the function, the payload,
/// the client context.
async fn invoke_as(
    stream: bool,
    emulator: Arc<Shared>,
    function: String,
    query: InvokeQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let request = parse_request(&function, query, header)?;
    let pool = find_function(&emulator, &request.name, request.qualifier.as_ref())?;
    let payload = read_payload(body, request.invocation_type).await?;
    let client_context = client_context(header("x-amz-client-context"))?;

    let request_id = uuid::Uuid::new_v4().to_string();
    let mut job = Job {
        request_id: request_id.clone(),
        payload,
        qualifier: request.qualifier,
        client_context,
        cognito_identity: None,
        trace_id: trace_id_from(header("x-amzn-trace-id")),
        want_log: request.tail,
    };
    let mut ok_headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        ok_headers.insert("x-amzn-requestid", v);
    }
    match request.invocation_type {
        InvocationType::DryRun => Ok((StatusCode::NO_CONTENT, ok_headers).into_response()),
        InvocationType::Event => {
            emulator
                .history
                .note_caller(&request_id, "Invoke API (Event)");
            // Client context is delivered only to synchronous invocations.
            job.client_context = None;
            pool.enqueue(job);
            Ok((StatusCode::ACCEPTED, ok_headers).into_response())
        }
        InvocationType::RequestResponse => {
            let lease = pool.acquire().map_err(|throttle| {
                ApiError::throttled(match throttle {
                    Throttle::Reserved => "ReservedFunctionConcurrentInvocationLimitExceeded",
                    Throttle::Account => "ConcurrentInvocationLimitExceeded",
                })
            })?;
            if stream {
                return Ok(event_stream_response(pool, lease, job, request.tail, ok_headers).await);
            }
            run_sync(pool, lease, job, request.tail, ok_headers).await
        }
    }
}

/// The invocation type, the log type and the function reference, checked.
fn parse_request<'h>(
    function: &str,
    query: InvokeQuery,
    header: impl Fn(&str) -> Option<&'h str>,
) -> Result<InvokeRequest, ApiError> {
    let invocation_type = match header("x-amz-invocation-type") {
        None => InvocationType::RequestResponse,
        Some(s) => InvocationType::parse(s).ok_or_else(|| {
            ApiError::invalid_parameter(format!(
                "1 validation error detected: Value '{s}' at 'invocationType' failed to satisfy constraint: Member must satisfy enum value set: [Event, RequestResponse, DryRun]"
            ))
        })?,
    };
    let tail = match header("x-amz-log-type") {
        None | Some("None") => false,
        Some("Tail") => true,
        Some(s) => {
            return Err(ApiError::invalid_parameter(format!(
                "1 validation error detected: Value '{s}' at 'logType' failed to satisfy constraint: Member must satisfy enum value set: [None, Tail]"
            )));
        }
    };
    let (name, path_qualifier) = parse_function_name(function);
    check_function_ref(function, &name)?;
    let qualifier = match (path_qualifier, query.qualifier) {
        (Some(a), Some(b)) if a != b => {
            return Err(ApiError::invalid_parameter(
                "The derived qualifier from the function name does not match the specified qualifier.",
            ));
        }
        (a, b) => a.or(b),
    };
    if let Some(q) = &qualifier
        && !valid_qualifier(q)
    {
        return Err(ApiError::invalid_parameter(format!(
            "1 validation error detected: Value '{q}' at 'qualifier' failed to satisfy constraint: Member must satisfy regular expression pattern: (|[a-zA-Z0-9$_-]+)"
        )));
    }
    Ok(InvokeRequest {
        invocation_type,
        tail,
        name,
        qualifier,
    })
}

/// The function served under `name`, at `$LATEST` or one of the aliases
/// it is served under; any other alias or version does not exist here.
fn find_function(
    emulator: &Shared,
    name: &str,
    qualifier: Option<&String>,
) -> Result<Arc<FunctionPool>, ApiError> {
    let not_found = || {
        ApiError::function_not_found(&format!(
            "arn:aws:lambda:{}:{}:function:{}{}",
            emulator.options.region,
            LOCAL_ACCOUNT_ID,
            name,
            qualifier.map(|q| format!(":{q}")).unwrap_or_default()
        ))
    };
    let pool = emulator.function(name).ok_or_else(not_found)?;
    if let Some(q) = qualifier
        && q != "$LATEST"
        && !pool.spec().aliases.contains(q)
    {
        return Err(not_found());
    }
    Ok(pool)
}

/// The payload, within the invocation type's limit and JSON; an empty one
/// is `{}`, as Lambda hands it to the function.
async fn read_payload(body: Body, invocation_type: InvocationType) -> Result<Bytes, ApiError> {
    let limit = if invocation_type == InvocationType::Event {
        MAX_ASYNC_REQUEST
    } else {
        MAX_SYNC_REQUEST - 1
    };
    let payload = axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::too_large(format!(
            "Request must be smaller than {} bytes for the Invoke operation",
            limit + 1
        ))
    })?;
    if payload.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(Bytes::from_static(b"{}"));
    }
    // JSON is UTF-8: checked as a whole, since skipping over a string
    // does not look at its bytes.
    std::str::from_utf8(&payload)
        .map_err(|e| format!("Invalid UTF-8 in the request body: {e}"))
        .and_then(|text| {
            serde_json::from_str::<serde::de::IgnoredAny>(text).map_err(|e| e.to_string())
        })
        .map_err(|e| {
            ApiError::invalid_content(format!("Could not parse request body into json: {e}"))
        })?;
    Ok(payload)
}

/// `X-Amz-Client-Context` decoded: at most 3,583 bytes of base64 of a JSON
/// object (the runtime clients read it into a struct).
fn client_context(encoded: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(encoded) = encoded else {
        return Ok(None);
    };
    if encoded.len() > MAX_CLIENT_CONTEXT {
        return Err(ApiError::invalid_parameter(format!(
            "Client context must be at most {MAX_CLIENT_CONTEXT} bytes of Base64 (got {})",
            encoded.len()
        )));
    }
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()
        .and_then(|d| String::from_utf8(d).ok())
        .filter(|d| serde_json::from_str::<serde_json::Value>(d).is_ok_and(|v| v.is_object()))
        .map(Some)
        .ok_or_else(|| {
            ApiError::invalid_content("Client context must be a valid Base64-encoded JSON object.")
        })
}

/// A synchronous invocation, run detached so it completes even if the
/// caller goes away (as in Lambda), answered with the function's result.
async fn run_sync(
    pool: Arc<FunctionPool>,
    lease: Lease,
    job: Job,
    tail: bool,
    mut headers: HeaderMap,
) -> Result<Response, ApiError> {
    let result = tokio::spawn(async move { pool.run(lease, job).await })
        .await
        .map_err(|_| ApiError::service("The emulator failed while running the invocation"))?;
    headers.insert(
        "x-amz-executed-version",
        HeaderValue::from_static("$LATEST"),
    );
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    if let Some(kind) = result.function_error {
        headers.insert("x-amz-function-error", HeaderValue::from_static(kind));
    }
    if tail {
        let log = result.log.as_bytes();
        let last = &log[log.len().saturating_sub(4096)..];
        let encoded = base64::engine::general_purpose::STANDARD.encode(last);
        if let Ok(v) = HeaderValue::from_str(&encoded) {
            headers.insert("x-amz-log-result", v);
        }
    }
    Ok((StatusCode::OK, headers, result.body).into_response())
}

/// `InvokeWithResponseStream` (contract 3.3): validated and run like a
/// synchronous Invoke, answered as an event stream.
async fn invoke_with_response_stream(
    State(emulator): State<Arc<Shared>>,
    Path(function): Path<String>,
    Query(query): Query<InvokeQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    match headers
        .get("x-amz-invocation-type")
        .and_then(|v| v.to_str().ok())
    {
        None | Some("RequestResponse") | Some("DryRun") => {}
        Some(s) => {
            return Err(ApiError::invalid_parameter(format!(
                "1 validation error detected: Value '{s}' at 'invocationType' failed to satisfy constraint: Member must satisfy enum value set: [RequestResponse, DryRun]"
            )));
        }
    }
    invoke_as(true, emulator, function, query, headers, body).await
}

/// Runs the invocation and answers at once with an event stream: one
/// `PayloadChunk` per chunk the runtime streams, as it arrives (or one for
/// a buffered answer), then `InvokeComplete` with the error and the log.
/// The payload is the runtime's bytes unchanged (an HTTP integration
/// prelude included): only function URLs interpret the prelude.
async fn event_stream_response(
    pool: Arc<FunctionPool>,
    lease: Lease,
    job: Job,
    tail: bool,
    mut headers: HeaderMap,
) -> Response {
    use super::event_stream::{invoke_complete, payload_chunk};
    let (head_tx, head_rx) = oneshot::channel();
    // Detached: the invocation completes even if the caller goes away.
    let run = tokio::spawn(async move { pool.run_streaming(lease, job, Some(head_tx)).await });
    // Either the stream starts, or the function answered without streaming.
    let head = head_rx.await.ok();
    let content_type = head
        .as_ref()
        .and_then(|h| h.content_type.clone())
        .unwrap_or_else(|| "application/json".to_string());
    let (tx, rx) = mpsc::channel(super::streaming::CHANNEL_DEPTH);
    tokio::spawn(async move {
        if let Some(mut head) = head {
            while let Some(chunk) = head.chunks.recv().await {
                if tx.send(Ok(payload_chunk(&chunk))).await.is_err() {
                    return; // the caller left; the invocation goes on alone
                }
            }
        }
        let Ok(result) = run.await else {
            let _ = tx
                .send(Err(
                    "the emulator failed while running the invocation".into()
                ))
                .await;
            return;
        };
        let log = tail.then(|| {
            let log = result.log.as_bytes();
            base64::engine::general_purpose::STANDARD.encode(&log[log.len().saturating_sub(4096)..])
        });
        let complete = if result.function_error.is_some() {
            let error: serde_json::Value = serde_json::from_slice(&result.body).unwrap_or_default();
            let code = error["errorType"].as_str().unwrap_or("Unhandled");
            let details = error["errorMessage"].as_str().unwrap_or("");
            invoke_complete(Some(code), Some(details), log.as_deref())
        } else {
            if !result.body.is_empty() {
                let _ = tx.send(Ok(payload_chunk(&result.body))).await;
            }
            invoke_complete(None, None, log.as_deref())
        };
        let _ = tx.send(Ok(complete)).await;
    });
    headers.insert(
        "x-amz-executed-version",
        HeaderValue::from_static("$LATEST"),
    );
    if let Ok(v) = HeaderValue::from_str(&content_type) {
        headers.insert("content-type", v);
    }
    (
        StatusCode::OK,
        headers,
        Body::new(super::streaming::ChannelBody::new(rx)),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_names_in_every_form() {
        assert_eq!(parse_function_name("echo"), ("echo".into(), None));
        assert_eq!(
            parse_function_name("echo:live"),
            ("echo".into(), Some("live".into()))
        );
        assert_eq!(
            parse_function_name("arn:aws:lambda:us-east-1:123456789012:function:echo:$LATEST"),
            ("echo".into(), Some("$LATEST".into()))
        );
        assert_eq!(
            parse_function_name("123456789012:function:echo"),
            ("echo".into(), None)
        );
    }

    #[test]
    fn function_references_follow_the_model_constraints() {
        let check = |raw: &str| check_function_ref(raw, &parse_function_name(raw).0).is_ok();
        assert!(check("echo"));
        assert!(check("echo:live"));
        assert!(check("123456789012:function:echo"));
        assert!(check(
            "arn:aws:lambda:us-east-1:123456789012:function:echo:$LATEST"
        ));
        assert!(check(&"n".repeat(64)));
        assert!(!check(&"n".repeat(65)), "names are 1-64 characters");
        assert!(!check(&"n".repeat(300)));
        assert!(!check("bad/name"));
        assert!(!check("arn:aws:s3:us-east-1:123456789012:function:echo"));
        assert!(!check("12345:function:echo"));
    }

    #[test]
    fn qualifiers_follow_the_model_pattern() {
        assert!(valid_qualifier("$LATEST"));
        assert!(valid_qualifier("prod-1"));
        assert!(!valid_qualifier("bad/alias"));
        assert!(!valid_qualifier(""));
    }
}
