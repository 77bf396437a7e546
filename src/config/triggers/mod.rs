//! Triggers: what invokes a function (`[[package.metadata.fn.triggers]]` or
//! `triggers = [...]` in `[package.metadata.fn.functions.<bin>]`), as plain,
//! validated data.
//!
//! Each trigger has a `type` (`sqs`, `kinesis`, `dynamodb`, `schedule`, `s3`,
//! `http-api`) and a stable `name` that identifies it across deploys (a
//! renamed trigger is a new trigger). Every value is checked against the
//! limits of the AWS API references (Lambda `CreateEventSourceMapping`,
//! EventBridge Scheduler `CreateSchedule`, S3
//! `PutBucketNotificationConfiguration`, API Gateway v2) before anything
//! runs; an error names the file, the key, the value and what is allowed.
//!
//! This module knows no AWS type and no deploy logic: deploy and the local
//! trigger emulation both read these structs.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::{Map, Value};

use super::layers::type_name;
use super::validate::InvalidValue;
use super::{Cors, Source};

/// A configured trigger of one function.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trigger {
    /// Stable identifier, unique within the function: 1-40 of `a-z A-Z 0-9 - _`.
    pub name: String,
    #[serde(flatten)]
    pub kind: TriggerKind,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum TriggerKind {
    Sqs(SqsTrigger),
    Kinesis(StreamTrigger),
    #[serde(rename = "dynamodb")]
    DynamoDb(StreamTrigger),
    Schedule(ScheduleTrigger),
    S3(S3Trigger),
    HttpApi(HttpApiTrigger),
}

impl TriggerKind {
    /// The `type` value.
    pub fn type_name(&self) -> &'static str {
        match self {
            TriggerKind::Sqs(_) => "sqs",
            TriggerKind::Kinesis(_) => "kinesis",
            TriggerKind::DynamoDb(_) => "dynamodb",
            TriggerKind::Schedule(_) => "schedule",
            TriggerKind::S3(_) => "s3",
            TriggerKind::HttpApi(_) => "http-api",
        }
    }
}

/// An SQS queue polled by an event source mapping.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct SqsTrigger {
    /// Queue name or ARN.
    pub queue: String,
    /// 1-10,000 (1-10 for a FIFO queue); AWS default 10.
    pub batch_size: Option<u32>,
    /// Seconds, 0-300; at least 1 when `batch_size` > 10; none for FIFO.
    pub maximum_batching_window: Option<u32>,
    /// 2-1,000 concurrent invocations.
    pub maximum_concurrency: Option<u32>,
    /// `ReportBatchItemFailures` (default true: the templates answer with
    /// partial batch failures).
    pub report_batch_item_failures: bool,
    /// Event filter patterns (JSON objects), at most 5.
    pub filters: Vec<String>,
    pub enabled: bool,
}

impl SqsTrigger {
    pub fn is_fifo(&self) -> bool {
        self.queue.ends_with(".fifo")
    }

    /// The queue name (the last part of an ARN).
    pub fn queue_name(&self) -> &str {
        self.queue.rsplit(':').next().unwrap_or(&self.queue)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StartingPosition {
    TrimHorizon,
    Latest,
    AtTimestamp,
}

impl StartingPosition {
    pub fn as_str(self) -> &'static str {
        match self {
            StartingPosition::TrimHorizon => "TRIM_HORIZON",
            StartingPosition::Latest => "LATEST",
            StartingPosition::AtTimestamp => "AT_TIMESTAMP",
        }
    }
}

/// A Kinesis data stream or DynamoDB stream read by an event source mapping.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct StreamTrigger {
    /// The stream ARN.
    pub stream: String,
    /// Default `LATEST`.
    pub starting_position: StartingPosition,
    /// With `AT_TIMESTAMP` only: `yyyy-mm-ddThh:mm:ssZ`.
    pub starting_position_timestamp: Option<String>,
    /// 1-10,000; AWS default 100.
    pub batch_size: Option<u32>,
    /// Seconds, 0-300.
    pub maximum_batching_window: Option<u32>,
    /// 1-10 concurrent batches per shard.
    pub parallelization_factor: Option<u32>,
    pub bisect_batch_on_function_error: Option<bool>,
    /// -1 (forever) to 10,000.
    pub maximum_retry_attempts: Option<i32>,
    /// Seconds: -1 (forever) or 60-604,800.
    pub maximum_record_age: Option<i32>,
    /// Seconds, 0-900.
    pub tumbling_window: Option<u32>,
    /// SQS queue or SNS topic ARN for batches that failed for good.
    pub on_failure: Option<String>,
    pub report_batch_item_failures: bool,
    pub filters: Vec<String>,
    pub enabled: bool,
    /// Kinesis only, `cargo fn watch` only: shards of the local stream
    /// (1-64, default 1). Deploy ignores it: the real stream exists already.
    pub local_shards: Option<u32>,
}

