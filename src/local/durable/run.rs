//! The loop that drives one execution: invoke the function with the
//! envelope, read what it answered (SUCCEEDED, FAILED, PENDING), then wait
//! on the clock for the next timer or for news (a callback, a chained
//! invoke's result) and invoke again, until the execution ends.
//!
//! A failed invocation (a crash, a timeout, a killed environment, the
//! SDK's own retryable checkpoint failure) is retried, as Lambda retries
//! it: the next invocation replays the recorded operations, so finished
//! steps are not run again. After [`MAX_INVOCATION_FAILURES`] failures in
//! a row the execution fails with the last error.

use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};

use super::DurableService;
use super::clock::ClockMode;
use super::store::ExecStatus;
use crate::emulator::InvokeRefused;

/// Failed invocations in a row before the execution fails.
pub const MAX_INVOCATION_FAILURES: u32 = 4;

/// What the loop does next.
enum Next {
    Done,
    Invoke(String, Value),
    Wait(Option<(f64, bool)>),
}

/// Drives the execution `arn` until it ends (or the service stops).
pub async fn drive(svc: DurableService, arn: String) {
    let mut changes = svc.inner.changes.subscribe();
    let mut failures = 0u32;
    loop {
        changes.borrow_and_update();
        let mut news = false;
        let next = svc.update_quietly(&arn, |ex, now| {
            news = ex.fire_due(now) || !ex.running();
            Ok(if !ex.running() {
                Next::Done
            } else if ex.needs_invoke {
                let envelope = ex.begin_invocation(super::new_token());
                Next::Invoke(ex.function.clone(), envelope)
            } else {
                Next::Wait(ex.next_due())
            })
        });
        if news {
            svc.changed();
        }
        match next {
            Err(_) => return,
            Ok(Next::Done) => return announce_end(&svc, &arn),
            Ok(Next::Wait(due)) => {
                if let Some((t, true)) = due
                    && svc.clock().mode() == ClockMode::Fast
                {
                    svc.clock().skip_to(t);
                    continue;
                }
                let until = due.map(|(t, _)| t).unwrap_or(f64::MAX);
                tokio::select! {
                    _ = svc.clock().sleep_until(until) => {}
                    r = changes.changed() => if r.is_err() { return },
                }
            }
            Ok(Next::Invoke(function, envelope)) => {
                let ok = invoke_once(&svc, &arn, &function, envelope).await;
                failures = if ok { 0 } else { failures + 1 };
                if failures >= MAX_INVOCATION_FAILURES {
                    let _ = svc.update(&arn, |ex, now| {
                        let error = ex
                            .events
                            .iter()
                            .rev()
                            .find_map(|e| e.pointer("/InvocationCompletedDetails/Error/Payload"))
                            .cloned()
                            .unwrap_or_else(|| json!({"ErrorType": "InvocationFailed"}));
                        ex.finish(ExecStatus::Failed, None, Some(error), now);
                        Ok(())
                    });
                    return;
                }
                if !ok {
                    // Back off as Lambda does between retries: 1, 2, 4 s.
                    let wait = Duration::from_secs(1 << (failures - 1).min(4));
                    let _ = svc.update(&arn, |ex, _| {
                        ex.needs_invoke = true;
                        Ok(())
                    });
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}

/// Says in the watch output how an execution ended.
fn announce_end(svc: &DurableService, arn: &str) {
    let (Some(attached), Ok((function, name, status))) = (
        svc.attached(),
        svc.read(arn, |ex| {
            Ok((ex.function.clone(), ex.name.clone(), ex.status.as_str()))
        }),
    ) else {
        return;
    };
    attached
        .ui
        .status("Durable", format!("{function} execution {name} {status}"));
}

/// One invocation and what it answered; false when it failed (and must
/// be retried).
async fn invoke_once(svc: &DurableService, arn: &str, function: &str, envelope: Value) -> bool {
    let Some(attached) = svc.attached() else {
        return false;
    };
    let started = svc.clock().now();
    let caller = format!("durable:{}", arn.rsplit('/').nth(1).unwrap_or("execution"));
    let outcome = attached
        .invoker
        .invoke(function, Bytes::from(envelope.to_string()), &caller)
        .await;
    let (request_id, answer) = match outcome {
        Err(InvokeRefused::Throttled) => {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let _ = svc.update(arn, |ex, _| {
                ex.needs_invoke = true;
                Ok(())
            });
            return true;
        }
        Err(InvokeRefused::NoSuchFunction) => (
            String::new(),
            Err(json!({
                "ErrorType": "ResourceNotFoundException",
                "ErrorMessage": format!("function {function} is not served (now)"),
            })),
        ),
        Ok(invoked) => {
            let body: Value = serde_json::from_slice(&invoked.body).unwrap_or(Value::Null);
            let answer = if invoked.function_error.is_some() {
                Err(lambda_error(&body))
            } else {
                Ok(body)
            };
            (invoked.request_id, answer)
        }
    };
    let result = svc.update(arn, |ex, now| {
        if !ex.running() {
            return Ok(true);
        }
        let status = answer
            .as_ref()
            .ok()
            .and_then(|b| b.get("Status"))
            .and_then(Value::as_str)
            .map(String::from);
        let error = match (&answer, status.as_deref()) {
            (Err(e), _) => Some(e.clone()),
            (Ok(_), Some("SUCCEEDED" | "FAILED" | "PENDING")) => None,
            (Ok(b), _) => Some(json!({
                "ErrorType": "InvalidDurableResponse",
                "ErrorMessage": format!("the function answered without a durable Status (is it run by the durable SDK?): {}", truncate(&b.to_string())),
            })),
        };
        ex.invocation_completed(started, now, &request_id, error.clone());
        if error.is_some() {
            return Ok(false);
        }
        let body = answer.as_ref().expect("checked");
        match status.as_deref() {
            Some("SUCCEEDED") => {
                let result = body.get("Result").and_then(|r| match r {
                    Value::String(s) => Some(s.clone()),
                    Value::Null => None,
                    other => Some(other.to_string()),
                });
                ex.finish(ExecStatus::Succeeded, result, None, now);
            }
            Some("FAILED") => {
                let error = body.get("Error").cloned().unwrap_or_else(|| json!({}));
                ex.finish(ExecStatus::Failed, None, Some(error), now);
            }
            _ => {}
        }
        Ok(true)
    });
    result.unwrap_or(true)
}

/// A Lambda function error body (`errorType`, `errorMessage`) as an
/// `ErrorObject`.
fn lambda_error(body: &Value) -> Value {
    let text = |k: &str| body.get(k).and_then(Value::as_str).map(String::from);
    json!({
        "ErrorType": text("errorType").unwrap_or_else(|| "Unhandled".into()),
        "ErrorMessage": text("errorMessage").unwrap_or_else(|| truncate(&body.to_string())),
    })
}

fn truncate(s: &str) -> String {
    s.chars().take(512).collect()
}

/// Runs a chained invoke: another local function, to its end (a durable
/// one through its own execution), and records the outcome.
pub async fn chained_invoke(
    svc: DurableService,
    arn: String,
    op_id: String,
    target: String,
    payload: String,
) {
    let name = super::api::function_name(&target);
    let outcome = if svc.durable_config(&name).is_some() {
        match svc.start_execution(&name, None, payload) {
            Err(r) => Err(json!({ "ErrorType": r.code, "ErrorMessage": r.message })),
            Ok(child) => match svc.wait_for_end(&child).await {
                Some(ex) if ex.status == ExecStatus::Succeeded => {
                    Ok(ex.result.unwrap_or_else(|| "null".into()))
                }
                Some(ex) => Err(ex.error.unwrap_or_else(|| json!({}))),
                None => return,
            },
        }
    } else {
        match svc.attached() {
            None => return,
            Some(a) => {
                let caller = format!("durable-invoke:{}", arn.rsplit('/').nth(1).unwrap_or(""));
                match a.invoker.invoke(&name, Bytes::from(payload), &caller).await {
                    Err(InvokeRefused::NoSuchFunction) => Err(json!({
                        "ErrorType": "ResourceNotFoundException",
                        "ErrorMessage": format!("Function not found: {target} (watch serves no such function)"),
                    })),
                    Err(InvokeRefused::Throttled) => Err(json!({
                        "ErrorType": "TooManyRequestsException",
                        "ErrorMessage": "Rate exceeded (the emulator's concurrency is in use)",
                    })),
                    Ok(invoked) => {
                        let body = String::from_utf8_lossy(&invoked.body).into_owned();
                        if invoked.function_error.is_some() {
                            let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                            Err(lambda_error(&v))
                        } else {
                            Ok(body)
                        }
                    }
                }
            }
        }
    };
    let _ = svc.update(&arn, |ex, now| {
        ex.complete_chained(&op_id, outcome, now);
        Ok(())
    });
}
