//! The Lambda API's durable execution operations, as AWS serves them
//! (REST-JSON under `/2025-12-01/`), plus the Invoke API's durable start:
//! one handler per operation, each reading its path labels, query and
//! body and answering in the API's shape. Anything else is handed back.
//!
//! Served: CheckpointDurableExecution, GetDurableExecutionState,
//! GetDurableExecution, GetDurableExecutionHistory,
//! ListDurableExecutionsByFunction, StopDurableExecution,
//! SendDurableExecutionCallbackSuccess / Failure / Heartbeat, and Invoke
//! (RequestResponse, Event, DryRun) of a durable function; and
//! `POST /_cargo-fn/api/durable/advance` (skip to the next timer).

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use percent_encoding::percent_decode_str;
use serde_json::{Value, json};

use super::DurableService;
use super::store::{CallbackOutcome, ExecStatus, Refusal, STATE_PAGE};

/// The largest body read (a checkpoint carries at most a few MB).
const MAX_BODY: usize = 16 * 1024 * 1024;
/// The longest execution a synchronous invoke waits for (Lambda's limit).
pub const MAX_SYNC_EXECUTION: u32 = 900;

/// The path of the "skip to the next timer" call.
pub const ADVANCE_PATH: &str = "/_cargo-fn/api/durable/advance";

/// Serves `req` when it is a durable operation; hands it back otherwise.
pub async fn serve(svc: &DurableService, req: Request) -> Result<Response, Request> {
    let path = req.uri().path().to_string();
    let method = req.method().as_str().to_string();
    if path == ADVANCE_PATH && method == "POST" {
        return Ok(advance(svc));
    }
    // Labels are percent-encoded (an execution ARN's `/` and `:`): split
    // first, then decode each segment.
    let segments: Vec<String> = path
        .trim_start_matches('/')
        .split('/')
        .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect();
    let seg: Vec<&str> = segments.iter().map(String::as_str).collect();
    let query = query_pairs(&req);
    let route = match (method.as_str(), seg.as_slice()) {
        ("POST", ["2015-03-31", "functions", name, "invocations"])
            if svc.durable_config(&function_name(name)).is_some() =>
        {
            Route::Invoke(function_name(name))
        }
        ("POST", ["2025-12-01", "durable-executions", arn, "checkpoint"]) => {
            Route::Checkpoint(arn.to_string())
        }
        ("GET", ["2025-12-01", "durable-executions", arn, "state"]) => {
            Route::State(arn.to_string())
        }
        ("GET", ["2025-12-01", "durable-executions", arn, "history"]) => {
            Route::History(arn.to_string())
        }
        ("POST", ["2025-12-01", "durable-executions", arn, "stop"]) => Route::Stop(arn.to_string()),
        ("GET", ["2025-12-01", "durable-executions", arn]) => Route::Get(arn.to_string()),
        ("GET", ["2025-12-01", "functions", name, "durable-executions"]) => {
            Route::List(function_name(name))
        }
        ("POST", ["2025-12-01", "durable-execution-callbacks", id, action]) => {
            Route::Callback(id.to_string(), action.to_string())
        }
        _ => return Err(req),
    };
    let headers = req.headers().clone();
    let body = match axum::body::to_bytes(req.into_body(), MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return Ok(refused(Refusal {
                status: 413,
                code: "RequestTooLargeException",
                message: format!("the request body is larger than {MAX_BODY} bytes"),
            }));
        }
    };
    let q = |k: &str| {
        query
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    let answer = match route {
        Route::Invoke(function) => return Ok(invoke(svc, &function, &headers, &body).await),
        Route::Checkpoint(arn) => json_body(&body).and_then(|input| {
            let token = input
                .get("CheckpointToken")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let updates = input
                .get("Updates")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            svc.checkpoint(&arn, &token, &updates)
        }),
        Route::State(arn) => {
            let token = q("CheckpointToken").unwrap_or_default();
            let max = max_items(q("MaxItems"), STATE_PAGE, 1000);
            max.and_then(|max| {
                svc.read(&arn, |ex| {
                    ex.state_page(&token, q("Marker").as_deref(), max)
                })
            })
        }
        Route::Get(arn) => svc.read(&arn, |ex| Ok(ex.to_json())),
        Route::History(arn) => {
            let include = q("IncludeExecutionData").as_deref() == Some("true");
            let reverse = q("ReverseOrder").as_deref() == Some("true");
            max_items(q("MaxItems"), 100, 1000).and_then(|max| {
                svc.read(&arn, |ex| {
                    ex.history(include, reverse, q("Marker").as_deref(), max)
                })
            })
        }
        Route::Stop(arn) => {
            let error = if body.iter().all(u8::is_ascii_whitespace) {
                Ok(None)
            } else {
                json_body(&body).map(Some)
            };
            error.and_then(|e| svc.stop_execution(&arn, e))
        }
        Route::List(function) => list(svc, &function, &query),
        Route::Callback(id, action) => {
            let outcome = match action.as_str() {
                "succeed" => Ok(CallbackOutcome::Success(
                    String::from_utf8_lossy(&body).into_owned(),
                )),
                "fail" => {
                    if body.iter().all(u8::is_ascii_whitespace) {
                        Ok(CallbackOutcome::Failure(json!({})))
                    } else {
                        json_body(&body).map(CallbackOutcome::Failure)
                    }
                }
                "heartbeat" => Ok(CallbackOutcome::Heartbeat),
                other => Err(Refusal::not_found(format!(
                    "no callback operation `{other}`: use succeed, fail or heartbeat"
                ))),
            };
            outcome.and_then(|o| svc.complete_callback(&id, o).map(|()| json!({})))
        }
    };
    Ok(match answer {
        Ok(v) => json_response(StatusCode::OK, &v),
        Err(r) => refused(r),
    })
}

