//! The local Kinesis Data Streams endpoint: an in-memory store of streams
//! and shards, served as AWS JSON 1.1 (`X-Amz-Target: Kinesis_20131202.*`)
//! so unmodified SDKs and the AWS CLI can produce to it and read from it.
//!
//! Shards split the 128-bit hash-key space evenly; a record's shard is the
//! one whose range holds the MD5 of its partition key (or its
//! `ExplicitHashKey`). Sequence numbers are fixed-width decimal strings that
//! grow per shard, so comparing them as strings compares them as numbers.
//! Records stay for the life of the process (no retention clock). Shard
//! iterators expire after 5 minutes, as AWS's do: the store's operations
//! take the time ([`KinesisStore::dispatch_at`]) so tests drive that clock.
//! Streams live in the emulator's account and region ([`Scope`]).
//!
//! This module owns the store and the wire shapes; it knows nothing of
//! triggers or the poller (which reads shards through [`ShardLog`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use md5::{Digest, Md5};
use serde_json::{Value, json};
use tokio::sync::Notify;

use super::stream_poller::{ShardLog, StreamRecord};
use super::{AwsError, JsonService, Scope};

/// A record's data blob, at most 1 MiB (AWS's limit).
pub const MAX_DATA: usize = 1024 * 1024;
/// Records per `PutRecords` call.
pub const MAX_PUT_RECORDS: usize = 500;
/// A `PutRecords` request's data and partition keys together.
pub const MAX_PUT_RECORDS_BYTES: usize = 5 * 1024 * 1024;
/// How long a shard iterator stays valid (AWS: 5 minutes).
pub const ITERATOR_TTL_MS: u64 = 5 * 60 * 1000;
/// Shards per stream accepted locally (AWS's default account quota is 500
/// in most regions; a local stream needs far fewer).
pub const MAX_SHARDS: u32 = 64;

/// All streams of the endpoint.
#[derive(Default)]
pub struct KinesisStore {
    scope: Scope,
    streams: Mutex<BTreeMap<String, Arc<Stream>>>,
}

/// One stream: fixed shards (no resharding locally).
pub struct Stream {
    pub name: String,
    pub arn: String,
    created: f64,
    shards: Vec<Shard>,
    /// Woken on every append: pollers wait on it instead of polling.
    appended: Notify,
}

struct Shard {
    id: String,
    start: u128,
    end: u128,
    records: Mutex<Vec<Arc<StreamRecord>>>,
}

/// Seconds since the epoch to the millisecond, as AWS writes arrival
/// times (`1545084650.987`; more digits break `aws_lambda_events`).
pub fn now_secs() -> f64 {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    ms as f64 / 1000.0
}

/// The `i`th of `n` even hash-key ranges over 0..2^128, as AWS splits them.
pub fn hash_range(i: u32, n: u32) -> (u128, u128) {
    let start = |i: u32| -> u128 {
        if i == 0 {
            return 0;
        }
        // floor(2^128 * i / n) without overflowing: 2^128 = MAX + 1.
        let (q, r) = (u128::MAX / n as u128, u128::MAX % n as u128);
        q * i as u128 + (r * i as u128 + i as u128) / n as u128
    };
    let end = if i + 1 == n {
        u128::MAX
    } else {
        start(i + 1) - 1
    };
    (start(i), end)
}

/// The 128-bit hash key of a partition key (MD5, big-endian).
pub fn partition_hash(key: &str) -> u128 {
    u128::from_be_bytes(Md5::digest(key.as_bytes()).into())
}

/// A fixed-width (56-digit) sequence number: shard index, then position.
fn sequence_number(shard: usize, position: usize) -> String {
    format!("49{shard:04}{position:050}")
}

/// The (shard index, position) a sequence number encodes.
fn decode_sequence(seq: &str) -> Option<(usize, usize)> {
    if seq.len() != 56 || !seq.starts_with("49") || !seq.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((seq[2..6].parse().ok()?, seq[6..].parse().ok()?))
}

impl Stream {
    fn new(name: &str, shards: u32, arn: String) -> Stream {
        Stream {
            name: name.to_string(),
            arn,
            created: now_secs(),
            shards: (0..shards)
                .map(|i| {
                    let (start, end) = hash_range(i, shards);
                    Shard {
                        id: format!("shardId-{i:012}"),
                        start,
                        end,
                        records: Mutex::new(Vec::new()),
                    }
                })
                .collect(),
            appended: Notify::new(),
        }
    }