/// An EventBridge Scheduler schedule invoking the function.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ScheduleTrigger {
    /// `rate(5 minutes)`, `cron(0 12 * * ? *)` or `at(2030-01-01T00:00:00)`.
    pub expression: String,
    /// IANA time zone of the expression (Scheduler default: UTC).
    pub timezone: Option<String>,
    /// Minutes, 1-1,440 (`FLEXIBLE`); none means `OFF`.
    pub flexible_window: Option<u32>,
    /// The event the function receives (JSON text).
    pub input: Option<String>,
    /// Seconds, 60-86,400.
    pub maximum_event_age: Option<u32>,
    /// 0-185.
    pub maximum_retry_attempts: Option<u32>,
    pub enabled: bool,
}

/// S3 bucket notifications invoking the function.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct S3Trigger {
    pub bucket: String,
    /// Default `["s3:ObjectCreated:*"]`.
    pub events: Vec<String>,
    pub prefix: Option<String>,
    pub suffix: Option<String>,
}

/// An API Gateway HTTP API whose routes invoke the function.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct HttpApiTrigger {
    /// `GET /items/{id}`, `ANY /{proxy+}` or `$default` (the default).
    pub routes: Vec<String>,
    /// `2.0` (default) or `1.0`.
    pub payload_format: String,
    pub cors: Option<Cors>,
    /// Stage name (default `$default`, served at the API root).
    pub stage: String,
}

type Result<T> = std::result::Result<T, Box<InvalidValue>>;

const TYPES: &[&str] = &["sqs", "kinesis", "dynamodb", "schedule", "s3", "http-api"];

/// Filter patterns per mapping (the default quota).
pub const MAX_FILTERS: usize = 5;

/// One trigger table being read: its key prefix for messages and its source.
struct Table<'a> {
    key: String,
    map: &'a Map<String, Value>,
    src: &'a Source,
}

impl Table<'_> {
    fn bad(&self, field: &str, v: &Value, allowed: impl Into<String>) -> Box<InvalidValue> {
        Box::new(InvalidValue {
            key: format!("{}.{field}", self.key),
            value: v.to_string(),
            origin: self.src.clone(),
            allowed: allowed.into(),
        })
    }

    fn get(&self, field: &str) -> Option<&Value> {
        self.map
            .get(field)
            .or_else(|| self.map.get(&field.replace('-', "_")))
    }

    /// Refuses keys this trigger type does not have.
    fn only(&self, kind: &str, keys: &[&str]) -> Result<()> {
        for (k, v) in self.map {
            let k2 = k.replace('_', "-");
            if k2 != "type" && k2 != "name" && !keys.contains(&k2.as_str()) {
                return Err(self.bad(
                    k,
                    v,
                    format!(
                        "unknown key for a `{kind}` trigger; allowed: type, name, {}",
                        keys.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }

    fn string(&self, field: &str) -> Result<Option<String>> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(self.bad(
                field,
                v,
                format!("expected a string, found {}", type_name(v)),
            )),
        }
    }

    fn required(&self, field: &str, what: &str) -> Result<String> {
        self.string(field)?.ok_or_else(|| {
            Box::new(InvalidValue {
                key: format!("{}.{field}", self.key),
                value: "(missing)".into(),
                origin: self.src.clone(),
                allowed: format!("required: {what}"),
            })
        })
    }

    fn int(&self, field: &str, min: i64, max: i64, unit: &str) -> Result<Option<i64>> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => match v.as_i64() {
                Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
                _ => Err(self.bad(field, v, format!("a whole number {min}-{max}{unit}"))),
            },
        }
    }

    fn boolean(&self, field: &str, default: bool) -> Result<bool> {
        match self.get(field) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => Err(self.bad(field, v, "true or false")),
        }
    }

    fn opt_bool(&self, field: &str) -> Result<Option<bool>> {
        match self.get(field) {
            None => Ok(None),
            Some(_) => self.boolean(field, false).map(Some),
        }
    }

    fn strings(&self, field: &str) -> Result<Option<Vec<String>>> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| match i {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(self.bad(field, other, "a list of strings")),
                })
                .collect::<Result<Vec<_>>>()
                .map(Some),
            Some(v) => Err(self.bad(
                field,
                v,
                format!("a list of strings, found {}", type_name(v)),
            )),
        }
    }

    /// `filters`: JSON filter patterns, written as strings or tables.
    fn filters(&self) -> Result<Vec<String>> {
        let Some(v) = self.get("filters") else {
            return Ok(Vec::new());
        };
        let Value::Array(items) = v else {
            return Err(self.bad(
                "filters",
                v,
                "a list of filter patterns (JSON strings or tables)",
            ));
        };
        if items.len() > MAX_FILTERS {
            return Err(self.bad(
                "filters",
                v,
                format!("at most {MAX_FILTERS} filter patterns"),
            ));
        }
        items
            .iter()
            .map(|item| {
                let parsed = match item {
                    Value::String(s) => serde_json::from_str::<Value>(s).ok(),
                    Value::Object(_) => Some(item.clone()),
                    _ => None,
                };
                match parsed {
                    Some(p @ Value::Object(_)) => {
                        let text = p.to_string();
                        if text.len() > 4096 {
                            return Err(self.bad(
                                "filters",
                                item,
                                "a filter pattern of at most 4096 characters",
                            ));
                        }
                        Ok(text)
                    }
                    _ => Err(self.bad(
                        "filters",
                        item,
                        "a filter pattern: a JSON object such as {\"body\":{\"kind\":[\"order\"]}}",
                    )),
                }
            })
            .collect()
    }
}

