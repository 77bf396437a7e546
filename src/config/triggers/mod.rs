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
//!
//! Files: this one holds the model, the reading of the list and the
//! `cargo fn config` summary; `read.rs` the keys each type allows and
//! filters; one file per kind holds its rules (`sqs.rs`, `stream.rs`,
//! `schedule.rs`, `s3.rs`, `http_api.rs`); `expression.rs` the schedule
//! expression grammar.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::Value;

use super::value::{InvalidValue, Result, Table, is_name, type_name};
use super::{Cors, Source};

mod expression;
mod http_api;
mod read;
mod s3;
mod schedule;
mod sqs;
mod stream;

pub use expression::check_schedule_expression;
pub use http_api::check_route;
pub use s3::{S3_EVENTS, check_bucket};
pub use sqs::check_queue;

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

const TYPES: &[&str] = &["sqs", "kinesis", "dynamodb", "schedule", "s3", "http-api"];

/// Filter patterns per mapping (the default quota).
pub const MAX_FILTERS: usize = 5;

/// Trigger names: 1-40 of `a-z A-Z 0-9 - _` (they become part of AWS names).
pub fn check_trigger_name(name: &str) -> std::result::Result<(), String> {
    if is_name(name, 40) {
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
            "sqs" => TriggerKind::Sqs(sqs::sqs(&t)?),
            "kinesis" => TriggerKind::Kinesis(stream::stream(&t, true)?),
            "dynamodb" => TriggerKind::DynamoDb(stream::stream(&t, false)?),
            "schedule" => TriggerKind::Schedule(schedule::schedule(&t)?),
            "s3" => TriggerKind::S3(s3::s3(&t)?),
            "http-api" => TriggerKind::HttpApi(http_api::http_api(&t)?),
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
