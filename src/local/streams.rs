//! Stream triggers (`kinesis`, `dynamodb`) as local sources: each gets a
//! [`Poller`] over its shards, a status for the dashboard and "fire now".
//!
//! A `kinesis` trigger reads the local Kinesis stream its ARN names (created
//! at start with `local-shards` shards). A `dynamodb` trigger has no table
//! locally: it reads an in-process stream of one shard that only `fire`
//! (`cargo fn invoke --trigger NAME [record]`) writes, so batching, bisect and
//! retries apply to fired records as to real ones.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Result, bail};
use bytes::Bytes;
use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::config::triggers::{Trigger, TriggerKind};

use super::kinesis::{KinesisStore, Stream};
use super::sqs::{Outgoing, SqsService};
use super::stream_poller::{
    FailureFn, InvokeFn, LogFn, MAX_EVENT_BYTES, Outcome, Poller, PollerConfig, ShardLog, Stats,
    StreamKind, StreamRecord, now_ms,
};
use super::{Context, Source};

/// How long `fire` waits for its records to be processed before answering.
const FIRE_WAIT: Duration = Duration::from_secs(60);

/// The local stream behind a `dynamodb` trigger: one shard, fed by `fire`.
pub struct DynamoDbStream {
    shard_id: String,
    records: Mutex<Vec<Arc<StreamRecord>>>,
    appended: Notify,
}

impl DynamoDbStream {
    fn new() -> Self {
        DynamoDbStream {
            shard_id: format!("shardId-{:020}-{:08x}", now_ms(), rand_u32()),
            records: Mutex::new(Vec::new()),
            appended: Notify::new(),
        }
    }

    /// Appends completed stream records; returns their sequence numbers.
    fn append(&self, records: Vec<(String, Value)>) -> Vec<String> {
        let mut log = self.records.lock().unwrap();
        let mut seqs = Vec::new();
        for (keys, mut payload) in records {
            let seq = format!("4{:020}", log.len());
            payload["dynamodb"]["SequenceNumber"] = json!(seq);
            log.push(Arc::new(StreamRecord {
                sequence_number: seq.clone(),
                partition_key: keys,
                arrival: super::kinesis::now_secs(),
                data: Bytes::new(),
                payload,
            }));
            seqs.push(seq);
        }
        drop(log);
        self.appended.notify_waiters();
        seqs
    }
}

fn rand_u32() -> u32 {
    uuid::Uuid::new_v4().as_u128() as u32
}

impl ShardLog for DynamoDbStream {
    fn shard_ids(&self) -> Vec<String> {
        vec![self.shard_id.clone()]
    }
    fn len(&self, _shard: usize) -> usize {
        self.records.lock().unwrap().len()
    }
    fn read(&self, _shard: usize, from: usize, max: usize) -> Vec<Arc<StreamRecord>> {
        let records = self.records.lock().unwrap();
        records.iter().skip(from).take(max).cloned().collect()
    }
    fn notify(&self) -> &Notify {
        &self.appended
    }
}

/// AWS's `INSERT` example record, the default of `fire`.
pub fn example_insert() -> Value {
    json!({
        "eventName": "INSERT",
        "dynamodb": {
            "Keys": {"Id": {"N": "101"}},
            "NewImage": {"Message": {"S": "New item!"}, "Id": {"N": "101"}},
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        }
    })
}

