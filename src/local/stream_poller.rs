//! The stream poller: reads the shards of a Kinesis stream or a local
//! DynamoDB stream and invokes a function with Lambda's event-source-mapping
//! semantics.
//!
//! - Per-shard order. With a parallelization factor N, each shard's records
//!   are hashed by partition key onto N lanes ("virtual shards"); a lane runs
//!   one batch at a time, so up to N batches of a shard run at once while the
//!   records of one partition key stay in order.
//! - Batch size and batching window (a lane waits up to the window for a full
//!   batch); a batch is cut so its event, as sent (data in base64, JSON
//!   escaped, with the tumbling-window fields), stays within Lambda's
//!   synchronous payload limit ([`MAX_EVENT_BYTES`]).
//! - Starting position (`TRIM_HORIZON`, `LATEST`, `AT_TIMESTAMP`).
//! - On a function error the batch is retried (with a short backoff); with
//!   bisect it is split in halves first (splitting does not use up the retry
//!   quota, as on AWS), down to the poison record. After the maximum retry
//!   attempts, or once a record is older than the maximum record age, the
//!   records are dropped and the on-failure destination gets AWS's failure
//!   record (`KinesisBatchInfo` / `DDBStreamBatchInfo`).
//! - `ReportBatchItemFailures`: the lane checkpoints before the lowest failed
//!   sequence number and retries from there; an unknown identifier fails the
//!   whole batch.
//! - Tumbling windows: records are grouped into windows of their arrival
//!   time; the function's returned `state` is passed to the next invocation
//!   of the window, and a final invocation (`isFinalInvokeForWindow`) closes
//!   it.
//!
//! [`ShardState`] is the pure part (a controllable clock, no I/O), unit-tested
//! here; [`run`] is the async loop around it. This module knows nothing of
//! the emulator or of SQS: the caller passes the invoke, on-failure and log
//! functions.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use md5::{Digest, Md5};
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio::task::JoinSet;

use crate::config::triggers::{StartingPosition, StreamTrigger};

pub use super::MAX_EVENT_BYTES;
use super::Scope;

/// One record of a shard as the poller sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamRecord {
    pub sequence_number: String,
    /// Kinesis: the partition key; DynamoDB: the item's `Keys` as JSON.
    pub partition_key: String,
    /// Approximate arrival, seconds since the epoch.
    pub arrival: f64,
    /// Kinesis: the record's data.
    pub data: Bytes,
    /// DynamoDB: the complete stream record as the event carries it.
    pub payload: Value,
}

/// A sequence of shards the poller reads (a Kinesis stream, a local
/// DynamoDB stream).
pub trait ShardLog: Send + Sync + 'static {
    fn shard_ids(&self) -> Vec<String>;
    fn len(&self, shard: usize) -> usize;
    fn read(&self, shard: usize, from: usize, max: usize) -> Vec<Arc<StreamRecord>>;
    /// Woken (`notify_waiters`) after every append.
    fn notify(&self) -> &Notify;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    Kinesis,
    DynamoDb,
}

/// A stream trigger, resolved to what the poller needs.
#[derive(Debug, Clone)]
pub struct PollerConfig {
    pub function: String,
    pub trigger: String,
    pub kind: StreamKind,
    /// The account and region of the function and the stream.
    pub scope: Scope,
    /// The local stream's ARN (the configured one, in [`Scope`]).
    pub stream_arn: String,
    pub batch_size: usize,
    pub window_ms: u64,
    pub parallelization: usize,
    pub bisect: bool,
    /// None: retry until the record expires (AWS's -1).
    pub max_retries: Option<u32>,
    /// None: no age limit (AWS's -1).
    pub max_age_ms: Option<u64>,
    pub tumbling_ms: Option<u64>,
    pub report_item_failures: bool,
    pub on_failure: Option<String>,
    pub starting_position: StartingPosition,
    /// With `AT_TIMESTAMP`: seconds since the epoch.
    pub starting_timestamp: Option<f64>,
}

impl PollerConfig {
    pub fn new(
        function: &str,
        trigger: &str,
        kind: StreamKind,
        t: &StreamTrigger,
        scope: &Scope,
    ) -> Self {
        PollerConfig {
            function: function.to_string(),
            trigger: trigger.to_string(),
            kind,
            scope: scope.clone(),
            stream_arn: scope.localize(&t.stream),
            batch_size: t.batch_size.unwrap_or(100) as usize,
            window_ms: u64::from(t.maximum_batching_window.unwrap_or(0)) * 1000,
            parallelization: t.parallelization_factor.unwrap_or(1).max(1) as usize,
            bisect: t.bisect_batch_on_function_error.unwrap_or(false),
            max_retries: t.maximum_retry_attempts.and_then(|n| u32::try_from(n).ok()),
            max_age_ms: t
                .maximum_record_age
                .and_then(|n| u64::try_from(n).ok())
                .map(|s| s * 1000),
            tumbling_ms: t
                .tumbling_window
                .filter(|&w| w > 0)
                .map(|w| u64::from(w) * 1000),
            report_item_failures: t.report_batch_item_failures,
            on_failure: t.on_failure.clone(),
            starting_position: t.starting_position,
            starting_timestamp: t.starting_position_timestamp.as_deref().and_then(parse_utc),
        }
    }

    /// `kinesis:orders`, the prefix of every log line.
    pub fn label(&self) -> String {
        let kind = match self.kind {
            StreamKind::Kinesis => "kinesis",
            StreamKind::DynamoDb => "dynamodb",
        };
        format!("[{kind}:{}]", self.trigger)
    }

    fn function_arn(&self) -> String {
        self.scope.function_arn(&self.function)
    }

