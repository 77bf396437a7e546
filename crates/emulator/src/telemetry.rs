//! The Telemetry API (`2022-07-01`) and the legacy Logs API (`2020-08-15`)
//! of one environment (contract 2.3, 2.4), the state behind them (their
//! routes are `telemetry_api.rs`): subscriptions with their buffering
//! bounds validated, the records of the environment (platform
//! events, function and extension log lines), and their delivery to each
//! subscriber in batches, over HTTP (a JSON array per POST) or TCP (one JSON
//! record per line).
//!
//! Destinations are always on this machine: `sandbox.localdomain` (the
//! name extensions are told to use) is mapped to 127.0.0.1, and any other
//! host than it, `localhost` or `127.0.0.1` is refused, so the emulator never
//! sends a developer's logs elsewhere.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

/// Records kept for subscribers that arrive later in init (they get what
/// happened since the environment started, as on Lambda).
const BACKLOG: usize = 1000;

/// `(field, default, min, max)` of the buffering configuration.
pub(crate) const BUFFERING: [(&str, u64, u64, u64); 3] = [
    ("maxItems", 10_000, 1_000, 10_000),
    ("maxBytes", 262_144, 262_144, 1_048_576),
    ("timeoutMs", 1_000, 25, 30_000),
];

/// Record types the legacy Logs API knows (its subscribers get only these).
const LOGS_API_TYPES: &[&str] = &[
    "function",
    "extension",
    "platform.start",
    "platform.end",
    "platform.report",
    "platform.runtimeDone",
    "platform.extension",
    "platform.logsSubscription",
    "platform.logsDropped",
    "platform.fault",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Api {
    Telemetry,
    Logs,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Destination {
    /// Host is always loopback; the port and path of the URI.
    Http {
        port: u16,
        path: String,
    },
    Tcp {
        port: u16,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Buffering {
    pub max_items: usize,
    pub max_bytes: usize,
    pub timeout: Duration,
}

/// A validated subscription request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Subscription {
    platform: bool,
    function: bool,
    extension: bool,
    buffering: Buffering,
    destination: Destination,
}

enum Msg {
    Record(Arc<Value>),
    Flush,
}

struct Subscriber {
    extension_id: String,
    api: Api,
    sub: Subscription,
    tx: mpsc::UnboundedSender<Msg>,
}

impl Subscriber {
    fn wants(&self, kind: &str) -> bool {
        if self.api == Api::Logs && !LOGS_API_TYPES.contains(&kind) {
            return false;
        }
        if self.api == Api::Telemetry && kind == "platform.end" {
            return false;
        }
        match kind {
            "function" => self.sub.function,
            "extension" => self.sub.extension,
            _ => self.sub.platform,
        }
    }
}

#[derive(Default)]
struct Inner {
    backlog: VecDeque<Arc<Value>>,
    subscribers: Vec<Subscriber>,
    /// The invocation whose `platform.runtimeDone` was sent.
    runtime_done: Option<String>,
}

/// The telemetry of one environment.
pub(crate) struct Telemetry {
    started: Instant,
    /// The function logs JSON (`AWS_LAMBDA_LOG_FORMAT=JSON`): its JSON
    /// lines are delivered as objects, as Lambda does, others as strings.
    json_logs: bool,
    state: Mutex<Inner>,
    /// Records are wanted: until init ends, and after only with a
    /// subscriber (subscriptions happen during init, contract 2.3), so an
    /// environment without one builds no records on the invocation path.
    wanted: AtomicBool,
}

impl Telemetry {
    pub fn new(json_logs: bool) -> Telemetry {
        let t = Telemetry {
            started: Instant::now(),
            json_logs,
            state: Mutex::new(Inner::default()),
            wanted: AtomicBool::new(true),
        };
        t.platform(
            "platform.initStart",
            json!({"initializationType": "on-demand", "phase": "init"}),
        );
        t
    }

    pub fn wanted(&self) -> bool {
        self.wanted.load(Ordering::Relaxed)
    }

    fn emit(&self, kind: &str, record: Value) {
        let value = Arc::new(json!({"time": now_rfc3339(), "type": kind, "record": record}));
        let mut st = self.state.lock().expect("telemetry");
        if st.backlog.len() == BACKLOG {
            st.backlog.pop_front();
        }
        st.backlog.push_back(value.clone());
        st.subscribers
            .retain(|s| !s.wants(kind) || s.tx.send(Msg::Record(value.clone())).is_ok());
    }

    /// A platform record (`platform.*`).
    pub fn platform(&self, kind: &str, record: Value) {
        if !self.wanted() {
            return;
        }
        self.emit(kind, record);
    }

    pub fn function_line(&self, line: &str) {
        if !self.wanted() {
            return;
        }
        let record = self
            .json_logs
            .then(|| serde_json::from_str::<Value>(line).ok())
            .flatten()
            .filter(Value::is_object)
            .unwrap_or_else(|| Value::String(line.to_string()));
        self.emit("function", record);
    }

    pub fn extension_line(&self, line: &str) {
        if !self.wanted() {
            return;
        }
        self.emit("extension", Value::String(line.to_string()));
    }

    /// Init is over (runtime and extensions wait for events).
    pub fn init_done(&self) {
        let ms = self.started.elapsed().as_secs_f64() * 1000.0;
        self.platform(
            "platform.initRuntimeDone",
            json!({"initializationType": "on-demand", "phase": "init", "status": "success"}),
        );
        self.platform(
            "platform.initReport",
            json!({"initializationType": "on-demand", "phase": "init", "metrics": {"durationMs": round2(ms)}}),
        );
        if self.state.lock().expect("telemetry").subscribers.is_empty() {
            self.wanted.store(false, Ordering::Relaxed);
        }
    }

    pub fn start(&self, request_id: &str, trace_id: &str) {
        if !self.wanted() {
            return;
        }
        self.platform(
            "platform.start",
            json!({
                "requestId": request_id,
                "version": "$LATEST",
                "tracing": {"type": "X-Amzn-Trace-Id", "value": trace_id},
            }),
        );
    }

    /// The runtime has answered (or failed): `status` is one of success,
    /// error, failure, timeout. Sent once per invocation.
    pub fn runtime_done(&self, request_id: &str, status: &str, duration: Duration) {
        if !self.wanted() {
            return;
        }
        {
            let mut st = self.state.lock().expect("telemetry");
            if st.runtime_done.as_deref() == Some(request_id) {
                return;
            }
            st.runtime_done = Some(request_id.to_string());
        }
        self.platform(
            "platform.runtimeDone",
            json!({
                "requestId": request_id,
                "status": status,
                "metrics": {"durationMs": round2(duration.as_secs_f64() * 1000.0)},
            }),
        );
    }

    /// `platform.end` (Logs API) and `platform.report` with the REPORT metrics.
    #[allow(clippy::too_many_arguments)]
    pub fn report(
        &self,
        request_id: &str,
        status: &str,
        duration: Duration,
        billed_ms: u64,
        memory_mb: u32,
        max_memory_mb: u64,
        init: Option<Duration>,
    ) {
        if !self.wanted() {
            return;
        }
        self.runtime_done(request_id, status, duration);
        self.platform("platform.end", json!({"requestId": request_id}));
        let mut metrics = json!({
            "durationMs": round2(duration.as_secs_f64() * 1000.0),
            "billedDurationMs": billed_ms,
            "memorySizeMB": memory_mb,
            "maxMemoryUsedMB": max_memory_mb,
        });
        if let Some(init) = init {
            metrics["initDurationMs"] = json!(round2(init.as_secs_f64() * 1000.0));
        }
        self.platform(
            "platform.report",
            json!({"requestId": request_id, "status": status, "metrics": metrics}),
        );
    }

    /// Sends every subscriber's buffer now (before SHUTDOWN).
    pub fn flush(&self) {
        let st = self.state.lock().expect("telemetry");
        for s in &st.subscribers {
            let _ = s.tx.send(Msg::Flush);
        }
    }

    pub fn subscribe(&self, extension_id: String, name: &str, api: Api, sub: Subscription) {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(deliver(sub.destination.clone(), sub.buffering, rx));
        let types: Vec<&str> = [
            (sub.platform, "platform"),
            (sub.function, "function"),
            (sub.extension, "extension"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, t)| *t)
        .collect();
        let subscriber = Subscriber {
            extension_id,
            api,
            sub,
            tx,
        };
        {
            let mut st = self.state.lock().expect("telemetry");
            // A new subscription replaces the extension's previous one.
            st.subscribers
                .retain(|s| !(s.extension_id == subscriber.extension_id && s.api == api));
            for record in &st.backlog {
                let kind = record["type"].as_str().unwrap_or("");
                if subscriber.wants(kind) {
                    let _ = subscriber.tx.send(Msg::Record(record.clone()));
                }
            }
            st.subscribers.push(subscriber);
            self.wanted.store(true, Ordering::Relaxed);
        }
        let kind = match api {
            Api::Telemetry => "platform.telemetrySubscription",
            Api::Logs => "platform.logsSubscription",
        };
        self.platform(
            kind,
            json!({"name": name, "state": "Subscribed", "types": types}),
        );
    }
}

fn round2(ms: f64) -> f64 {
    (ms * 100.0).round() / 100.0
}

/// `2022-10-19T13:52:15.636Z`.
fn now_rfc3339() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    let (y, m, d) = civil_date(secs / 86_400);
    let rem = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        now.subsec_millis()
    )
}

/// Days since the Unix epoch to (year, month, day), proleptic Gregorian.
pub(crate) fn civil_date(days: u64) -> (i64, u32, u32) {
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Validates a subscription body; the error names the field and, for
/// numbers, the allowed range.
pub(crate) fn parse_subscription(body: &[u8], api: Api) -> Result<Subscription, String> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    let schemas: &[&str] = match api {
        Api::Telemetry => &["2022-07-01", "2022-12-13", "2025-01-29"],
        Api::Logs => &["2020-08-15", "2021-03-18"],
    };
    match v.get("schemaVersion").and_then(Value::as_str) {
        Some(s) if schemas.contains(&s) => {}
        other => {
            return Err(format!(
                "schemaVersion must be one of {}, got {}",
                schemas.join(", "),
                other.map(|s| format!("`{s}`")).unwrap_or("nothing".into())
            ));
        }
    }
    let types = v
        .get("types")
        .and_then(Value::as_array)
        .filter(|t| !t.is_empty())
        .ok_or("types must be a non-empty list of platform, function, extension")?;
    let (mut platform, mut function, mut extension) = (false, false, false);
    for t in types {
        match t.as_str() {
            Some("platform") => platform = true,
            Some("function") => function = true,
            Some("extension") => extension = true,
            _ => {
                return Err(format!(
                    "types: unknown type {t}: allowed are platform, function, extension"
                ));
            }
        }
    }
    let buffering = v.get("buffering").cloned().unwrap_or(json!({}));
    let mut values = [0u64; 3];
    for (i, (field, default, min, max)) in BUFFERING.iter().enumerate() {
        values[i] = match buffering.get(*field) {
            None | Some(Value::Null) => *default,
            Some(n) => match n.as_u64() {
                Some(n) if (*min..=*max).contains(&n) => n,
                _ => {
                    return Err(format!(
                        "buffering.{field} must be an integer from {min} to {max}, got {n}"
                    ));
                }
            },
        };
    }
    let destination = v.get("destination").ok_or("destination is missing")?;
    let destination = match destination.get("protocol").and_then(Value::as_str) {
        Some("HTTP") => {
            let uri = destination
                .get("URI")
                .and_then(Value::as_str)
                .ok_or("destination.URI is missing")?;
            parse_http_destination(uri)?
        }
        Some("TCP") => {
            let port = destination
                .get("port")
                .and_then(Value::as_u64)
                .and_then(|p| u16::try_from(p).ok())
                .filter(|p| *p > 0)
                .ok_or("destination.port must be a port number from 1 to 65535")?;
            Destination::Tcp { port }
        }
        _ => return Err("destination.protocol must be HTTP or TCP".into()),
    };
    Ok(Subscription {
        platform,
        function,
        extension,
        buffering: Buffering {
            max_items: values[0] as usize,
            max_bytes: values[1] as usize,
            timeout: Duration::from_millis(values[2]),
        },
        destination,
    })
}

fn parse_http_destination(uri: &str) -> Result<Destination, String> {
    let parsed: axum::http::Uri = uri
        .parse()
        .map_err(|_| format!("destination.URI `{uri}` is not a URI"))?;
    if parsed.scheme_str() != Some("http") {
        return Err(format!("destination.URI `{uri}` must use http://"));
    }
    let host = parsed.host().unwrap_or("");
    if !matches!(host, "sandbox.localdomain" | "localhost" | "127.0.0.1") {
        return Err(format!(
            "destination.URI `{uri}`: the host must be sandbox.localdomain (or 127.0.0.1): telemetry stays in the execution environment"
        ));
    }
    let port = parsed
        .port_u16()
        .ok_or_else(|| format!("destination.URI `{uri}` has no port"))?;
    let path = parsed
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "/".into());
    Ok(Destination::Http { port, path })
}