    /// Appends one record; returns (shard id, sequence number).
    pub fn put(&self, partition_key: &str, hash: u128, data: Bytes) -> (String, String) {
        let index = self
            .shards
            .iter()
            .position(|s| s.start <= hash && hash <= s.end)
            .unwrap_or(0);
        let shard = &self.shards[index];
        let mut records = shard.records.lock().unwrap();
        let seq = sequence_number(index, records.len());
        records.push(Arc::new(StreamRecord {
            sequence_number: seq.clone(),
            partition_key: partition_key.to_string(),
            arrival: now_secs(),
            data,
            payload: Value::Null,
        }));
        drop(records);
        self.appended.notify_waiters();
        (shard.id.clone(), seq)
    }

    fn shard_json(&self, index: usize) -> Value {
        let s = &self.shards[index];
        json!({
            "ShardId": s.id,
            "HashKeyRange": {
                "StartingHashKey": s.start.to_string(),
                "EndingHashKey": s.end.to_string(),
            },
            "SequenceNumberRange": {"StartingSequenceNumber": sequence_number(index, 0)},
        })
    }

    fn shard_index(&self, id: &str) -> Option<usize> {
        self.shards.iter().position(|s| s.id == id)
    }
}

impl ShardLog for Stream {
    fn shard_ids(&self) -> Vec<String> {
        self.shards.iter().map(|s| s.id.clone()).collect()
    }
    fn len(&self, shard: usize) -> usize {
        self.shards[shard].records.lock().unwrap().len()
    }
    fn read(&self, shard: usize, from: usize, max: usize) -> Vec<Arc<StreamRecord>> {
        let records = self.shards[shard].records.lock().unwrap();
        records.iter().skip(from).take(max).cloned().collect()
    }
    fn notify(&self) -> &Notify {
        &self.appended
    }
}

fn err(status: u16, code: &str, message: impl Into<String>) -> AwsError {
    AwsError::new(status, code, message)
}

fn invalid(message: impl Into<String>) -> AwsError {
    err(400, "InvalidArgumentException", message)
}

fn validation(message: impl Into<String>) -> AwsError {
    err(400, "ValidationException", message)
}

fn string<'a>(input: &'a Value, key: &str) -> Option<&'a str> {
    input.get(key).and_then(Value::as_str)
}

impl KinesisStore {
    /// A store whose streams live in `scope`.
    pub fn new(scope: Scope) -> Self {
        KinesisStore {
            scope,
            streams: Mutex::default(),
        }
    }

    /// The account and region of the streams.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// The ARN of the local stream `name`.
    pub fn stream_arn(&self, name: &str) -> String {
        self.scope.arn("kinesis", &format!("stream/{name}"))
    }

    /// Creates a stream (idempotent for the streams triggers name).
    pub fn ensure(&self, name: &str, shards: u32) -> Arc<Stream> {
        self.streams
            .lock()
            .unwrap()
            .entry(name.to_string())
            .or_insert_with(|| Arc::new(Stream::new(name, shards, self.stream_arn(name))))
            .clone()
    }

    fn not_found(&self, name: &str) -> AwsError {
        err(
            400,
            "ResourceNotFoundException",
            format!(
                "Stream {name} under account {} not found.",
                self.scope.account
            ),
        )
    }

    pub fn get(&self, name: &str) -> Option<Arc<Stream>> {
        self.streams.lock().unwrap().get(name).cloned()
    }

    /// The stream an input names by `StreamName` or `StreamARN`.
    fn stream(&self, input: &Value) -> Result<Arc<Stream>, AwsError> {
        let name = match (string(input, "StreamName"), string(input, "StreamARN")) {
            (Some(n), _) => n.to_string(),
            (None, Some(arn)) => arn.rsplit('/').next().unwrap_or(arn).to_string(),
            (None, None) => {
                return Err(validation("Either StreamName or StreamARN must be given."));
            }
        };
        self.get(&name).ok_or_else(|| self.not_found(&name))
    }

