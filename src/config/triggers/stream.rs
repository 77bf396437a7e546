//! The rules of a `kinesis` or `dynamodb` trigger (Lambda
//! `CreateEventSourceMapping` for a stream).

use serde_json::Value;

use super::expression::check_datetime;
use super::read::{filters, only};
use super::{StartingPosition, StreamTrigger};
use crate::config::value::{Result, Table, arn_rest};

pub(super) fn stream(t: &Table, kinesis: bool) -> Result<StreamTrigger> {
    let kind = if kinesis { "kinesis" } else { "dynamodb" };
    only(
        t,
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
    let stream = stream_arn(t, kinesis)?;
    let (starting_position, timestamp) = starting_position(t, kinesis)?;
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
        filters: filters(t)?,
        enabled: t.boolean("enabled", true)?,
        local_shards: t
            .int("local-shards", 1, 64, " shards of the local stream")?
            .map(|n| n as u32),
    })
}

/// `stream`: a Kinesis stream or DynamoDB stream ARN (and `local-shards`
/// only for Kinesis).
fn stream_arn(t: &Table, kinesis: bool) -> Result<String> {
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
    Ok(stream)
}

/// `starting-position` and its `starting-position-timestamp`.
fn starting_position(t: &Table, kinesis: bool) -> Result<(StartingPosition, Option<String>)> {
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
    Ok((starting_position, timestamp))
}
