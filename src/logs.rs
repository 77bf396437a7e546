//! `cargo fn logs`: a function's log lines, from CloudWatch Logs (deployed
//! functions) or from a running `cargo fn watch` (its invocation history),
//! read the same way and printed the same way.
//!
//! Lines are grouped per request (an environment runs one invocation at a
//! time, so within one log stream everything between `START` and `REPORT`
//! belongs to that request), START/END/REPORT and errors are coloured, and
//! each REPORT gets a one-line summary with Lambda's cost estimate
//! ([`crate::emulator::cost_estimate`], the emulator's pricing).
//!
//! Following (`--tail`) uses Live Tail where AWS offers it, else polls
//! FilterLogEvents: each poll re-reads a look-back window behind the newest
//! event seen and drops event ids already printed, so late-ingested events
//! are not lost and none prints twice; throttling slows the polls down.
//! Live Tail is only tried against AWS itself: the SDK sends StartLiveTail
//! to a `streaming-` host prefix (no such host for `127.0.0.1`), LocalStack
//! lacks the operation, and moto answers it with one replay of the stored
//! events and ends the session. A session refused, failing or ending before
//! its first event hands over to polling, so polling (tested against moto)
//! is the path every endpoint can take.
//!
//! This module knows CloudWatch only through [`LogsApi`] and the local
//! emulator only through its JSON API (`/_cargo-fn/api/...`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, Write};
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::aws::logs::{FilterQuery, LogEvent, LogsApi};
use crate::emulator::{Architecture, cost_estimate};
use crate::error::hinted;

/// How far behind the newest event seen each poll reads again, for events
/// CloudWatch ingests late (their timestamp is older than their arrival).
const LOOKBACK_MS: i64 = 60_000;
/// Poll interval while following, and its ceiling under throttling.
const POLL: Duration = Duration::from_secs(1);
const MAX_POLL: Duration = Duration::from_secs(30);

/// One function's logs: where they are and how it is priced.
#[derive(Debug, Clone)]
pub struct Source {
    pub function: String,
    /// `/aws/lambda/<function>` unless configured (`log-group`).
    pub group: String,
    pub arch: Architecture,
}

impl Source {
    /// The default log group Lambda writes to.
    pub fn default_group(function: &str) -> String {
        crate::aws::default_log_group(function)
    }
}

/// The sources for `names` (every configured function when empty): each
/// configured function's `log-group` and architecture; a name the project
/// does not configure gets Lambda's default group and x86_64 pricing.
pub fn sources(configs: &[crate::config::FunctionConfig], names: &[String]) -> Result<Vec<Source>> {
    let from = |c: &crate::config::FunctionConfig| Source {
        function: c.name.clone(),
        group: c.log_group_name(),
        arch: match c.architecture {
            crate::config::Arch::X86_64 => Architecture::X86_64,
            crate::config::Arch::Arm64 => Architecture::Arm64,
        },
    };
    if names.is_empty() {
        if configs.is_empty() {
            return Err(hinted(
                "no function to read logs of",
                "name it: cargo fn logs FUNCTION",
            ));
        }
        return Ok(configs.iter().map(from).collect());
    }
    Ok(names
        .iter()
        .map(|n| match configs.iter().find(|c| &c.name == n) {
            Some(c) => from(c),
            None => Source {
                function: n.clone(),
                group: Source::default_group(n),
                arch: Architecture::X86_64,
            },
        })
        .collect())
}

/// The versions an alias routes to (its version and a canary's).
pub async fn alias_versions(
    api: &impl crate::aws::LambdaApi,
    function: &str,
    alias: &str,
) -> Result<Vec<String>> {
    let Some(a) = api.get_alias(function, alias).await? else {
        return Err(hinted(
            format!("function `{function}` has no alias `{alias}`"),
            "name an existing alias (cargo fn deploy creates `live`), or pass --version",
        ));
    };
    let mut versions = vec![a.version];
    versions.extend(a.weights.into_keys());
    Ok(versions)
}

/// What to read and how to print it.
#[derive(Debug, Clone, Default)]
pub struct LogsOptions {
    /// Oldest event, ms since the epoch.
    pub since_ms: i64,
    /// CloudWatch filter pattern (remote); terms that must all appear (local).
    pub filter: Option<String>,
    pub follow: bool,
    /// Only log streams of these versions (`[N]` in the stream name).
    pub versions: Option<Vec<String>>,
    pub style: Style,
}

/// How lines look.
#[derive(Debug, Clone, Copy, Default)]
pub struct Style {
    pub color: bool,
    pub pretty: bool,
    pub json: bool,
}