/// Trigger names: 1-40 of `a-z A-Z 0-9 - _` (they become part of AWS names).
pub fn check_trigger_name(name: &str) -> std::result::Result<(), String> {
    if super::validate::is_name(name, 40) {
        Ok(())
    } else {
        Err("a trigger name: 1-40 characters from a-z, A-Z, 0-9, `-` and `_`".into())
    }
}

/// Reads and validates the `triggers` list of one function.
pub(super) fn build(value: &Value, src: &Source) -> Result<Vec<Trigger>> {
    if let Source::Manifest { key, .. } = src
        && key.starts_with("workspace.")
    {
        return Err(Box::new(InvalidValue {
            key: "triggers".into(),
            value: value.to_string(),
            origin: src.clone(),
            allowed: "triggers belong to one function: set them in [package.metadata.fn] or \
                      [package.metadata.fn.functions.<bin>], not for the whole workspace"
                .into(),
        }));
    }
    let Value::Array(items) = value else {
        return Err(Box::new(InvalidValue {
            key: "triggers".into(),
            value: value.to_string(),
            origin: src.clone(),
            allowed: format!(
                "a list of trigger tables ([[package.metadata.fn.triggers]]), found {}",
                type_name(value)
            ),
        }));
    };
    let mut out = Vec::new();
    let mut names = BTreeSet::new();
    for (i, item) in items.iter().enumerate() {
        let Value::Object(map) = item else {
            return Err(Box::new(InvalidValue {
                key: format!("triggers[{i}]"),
                value: item.to_string(),
                origin: src.clone(),
                allowed: "a table with `type` and `name`".into(),
            }));
        };
        let t = Table {
            key: format!("triggers[{i}]"),
            map,
            src,
        };
        let name = t.required("name", "a stable trigger name")?;
        check_trigger_name(&name).map_err(|a| t.bad("name", &Value::String(name.clone()), a))?;
        if !names.insert(name.clone()) {
            return Err(t.bad(
                "name",
                &Value::String(name),
                "a name used by no other trigger of this function",
            ));
        }
        let t = Table {
            key: format!("triggers.{name}"),
            map,
            src,
        };
        let ty = t.required("type", &format!("one of {}", TYPES.join(", ")))?;
        let kind = match ty.as_str() {
            "sqs" => TriggerKind::Sqs(sqs(&t)?),
            "kinesis" => TriggerKind::Kinesis(stream(&t, true)?),
            "dynamodb" => TriggerKind::DynamoDb(stream(&t, false)?),
            "schedule" => TriggerKind::Schedule(schedule(&t)?),
            "s3" => TriggerKind::S3(s3(&t)?),
            "http-api" => TriggerKind::HttpApi(http_api(&t)?),
            _ => {
                return Err(t.bad(
                    "type",
                    &Value::String(ty),
                    format!("one of {}", TYPES.join(", ")),
                ));
            }
        };
        out.push(Trigger { name, kind });
    }
    Ok(out)
}

fn is_partition(p: &str) -> bool {
    p.starts_with("aws") && p.chars().all(|c| c.is_ascii_alphabetic() || c == '-')
}

fn is_account(a: &str) -> bool {
    a.len() == 12 && a.chars().all(|c| c.is_ascii_digit())
}

fn is_region(r: &str) -> bool {
    !r.is_empty()
        && r.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// `arn:<partition>:<service>:<region>:<account>:<rest>`: the rest, if the
/// ARN has that service.
fn arn_rest<'a>(arn: &'a str, service: &str) -> Option<&'a str> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    (parts.len() == 6
        && parts[0] == "arn"
        && is_partition(parts[1])
        && parts[2] == service
        && is_region(parts[3])
        && is_account(parts[4])
        && !parts[5].is_empty())
    .then_some(parts[5])
}

/// SQS queue names: 1-80 of `a-z A-Z 0-9 - _`, FIFO queues end in `.fifo`.
pub fn check_queue(q: &str) -> std::result::Result<(), String> {
    let name = if q.starts_with("arn:") {
        match arn_rest(q, "sqs") {
            Some(n) => n,
            None => {
                return Err(
                    "a queue ARN: arn:aws:sqs:<region>:<12-digit account>:<queue name>".into(),
                );
            }
        }
    } else {
        q
    };
    let base = name.strip_suffix(".fifo").unwrap_or(name);
    let ok = name.len() <= 80 && super::validate::is_name(base, 80);
    if ok {
        Ok(())
    } else {
        Err(
            "a queue name (1-80 of a-z A-Z 0-9 - _, `.fifo` at the end for FIFO) or a queue ARN"
                .into(),
        )
    }
}