    /// Bytes an event of shard `shard_id` has for its records: the limit
    /// less the envelope, which with tumbling windows holds the window
    /// fields and room for the largest state that keeps a window open (a
    /// retried batch is sent with the state of its time).
    fn record_budget(&self, shard_id: &str) -> usize {
        let mut event = json!({"Records": []});
        let mut state = 0;
        if self.tumbling_ms.is_some() {
            event["window"] = json!({"start": iso(0), "end": iso(0)});
            event["state"] = json!({});
            event["shardId"] = json!(shard_id);
            event["eventSourceARN"] = json!(self.stream_arn);
            event["isFinalInvokeForWindow"] = json!(false);
            event["isWindowTerminatedEarly"] = json!(false);
            state = MAX_WINDOW_STATE;
        }
        MAX_EVENT_BYTES.saturating_sub(event.to_string().len() + state)
    }

    /// One record as the event carries it.
    fn record_json(&self, shard_id: &str, r: &StreamRecord) -> Value {
        match self.kind {
            StreamKind::DynamoDb => r.payload.clone(),
            StreamKind::Kinesis => json!({
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": r.partition_key,
                    "sequenceNumber": r.sequence_number,
                    "data": base64::engine::general_purpose::STANDARD.encode(&r.data),
                    "approximateArrivalTimestamp": r.arrival,
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": format!("{shard_id}:{}", r.sequence_number),
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": format!("arn:aws:iam::{}:role/cargo-fn-local", self.scope.account),
                "awsRegion": self.scope.region,
                "eventSourceARN": self.stream_arn,
            }),
        }
    }
}

/// The lane (virtual shard) of a partition key.
pub fn lane_of(partition_key: &str, lanes: usize) -> usize {
    let hash = u128::from_be_bytes(Md5::digest(partition_key.as_bytes()).into());
    (hash % lanes as u128) as usize
}

/// Records handed to one invocation, with their retry bookkeeping.
#[derive(Debug, Clone)]
pub struct Work {
    pub records: Vec<Arc<StreamRecord>>,
    /// Retries so far (bisecting does not count).
    pub retries: u32,
    /// Invocations these records have been part of.
    pub invokes: u32,
    /// Not before this time (ms): the retry backoff.
    pub not_before: u64,
    /// The closing invocation of a tumbling window (no records).
    pub final_window: bool,
}

/// One invocation to make.
#[derive(Debug, Clone)]
pub struct Batch {
    pub lane: usize,
    pub work: Work,
    pub event: Value,
}

/// What the function answered.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The response body (JSON, or Null when it is not JSON).
    Success(Value),
    /// A function error (`Unhandled`, a timeout, a crash).
    FunctionError { error: String },
}

/// Side effects of the pure state for the loop to carry out.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Log(String),
    /// A failure record for the on-failure destination.
    OnFailure(Value),
    /// This many records are finished (processed or dropped).
    Done(usize),
}

#[derive(Debug, Default)]
struct Lane {
    pending: VecDeque<Arc<StreamRecord>>,
    /// When the oldest pending record became visible to the lane (ms).
    pending_since: Option<u64>,
    /// Retries and bisected halves, always ahead of `pending`.
    retry: VecDeque<Work>,
    busy: bool,
    /// The open tumbling window (start, end) in ms, and its state.
    window: Option<(u64, u64)>,
    state: Value,
    /// The state outgrew 1 MB: the window closes now.
    terminated_early: bool,
}

/// A tumbling window's state above this ends the window early (AWS's limit).
pub const MAX_WINDOW_STATE: usize = 1024 * 1024;

/// One shard's poller state: pure, driven by the caller's clock (ms).
pub struct ShardState {
    cfg: Arc<PollerConfig>,
    pub shard_id: String,
    lanes: Vec<Lane>,
    /// The next position of the shard log to read.
    pub read_pos: usize,
    /// Bytes of records an event may carry.
    budget: usize,
}

fn secs_to_ms(s: f64) -> u64 {
    (s * 1000.0) as u64
}

impl ShardState {
    pub fn new(cfg: Arc<PollerConfig>, shard_id: &str, read_pos: usize) -> Self {
        ShardState {
            lanes: (0..cfg.parallelization).map(|_| Lane::default()).collect(),
            budget: cfg.record_budget(shard_id),
            cfg,
            shard_id: shard_id.to_string(),
            read_pos,
        }
    }

    /// Batches running now.
    pub fn in_flight(&self) -> usize {
        self.lanes.iter().filter(|l| l.busy).count()
    }

    /// Records read but not yet finished.
    pub fn backlog(&self) -> usize {
        self.lanes
            .iter()
            .map(|l| l.pending.len() + l.retry.iter().map(|w| w.records.len()).sum::<usize>())
            .sum()
    }

    /// New records from the shard, in shard order.
    pub fn ingest(&mut self, records: Vec<Arc<StreamRecord>>, now: u64) {
        self.read_pos += records.len();
        for r in records {
            let lane = &mut self.lanes[lane_of(&r.partition_key, self.cfg.parallelization)];
            lane.pending_since.get_or_insert(now);
            lane.pending.push_back(r);
        }
    }

    /// The next time (ms) `poll` may have something to do without new input.
    pub fn deadline(&self) -> Option<u64> {
        self.lanes
            .iter()
            .filter(|l| !l.busy)
            .filter_map(|l| {
                let retry = l.retry.front().map(|w| w.not_before);
                let window = l
                    .pending_since
                    .filter(|_| !l.pending.is_empty())
                    .map(|s| s + self.cfg.window_ms);
                let tumble = l.window.map(|(_, end)| end);
                [retry, window, tumble].into_iter().flatten().min()
            })
            .min()
    }