/// One subscriber's delivery: buffers records and sends a batch when it
/// holds `max_items` records or `max_bytes` bytes, when the oldest record
/// has waited `timeout`, on a flush, and at the end.
async fn deliver(dest: Destination, buffering: Buffering, mut rx: mpsc::UnboundedReceiver<Msg>) {
    let mut batch: Vec<Arc<Value>> = Vec::new();
    let mut bytes = 0usize;
    let mut oldest: Option<tokio::time::Instant> = None;
    loop {
        let due = oldest.map(|t| t + buffering.timeout);
        let msg = tokio::select! {
            m = rx.recv() => m,
            _ = async { tokio::time::sleep_until(due.expect("due")).await }, if due.is_some() => Some(Msg::Flush),
        };
        let flush = match msg {
            None => {
                send(&dest, &batch).await;
                return;
            }
            Some(Msg::Flush) => true,
            Some(Msg::Record(r)) => {
                bytes += r.to_string().len();
                batch.push(r);
                oldest.get_or_insert_with(tokio::time::Instant::now);
                batch.len() >= buffering.max_items || bytes >= buffering.max_bytes
            }
        };
        if flush && !batch.is_empty() {
            send(&dest, &batch).await;
            batch.clear();
            bytes = 0;
            oldest = None;
        }
    }
}