fn sqs(t: &Table) -> Result<SqsTrigger> {
    t.only(
        "sqs",
        &[
            "queue",
            "batch-size",
            "maximum-batching-window",
            "maximum-concurrency",
            "report-batch-item-failures",
            "filters",
            "enabled",
        ],
    )?;
    let queue = t.required("queue", "the queue name or ARN")?;
    check_queue(&queue).map_err(|a| t.bad("queue", &Value::String(queue.clone()), a))?;
    let fifo = queue.ends_with(".fifo");
    let batch_size = if fifo {
        t.int("batch-size", 1, 10, " (a FIFO queue)")?
    } else {
        t.int("batch-size", 1, 10_000, "")?
    };
    let window = t.int("maximum-batching-window", 0, 300, " seconds")?;
    if fifo && let Some(v) = t.get("maximum-batching-window") {
        return Err(t.bad(
            "maximum-batching-window",
            v,
            "nothing: Lambda has no batching window for FIFO queues",
        ));
    }
    if batch_size.is_some_and(|b| b > 10) && window.unwrap_or(0) < 1 {
        return Err(t.bad(
            "maximum-batching-window",
            t.get("maximum-batching-window").unwrap_or(&Value::Null),
            format!(
                "1-300 seconds: a batch-size above 10 ({}) needs a batching window of at least 1 second",
                batch_size.unwrap_or_default()
            ),
        ));
    }
    Ok(SqsTrigger {
        queue,
        batch_size: batch_size.map(|n| n as u32),
        maximum_batching_window: window.map(|n| n as u32),
        maximum_concurrency: t
            .int("maximum-concurrency", 2, 1000, " concurrent invocations")?
            .map(|n| n as u32),
        report_batch_item_failures: t.boolean("report-batch-item-failures", true)?,
        filters: t.filters()?,
        enabled: t.boolean("enabled", true)?,
    })
}

fn stream(t: &Table, kinesis: bool) -> Result<StreamTrigger> {
    let kind = if kinesis { "kinesis" } else { "dynamodb" };
    t.only(
        kind,
        &[
            "stream",
            "starting-position",
            "starting-position-timestamp",
            "batch-size",
            "maximum-batching-window",
            "parallelization-factor",
            "bisect-batch-on-function-error",
            "maximum-retry-attempts",
            "maximum-record-age",
            "tumbling-window",
            "on-failure",
            "report-batch-item-failures",
            "filters",
            "enabled",
            "local-shards",
        ],
    )?;
    let stream = t.required("stream", "the stream ARN")?;
    if !kinesis && let Some(v) = t.get("local-shards") {
        return Err(t.bad(
            "local-shards",
            v,
            "nothing: a local DynamoDB stream has one shard (local-shards is for kinesis triggers)",
        ));
    }
    let arn_ok = if kinesis {
        arn_rest(&stream, "kinesis")
            .is_some_and(|r| r.strip_prefix("stream/").is_some_and(|n| !n.is_empty()))
    } else {
        arn_rest(&stream, "dynamodb").is_some_and(|r| {
            r.strip_prefix("table/")
                .and_then(|r| r.split_once("/stream/"))
                .is_some_and(|(table, label)| !table.is_empty() && !label.is_empty())
        })
    };
    if !arn_ok {
        let shape = if kinesis {
            "a Kinesis stream ARN: arn:aws:kinesis:<region>:<account>:stream/<name>"
        } else {
            "a DynamoDB stream ARN: arn:aws:dynamodb:<region>:<account>:table/<table>/stream/<label>"
        };
        return Err(t.bad("stream", &Value::String(stream), shape));
    }
    let allowed_positions: &[(&str, StartingPosition)] = if kinesis {
        &[
            ("TRIM_HORIZON", StartingPosition::TrimHorizon),
            ("LATEST", StartingPosition::Latest),
            ("AT_TIMESTAMP", StartingPosition::AtTimestamp),
        ]
    } else {
        &[
            ("TRIM_HORIZON", StartingPosition::TrimHorizon),
            ("LATEST", StartingPosition::Latest),
        ]
    };
    let starting_position = match t.string("starting-position")? {
        None => StartingPosition::Latest,
        Some(p) => allowed_positions
            .iter()
            .find(|(n, _)| *n == p)
            .map(|(_, v)| *v)
            .ok_or_else(|| {
                let names: Vec<&str> = allowed_positions.iter().map(|(n, _)| *n).collect();
                t.bad(
                    "starting-position",
                    &Value::String(p.clone()),
                    format!(
                        "one of {}{}",
                        names.join(", "),
                        if kinesis {
                            ""
                        } else {
                            " (AT_TIMESTAMP is for Kinesis only)"
                        }
                    ),
                )
            })?,
    };
    let timestamp = t.string("starting-position-timestamp")?;
    match (&timestamp, starting_position) {
        (None, StartingPosition::AtTimestamp) => {
            return Err(t.bad(
                "starting-position-timestamp",
                &Value::Null,
                "required with AT_TIMESTAMP: yyyy-mm-ddThh:mm:ssZ",
            ));
        }
        (Some(ts), StartingPosition::AtTimestamp) => {
            let plain = ts.strip_suffix('Z').unwrap_or("");
            if check_datetime(plain).is_err() {
                return Err(t.bad(
                    "starting-position-timestamp",
                    &Value::String(ts.clone()),
                    "a UTC time yyyy-mm-ddThh:mm:ssZ",
                ));
            }
        }
        (Some(ts), _) => {
            return Err(t.bad(
                "starting-position-timestamp",
                &Value::String(ts.clone()),
                "only with starting-position = \"AT_TIMESTAMP\"",
            ));
        }
        (None, _) => {}
    }
    let maximum_record_age = match t.get("maximum-record-age") {
        None => None,
        Some(v) => match v.as_i64() {
            Some(n) if n == -1 || (60..=604_800).contains(&n) => Some(n as i32),
            _ => {
                return Err(t.bad(
                    "maximum-record-age",
                    v,
                    "-1 (no limit) or 60-604800 seconds",
                ));
            }
        },
    };
    let on_failure = match t.string("on-failure")? {
        None => None,
        Some(arn) => {
            if arn_rest(&arn, "sqs").is_none() && arn_rest(&arn, "sns").is_none() {
                return Err(t.bad(
                    "on-failure",
                    &Value::String(arn),
                    "an SQS queue ARN (arn:aws:sqs:...) or SNS topic ARN (arn:aws:sns:...)",
                ));
            }
            Some(arn)
        }
    };
    Ok(StreamTrigger {
        stream,
        starting_position,
        starting_position_timestamp: timestamp,
        batch_size: t.int("batch-size", 1, 10_000, "")?.map(|n| n as u32),
        maximum_batching_window: t
            .int("maximum-batching-window", 0, 300, " seconds")?
            .map(|n| n as u32),
        parallelization_factor: t
            .int("parallelization-factor", 1, 10, " batches per shard")?
            .map(|n| n as u32),
        bisect_batch_on_function_error: t.opt_bool("bisect-batch-on-function-error")?,
        maximum_retry_attempts: t
            .int("maximum-retry-attempts", -1, 10_000, " (-1: no limit)")?
            .map(|n| n as i32),
        maximum_record_age,
        tumbling_window: t
            .int("tumbling-window", 0, 900, " seconds")?
            .map(|n| n as u32),
        on_failure,
        report_batch_item_failures: t.boolean("report-batch-item-failures", true)?,
        filters: t.filters()?,
        enabled: t.boolean("enabled", true)?,
        local_shards: t
            .int("local-shards", 1, 64, " shards of the local stream")?
            .map(|n| n as u32),
    })
}

