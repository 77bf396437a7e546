//! The HTTP front: a plain HTTP request becomes the event a function gets
//! behind a function URL (payload 2.0), an API Gateway HTTP API (2.0), a
//! REST API (1.0) or an Application Load Balancer, and the function's answer
//! becomes the HTTP response those front ends would send (contract
//! section 4). Also answers CORS preflights the way function URLs do.
//!
//! **Invariant:** this module only translates between HTTP and events; it
//! runs invocations through the function pool like the Invoke API does and
//! knows nothing of configuration files (it is given an [`HttpFront`] on the
//! [`FunctionSpec`](super::FunctionSpec)).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use base64::Engine;
use serde_json::{Map, Value, json};

use super::http_routes::{PayloadFormat, Routed};
use super::invoke_api::{MAX_SYNC_REQUEST, trace_id_from};
use super::pool::{FunctionPool, Job};
use super::{LOCAL_ACCOUNT_ID, Shared};

/// The event a function gets for an HTTP request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HttpEventFormat {
    /// Function URL, payload format 2.0.
    #[default]
    FunctionUrl,
    /// API Gateway HTTP API, payload format 2.0.
    HttpApi,
    /// API Gateway REST API proxy integration, payload format 1.0.
    RestApi,
    /// Application Load Balancer target (single-value headers).
    Alb,
}

impl HttpEventFormat {
    fn is_v2(self) -> bool {
        matches!(self, Self::FunctionUrl | Self::HttpApi)
    }
}

/// CORS as a function URL applies it. Empty lists allow nothing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CorsPolicy {
    /// Origins, or `*`.
    pub allow_origins: Vec<String>,
    /// Methods, or `*`.
    pub allow_methods: Vec<String>,
    pub allow_headers: Vec<String>,
    pub expose_headers: Vec<String>,
    pub allow_credentials: bool,
    pub max_age: Option<u32>,
}

impl CorsPolicy {
    fn allowed_origin<'a>(&self, origin: &'a str) -> Option<&'a str> {
        self.allow_origins
            .iter()
            .any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
            .then_some(origin)
    }

    /// Headers for a response to a request from `origin`.
    fn apply(&self, origin: Option<&str>, headers: &mut HeaderMap) {
        let Some(origin) = origin.and_then(|o| self.allowed_origin(o)) else {
            return;
        };
        let allow = if self.allow_origins.iter().any(|o| o == "*") && !self.allow_credentials {
            "*"
        } else {
            origin
        };
        set(headers, "access-control-allow-origin", allow);
        if self.allow_credentials {
            set(headers, "access-control-allow-credentials", "true");
        }
        if !self.expose_headers.is_empty() {
            set(
                headers,
                "access-control-expose-headers",
                &self.expose_headers.join(","),
            );
        }
        if allow != "*" {
            set(headers, "vary", "Origin");
        }
    }

    /// The answer to a preflight, which never reaches the function.
    fn preflight(&self, origin: Option<&str>, request: &HeaderMap) -> Response {
        let mut headers = HeaderMap::new();
        self.apply(origin, &mut headers);
        if headers.contains_key("access-control-allow-origin") {
            let method = header(request, "access-control-request-method").unwrap_or("");
            if self
                .allow_methods
                .iter()
                .any(|m| m == "*" || m.eq_ignore_ascii_case(method))
            {
                set(&mut headers, "access-control-allow-methods", method);
            }
            let requested = header(request, "access-control-request-headers").unwrap_or("");
            let allowed: Vec<&str> = requested
                .split(',')
                .map(str::trim)
                .filter(|h| {
                    !h.is_empty()
                        && self
                            .allow_headers
                            .iter()
                            .any(|a| a == "*" || a.eq_ignore_ascii_case(h))
                })
                .collect();
            if !allowed.is_empty() {
                set(
                    &mut headers,
                    "access-control-allow-headers",
                    &allowed.join(","),
                );
            }
            if let Some(age) = self.max_age {
                set(&mut headers, "access-control-max-age", &age.to_string());
            }
        }
        (StatusCode::OK, headers).into_response()
    }
}

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