    /// The batches to start now (at most one per idle lane).
    pub fn poll(&mut self, now: u64) -> (Vec<Batch>, Vec<Effect>) {
        let mut batches = Vec::new();
        let mut effects = Vec::new();
        for i in 0..self.lanes.len() {
            if self.lanes[i].busy {
                continue;
            }
            // Drop what is too old before it is ever (re)sent.
            if let Some(max_age) = self.cfg.max_age_ms {
                self.expire(i, now, max_age, &mut effects);
            }
            if let Some(work) = self.next_work(i, now) {
                let event = self.event(i, &work, now);
                self.lanes[i].busy = true;
                batches.push(Batch {
                    lane: i,
                    work,
                    event,
                });
            }
        }
        (batches, effects)
    }

    fn expire(&mut self, i: usize, now: u64, max_age: u64, effects: &mut Vec<Effect>) {
        let old = |r: &Arc<StreamRecord>| now.saturating_sub(secs_to_ms(r.arrival)) > max_age;
        let lane = &mut self.lanes[i];
        let mut expired = Vec::new();
        let mut invokes = 0;
        for w in lane.retry.iter_mut() {
            if w.records.iter().any(old) {
                invokes = invokes.max(w.invokes);
            }
            expired.extend(w.records.iter().filter(|r| old(r)).cloned());
            w.records.retain(|r| !old(r));
        }
        lane.retry
            .retain(|w| !w.records.is_empty() || w.final_window);
        while lane.pending.front().is_some_and(old) {
            expired.extend(lane.pending.pop_front());
        }
        if lane.pending.is_empty() {
            lane.pending_since = None;
        }
        if !expired.is_empty() {
            expired.sort_by(|a, b| a.sequence_number.cmp(&b.sequence_number));
            effects.push(Effect::Log(format!(
                "{} {} record(s) older than the maximum record age dropped",
                self.cfg.label(),
                expired.len()
            )));
            self.fail(&expired, "RecordAgeExceeded", invokes, None, now, effects);
        }
    }

    fn next_work(&mut self, i: usize, now: u64) -> Option<Work> {
        let cfg = self.cfg.clone();
        let lane = &mut self.lanes[i];
        if let Some(w) = lane.retry.front() {
            return (w.not_before <= now).then(|| lane.retry.pop_front().unwrap());
        }
        let window_of = |r: &StreamRecord| {
            cfg.tumbling_ms.map(|w| {
                let start = secs_to_ms(r.arrival) / w * w;
                (start, start + w)
            })
        };
        // A tumbling window closes with a final invocation once its time is
        // over and none of its records remain.
        if let Some((start, end)) = lane.window {
            let next_in_window = !lane.terminated_early
                && lane
                    .pending
                    .front()
                    .is_some_and(|r| window_of(r) == Some((start, end)));
            if !next_in_window && (now >= end || !lane.pending.is_empty() || lane.terminated_early)
            {
                return Some(Work {
                    records: Vec::new(),
                    retries: 0,
                    invokes: 0,
                    not_before: now,
                    final_window: true,
                });
            }
        }
        if lane.pending.is_empty() {
            return None;
        }
        let full = lane.pending.len() >= cfg.batch_size;
        let waited = lane.pending_since.is_some_and(|s| now >= s + cfg.window_ms);
        if !full && !waited {
            return None;
        }
        let window = window_of(&lane.pending[0]);
        let mut records = Vec::new();
        let mut bytes = 0;
        while let Some(r) = lane.pending.front() {
            if records.len() == cfg.batch_size || window_of(r) != window {
                break;
            }
            // The record as the event carries it, and its comma. One record
            // always fits: the sources refuse records that could not (1 MiB
            // of Kinesis data; fired DynamoDB records are checked).
            let size = cfg.record_json(&self.shard_id, r).to_string().len() + 1;
            if !records.is_empty() && bytes + size > self.budget {
                break;
            }
            bytes += size;
            records.push(lane.pending.pop_front().unwrap());
        }
        lane.pending_since = (!lane.pending.is_empty()).then_some(now);
        if window.is_some() {
            lane.window = window;
        }
        Some(Work {
            records,
            retries: 0,
            invokes: 0,
            not_before: now,
            final_window: false,
        })
    }

    /// The event for a batch, in AWS's shape.
    fn event(&self, lane: usize, work: &Work, _now: u64) -> Value {
        let records: Vec<Value> = work
            .records
            .iter()
            .map(|r| self.cfg.record_json(&self.shard_id, r))
            .collect();
        let mut event = json!({ "Records": records });
        if let Some((start, end)) = self.lanes[lane].window {
            let state = match &self.lanes[lane].state {
                Value::Null => json!({}),
                s => s.clone(),
            };
            event["window"] = json!({"start": iso(start), "end": iso(end)});
            event["state"] = state;
            event["shardId"] = json!(self.shard_id);
            event["eventSourceARN"] = json!(self.cfg.stream_arn);
            event["isFinalInvokeForWindow"] = json!(work.final_window);
            event["isWindowTerminatedEarly"] =
                json!(work.final_window && self.lanes[lane].terminated_early);
        }
        event
    }