fn schedule(t: &Table) -> Result<ScheduleTrigger> {
    t.only(
        "schedule",
        &[
            "expression",
            "timezone",
            "flexible-window",
            "input",
            "maximum-event-age",
            "maximum-retry-attempts",
            "enabled",
        ],
    )?;
    let expression = t.required(
        "expression",
        "rate(N unit), cron(min hour day-of-month month day-of-week year) or at(yyyy-mm-ddThh:mm:ss)",
    )?;
    check_schedule_expression(&expression)
        .map_err(|a| t.bad("expression", &Value::String(expression.clone()), a))?;
    let timezone = t.string("timezone")?;
    if let Some(tz) = &timezone {
        // The tz database built into cargo-fn (local schedules use it too).
        let ok = !tz.is_empty()
            && tz.len() <= 50
            && tz
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/_+-".contains(c))
            && jiff::tz::TimeZone::get(tz).is_ok();
        if !ok {
            return Err(t.bad(
                "timezone",
                &Value::String(tz.clone()),
                "an IANA time zone such as Europe/Paris or UTC",
            ));
        }
    }
    let input = match t.get("input") {
        None => None,
        Some(Value::String(s)) => {
            if serde_json::from_str::<Value>(s).is_err() {
                return Err(t.bad("input", &Value::String(s.clone()), "valid JSON text"));
            }
            Some(s.clone())
        }
        Some(v @ Value::Object(_)) => Some(v.to_string()),
        Some(v) => return Err(t.bad("input", v, "JSON text or a table")),
    };
    if let Some(i) = &input
        && i.len() > 8192
    {
        return Err(t.bad(
            "input",
            &Value::String(format!("({} characters)", i.len())),
            "at most 8192 characters of JSON",
        ));
    }
    Ok(ScheduleTrigger {
        expression,
        timezone,
        flexible_window: t
            .int("flexible-window", 1, 1440, " minutes")?
            .map(|n| n as u32),
        input,
        maximum_event_age: t
            .int("maximum-event-age", 60, 86_400, " seconds")?
            .map(|n| n as u32),
        maximum_retry_attempts: t
            .int("maximum-retry-attempts", 0, 185, "")?
            .map(|n| n as u32),
        enabled: t.boolean("enabled", true)?,
    })
}

/// A Scheduler expression: `rate(...)`, `cron(...)` or `at(...)`.
pub fn check_schedule_expression(e: &str) -> std::result::Result<(), String> {
    if let Some(inner) = e.strip_prefix("rate(").and_then(|r| r.strip_suffix(')')) {
        return check_rate(inner);
    }
    if let Some(inner) = e.strip_prefix("cron(").and_then(|r| r.strip_suffix(')')) {
        return check_cron(inner);
    }
    if let Some(inner) = e.strip_prefix("at(").and_then(|r| r.strip_suffix(')')) {
        return check_datetime(inner).map_err(|m| format!("at(yyyy-mm-ddThh:mm:ss): {m}"));
    }
    Err("rate(N unit), cron(min hour day-of-month month day-of-week year) or at(yyyy-mm-ddThh:mm:ss)".into())
}

