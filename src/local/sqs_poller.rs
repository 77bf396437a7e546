//! The SQS event source mapping, run locally with the semantics of
//! Lambda's SQS pollers: batches of up to `batch-size` messages gathered
//! for at most `maximum-batching-window` seconds, up to
//! `maximum-concurrency` batches at once (default: the emulator's
//! concurrency), messages of a successful batch deleted, with
//! `report-batch-item-failures` only the reported ones kept (an empty or
//! unknown `itemIdentifier` fails the whole batch, as on AWS), a function
//! error or timeout returning the whole batch after the visibility
//! timeout, and redrive to the dead-letter queue by the queue's own
//! redrive policy. FIFO order per message group comes from the queue: a
//! group with a message in flight hands out nothing.
//!
//! A batch is also cut by size: its event, as sent, stays within Lambda's
//! synchronous payload limit ([`MAX_EVENT_BYTES`]); messages that would not
//! fit are not received (they wait, visible, for the next batch).
//!
//! Delivery is at least once: a message is deleted only after the
//! invocation that carried it succeeded, so a reload, a crash or a stop in
//! between makes it visible again after its visibility timeout.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use serde_json::{Value, json};

use super::sqs::{Received, SqsService, system_attributes};
use super::{Context, MAX_EVENT_BYTES, Source};
use crate::config::triggers::SqsTrigger;
use crate::emulator::InvokeRefused;

/// Longest wait of one receive (SQS's long-polling maximum).
const LONG_POLL: Duration = Duration::from_secs(20);

#[derive(Default)]
struct Stats {
    batches: AtomicU64,
    messages: AtomicU64,
    failed: AtomicU64,
    redriven: AtomicU64,
}

/// One `sqs` trigger: its queue, its settings, its counters.
pub struct SqsSource {
    cx: Context,
    sqs: Arc<SqsService>,
    function: String,
    trigger: String,
    queue: String,
    url: String,
    config: SqsTrigger,
    stats: Stats,
}

/// Creates the trigger's queue (unless it exists) and starts polling it
/// for `function`.
pub fn start(
    cx: &Context,
    sqs: &Arc<SqsService>,
    function: &str,
    name: &str,
    trigger: &SqsTrigger,
) -> anyhow::Result<()> {
    let queue = trigger.queue_name().to_string();
    let url = sqs
        .with(|st, now| st.ensure(&queue, now))
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("creating queue `{queue}` of trigger `{name}`"))?;
    let source = Arc::new(SqsSource {
        cx: cx.clone(),
        sqs: sqs.clone(),
        function: function.to_string(),
        trigger: name.to_string(),
        queue,
        url,
        config: trigger.clone(),
        stats: Stats::default(),
    });
    cx.triggers.add_source(source.clone());
    if !trigger.enabled {
        cx.log("sqs", name, "disabled (enabled = false): not polling");
        return Ok(());
    }
    let workers = trigger
        .maximum_concurrency
        .map_or(cx.invoker.concurrency(), |n| n as usize)
        .max(1);
    cx.log(
        "sqs",
        name,
        format!(
            "polling {} for {function} (batch size {}, window {} s, up to {workers} at once)",
            source.queue,
            source.batch_size(),
            source.window().as_secs()
        ),
    );
    for _ in 0..workers {
        let s = source.clone();
        cx.triggers.spawn(async move { s.poll().await });
    }
    Ok(())
}

impl SqsSource {
    fn batch_size(&self) -> usize {
        self.config.batch_size.unwrap_or(10).max(1) as usize
    }

    fn window(&self) -> Duration {
        Duration::from_secs(u64::from(self.config.maximum_batching_window.unwrap_or(0)))
    }

    fn log(&self, message: impl std::fmt::Display) {
        self.cx.log("sqs", &self.trigger, message);
    }

    /// One poller: gathers a batch, invokes, settles; forever.
    async fn poll(self: Arc<Self>) {
        loop {
            let Some(batch) = self.gather().await else {
                continue;
            };
            self.process(batch).await;
        }
    }