enum Route {
    Invoke(String),
    Checkpoint(String),
    State(String),
    Get(String),
    History(String),
    Stop(String),
    List(String),
    Callback(String, String),
}

/// `my-fn`, `my-fn:$LATEST`, `arn:aws:lambda:r:a:function:my-fn[:q]`:
/// the function's name.
pub fn function_name(given: &str) -> String {
    let rest = given
        .split_once(":function:")
        .map(|(_, r)| r)
        .unwrap_or(given);
    rest.split(':').next().unwrap_or(rest).to_string()
}

fn query_pairs(req: &Request) -> Vec<(String, String)> {
    req.uri()
        .query()
        .map(|q| {
            form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

fn max_items(given: Option<String>, default: usize, max: usize) -> Result<usize, Refusal> {
    match given {
        None => Ok(default),
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| Refusal::invalid(format!("MaxItems must be 1-{max}, got `{s}`"))),
    }
}

fn json_body(body: &[u8]) -> Result<Value, Refusal> {
    match serde_json::from_slice::<Value>(body) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err(Refusal::invalid("the request body is not a JSON object")),
    }
}

fn json_response(status: StatusCode, v: &Value) -> Response {
    let mut resp = (status, v.to_string()).into_response();
    let h = resp.headers_mut();
    h.insert("content-type", HeaderValue::from_static("application/json"));
    if let Ok(id) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
        h.insert("x-amzn-requestid", id);
    }
    resp
}

/// An error as the Lambda API sends it: the type in `x-amzn-ErrorType`
/// and the body.
pub fn refused(r: Refusal) -> Response {
    let body = json!({ "Type": "User", "message": r.message });
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut resp = json_response(status, &body);
    resp.headers_mut()
        .insert("x-amzn-errortype", HeaderValue::from_static(r.code));
    resp
}