/// Parses `--since`: a duration back from `now_ms` (`30s`, `10m`, `2h`,
/// `1d`, `1w`) or an RFC 3339 time (`2026-11-30T08:00:00Z`).
pub fn parse_since(text: &str, now_ms: i64) -> Result<i64, String> {
    let units: [(&str, i64); 5] = [
        ("s", 1_000),
        ("m", 60_000),
        ("h", 3_600_000),
        ("d", 86_400_000),
        ("w", 604_800_000),
    ];
    for (unit, ms) in units {
        if let Some(n) = text.strip_suffix(unit)
            && !n.is_empty()
            && n.bytes().all(|b| b.is_ascii_digit())
        {
            let n: i64 = n.parse().map_err(|_| format!("`{text}` is too large"))?;
            return Ok(now_ms.saturating_sub(n.saturating_mul(ms)));
        }
    }
    aws_smithy_types::DateTime::from_str(text, aws_smithy_types::date_time::Format::DateTime)
        .ok()
        .and_then(|t| t.to_millis().ok())
        .ok_or_else(|| {
            format!(
                "`{text}` is neither a duration (30s, 10m, 2h, 1d, 1w) nor an RFC 3339 time (2026-11-30T08:00:00Z)"
            )
        })
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// The version a Lambda log stream belongs to: `2026/11/30/[3]abc...` -> `3`.
pub fn stream_version(stream: &str) -> Option<&str> {
    let start = stream.find('[')? + 1;
    let end = start + stream[start..].find(']')?;
    Some(&stream[start..end])
}

/// The REPORT figures of one invocation.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize)]
pub struct Report {
    pub request_id: String,
    pub duration_ms: f64,
    pub billed_ms: u64,
    pub memory_mb: u32,
    pub max_memory_mb: u32,
    pub init_ms: Option<f64>,
    /// `timeout`, `error`, ... when the platform reported one.
    pub status: Option<String>,
}

impl Report {
    pub fn cost_usd(&self, arch: Architecture) -> f64 {
        cost_estimate(arch, self.memory_mb, self.billed_ms).total()
    }
}

/// Parses a REPORT line, in Lambda's text format or as a JSON
/// `platform.report` record.
pub fn parse_report(message: &str) -> Option<Report> {
    let message = message.trim_end();
    if let Some(rest) = message.strip_prefix("REPORT RequestId: ") {
        let mut fields = rest.split('\t');
        let mut r = Report {
            request_id: fields.next()?.trim().to_string(),
            ..Report::default()
        };
        for field in fields {
            let Some((key, value)) = field.split_once(':') else {
                continue;
            };
            // `12.50 ms`, `128 MB`: the first word (a unit or a note after
            // it does not hide the number).
            let number = value.split_whitespace().next().unwrap_or_default();
            match key.trim() {
                "Duration" => r.duration_ms = number.parse().ok()?,
                "Billed Duration" => r.billed_ms = number.parse().ok()?,
                "Memory Size" => r.memory_mb = number.parse().ok()?,
                "Max Memory Used" => r.max_memory_mb = number.parse().ok()?,
                "Init Duration" => r.init_ms = number.parse().ok(),
                "Status" => r.status = Some(value.trim().to_string()),
                _ => {}
            }
        }
        return Some(r);
    }
    let v: Value = serde_json::from_str(message).ok()?;
    if v.get("type")?.as_str()? != "platform.report" {
        return None;
    }
    let record = v.get("record")?;
    let m = record.get("metrics")?;
    let num = |k: &str| m.get(k).and_then(Value::as_f64);
    Some(Report {
        request_id: record.get("requestId")?.as_str()?.to_string(),
        duration_ms: num("durationMs")?,
        billed_ms: num("billedDurationMs")? as u64,
        memory_mb: num("memorySizeMB")? as u32,
        max_memory_mb: num("maxMemoryUsedMB").unwrap_or_default() as u32,
        init_ms: num("initDurationMs"),
        status: record
            .get("status")
            .and_then(Value::as_str)
            .filter(|s| *s != "success")
            .map(str::to_string),
    })
}

/// The kind of a platform line, and the request it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Start,
    End,
    Report,
    Other,
}

fn id_after(rest: &str) -> Option<&str> {
    rest.split(char::is_whitespace)
        .next()
        .filter(|s| !s.is_empty())
}

fn platform_line(message: &str) -> (Kind, Option<&str>) {
    if let Some(rest) = message.strip_prefix("START RequestId: ") {
        return (Kind::Start, id_after(rest));
    }
    if let Some(rest) = message.strip_prefix("END RequestId: ") {
        return (Kind::End, id_after(rest));
    }
    if let Some(rest) = message.strip_prefix("REPORT RequestId: ") {
        return (Kind::Report, id_after(rest));
    }
    if message.starts_with('{')
        && let Ok(v) = serde_json::from_str::<Value>(message)
        && let Some(t) = v.get("type").and_then(Value::as_str)
    {
        let kind = match t {
            "platform.start" => Kind::Start,
            "platform.runtimeDone" => Kind::End,
            "platform.report" => Kind::Report,
            _ => Kind::Other,
        };
        if kind != Kind::Other {
            // The id borrowed from `message`: find it in the text.
            let id = v
                .pointer("/record/requestId")
                .and_then(Value::as_str)
                .and_then(|id| message.find(id).map(|at| &message[at..at + id.len()]));
            return (kind, id);
        }
    }
    (Kind::Other, None)
}

/// Whether a line reports an error (highlighted).
fn is_error(message: &str) -> bool {
    const MARKS: &[&str] = &[
        "ERROR",
        "Error:",
        "error:",
        "panicked",
        "Task timed out",
        "Runtime.ExitError",
        "\"level\":\"ERROR\"",
        "\"level\":\"error\"",
    ];
    MARKS.iter().any(|m| message.contains(m))
}

/// One event with the function and request it belongs to.
#[derive(Debug, Clone)]
pub struct Line {
    pub function: String,
    pub arch: Architecture,
    pub request_id: Option<String>,
    pub event: LogEvent,
}

/// Assigns each event its request: within one stream, from START to REPORT.
#[derive(Debug, Default)]
pub struct Attributor {
    current: HashMap<(String, String), String>,
}

