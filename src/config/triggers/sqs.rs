//! The rules of an `sqs` trigger (Lambda `CreateEventSourceMapping` for a
//! queue).

use serde_json::Value;

use super::SqsTrigger;
use super::read::{filters, only};
use crate::config::value::{Result, Table, arn_rest, is_name};

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
    let ok = name.len() <= 80 && is_name(base, 80);
    if ok {
        Ok(())
    } else {
        Err(
            "a queue name (1-80 of a-z A-Z 0-9 - _, `.fifo` at the end for FIFO) or a queue ARN"
                .into(),
        )
    }
}

pub(super) fn sqs(t: &Table) -> Result<SqsTrigger> {
    only(
        t,
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
        filters: filters(t)?,
        enabled: t.boolean("enabled", true)?,
    })
}