/// `N unit`: a positive whole number, then `minute`/`hour`/`day` when N is
/// 1 and `minutes`/`hours`/`days` otherwise.
fn check_rate(inner: &str) -> std::result::Result<(), String> {
    let usage = "rate(N unit): N a positive whole number, unit minute|hour|day for 1 and minutes|hours|days above";
    let Some((n, unit)) = inner.split_once(' ') else {
        return Err(usage.into());
    };
    let Ok(n) = n.parse::<u64>() else {
        return Err(usage.into());
    };
    if n == 0 {
        return Err(usage.into());
    }
    let singular = ["minute", "hour", "day"];
    let plural = ["minutes", "hours", "days"];
    if n == 1 && singular.contains(&unit) || n > 1 && plural.contains(&unit) {
        return Ok(());
    }
    if n == 1 && plural.contains(&unit) {
        return Err(format!(
            "rate(1 {}): the unit is singular for 1",
            unit.trim_end_matches('s')
        ));
    }
    if n > 1 && singular.contains(&unit) {
        return Err(format!("rate({n} {unit}s): the unit is plural above 1"));
    }
    Err(usage.into())
}

/// `yyyy-mm-ddThh:mm:ss` with real calendar dates.
fn check_datetime(s: &str) -> std::result::Result<(), String> {
    let bad = || Err("a date and time yyyy-mm-ddThh:mm:ss".to_string());
    let b = s.as_bytes();
    if b.len() != 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return bad();
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = &s[r];
        part.chars()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())
            .flatten()
    };
    let (Some(y), Some(mo), Some(d), Some(h), Some(mi), Some(sec)) = (
        num(0..4),
        num(5..7),
        num(8..10),
        num(11..13),
        num(14..16),
        num(17..19),
    ) else {
        return bad();
    };
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let days = match mo {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return bad(),
    };
    if d == 0 || d > days || h > 23 || mi > 59 || sec > 59 {
        return bad();
    }
    Ok(())
}

const MONTHS: &[&str] = &[
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: &[&str] = &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// The six fields of a Scheduler cron expression.
fn check_cron(inner: &str) -> std::result::Result<(), String> {
    let fields: Vec<&str> = inner.split_whitespace().collect();
    if fields.len() != 6 {
        return Err(format!(
            "cron() takes 6 fields (minutes hours day-of-month month day-of-week year), found {}",
            fields.len()
        ));
    }
    let names = [
        "minutes",
        "hours",
        "day-of-month",
        "month",
        "day-of-week",
        "year",
    ];
    let specs: [(u32, u32, &[&str]); 6] = [
        (0, 59, &[]),
        (0, 23, &[]),
        (1, 31, &[]),
        (1, 12, MONTHS),
        (1, 7, WEEKDAYS),
        (1970, 2199, &[]),
    ];
    for (i, f) in fields.iter().enumerate() {
        let (min, max, words) = specs[i];
        cron_field(f, i, min, max, words)
            .map_err(|m| format!("cron field {} ({}) `{f}`: {m}", i + 1, names[i]))?;
    }
    let (dom, dow) = (fields[2], fields[4]);
    if (dom == "?") == (dow == "?") {
        return Err(
            "cron(): exactly one of day-of-month (field 3) and day-of-week (field 5) must be `?`"
                .into(),
        );
    }
    Ok(())
}

fn cron_field(
    f: &str,
    index: usize,
    min: u32,
    max: u32,
    words: &[&str],
) -> std::result::Result<(), String> {
    let range = format!(
        "values {min}-{max}{}",
        if words.is_empty() {
            String::new()
        } else {
            format!(" or {}-{}", words[0], words[words.len() - 1])
        }
    );
    let value = |s: &str| -> std::result::Result<u32, String> {
        if let Some(i) = words.iter().position(|w| w.eq_ignore_ascii_case(s)) {
            return Ok(min + i as u32);
        }
        match s.parse::<u32>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(format!("`{s}` is out of range: {range}")),
        }
    };
    if f == "?" {
        return if index == 2 || index == 4 {
            Ok(())
        } else {
            Err("`?` only in day-of-month or day-of-week".into())
        };
    }
    for item in f.split(',') {
        if item.is_empty() {
            return Err("an empty list item".into());
        }
        // Day-of-month: L, LW, 15W. Day-of-week: L, 5L, 3#2.
        if index == 2 {
            if item == "L" || item == "LW" {
                continue;
            }
            if let Some(d) = item.strip_suffix('W') {
                value(d)?;
                continue;
            }
        }
        if index == 4 {
            if item == "L" {
                continue;
            }
            if let Some(d) = item.strip_suffix('L') {
                value(d)?;
                continue;
            }
            if let Some((d, n)) = item.split_once('#') {
                value(d)?;
                match n.parse::<u32>() {
                    Ok(1..=5) => continue,
                    _ => return Err(format!("`#{n}`: the nth weekday of the month is 1-5")),
                }
            }
        }
        let (base, step) = match item.split_once('/') {
            Some((b, s)) => (b, Some(s)),
            None => (item, None),
        };
        if let Some(s) = step {
            match s.parse::<u32>() {
                Ok(n) if n >= 1 && n <= max => {}
                _ => return Err(format!("`/{s}`: the increment is 1-{max}")),
            }
        }
        if base == "*" {
            continue;
        }
        match base.split_once('-') {
            Some((a, b)) => {
                value(a)?;
                value(b)?;
            }
            None => {
                value(base)?;
            }
        }
    }
    Ok(())
}

