//! The emulator's memory of recent invocations, for `cargo fn logs` and the
//! dashboard: a bounded list of finished invocations (the REPORT figures,
//! status, log lines, payload and response cut to a size), per-function
//! counters, a broadcast for live subscribers, and the JSON API that serves
//! them under `/_cargo-fn/api/`:
//!
//! - `GET invocations?function=&status=&after=SEQ&limit=N`: summaries, oldest first;
//! - `GET invocations/{seq}`: one invocation with its payload and response;
//! - `GET events?after=SEQ`: server-sent events, one `invocation` event per
//!   finished invocation (those after SEQ still held are sent first);
//! - `GET environments`: each function's spec summary and environments.
//!
//! Fed from the one place REPORT is written (`pool.rs`); knows nothing of
//! cargo or configuration.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use super::report::{EndStatus, billed_ms, cost_estimate};
use super::{FunctionSpec, Shared};

/// Invocations kept.
pub const HISTORY_LEN: usize = 500;
/// Payload and response bytes kept per invocation.
pub const TEXT_LIMIT: usize = 32 * 1024;
/// Callers noted but never finished (an environment that failed to start)
/// are forgotten beyond this many.
const MAX_NOTES: usize = 1024;

/// What the list and the live stream carry about one invocation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    /// Order of completion, from 1.
    pub seq: u64,
    pub request_id: String,
    pub function: String,
    /// Who invoked: `Invoke API`, `Invoke API (Event)`, `HTTP GET /path`, ...
    pub caller: String,
    /// When the invocation was handed to the runtime, ms since the epoch.
    pub started_ms: i64,
    pub duration_ms: f64,
    pub billed_ms: u64,
    pub init_ms: Option<f64>,
    pub memory_mb: u32,
    pub max_memory_mb: u64,
    pub architecture: String,
    pub cost_usd: f64,
    /// `success`, `error`, `timeout` or `crash`.
    pub status: String,
    pub error_type: Option<String>,
    /// START .. REPORT (and COST) lines of this request.
    pub log: Vec<String>,
}

/// One invocation in full.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    #[serde(flatten)]
    pub summary: Summary,
    pub payload: String,
    pub payload_truncated: bool,
    pub response: String,
    pub response_truncated: bool,
}

/// Counters that outlive the bounded list.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Counts {
    pub invocations: u64,
    pub cold_starts: u64,
    pub errors: u64,
}

/// What `pool.rs` knows when an invocation ends.
pub(crate) struct Finished<'a> {
    pub spec: &'a FunctionSpec,
    pub request_id: &'a str,
    pub started: std::time::SystemTime,
    pub duration: Duration,
    pub init: Option<Duration>,
    pub max_memory_mb: u64,
    pub status: &'a EndStatus,
    pub log: &'a str,
    pub payload: &'a Bytes,
    pub response: &'a Bytes,
}

pub(crate) struct History {
    records: Mutex<VecDeque<Arc<Record>>>,
    counts: Mutex<HashMap<String, Counts>>,
    callers: Mutex<HashMap<String, String>>,
    next_seq: AtomicU64,
    live: broadcast::Sender<Arc<Record>>,
}

impl Default for History {
    fn default() -> Self {
        History {
            records: Mutex::new(VecDeque::new()),
            counts: Mutex::new(HashMap::new()),
            callers: Mutex::new(HashMap::new()),
            next_seq: AtomicU64::new(1),
            live: broadcast::channel(256).0,
        }
    }
}

/// Text of at most [`TEXT_LIMIT`] bytes (cut on a character boundary).
fn cut(bytes: &[u8]) -> (String, bool) {
    let text = String::from_utf8_lossy(bytes);
    if text.len() <= TEXT_LIMIT {
        return (text.into_owned(), false);
    }
    let mut end = TEXT_LIMIT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (text[..end].to_string(), true)
}

impl History {
    /// Who started the invocation `request_id` (kept until it finishes).
    pub fn note_caller(&self, request_id: &str, caller: impl Into<String>) {
        let mut callers = self.callers.lock().expect("callers");
        if callers.len() >= MAX_NOTES {
            callers.clear();
        }
        callers.insert(request_id.to_string(), caller.into());
    }