/// Fills what a stream record always has; returns (keys as JSON, record).
/// A record that could not be delivered even alone (its event over
/// Lambda's payload limit) is refused: DynamoDB never makes one, its item
/// images being at most 400 KB each.
fn complete_ddb_record(mut r: Value, arn: &str, region: &str) -> Result<(String, Value)> {
    if !r.is_object() {
        bail!("a DynamoDB stream record is a JSON object, got {r}");
    }
    let Some(keys) = r.pointer("/dynamodb/Keys").filter(|k| k.is_object()) else {
        bail!(
            "a DynamoDB stream record needs `dynamodb.Keys` (the item's key attributes, e.g. {{\"Id\": {{\"N\": \"101\"}}}})"
        );
    };
    let keys = keys.to_string();
    let name = r
        .get("eventName")
        .and_then(Value::as_str)
        .unwrap_or("INSERT");
    if !["INSERT", "MODIFY", "REMOVE"].contains(&name) {
        bail!("eventName `{name}` is not one of INSERT, MODIFY, REMOVE");
    }
    let defaults = [
        (
            "eventID",
            json!(format!("{:032x}", uuid::Uuid::new_v4().as_u128())),
        ),
        ("eventName", json!(name)),
        ("eventVersion", json!("1.1")),
        ("eventSource", json!("aws:dynamodb")),
        ("awsRegion", json!(region)),
        ("eventSourceARN", json!(arn)),
    ];
    for (k, v) in defaults {
        if r.get(k).is_none() {
            r[k] = v;
        }
    }
    let size = r["dynamodb"].to_string().len();
    let d = &mut r["dynamodb"];
    if d.get("ApproximateCreationDateTime").is_none() {
        d["ApproximateCreationDateTime"] = json!(now_ms() / 1000);
    }
    if d.get("SizeBytes").is_none() {
        d["SizeBytes"] = json!(size);
    }
    if d.get("StreamViewType").is_none() {
        d["StreamViewType"] = json!("NEW_AND_OLD_IMAGES");
    }
    let alone = json!({ "Records": [&r] }).to_string().len();
    if alone > MAX_EVENT_BYTES {
        bail!(
            "this stream record makes an event of {alone} bytes, over Lambda's {MAX_EVENT_BYTES}-byte payload limit; DynamoDB items (and so each of NewImage and OldImage) are at most 400 KB"
        );
    }
    Ok((keys, r))
}

enum Input {
    Kinesis(Arc<Stream>),
    DynamoDb(Arc<DynamoDbStream>),
}