impl Attributor {
    pub fn attribute(&mut self, function: &str, arch: Architecture, event: LogEvent) -> Line {
        let key = (function.to_string(), event.stream.clone());
        let (kind, id) = platform_line(&event.message);
        let request_id = match (kind, id) {
            (Kind::Start, Some(id)) => {
                self.current.insert(key, id.to_string());
                Some(id.to_string())
            }
            (Kind::Report, Some(id)) => {
                self.current.remove(&key);
                Some(id.to_string())
            }
            (_, Some(id)) => Some(id.to_string()),
            (_, None) => self.current.get(&key).cloned(),
        };
        Line {
            function: function.to_string(),
            arch,
            request_id,
            event,
        }
    }
}

/// Reorders lines so each request's lines are together, requests in the
/// order they started; lines outside any request keep their place.
pub fn group(lines: Vec<Line>) -> Vec<Line> {
    let mut order: Vec<Option<String>> = Vec::new();
    let mut groups: HashMap<String, Vec<Line>> = HashMap::new();
    let mut loose: Vec<Vec<Line>> = Vec::new();
    for line in lines {
        match &line.request_id {
            Some(id) => {
                if !groups.contains_key(id) {
                    order.push(Some(id.clone()));
                }
                groups.entry(id.clone()).or_default().push(line);
            }
            None => {
                order.push(None);
                loose.push(vec![line]);
            }
        }
    }
    let mut loose = loose.into_iter();
    let mut out = Vec::new();
    for slot in order {
        match slot {
            Some(id) => out.extend(groups.remove(&id).unwrap_or_default()),
            None => out.extend(loose.next().unwrap_or_default()),
        }
    }
    out
}

const RESET: &str = "\x1b[0m";
const TAG_COLORS: &[&str] = &[
    "\x1b[36m", "\x1b[35m", "\x1b[33m", "\x1b[32m", "\x1b[34m", "\x1b[96m",
];

/// Renders lines for a terminal (or as JSON, one object per line).
#[derive(Debug)]
pub struct Printer {
    pub style: Style,
    /// Prefix each line with its function (several functions shown).
    pub show_function: bool,
}

impl Printer {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.style.color {
            format!("{code}{text}{RESET}")
        } else {
            text.to_string()
        }
    }

    /// The text for one line (possibly several terminal lines).
    pub fn render(&self, line: &Line) -> String {
        let message = line.event.message.trim_end_matches(['\n', '\r']);
        let report = parse_report(message);
        if self.style.json {
            let mut v = serde_json::json!({
                "function": line.function,
                "timestamp": iso(line.event.timestamp),
                "timestamp_ms": line.event.timestamp,
                "stream": line.event.stream,
                "event_id": line.event.event_id,
                "request_id": line.request_id,
                "message": message,
            });
            if let Some(r) = &report {
                v["report"] = serde_json::to_value(r).unwrap_or_default();
                v["report"]["cost_usd"] = r.cost_usd(line.arch).into();
            }
            return v.to_string();
        }
        let mut head = self.paint("\x1b[2m", &iso(line.event.timestamp));
        if self.show_function {
            head.push(' ');
            head.push_str(&self.paint("\x1b[1m", &line.function));
        }
        if let Some(id) = &line.request_id {
            let short: String = id.chars().take(8).collect();
            let color = TAG_COLORS[id.bytes().map(usize::from).sum::<usize>() % TAG_COLORS.len()];
            head.push(' ');
            head.push_str(&self.paint(color, &format!("[{short}]")));
        }
        let (kind, _) = platform_line(message);
        let body = match kind {
            Kind::Start | Kind::End => self.paint("\x1b[36m", message),
            Kind::Report => self.paint("\x1b[1;34m", message),
            // Indented first, then red: `--pretty` applies to error lines too.
            Kind::Other if is_error(message) => self.paint("\x1b[1;31m", &self.pretty(message)),
            Kind::Other if message.starts_with("COST ") => self.paint("\x1b[2m", message),
            Kind::Other => self.pretty(message),
        };
        let mut out = format!("{head} {body}");
        if let Some(r) = report {
            out.push('\n');
            out.push_str(&self.summary(&r, line.arch));
        }
        out
    }

    /// `--pretty`: a JSON object (alone or after Lambda's text prefix
    /// `time\trequest id\tlevel\t`) indented.
    fn pretty(&self, message: &str) -> String {
        if !self.style.pretty {
            return message.to_string();
        }
        let at = message.find('{').unwrap_or(message.len());
        match serde_json::from_str::<Value>(&message[at..]) {
            Ok(v @ Value::Object(_)) => {
                let text = serde_json::to_string_pretty(&v).unwrap_or_default();
                format!("{}{}", &message[..at], text.replace('\n', "\n    "))
            }
            _ => message.to_string(),
        }
    }

    fn summary(&self, r: &Report, arch: Architecture) -> String {
        let mut text = format!(
            "    \u{2514} {:.2} ms (billed {} ms) \u{b7} {}/{} MB",
            r.duration_ms, r.billed_ms, r.max_memory_mb, r.memory_mb
        );
        if let Some(init) = r.init_ms {
            text.push_str(&format!(" \u{b7} cold start, init {init:.2} ms"));
        }
        text.push_str(&format!(" \u{b7} ~${:.10}", r.cost_usd(arch)));
        if let Some(s) = &r.status {
            text.push_str(&format!(" \u{b7} {s}"));
        }
        let code = if r.status.is_some() {
            "\x1b[31m"
        } else {
            "\x1b[32m"
        };
        self.paint(code, &text)
    }
}