    pub fn record(&self, f: Finished<'_>) {
        let billed = billed_ms(f.duration, f.init);
        let (status, error_type) = match f.status {
            EndStatus::Success => ("success", None),
            EndStatus::FunctionError => ("error", error_type(f.response)),
            EndStatus::Timeout => ("timeout", Some("Sandbox.Timedout".to_string())),
            EndStatus::Crashed(kind) => ("crash", Some(kind.clone())),
        };
        let caller = self
            .callers
            .lock()
            .expect("callers")
            .remove(f.request_id)
            .unwrap_or_else(|| "Invoke API".into());
        let (payload, payload_truncated) = cut(f.payload);
        let (response, response_truncated) = cut(f.response);
        let started_ms = f
            .started
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or_default();
        let record = Arc::new(Record {
            summary: Summary {
                seq: self.next_seq.fetch_add(1, Ordering::SeqCst),
                request_id: f.request_id.to_string(),
                function: f.spec.name.clone(),
                caller,
                started_ms,
                duration_ms: f.duration.as_secs_f64() * 1000.0,
                billed_ms: billed,
                init_ms: f.init.map(|d| d.as_secs_f64() * 1000.0),
                memory_mb: f.spec.memory_mb,
                max_memory_mb: f.max_memory_mb,
                architecture: f.spec.architecture.as_str().to_string(),
                cost_usd: cost_estimate(f.spec.architecture, f.spec.memory_mb, billed).total(),
                status: status.to_string(),
                error_type,
                log: f.log.lines().map(str::to_string).collect(),
            },
            payload,
            payload_truncated,
            response,
            response_truncated,
        });
        {
            let mut counts = self.counts.lock().expect("counts");
            let c = counts.entry(f.spec.name.clone()).or_default();
            c.invocations += 1;
            c.cold_starts += u64::from(f.init.is_some());
            c.errors += u64::from(status != "success");
        }
        {
            // Numbered and stored under one lock with the send, so
            // subscribers see sequence numbers in order.
            let mut records = self.records.lock().expect("history");
            if records.len() >= HISTORY_LEN {
                records.pop_front();
            }
            records.push_back(record.clone());
            let _ = self.live.send(record);
        }
    }

    fn after(&self, seq: u64) -> Vec<Arc<Record>> {
        self.records
            .lock()
            .expect("history")
            .iter()
            .filter(|r| r.summary.seq > seq)
            .cloned()
            .collect()
    }

    fn counts(&self, function: &str) -> Counts {
        self.counts
            .lock()
            .expect("counts")
            .get(function)
            .copied()
            .unwrap_or_default()
    }
}

/// `errorType` of a Runtime API error body.
fn error_type(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    v.get("errorType")?.as_str().map(str::to_string)
}

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/_cargo-fn/api/invocations", get(list))
        .route("/_cargo-fn/api/invocations/{seq}", get(one))
        .route("/_cargo-fn/api/events", get(events))
        .route("/_cargo-fn/api/environments", get(environments))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    function: Option<String>,
    status: Option<String>,
    #[serde(default)]
    after: u64,
    limit: Option<usize>,
}

async fn list(State(emulator): State<Arc<Shared>>, Query(q): Query<ListQuery>) -> Response {
    emulator.settled().await;
    let mut out: Vec<Summary> = emulator
        .history
        .after(q.after)
        .iter()
        .filter(|r| q.function.as_ref().is_none_or(|f| *f == r.summary.function))
        .filter(|r| q.status.as_ref().is_none_or(|s| *s == r.summary.status))
        .map(|r| r.summary.clone())
        .collect();
    if let Some(limit) = q.limit {
        let skip = out.len().saturating_sub(limit);
        out.drain(..skip);
    }
    Json(out).into_response()
}

async fn one(State(emulator): State<Arc<Shared>>, Path(seq): Path<String>) -> Response {
    let found = emulator
        .history
        .after(0)
        .into_iter()
        .find(|r| r.summary.seq.to_string() == seq || r.summary.request_id == seq);
    match found {
        Some(r) => Json(&*r).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({
                "message": format!("no invocation `{seq}` in the history (it keeps the last {HISTORY_LEN})")
            })),
        )
            .into_response(),
    }
}

#[derive(Debug, Deserialize)]
struct EventsQuery {
    #[serde(default)]
    after: u64,
}