    /// Waits for messages, then fills the batch up to its size, the
    /// batching window or the payload limit. `None` when the long poll
    /// ended empty.
    async fn gather(&self) -> Option<Vec<Received>> {
        let size = self.batch_size();
        let (arn, region) = self.source();
        let mut event = EventSize::new(arn, region);
        let mut batch = self.receive(size, LONG_POLL, &mut event).await?;
        let deadline = tokio::time::Instant::now() + self.window();
        while batch.len() < size && !event.full {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                break;
            }
            match self.receive(size - batch.len(), left, &mut event).await {
                Some(more) => batch.extend(more),
                None => break,
            }
        }
        Some(batch)
    }

    async fn receive(
        &self,
        want: usize,
        wait: Duration,
        event: &mut EventSize,
    ) -> Option<Vec<Received>> {
        let received = self
            .sqs
            .receive_fitting(&self.url, want.min(10), None, wait, &mut |r| event.fits(r))
            .await;
        match received {
            Ok((got, redriven)) => {
                for (id, dlq) in &redriven {
                    self.stats.redriven.fetch_add(1, Ordering::Relaxed);
                    self.log(format!(
                        "message {id} moved to {dlq} (received maxReceiveCount times)"
                    ));
                }
                (!got.is_empty()).then_some(got)
            }
            Err(e) => {
                // The queue was deleted: wait for it to come back.
                tracing::debug!("sqs:{}: {e}", self.trigger);
                tokio::time::sleep(Duration::from_secs(1)).await;
                None
            }
        }
    }

    /// The queue's ARN and region, as records name them.
    fn source(&self) -> (String, String) {
        let arn = self
            .sqs
            .with(|st, _| st.queue(&self.url).map(|q| q.arn.clone()))
            .unwrap_or_default();
        (arn, self.cx.invoker.region().to_string())
    }

    fn event(&self, batch: &[Received]) -> Value {
        let (arn, region) = self.source();
        json!({ "Records": batch.iter().map(|r| record(r, &arn, &region)).collect::<Vec<_>>() })
    }

    async fn invoke(&self, payload: Bytes) -> Option<crate::emulator::Invoked> {
        let caller = format!("sqs:{}", self.trigger);
        loop {
            match self
                .cx
                .invoker
                .invoke(&self.function, payload.clone(), &caller)
                .await
            {
                Ok(invoked) => return Some(invoked),
                // Lambda's pollers back off and retry while throttled.
                Err(InvokeRefused::Throttled) => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                Err(InvokeRefused::NoSuchFunction) => return None,
            }
        }
    }

    /// Invokes the function with one batch and settles it: deletes what
    /// succeeded, leaves the rest to reappear after the visibility timeout.
    async fn process(&self, batch: Vec<Received>) {
        let n = batch.len();
        self.stats.batches.fetch_add(1, Ordering::Relaxed);
        self.stats.messages.fetch_add(n as u64, Ordering::Relaxed);
        let payload = Bytes::from(self.event(&batch).to_string());
        let Some(invoked) = self.invoke(payload).await else {
            self.stats.failed.fetch_add(n as u64, Ordering::Relaxed);
            self.log(format!(
                "batch of {n}: function {} is not served; the messages return after the visibility timeout",
                self.function
            ));
            return;
        };
        let head = format!("batch of {n} -> {}", self.function);
        let failed: HashSet<String> = if let Some(kind) = &invoked.function_error {
            let error: Value = serde_json::from_slice(&invoked.body).unwrap_or_default();
            let what = error["errorType"].as_str().unwrap_or(kind);
            self.log(format!(
                "{head}: function error ({what}); all {n} return after the visibility timeout"
            ));
            batch.iter().map(|r| r.message.id.clone()).collect()
        } else if self.config.report_batch_item_failures {
            match item_failures(&invoked.body, &batch) {
                Ok(ids) if ids.is_empty() => {
                    self.log(format!("{head}: ok"));
                    ids
                }
                Ok(ids) => {
                    self.log(format!(
                        "{head}: {} failed ({}), redelivered after the visibility timeout",
                        ids.len(),
                        ids.iter().cloned().collect::<Vec<_>>().join(", ")
                    ));
                    ids
                }
                Err(why) => {
                    self.log(format!(
                        "{head}: {why}; the whole batch returns after the visibility timeout"
                    ));
                    batch.iter().map(|r| r.message.id.clone()).collect()
                }
            }
        } else {
            self.log(format!("{head}: ok"));
            HashSet::new()
        };
        self.stats
            .failed
            .fetch_add(failed.len() as u64, Ordering::Relaxed);
        self.sqs.with(|st, _| {
            for r in batch.iter().filter(|r| !failed.contains(&r.message.id)) {
                let _ = st.delete(&self.url, &r.receipt);
            }
        });
    }
}

