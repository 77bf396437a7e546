//! `cargo fn durable`: durable executions of a function, listed, read as a
//! timeline, stopped, and their callbacks completed, against AWS or the
//! local durable execution service of `cargo fn watch` (the same Lambda
//! API operations, through [`crate::aws::durable`]).
//!
//! The timeline is pure ([`timeline`]): the history's events in order, each
//! with its offset from the execution's start, indented under its parent
//! operation, and every invocation after the first marked as a replay
//! (the SDK re-runs the handler from the top and skips what was recorded).
//! The execution ARN is always printed: it is what every other call takes.
//! Names no SDK type.

use std::fmt::Write as _;

use anyhow::Result;

use crate::aws::ApiError;
use crate::aws::durable::{
    self as api, CallbackAnswer, ErrorInfo, ExecutionDetail, ExecutionSummary, HistoryEvent,
    ListFilter,
};
use crate::aws::invoke::Endpoint;
use crate::aws::logs::parse_rfc3339_ms;
use crate::error::hinted;

/// The statuses ListDurableExecutionsByFunction filters by.
pub const STATUSES: &[&str] = &["RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "STOPPED"];

/// An execution and its history, as `cargo fn durable history` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct History {
    pub execution: ExecutionDetail,
    pub events: Vec<HistoryEvent>,
}

/// The user-facing error of a failed call: a local connection failure
/// points at `cargo fn watch`, anything else carries the API's own hint.
fn failure(endpoint: &Endpoint, e: ApiError) -> anyhow::Error {
    match endpoint {
        Endpoint::Local(url) if e.is("ConnectionError") || e.is("Timeout") => hinted(
            format!("the local emulator at {url} did not answer {}", e.operation),
            "is `cargo fn watch` running? Start it, or pass --port/--endpoint to reach it",
        ),
        Endpoint::Local(_) if e.is_not_found() => hinted(
            e.to_string(),
            "locally, only durable functions (`durable = { ... }` in their configuration) \
             have executions, and only those started since this `cargo fn watch` started; \
             `cargo fn durable list FUNCTION` shows them",
        ),
        _ => crate::error::Hinted::from(e).into(),
    }
}

/// Checks a status filter against the API's statuses (case-insensitive).
pub fn check_statuses(statuses: &[String]) -> Result<Vec<String>> {
    statuses
        .iter()
        .map(|s| {
            let upper = s.to_ascii_uppercase().replace('-', "_");
            if STATUSES.contains(&upper.as_str()) {
                Ok(upper)
            } else {
                Err(crate::error::UsageError(format!(
                    "--status `{s}`: expected one of {}",
                    STATUSES.join(", ")
                ))
                .into())
            }
        })
        .collect()
}

/// The executions of `function`, newest first.
pub async fn list(
    endpoint: &Endpoint,
    function: &str,
    filter: &ListFilter<'_>,
) -> Result<Vec<ExecutionSummary>> {
    let mut list = api::list(endpoint, function, filter)
        .await
        .map_err(|e| failure(endpoint, e))?;
    // Newest first whatever order the service pages in.
    list.sort_by_key(|e| std::cmp::Reverse(parse_rfc3339_ms(&e.started)));
    Ok(list)
}

/// The execution and all its events.
pub async fn history(endpoint: &Endpoint, arn: &str) -> Result<History> {
    let execution = api::get(endpoint, arn)
        .await
        .map_err(|e| failure(endpoint, e))?;
    let events = api::history(endpoint, arn)
        .await
        .map_err(|e| failure(endpoint, e))?;
    Ok(History { execution, events })
}

/// Stops a running execution; returns when it stopped (RFC 3339).
pub async fn stop(endpoint: &Endpoint, arn: &str, error: Option<&ErrorInfo>) -> Result<String> {
    api::stop(endpoint, arn, error)
        .await
        .map_err(|e| failure(endpoint, e))
}

/// Completes (or heartbeats) a callback.
pub async fn callback(
    endpoint: &Endpoint,
    callback_id: &str,
    answer: &CallbackAnswer,
) -> Result<()> {
    api::callback(endpoint, callback_id, answer)
        .await
        .map_err(|e| failure(endpoint, e))
}