/// Event types S3 sends to a Lambda function.
pub const S3_EVENTS: &[&str] = &[
    "s3:ObjectCreated:*",
    "s3:ObjectCreated:Put",
    "s3:ObjectCreated:Post",
    "s3:ObjectCreated:Copy",
    "s3:ObjectCreated:CompleteMultipartUpload",
    "s3:ObjectRemoved:*",
    "s3:ObjectRemoved:Delete",
    "s3:ObjectRemoved:DeleteMarkerCreated",
    "s3:ObjectRestore:*",
    "s3:ObjectRestore:Post",
    "s3:ObjectRestore:Completed",
    "s3:ObjectRestore:Delete",
    "s3:ReducedRedundancyLostObject",
    "s3:Replication:*",
    "s3:Replication:OperationFailedReplication",
    "s3:Replication:OperationMissedThreshold",
    "s3:Replication:OperationReplicatedAfterThreshold",
    "s3:Replication:OperationNotTracked",
    "s3:LifecycleExpiration:*",
    "s3:LifecycleExpiration:Delete",
    "s3:LifecycleExpiration:DeleteMarkerCreated",
    "s3:LifecycleTransition",
    "s3:IntelligentTiering",
    "s3:ObjectTagging:*",
    "s3:ObjectTagging:Put",
    "s3:ObjectTagging:Delete",
    "s3:ObjectAcl:Put",
];

/// Bucket names: 3-63 of `a-z 0-9 . -`, starting and ending with a letter or digit.
pub fn check_bucket(b: &str) -> std::result::Result<(), String> {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let ok = (3..=63).contains(&b.len())
        && b.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
        && edge(b.chars().next())
        && edge(b.chars().last())
        && !b.contains("..");
    if ok {
        Ok(())
    } else {
        Err("a bucket name: 3-63 of a-z 0-9 . -, starting and ending with a letter or digit".into())
    }
}

fn s3(t: &Table) -> Result<S3Trigger> {
    t.only("s3", &["bucket", "events", "prefix", "suffix"])?;
    let raw = t.required("bucket", "the bucket name")?;
    let bucket = raw
        .strip_prefix("arn:aws:s3:::")
        .unwrap_or(&raw)
        .to_string();
    check_bucket(&bucket).map_err(|a| t.bad("bucket", &Value::String(raw.clone()), a))?;
    let events = t
        .strings("events")?
        .unwrap_or_else(|| vec!["s3:ObjectCreated:*".to_string()]);
    if events.is_empty() {
        return Err(t.bad(
            "events",
            &Value::Array(vec![]),
            "at least one event type, e.g. s3:ObjectCreated:*",
        ));
    }
    for e in &events {
        if !S3_EVENTS.contains(&e.as_str()) {
            return Err(t.bad(
                "events",
                &Value::String(e.clone()),
                format!("S3 event types: {}", S3_EVENTS.join(", ")),
            ));
        }
    }
    let affix = |k: &str| -> Result<Option<String>> {
        let v = t.string(k)?;
        if let Some(s) = &v
            && (s.is_empty() || s.len() > 1024)
        {
            return Err(t.bad(k, &Value::String(s.clone()), "1-1024 characters"));
        }
        Ok(v)
    };
    Ok(S3Trigger {
        bucket,
        events,
        prefix: affix("prefix")?,
        suffix: affix("suffix")?,
    })
}

const HTTP_METHODS: &[&str] = &[
    "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "ANY",
];

/// An HTTP API route key: `$default` or `METHOD /path` where path segments
/// are literal or `{param}`, and a last `{name+}` is greedy.
pub fn check_route(r: &str) -> std::result::Result<(), String> {
    if r == "$default" {
        return Ok(());
    }
    let usage = format!(
        "a route: `$default` or `METHOD /path` (METHOD one of {}; segments literal, {{param}} or a last {{proxy+}})",
        HTTP_METHODS.join(", ")
    );
    let Some((method, path)) = r.split_once(' ') else {
        return Err(usage);
    };
    if !HTTP_METHODS.contains(&method) || !path.starts_with('/') {
        return Err(usage);
    }
    if path == "/" {
        return Ok(());
    }
    let segments: Vec<&str> = path[1..].split('/').collect();
    for (i, s) in segments.iter().enumerate() {
        let ok = if let Some(p) = s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            let (name, greedy) = match p.strip_suffix('+') {
                Some(n) => (n, true),
                None => (p, false),
            };
            !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && (!greedy || i == segments.len() - 1)
        } else {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-._~".contains(c))
        };
        if !ok {
            return Err(usage);
        }
    }
    Ok(())
}

