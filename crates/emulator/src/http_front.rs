//! The HTTP front: serves plain HTTP requests to functions as a function
//! URL, an API Gateway HTTP or REST API, or an Application Load Balancer
//! would (contract section 4): which function a path reaches, the size
//! limit, CORS preflights, buffered and streamed answers. The events and
//! the mapping of answers back are pure functions in `http_event.rs`.
//!
//! **Invariant:** this module runs invocations through the function pool
//! like the Invoke API does and knows nothing of configuration files (it is
//! given an [`HttpFront`] on the [`FunctionSpec`](super::FunctionSpec)).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use serde_json::json;

use super::Shared;
use super::http_event::{
    CorsPolicy, HttpEventFormat, Incoming, bad_gateway, build_event, header, map_response,
    prelude_response, set,
};
use super::http_routes::{PayloadFormat, Routed};
use super::invoke_api::{MAX_SYNC_REQUEST, trace_id_from, unknown_operation};
use super::pool::{FunctionPool, Job};

/// How a function URL delivers the function's answer (`InvokeMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InvokeMode {
    /// The whole answer, once the function has finished.
    #[default]
    Buffered,
    /// A streamed answer goes to the client as the function produces it.
    ResponseStream,
}

/// How a function is served by the HTTP front.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HttpFront {
    pub format: HttpEventFormat,
    /// `None`: no CORS headers, preflights go to the function.
    pub cors: Option<CorsPolicy>,
    pub invoke_mode: InvokeMode,
}

/// Routes of the HTTP front, added to the Invoke API's router.
pub(crate) fn routes(router: Router<Arc<Shared>>) -> Router<Arc<Shared>> {
    router
        .route("/lambda-url/{function}", any(named))
        .route("/lambda-url/{function}/", any(named))
        .route("/lambda-url/{function}/{*path}", any(named))
}

/// Any path no API serves: the HTTP front's when [`single`] takes it (one
/// function, a default one, or an HTTP API route), else the Invoke API's
/// unknown operation.
pub(crate) async fn fallback(State(emulator): State<Arc<Shared>>, req: Request) -> Response {
    match single(emulator, req).await {
        Ok(resp) => resp,
        Err(_) => unknown_operation(),
    }
}

/// `/lambda-url/<function>/<path>`.
async fn named(State(emulator): State<Arc<Shared>>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let rest = path.strip_prefix("/lambda-url/").unwrap_or("");
    let (function, sub) = match rest.split_once('/') {
        Some((f, p)) => (f.to_string(), format!("/{p}")),
        None => (rest.to_string(), "/".to_string()),
    };
    let Some(pool) = emulator.function(&function) else {
        return (
            StatusCode::NOT_FOUND,
            [("content-type", "application/json")],
            json!({"Message": format!("No function `{function}` is served here")}).to_string(),
        )
            .into_response();
    };
    serve(emulator, pool, sub, req, None).await
}

/// Any other path: an HTTP API route when one matches, else the default
/// function, or the only one. With HTTP API routes configured and no
/// default function, an unmatched path is API Gateway's 404. `Err` when
/// the request is not for the HTTP front.
pub(crate) async fn single(emulator: Arc<Shared>, req: Request) -> Result<Response, Request> {
    let path = req.uri().path();
    if path.starts_with("/2015-03-31/") || path.starts_with("/2021-11-15/") {
        return Err(req);
    }
    let routes = emulator.http_routes.read().expect("routes lock").clone();
    if !routes.is_empty() {
        if let Some(hit) = routes.find(req.method().as_str(), path) {
            let Some(pool) = emulator.function(&hit.route.function) else {
                return Ok(not_found());
            };
            let path = path.to_string();
            let front = HttpFront {
                format: match hit.route.payload {
                    PayloadFormat::V2 => HttpEventFormat::HttpApi,
                    PayloadFormat::V1 => HttpEventFormat::RestApi,
                },
                cors: hit.route.cors.clone(),
                invoke_mode: InvokeMode::Buffered,
            };
            let routed = Some((front, hit.routed()));
            return Ok(serve(emulator, pool, path, req, routed).await);
        }
        if emulator
            .default_function
            .read()
            .expect("default lock")
            .is_none()
        {
            return Ok(not_found());
        }
    }
    let only = {
        let functions = emulator.functions.read().expect("functions lock");
        let default = emulator.default_function.read().expect("default lock");
        match default.as_ref().and_then(|name| functions.get(name)) {
            Some(pool) => Some(pool.clone()),
            None => (functions.len() == 1)
                .then(|| functions.values().next().cloned())
                .flatten(),
        }
    };
    match only {
        Some(pool) => {
            let path = path.to_string();
            Ok(serve(emulator, pool, path, req, None).await)
        }
        None => Err(req),
    }
}

/// API Gateway's answer to a path no route matches.
fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [("content-type", "application/json")],
        json!({"message": "Not Found"}).to_string(),
    )
        .into_response()
}