fn set(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(name, v);
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Routes of the HTTP front, added to the Invoke API's router.
pub(crate) fn routes(router: Router<Arc<Shared>>) -> Router<Arc<Shared>> {
    router
        .route("/lambda-url/{function}", any(named))
        .route("/lambda-url/{function}/", any(named))
        .route("/lambda-url/{function}/{*path}", any(named))
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

/// What the real front ends answer when the function fails or answers
/// something they cannot map.
fn bad_gateway(format: HttpEventFormat) -> Response {
    let (content_type, body) = match format {
        HttpEventFormat::FunctionUrl => ("text/plain", "Internal Server Error".to_string()),
        HttpEventFormat::Alb => (
            "text/html",
            "<html><body><h1>502 Bad Gateway</h1></body></html>".to_string(),
        ),
        _ => (
            "application/json",
            json!({"message": "Internal Server Error"}).to_string(),
        ),
    };
    (
        StatusCode::BAD_GATEWAY,
        [("content-type", content_type)],
        body,
    )
        .into_response()
}

/// The parts of a request an event is built from.
struct Incoming<'a> {
    method: &'a str,
    path: &'a str,
    query: &'a str,
    headers: &'a HeaderMap,
    body: &'a [u8],
    source_ip: &'a str,
    request_id: &'a str,
    function: &'a str,
    region: &'a str,
    now: SystemTime,
}

/// Body as the front ends pass it: text as is, anything else base64.
fn event_body(headers: &HeaderMap, body: &[u8]) -> (Value, bool) {
    if body.is_empty() {
        return (Value::Null, false);
    }
    let textual = match header(headers, "content-type") {
        None => true,
        Some(ct) => {
            let ct = ct.to_ascii_lowercase();
            ct.starts_with("text/")
                || ct.contains("json")
                || ct.contains("xml")
                || ct.contains("javascript")
                || ct.starts_with("application/x-www-form-urlencoded")
        }
    };
    match std::str::from_utf8(body) {
        Ok(s) if textual => (Value::String(s.to_string()), false),
        _ => (
            Value::String(base64::engine::general_purpose::STANDARD.encode(body)),
            true,
        ),
    }
}

/// Header name -> every value, in order, names lower-cased.
fn multi_headers(headers: &HeaderMap) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        match out.iter_mut().find(|(n, _)| n == name.as_str()) {
            Some((_, values)) => values.push(value),
            None => out.push((name.as_str().to_string(), vec![value])),
        }
    }
    out
}

/// Query key -> every decoded value, keys in first-seen order.
fn multi_query(query: &str) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match out.iter_mut().find(|(n, _)| *n == k) {
            Some((_, values)) => values.push(v.into_owned()),
            None => out.push((k.into_owned(), vec![v.into_owned()])),
        }
    }
    out
}

fn joined(pairs: &[(String, Vec<String>)]) -> Value {
    Value::Object(
        pairs
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.join(","))))
            .collect(),
    )
}

fn last(pairs: &[(String, Vec<String>)]) -> Value {
    Value::Object(
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    Value::String(v.last().cloned().unwrap_or_default()),
                )
            })
            .collect(),
    )
}

fn all(pairs: &[(String, Vec<String>)]) -> Value {
    Value::Object(pairs.iter().map(|(k, v)| (k.clone(), json!(v))).collect())
}

/// `null` for an empty map, as the front ends send it.
fn or_null(v: Value) -> Value {
    match &v {
        Value::Object(m) if m.is_empty() => Value::Null,
        _ => v,
    }
}

/// A stable 32-character URL id for a function name, so the domain in the
/// event looks like a function URL's and stays the same across runs.
fn url_id(function: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(function.as_bytes());
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
    digest
        .iter()
        .take(32)
        .map(|b| ALPHABET[(*b as usize) % 32] as char)
        .collect()
}