/// The size of the event a batch is making, record by record, against
/// Lambda's payload limit.
struct EventSize {
    arn: String,
    region: String,
    bytes: usize,
    records: usize,
    /// A message did not fit: the batch is complete.
    full: bool,
}

impl EventSize {
    fn new(arn: String, region: String) -> Self {
        EventSize {
            bytes: json!({ "Records": [] }).to_string().len(),
            arn,
            region,
            records: 0,
            full: false,
        }
    }

    /// Whether `r` still fits (counting it in if so). The first always
    /// does: one message, at most 1 MiB with its attributes, makes an event
    /// well under the limit even with every character escaped.
    fn fits(&mut self, r: &Received) -> bool {
        let comma = usize::from(self.records > 0);
        let add = record(r, &self.arn, &self.region).to_string().len() + comma;
        if self.records > 0 && self.bytes + add > MAX_EVENT_BYTES {
            self.full = true;
            return false;
        }
        self.bytes += add;
        self.records += 1;
        true
    }
}

/// The ids a `ReportBatchItemFailures` answer names. An answer that is not
/// JSON, or names an empty or unknown id, fails the whole batch (`Err`).
/// `null`, `{}` or an empty list: all succeeded.
pub fn item_failures(body: &[u8], batch: &[Received]) -> Result<HashSet<String>, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(HashSet::new());
    }
    let v: Value =
        serde_json::from_slice(body).map_err(|_| "the response is not JSON".to_string())?;
    let Some(items) = v.get("batchItemFailures").filter(|i| !i.is_null()) else {
        return Ok(HashSet::new());
    };
    let items = items
        .as_array()
        .ok_or_else(|| "batchItemFailures is not a list".to_string())?;
    let ids: HashSet<&str> = batch.iter().map(|r| r.message.id.as_str()).collect();
    let mut failed = HashSet::new();
    for item in items {
        match item["itemIdentifier"].as_str() {
            Some(id) if ids.contains(id) => {
                failed.insert(id.to_string());
            }
            other => {
                return Err(format!(
                    "invalid itemIdentifier {}",
                    other.map_or_else(|| item["itemIdentifier"].to_string(), |s| format!("`{s}`"))
                ));
            }
        }
    }
    Ok(failed)
}

/// One record of the event, as Lambda's SQS poller writes it.
fn record(r: &Received, arn: &str, region: &str) -> Value {
    let m = &r.message;
    let attributes: serde_json::Map<String, Value> = system_attributes(m)
        .into_iter()
        .filter(|(k, _)| *k != "DeadLetterQueueSourceArn")
        .map(|(k, v)| (k.to_string(), v.into()))
        .collect();
    let message_attributes: serde_json::Map<String, Value> = m
        .attributes
        .iter()
        .map(|(k, v)| {
            let mut a = json!({
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": v["DataType"],
            });
            if let Some(s) = v["StringValue"].as_str() {
                a["stringValue"] = s.into();
            }
            if let Some(b) = v["BinaryValue"].as_str() {
                a["binaryValue"] = b.into();
            }
            (k.clone(), a)
        })
        .collect();
    json!({
        "messageId": m.id,
        "receiptHandle": r.receipt,
        "body": m.body,
        "attributes": attributes,
        "messageAttributes": message_attributes,
        "md5OfBody": m.md5_body,
        "md5OfMessageAttributes": super::sqs::md5_of_attributes(&m.attributes),
        "eventSource": "aws:sqs",
        "eventSourceARN": arn,
        "awsRegion": region,
    })
}

impl Source for SqsSource {
    fn function(&self) -> &str {
        &self.function
    }

    fn trigger(&self) -> &str {
        &self.trigger
    }