fn http_api(t: &Table) -> Result<HttpApiTrigger> {
    t.only("http-api", &["routes", "payload-format", "cors", "stage"])?;
    let routes = t
        .strings("routes")?
        .unwrap_or_else(|| vec!["$default".to_string()]);
    if routes.is_empty() || routes.len() > 300 {
        return Err(t.bad(
            "routes",
            t.get("routes").unwrap_or(&Value::Null),
            "1-300 routes",
        ));
    }
    let mut seen = BTreeSet::new();
    for r in &routes {
        check_route(r).map_err(|a| t.bad("routes", &Value::String(r.clone()), a))?;
        if !seen.insert(r) {
            return Err(t.bad("routes", &Value::String(r.clone()), "each route once"));
        }
    }
    let payload_format = t.string("payload-format")?.unwrap_or_else(|| "2.0".into());
    if payload_format != "2.0" && payload_format != "1.0" {
        return Err(t.bad(
            "payload-format",
            &Value::String(payload_format),
            "\"2.0\" or \"1.0\"",
        ));
    }
    let stage = t.string("stage")?.unwrap_or_else(|| "$default".into());
    let stage_ok = stage == "$default" || super::validate::is_name(&stage, 128);
    if !stage_ok {
        return Err(t.bad(
            "stage",
            &Value::String(stage),
            "`$default` or 1-128 of a-z A-Z 0-9 - _",
        ));
    }
    let cors = match t.get("cors") {
        None => None,
        Some(v) => Some(http_cors(t, v)?),
    };
    Ok(HttpApiTrigger {
        routes,
        payload_format,
        cors,
        stage,
    })
}

fn http_cors(t: &Table, v: &Value) -> Result<Cors> {
    let keys = [
        "allow-origins",
        "allow-methods",
        "allow-headers",
        "expose-headers",
        "allow-credentials",
        "max-age",
    ];
    let Value::Object(map) = v else {
        return Err(t.bad("cors", v, format!("a table with keys {}", keys.join(", "))));
    };
    let c = Table {
        key: format!("{}.cors", t.key),
        map,
        src: t.src,
    };
    for (k, v) in map {
        if !keys.contains(&k.replace('_', "-").as_str()) {
            return Err(c.bad(k, v, format!("unknown key; allowed: {}", keys.join(", "))));
        }
    }
    let allow_methods = c.strings("allow-methods")?.unwrap_or_default();
    for m in &allow_methods {
        if !HTTP_METHODS.contains(&m.as_str()) && m != "*" {
            return Err(c.bad(
                "allow-methods",
                &Value::String(m.clone()),
                format!("one of {}, *", HTTP_METHODS.join(", ")),
            ));
        }
    }
    let allow_credentials = c.boolean("allow-credentials", false)?;
    let allow_origins = c.strings("allow-origins")?.unwrap_or_default();
    if allow_credentials && allow_origins.iter().any(|o| o == "*") {
        return Err(c.bad(
            "allow-origins",
            &Value::String("*".into()),
            "explicit origins: API Gateway refuses `*` together with allow-credentials = true",
        ));
    }
    Ok(Cors {
        allow_origins,
        allow_methods,
        allow_headers: c.strings("allow-headers")?.unwrap_or_default(),
        expose_headers: c.strings("expose-headers")?.unwrap_or_default(),
        allow_credentials,
        max_age: c.int("max-age", 0, 86_400, " seconds")?.map(|n| n as u32),
    })
}

/// A one-line summary for `cargo fn config`.
pub fn summary(t: &Trigger) -> String {
    let on_off = |e: bool| if e { "" } else { ", disabled" };
    match &t.kind {
        TriggerKind::Sqs(s) => format!(
            "sqs {}{}{}{}",
            s.queue,
            s.batch_size
                .map(|b| format!(", batch {b}"))
                .unwrap_or_default(),
            if s.report_batch_item_failures {
                ", partial failures"
            } else {
                ""
            },
            on_off(s.enabled)
        ),
        TriggerKind::Kinesis(s) | TriggerKind::DynamoDb(s) => format!(
            "{} {} from {}{}{}",
            t.kind.type_name(),
            s.stream,
            s.starting_position.as_str(),
            s.batch_size
                .map(|b| format!(", batch {b}"))
                .unwrap_or_default(),
            on_off(s.enabled)
        ),
        TriggerKind::Schedule(s) => format!(
            "schedule {}{}{}",
            s.expression,
            s.timezone
                .as_ref()
                .map(|z| format!(" ({z})"))
                .unwrap_or_default(),
            on_off(s.enabled)
        ),
        TriggerKind::S3(s) => format!(
            "s3 {} {}{}{}",
            s.bucket,
            s.events.join(","),
            s.prefix
                .as_ref()
                .map(|p| format!(", prefix {p}"))
                .unwrap_or_default(),
            s.suffix
                .as_ref()
                .map(|p| format!(", suffix {p}"))
                .unwrap_or_default()
        ),
        TriggerKind::HttpApi(h) => format!(
            "http-api {} (payload {}, stage {}{})",
            h.routes.join(", "),
            h.payload_format,
            h.stage,
            if h.cors.is_some() { ", CORS" } else { "" }
        ),
    }
}

#[cfg(test)]
mod tests;