    fn create(&self, input: &Value) -> Result<Value, AwsError> {
        let name =
            string(input, "StreamName").ok_or_else(|| validation("StreamName is required."))?;
        if name.is_empty()
            || name.len() > 128
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        {
            return Err(validation(format!(
                "1 validation error detected: Value '{name}' at 'streamName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+"
            )));
        }
        let shards = input.get("ShardCount").and_then(Value::as_u64).unwrap_or(4);
        if shards == 0 || shards > MAX_SHARDS as u64 {
            return Err(invalid(format!(
                "ShardCount {shards} is out of range: 1-{MAX_SHARDS} shards locally"
            )));
        }
        let mut streams = self.streams.lock().unwrap();
        if streams.contains_key(name) {
            return Err(err(
                400,
                "ResourceInUseException",
                format!(
                    "Stream {name} under account {} already exists.",
                    self.scope.account
                ),
            ));
        }
        let arn = self.stream_arn(name);
        streams.insert(
            name.to_string(),
            Arc::new(Stream::new(name, shards as u32, arn)),
        );
        Ok(json!({}))
    }

    fn summary(s: &Stream) -> Value {
        json!({
            "StreamName": s.name,
            "StreamARN": s.arn,
            "StreamStatus": "ACTIVE",
            "StreamModeDetails": {"StreamMode": "PROVISIONED"},
            "StreamCreationTimestamp": s.created,
        })
    }

    fn describe(&self, input: &Value) -> Result<Value, AwsError> {
        let s = self.stream(input)?;
        let mut d = Self::summary(&s);
        d["Shards"] = (0..s.shards.len()).map(|i| s.shard_json(i)).collect();
        d["HasMoreShards"] = json!(false);
        d["RetentionPeriodHours"] = json!(24);
        d["EnhancedMonitoring"] = json!([{"ShardLevelMetrics": []}]);
        d["EncryptionType"] = json!("NONE");
        Ok(json!({ "StreamDescription": d }))
    }

    fn describe_summary(&self, input: &Value) -> Result<Value, AwsError> {
        let s = self.stream(input)?;
        let mut d = Self::summary(&s);
        d["RetentionPeriodHours"] = json!(24);
        d["EnhancedMonitoring"] = json!([{"ShardLevelMetrics": []}]);
        d["EncryptionType"] = json!("NONE");
        d["OpenShardCount"] = json!(s.shards.len());
        d["ConsumerCount"] = json!(0);
        Ok(json!({ "StreamDescriptionSummary": d }))
    }

    fn list_streams(&self) -> Value {
        let streams = self.streams.lock().unwrap();
        json!({
            "StreamNames": streams.keys().collect::<Vec<_>>(),
            "HasMoreStreams": false,
            "StreamSummaries": streams.values().map(|s| Self::summary(s)).collect::<Vec<_>>(),
        })
    }

    fn list_shards(&self, input: &Value) -> Result<Value, AwsError> {
        let s = self.stream(input)?;
        Ok(json!({"Shards": (0..s.shards.len()).map(|i| s.shard_json(i)).collect::<Vec<_>>()}))
    }