    /// A batch finished with `outcome` (request id `request_id`).
    pub fn complete(
        &mut self,
        batch: Batch,
        outcome: Outcome,
        request_id: &str,
        now: u64,
    ) -> Vec<Effect> {
        let label = self.cfg.label();
        let mut effects = Vec::new();
        let Batch { lane, mut work, .. } = batch;
        self.lanes[lane].busy = false;
        work.invokes += 1;
        let n = work.records.len();
        let body = match outcome {
            Outcome::Success(body) => body,
            Outcome::FunctionError { error } => {
                effects.push(Effect::Log(format!(
                    "{label} batch of {n} -> {}: function error ({error})",
                    self.cfg.function
                )));
                self.retry(lane, work, true, request_id, now, &mut effects);
                return effects;
            }
        };
        if self.cfg.tumbling_ms.is_some() {
            let l = &mut self.lanes[lane];
            if work.final_window {
                l.window = None;
                l.state = Value::Null;
                l.terminated_early = false;
                effects.push(Effect::Log(format!("{label} tumbling window closed")));
                return effects;
            }
            if let Some(state) = body.get("state") {
                l.state = state.clone();
                l.terminated_early = state.to_string().len() > MAX_WINDOW_STATE;
            }
        }
        match self.failed_from(&work, &body) {
            None => {
                effects.push(Effect::Log(format!(
                    "{label} batch of {n} -> {}: ok, checkpoint {}",
                    self.cfg.function,
                    work.records
                        .last()
                        .map(|r| r.sequence_number.as_str())
                        .unwrap_or("-")
                )));
                effects.push(Effect::Done(n));
            }
            Some(k) => {
                let done = work.records.drain(..k).count();
                effects.push(Effect::Log(format!(
                    "{label} batch of {n} -> {}: {} from {} reported failed, checkpoint before it",
                    self.cfg.function,
                    work.records.len(),
                    work.records[0].sequence_number
                )));
                effects.push(Effect::Done(done));
                self.retry(lane, work, false, request_id, now, &mut effects);
            }
        }
        effects
    }

    /// With `ReportBatchItemFailures`: the index of the lowest failed record
    /// (0 when an identifier is missing or unknown: the whole batch failed).
    fn failed_from(&self, work: &Work, body: &Value) -> Option<usize> {
        if !self.cfg.report_item_failures || work.records.is_empty() {
            return None;
        }
        let failures = body.get("batchItemFailures")?.as_array()?;
        let mut lowest: Option<usize> = None;
        for f in failures {
            let id = f.get("itemIdentifier").and_then(Value::as_str);
            let index = id.and_then(|id| work.records.iter().position(|r| r.sequence_number == id));
            let Some(index) = index else { return Some(0) };
            lowest = Some(lowest.map_or(index, |l| l.min(index)));
        }
        lowest
    }

    /// Failed records go back to the front of their lane, split in halves
    /// (bisect) or whole, until the retry quota is used up.
    fn retry(
        &mut self,
        lane: usize,
        mut work: Work,
        function_error: bool,
        request_id: &str,
        now: u64,
        effects: &mut Vec<Effect>,
    ) {
        let label = self.cfg.label();
        if work.final_window {
            // The window's closing call failed: try it again.
            work.not_before = now + backoff(work.invokes);
            self.lanes[lane].retry.push_front(work);
            return;
        }
        if function_error && self.cfg.bisect && work.records.len() > 1 {
            let second = work.records.split_off(work.records.len() / 2);
            effects.push(Effect::Log(format!(
                "{label} bisect: {} + {} records",
                work.records.len(),
                second.len()
            )));
            let half = |records| Work {
                records,
                not_before: now,
                ..work.clone()
            };
            let (a, b) = (half(work.records.clone()), half(second));
            let l = &mut self.lanes[lane];
            l.retry.push_front(b);
            l.retry.push_front(a);
            return;
        }
        work.retries += 1;
        if self.cfg.max_retries.is_some_and(|m| work.retries > m) {
            effects.push(Effect::Log(format!(
                "{label} {} record(s) from {} dropped after {} retries",
                work.records.len(),
                work.records[0].sequence_number,
                work.retries - 1
            )));
            let response = function_error.then_some(request_id);
            self.fail(
                &work.records,
                "RetryAttemptsExhausted",
                work.invokes,
                response.map(|id| (id, function_error)),
                now,
                effects,
            );
            return;
        }
        work.not_before = now + backoff(work.retries);
        effects.push(Effect::Log(format!(
            "{label} retry {} of {} record(s) from {}",
            work.retries,
            work.records.len(),
            work.records[0].sequence_number
        )));
        self.lanes[lane].retry.push_front(work);
    }

    /// Records dropped for good: the failure record for the destination.
    fn fail(
        &self,
        records: &[Arc<StreamRecord>],
        condition: &str,
        invokes: u32,
        last: Option<(&str, bool)>,
        now: u64,
        effects: &mut Vec<Effect>,
    ) {
        effects.push(Effect::Done(records.len()));
        if self.cfg.on_failure.is_none() {
            return;
        }
        let (first, last_record) = (&records[0], &records[records.len() - 1]);
        let info = json!({
            "shardId": self.shard_id,
            "startSequenceNumber": first.sequence_number,
            "endSequenceNumber": last_record.sequence_number,
            "approximateArrivalOfFirstRecord": iso(secs_to_ms(first.arrival)),
            "approximateArrivalOfLastRecord": iso(secs_to_ms(last_record.arrival)),
            "batchSize": records.len(),
            "streamArn": self.cfg.stream_arn,
        });
        let mut record = json!({
            "requestContext": {
                "requestId": last.map(|(id, _)| id.to_string()).unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
                "functionArn": self.cfg.function_arn(),
                "condition": condition,
                "approximateInvokeCount": invokes,
            },
            "version": "1.0",
            "timestamp": iso(now),
        });
        if let Some((_, function_error)) = last {
            record["responseContext"] = json!({
                "statusCode": 200,
                "executedVersion": "$LATEST",
            });
            if function_error {
                record["responseContext"]["functionError"] = json!("Unhandled");
            }
        }
        let key = match self.cfg.kind {
            StreamKind::Kinesis => "KinesisBatchInfo",
            StreamKind::DynamoDb => "DDBStreamBatchInfo",
        };
        record[key] = info;
        effects.push(Effect::Log(format!(
            "{} on-failure: {} record(s) ({condition}) -> {}",
            self.cfg.label(),
            records.len(),
            self.cfg.on_failure.as_deref().unwrap_or_default()
        )));
        effects.push(Effect::OnFailure(record));
    }
}