/// Builds the event for `format`.
fn build_event(format: HttpEventFormat, r: &Incoming<'_>) -> Value {
    let since = r.now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let epoch_ms = since.as_millis() as u64;
    let (body, is_base64) = event_body(r.headers, r.body);
    let headers = multi_headers(r.headers);
    let query = multi_query(r.query);
    let user_agent = header(r.headers, "user-agent").unwrap_or("");
    match format {
        HttpEventFormat::FunctionUrl | HttpEventFormat::HttpApi => {
            let cookies: Vec<String> = headers
                .iter()
                .filter(|(n, _)| n == "cookie")
                .flat_map(|(_, v)| v.iter())
                .flat_map(|v| v.split(';'))
                .map(|c| c.trim().to_string())
                .filter(|c| !c.is_empty())
                .collect();
            let headers: Vec<_> = headers.into_iter().filter(|(n, _)| n != "cookie").collect();
            let id = url_id(r.function);
            let domain = if format == HttpEventFormat::FunctionUrl {
                format!("{id}.lambda-url.{}.on.aws", r.region)
            } else {
                format!("{id}.execute-api.{}.amazonaws.com", r.region)
            };
            let mut event = json!({
                "version": "2.0",
                "routeKey": "$default",
                "rawPath": r.path,
                "rawQueryString": r.query,
                "headers": joined(&headers),
                "requestContext": {
                    "accountId": LOCAL_ACCOUNT_ID,
                    "apiId": id,
                    "domainName": domain,
                    "domainPrefix": id,
                    "http": {
                        "method": r.method,
                        "path": r.path,
                        "protocol": "HTTP/1.1",
                        "sourceIp": r.source_ip,
                        "userAgent": user_agent,
                    },
                    "requestId": r.request_id,
                    "routeKey": "$default",
                    "stage": "$default",
                    "time": clf_time(since.as_secs()),
                    "timeEpoch": epoch_ms,
                },
                "isBase64Encoded": is_base64,
            });
            let obj = event.as_object_mut().expect("object");
            if !cookies.is_empty() {
                obj.insert("cookies".into(), json!(cookies));
            }
            if !query.is_empty() {
                obj.insert("queryStringParameters".into(), joined(&query));
            }
            if !body.is_null() {
                obj.insert("body".into(), body);
            }
            event
        }
        HttpEventFormat::RestApi => {
            let id = &url_id(r.function)[..10];
            json!({
                "resource": "/{proxy+}",
                "path": r.path,
                "httpMethod": r.method,
                "headers": or_null(last(&headers)),
                "multiValueHeaders": or_null(all(&headers)),
                "queryStringParameters": or_null(last(&query)),
                "multiValueQueryStringParameters": or_null(all(&query)),
                "pathParameters": {"proxy": r.path.trim_start_matches('/')},
                "stageVariables": null,
                "requestContext": {
                    "accountId": LOCAL_ACCOUNT_ID,
                    "resourceId": "local",
                    "stage": "$default",
                    "requestId": r.request_id,
                    "extendedRequestId": r.request_id,
                    "identity": {"sourceIp": r.source_ip, "userAgent": user_agent},
                    "resourcePath": "/{proxy+}",
                    "httpMethod": r.method,
                    "apiId": id,
                    "path": r.path,
                    "protocol": "HTTP/1.1",
                    "requestTime": clf_time(since.as_secs()),
                    "requestTimeEpoch": epoch_ms,
                    "domainName": format!("{id}.execute-api.{}.amazonaws.com", r.region),
                },
                "body": body,
                "isBase64Encoded": is_base64,
            })
        }
        HttpEventFormat::Alb => {
            // ALB passes query values as received (still URL-encoded).
            let raw_query: Map<String, Value> = r
                .query
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (k.to_string(), Value::String(v.to_string()))
                })
                .collect();
            json!({
                "requestContext": {"elb": {"targetGroupArn": format!(
                    "arn:aws:elasticloadbalancing:{}:{LOCAL_ACCOUNT_ID}:targetgroup/{}/local",
                    r.region, r.function
                )}},
                "httpMethod": r.method,
                "path": r.path,
                "queryStringParameters": raw_query,
                "headers": last(&headers),
                "body": if body.is_null() { Value::String(String::new()) } else { body },
                "isBase64Encoded": is_base64,
            })
        }
    }
}