async fn events(State(emulator): State<Arc<Shared>>, Query(q): Query<EventsQuery>) -> Response {
    // Subscribe before reading the backlog: nothing falls between the two;
    // the sequence number drops what is in both.
    let rx = emulator.history.live.subscribe();
    let backlog: VecDeque<Arc<Record>> = emulator.history.after(q.after).into();
    let last = backlog.back().map_or(q.after, |r| r.summary.seq);
    let stream = futures_util::stream::unfold(
        (backlog, rx, last),
        |(mut backlog, mut rx, mut last)| async move {
            let record = match backlog.pop_front() {
                Some(r) => r,
                None => loop {
                    match rx.recv().await {
                        Ok(r) if r.summary.seq > last => break r,
                        Ok(_) => continue,
                        // A slow subscriber skips what it missed.
                        Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                },
            };
            last = record.summary.seq;
            let event = Event::default()
                .event("invocation")
                .id(record.summary.seq.to_string())
                .json_data(&record.summary)
                .unwrap_or_default();
            Some((
                Ok::<_, std::convert::Infallible>(event),
                (backlog, rx, last),
            ))
        },
    );
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// One function as the dashboard shows its environments.
#[derive(Debug, Serialize)]
struct FunctionEnvironments {
    function: String,
    memory_mb: u32,
    timeout_s: f64,
    architecture: &'static str,
    reserved_concurrency: Option<u32>,
    extensions: Vec<String>,
    /// Spec replacements so far (each hot reload is one).
    generation: u64,
    warm: usize,
    busy: usize,
    /// Managed instances: invocations one environment serves at once, and
    /// each environment's invocations in flight.
    #[serde(skip_serializing_if = "Option::is_none")]
    max_concurrency: Option<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    in_flight: Vec<EnvLoad>,
    #[serde(flatten)]
    counts: Counts,
}

/// One managed-instances environment's load.
#[derive(Debug, Serialize)]
struct EnvLoad {
    environment: u64,
    in_flight: usize,
}

async fn environments(State(emulator): State<Arc<Shared>>) -> Response {
    let pools: Vec<_> = emulator
        .functions
        .read()
        .expect("functions lock")
        .values()
        .cloned()
        .collect();
    let mut out: Vec<FunctionEnvironments> = pools
        .iter()
        .map(|pool| {
            let spec = pool.spec();
            let (warm, busy, generation) = pool.counts();
            FunctionEnvironments {
                function: spec.name.clone(),
                memory_mb: spec.memory_mb,
                timeout_s: spec.timeout.as_secs_f64(),
                architecture: spec.architecture.as_str(),
                reserved_concurrency: spec.reserved_concurrency,
                extensions: spec
                    .extensions
                    .iter()
                    .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                    .collect(),
                generation,
                warm,
                busy,
                max_concurrency: spec.max_concurrency,
                in_flight: pool
                    .in_flight()
                    .into_iter()
                    .map(|(environment, in_flight)| EnvLoad {
                        environment,
                        in_flight,
                    })
                    .collect(),
                counts: emulator.history.counts(&spec.name),
            }
        })
        .collect();
    out.sort_by(|a, b| a.function.cmp(&b.function));
    Json(out).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finished<'a>(
        spec: &'a FunctionSpec,
        status: &'a EndStatus,
        payload: &'a Bytes,
        response: &'a Bytes,
    ) -> Finished<'a> {
        Finished {
            spec,
            request_id: "r1",
            started: std::time::SystemTime::now(),
            duration: Duration::from_millis(5),
            init: Some(Duration::from_millis(20)),
            max_memory_mb: 12,
            status,
            log: "START RequestId: r1\nhello\nEND RequestId: r1\n",
            payload,
            response,
        }
    }

    #[test]
    fn records_are_bounded_numbered_and_cut() {
        let history = History::default();
        let spec = FunctionSpec::new("f", "/bin/true");
        let big = Bytes::from(vec![b'x'; TEXT_LIMIT + 10]);
        let ok = Bytes::from_static(b"{}");
        history.note_caller("r1", "HTTP GET /");
        history.record(finished(&spec, &EndStatus::Success, &big, &ok));
        let first = history.after(0);
        assert_eq!(first[0].summary.caller, "HTTP GET /");
        assert_eq!(first[0].summary.log.len(), 3);
        assert!(first[0].payload_truncated);
        assert_eq!(first[0].payload.len(), TEXT_LIMIT);
        assert_eq!(first[0].summary.billed_ms, 25);
        let failed = Bytes::from_static(br#"{"errorType":"Boom","errorMessage":"no"}"#);
        for _ in 0..HISTORY_LEN {
            history.record(finished(&spec, &EndStatus::FunctionError, &ok, &failed));
        }
        let all = history.after(0);
        assert_eq!(all.len(), HISTORY_LEN);
        assert_eq!(all[0].summary.seq, 2);
        assert_eq!(all[0].summary.caller, "Invoke API");
        assert_eq!(all[0].summary.error_type.as_deref(), Some("Boom"));
        let counts = history.counts("f");
        assert_eq!(counts.invocations, HISTORY_LEN as u64 + 1);
        assert_eq!(counts.errors, HISTORY_LEN as u64);
    }
}