/// A timestamp as RFC 3339 with three decimals (fixed width, so lines align).
fn iso(ms: i64) -> String {
    let secs = aws_smithy_types::DateTime::from_secs(ms.div_euclid(1000))
        .fmt(aws_smithy_types::date_time::Format::DateTime)
        .unwrap_or_else(|_| ms.to_string());
    match secs.strip_suffix('Z') {
        Some(s) => format!("{s}.{:03}Z", ms.rem_euclid(1000)),
        None => secs,
    }
}

/// Reads every event of `source` from `since_ms` to now (all pages).
async fn read_all(
    api: &impl LogsApi,
    source: &Source,
    opts: &LogsOptions,
    start_ms: i64,
) -> Result<Vec<LogEvent>> {
    let mut query = FilterQuery {
        group: source.group.clone(),
        start_ms,
        end_ms: None,
        pattern: opts.filter.clone(),
        next_token: None,
    };
    let mut events = Vec::new();
    loop {
        let page = api.filter(&query).await?;
        events.extend(page.events.into_iter().filter(|e| wanted(opts, e)));
        match page.next_token {
            Some(t) => query.next_token = Some(t),
            None => return Ok(events),
        }
    }
}

fn wanted(opts: &LogsOptions, event: &LogEvent) -> bool {
    match &opts.versions {
        None => true,
        Some(versions) => {
            stream_version(&event.stream).is_some_and(|v| versions.iter().any(|w| w == v))
        }
    }
}

/// Remote logs: prints what is there since `opts.since_ms`, then, when
/// following, every new event once, until the output closes or an error.
pub async fn remote(
    api: &impl LogsApi,
    sources: &[Source],
    opts: &LogsOptions,
    out: &mut dyn Write,
) -> Result<()> {
    let mut arns = Vec::new();
    for s in sources {
        match api.group_arn(&s.group).await? {
            Some(arn) => arns.push(arn),
            None => {
                return Err(hinted(
                    format!(
                        "log group `{}` of function `{}` does not exist",
                        s.group, s.function
                    ),
                    "Lambda creates it on the first invocation; invoke the function, or set \
                     `log-group` in its configuration if it logs elsewhere",
                ));
            }
        }
    }
    let printer = Printer {
        style: opts.style,
        show_function: sources.len() > 1,
    };
    let mut attributor = Attributor::default();
    let mut seen = Seen::default();
    let mut lines = Vec::new();
    for s in sources {
        for e in read_all(api, s, opts, opts.since_ms).await? {
            seen.insert(&e);
            lines.push((s, e));
        }
    }
    lines.sort_by_key(|(_, e)| e.timestamp);
    let lines: Vec<Line> = lines
        .into_iter()
        .map(|(s, e)| attributor.attribute(&s.function, s.arch, e))
        .collect();
    for line in group(lines) {
        emit(out, &printer, &line)?;
    }
    out.flush()?;
    if !opts.follow {
        return Ok(());
    }
    if api.live_tail_available() {
        match live_tail(api, sources, &arns, opts, &printer, &mut attributor, out).await {
            Ok(()) => return Ok(()),
            Err(e) => tracing::warn!("Live Tail is not available ({e:#}); polling instead"),
        }
    }
    poll(
        api,
        sources,
        opts,
        &printer,
        &mut attributor,
        &mut seen,
        out,
    )
    .await
}

/// Writes one line; a closed output (`| head`) ends the command quietly.
fn emit(out: &mut dyn Write, printer: &Printer, line: &Line) -> Result<()> {
    writeln!(out, "{}", printer.render(line)).context("writing the log")
}

/// Event ids already printed, with their timestamps (to forget old ones).
#[derive(Debug, Default)]
struct Seen {
    ids: HashSet<String>,
    by_time: BTreeMap<i64, Vec<String>>,
    newest: i64,
}

impl Seen {
    /// False when the event was seen before.
    fn insert(&mut self, e: &LogEvent) -> bool {
        self.newest = self.newest.max(e.timestamp);
        let Some(id) = &e.event_id else { return true };
        if !self.ids.insert(id.clone()) {
            return false;
        }
        self.by_time
            .entry(e.timestamp)
            .or_default()
            .push(id.clone());
        true
    }

    /// Drops ids older than the look-back window: no poll reads them again.
    fn prune(&mut self) {
        let keep = self.by_time.split_off(&(self.newest - LOOKBACK_MS - 1));
        for ids in std::mem::replace(&mut self.by_time, keep).into_values() {
            for id in ids {
                self.ids.remove(&id);
            }
        }
    }
}

/// Follows by polling FilterLogEvents.
async fn poll(
    api: &impl LogsApi,
    sources: &[Source],
    opts: &LogsOptions,
    printer: &Printer,
    attributor: &mut Attributor,
    seen: &mut Seen,
    out: &mut dyn Write,
) -> Result<()> {
    let mut interval = POLL;
    if seen.newest == 0 {
        seen.newest = opts.since_ms.max(now_ms() - LOOKBACK_MS);
    }
    loop {
        tokio::time::sleep(interval).await;
        let start = (seen.newest - LOOKBACK_MS).max(opts.since_ms);
        let mut fresh = Vec::new();
        let mut throttled = false;
        for s in sources {
            match read_all(api, s, opts, start).await {
                Ok(events) => fresh.extend(events.into_iter().map(|e| (s, e))),
                Err(e)
                    if e.downcast_ref::<crate::aws::ApiError>()
                        .is_some_and(|a| a.is("ThrottlingException")) =>
                {
                    throttled = true;
                }
                Err(e) => return Err(e),
            }
        }
        interval = if throttled {
            (interval * 2).min(MAX_POLL)
        } else {
            POLL
        };
        fresh.sort_by_key(|(_, e)| e.timestamp);
        let mut lines = Vec::new();
        for (s, e) in fresh {
            if seen.insert(&e) {
                lines.push(attributor.attribute(&s.function, s.arch, e));
            }
        }
        // Requests that arrive in one poll print one after another, each
        // request's lines together (as the first read prints them).
        for line in group(lines) {
            emit(out, printer, &line)?;
        }
        seen.prune();
        out.flush()?;
    }
}