/// `07/Sep/2021:22:50:22 +0000`, the time format of the events.
fn clf_time(secs: u64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{day:02}/{}/{year}:{:02}:{:02}:{:02} +0000",
        MONTHS[(month - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The function's answer as an HTTP response, or `Err(format)` for a 502.
fn map_response(format: HttpEventFormat, body: &[u8]) -> Result<Response, HttpEventFormat> {
    if let Some((prelude, rest)) = split_prelude(body) {
        return prelude_response(format, &prelude, rest);
    }
    let value: Value = serde_json::from_slice(body).map_err(|_| format)?;
    let has_status = value.get("statusCode").is_some();
    if !has_status {
        if format.is_v2() {
            // Inference: valid JSON without a statusCode is the body itself.
            return Ok((
                StatusCode::OK,
                [("content-type", "application/json")],
                Bytes::copy_from_slice(body),
            )
                .into_response());
        }
        return Err(format);
    }
    let status = value["statusCode"]
        .as_u64()
        .and_then(|s| u16::try_from(s).ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .ok_or(format)?;
    let mut headers = HeaderMap::new();
    if let Some(map) = value.get("headers").and_then(Value::as_object) {
        for (k, v) in map {
            if let (Ok(name), Some(Ok(val))) = (
                HeaderName::from_bytes(k.as_bytes()),
                scalar(v).map(|s| HeaderValue::from_str(&s)),
            ) {
                headers.insert(name, val);
            }
        }
    }
    if let Some(map) = value.get("multiValueHeaders").and_then(Value::as_object) {
        for (k, vs) in map {
            let Ok(name) = HeaderName::from_bytes(k.as_bytes()) else {
                continue;
            };
            headers.remove(&name);
            for v in vs.as_array().into_iter().flatten() {
                if let Some(Ok(val)) = scalar(v).map(|s| HeaderValue::from_str(&s)) {
                    headers.append(name.clone(), val);
                }
            }
        }
    }
    if format.is_v2() {
        for c in value
            .get("cookies")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(Ok(val)) = c.as_str().map(HeaderValue::from_str) {
                headers.append("set-cookie", val);
            }
        }
    }
    let text = match value.get("body") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    let bytes = if value.get("isBase64Encoded").and_then(Value::as_bool) == Some(true) {
        base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map_err(|_| format)?
    } else {
        text.into_bytes()
    };
    let mut resp = Response::new(Body::from(bytes));
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    Ok(resp)
}

/// A streaming function's HTTP integration answer: a JSON prelude, 8 NUL
/// bytes, then the body (contract 1.5). `None` for any other answer (a
/// buffered JSON answer never contains NUL bytes after its value).
fn split_prelude(body: &[u8]) -> Option<(Value, &[u8])> {
    let mut values = serde_json::Deserializer::from_slice(body).into_iter::<Value>();
    let prelude = values.next()?.ok()?;
    let rest = body[values.byte_offset()..].strip_prefix(&[0u8; 8][..])?;
    prelude.is_object().then_some((prelude, rest))
}

/// The prelude's status, headers and cookies with the raw body. The body is
/// delivered once the function has finished (buffered, not streamed).
fn prelude_response(
    format: HttpEventFormat,
    prelude: &Value,
    body: &[u8],
) -> Result<Response, HttpEventFormat> {
    let mut object = prelude.as_object().cloned().ok_or(format)?;
    object.remove("isBase64Encoded");
    object.entry("statusCode").or_insert(json!(200));
    let mut resp = map_response(format, Value::Object(object).to_string().as_bytes())?;
    *resp.body_mut() = Body::from(body.to_vec());
    Ok(resp)
}

/// Header values may be numbers or booleans in a response object.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incoming<'a>(headers: &'a HeaderMap, query: &'a str, body: &'a [u8]) -> Incoming<'a> {
        Incoming {
            method: "POST",
            path: "/items/7",
            query,
            headers,
            body,
            source_ip: "127.0.0.1",
            request_id: "req-1",
            function: "api",
            region: "us-east-1",
            now: UNIX_EPOCH + std::time::Duration::from_millis(1_631_055_022_123),
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn function_url_event_joins_repeats_and_moves_cookies() {
        let h = headers(&[
            ("x-tag", "a"),
            ("x-tag", "b"),
            ("cookie", "s=1; t=2"),
            ("content-type", "application/json"),
            ("user-agent", "curl/8"),
        ]);
        let e = build_event(
            HttpEventFormat::FunctionUrl,
            &incoming(&h, "q=1&q=2&x=%20y", br#"{"a":1}"#),
        );
        assert_eq!(e["version"], "2.0");
        assert_eq!(e["rawPath"], "/items/7");
        assert_eq!(e["rawQueryString"], "q=1&q=2&x=%20y");
        assert_eq!(e["headers"]["x-tag"], "a,b");
        assert!(e["headers"].get("cookie").is_none());
        assert_eq!(e["cookies"], json!(["s=1", "t=2"]));
        assert_eq!(e["queryStringParameters"], json!({"q": "1,2", "x": " y"}));
        assert_eq!(e["body"], r#"{"a":1}"#);
        assert_eq!(e["isBase64Encoded"], false);
        let ctx = &e["requestContext"];
        assert_eq!(ctx["http"]["method"], "POST");
        assert_eq!(ctx["http"]["userAgent"], "curl/8");
        assert_eq!(ctx["stage"], "$default");
        assert_eq!(ctx["time"], "07/Sep/2021:22:50:22 +0000");
        assert_eq!(ctx["timeEpoch"], 1_631_055_022_123u64);
        let id = ctx["apiId"].as_str().unwrap();
        assert_eq!(id.len(), 32);
        assert_eq!(
            ctx["domainName"],
            format!("{id}.lambda-url.us-east-1.on.aws")
        );
    }

    #[test]
    fn binary_bodies_are_base64() {
        let h = headers(&[("content-type", "application/octet-stream")]);
        let e = build_event(
            HttpEventFormat::HttpApi,
            &incoming(&h, "", &[0, 159, 146, 150]),
        );
        assert_eq!(e["isBase64Encoded"], true);
        assert_eq!(e["body"], "AJ+Slg==");
        // Invalid UTF-8 is binary whatever the content type says.
        let h = headers(&[("content-type", "text/plain")]);
        let e = build_event(HttpEventFormat::HttpApi, &incoming(&h, "", &[0xff, 0xfe]));
        assert_eq!(e["isBase64Encoded"], true);
    }

    #[test]
    fn rest_event_has_multi_value_maps() {
        let h = headers(&[("x-tag", "a"), ("x-tag", "b")]);
        let e = build_event(HttpEventFormat::RestApi, &incoming(&h, "q=1&q=2", b""));
        assert_eq!(e["httpMethod"], "POST");
        assert_eq!(e["headers"]["x-tag"], "b");
        assert_eq!(e["multiValueHeaders"]["x-tag"], json!(["a", "b"]));
        assert_eq!(e["queryStringParameters"]["q"], "2");
        assert_eq!(e["multiValueQueryStringParameters"]["q"], json!(["1", "2"]));
        assert_eq!(e["pathParameters"]["proxy"], "items/7");
        assert_eq!(e["body"], Value::Null);
    }

    #[test]
    fn alb_event_keeps_query_encoded() {
        let h = headers(&[]);
        let e = build_event(HttpEventFormat::Alb, &incoming(&h, "x=%20y", b""));
        assert_eq!(e["queryStringParameters"]["x"], "%20y");
        assert!(
            e["requestContext"]["elb"]["targetGroupArn"]
                .as_str()
                .unwrap()
                .contains(":targetgroup/api/")
        );
    }

    async fn read(resp: Response) -> (StatusCode, HeaderMap, Vec<u8>) {
        let (parts, body) = resp.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        (parts.status, parts.headers, body.to_vec())
    }

    #[tokio::test]
    async fn responses_map_like_function_urls() {
        let r = map_response(
            HttpEventFormat::FunctionUrl,
            br#"{"statusCode":201,"headers":{"x-a":"1"},"cookies":["a=1","b=2"],"body":"AAE=","isBase64Encoded":true}"#,
        )
        .unwrap();
        let (status, h, body) = read(r).await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(h["x-a"], "1");
        let cookies: Vec<_> = h.get_all("set-cookie").iter().collect();
        assert_eq!(cookies, ["a=1", "b=2"]);
        assert_eq!(body, [0, 1]);

        // Inference: JSON without statusCode, and a bare string.
        let (status, h, body) =
            read(map_response(HttpEventFormat::FunctionUrl, br#"{"ok":true}"#).unwrap()).await;
        assert_eq!(
            (status, &h["content-type"]),
            (
                StatusCode::OK,
                &HeaderValue::from_static("application/json")
            )
        );
        assert_eq!(body, br#"{"ok":true}"#);
        let (_, _, body) =
            read(map_response(HttpEventFormat::FunctionUrl, br#""Hello""#).unwrap()).await;
        assert_eq!(body, br#""Hello""#);

        // REST and ALB need a statusCode; invalid JSON is a 502 anywhere.
        assert!(map_response(HttpEventFormat::RestApi, br#"{"ok":true}"#).is_err());
        assert!(map_response(HttpEventFormat::FunctionUrl, b"not json").is_err());
        let (_, h, _) = read(
            map_response(
                HttpEventFormat::Alb,
                br#"{"statusCode":200,"multiValueHeaders":{"set-cookie":["a=1","b=2"]}}"#,
            )
            .unwrap(),
        )
        .await;
        assert_eq!(h.get_all("set-cookie").iter().count(), 2);
    }

    #[tokio::test]
    async fn streaming_prelude_answers_map_to_their_body() {
        let mut answer =
            br#"{"statusCode":202,"headers":{"content-type":"text/plain"},"cookies":["s=1"]}"#
                .to_vec();
        answer.extend_from_slice(&[0; 8]);
        answer.extend_from_slice(b"raw \0 body");
        let (status, h, body) =
            read(map_response(HttpEventFormat::FunctionUrl, &answer).unwrap()).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        assert_eq!(h["content-type"], "text/plain");
        assert_eq!(h["set-cookie"], "s=1");
        assert_eq!(body, b"raw \0 body");
        // Without the 8 NUL bytes it is not a prelude.
        assert!(split_prelude(br#"{"a":1} tail"#).is_none());
    }

    #[test]
    fn cors_preflight_and_headers() {
        let cors = CorsPolicy {
            allow_origins: vec!["http://localhost:3000".into()],
            allow_methods: vec!["GET".into(), "POST".into()],
            allow_headers: vec!["content-type".into()],
            max_age: Some(600),
            ..CorsPolicy::default()
        };
        let req = headers(&[
            ("access-control-request-method", "POST"),
            ("access-control-request-headers", "content-type, x-other"),
        ]);
        let resp = cors.preflight(Some("http://localhost:3000"), &req);
        let h = resp.headers();
        assert_eq!(h["access-control-allow-origin"], "http://localhost:3000");
        assert_eq!(h["access-control-allow-methods"], "POST");
        assert_eq!(h["access-control-allow-headers"], "content-type");
        assert_eq!(h["access-control-max-age"], "600");
        let resp = cors.preflight(Some("http://evil.example"), &req);
        assert!(!resp.headers().contains_key("access-control-allow-origin"));
    }

    #[test]
    fn clf_time_formats_dates() {
        assert_eq!(clf_time(0), "01/Jan/1970:00:00:00 +0000");
        assert_eq!(clf_time(951_782_400), "29/Feb/2000:00:00:00 +0000");
    }
}