    /// Checks and decodes one record of `PutRecord(s)`.
    fn entry(input: &Value, at: &str) -> Result<(String, u128, Bytes), AwsError> {
        let data =
            string(input, "Data").ok_or_else(|| validation(format!("{at}Data is required.")))?;
        let data = base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|_| validation(format!("{at}Data is not valid base64.")))?;
        if data.len() > MAX_DATA {
            return Err(validation(format!(
                "1 validation error detected: Value at '{at}data' failed to satisfy constraint: Member must have length less than or equal to {MAX_DATA}"
            )));
        }
        let key = string(input, "PartitionKey")
            .ok_or_else(|| validation(format!("{at}PartitionKey is required.")))?;
        if key.is_empty() || key.chars().count() > 256 {
            return Err(validation(format!(
                "1 validation error detected: Value '{key}' at '{at}partitionKey' failed to satisfy constraint: Member must have length between 1 and 256"
            )));
        }
        let hash = match string(input, "ExplicitHashKey") {
            None => partition_hash(key),
            Some(h) => h.parse::<u128>().map_err(|_| {
                invalid(format!(
                    "Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, 2^128-1]. Specified value was {h}"
                ))
            })?,
        };
        Ok((key.to_string(), hash, Bytes::from(data)))
    }

    fn put_record(&self, input: &Value) -> Result<Value, AwsError> {
        let s = self.stream(input)?;
        let (key, hash, data) = Self::entry(input, "")?;
        let (shard, seq) = s.put(&key, hash, data);
        Ok(json!({"ShardId": shard, "SequenceNumber": seq, "EncryptionType": "NONE"}))
    }

    fn put_records(&self, input: &Value) -> Result<Value, AwsError> {
        let s = self.stream(input)?;
        let records = input
            .get("Records")
            .and_then(Value::as_array)
            .ok_or_else(|| validation("Records is required."))?;
        if records.is_empty() || records.len() > MAX_PUT_RECORDS {
            return Err(validation(format!(
                "1 validation error detected: Value at 'records' failed to satisfy constraint: Member must have length {} {MAX_PUT_RECORDS}",
                if records.is_empty() {
                    "greater than or equal to 1; and less than or equal to"
                } else {
                    "less than or equal to"
                }
            )));
        }
        // Validate everything first: a bad request writes nothing.
        let mut entries = Vec::with_capacity(records.len());
        let mut total = 0;
        for (i, r) in records.iter().enumerate() {
            let e = Self::entry(r, &format!("records.{}.member.", i + 1))?;
            total += e.0.len() + e.2.len();
            entries.push(e);
        }
        if total > MAX_PUT_RECORDS_BYTES {
            return Err(invalid("Records size exceeds 5 MB limit"));
        }
        let out: Vec<Value> = entries
            .into_iter()
            .map(|(key, hash, data)| {
                let (shard, seq) = s.put(&key, hash, data);
                json!({"ShardId": shard, "SequenceNumber": seq})
            })
            .collect();
        Ok(json!({"FailedRecordCount": 0, "Records": out, "EncryptionType": "NONE"}))
    }

    fn get_shard_iterator(&self, input: &Value, now: u64) -> Result<Value, AwsError> {
        let s = self.stream(input)?;
        let shard_id = string(input, "ShardId").unwrap_or_default();
        let index = s.shard_index(shard_id).ok_or_else(|| {
            err(
                400,
                "ResourceNotFoundException",
                format!(
                    "Shard {shard_id} in stream {} under account {} does not exist",
                    s.name, self.scope.account
                ),
            )
        })?;
        let position = match string(input, "ShardIteratorType").unwrap_or_default() {
            "TRIM_HORIZON" => 0,
            "LATEST" => s.len(index),
            "AT_SEQUENCE_NUMBER" => self.issued_position(&s, index, input)?,
            "AFTER_SEQUENCE_NUMBER" => {
                // After the shard's starting number of an empty shard: its start.
                (self.issued_position(&s, index, input)? + 1).min(s.len(index))
            }
            "AT_TIMESTAMP" => {
                let ts = input
                    .get("Timestamp")
                    .and_then(Value::as_f64)
                    .unwrap_or(0.0);
                let records = s.shards[index].records.lock().unwrap();
                records
                    .iter()
                    .position(|r| r.arrival >= ts)
                    .unwrap_or(records.len())
            }
            other => {
                return Err(validation(format!(
                    "1 validation error detected: Value '{other}' at 'shardIteratorType' failed to satisfy constraint: Member must satisfy enum value set: [AFTER_SEQUENCE_NUMBER, AT_SEQUENCE_NUMBER, AT_TIMESTAMP, TRIM_HORIZON, LATEST]"
                )));
            }
        };
        Ok(json!({"ShardIterator": iterator(&s.name, index, position, now)}))
    }

    /// The position of `StartingSequenceNumber` in shard `index`: a number
    /// this shard issued, or its starting number. Anything else (another
    /// shard's, one never issued) is AWS's `InvalidArgumentException`.
    fn issued_position(&self, s: &Stream, index: usize, input: &Value) -> Result<usize, AwsError> {
        let seq = string(input, "StartingSequenceNumber").unwrap_or_default();
        let shard_id = &s.shards[index].id;
        let (shard, position) = decode_sequence(seq).ok_or_else(|| {
            invalid(format!(
                "Invalid StartingSequenceNumber. It must be a sequence number this stream issued, got '{seq}'"
            ))
        })?;
        if shard != index {
            return Err(invalid(format!(
                "Invalid StartingSequenceNumber. It encodes shardId-{shard:012}, while it was used in a call to {shard_id}"
            )));
        }
        if position >= s.len(index) && position != 0 {
            return Err(invalid(format!(
                "StartingSequenceNumber {seq} used in GetShardIterator on shard {shard_id} in stream {} under account {} is invalid because it did not come from this stream.",
                s.name, self.scope.account
            )));
        }
        Ok(position)
    }

    fn get_records(&self, input: &Value, now: u64) -> Result<Value, AwsError> {
        let it = string(input, "ShardIterator").unwrap_or_default();
        let bad = || invalid(format!("Invalid ShardIterator: {it}"));
        let (name, index, position, created) = parse_iterator(it).ok_or_else(bad)?;
        if now.saturating_sub(created) > ITERATOR_TTL_MS {
            return Err(err(
                400,
                "ExpiredIteratorException",
                format!(
                    "Iterator expired. The iterator was created at time {} while right now it is {} which is further in the future than the tolerated delay of {ITERATOR_TTL_MS} milliseconds.",
                    super::stream_poller::iso(created),
                    super::stream_poller::iso(now)
                ),
            ));
        }
        let s = self.get(&name).ok_or_else(|| self.not_found(&name))?;
        // A shard or position this endpoint never handed out.
        if index >= s.shards.len() || position > s.len(index) {
            return Err(bad());
        }
        let limit = input.get("Limit").and_then(Value::as_u64).unwrap_or(10_000);
        if !(1..=10_000).contains(&limit) {
            return Err(validation(format!(
                "1 validation error detected: Value '{limit}' at 'limit' failed to satisfy constraint: Member must have value between 1 and 10000"
            )));
        }
        let records = s.read(index, position, limit as usize);
        let next = position + records.len();
        let behind = s.len(index).saturating_sub(next);
        let b64 = base64::engine::general_purpose::STANDARD;
        Ok(json!({
            "Records": records.iter().map(|r| json!({
                "SequenceNumber": r.sequence_number,
                "ApproximateArrivalTimestamp": r.arrival,
                "Data": b64.encode(&r.data),
                "PartitionKey": r.partition_key,
            })).collect::<Vec<_>>(),
            "NextShardIterator": iterator(&s.name, index, next, now),
            "MillisBehindLatest": if behind == 0 { 0 } else { 1000 },
        }))
    }

    /// Runs `operation` now.
    pub fn dispatch(&self, operation: &str, input: &Value) -> Result<Value, AwsError> {
        self.dispatch_at(operation, input, super::stream_poller::now_ms())
    }

    /// Runs `operation` at time `now` (ms since the epoch).
    pub fn dispatch_at(&self, operation: &str, input: &Value, now: u64) -> Result<Value, AwsError> {
        match operation {
            "CreateStream" => self.create(input),
            "DescribeStream" => self.describe(input),
            "DescribeStreamSummary" => self.describe_summary(input),
            "ListStreams" => Ok(self.list_streams()),
            "ListShards" => self.list_shards(input),
            "PutRecord" => self.put_record(input),
            "PutRecords" => self.put_records(input),
            "GetShardIterator" => self.get_shard_iterator(input, now),
            "GetRecords" => self.get_records(input, now),
            other => Err(err(
                400,
                "UnknownOperationException",
                format!("The local Kinesis endpoint does not implement {other}"),
            )),
        }
    }
}