/// Follows with a Live Tail session (restarted when one ends: they last
/// at most three hours). `Err` when the first session fails or ends before
/// delivering anything (an endpoint without real Live Tail, e.g. moto's
/// one-shot replay of stored events): the caller polls instead, and nothing
/// was printed twice.
async fn live_tail(
    api: &impl LogsApi,
    sources: &[Source],
    arns: &[String],
    opts: &LogsOptions,
    printer: &Printer,
    attributor: &mut Attributor,
    out: &mut dyn Write,
) -> Result<()> {
    let mut delivered = false;
    loop {
        let (tx, mut rx) = mpsc::channel(256);
        let session = api.live_tail(arns, opts.filter.as_deref(), tx);
        tokio::pin!(session);
        let ended = loop {
            tokio::select! {
                r = &mut session => break r,
                Some(e) = rx.recv() => {
                    delivered = true;
                    // With what else has arrived: one batch, grouped.
                    let mut batch = vec![e];
                    while let Ok(e) = rx.try_recv() {
                        batch.push(e);
                    }
                    print_tailed(sources, arns, opts, printer, attributor, out, batch)?;
                }
            }
        };
        let rest: Vec<LogEvent> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
        if !rest.is_empty() {
            delivered = true;
            print_tailed(sources, arns, opts, printer, attributor, out, rest)?;
        }
        match ended {
            Err(e) if !delivered => return Err(e.into()),
            Ok(()) if !delivered => anyhow::bail!("the Live Tail session ended at once"),
            Ok(()) => {}
            Err(e) => tracing::warn!("Live Tail session ended ({e}); starting a new one"),
        }
        // A session that ends at once again must not spin.
        tokio::time::sleep(POLL).await;
    }
}

fn print_tailed(
    sources: &[Source],
    arns: &[String],
    opts: &LogsOptions,
    printer: &Printer,
    attributor: &mut Attributor,
    out: &mut dyn Write,
    events: Vec<LogEvent>,
) -> Result<()> {
    let mut lines = Vec::new();
    for e in events.into_iter().filter(|e| wanted(opts, e)) {
        // Live Tail names the group by its ARN.
        let source = arns
            .iter()
            .position(|a| e.group == *a || e.group.trim_end_matches(":*") == a)
            .map_or(&sources[0], |i| &sources[i]);
        lines.push(attributor.attribute(&source.function, source.arch, e));
    }
    for line in group(lines) {
        emit(out, printer, &line)?;
    }
    out.flush()?;
    Ok(())
}

/// One invocation as the emulator's history API serves it.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct LocalInvocation {
    pub seq: u64,
    pub function: String,
    pub request_id: String,
    /// ms since the epoch.
    pub started_ms: i64,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub log: Vec<String>,
}

/// Whether `line` matches a local `--filter`: every space-separated term
/// appears (a term starting with `-` must not).
pub fn local_match(filter: &str, line: &str) -> bool {
    filter
        .split_whitespace()
        .all(|term| match term.strip_prefix('-') {
            Some(t) if !t.is_empty() => !line.contains(t),
            _ => line.contains(term.trim_matches('"')),
        })
}

/// Local logs from a running `cargo fn watch` at `endpoint`.
pub fn local(
    endpoint: &str,
    functions: &[String],
    opts: &LogsOptions,
    out: &mut dyn Write,
) -> Result<()> {
    let base = endpoint.trim_end_matches('/');
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let unreachable = |e: ureq::Error| {
        hinted(
            format!("cannot reach the local emulator at {base}: {e}"),
            "start it with `cargo fn watch` (or pass --port / --endpoint, or --remote for CloudWatch)",
        )
    };
    let url = format!("{base}/_cargo-fn/api/invocations?log=1");
    let mut resp = agent.get(&url).call().map_err(unreachable)?;
    if resp.status() != 200 {
        return Err(hinted(
            format!(
                "{base} answered HTTP {} to the history API: is it `cargo fn watch`?",
                resp.status()
            ),
            "pass the port of a running `cargo fn watch` with --port",
        ));
    }
    let text = resp
        .body_mut()
        .read_to_string()
        .context("reading the emulator's invocation history")?;
    let list: Vec<LocalInvocation> =
        serde_json::from_str(&text).context("reading the emulator's invocation history")?;
    // The function's name on every line only when lines of several can
    // show: several named, or none named and the emulator serves several.
    let show_function = match functions.len() {
        1 => false,
        0 => {
            served_functions(&agent, base).unwrap_or_else(|| {
                list.iter()
                    .map(|i| i.function.as_str())
                    .collect::<HashSet<_>>()
                    .len()
            }) > 1
        }
        _ => true,
    };
    let printer = Printer {
        style: opts.style,
        show_function,
    };
    let mut last = 0;
    for inv in list {
        last = last.max(inv.seq);
        print_local(functions, opts, &printer, &inv, out)?;
    }
    out.flush()?;
    if !opts.follow {
        return Ok(());
    }
    let url = format!("{base}/_cargo-fn/api/events?after={last}");
    let resp = agent
        .get(&url)
        .config()
        .timeout_global(None)
        .build()
        .call()
        .map_err(unreachable)?;
    let reader = std::io::BufReader::new(resp.into_body().into_reader());
    for line in reader.lines() {
        let line = line.context("reading the emulator's event stream")?;
        let Some(data) = line.strip_prefix("data:") else {
            continue;
        };
        let Ok(inv) = serde_json::from_str::<LocalInvocation>(data.trim()) else {
            continue;
        };
        print_local(functions, opts, &printer, &inv, out)?;
        out.flush()?;
    }
    Err(hinted(
        format!("the local emulator at {base} closed the event stream"),
        "`cargo fn watch` stopped; start it again and re-run",
    ))
}