/// `ListDurableExecutionsByFunction`: oldest first, newest first with
/// `ReverseOrder=true` (the API reference: "Default is false").
fn list(
    svc: &DurableService,
    function: &str,
    query: &[(String, String)],
) -> Result<Value, Refusal> {
    if svc.durable_config(function).is_none() {
        return Err(Refusal::not_found(format!(
            "Function not found or not durable: {function}"
        )));
    }
    let mut statuses = Vec::new();
    let mut name = None;
    let mut after = None;
    let mut before = None;
    let mut reverse = false;
    let mut marker = None;
    let mut max = None;
    for (k, v) in query {
        match k.as_str() {
            "Statuses" => statuses.push(ExecStatus::parse(v).ok_or_else(|| {
                Refusal::invalid(format!(
                    "Statuses: `{v}` is not RUNNING, SUCCEEDED, FAILED, TIMED_OUT or STOPPED"
                ))
            })?),
            "DurableExecutionName" => name = Some(v.clone()),
            "StartedAfter" => after = parse_time(v),
            "StartedBefore" => before = parse_time(v),
            "ReverseOrder" => reverse = v == "true",
            "Marker" => marker = Some(v.clone()),
            "MaxItems" => max = Some(v.clone()),
            _ => {}
        }
    }
    let max = max_items(max, 50, 1000)?;
    let mut found = svc.executions_of(function, |ex| {
        (statuses.is_empty() || statuses.contains(&ex.status))
            && name.as_ref().is_none_or(|n| *n == ex.name)
            && after.is_none_or(|t| ex.start > t)
            && before.is_none_or(|t| ex.start < t)
    });
    found.sort_by(|a, b| a.start.total_cmp(&b.start));
    if reverse {
        found.reverse();
    }
    let from = match marker.as_deref() {
        None | Some("") => 0,
        Some(m) => m
            .parse::<usize>()
            .map_err(|_| Refusal::invalid(format!("invalid Marker `{m}`")))?,
    };
    let page: Vec<Value> = found
        .iter()
        .skip(from)
        .take(max)
        .map(|ex| ex.summary())
        .collect();
    let mut out = json!({ "DurableExecutions": page });
    if from + max < found.len() {
        out["NextMarker"] = json!((from + max).to_string());
    }
    Ok(out)
}

/// A timestamp query value: epoch seconds or RFC 3339 (`2025-01-01T00:00:00Z`).
fn parse_time(v: &str) -> Option<f64> {
    if let Ok(n) = v.parse::<f64>() {
        return Some(n);
    }
    let (date, time) = v.trim_end_matches('Z').split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.split(':').map(|p| p.parse::<f64>().ok());
    let (h, min, s) = (t.next()??, t.next()??, t.next().flatten().unwrap_or(0.0));
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days as f64 * 86_400.0 + h * 3600.0 + min * 60.0 + s)
}

/// `POST /_cargo-fn/api/durable/advance`: skips to the next wait or retry.
fn advance(svc: &DurableService) -> Response {
    let skipped = svc.advance();
    json_response(
        StatusCode::OK,
        &json!({ "skippedSeconds": skipped, "now": svc.clock().now() }),
    )
}