/// The table `cargo fn durable list` prints: ARN first (the handle every
/// other command takes), then status, start, end and name.
pub fn render_list(executions: &[ExecutionSummary]) -> String {
    let mut out = String::new();
    if executions.is_empty() {
        out.push_str("no durable executions\n");
        return out;
    }
    for e in executions {
        let _ = writeln!(
            out,
            "{}\n  {:<10} started {}  ended {}  name {}",
            e.arn,
            e.status,
            e.started,
            e.ended.as_deref().unwrap_or("-"),
            e.name
        );
    }
    out
}

/// One line of the timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Milliseconds since the execution started (`None`: no timestamp).
    pub offset_ms: Option<i64>,
    /// Nesting under parent operations (child contexts, map, parallel).
    pub depth: usize,
    /// `step`, `wait`, `callback`, `invoke`, `context`, `execution`, `invocation`.
    pub kind: &'static str,
    pub name: String,
    /// What happened: `started`, `succeeded`, `failed (attempt 2, retry in 5s)`, ...
    pub what: String,
    /// Result, error or the one detail worth showing (callback id, wait end).
    pub detail: Option<String>,
}

/// The history as timeline rows, in event order. Pure.
pub fn timeline(events: &[HistoryEvent]) -> Vec<Row> {
    let start = events
        .iter()
        .filter_map(|e| e.timestamp.as_deref().and_then(parse_rfc3339_ms))
        .min();
    let mut depth_of: std::collections::HashMap<&str, usize> = Default::default();
    let mut invocations = 0usize;
    let mut rows = Vec::new();
    for e in events {
        let (kind, phase) = split_type(&e.event_type);
        let depth = e
            .parent_id
            .as_deref()
            .and_then(|p| depth_of.get(p).map(|d| d + 1))
            .unwrap_or(0);
        if let Some(id) = e.operation_id.as_deref() {
            depth_of.entry(id).or_insert(depth);
        }
        let mut what = phase.to_string();
        if kind == "invocation" {
            invocations += 1;
            what = if invocations == 1 {
                "ended (first run)".to_string()
            } else {
                format!("ended (replay {})", invocations - 1)
            };
        }
        // A first attempt that succeeded is the ordinary case: no note.
        let attempt = e
            .attempt
            .filter(|a| *a > 1 || e.next_attempt_delay_seconds.is_some() || e.error.is_some());
        if let Some(a) = attempt {
            let _ = write!(what, " (attempt {a}");
            if let Some(d) = e.next_attempt_delay_seconds {
                let _ = write!(what, ", retry in {d}s");
            }
            what.push(')');
        } else if let Some(d) = e.next_attempt_delay_seconds {
            let _ = write!(what, " (retry in {d}s)");
        }
        if let (Some(s), "started") = (e.wait_seconds, phase) {
            let _ = write!(what, " {s}s");
        }
        let detail = if let Some(err) = &e.error {
            Some(format_error(err))
        } else if let Some(id) = &e.callback_id {
            Some(format!("callback id {id}"))
        } else if let Some(until) = &e.wait_until {
            Some(format!("until {until}"))
        } else if let Some(f) = &e.function_name {
            Some(format!(
                "-> {f}{}",
                e.payload
                    .as_deref()
                    .map(|p| format!(" {}", short(p)))
                    .unwrap_or_default()
            ))
        } else if let Some(r) = &e.request_id {
            Some(format!("request {r}"))
        } else {
            e.payload.as_deref().map(short)
        };
        rows.push(Row {
            offset_ms: e
                .timestamp
                .as_deref()
                .and_then(parse_rfc3339_ms)
                .zip(start)
                .map(|(t, s)| t - s),
            depth,
            kind,
            name: e
                .name
                .clone()
                .or_else(|| e.sub_type.clone())
                .unwrap_or_default(),
            what,
            detail,
        });
    }
    rows
}