/// One running stream trigger.
pub struct StreamSource {
    poller: Arc<Poller>,
    input: Input,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for StreamSource {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Starts a `kinesis` or `dynamodb` trigger under watch: its poller invokes
/// through the emulator, its failures go to the local SQS queue its
/// `on-failure` ARN names, its lines to the watch output.
pub fn start(
    cx: &Context,
    kinesis: &KinesisStore,
    sqs: &Arc<SqsService>,
    function: &str,
    trigger: &Trigger,
) -> Result<()> {
    let kind = trigger.kind.type_name();
    let label = format!("{kind}:{}", trigger.name);
    let invoke: InvokeFn = {
        let (invoker, function, caller) = (cx.invoker.clone(), function.to_string(), label.clone());
        Arc::new(move |payload| {
            let (invoker, function, caller) = (invoker.clone(), function.clone(), caller.clone());
            Box::pin(async move {
                let r = invoker
                    .invoke(&function, payload, &caller)
                    .await
                    .map_err(|e| e.to_string())?;
                let outcome = match r.function_error {
                    Some(error) => Outcome::FunctionError { error },
                    None => {
                        Outcome::Success(serde_json::from_slice(&r.body).unwrap_or(Value::Null))
                    }
                };
                Ok((r.request_id, outcome))
            })
        })
    };
    let destination = match &trigger.kind {
        TriggerKind::Kinesis(t) | TriggerKind::DynamoDb(t) => t.on_failure.clone(),
        _ => None,
    };
    let ui = cx.ui;
    let say: LogFn = Arc::new(move |line: &str| ui.status("Trigger", line));
    let on_failure: FailureFn = match destination {
        Some(arn) if arn.starts_with("arn:aws:sqs:") => {
            let queue = arn.rsplit(':').next().unwrap_or(&arn).to_string();
            let url = sqs
                .with(|st, now| st.ensure(&queue, now))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let sqs = sqs.clone();
            Arc::new(move |record: Value| {
                let out = sqs.with(|st, now| {
                    st.send(
                        &url,
                        Outgoing {
                            body: record.to_string(),
                            ..Default::default()
                        },
                        now,
                    )
                });
                Box::pin(async move { out.map(|_| ()).map_err(|e| e.to_string()) })
            })
        }
        // SNS is not emulated: the record goes to the watch output.
        _ => {
            let say = say.clone();
            Arc::new(move |record: Value| {
                say(&format!(
                    "[{label}] failure record (no local SNS): {record}"
                ));
                Box::pin(async { Ok(()) })
            })
        }
    };
    if let Some(source) = StreamSource::start(function, trigger, kinesis, invoke, on_failure, say) {
        let cfg = &source.poller.cfg;
        cx.log(
            kind,
            &trigger.name,
            format!(
                "polling {} for {function} (batch size {}, window {} s, parallelization {}, {} shard(s))",
                match cfg.kind {
                    StreamKind::Kinesis => kinesis_stream_name(&cfg.stream_arn),
                    StreamKind::DynamoDb => "a local stream fed by `cargo fn invoke --trigger`",
                },
                cfg.batch_size,
                cfg.window_ms / 1000,
                cfg.parallelization,
                source.poller.log.shard_ids().len()
            ),
        );
        cx.triggers.add_source(Arc::new(source));
    } else {
        cx.log(
            kind,
            &trigger.name,
            "disabled (enabled = false): not polling",
        );
    }
    Ok(())
}

/// The stream name of a Kinesis stream ARN.
pub fn kinesis_stream_name(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

impl StreamSource {
    /// Starts the poller of a `kinesis` or `dynamodb` trigger (None for
    /// other types and disabled triggers). Kinesis streams are created in
    /// `kinesis` if missing.
    pub fn start(
        function: &str,
        trigger: &Trigger,
        kinesis: &KinesisStore,
        invoke: InvokeFn,
        on_failure: FailureFn,
        say: LogFn,
    ) -> Option<StreamSource> {
        let (kind, t) = match &trigger.kind {
            TriggerKind::Kinesis(t) => (StreamKind::Kinesis, t),
            TriggerKind::DynamoDb(t) => (StreamKind::DynamoDb, t),
            _ => return None,
        };
        if !t.enabled {
            return None;
        }
        let cfg = Arc::new(PollerConfig::new(
            function,
            &trigger.name,
            kind,
            t,
            kinesis.scope(),
        ));
        let (input, log): (Input, Arc<dyn ShardLog>) = match kind {
            StreamKind::Kinesis => {
                let s = kinesis.ensure(kinesis_stream_name(&t.stream), t.local_shards.unwrap_or(1));
                (Input::Kinesis(s.clone()), s)
            }
            StreamKind::DynamoDb => {
                let s = Arc::new(DynamoDbStream::new());
                (Input::DynamoDb(s.clone()), s)
            }
        };
        let poller = Arc::new(Poller {
            cfg,
            log,
            invoke,
            on_failure,
            say,
            stats: Arc::new(Stats::default()),
            outcomes: Mutex::new(VecDeque::new()),
            outcome_total: AtomicU64::new(0),
            started: AtomicU64::new(0),
            progress: Notify::new(),
        });
        let tasks = poller.start();
        Some(StreamSource {
            poller,
            input,
            tasks,
        })
    }

    /// Records finished (processed or dropped) so far.
    pub fn done(&self) -> u64 {
        self.poller.stats.done.load(Ordering::Relaxed)
    }

    /// The most batches of one shard that ran at once so far.
    pub fn max_parallel(&self) -> u64 {
        self.poller.stats.max_parallel.load(Ordering::Relaxed)
    }

    /// Records not yet finished by the poller (read or not).
    fn unfinished(&self) -> u64 {
        let s = &self.poller.stats;
        let log = &self.poller.log;
        let total: usize = (0..log.shard_ids().len()).map(|i| log.len(i)).sum();
        let started = self.poller.started.load(Ordering::Relaxed);
        (total as u64)
            .saturating_sub(started)
            .saturating_sub(s.done.load(Ordering::Relaxed))
    }

    async fn fire_now(&self, payload: Option<Value>) -> Result<Value> {
        let cfg = &self.poller.cfg;
        let before = self.poller.outcome_count();
        let written: Vec<Value> = match &self.input {
            Input::Kinesis(stream) => {
                let data = match payload {
                    None => json!({"message": "hello from cargo fn invoke --trigger"}).to_string(),
                    Some(Value::String(s)) => s,
                    Some(v) => v.to_string(),
                };
                if data.len() > super::kinesis::MAX_DATA {
                    bail!(
                        "the record is {} bytes; a Kinesis record holds at most 1 MiB",
                        data.len()
                    );
                }
                let key = uuid::Uuid::new_v4().to_string();
                let hash = super::kinesis::partition_hash(&key);
                let (shard, seq) = stream.put(&key, hash, Bytes::from(data));
                vec![json!({"shardId": shard, "sequenceNumber": seq, "partitionKey": key})]
            }
            Input::DynamoDb(stream) => {
                let records = match payload {
                    None => vec![example_insert()],
                    Some(Value::Array(items)) => items,
                    Some(Value::Object(o)) if o.get("Records").is_some_and(Value::is_array) => {
                        o["Records"].as_array().cloned().unwrap_or_default()
                    }
                    Some(v) => vec![v],
                };
                if records.is_empty() {
                    bail!("no records to put on the stream");
                }
                let completed = records
                    .into_iter()
                    .map(|r| complete_ddb_record(r, &cfg.stream_arn, &cfg.scope.region))
                    .collect::<Result<Vec<_>>>()?;
                let seqs = stream.append(completed);
                seqs.into_iter()
                    .map(|s| json!({"shardId": stream.shard_id, "sequenceNumber": s}))
                    .collect()
            }
        };
        // Wait for the poller to finish them (processed or dropped).
        let processed = tokio::time::timeout(FIRE_WAIT, async {
            loop {
                let progressed = self.poller.progress.notified();
                tokio::pin!(progressed);
                progressed.as_mut().enable();
                if self.unfinished() == 0 {
                    return;
                }
                progressed.await;
            }
        })
        .await
        .is_ok();
        Ok(json!({
            "stream": cfg.stream_arn,
            "records": written,
            "processed": processed,
            "invocations": self.poller.outcomes_since(before),
        }))
    }
}

impl Source for StreamSource {
    fn function(&self) -> &str {
        &self.poller.cfg.function
    }

    fn trigger(&self) -> &str {
        &self.poller.cfg.trigger
    }

    fn kind(&self) -> &'static str {
        match self.poller.cfg.kind {
            StreamKind::Kinesis => "kinesis",
            StreamKind::DynamoDb => "dynamodb",
        }
    }

    fn status(&self) -> Value {
        let s = &self.poller.stats;
        let cfg = &self.poller.cfg;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        json!({
            "stream": match self.poller.cfg.kind {
                StreamKind::Kinesis => kinesis_stream_name(&cfg.stream_arn).to_string(),
                StreamKind::DynamoDb => "local (fed by --trigger)".to_string(),
            },
            "shards": self.poller.log.shard_ids().len(),
            "parallelization": cfg.parallelization,
            "records": get(&s.records),
            "batches": get(&s.batches),
            "in flight": get(&s.in_flight),
            "behind": self.unfinished(),
            "to on-failure": get(&s.failed),
        })
    }

    fn fire(&self, payload: Option<Value>) -> BoxFuture<'_, Result<Value>> {
        Box::pin(self.fire_now(payload))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fired_dynamodb_records_are_completed_in_aws_shape() {
        let arn = "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/2026-01-01T00:00:00.000";
        let (keys, r) = complete_ddb_record(example_insert(), arn, "us-east-1").unwrap();
        assert_eq!(keys, r#"{"Id":{"N":"101"}}"#);
        let s = DynamoDbStream::new();
        let seqs = s.append(vec![(keys, r)]);
        let event = json!({"Records": [s.read(0, 0, 1)[0].payload.clone()]});
        let e: aws_lambda_events::event::dynamodb::Event = serde_json::from_value(event).unwrap();
        let rec = &e.records[0];
        assert_eq!(rec.event_name, "INSERT");
        assert_eq!(rec.event_source_arn.as_deref(), Some(arn));
        assert_eq!(
            rec.change.sequence_number.as_deref(),
            Some(seqs[0].as_str())
        );
        assert!(
            complete_ddb_record(json!({"eventName": "INSERT"}), arn, "us-east-1")
                .unwrap_err()
                .to_string()
                .contains("dynamodb.Keys")
        );
        assert!(
            complete_ddb_record(
                json!({"eventName": "UPSERT", "dynamodb": {"Keys": {}}}),
                arn,
                "us-east-1"
            )
            .is_err()
        );
    }
}