/// How many functions the emulator at `base` serves (`None` when it does
/// not say).
fn served_functions(agent: &ureq::Agent, base: &str) -> Option<usize> {
    let mut resp = agent
        .get(&format!("{base}/_cargo-fn/api/environments"))
        .call()
        .ok()?;
    if resp.status() != 200 {
        return None;
    }
    let list: Vec<Value> = serde_json::from_str(&resp.body_mut().read_to_string().ok()?).ok()?;
    Some(list.len())
}

fn print_local(
    functions: &[String],
    opts: &LogsOptions,
    printer: &Printer,
    inv: &LocalInvocation,
    out: &mut dyn Write,
) -> Result<()> {
    if inv.started_ms < opts.since_ms
        || (!functions.is_empty() && !functions.contains(&inv.function))
    {
        return Ok(());
    }
    let arch = if inv.architecture == "arm64" {
        Architecture::Arm64
    } else {
        Architecture::X86_64
    };
    for text in &inv.log {
        if let Some(f) = &opts.filter
            && !local_match(f, text)
        {
            continue;
        }
        let line = Line {
            function: inv.function.clone(),
            arch,
            request_id: Some(inv.request_id.clone()),
            event: LogEvent {
                event_id: None,
                timestamp: inv.started_ms,
                group: "local".into(),
                stream: "local".into(),
                message: text.clone(),
            },
        };
        emit(out, printer, &line)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = "2026/11/30/[$LATEST]abc";

    /// CloudWatch Logs with a fixed set of events (a new one appears once
    /// Live Tail was tried) and a Live Tail that fails or ends at once.
    struct NoLiveTail {
        events: std::sync::Mutex<Vec<LogEvent>>,
        live_tail_ends_at_once: bool,
        tried: std::sync::atomic::AtomicUsize,
    }

    impl LogsApi for NoLiveTail {
        async fn group_arn(&self, group: &str) -> crate::aws::ApiResult<Option<String>> {
            Ok(Some(format!(
                "arn:aws:logs:us-east-1:123456789012:log-group:{group}"
            )))
        }
        async fn filter(
            &self,
            q: &FilterQuery,
        ) -> crate::aws::ApiResult<crate::aws::logs::EventPage> {
            let events = self.events.lock().unwrap();
            Ok(crate::aws::logs::EventPage {
                events: events
                    .iter()
                    .filter(|e| e.timestamp >= q.start_ms)
                    .cloned()
                    .collect(),
                next_token: None,
            })
        }
        fn live_tail_available(&self) -> bool {
            true
        }
        async fn live_tail(
            &self,
            _: &[String],
            _: Option<&str>,
            _: mpsc::Sender<LogEvent>,
        ) -> crate::aws::ApiResult<()> {
            self.tried.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let now = now_ms();
            self.events
                .lock()
                .unwrap()
                .push(event(now, STREAM, "written after the start"));
            if self.live_tail_ends_at_once {
                Ok(())
            } else {
                Err(crate::aws::ApiError::new(
                    "logs:StartLiveTail",
                    "AccessDeniedException",
                    "not allowed",
                ))
            }
        }
    }

    /// Collects the output; closes (like `| head`) once `until` was written.
    struct Until {
        text: Vec<u8>,
        until: &'static str,
    }

    impl Write for Until {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if String::from_utf8_lossy(&self.text).contains(self.until) {
                return Err(std::io::ErrorKind::BrokenPipe.into());
            }
            self.text.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn tail_falls_back_to_polling_when_live_tail_is_refused_or_ends_at_once() {
        for ends_at_once in [false, true] {
            let now = now_ms();
            let api = NoLiveTail {
                events: std::sync::Mutex::new(vec![event(now - 1_000, STREAM, "before the start")]),
                live_tail_ends_at_once: ends_at_once,
                tried: Default::default(),
            };
            let sources = [Source {
                function: "f".into(),
                group: "/aws/lambda/f".into(),
                arch: Architecture::X86_64,
            }];
            let opts = LogsOptions {
                since_ms: now - 60_000,
                filter: None,
                follow: true,
                versions: None,
                style: Style::default(),
            };
            let mut out = Until {
                text: Vec::new(),
                until: "written after the start",
            };
            let err = remote(&api, &sources, &opts, &mut out).await.unwrap_err();
            assert!(format!("{err:#}").contains("writing the log"), "{err:#}");
            let text = String::from_utf8_lossy(&out.text);
            assert_eq!(text.matches("before the start").count(), 1, "{text}");
            assert_eq!(text.matches("written after the start").count(), 1, "{text}");
            assert_eq!(
                api.tried.load(std::sync::atomic::Ordering::SeqCst),
                1,
                "Live Tail is tried once, then polling takes over"
            );
        }
    }

    /// CloudWatch Logs where two requests' lines, interleaved in time,
    /// arrive after the first read (so one poll brings them all).
    struct LateInterleaved {
        reads: std::sync::atomic::AtomicUsize,
        events: Vec<LogEvent>,
    }

    impl LogsApi for LateInterleaved {
        async fn group_arn(&self, group: &str) -> crate::aws::ApiResult<Option<String>> {
            Ok(Some(format!(
                "arn:aws:logs:us-east-1:123456789012:log-group:{group}"
            )))
        }
        async fn filter(
            &self,
            q: &FilterQuery,
        ) -> crate::aws::ApiResult<crate::aws::logs::EventPage> {
            let first = self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0;
            Ok(crate::aws::logs::EventPage {
                events: if first {
                    Vec::new()
                } else {
                    self.events
                        .iter()
                        .filter(|e| e.timestamp >= q.start_ms)
                        .cloned()
                        .collect()
                },
                next_token: None,
            })
        }
        fn live_tail_available(&self) -> bool {
            false
        }
        async fn live_tail(
            &self,
            _: &[String],
            _: Option<&str>,
            _: mpsc::Sender<LogEvent>,
        ) -> crate::aws::ApiResult<()> {
            unreachable!("Live Tail is not offered")
        }
    }

    /// Collects the output; fails the write that completes `until` (like a
    /// reader that closed), so a follower ends.
    struct UpTo {
        text: Vec<u8>,
        until: &'static str,
    }

    impl Write for UpTo {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.text.extend_from_slice(buf);
            if String::from_utf8_lossy(&self.text).contains(self.until) {
                return Err(std::io::ErrorKind::BrokenPipe.into());
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn tail_prints_the_requests_of_one_poll_each_together() {
        let t = now_ms();
        let report = |id: &str| {
            format!(
                "REPORT RequestId: {id}\tDuration: 1.00 ms\tBilled Duration: 1 ms\tMemory Size: 128 MB\tMax Memory Used: 9 MB\t"
            )
        };
        let (r1, r2) = (report("r1"), report("r2"));
        let messages = [
            ("a", "START RequestId: r1 Version: $LATEST"),
            ("b", "START RequestId: r2 Version: $LATEST"),
            ("a", "D from r1"),
            ("b", "E from r2"),
            ("a", "D again from r1"),
            ("b", "E again from r2"),
            ("a", "END RequestId: r1"),
            ("a", &r1),
            ("b", "END RequestId: r2"),
            ("b", &r2),
            ("a", "the last line"),
        ];
        let api = LateInterleaved {
            reads: Default::default(),
            events: messages
                .iter()
                .enumerate()
                .map(|(i, (stream, m))| event(t + i as i64, stream, m))
                .collect(),
        };
        let sources = [Source {
            function: "f".into(),
            group: "/aws/lambda/f".into(),
            arch: Architecture::X86_64,
        }];
        let opts = LogsOptions {
            since_ms: t - 60_000,
            follow: true,
            ..LogsOptions::default()
        };
        let mut out = UpTo {
            text: Vec::new(),
            until: "the last line",
        };
        let err = remote(&api, &sources, &opts, &mut out).await.unwrap_err();
        assert!(format!("{err:#}").contains("writing the log"), "{err:#}");
        let text = String::from_utf8_lossy(&out.text);
        let order: Vec<&str> = text
            .lines()
            .filter_map(|l| {
                [
                    "D from",
                    "D again",
                    "E from",
                    "E again",
                    "REPORT RequestId: r",
                ]
                .iter()
                .find(|m| l.contains(*m))
                .copied()
            })
            .collect();
        assert_eq!(
            order,
            vec![
                "D from",
                "D again",
                "REPORT RequestId: r",
                "E from",
                "E again",
                "REPORT RequestId: r"
            ],
            "{text}"
        );
    }

    #[test]
    fn pretty_indents_error_lines_too() {
        let p = Printer {
            style: Style {
                pretty: true,
                ..Style::default()
            },
            show_function: false,
        };
        let line = Attributor::default().attribute(
            "f",
            Architecture::X86_64,
            event(1, "a", r#"{"level":"ERROR","message":"boom"}"#),
        );
        let text = p.render(&line);
        assert!(text.contains("{\n      \"level\": \"ERROR\""), "{text}");
    }

    #[test]
    fn since_takes_durations_and_times() {
        let now = 1_000_000_000;
        assert_eq!(parse_since("10m", now), Ok(now - 600_000));
        assert_eq!(parse_since("2h", now), Ok(now - 7_200_000));
        assert_eq!(
            parse_since("2026-11-30T00:00:00Z", now),
            Ok(1_795_996_800_000)
        );
        let err = parse_since("ten minutes", now).unwrap_err();
        assert!(
            err.contains("`ten minutes`") && err.contains("10m"),
            "{err}"
        );
        assert!(parse_since("m", now).is_err());
    }

    #[test]
    fn report_lines_parse_in_both_formats() {
        let text = "REPORT RequestId: abc\tDuration: 12.50 ms\tBilled Duration: 13 ms\tMemory Size: 128 MB\tMax Memory Used: 20 MB\tInit Duration: 45.10 ms\t";
        let r = parse_report(text).unwrap();
        assert_eq!(r.request_id, "abc");
        assert_eq!(r.billed_ms, 13);
        assert_eq!(r.memory_mb, 128);
        assert_eq!(r.max_memory_mb, 20);
        assert_eq!(r.init_ms, Some(45.1));
        let json = r#"{"time":"2026-11-30T00:00:00Z","type":"platform.report","record":{"requestId":"def","metrics":{"durationMs":2.5,"billedDurationMs":3,"memorySizeMB":512,"maxMemoryUsedMB":30},"status":"timeout"}}"#;
        let r = parse_report(json).unwrap();
        assert_eq!(
            (r.request_id.as_str(), r.billed_ms, r.memory_mb),
            ("def", 3, 512)
        );
        assert_eq!(r.status.as_deref(), Some("timeout"));
        assert!(parse_report("hello").is_none());
    }

    #[test]
    fn times_have_fixed_width_milliseconds() {
        assert_eq!(iso(1_795_996_800_540), "2026-11-30T00:00:00.540Z");
        assert_eq!(iso(1_795_996_800_000), "2026-11-30T00:00:00.000Z");
    }

    #[test]
    fn stream_names_carry_the_version() {
        assert_eq!(stream_version("2026/11/30/[3]0123abcd"), Some("3"));
        assert_eq!(stream_version("2026/11/30/[$LATEST]ff"), Some("$LATEST"));
        assert_eq!(stream_version("other"), None);
    }

    fn event(ts: i64, stream: &str, message: &str) -> LogEvent {
        LogEvent {
            event_id: Some(format!("{stream}-{ts}")),
            timestamp: ts,
            group: "g".into(),
            stream: stream.into(),
            message: message.into(),
        }
    }

    #[test]
    fn lines_group_per_request_across_interleaved_streams() {
        let events = vec![
            event(1, "a", "START RequestId: r1 Version: $LATEST"),
            event(2, "b", "START RequestId: r2 Version: $LATEST"),
            event(3, "a", "hello from r1"),
            event(4, "b", "hello from r2"),
            event(5, "a", "END RequestId: r1"),
            event(
                6,
                "a",
                "REPORT RequestId: r1\tDuration: 1.00 ms\tBilled Duration: 1 ms\tMemory Size: 128 MB\tMax Memory Used: 9 MB\t",
            ),
            event(7, "a", "stray"),
        ];
        let mut at = Attributor::default();
        let lines: Vec<Line> = events
            .into_iter()
            .map(|e| at.attribute("f", Architecture::X86_64, e))
            .collect();
        let grouped: Vec<String> = group(lines)
            .iter()
            .map(|l| l.event.message.clone())
            .collect();
        assert_eq!(grouped[0], "START RequestId: r1 Version: $LATEST");
        assert_eq!(grouped[1], "hello from r1");
        assert!(grouped[3].starts_with("REPORT RequestId: r1"));
        assert_eq!(grouped[4], "START RequestId: r2 Version: $LATEST");
        assert_eq!(grouped[5], "hello from r2");
        assert_eq!(grouped[6], "stray");
    }

    #[test]
    fn report_gets_a_summary_with_cost_and_colour_only_when_asked() {
        let mut at = Attributor::default();
        let line = at.attribute(
            "f",
            Architecture::Arm64,
            event(1, "a", "REPORT RequestId: r1\tDuration: 1000.00 ms\tBilled Duration: 1000 ms\tMemory Size: 1024 MB\tMax Memory Used: 9 MB\tInit Duration: 5.00 ms\t"),
        );
        let plain = Printer {
            style: Style::default(),
            show_function: false,
        }
        .render(&line);
        assert!(!plain.contains('\x1b'), "{plain}");
        let cost = cost_estimate(Architecture::Arm64, 1024, 1000).total();
        assert!(plain.contains(&format!("~${cost:.10}")), "{plain}");
        assert!(plain.contains("cold start, init 5.00 ms"), "{plain}");
        let coloured = Printer {
            style: Style {
                color: true,
                ..Style::default()
            },
            show_function: false,
        }
        .render(&line);
        assert!(coloured.contains("\x1b[1;34mREPORT"), "{coloured}");
    }

    #[test]
    fn pretty_indents_json_after_the_text_prefix() {
        let p = Printer {
            style: Style {
                pretty: true,
                ..Style::default()
            },
            show_function: false,
        };
        assert_eq!(
            p.pretty("INFO\t{\"a\":1}"),
            "INFO\t{\n      \"a\": 1\n    }"
        );
        assert_eq!(p.pretty("not json {"), "not json {");
    }

    #[test]
    fn seen_drops_duplicates_and_forgets_old_ids() {
        let mut seen = Seen::default();
        assert!(seen.insert(&event(1_000, "a", "x")));
        assert!(!seen.insert(&event(1_000, "a", "x")));
        assert!(seen.insert(&event(1_000 + LOOKBACK_MS + 10, "a", "y")));
        seen.prune();
        assert!(!seen.ids.contains("a-1000"));
        assert!(
            seen.ids
                .contains(&format!("a-{}", 1_000 + LOOKBACK_MS + 10))
        );
    }

    #[test]
    fn local_filter_terms() {
        assert!(local_match("ERROR timeout", "ERROR: a timeout"));
        assert!(!local_match("ERROR -retry", "ERROR will retry"));
        assert!(!local_match("WARN", "INFO"));
    }
}