/// `StepSucceeded` -> (`step`, `succeeded`), `ChainedInvokeTimedOut` ->
/// (`invoke`, `timed out`).
fn split_type(event_type: &str) -> (&'static str, &'static str) {
    const KINDS: &[(&str, &str)] = &[
        ("ChainedInvoke", "invoke"),
        ("Execution", "execution"),
        ("Context", "context"),
        ("Callback", "callback"),
        ("Step", "step"),
        ("Wait", "wait"),
        ("Invocation", "invocation"),
    ];
    const PHASES: &[(&str, &str)] = &[
        ("Started", "started"),
        ("Succeeded", "succeeded"),
        ("Failed", "failed"),
        ("TimedOut", "timed out"),
        ("Stopped", "stopped"),
        ("Cancelled", "cancelled"),
        ("Completed", "completed"),
    ];
    let kind = KINDS
        .iter()
        .find(|(p, _)| event_type.starts_with(p))
        .map(|(_, k)| *k)
        .unwrap_or("event");
    let phase = PHASES
        .iter()
        .find(|(p, _)| event_type.ends_with(p))
        .map(|(_, w)| *w)
        .unwrap_or("recorded");
    (kind, phase)
}

fn format_error(e: &ErrorInfo) -> String {
    match (&e.error_type, &e.message) {
        (Some(t), Some(m)) => format!("{t}: {m}"),
        (Some(t), None) => t.clone(),
        (None, Some(m)) => m.clone(),
        (None, None) => "error".to_string(),
    }
}

/// A payload on one line, cut at 80 characters.
fn short(payload: &str) -> String {
    let one_line: String = payload.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > 80 {
        let cut: String = one_line.chars().take(77).collect();
        format!("{cut}...")
    } else {
        one_line
    }
}

/// An offset from the execution's start: `+1.250s`, `+5m02.000s`,
/// `+2h00m00.000s`, `+1d00h00m01s` (waits make days common).
fn offset(ms: i64) -> String {
    let (ms, sign) = if ms < 0 { (-ms, "-") } else { (ms, "+") };
    let (s, milli) = (ms / 1000, ms % 1000);
    let (d, h, m, sec) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    if d > 0 {
        format!("{sign}{d}d{h:02}h{m:02}m{sec:02}s")
    } else if h > 0 {
        format!("{sign}{h}h{m:02}m{sec:02}.{milli:03}s")
    } else if m > 0 {
        format!("{sign}{m}m{sec:02}.{milli:03}s")
    } else {
        format!("{sign}{sec}.{milli:03}s")
    }
}