    fn kind(&self) -> &'static str {
        "sqs"
    }

    fn status(&self) -> Value {
        let (attrs, dlq) = self.sqs.with(|st, now| {
            let Ok(q) = st.queue(&self.url) else {
                return (None, None);
            };
            let dlq = q.redrive.as_ref().map(|r| {
                let name = r.dlq_arn.rsplit(':').next().unwrap_or_default().to_string();
                let count = st.queue(&name).map_or(0, |d| d.messages.len());
                format!("{name} ({count})")
            });
            (Some(q.attributes(now)), dlq)
        });
        let count = |k: &str| -> Value {
            attrs
                .as_ref()
                .and_then(|a| a.get(k))
                .and_then(|v| v.parse::<u64>().ok())
                .map_or(Value::Null, Value::from)
        };
        let mut v = json!({
            "queue": self.queue,
            "visible": count("ApproximateNumberOfMessages"),
            "in flight": count("ApproximateNumberOfMessagesNotVisible"),
            "batches": self.stats.batches.load(Ordering::Relaxed),
            "messages": self.stats.messages.load(Ordering::Relaxed),
            "failed": self.stats.failed.load(Ordering::Relaxed),
            "redriven": self.stats.redriven.load(Ordering::Relaxed),
        });
        if let Some(d) = dlq {
            v["dlq"] = d.into();
        }
        if !self.config.enabled {
            v["enabled"] = false.into();
        }
        v
    }

    /// Sends `payload` (a string as is, other JSON as its text; none: an
    /// example) to the queue, where the poller picks it up like any other
    /// message. Answers the message id.
    fn fire(&self, payload: Option<Value>) -> BoxFuture<'_, anyhow::Result<Value>> {
        Box::pin(async move {
            let body = match payload {
                None => "Hello from cargo fn".to_string(),
                Some(Value::String(s)) => s,
                Some(v) => v.to_string(),
            };
            let fifo = self.config.is_fifo();
            let outgoing = super::sqs::Outgoing {
                group: fifo.then(|| "cargo-fn".to_string()),
                dedup_id: fifo.then(|| uuid::Uuid::new_v4().simple().to_string()),
                body,
                ..Default::default()
            };
            let sent = self
                .sqs
                .with(|st, now| st.send(&self.url, outgoing, now))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            self.log(format!("fired: message {} sent to {}", sent.id, self.queue));
            Ok(json!({ "queue": self.queue, "messageId": sent.id }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local::sqs::{Outgoing, Store};

    fn batch() -> Vec<Received> {
        let mut st = Store::new("http://x", "us-east-1");
        let url = st.ensure("q", 0).unwrap();
        for body in ["a", "b"] {
            st.send(
                &url,
                Outgoing {
                    body: body.into(),
                    ..Outgoing::default()
                },
                0,
            )
            .unwrap();
        }
        st.receive(&url, 10, None, 0).unwrap().0
    }

    #[test]
    fn batch_item_failures_name_known_ids_or_fail_the_whole_batch() {
        let b = batch();
        let id = &b[1].message.id;
        let body = format!(r#"{{"batchItemFailures":[{{"itemIdentifier":"{id}"}}]}}"#);
        assert_eq!(
            item_failures(body.as_bytes(), &b).unwrap(),
            HashSet::from([id.clone()])
        );
        for ok in [
            "",
            "null",
            "{}",
            r#"{"batchItemFailures":[]}"#,
            r#"{"batchItemFailures":null}"#,
        ] {
            assert!(item_failures(ok.as_bytes(), &b).unwrap().is_empty(), "{ok}");
        }
        for bad in [
            r#"{"batchItemFailures":[{"itemIdentifier":""}]}"#,
            r#"{"batchItemFailures":[{"itemIdentifier":"unknown"}]}"#,
            r#"{"batchItemFailures":[{"itemIdentifier":null}]}"#,
            r#"{"batchItemFailures":"x"}"#,
            "not json",
        ] {
            assert!(item_failures(bad.as_bytes(), &b).is_err(), "{bad}");
        }
    }

    #[test]
    fn records_deserialize_as_aws_lambda_events_would_read_them() {
        let b = batch();
        let r = record(&b[0], "arn:aws:sqs:us-east-1:012345678912:q", "us-east-1");
        assert_eq!(r["eventSource"], "aws:sqs");
        assert_eq!(r["attributes"]["ApproximateReceiveCount"], "1");
        assert_eq!(r["md5OfBody"], crate::local::sqs::md5_hex("a"));
        assert!(r["md5OfMessageAttributes"].is_null());
        let typed: aws_lambda_events::event::sqs::SqsMessage =
            serde_json::from_value(r).expect("an SqsMessage");
        assert_eq!(typed.body.as_deref(), Some("a"));
        assert_eq!(typed.message_id.as_deref(), Some(b[0].message.id.as_str()));
    }
}