/// One HTTP request through one function; `routed`: an HTTP API route
/// matched it (its front and event fields), else the function's own front.
async fn serve(
    emulator: Arc<Shared>,
    pool: Arc<FunctionPool>,
    path: String,
    req: Request,
    routed: Option<(HttpFront, Routed)>,
) -> Response {
    let spec = pool.spec();
    let (front, routed) = match routed {
        Some((front, r)) => (front, Some(r)),
        None => (spec.http.clone(), None),
    };
    let (parts, body) = req.into_parts();
    let origin = header(&parts.headers, "origin").map(str::to_string);
    if let Some(cors) = &front.cors
        && parts.method == Method::OPTIONS
        && origin.is_some()
        && parts.headers.contains_key("access-control-request-method")
    {
        return cors.preflight(origin.as_deref(), &parts.headers);
    }
    let body = match axum::body::to_bytes(body, MAX_SYNC_REQUEST - 1).await {
        Ok(b) => b,
        Err(_) => return too_large(),
    };
    let source_ip = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "127.0.0.1".to_string());
    let request_id = uuid::Uuid::new_v4().to_string();
    let trace_id = trace_id_from(header(&parts.headers, "x-amzn-trace-id"));
    let incoming = Incoming {
        method: parts.method.as_str(),
        path: &path,
        query: parts.uri.query().unwrap_or(""),
        headers: &parts.headers,
        body: &body,
        source_ip: &source_ip,
        request_id: &request_id,
        function: &spec.name,
        region: &emulator.options.region,
        now: SystemTime::now(),
    };
    // The limit is on the event the function gets (a binary body grows by
    // a third in base64, headers and context add more), as on AWS.
    let mut event = build_event(front.format, &incoming);
    if let Some(r) = &routed {
        r.apply(&mut event, front.format.is_v2());
    }
    let event = event.to_string();
    if event.len() >= MAX_SYNC_REQUEST {
        return too_large();
    }
    let caller = format!("HTTP {} {path}", parts.method);
    emulator.history.note_caller(&request_id, caller);
    let job = Job {
        request_id: request_id.clone(),
        payload: Bytes::from(event),
        qualifier: None,
        client_context: None,
        cognito_identity: None,
        trace_id: trace_id.clone(),
        want_log: false,
    };
    let lease = match pool.acquire() {
        Ok(lease) => lease,
        Err(_) => {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [("content-type", "application/json")],
                json!({"Message": "Rate Exceeded."}).to_string(),
            )
                .into_response();
        }
    };
    let mut resp = if front.invoke_mode == InvokeMode::ResponseStream {
        streamed(front.format, pool, lease, job).await
    } else {
        // Detached like the Invoke API: the invocation completes even if the
        // HTTP client goes away.
        let run = tokio::spawn(async move { pool.run(lease, job).await });
        match run.await {
            Ok(result) if result.function_error.is_none() => {
                map_response(front.format, &result.body).unwrap_or_else(bad_gateway)
            }
            _ => bad_gateway(front.format),
        }
    };
    let headers = resp.headers_mut();
    if let Some(cors) = &front.cors {
        cors.apply(origin.as_deref(), headers);
    }
    set(headers, "x-amzn-requestid", &request_id);
    set(headers, "x-amzn-trace-id", &trace_id);
    resp
}

/// 413, as function URLs answer a request whose event is over the
/// synchronous invoke payload limit.
fn too_large() -> Response {
    (
        StatusCode::PAYLOAD_TOO_LARGE,
        [("content-type", "application/json")],
        json!({"Message": format!("Request must be smaller than {MAX_SYNC_REQUEST} bytes for the InvokeFunction operation")}).to_string(),
    )
        .into_response()
}

/// `RESPONSE_STREAM`: status and headers as soon as the prelude is complete
/// (or at once for a plain stream, as 200), then each chunk as the function
/// produces it. A failure after the headers cuts the body short, so the
/// client sees an incomplete response; before them it is a 502. A function
/// that answers without streaming is mapped like a buffered one.
async fn streamed(
    format: HttpEventFormat,
    pool: Arc<FunctionPool>,
    lease: super::pool::Lease,
    job: Job,
) -> Response {
    use super::streaming::{ChannelBody, HTTP_INTEGRATION, Prelude, parse_prelude};
    let (head_tx, head_rx) = tokio::sync::oneshot::channel();
    let run = tokio::spawn(async move { pool.run_streaming(lease, job, Some(head_tx)).await });
    let Ok(mut head) = head_rx.await else {
        return match run.await {
            Ok(result) if result.function_error.is_none() => {
                map_response(format, &result.body).unwrap_or_else(bad_gateway)
            }
            _ => bad_gateway(format),
        };
    };
    let (mut resp, first) = if head.content_type.as_deref() == Some(HTTP_INTEGRATION) {
        let mut buf = Vec::new();
        loop {
            match parse_prelude(&buf) {
                Prelude::Done(prelude, at) => match prelude_response(format, &prelude, &[]) {
                    Ok(resp) => break (resp, Bytes::copy_from_slice(&buf[at..])),
                    Err(format) => return bad_gateway(format),
                },
                Prelude::NeedMore if !super::streaming::prelude_too_long(&buf) => {
                    match head.chunks.recv().await {
                        Some(chunk) => buf.extend_from_slice(&chunk),
                        // Ended (or failed) before the prelude was complete.
                        None => return bad_gateway(format),
                    }
                }
                _ => return bad_gateway(format),
            }
        }
    } else {
        let mut resp = StatusCode::OK.into_response();
        let content_type = head
            .content_type
            .clone()
            .unwrap_or_else(|| "application/octet-stream".into());
        set(resp.headers_mut(), "content-type", &content_type);
        (resp, Bytes::new())
    };
    let (tx, rx) = tokio::sync::mpsc::channel(super::streaming::CHANNEL_DEPTH);
    tokio::spawn(async move {
        if !first.is_empty() && tx.send(Ok(first)).await.is_err() {
            return;
        }
        while let Some(chunk) = head.chunks.recv().await {
            if tx.send(Ok(chunk)).await.is_err() {
                return; // the client left; the invocation goes on alone
            }
        }
        let failed = !matches!(run.await, Ok(r) if r.function_error.is_none());
        if failed {
            let _ = tx
                .send(Err(
                    "the function failed while streaming its response".into()
                ))
                .await;
        }
    });
    *resp.body_mut() = Body::new(ChannelBody::new(rx));
    resp
}
