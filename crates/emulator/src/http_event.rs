//! The pure half of the HTTP front: a plain HTTP request becomes the event
//! a function gets behind a function URL (payload 2.0), an API Gateway HTTP
//! API (2.0), a REST API (1.0) or an Application Load Balancer, and the
//! function's answer becomes the HTTP response those front ends would send
//! (contract section 4); CORS as function URLs apply it. No I/O, no
//! invocations: serving is `http_front.rs`.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Map, Value, json};

use super::LOCAL_ACCOUNT_ID;

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
    pub(crate) fn is_v2(self) -> bool {
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
    pub(crate) fn apply(&self, origin: Option<&str>, headers: &mut HeaderMap) {
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
    pub(crate) fn preflight(&self, origin: Option<&str>, request: &HeaderMap) -> Response {
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

pub(crate) fn set(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(name, v);
    }
}

pub(crate) fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// What the real front ends answer when the function fails or answers
/// something they cannot map.
pub(crate) fn bad_gateway(format: HttpEventFormat) -> Response {
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
pub(crate) struct Incoming<'a> {
    pub(crate) method: &'a str,
    pub(crate) path: &'a str,
    pub(crate) query: &'a str,
    pub(crate) headers: &'a HeaderMap,
    pub(crate) body: &'a [u8],
    pub(crate) source_ip: &'a str,
    pub(crate) request_id: &'a str,
    pub(crate) function: &'a str,
    pub(crate) region: &'a str,
    pub(crate) now: SystemTime,
}

/// Body as the front ends pass it: text as is, anything else base64.
pub(crate) fn event_body(headers: &HeaderMap, body: &[u8]) -> (Value, bool) {
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
pub(crate) fn multi_headers(headers: &HeaderMap) -> Vec<(String, Vec<String>)> {
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
pub(crate) fn multi_query(query: &str) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match out.iter_mut().find(|(n, _)| *n == k) {
            Some((_, values)) => values.push(v.into_owned()),
            None => out.push((k.into_owned(), vec![v.into_owned()])),
        }
    }
    out
}

pub(crate) fn joined(pairs: &[(String, Vec<String>)]) -> Value {
    Value::Object(
        pairs
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.join(","))))
            .collect(),
    )
}

pub(crate) fn last(pairs: &[(String, Vec<String>)]) -> Value {
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

pub(crate) fn all(pairs: &[(String, Vec<String>)]) -> Value {
    Value::Object(pairs.iter().map(|(k, v)| (k.clone(), json!(v))).collect())
}

/// `null` for an empty map, as the front ends send it.
pub(crate) fn or_null(v: Value) -> Value {
    match &v {
        Value::Object(m) if m.is_empty() => Value::Null,
        _ => v,
    }
}

/// A stable 32-character URL id for a function name, so the domain in the
/// event looks like a function URL's and stays the same across runs.
pub(crate) fn url_id(function: &str) -> String {
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
pub(crate) fn build_event(format: HttpEventFormat, r: &Incoming<'_>) -> Value {
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
pub(crate) fn clf_time(secs: u64) -> String {
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
pub(crate) fn map_response(
    format: HttpEventFormat,
    body: &[u8],
) -> Result<Response, HttpEventFormat> {
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
pub(crate) fn split_prelude(body: &[u8]) -> Option<(Value, &[u8])> {
    let mut values = serde_json::Deserializer::from_slice(body).into_iter::<Value>();
    let prelude = values.next()?.ok()?;
    let rest = body[values.byte_offset()..].strip_prefix(&[0u8; 8][..])?;
    prelude.is_object().then_some((prelude, rest))
}

/// The prelude's status, headers and cookies with the raw body. The body is
/// delivered once the function has finished (buffered, not streamed).
pub(crate) fn prelude_response(
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
pub(crate) fn scalar(v: &Value) -> Option<String> {
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