/// What `cargo fn durable history` prints: the execution, then its timeline.
pub fn render_history(h: &History) -> String {
    let x = &h.execution;
    let mut out = String::new();
    let _ = writeln!(out, "{}", x.summary.arn);
    let _ = writeln!(
        out,
        "  {}  name {}  version {}\n  started {}  ended {}",
        x.summary.status,
        x.summary.name,
        x.version.as_deref().unwrap_or("-"),
        x.summary.started,
        x.summary.ended.as_deref().unwrap_or("-"),
    );
    if let Some(r) = &x.result {
        let _ = writeln!(out, "  result {}", short(r));
    }
    if let Some(e) = &x.error {
        let _ = writeln!(out, "  error {}", format_error(e));
    }
    out.push('\n');
    for r in timeline(&h.events) {
        let at = r.offset_ms.map(offset).unwrap_or_else(|| "-".to_string());
        let indent = "  ".repeat(r.depth);
        let label = if r.name.is_empty() {
            format!("{indent}{}", r.kind)
        } else {
            format!("{indent}{} {}", r.kind, r.name)
        };
        let _ = write!(out, "{at:>14}  {label:<28} {}", r.what);
        if let Some(d) = &r.detail {
            let _ = write!(out, "  {d}");
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: i32, ty: &str, op: &str, name: &str, at: &str) -> HistoryEvent {
        HistoryEvent {
            event_id: id,
            event_type: ty.to_string(),
            operation_id: (!op.is_empty()).then(|| op.to_string()),
            name: (!name.is_empty()).then(|| name.to_string()),
            timestamp: Some(at.to_string()),
            ..HistoryEvent::default()
        }
    }

    #[test]
    fn the_timeline_shows_offsets_retries_waits_callbacks_and_replays() {
        let mut events = vec![
            ev(1, "ExecutionStarted", "x", "", "2026-12-07T10:00:00Z"),
            ev(2, "StepStarted", "1", "fetch", "2026-12-07T10:00:00Z"),
            ev(3, "StepFailed", "1", "fetch", "2026-12-07T10:00:01Z"),
            ev(4, "WaitStarted", "2", "cooldown", "2026-12-07T10:00:02Z"),
            ev(5, "InvocationCompleted", "", "", "2026-12-07T10:00:02Z"),
            ev(6, "WaitSucceeded", "2", "cooldown", "2026-12-07T10:00:12Z"),
            ev(
                7,
                "CallbackStarted",
                "3",
                "approval",
                "2026-12-07T10:00:12Z",
            ),
            ev(8, "InvocationCompleted", "", "", "2026-12-07T10:00:13Z"),
            ev(9, "StepStarted", "4", "inner", "2026-12-07T10:00:13Z"),
        ];
        events[2].attempt = Some(1);
        events[2].next_attempt_delay_seconds = Some(5);
        events[2].error = Some(ErrorInfo {
            error_type: Some("Boom".into()),
            message: Some("down".into()),
            data: None,
        });
        events[3].wait_seconds = Some(10);
        events[6].callback_id = Some("cb-1".into());
        events[8].parent_id = Some("3".into());
        let rows = timeline(&events);
        assert_eq!(rows[2].what, "failed (attempt 1, retry in 5s)");
        assert_eq!(rows[2].detail.as_deref(), Some("Boom: down"));
        assert_eq!(rows[3].what, "started 10s");
        assert_eq!(rows[4].what, "ended (first run)");
        assert_eq!(rows[5].offset_ms, Some(12_000));
        assert_eq!(rows[6].detail.as_deref(), Some("callback id cb-1"));
        assert_eq!(rows[7].what, "ended (replay 1)");
        assert_eq!((rows[8].kind, rows[8].depth), ("step", 1));
        let h = History {
            execution: ExecutionDetail {
                summary: ExecutionSummary {
                    arn: "arn:aws:lambda:us-east-1:1:function:f:$LATEST/durable-execution/n/i"
                        .into(),
                    name: "n".into(),
                    function_arn: "arn:aws:lambda:us-east-1:1:function:f".into(),
                    status: "RUNNING".into(),
                    started: "2026-12-07T10:00:00Z".into(),
                    ended: None,
                },
                version: Some("$LATEST".into()),
                input: None,
                result: None,
                error: None,
            },
            events,
        };
        let text = render_history(&h);
        assert!(text.starts_with("arn:aws:lambda:"), "{text}");
        assert!(text.contains("+12.000s  callback approval"), "{text}");
    }

    #[test]
    fn offsets_read_in_days_hours_and_minutes() {
        assert_eq!(offset(1_250), "+1.250s");
        assert_eq!(offset(302_000), "+5m02.000s");
        assert_eq!(offset(7_200_000), "+2h00m00.000s");
        assert_eq!(offset(86_401_936), "+1d00h00m01s");
    }

    #[test]
    fn event_types_split_into_kind_and_phase() {
        assert_eq!(split_type("ChainedInvokeTimedOut"), ("invoke", "timed out"));
        assert_eq!(split_type("ContextSucceeded"), ("context", "succeeded"));
        assert_eq!(split_type("WaitCancelled"), ("wait", "cancelled"));
        assert_eq!(split_type("Nope"), ("event", "recorded"));
    }

    #[test]
    fn status_filters_are_checked_against_the_api() {
        assert_eq!(
            check_statuses(&["running".into(), "timed-out".into()]).unwrap(),
            ["RUNNING", "TIMED_OUT"]
        );
        let err = check_statuses(&["done".into()]).unwrap_err().to_string();
        assert!(err.contains("RUNNING, SUCCEEDED"), "{err}");
    }

    #[test]
    fn long_payloads_are_cut_to_one_line() {
        assert_eq!(short("{\n \"a\": 1\n}"), "{ \"a\": 1 }");
        assert_eq!(short(&"x".repeat(100)).chars().count(), 80);
    }
}