/// Retry backoff: 100 ms doubling up to 5 s (Lambda backs off too; locally
/// short so a developer sees retries quickly).
fn backoff(attempt: u32) -> u64 {
    (100u64 << attempt.saturating_sub(1).min(6)).min(5_000)
}

/// ms since the epoch as `2026-11-30T04:05:00.123Z`.
pub fn iso(ms: u64) -> String {
    let secs = ms / 1000;
    let (y, m, d) = civil(secs / 86_400);
    let t = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        t / 3600,
        t / 60 % 60,
        t % 60,
        ms % 1000
    )
}

fn civil(days: u64) -> (i64, u32, u32) {
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `yyyy-mm-ddThh:mm:ssZ` to seconds since the epoch.
pub fn parse_utc(s: &str) -> Option<f64> {
    let b = s.strip_suffix('Z')?;
    let (date, time) = b.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (hh, mm, ss) = (t.next()??, t.next()??, t.next()??);
    // Days from civil (the inverse of `civil`).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + hh * 3600 + mm * 60 + ss) as f64)
}

/// ms since the epoch, now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// Invokes the function synchronously with an event; `Err` means the
/// invocation could not be made (throttled, no such function): the poller
/// waits and tries the same batch again, as Lambda does.
pub type InvokeFn = Arc<dyn Fn(Bytes) -> BoxFuture<'static, Invoked> + Send + Sync>;
/// (request id, outcome), or why the invocation was not made.
pub type Invoked = Result<(String, Outcome), String>;
/// Sends a failure record to the on-failure destination.
pub type FailureFn = Arc<dyn Fn(Value) -> BoxFuture<'static, Result<(), String>> + Send + Sync>;
/// Writes one line to the watch output.
pub type LogFn = Arc<dyn Fn(&str) + Send + Sync>;

/// Counters for the trigger's status.
#[derive(Debug, Default)]
pub struct Stats {
    pub records: AtomicU64,
    pub batches: AtomicU64,
    pub in_flight: AtomicU64,
    /// Records finished (processed, or dropped after failing).
    pub done: AtomicU64,
    pub failed: AtomicU64,
    /// The most batches of one shard seen running at once.
    pub max_parallel: AtomicU64,
}

/// The async poller of one trigger: a task per shard.
pub struct Poller {
    pub cfg: Arc<PollerConfig>,
    pub log: Arc<dyn ShardLog>,
    pub invoke: InvokeFn,
    pub on_failure: FailureFn,
    pub say: LogFn,
    pub stats: Arc<Stats>,
    /// Recent outcomes, numbered, newest last (for `fire`).
    pub outcomes: Mutex<VecDeque<(u64, Value)>>,
    /// Outcomes ever recorded.
    pub outcome_total: AtomicU64,
    /// Records in the shards before the poller's starting positions.
    pub started: AtomicU64,
    /// Woken whenever records finish.
    pub progress: Notify,
}

impl Poller {
    /// Runs every shard until the returned tasks are aborted.
    pub fn start(self: &Arc<Self>) -> Vec<tokio::task::JoinHandle<()>> {
        (0..self.log.shard_ids().len())
            .map(|shard| tokio::spawn(self.clone().run_shard(shard)))
            .collect()
    }

    fn start_position(&self, shard: usize) -> usize {
        match self.cfg.starting_position {
            StartingPosition::TrimHorizon => 0,
            StartingPosition::Latest => self.log.len(shard),
            StartingPosition::AtTimestamp => {
                let ts = self.cfg.starting_timestamp.unwrap_or(0.0);
                let all = self.log.read(shard, 0, usize::MAX);
                all.iter()
                    .position(|r| r.arrival >= ts)
                    .unwrap_or(all.len())
            }
        }
    }

    async fn run_shard(self: Arc<Self>, shard: usize) {
        let shard_id = self.log.shard_ids()[shard].clone();
        let start = self.start_position(shard);
        self.started.fetch_add(start as u64, Ordering::Relaxed);
        let mut state = ShardState::new(self.cfg.clone(), &shard_id, start);
        let mut running: JoinSet<(Batch, Invoked)> = JoinSet::new();
        loop {
            let notified = self.log.notify().notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let now = now_ms();
            let new = self.log.read(shard, state.read_pos, 10_000);
            if !new.is_empty() {
                self.stats
                    .records
                    .fetch_add(new.len() as u64, Ordering::Relaxed);
                state.ingest(new, now);
            }
            let (batches, effects) = state.poll(now);
            self.apply(effects).await;
            for batch in batches {
                self.stats.batches.fetch_add(1, Ordering::Relaxed);
                self.stats.in_flight.fetch_add(1, Ordering::Relaxed);
                let parallel = state.in_flight() as u64;
                self.stats
                    .max_parallel
                    .fetch_max(parallel, Ordering::Relaxed);
                (self.say)(&format!(
                    "{} batch of {} -> {} ({}{})",
                    self.cfg.label(),
                    batch.work.records.len(),
                    self.cfg.function,
                    shard_id,
                    if self.cfg.parallelization > 1 {
                        format!(", lane {}", batch.lane)
                    } else {
                        String::new()
                    }
                ));
                let invoke = self.invoke.clone();
                let payload = Bytes::from(batch.event.to_string());
                running.spawn(async move {
                    let out = invoke(payload).await;
                    (batch, out)
                });
            }
            let deadline = state.deadline();
            let sleep = async {
                match deadline {
                    Some(d) => {
                        let wait = d.saturating_sub(now_ms()).max(1);
                        tokio::time::sleep(Duration::from_millis(wait)).await
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = &mut notified => {}
                _ = sleep => {}
                Some(joined) = running.join_next(), if !running.is_empty() => {
                    let Ok((batch, out)) = joined else { continue };
                    self.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
                    match out {
                        Ok((request_id, outcome)) => {
                            self.remember(&batch, &request_id, &outcome);
                            let effects = state.complete(batch, outcome, &request_id, now_ms());
                            self.apply(effects).await;
                        }
                        Err(refused) => {
                            // Not invoked: the same batch again shortly.
                            (self.say)(&format!("{} invoke refused ({refused}), retrying", self.cfg.label()));
                            let Batch { lane, mut work, .. } = batch;
                            work.not_before = now_ms() + 200;
                            state.requeue(lane, work);
                        }
                    }
                }
            }
        }
    }

    /// Outcomes recorded so far.
    pub fn outcome_count(&self) -> u64 {
        self.outcome_total.load(Ordering::Relaxed)
    }

    /// The outcomes recorded after the first `n`.
    pub fn outcomes_since(&self, n: u64) -> Vec<Value> {
        let o = self.outcomes.lock().unwrap();
        o.iter()
            .filter(|(i, _)| *i >= n)
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn remember(&self, batch: &Batch, request_id: &str, outcome: &Outcome) {
        let mut o = self.outcomes.lock().unwrap();
        let n = self.outcome_total.fetch_add(1, Ordering::Relaxed);
        o.push_back((n, json!({
            "requestId": request_id,
            "records": batch.work.records.len(),
            "firstSequenceNumber": batch.work.records.first().map(|r| r.sequence_number.clone()),
            "functionError": match outcome { Outcome::FunctionError { error } => Some(error.clone()), _ => None },
        })));
        while o.len() > 100 {
            o.pop_front();
        }
    }

    async fn apply(&self, effects: Vec<Effect>) {
        for e in effects {
            match e {
                Effect::Log(line) => (self.say)(&line),
                Effect::Done(n) => {
                    self.stats.done.fetch_add(n as u64, Ordering::Relaxed);
                    self.progress.notify_waiters();
                }
                Effect::OnFailure(record) => {
                    self.stats.failed.fetch_add(1, Ordering::Relaxed);
                    if let Err(e) = (self.on_failure)(record).await {
                        (self.say)(&format!(
                            "{} on-failure destination refused the record: {e}",
                            self.cfg.label()
                        ));
                    }
                }
            }
        }
    }
}

impl ShardState {
    /// A batch that could not be invoked goes back, unchanged, to its lane.
    pub fn requeue(&mut self, lane: usize, work: Work) {
        let l = &mut self.lanes[lane];
        l.busy = false;
        l.retry.push_front(work);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(f: impl FnOnce(&mut PollerConfig)) -> Arc<PollerConfig> {
        let mut c = PollerConfig {
            function: "fn".into(),
            trigger: "t".into(),
            kind: StreamKind::Kinesis,
            scope: Scope::default(),
            stream_arn: "arn:aws:kinesis:us-east-1:012345678912:stream/s".into(),
            batch_size: 10,
            window_ms: 0,
            parallelization: 1,
            bisect: false,
            max_retries: None,
            max_age_ms: None,
            tumbling_ms: None,
            report_item_failures: true,
            on_failure: Some("arn:aws:sqs:us-east-1:123456789012:dlq".into()),
            starting_position: StartingPosition::TrimHorizon,
            starting_timestamp: None,
        };
        f(&mut c);
        Arc::new(c)
    }

    fn rec(i: usize, key: &str, arrival_ms: u64) -> Arc<StreamRecord> {
        Arc::new(StreamRecord {
            sequence_number: format!("{i:056}"),
            partition_key: key.into(),
            arrival: arrival_ms as f64 / 1000.0,
            data: Bytes::from(i.to_string()),
            payload: Value::Null,
        })
    }

    fn seqs(b: &Batch) -> Vec<usize> {
        b.work
            .records
            .iter()
            .map(|r| r.sequence_number.parse().unwrap())
            .collect()
    }

    fn failures(e: &[Effect]) -> Vec<Value> {
        e.iter()
            .filter_map(|e| match e {
                Effect::OnFailure(v) => Some(v.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn batches_by_size_and_waits_for_the_window() {
        let mut s = ShardState::new(cfg(|c| c.window_ms = 1000), "shardId-0", 0);
        s.ingest((0..3).map(|i| rec(i, "k", 0)).collect(), 0);
        assert!(s.poll(500).0.is_empty(), "waits for the batching window");
        assert_eq!(s.deadline(), Some(1000));
        let (b, _) = s.poll(1000);
        assert_eq!(seqs(&b[0]), vec![0, 1, 2]);
        let mut s = ShardState::new(cfg(|c| c.window_ms = 1000), "shardId-0", 0);
        s.ingest((0..25).map(|i| rec(i, "k", 0)).collect(), 0);
        let (b, _) = s.poll(0);
        assert_eq!(
            seqs(&b[0]),
            (0..10).collect::<Vec<_>>(),
            "a full batch goes at once"
        );
        assert!(s.poll(0).0.is_empty(), "one batch per lane at a time");
        s.complete(b[0].clone(), Outcome::Success(Value::Null), "r", 1);
        assert_eq!(seqs(&s.poll(1).0[0]), (10..20).collect::<Vec<_>>());
    }

    #[test]
    fn batches_are_cut_so_the_event_as_sent_fits_the_payload_limit() {
        // Nine records of 524,287 bytes: 4.7 MB of data, 6.3 MB in base64.
        let big = |i: usize| {
            Arc::new(StreamRecord {
                data: Bytes::from(vec![b'x'; 524_287]),
                ..(*rec(i, "k", 0)).clone()
            })
        };
        for tumbling in [None, Some(60_000)] {
            let mut s = ShardState::new(
                cfg(|c| {
                    c.batch_size = 100;
                    c.tumbling_ms = tumbling;
                }),
                "shardId-000000000000",
                0,
            );
            s.ingest((0..9).map(big).collect(), 0);
            let mut sizes = Vec::new();
            for t in 0..4 {
                for b in s.poll(t).0 {
                    let bytes = b.event.to_string().len();
                    assert!(bytes <= MAX_EVENT_BYTES, "{bytes} bytes");
                    sizes.push(b.work.records.len());
                    s.complete(b, Outcome::Success(json!({})), "r", t);
                }
            }
            let want = if tumbling.is_some() {
                vec![7, 2]
            } else {
                vec![8, 1]
            };
            assert_eq!(sizes[..2], want[..], "tumbling {tumbling:?}");
        }
    }

    #[test]
    fn parallelization_runs_lanes_at_once_and_keeps_each_key_in_order() {
        let mut s = ShardState::new(cfg(|c| c.parallelization = 4), "shardId-0", 0);
        let keys: Vec<String> = (0..20).map(|k| format!("key-{k}")).collect();
        s.ingest((0..200).map(|i| rec(i, &keys[i % 20], 0)).collect(), 0);
        let mut seen: std::collections::HashMap<String, Vec<usize>> = Default::default();
        let mut max_parallel = 0;
        let mut t = 0;
        loop {
            let (batches, _) = s.poll(t);
            if batches.is_empty() {
                break;
            }
            max_parallel = max_parallel.max(s.in_flight());
            for b in batches {
                for r in &b.work.records {
                    seen.entry(r.partition_key.clone())
                        .or_default()
                        .push(r.sequence_number.parse().unwrap());
                }
                s.complete(b, Outcome::Success(Value::Null), "r", t);
            }
            t += 1;
        }
        assert!(max_parallel > 1, "several lanes of one shard ran at once");
        assert_eq!(seen.values().map(Vec::len).sum::<usize>(), 200);
        for v in seen.values() {
            assert!(v.windows(2).all(|w| w[0] < w[1]), "per-key order: {v:?}");
        }
    }

    #[test]
    fn bisect_isolates_the_poison_record_and_reports_it() {
        let mut s = ShardState::new(
            cfg(|c| {
                c.bisect = true;
                c.max_retries = Some(1);
                c.batch_size = 8;
            }),
            "shardId-000000000000",
            0,
        );
        s.ingest((0..8).map(|i| rec(i, "k", 0)).collect(), 0);
        let poison = 5;
        let mut sizes = Vec::new();
        let mut reports = Vec::new();
        let mut ok = Vec::new();
        let mut t = 0;
        for _ in 0..100 {
            let (batches, e) = s.poll(t);
            reports.extend(failures(&e));
            for b in batches {
                sizes.push(b.work.records.len());
                let out = if seqs(&b).contains(&poison) {
                    Outcome::FunctionError {
                        error: "Unhandled".into(),
                    }
                } else {
                    ok.extend(seqs(&b));
                    Outcome::Success(Value::Null)
                };
                reports.extend(failures(&s.complete(b, out, "req-1", t)));
            }
            t += 10_000;
        }
        // 8 -> 4+4 -> (4 ok) 2+2 -> 1+1 -> the poison once more (1 retry) -> 2 ok.
        assert_eq!(sizes, vec![8, 4, 4, 2, 1, 1, 1, 2]);
        assert_eq!(ok, vec![0, 1, 2, 3, 4, 6, 7]);
        assert_eq!(reports.len(), 1);
        let r = &reports[0];
        assert_eq!(r["requestContext"]["condition"], "RetryAttemptsExhausted");
        assert_eq!(r["requestContext"]["approximateInvokeCount"], 5);
        assert_eq!(r["responseContext"]["functionError"], "Unhandled");
        assert_eq!(r["KinesisBatchInfo"]["batchSize"], 1);
        assert_eq!(
            r["KinesisBatchInfo"]["startSequenceNumber"],
            format!("{poison:056}")
        );
        assert_eq!(r["KinesisBatchInfo"]["shardId"], "shardId-000000000000");
    }

    #[test]
    fn retries_back_off_and_stop_at_the_quota_without_bisect() {
        let mut s = ShardState::new(cfg(|c| c.max_retries = Some(2)), "shardId-0", 0);
        s.ingest((0..3).map(|i| rec(i, "k", 0)).collect(), 0);
        let err = || Outcome::FunctionError {
            error: "Unhandled".into(),
        };
        let b = s.poll(0).0.remove(0);
        s.complete(b, err(), "r", 0);
        assert!(s.poll(50).0.is_empty(), "backoff");
        let b = s.poll(100).0.remove(0);
        assert_eq!(seqs(&b), vec![0, 1, 2], "the whole batch again");
        s.complete(b, err(), "r", 100);
        let b = s.poll(10_000).0.remove(0);
        let e = s.complete(b, err(), "r", 10_000);
        assert_eq!(failures(&e).len(), 1);
        assert_eq!(s.backlog(), 0);
        assert!(e.contains(&Effect::Done(3)));
    }

    #[test]
    fn records_older_than_the_maximum_age_are_dropped_to_the_destination() {
        let mut s = ShardState::new(cfg(|c| c.max_age_ms = Some(60_000)), "shardId-0", 0);
        s.ingest(vec![rec(0, "k", 0), rec(1, "k", 50_000)], 0);
        let b = s.poll(0).0.remove(0);
        s.complete(
            b,
            Outcome::FunctionError {
                error: "Unhandled".into(),
            },
            "r",
            0,
        );
        let (b, e) = s.poll(70_000);
        let f = failures(&e);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0]["requestContext"]["condition"], "RecordAgeExceeded");
        assert_eq!(f[0]["KinesisBatchInfo"]["batchSize"], 1);
        assert_eq!(seqs(&b[0]), vec![1], "the young record is retried");
    }

    #[test]
    fn report_batch_item_failures_checkpoints_before_the_lowest_failure() {
        let mut s = ShardState::new(cfg(|_| {}), "shardId-0", 0);
        s.ingest((0..6).map(|i| rec(i, "k", 0)).collect(), 0);
        let b = s.poll(0).0.remove(0);
        let body = json!({"batchItemFailures": [
            {"itemIdentifier": format!("{:056}", 4)},
            {"itemIdentifier": format!("{:056}", 2)},
        ]});
        let e = s.complete(b, Outcome::Success(body), "r", 0);
        assert!(e.contains(&Effect::Done(2)));
        let b = s.poll(1000).0.remove(0);
        assert_eq!(seqs(&b), vec![2, 3, 4, 5]);
        // An unknown identifier fails the whole batch.
        let body = json!({"batchItemFailures": [{"itemIdentifier": "nope"}]});
        s.complete(b, Outcome::Success(body), "r", 1000);
        let b = s.poll(100_000).0.remove(0);
        assert_eq!(seqs(&b), vec![2, 3, 4, 5]);
        let e = s.complete(
            b,
            Outcome::Success(json!({"batchItemFailures": []})),
            "r",
            0,
        );
        assert!(e.contains(&Effect::Done(4)));
    }

    #[test]
    fn tumbling_windows_carry_state_and_close_with_a_final_invoke() {
        let mut s = ShardState::new(cfg(|c| c.tumbling_ms = Some(30_000)), "shardId-0", 0);
        s.ingest(vec![rec(0, "k", 1_000), rec(1, "k", 2_000)], 2_000);
        let b = s.poll(2_000).0.remove(0);
        assert_eq!(b.event["state"], json!({}));
        assert_eq!(b.event["isFinalInvokeForWindow"], false);
        assert_eq!(b.event["window"]["start"], "1970-01-01T00:00:00.000Z");
        assert_eq!(b.event["window"]["end"], "1970-01-01T00:00:30.000Z");
        s.complete(
            b,
            Outcome::Success(json!({"state": {"sum": 1}})),
            "r",
            2_000,
        );
        s.ingest(vec![rec(2, "k", 3_000), rec(3, "k", 31_000)], 31_000);
        let b = s.poll(31_000).0.remove(0);
        assert_eq!(seqs(&b), vec![2], "a batch never spans two windows");
        assert_eq!(b.event["state"], json!({"sum": 1}));
        s.complete(
            b,
            Outcome::Success(json!({"state": {"sum": 3}})),
            "r",
            31_000,
        );
        let b = s.poll(31_000).0.remove(0);
        assert!(b.work.records.is_empty());
        assert_eq!(b.event["isFinalInvokeForWindow"], true);
        assert_eq!(b.event["state"], json!({"sum": 3}));
        s.complete(b, Outcome::Success(json!({})), "r", 31_000);
        let b = s.poll(31_000).0.remove(0);
        assert_eq!(seqs(&b), vec![3]);
        assert_eq!(b.event["state"], json!({}), "a new window starts empty");
        assert_eq!(b.event["window"]["start"], "1970-01-01T00:00:30.000Z");
    }

    #[test]
    fn a_state_over_1_mb_ends_the_window_early() {
        let mut s = ShardState::new(cfg(|c| c.tumbling_ms = Some(30_000)), "shardId-0", 0);
        s.ingest(vec![rec(0, "k", 1_000), rec(1, "k", 2_000)], 2_000);
        let b = s.poll(2_000).0.remove(0);
        let big = json!({"state": {"big": "x".repeat(MAX_WINDOW_STATE)}});
        s.complete(b, Outcome::Success(big), "r", 2_000);
        s.ingest(vec![rec(2, "k", 3_000)], 3_000);
        let b = s.poll(3_000).0.remove(0);
        assert!(
            b.work.records.is_empty(),
            "the window closes before record 2"
        );
        assert_eq!(b.event["isFinalInvokeForWindow"], true);
        assert_eq!(b.event["isWindowTerminatedEarly"], true);
        s.complete(b, Outcome::Success(json!({})), "r", 3_000);
        let b = s.poll(3_000).0.remove(0);
        assert_eq!(seqs(&b), vec![2]);
        assert_eq!(b.event["state"], json!({}));
    }

    #[test]
    fn events_deserialize_with_aws_lambda_events() {
        let mut s = ShardState::new(cfg(|c| c.tumbling_ms = Some(60_000)), "shardId-0", 0);
        s.ingest(vec![rec(0, "k", 1_700_000_000_000)], 0);
        let b = s.poll(0).0.remove(0);
        let e: aws_lambda_events::event::kinesis::KinesisTimeWindowEvent =
            serde_json::from_value(b.event.clone()).unwrap();
        assert_eq!(e.kinesis_event.records.len(), 1);
        assert_eq!(e.kinesis_event.records[0].kinesis.data.0, b"0".to_vec());
        let mut s = ShardState::new(cfg(|_| {}), "shardId-0", 0);
        s.ingest(vec![rec(7, "k", 1_700_000_000_987)], 0);
        let b = s.poll(0).0.remove(0);
        let e: aws_lambda_events::event::kinesis::KinesisEvent =
            serde_json::from_value(b.event).unwrap();
        assert_eq!(e.records[0].kinesis.partition_key, "k");
    }

    #[test]
    fn time_helpers_round_trip() {
        assert_eq!(iso(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(parse_utc("2023-11-14T22:13:20Z"), Some(1_700_000_000.0));
        assert_eq!(parse_utc("2023-11-14"), None);
    }
}