/// A shard iterator: the stream, shard and position to read next, and when
/// it was handed out (for its 5-minute expiry).
fn iterator(stream: &str, shard: usize, position: usize, created: u64) -> String {
    base64::engine::general_purpose::STANDARD
        .encode(format!("{stream}\n{shard}\n{position}\n{created}"))
}

fn parse_iterator(it: &str) -> Option<(String, usize, usize, u64)> {
    let raw = base64::engine::general_purpose::STANDARD.decode(it).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let mut parts = text.split('\n');
    let (name, shard, pos, created) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    Some((
        name.to_string(),
        shard.parse().ok()?,
        pos.parse().ok()?,
        created.parse().ok()?,
    ))
}

/// The endpoint: a [`KinesisStore`] behind the JSON-service hook.
#[derive(Clone, Default)]
pub struct KinesisService(pub Arc<KinesisStore>);

impl KinesisService {
    /// An endpoint whose streams live in `scope`.
    pub fn new(scope: Scope) -> Self {
        KinesisService(Arc::new(KinesisStore::new(scope)))
    }
}

impl JsonService for KinesisService {
    fn target_prefix(&self) -> &'static str {
        "Kinesis_20131202"
    }

    /// A body too large to read is over Kinesis's own limits: its error
    /// for the operation, as if the body had been read.
    fn too_large(&self, operation: &str) -> AwsError {
        match operation {
            "PutRecord" => validation(format!(
                "1 validation error detected: Value at 'data' failed to satisfy constraint: Member must have length less than or equal to {MAX_DATA}"
            )),
            "PutRecords" => invalid(format!(
                "Records size exceeds {} MB limit",
                MAX_PUT_RECORDS_BYTES >> 20
            )),
            other => validation(format!(
                "The {other} request is larger than Kinesis accepts"
            )),
        }
    }

    fn call(&self, operation: &str, input: Value) -> BoxFuture<'_, Result<Value, AwsError>> {
        let out = self.0.dispatch(operation, &input);
        Box::pin(async move { out })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn shards_split_the_hash_space_as_aws_does() {
        assert_eq!(hash_range(0, 1), (0, u128::MAX));
        let (a, b) = (hash_range(0, 2), hash_range(1, 2));
        assert_eq!(a.1.to_string(), "170141183460469231731687303715884105727");
        assert_eq!(b.0.to_string(), "170141183460469231731687303715884105728");
        assert_eq!(b.1, u128::MAX);
        assert_eq!(
            hash_range(1, 3).0.to_string(),
            "113427455640312821154458202477256070485"
        );
        for n in 1..20 {
            for i in 0..n - 1 {
                assert_eq!(hash_range(i, n).1 + 1, hash_range(i + 1, n).0);
            }
        }
    }

    #[test]
    fn partition_key_md5_picks_the_shard_and_explicit_hash_overrides() {
        let store = KinesisStore::default();
        store.ensure("s", 4);
        // MD5("a") = 0cc175b9...: the first quarter.
        let out = store
            .dispatch(
                "PutRecord",
                &json!({"StreamName": "s", "Data": b64("x"), "PartitionKey": "a"}),
            )
            .unwrap();
        assert_eq!(out["ShardId"], "shardId-000000000000");
        let out = store
            .dispatch(
                "PutRecord",
                &json!({"StreamName": "s", "Data": b64("x"), "PartitionKey": "a",
                        "ExplicitHashKey": u128::MAX.to_string()}),
            )
            .unwrap();
        assert_eq!(out["ShardId"], "shardId-000000000003");
    }

    #[test]
    fn sequence_numbers_grow_per_shard_and_iterators_read_in_order() {
        let store = KinesisStore::default();
        store.ensure("s", 1);
        let mut seqs = Vec::new();
        for i in 0..12 {
            let out = store
                .dispatch(
                    "PutRecord",
                    &json!({"StreamName": "s", "Data": b64(&i.to_string()), "PartitionKey": "k"}),
                )
                .unwrap();
            seqs.push(out["SequenceNumber"].as_str().unwrap().to_string());
        }
        assert!(seqs.windows(2).all(|w| w[0] < w[1]));
        let it = store
            .dispatch(
                "GetShardIterator",
                &json!({"StreamName": "s", "ShardId": "shardId-000000000000",
                        "ShardIteratorType": "AFTER_SEQUENCE_NUMBER",
                        "StartingSequenceNumber": seqs[9]}),
            )
            .unwrap();
        let out = store
            .dispatch(
                "GetRecords",
                &json!({"ShardIterator": it["ShardIterator"], "Limit": 5}),
            )
            .unwrap();
        let got: Vec<&str> = out["Records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["SequenceNumber"].as_str().unwrap())
            .collect();
        assert_eq!(got, vec![seqs[10].as_str(), seqs[11].as_str()]);
    }

    #[test]
    fn unissued_or_foreign_sequence_numbers_are_refused_and_iterators_expire_after_five_minutes() {
        let store = KinesisStore::default();
        store.ensure("s", 2);
        let t0 = 1_700_000_000_000;
        let put = |hash: &str| {
            store
                .dispatch_at(
                    "PutRecord",
                    &json!({"StreamName": "s", "Data": b64("x"), "PartitionKey": "k",
                            "ExplicitHashKey": hash}),
                    t0,
                )
                .unwrap()["SequenceNumber"]
                .as_str()
                .unwrap()
                .to_string()
        };
        let seq0 = put("0");
        let iterator = |kind: &str, shard: &str, seq: &str| {
            store.dispatch_at(
                "GetShardIterator",
                &json!({"StreamName": "s", "ShardId": shard, "ShardIteratorType": kind,
                        "StartingSequenceNumber": seq}),
                t0,
            )
        };
        // Never issued (past the end of shard 0), or shard 0's used on shard 1.
        let never = format!("49{:04}{:050}", 0, 7);
        for kind in ["AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER"] {
            let e = iterator(kind, "shardId-000000000000", &never).unwrap_err();
            assert_eq!(
                (e.status, e.code.as_str()),
                (400, "InvalidArgumentException")
            );
            assert!(e.message.contains("did not come from this stream"), "{e}");
            let e = iterator(kind, "shardId-000000000001", &seq0).unwrap_err();
            assert_eq!(e.code, "InvalidArgumentException");
            assert!(e.message.contains("encodes shardId-000000000000"), "{e}");
        }
        // An empty shard's starting number is valid (DescribeStream gives it).
        let start = format!("49{:04}{:050}", 1, 0);
        let it = iterator("AFTER_SEQUENCE_NUMBER", "shardId-000000000001", &start).unwrap();
        let read = |it: &Value, now| {
            store.dispatch_at(
                "GetRecords",
                &json!({"ShardIterator": it["ShardIterator"]}),
                now,
            )
        };
        assert_eq!(read(&it, t0).unwrap()["Records"], json!([]));
        // After the last record: nothing yet, no panic.
        let it = iterator("AFTER_SEQUENCE_NUMBER", "shardId-000000000000", &seq0).unwrap();
        let out = read(&it, t0 + ITERATOR_TTL_MS).unwrap();
        assert_eq!(out["Records"], json!([]));
        assert_eq!(out["MillisBehindLatest"], 0);
        // Five minutes and a millisecond later the iterator is expired; the
        // next one handed out is fresh.
        let e = read(&it, t0 + ITERATOR_TTL_MS + 1).unwrap_err();
        assert_eq!(
            (e.status, e.code.as_str()),
            (400, "ExpiredIteratorException")
        );
        let next = json!({"ShardIterator": out["NextShardIterator"]});
        assert!(read(&next, t0 + 2 * ITERATOR_TTL_MS).is_ok());
        // A forged iterator past the shard's end is refused, not a panic.
        let forged = super::iterator("s", 0, 99, t0);
        let e = read(&json!({"ShardIterator": forged}), t0).unwrap_err();
        assert_eq!(e.code, "InvalidArgumentException");
    }

    #[test]
    fn streams_live_in_the_scope_they_are_given() {
        let store = KinesisStore::new(Scope::new("eu-west-1"));
        store.ensure("clicks", 1);
        let d = store
            .dispatch("DescribeStream", &json!({"StreamName": "clicks"}))
            .unwrap();
        assert_eq!(
            d["StreamDescription"]["StreamARN"],
            "arn:aws:kinesis:eu-west-1:012345678912:stream/clicks"
        );
        let e = store
            .dispatch("DescribeStream", &json!({"StreamName": "nope"}))
            .unwrap_err();
        assert!(e.message.contains("under account 012345678912"), "{e}");
    }

    #[test]
    fn limits_answer_with_aws_errors_and_write_nothing() {
        let store = KinesisStore::default();
        let s = store.ensure("s", 1);
        let big = base64::engine::general_purpose::STANDARD.encode(vec![0u8; MAX_DATA + 1]);
        let e = store
            .dispatch(
                "PutRecord",
                &json!({"StreamName": "s", "Data": big, "PartitionKey": "k"}),
            )
            .unwrap_err();
        assert_eq!(e.code, "ValidationException");
        let many: Vec<Value> = (0..501)
            .map(|_| json!({"Data": b64("x"), "PartitionKey": "k"}))
            .collect();
        let e = store
            .dispatch("PutRecords", &json!({"StreamName": "s", "Records": many}))
            .unwrap_err();
        assert_eq!(e.code, "ValidationException");
        let bad = vec![
            json!({"Data": b64("x"), "PartitionKey": "k"}),
            json!({"Data": b64("x"), "PartitionKey": ""}),
        ];
        assert!(
            store
                .dispatch("PutRecords", &json!({"StreamName": "s", "Records": bad}))
                .is_err()
        );
        assert_eq!(s.len(0), 0);
        let e = store
            .dispatch("DescribeStream", &json!({"StreamName": "nope"}))
            .unwrap_err();
        assert_eq!(e.code, "ResourceNotFoundException");
    }
}