/// Invoke of a durable function: starts an execution. `Event` answers
/// 202 at once; `RequestResponse` waits for the end (executions of at
/// most 15 minutes, as on AWS); `DryRun` only checks.
async fn invoke(
    svc: &DurableService,
    function: &str,
    headers: &axum::http::HeaderMap,
    body: &[u8],
) -> Response {
    let header = |k: &str| headers.get(k).and_then(|v| v.to_str().ok());
    let kind = header("x-amz-invocation-type").unwrap_or("RequestResponse");
    let Some(config) = svc.durable_config(function) else {
        return refused(Refusal::not_found(format!(
            "Function not found: {function}"
        )));
    };
    // Lambda's payload limits: 6 MB synchronous, 1 MB asynchronous.
    let limit = if kind == "Event" {
        1_048_576
    } else {
        crate::emulator::MAX_SYNC_REQUEST - 1
    };
    if body.len() > limit {
        return refused(Refusal {
            status: 413,
            code: "RequestTooLargeException",
            message: format!(
                "Request must be smaller than {} bytes for the Invoke operation",
                limit + 1
            ),
        });
    }
    let input = if body.iter().all(u8::is_ascii_whitespace) {
        "{}".to_string()
    } else if serde_json::from_slice::<Value>(body).is_err() {
        return refused(Refusal {
            status: 400,
            code: "InvalidRequestContentException",
            message: "Could not parse request body into json: the payload is not JSON".into(),
        });
    } else {
        String::from_utf8_lossy(body).into_owned()
    };
    let name = header("x-amz-durable-execution-name").map(String::from);
    if let Some(n) = &name {
        let ok = !n.is_empty()
            && n.len() <= 64
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !ok {
            return refused(Refusal::invalid(format!(
                "DurableExecutionName `{n}`: 1-64 characters of letters, digits, - and _"
            )));
        }
    }
    match kind {
        "RequestResponse" if config.execution_timeout > MAX_SYNC_EXECUTION => {
            return refused(Refusal::invalid(format!(
                "a durable function whose execution timeout is over {MAX_SYNC_EXECUTION} seconds cannot be invoked synchronously ({function}: {} s): invoke it asynchronously (InvocationType Event, `cargo fn invoke --async`)",
                config.execution_timeout
            )));
        }
        "RequestResponse" | "Event" => {}
        "DryRun" => return StatusCode::NO_CONTENT.into_response(),
        other => {
            return refused(Refusal::invalid(format!(
                "X-Amz-Invocation-Type `{other}`: RequestResponse, Event or DryRun"
            )));
        }
    }
    let arn = match svc.start_execution(function, name, input) {
        Ok(arn) => arn,
        Err(r) => return refused(r),
    };
    let with_arn = |mut resp: Response| {
        let h = resp.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&arn) {
            h.insert("x-amz-durable-execution-arn", v);
        }
        h.insert(
            "x-amz-executed-version",
            HeaderValue::from_static("$LATEST"),
        );
        resp
    };
    if kind == "Event" {
        return with_arn(StatusCode::ACCEPTED.into_response());
    }
    let ended = svc.wait_for_end(&arn).await;
    let resp = match ended {
        Some(ex) if ex.status == ExecStatus::Succeeded => {
            let body = ex.result.unwrap_or_else(|| "null".into());
            Response::builder()
                .status(StatusCode::OK)
                .header("content-type", "application/json")
                .body(Body::from(body))
                .expect("response")
        }
        Some(ex) => {
            let error = ex.error.unwrap_or_default();
            let text = |k: &str| error.get(k).and_then(Value::as_str).map(String::from);
            let body = json!({
                "errorType": text("ErrorType").unwrap_or_else(|| format!("Execution{}", title(ex.status))),
                "errorMessage": text("ErrorMessage").unwrap_or_else(|| format!("the durable execution ended {}", ex.status.as_str())),
            });
            Response::builder()
                .status(StatusCode::OK)
                .header("content-type", "application/json")
                .header("x-amz-function-error", "Unhandled")
                .body(Body::from(body.to_string()))
                .expect("response")
        }
        None => refused(Refusal {
            status: 500,
            code: "ServiceException",
            message: "the durable service stopped before the execution ended".into(),
        }),
    };
    with_arn(resp)
}

fn title(s: ExecStatus) -> &'static str {
    match s {
        ExecStatus::Running => "Running",
        ExecStatus::Succeeded => "Succeeded",
        ExecStatus::Failed => "Failed",
        ExecStatus::TimedOut => "TimedOut",
        ExecStatus::Stopped => "Stopped",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_times() {
        assert_eq!(function_name("orders"), "orders");
        assert_eq!(function_name("orders:$LATEST"), "orders");
        assert_eq!(
            function_name("arn:aws:lambda:us-east-1:123456789012:function:orders:live"),
            "orders"
        );
        assert_eq!(parse_time("1970-01-02T00:00:00Z"), Some(86_400.0));
        assert_eq!(parse_time("12.5"), Some(12.5));
        assert_eq!(parse_time("yesterday"), None);
    }
}