/// Connects to the subscriber on loopback, retrying for a while: an
/// extension may still be binding its listener (the `lambda-extension`
/// crate even re-binds it between connections).
async fn connect(port: u16) -> Option<tokio::net::TcpStream> {
    for _ in 0..100 {
        if let Ok(s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            return Some(s);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

async fn send(dest: &Destination, batch: &[Arc<Value>]) {
    if batch.is_empty() {
        return;
    }
    let result = match dest {
        Destination::Http { port, path } => post(*port, path, batch).await,
        Destination::Tcp { port } => {
            let mut lines = String::new();
            for r in batch {
                lines.push_str(&r.to_string());
                lines.push('\n');
            }
            match connect(*port).await {
                Some(mut s) => s
                    .write_all(lines.as_bytes())
                    .await
                    .map_err(|e| e.to_string()),
                None => Err(format!("nothing listens on 127.0.0.1:{port}")),
            }
        }
    };
    if let Err(e) = result {
        tracing::debug!("telemetry delivery of {} records failed: {e}", batch.len());
    }
}

/// One POST of a JSON array, on its own connection.
async fn post(port: u16, path: &str, batch: &[Arc<Value>]) -> Result<(), String> {
    use http_body_util::Full;
    let items: Vec<String> = batch.iter().map(|r| r.to_string()).collect();
    let body = format!("[{}]", items.join(","));
    let stream = connect(port)
        .await
        .ok_or_else(|| format!("nothing listens on 127.0.0.1:{port}"))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let request = hyper::Request::post(path)
        .header("host", format!("sandbox.localdomain:{port}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("the subscriber answered {}", response.status()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_date_matches_known_days() {
        assert_eq!(civil_date(0), (1970, 1, 1));
        assert_eq!(civil_date(19_723), (2024, 1, 1));
        assert_eq!(civil_date(11_016), (2000, 2, 29));
    }

    fn body(buffering: Value, uri: &str) -> Vec<u8> {
        json!({
            "schemaVersion": "2022-07-01",
            "types": ["platform", "function"],
            "buffering": buffering,
            "destination": {"protocol": "HTTP", "URI": uri},
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn buffering_bounds_name_the_field_and_range() {
        let ok = parse_subscription(
            &body(json!({}), "http://sandbox.localdomain:9003/t"),
            Api::Telemetry,
        )
        .unwrap();
        assert_eq!(
            ok.buffering,
            Buffering {
                max_items: 10_000,
                max_bytes: 262_144,
                timeout: Duration::from_millis(1000)
            }
        );
        assert_eq!(
            ok.destination,
            Destination::Http {
                port: 9003,
                path: "/t".into()
            }
        );
        let err = parse_subscription(
            &body(json!({"maxItems": 999}), "http://sandbox.localdomain:1"),
            Api::Telemetry,
        )
        .unwrap_err();
        assert_eq!(
            err,
            "buffering.maxItems must be an integer from 1000 to 10000, got 999"
        );
        let err = parse_subscription(
            &body(json!({"timeoutMs": 30_001}), "http://sandbox.localdomain:1"),
            Api::Telemetry,
        )
        .unwrap_err();
        assert!(err.contains("buffering.timeoutMs") && err.contains("25 to 30000"));
        let err = parse_subscription(&body(json!({}), "http://example.com:80/"), Api::Telemetry)
            .unwrap_err();
        assert!(err.contains("sandbox.localdomain"), "{err}");
    }

    #[test]
    fn json_function_logs_become_objects_only_in_json_format() {
        let line = r#"{"level":"INFO","message":"hi"}"#;
        for (json_logs, expected) in [
            (true, json!({"level": "INFO", "message": "hi"})),
            (false, json!(line)),
        ] {
            let t = Telemetry::new(json_logs);
            t.function_line(line);
            t.function_line("plain text");
            let st = t.state.lock().unwrap();
            let records: Vec<&Value> = st.backlog.iter().map(|r| &r["record"]).collect();
            assert_eq!(records[records.len() - 2], &expected);
            assert_eq!(records[records.len() - 1], &json!("plain text"));
            assert_eq!(st.backlog[0]["type"], "platform.initStart");
        }
    }

    #[test]
    fn without_a_subscriber_in_init_no_records_are_built_after_it() {
        let t = Telemetry::new(false);
        t.function_line("during init");
        t.init_done();
        let kept = t.state.lock().unwrap().backlog.len();
        t.start("r-1", "Root=1-x");
        t.function_line("handling r-1");
        t.report("r-1", "success", Duration::from_millis(3), 3, 128, 20, None);
        assert!(!t.wanted());
        assert_eq!(t.state.lock().unwrap().backlog.len(), kept);
    }

    #[test]
    fn timestamps_are_rfc3339_with_milliseconds() {
        let t = now_rfc3339();
        assert_eq!(t.len(), 24, "{t}");
        assert!(t.ends_with('Z') && t.as_bytes()[10] == b'T', "{t}");
    }
}
