//! The local SQS service: queues in memory, served on the emulator's
//! address with the AWS JSON protocol (awsJson1_0, `X-Amz-Target:
//! AmazonSQS.<Operation>`) that current AWS SDKs and the AWS CLI speak.
//!
//! [`Store`] is the queue model (visibility, receive counts, FIFO groups and
//! deduplication, redrive to a dead-letter queue, retention), a plain data
//! structure whose every operation takes the time (`now`, epoch ms), so
//! tests drive it with their own clock. [`SqsService`] puts it behind a
//! lock, adds long polling, and turns JSON requests into model calls and
//! model errors into AWS's error shapes. Limits are those of the SQS API
//! reference; messages are at most 1 MiB (AWS's current limit).
//!
//! It knows nothing of functions or pollers: the SQS poller
//! (`sqs_poller`) uses the same public operations as an SDK client.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use futures_util::future::BoxFuture;
use md5::{Digest, Md5};
use serde_json::{Map, Value, json};

use super::{AwsError, JsonService, Scope};
use crate::emulator::LOCAL_ACCOUNT_ID;

/// Longest message (body plus attributes), and `MaximumMessageSize`'s range.
pub const MAX_MESSAGE: u32 = 1_048_576;
const MIN_MESSAGE: u32 = 1_024;
/// Entries of one batch request.
pub const MAX_BATCH: usize = 10;
/// Messages of one ReceiveMessage.
const MAX_RECEIVE: usize = 10;
/// Longest visibility timeout: 12 hours.
pub const MAX_VISIBILITY: u32 = 43_200;
/// FIFO deduplication interval.
const DEDUP_WINDOW_MS: u64 = 5 * 60 * 1000;
/// Message attributes per message.
const MAX_ATTRIBUTES: usize = 10;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// Errors of the SQS model: `__type` is `com.amazonaws.sqs#<shape>`, and
/// `x-amzn-query-error` carries the query protocol's code.
fn sqs_error(shape: &str, query_code: &str, message: impl Into<String>) -> AwsError {
    AwsError::new(400, format!("com.amazonaws.sqs#{shape}"), message)
        .with_query_error(format!("{query_code};Sender"))
}

fn no_queue() -> AwsError {
    sqs_error(
        "QueueDoesNotExist",
        "AWS.SimpleQueueService.NonExistentQueue",
        "The specified queue does not exist.",
    )
}

fn invalid(message: impl Into<String>) -> AwsError {
    sqs_error(
        "InvalidParameterValueException",
        "InvalidParameterValue",
        message,
    )
}

fn missing(parameter: &str) -> AwsError {
    sqs_error(
        "MissingParameterException",
        "MissingParameter",
        format!("The request must contain the parameter {parameter}."),
    )
}

/// A member of the wrong JSON type: SQS's JSON protocol answers as the
/// other AWS JSON services do.
fn serialization(message: impl Into<String>) -> AwsError {
    AwsError::new(
        400,
        "com.amazon.coral.service#SerializationException",
        message,
    )
}

/// An integer member: `None` when absent; another JSON type (`"ten"`, a
/// fraction) is a `SerializationException`, as SQS answers it.
fn int_param(input: &Value, key: &str) -> Result<Option<i64>, AwsError> {
    match &input[key] {
        Value::Null => Ok(None),
        Value::Number(n) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| serialization("NUMBER_VALUE can not be converted to an Integer")),
        Value::String(_) => Err(serialization(
            "STRING_VALUE can not be converted to an Integer",
        )),
        Value::Bool(_) => Err(serialization(
            "BOOLEAN_VALUE can not be converted to an Integer",
        )),
        Value::Array(_) => Err(serialization("Unexpected list element termination")),
        Value::Object(_) => Err(serialization(
            "Start of structure or map found where not expected.",
        )),
    }
}

/// An integer member within `range`, else SQS's `InvalidParameterValue`.
fn ranged(
    input: &Value,
    key: &str,
    range: std::ops::RangeInclusive<i64>,
) -> Result<Option<i64>, AwsError> {
    match int_param(input, key)? {
        Some(v) if !range.contains(&v) => Err(invalid(format!(
            "Value {v} for parameter {key} is invalid. Reason: Must be >= {} and <= {}, if provided.",
            range.start(),
            range.end()
        ))),
        v => Ok(v),
    }
}

fn bad_handle() -> AwsError {
    sqs_error(
        "ReceiptHandleIsInvalid",
        "ReceiptHandleIsInvalid",
        "The input receipt handle is invalid.",
    )
}

/// The redrive policy of a queue: where messages go after `max_receive_count` receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redrive {
    pub dlq_arn: String,
    pub max_receive_count: u32,
}

impl Redrive {
    fn parse(text: &str) -> Result<Redrive, AwsError> {
        let bad = || {
            sqs_error(
                "InvalidAttributeValue",
                "InvalidAttributeValue",
                format!(
                    "Invalid value for the parameter RedrivePolicy. Reason: Redrive policy is not a valid JSON map with deadLetterTargetArn and maxReceiveCount: {text}"
                ),
            )
        };
        let v: Value = serde_json::from_str(text).map_err(|_| bad())?;
        let dlq_arn = v["deadLetterTargetArn"]
            .as_str()
            .ok_or_else(bad)?
            .to_string();
        let max = match &v["maxReceiveCount"] {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        }
        .filter(|n| (1..=1000).contains(n))
        .ok_or_else(|| {
            sqs_error(
                "InvalidAttributeValue",
                "InvalidAttributeValue",
                "Value for parameter RedrivePolicy is invalid. Reason: Invalid value for maxReceiveCount: must be an integer from 1 to 1000.",
            )
        })?;
        Ok(Redrive {
            dlq_arn,
            max_receive_count: max as u32,
        })
    }
}

/// One message in a queue.
#[derive(Debug, Clone)]
pub struct Message {
    pub id: String,
    pub body: String,
    pub md5_body: String,
    /// Message attributes as sent (`{"DataType", "StringValue"|"BinaryValue"}`).
    pub attributes: BTreeMap<String, Value>,
    /// `AWSTraceHeader`, the one settable system attribute.
    pub trace_header: Option<String>,
    pub sent: u64,
    /// Hidden (delayed or in flight) until this time.
    pub visible_at: u64,
    pub receive_count: u32,
    pub first_receive: Option<u64>,
    /// The receipt handle of the latest receive.
    pub receipt: Option<String>,
    pub group: Option<String>,
    pub dedup_id: Option<String>,
    pub sequence: Option<String>,
    /// Set when the message was moved here from a source queue.
    pub dlq_source: Option<String>,
}

impl Message {
    fn in_flight(&self, now: u64) -> bool {
        self.receipt.is_some() && self.visible_at > now
    }
}

/// A queue's attributes that the model acts on, plus the others as set.
#[derive(Debug, Clone)]
pub struct Queue {
    pub name: String,
    pub arn: String,
    pub fifo: bool,
    pub visibility_timeout: u32,
    pub delay: u32,
    pub max_size: u32,
    pub retention: u32,
    pub wait: u32,
    pub content_dedup: bool,
    pub redrive: Option<Redrive>,
    /// Attributes kept as given (Policy, KMS, RedrivePolicy text, ...).
    pub other: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
    pub created: u64,
    pub modified: u64,
    pub messages: Vec<Message>,
    dedup: HashMap<String, (u64, String, Option<String>)>,
}

/// What SendMessage hands in.
#[derive(Debug, Clone, Default)]
pub struct Outgoing {
    pub body: String,
    pub delay: Option<u32>,
    pub attributes: BTreeMap<String, Value>,
    pub trace_header: Option<String>,
    pub group: Option<String>,
    pub dedup_id: Option<String>,
}

/// What SendMessage answers.
#[derive(Debug, Clone)]
pub struct Sent {
    pub id: String,
    pub md5_body: String,
    pub md5_attributes: Option<String>,
    pub sequence: Option<String>,
}

/// One received message (a copy, with its new receipt handle).
#[derive(Debug, Clone)]
pub struct Received {
    pub message: Message,
    pub receipt: String,
}

/// Messages a receive moved to the dead-letter queue: `(message id, dlq name)`.
pub type Redriven = Vec<(String, String)>;

/// Every queue of one run.
#[derive(Debug)]
pub struct Store {
    endpoint: String,
    scope: Scope,
    queues: BTreeMap<String, Queue>,
    next_sequence: u64,
}

fn valid_queue_name(name: &str) -> bool {
    let base = name.strip_suffix(".fifo").unwrap_or(name);
    !name.is_empty()
        && name.len() <= 80
        && !base.is_empty()
        && base
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Characters SQS accepts in a message (the XML character set).
fn valid_message_char(c: char) -> bool {
    matches!(c, '\u{9}' | '\u{A}' | '\u{D}' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

/// `MD5OfMessageAttributes`: per attribute, sorted by name, the name, the
/// data type (each with a 4-byte big-endian length), a transport byte (1
/// string/number, 2 binary) and the value with its length.
pub fn md5_of_attributes(attributes: &BTreeMap<String, Value>) -> Option<String> {
    if attributes.is_empty() {
        return None;
    }
    fn field(hash: &mut Md5, bytes: &[u8]) {
        hash.update((bytes.len() as u32).to_be_bytes());
        hash.update(bytes);
    }
    let mut hash = Md5::new();
    for (name, value) in attributes {
        field(&mut hash, name.as_bytes());
        field(
            &mut hash,
            value["DataType"].as_str().unwrap_or_default().as_bytes(),
        );
        if let Some(s) = value["StringValue"].as_str() {
            hash.update([1u8]);
            field(&mut hash, s.as_bytes());
        } else {
            let raw = value["BinaryValue"].as_str().unwrap_or_default();
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(raw)
                .unwrap_or_default();
            hash.update([2u8]);
            field(&mut hash, &decoded);
        }
    }
    Some(hex(&hash.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn md5_hex(text: &str) -> String {
    hex(&Md5::digest(text.as_bytes()))
}

/// Size of a message as SQS counts it: body, attribute names, types and values.
fn message_size(body: &str, attributes: &BTreeMap<String, Value>) -> usize {
    body.len()
        + attributes
            .iter()
            .map(|(k, v)| {
                k.len()
                    + v["DataType"].as_str().map_or(0, str::len)
                    + v["StringValue"].as_str().map_or(0, str::len)
                    + v["BinaryValue"].as_str().map_or(0, |b| b.len() * 3 / 4)
            })
            .sum::<usize>()
}

fn check_attributes(attributes: &BTreeMap<String, Value>) -> Result<(), AwsError> {
    if attributes.len() > MAX_ATTRIBUTES {
        return Err(invalid(format!(
            "Number of message attributes [{}] exceeds the allowed maximum [{MAX_ATTRIBUTES}].",
            attributes.len()
        )));
    }
    for (name, value) in attributes {
        let lower = name.to_ascii_lowercase();
        if name.is_empty()
            || name.len() > 256
            || name.starts_with('.')
            || name.ends_with('.')
            || name.contains("..")
            || lower.starts_with("aws.")
            || lower.starts_with("amazon.")
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            return Err(invalid(format!(
                "Message (user) attribute '{name}' is invalid: names are 1-256 of A-Z a-z 0-9 _ - ., not starting or ending with a period, without two periods in a row, not starting with AWS. or Amazon."
            )));
        }
        let data_type = value["DataType"].as_str().unwrap_or_default();
        let base = data_type.split('.').next().unwrap_or_default();
        if !matches!(base, "String" | "Number" | "Binary") {
            return Err(invalid(format!(
                "The message attribute '{name}' has an invalid message attribute type, the set of supported type prefixes is Binary, Number, and String."
            )));
        }
        let has_value = if base == "Binary" {
            value["BinaryValue"].as_str().is_some_and(|s| !s.is_empty())
        } else {
            value["StringValue"].as_str().is_some_and(|s| !s.is_empty())
        };
        if !has_value {
            return Err(invalid(format!(
                "The message attribute '{name}' must contain non-empty message attribute value for message attribute type '{base}'."
            )));
        }
    }
    Ok(())
}

fn parse_u32(
    attribute: &str,
    value: &str,
    range: std::ops::RangeInclusive<u32>,
) -> Result<u32, AwsError> {
    value
        .parse::<u32>()
        .ok()
        .filter(|v| range.contains(v))
        .ok_or_else(|| {
            sqs_error(
                "InvalidAttributeValue",
                "InvalidAttributeValue",
                format!(
                    "Invalid value for the parameter {attribute}: {value} (allowed: {} to {})",
                    range.start(),
                    range.end()
                ),
            )
        })
}

impl Queue {
    fn new(store: &Store, name: &str, now: u64) -> Queue {
        Queue {
            name: name.to_string(),
            arn: store.scope.arn("sqs", name),
            fifo: name.ends_with(".fifo"),
            visibility_timeout: 30,
            delay: 0,
            max_size: MAX_MESSAGE,
            retention: 345_600,
            wait: 0,
            content_dedup: false,
            redrive: None,
            other: BTreeMap::new(),
            tags: BTreeMap::new(),
            created: now,
            modified: now,
            messages: Vec::new(),
            dedup: HashMap::new(),
        }
    }

    /// Sets attributes after checking all of them (nothing half-set).
    fn set(
        &mut self,
        attributes: &BTreeMap<String, String>,
        creating: bool,
        now: u64,
    ) -> Result<(), AwsError> {
        let mut next = self.clone();
        for (key, value) in attributes {
            match key.as_str() {
                "VisibilityTimeout" => {
                    next.visibility_timeout = parse_u32(key, value, 0..=MAX_VISIBILITY)?
                }
                "DelaySeconds" => next.delay = parse_u32(key, value, 0..=900)?,
                "MaximumMessageSize" => {
                    next.max_size = parse_u32(key, value, MIN_MESSAGE..=MAX_MESSAGE)?
                }
                "MessageRetentionPeriod" => next.retention = parse_u32(key, value, 60..=1_209_600)?,
                "ReceiveMessageWaitTimeSeconds" => next.wait = parse_u32(key, value, 0..=20)?,
                "RedrivePolicy" => {
                    next.redrive = if value.is_empty() {
                        None
                    } else {
                        Some(Redrive::parse(value)?)
                    };
                }
                "FifoQueue" => {
                    let fifo = value == "true";
                    if !creating && fifo != self.fifo {
                        return Err(sqs_error(
                            "InvalidAttributeName",
                            "InvalidAttributeName",
                            "Unknown Attribute FifoQueue.",
                        ));
                    }
                    if fifo != self.name.ends_with(".fifo") || (value != "true" && value != "false")
                    {
                        return Err(sqs_error(
                            "InvalidAttributeValue",
                            "InvalidAttributeValue",
                            "Invalid value for the parameter FifoQueue. Reason: The name of a FIFO queue can only include alphanumeric characters, hyphens, or underscores, must end with .fifo suffix and be 1 to 80 in length.",
                        ));
                    }
                }
                "ContentBasedDeduplication" => {
                    if !self.fifo {
                        return Err(sqs_error(
                            "InvalidAttributeName",
                            "InvalidAttributeName",
                            "Unknown Attribute ContentBasedDeduplication.",
                        ));
                    }
                    next.content_dedup = value == "true";
                }
                "Policy"
                | "KmsMasterKeyId"
                | "KmsDataKeyReusePeriodSeconds"
                | "SqsManagedSseEnabled"
                | "RedriveAllowPolicy" => {
                    next.other.insert(key.clone(), value.clone());
                }
                "DeduplicationScope" | "FifoThroughputLimit" if self.fifo => {
                    next.other.insert(key.clone(), value.clone());
                }
                other => {
                    return Err(sqs_error(
                        "InvalidAttributeName",
                        "InvalidAttributeName",
                        format!("Unknown Attribute {other}."),
                    ));
                }
            }
        }
        if let Some(text) = attributes.get("RedrivePolicy").filter(|t| !t.is_empty()) {
            next.other.insert("RedrivePolicy".into(), text.clone());
        } else if attributes.contains_key("RedrivePolicy") {
            next.other.remove("RedrivePolicy");
        }
        next.modified = now;
        *self = next;
        Ok(())
    }

    /// The attributes GetQueueAttributes reports.
    pub fn attributes(&self, now: u64) -> BTreeMap<String, String> {
        let visible = self.messages.iter().filter(|m| m.visible_at <= now).count();
        let in_flight = self.messages.iter().filter(|m| m.in_flight(now)).count();
        let delayed = self
            .messages
            .iter()
            .filter(|m| m.receipt.is_none() && m.visible_at > now)
            .count();
        let mut a = BTreeMap::new();
        a.insert("QueueArn".into(), self.arn.clone());
        a.insert("ApproximateNumberOfMessages".into(), visible.to_string());
        a.insert(
            "ApproximateNumberOfMessagesNotVisible".into(),
            in_flight.to_string(),
        );
        a.insert(
            "ApproximateNumberOfMessagesDelayed".into(),
            delayed.to_string(),
        );
        a.insert("CreatedTimestamp".into(), (self.created / 1000).to_string());
        a.insert(
            "LastModifiedTimestamp".into(),
            (self.modified / 1000).to_string(),
        );
        a.insert(
            "VisibilityTimeout".into(),
            self.visibility_timeout.to_string(),
        );
        a.insert("MaximumMessageSize".into(), self.max_size.to_string());
        a.insert("MessageRetentionPeriod".into(), self.retention.to_string());
        a.insert("DelaySeconds".into(), self.delay.to_string());
        a.insert(
            "ReceiveMessageWaitTimeSeconds".into(),
            self.wait.to_string(),
        );
        a.insert("SqsManagedSseEnabled".into(), "false".into());
        if self.fifo {
            a.insert("FifoQueue".into(), "true".into());
            a.insert(
                "ContentBasedDeduplication".into(),
                self.content_dedup.to_string(),
            );
            a.insert("DeduplicationScope".into(), "queue".into());
            a.insert("FifoThroughputLimit".into(), "perQueue".into());
        }
        a.extend(self.other.clone());
        a
    }

    /// Drops messages older than the retention period and expired dedup ids.
    fn expire(&mut self, now: u64) {
        let limit = u64::from(self.retention) * 1000;
        self.messages.retain(|m| now.saturating_sub(m.sent) < limit);
        self.dedup.retain(|_, (until, _, _)| *until > now);
    }
}

/// The name in a queue URL (`http://host/account/name`) or ARN.
fn name_of(url: &str) -> &str {
    url.trim_end_matches('/')
        .rsplit(['/', ':'])
        .next()
        .unwrap_or(url)
}

impl Store {
    pub fn new(endpoint: &str, region: &str) -> Store {
        Store {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            scope: Scope::new(region),
            queues: BTreeMap::new(),
            next_sequence: 1,
        }
    }

    pub fn url(&self, name: &str) -> String {
        format!("{}/{}/{name}", self.endpoint, self.scope.account)
    }

    pub fn queue(&self, url: &str) -> Result<&Queue, AwsError> {
        self.queues.get(name_of(url)).ok_or_else(no_queue)
    }

    fn queue_mut(&mut self, url: &str) -> Result<&mut Queue, AwsError> {
        self.queues.get_mut(name_of(url)).ok_or_else(no_queue)
    }

    /// CreateQueue: the URL; an existing queue with other attributes is an error.
    pub fn create(
        &mut self,
        name: &str,
        attributes: &BTreeMap<String, String>,
        tags: BTreeMap<String, String>,
        now: u64,
    ) -> Result<String, AwsError> {
        if !valid_queue_name(name) {
            return Err(invalid(format!(
                "Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length (a FIFO queue's name ends with .fifo): '{name}'"
            )));
        }
        if name.ends_with(".fifo")
            && attributes.get("FifoQueue").map(String::as_str) != Some("true")
        {
            return Err(sqs_error(
                "InvalidAttributeValue",
                "InvalidAttributeValue",
                "Invalid value for the parameter FifoQueue. Reason: A FIFO queue's name ends with .fifo and it is created with the attribute FifoQueue=true.",
            ));
        }
        if let Some(q) = self.queues.get(name) {
            let current = q.attributes(now);
            let differs = attributes.iter().any(|(k, v)| current.get(k) != Some(v));
            if differs {
                return Err(sqs_error(
                    "QueueNameExists",
                    "QueueAlreadyExists",
                    format!(
                        "A queue already exists with the same name and a different value for attribute(s) {}",
                        attributes.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
            return Ok(self.url(name));
        }
        let mut q = Queue::new(self, name, now);
        q.set(attributes, true, now)?;
        q.tags = tags;
        self.queues.insert(name.to_string(), q);
        Ok(self.url(name))
    }

    /// Creates `name` with defaults unless it exists (queues named by triggers).
    pub fn ensure(&mut self, name: &str, now: u64) -> Result<String, AwsError> {
        if self.queues.contains_key(name) {
            return Ok(self.url(name));
        }
        let mut attributes = BTreeMap::new();
        if name.ends_with(".fifo") {
            attributes.insert("FifoQueue".to_string(), "true".to_string());
        }
        self.create(name, &attributes, BTreeMap::new(), now)
    }

    pub fn delete_queue(&mut self, url: &str) -> Result<(), AwsError> {
        self.queues
            .remove(name_of(url))
            .map(|_| ())
            .ok_or_else(no_queue)
    }

    pub fn list(&self, prefix: &str) -> Vec<String> {
        self.queues
            .keys()
            .filter(|n| n.starts_with(prefix))
            .map(|n| self.url(n))
            .collect()
    }

    pub fn set_attributes(
        &mut self,
        url: &str,
        attributes: &BTreeMap<String, String>,
        now: u64,
    ) -> Result<(), AwsError> {
        self.queue_mut(url)?.set(attributes, false, now)
    }

    pub fn purge(&mut self, url: &str) -> Result<(), AwsError> {
        self.queue_mut(url)?.messages.clear();
        Ok(())
    }

    /// SendMessage.
    pub fn send(&mut self, url: &str, m: Outgoing, now: u64) -> Result<Sent, AwsError> {
        let sequence_no = self.next_sequence;
        let q = self.queue_mut(url)?;
        q.expire(now);
        if m.body.is_empty() {
            return Err(missing("MessageBody"));
        }
        if let Some(c) = m.body.chars().find(|c| !valid_message_char(*c)) {
            return Err(sqs_error(
                "InvalidMessageContents",
                "InvalidMessageContents",
                format!(
                    "Invalid characters found. Deleted message body contains U+{:04X}, which is not allowed.",
                    c as u32
                ),
            ));
        }
        check_attributes(&m.attributes)?;
        let size = message_size(&m.body, &m.attributes);
        if size > q.max_size as usize {
            return Err(invalid(format!(
                "One or more parameters are invalid. Reason: Message must be shorter than {} bytes.",
                q.max_size
            )));
        }
        if let Some(d) = m.delay {
            if q.fifo {
                return Err(invalid(format!(
                    "Value {d} for parameter DelaySeconds is invalid. Reason: The request include parameter that is not valid for this queue type."
                )));
            }
            if d > 900 {
                return Err(invalid(format!(
                    "Value {d} for parameter DelaySeconds is invalid. Reason: DelaySeconds must be >= 0 and <= 900."
                )));
            }
        }
        for (field, value) in [
            ("MessageGroupId", &m.group),
            ("MessageDeduplicationId", &m.dedup_id),
        ] {
            if let Some(v) = value
                && (v.is_empty() || v.len() > 128 || !v.chars().all(|c| c.is_ascii_graphic()))
            {
                return Err(invalid(format!(
                    "Value {v} for parameter {field} is invalid. Reason: 1 to 128 of alphanumeric characters and punctuation."
                )));
            }
        }
        let md5_body = md5_hex(&m.body);
        let md5_attributes = md5_of_attributes(&m.attributes);
        let mut sequence = None;
        let mut dedup_id = None;
        if q.fifo {
            if m.group.is_none() {
                return Err(missing("MessageGroupId"));
            }
            let key = match (&m.dedup_id, q.content_dedup) {
                (Some(id), _) => id.clone(),
                (None, true) => {
                    use sha2::Digest as _;
                    hex(&sha2::Sha256::digest(m.body.as_bytes()))
                }
                (None, false) => {
                    return Err(invalid(
                        "The queue should either have ContentBasedDeduplication enabled or MessageDeduplicationId provided explicitly",
                    ));
                }
            };
            if let Some((_, id, seq)) = q.dedup.get(&key) {
                // A duplicate within 5 minutes: accepted, not enqueued again.
                return Ok(Sent {
                    id: id.clone(),
                    md5_body,
                    md5_attributes,
                    sequence: seq.clone(),
                });
            }
            sequence = Some(format!(
                "{:020}",
                18_000_000_000_000_000_000u128 + u128::from(sequence_no)
            ));
            dedup_id = Some(key);
        } else if m.dedup_id.is_some() {
            return Err(invalid(
                "Value for parameter MessageDeduplicationId is invalid. Reason: The request include parameter that is not valid for this queue type.",
            ));
        }
        let id = uuid::Uuid::new_v4().to_string();
        if let Some(key) = &dedup_id {
            q.dedup.insert(
                key.clone(),
                (now + DEDUP_WINDOW_MS, id.clone(), sequence.clone()),
            );
        }
        let delay = m.delay.unwrap_or(q.delay);
        q.messages.push(Message {
            id: id.clone(),
            body: m.body,
            md5_body: md5_body.clone(),
            attributes: m.attributes,
            trace_header: m.trace_header,
            sent: now,
            visible_at: now + u64::from(delay) * 1000,
            receive_count: 0,
            first_receive: None,
            receipt: None,
            group: m.group,
            dedup_id,
            sequence: sequence.clone(),
            dlq_source: None,
        });
        self.next_sequence += 1;
        Ok(Sent {
            id,
            md5_body,
            md5_attributes,
            sequence,
        })
    }

    /// ReceiveMessage: up to `max` visible messages, hidden for
    /// `visibility` seconds (the queue's when `None`). A message received
    /// `maxReceiveCount` times already goes to the dead-letter queue instead.
    /// In a FIFO queue a group with a message in flight gives nothing, and
    /// a group's messages come in order.
    pub fn receive(
        &mut self,
        url: &str,
        max: usize,
        visibility: Option<u32>,
        now: u64,
    ) -> Result<(Vec<Received>, Redriven), AwsError> {
        self.receive_fitting(url, max, visibility, now, &mut |_| true)
    }

    /// [`receive`](Self::receive) that stops at the first message `fits`
    /// refuses (it sees each message as it would be received): that one and
    /// the rest stay as they were, visible and uncounted. A poller fills an
    /// event up to Lambda's payload limit this way.
    pub fn receive_fitting(
        &mut self,
        url: &str,
        max: usize,
        visibility: Option<u32>,
        now: u64,
        fits: &mut dyn FnMut(&Received) -> bool,
    ) -> Result<(Vec<Received>, Redriven), AwsError> {
        let name = name_of(url).to_string();
        let (dlq, mut moved) = {
            let q = self.queues.get_mut(&name).ok_or_else(no_queue)?;
            q.expire(now);
            let vis = u64::from(visibility.unwrap_or(q.visibility_timeout)) * 1000;
            let redrive = q.redrive.clone();
            let fifo = q.fifo;
            let mut blocked: std::collections::HashSet<String> = std::collections::HashSet::new();
            if fifo {
                for m in &q.messages {
                    if m.visible_at > now
                        && let Some(g) = &m.group
                    {
                        blocked.insert(g.clone());
                    }
                }
            }
            let mut out = Vec::new();
            let mut moved = Vec::new();
            for (i, m) in q.messages.iter_mut().enumerate() {
                if out.len() >= max {
                    break;
                }
                if m.visible_at > now {
                    continue;
                }
                if fifo && m.group.as_ref().is_some_and(|g| blocked.contains(g)) {
                    continue;
                }
                if let Some(r) = &redrive
                    && m.receive_count >= r.max_receive_count
                {
                    moved.push(i);
                    continue;
                }
                let receipt = receipt_handle(&name, &m.id);
                let mut next = m.clone();
                next.receive_count += 1;
                next.first_receive.get_or_insert(now);
                next.receipt = Some(receipt.clone());
                next.visible_at = now + vis;
                let received = Received {
                    message: next.clone(),
                    receipt,
                };
                if !fits(&received) {
                    break;
                }
                *m = next;
                out.push(received);
            }
            let dlq = redrive.map(|r| name_of(&r.dlq_arn).to_string());
            let mut taken = Vec::new();
            for i in moved.into_iter().rev() {
                taken.push(q.messages.remove(i));
            }
            taken.reverse();
            let arn = q.arn.clone();
            for m in &mut taken {
                m.dlq_source = Some(arn.clone());
            }
            (dlq, (taken, out))
        };
        let (taken, out) = std::mem::take(&mut moved);
        let mut redriven = Vec::new();
        if !taken.is_empty() {
            let dlq_name = dlq.unwrap_or_default();
            match self.queues.get_mut(&dlq_name) {
                Some(d) => {
                    for mut m in taken {
                        redriven.push((m.id.clone(), dlq_name.clone()));
                        m.receipt = None;
                        m.visible_at = now;
                        d.messages.push(m);
                    }
                }
                // No dead-letter queue: the messages stay where they were.
                None => {
                    if let Some(q) = self.queues.get_mut(&name) {
                        q.messages.extend(taken);
                        q.messages.sort_by_key(|m| m.sent);
                    }
                }
            }
        }
        Ok((out, redriven))
    }

    /// DeleteMessage: any receipt handle of the message deletes it (a
    /// message already deleted is not an error, as in SQS).
    pub fn delete(&mut self, url: &str, receipt: &str) -> Result<(), AwsError> {
        let q = self.queue_mut(url)?;
        let id = message_of(receipt).ok_or_else(bad_handle)?;
        q.messages.retain(|m| m.id != id);
        Ok(())
    }

    /// ChangeMessageVisibility: the message must be in flight.
    pub fn change_visibility(
        &mut self,
        url: &str,
        receipt: &str,
        timeout: u32,
        now: u64,
    ) -> Result<(), AwsError> {
        if timeout > MAX_VISIBILITY {
            return Err(invalid(format!(
                "Value {timeout} for parameter VisibilityTimeout is invalid. Reason: Must be between 0 and {MAX_VISIBILITY}."
            )));
        }
        let q = self.queue_mut(url)?;
        let id = message_of(receipt).ok_or_else(bad_handle)?;
        let m = q
            .messages
            .iter_mut()
            .find(|m| m.id == id && m.in_flight(now))
            .ok_or_else(|| {
                sqs_error(
                    "MessageNotInflight",
                    "AWS.SimpleQueueService.MessageNotInflight",
                    "The message referred to isn't in flight.",
                )
            })?;
        m.visible_at = now + u64::from(timeout) * 1000;
        Ok(())
    }

    pub fn names(&self) -> Vec<String> {
        self.queues.keys().cloned().collect()
    }
}

/// A receipt handle: base64 of queue, message id and a nonce.
fn receipt_handle(queue: &str, id: &str) -> String {
    let raw = format!("{queue}\n{id}\n{}", uuid::Uuid::new_v4().simple());
    base64::engine::general_purpose::STANDARD.encode(raw)
}

fn message_of(receipt: &str) -> Option<String> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(receipt)
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let mut parts = text.split('\n');
    let (_queue, id, _nonce) = (parts.next()?, parts.next()?, parts.next()?);
    Some(id.to_string())
}

/// The local SQS service: a [`Store`] behind a lock, long polling, JSON.
pub struct SqsService {
    store: Mutex<Store>,
    /// Woken on every change that may make a message receivable.
    changed: tokio::sync::Notify,
}

impl SqsService {
    pub fn new(endpoint: &str, scope: &Scope) -> Arc<SqsService> {
        Arc::new(SqsService {
            store: Mutex::new(Store::new(endpoint, &scope.region)),
            changed: tokio::sync::Notify::new(),
        })
    }

    /// Runs `f` on the store (with the current time).
    pub fn with<T>(&self, f: impl FnOnce(&mut Store, u64) -> T) -> T {
        let out = f(&mut self.store.lock().expect("sqs store"), now_ms());
        self.changed.notify_waiters();
        out
    }

    /// Receives up to `max` messages, waiting up to `wait` for the first.
    pub async fn receive(
        &self,
        url: &str,
        max: usize,
        visibility: Option<u32>,
        wait: Duration,
    ) -> Result<(Vec<Received>, Redriven), AwsError> {
        self.receive_fitting(url, max, visibility, wait, &mut |_| true)
            .await
    }

    /// [`receive`](Self::receive) of the messages `fits` accepts
    /// ([`Store::receive_fitting`]).
    pub async fn receive_fitting(
        &self,
        url: &str,
        max: usize,
        visibility: Option<u32>,
        wait: Duration,
        fits: &mut (dyn FnMut(&Received) -> bool + Send),
    ) -> Result<(Vec<Received>, Redriven), AwsError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            // A refused message ends the wait too: the caller is full.
            let mut refused = false;
            let got = self.store.lock().expect("sqs store").receive_fitting(
                url,
                max,
                visibility,
                now_ms(),
                &mut |r| {
                    let ok = fits(r);
                    refused |= !ok;
                    ok
                },
            )?;
            let now = tokio::time::Instant::now();
            if refused || !got.0.is_empty() || !got.1.is_empty() || now >= deadline {
                return Ok(got);
            }
            // Woken by a change, or soon anyway (a visibility timeout or delay ending).
            let nap = (deadline - now).min(Duration::from_millis(100));
            tokio::select! {
                _ = changed => {}
                _ = tokio::time::sleep(nap) => {}
            }
        }
    }

    async fn operation(&self, op: &str, input: Value) -> Result<Value, AwsError> {
        let s = |key: &str| input[key].as_str().map(str::to_string);
        let url = || s("QueueUrl").ok_or_else(|| missing("QueueUrl"));
        match op {
            "CreateQueue" => {
                let name = s("QueueName").ok_or_else(|| missing("QueueName"))?;
                let attributes = string_map(&input["Attributes"])?;
                let tags = string_map(&input["tags"])?;
                let url = self.with(|st, now| st.create(&name, &attributes, tags, now))?;
                Ok(json!({ "QueueUrl": url }))
            }
            "GetQueueUrl" => {
                let name = s("QueueName").ok_or_else(|| missing("QueueName"))?;
                self.with(|st, _| st.queue(&name).map(|q| st.url(&q.name)))
                    .map(|url| json!({ "QueueUrl": url }))
            }
            "ListQueues" => {
                let prefix = s("QueueNamePrefix").unwrap_or_default();
                let max = ranged(&input, "MaxResults", 1..=1000)?.map(|m| m as u64);
                let mut urls = self.with(|st, _| st.list(&prefix));
                let start = s("NextToken")
                    .and_then(|t| t.parse::<usize>().ok())
                    .unwrap_or(0);
                urls = urls.split_off(start.min(urls.len()));
                let mut out = Map::new();
                match max {
                    Some(m) if urls.len() > m as usize => {
                        urls.truncate(m as usize);
                        out.insert("NextToken".into(), (start + m as usize).to_string().into());
                    }
                    // Without MaxResults SQS lists at most 1,000.
                    None => urls.truncate(1000),
                    _ => {}
                }
                if !urls.is_empty() {
                    out.insert("QueueUrls".into(), json!(urls));
                }
                Ok(Value::Object(out))
            }
            "DeleteQueue" => {
                let url = url()?;
                self.with(|st, _| st.delete_queue(&url))?;
                Ok(json!({}))
            }
            "PurgeQueue" => {
                let url = url()?;
                self.with(|st, _| st.purge(&url))?;
                Ok(json!({}))
            }
            "GetQueueAttributes" => {
                let url = url()?;
                let names: Vec<String> = input["AttributeNames"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                let all = self.with(|st, now| st.queue(&url).map(|q| q.attributes(now)))?;
                let mut out = Map::new();
                for n in &names {
                    if n == "All" {
                        out.extend(all.iter().map(|(k, v)| (k.clone(), Value::from(v.clone()))));
                    } else if let Some(v) = all.get(n) {
                        out.insert(n.clone(), v.clone().into());
                    } else if !KNOWN_QUEUE_ATTRIBUTES.contains(&n.as_str()) {
                        return Err(sqs_error(
                            "InvalidAttributeName",
                            "InvalidAttributeName",
                            format!("Unknown Attribute {n}."),
                        ));
                    }
                }
                if out.is_empty() {
                    return Ok(json!({}));
                }
                Ok(json!({ "Attributes": out }))
            }
            "SetQueueAttributes" => {
                let url = url()?;
                let attributes = string_map(&input["Attributes"])?;
                self.with(|st, now| st.set_attributes(&url, &attributes, now))?;
                Ok(json!({}))
            }
            "SendMessage" => {
                let url = url()?;
                let m = outgoing(&input)?;
                let sent = self.with(|st, now| st.send(&url, m, now))?;
                Ok(sent_json(&sent, None))
            }
            "SendMessageBatch" => {
                let url = url()?;
                let entries = batch_entries(&input, "SendMessageBatchRequestEntry")?;
                // As SQS counts it: every message's body and attributes.
                let total: usize = entries
                    .iter()
                    .map(|e| {
                        let body = e["MessageBody"].as_str().unwrap_or_default();
                        message_size(body, &attributes_of(e))
                    })
                    .sum();
                if total > MAX_MESSAGE as usize {
                    return Err(sqs_error(
                        "BatchRequestTooLong",
                        "AWS.SimpleQueueService.BatchRequestTooLong",
                        format!(
                            "Batch requests cannot be longer than {MAX_MESSAGE} bytes. You have sent {total} bytes."
                        ),
                    ));
                }
                self.with(|st, _| st.queue(&url).map(|_| ()))?;
                let (mut ok, mut failed) = (Vec::new(), Vec::new());
                for e in entries {
                    let id = e["Id"].as_str().unwrap_or_default().to_string();
                    let result =
                        outgoing(e).and_then(|m| self.with(|st, now| st.send(&url, m, now)));
                    match result {
                        Ok(sent) => ok.push(sent_json(&sent, Some(&id))),
                        Err(err) => failed.push(failure(&id, &err)),
                    }
                }
                Ok(json!({ "Successful": ok, "Failed": failed }))
            }
            "ReceiveMessage" => {
                let url = url()?;
                let max = ranged(&input, "MaxNumberOfMessages", 1..=MAX_RECEIVE as i64)?
                    .unwrap_or(1) as u64;
                let visibility =
                    ranged(&input, "VisibilityTimeout", 0..=i64::from(MAX_VISIBILITY))?
                        .map(|v| v as u32);
                let wait = ranged(&input, "WaitTimeSeconds", 0..=20)?;
                let default_wait = self.with(|st, _| st.queue(&url).map(|q| q.wait))?;
                let wait = wait.map_or(u64::from(default_wait), |w| w as u64);
                let (got, _) = self
                    .receive(&url, max as usize, visibility, Duration::from_secs(wait))
                    .await?;
                let names = string_list(&input["MessageSystemAttributeNames"])
                    .into_iter()
                    .chain(string_list(&input["AttributeNames"]))
                    .collect::<Vec<_>>();
                let wanted = string_list(&input["MessageAttributeNames"]);
                let messages: Vec<Value> = got
                    .iter()
                    .map(|r| received_json(r, &names, &wanted))
                    .collect();
                if messages.is_empty() {
                    return Ok(json!({}));
                }
                Ok(json!({ "Messages": messages }))
            }
            "DeleteMessage" => {
                let url = url()?;
                let handle = s("ReceiptHandle").ok_or_else(|| missing("ReceiptHandle"))?;
                self.with(|st, _| st.delete(&url, &handle))?;
                Ok(json!({}))
            }
            "DeleteMessageBatch" => {
                let url = url()?;
                let entries = batch_entries(&input, "DeleteMessageBatchRequestEntry")?;
                self.with(|st, _| st.queue(&url).map(|_| ()))?;
                let (mut ok, mut failed) = (Vec::new(), Vec::new());
                for e in entries {
                    let id = e["Id"].as_str().unwrap_or_default().to_string();
                    let handle = e["ReceiptHandle"].as_str().unwrap_or_default().to_string();
                    match self.with(|st, _| st.delete(&url, &handle)) {
                        Ok(()) => ok.push(json!({ "Id": id })),
                        Err(err) => failed.push(failure(&id, &err)),
                    }
                }
                Ok(json!({ "Successful": ok, "Failed": failed }))
            }
            "ChangeMessageVisibility" => {
                let url = url()?;
                let handle = s("ReceiptHandle").ok_or_else(|| missing("ReceiptHandle"))?;
                let timeout =
                    visibility_timeout(&input)?.ok_or_else(|| missing("VisibilityTimeout"))?;
                self.with(|st, now| st.change_visibility(&url, &handle, timeout, now))?;
                Ok(json!({}))
            }
            "ChangeMessageVisibilityBatch" => {
                let url = url()?;
                let entries = batch_entries(&input, "ChangeMessageVisibilityBatchRequestEntry")?;
                self.with(|st, _| st.queue(&url).map(|_| ()))?;
                let (mut ok, mut failed) = (Vec::new(), Vec::new());
                for e in entries {
                    let id = e["Id"].as_str().unwrap_or_default().to_string();
                    let handle = e["ReceiptHandle"].as_str().unwrap_or_default().to_string();
                    let changed = visibility_timeout(e).and_then(|t| {
                        self.with(|st, now| {
                            st.change_visibility(&url, &handle, t.unwrap_or(0), now)
                        })
                    });
                    match changed {
                        Ok(()) => ok.push(json!({ "Id": id })),
                        Err(err) => failed.push(failure(&id, &err)),
                    }
                }
                Ok(json!({ "Successful": ok, "Failed": failed }))
            }
            "TagQueue" => {
                let url = url()?;
                let tags = string_map(&input["Tags"])?;
                self.with(|st, _| st.queue_mut(&url).map(|q| q.tags.extend(tags)))?;
                Ok(json!({}))
            }
            "ListQueueTags" => {
                let url = url()?;
                let tags = self.with(|st, _| st.queue(&url).map(|q| q.tags.clone()))?;
                Ok(if tags.is_empty() {
                    json!({})
                } else {
                    json!({ "Tags": tags })
                })
            }
            other => Err(AwsError::new(
                400,
                "com.amazonaws.sqs#UnsupportedOperation",
                format!("The local SQS endpoint does not serve {other}"),
            )
            .with_query_error("AWS.SimpleQueueService.UnsupportedOperation;Sender")),
        }
    }
}

const KNOWN_QUEUE_ATTRIBUTES: &[&str] = &[
    "Policy",
    "VisibilityTimeout",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "CreatedTimestamp",
    "LastModifiedTimestamp",
    "QueueArn",
    "ApproximateNumberOfMessagesDelayed",
    "DelaySeconds",
    "ReceiveMessageWaitTimeSeconds",
    "RedrivePolicy",
    "FifoQueue",
    "ContentBasedDeduplication",
    "KmsMasterKeyId",
    "KmsDataKeyReusePeriodSeconds",
    "DeduplicationScope",
    "FifoThroughputLimit",
    "RedriveAllowPolicy",
    "SqsManagedSseEnabled",
];

fn string_map(v: &Value) -> Result<BTreeMap<String, String>, AwsError> {
    match v {
        Value::Null => Ok(BTreeMap::new()),
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                other => Err(invalid(format!(
                    "Value {other} for parameter {k} is invalid: a string is expected."
                ))),
            })
            .collect(),
        other => Err(invalid(format!("Expected a map of strings, got {other}"))),
    }
}

fn string_list(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// A `ChangeMessageVisibility` timeout: 0-43,200 when given.
fn visibility_timeout(input: &Value) -> Result<Option<u32>, AwsError> {
    match int_param(input, "VisibilityTimeout")? {
        Some(t) if !(0..=i64::from(MAX_VISIBILITY)).contains(&t) => Err(invalid(format!(
            "Value {t} for parameter VisibilityTimeout is invalid. Reason: Must be between 0 and {MAX_VISIBILITY}."
        ))),
        t => Ok(t.map(|t| t as u32)),
    }
}

/// The `MessageAttributes` of a send request or batch entry.
fn attributes_of(input: &Value) -> BTreeMap<String, Value> {
    match &input["MessageAttributes"] {
        Value::Object(m) => m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        _ => BTreeMap::new(),
    }
}

fn outgoing(input: &Value) -> Result<Outgoing, AwsError> {
    let body = input["MessageBody"]
        .as_str()
        .ok_or_else(|| missing("MessageBody"))?;
    let attributes = attributes_of(input);
    let trace_header = input["MessageSystemAttributes"]["AWSTraceHeader"]["StringValue"]
        .as_str()
        .map(str::to_string);
    let delay = match int_param(input, "DelaySeconds")? {
        Some(d) if !(0..=900).contains(&d) => {
            return Err(invalid(format!(
                "Value {d} for parameter DelaySeconds is invalid. Reason: DelaySeconds must be >= 0 and <= 900."
            )));
        }
        d => d.map(|d| d as u32),
    };
    Ok(Outgoing {
        body: body.to_string(),
        delay,
        attributes,
        trace_header,
        group: input["MessageGroupId"].as_str().map(str::to_string),
        dedup_id: input["MessageDeduplicationId"].as_str().map(str::to_string),
    })
}

/// The `Entries` of a batch request, checked as SQS checks them.
fn batch_entries<'a>(input: &'a Value, entry_shape: &str) -> Result<&'a Vec<Value>, AwsError> {
    let entries = input["Entries"]
        .as_array()
        .ok_or_else(|| missing("Entries"))?;
    if entries.is_empty() {
        return Err(sqs_error(
            "EmptyBatchRequest",
            "AWS.SimpleQueueService.EmptyBatchRequest",
            format!("There should be at least one {entry_shape} in the request."),
        ));
    }
    if entries.len() > MAX_BATCH {
        return Err(sqs_error(
            "TooManyEntriesInBatchRequest",
            "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
            format!(
                "Maximum number of entries per request are {MAX_BATCH}. You have sent {}.",
                entries.len()
            ),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for e in entries {
        let id = e["Id"].as_str().unwrap_or_default();
        if id.is_empty()
            || id.len() > 80
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(sqs_error(
                "InvalidBatchEntryId",
                "AWS.SimpleQueueService.InvalidBatchEntryId",
                "A batch entry id can only contain alphanumeric characters, hyphens and underscores. It can be at most 80 letters long.",
            ));
        }
        if !seen.insert(id) {
            return Err(sqs_error(
                "BatchEntryIdsNotDistinct",
                "AWS.SimpleQueueService.BatchEntryIdsNotDistinct",
                format!("Id {id} repeated."),
            ));
        }
    }
    Ok(entries)
}

fn failure(id: &str, err: &AwsError) -> Value {
    let code = err
        .query_error
        .as_deref()
        .and_then(|q| q.split(';').next())
        .unwrap_or(&err.code);
    json!({ "Id": id, "SenderFault": true, "Code": code, "Message": err.message })
}

fn sent_json(sent: &Sent, id: Option<&str>) -> Value {
    let mut v = json!({ "MessageId": sent.id, "MD5OfMessageBody": sent.md5_body });
    if let Some(id) = id {
        v["Id"] = id.into();
    }
    if let Some(md5) = &sent.md5_attributes {
        v["MD5OfMessageAttributes"] = md5.clone().into();
    }
    if let Some(seq) = &sent.sequence {
        v["SequenceNumber"] = seq.clone().into();
    }
    v
}

/// The system attributes of a received message, all of them (the event a
/// poller builds has them all; ReceiveMessage filters).
pub fn system_attributes(m: &Message) -> BTreeMap<&'static str, String> {
    let mut a = BTreeMap::new();
    a.insert("SenderId", LOCAL_ACCOUNT_ID.to_string());
    a.insert("SentTimestamp", m.sent.to_string());
    a.insert("ApproximateReceiveCount", m.receive_count.to_string());
    if let Some(t) = m.first_receive {
        a.insert("ApproximateFirstReceiveTimestamp", t.to_string());
    }
    if let Some(s) = &m.sequence {
        a.insert("SequenceNumber", s.clone());
    }
    if let Some(g) = &m.group {
        a.insert("MessageGroupId", g.clone());
    }
    if let Some(d) = &m.dedup_id {
        a.insert("MessageDeduplicationId", d.clone());
    }
    if let Some(t) = &m.trace_header {
        a.insert("AWSTraceHeader", t.clone());
    }
    if let Some(s) = &m.dlq_source {
        a.insert("DeadLetterQueueSourceArn", s.clone());
    }
    a
}

/// Whether `name` is asked for by `wanted` (`All`, `.*`, a name, or `prefix.*`).
fn wanted_attribute(name: &str, wanted: &[String]) -> bool {
    wanted.iter().any(|w| {
        w == "All"
            || w == ".*"
            || w == name
            || w.strip_suffix(".*")
                .is_some_and(|p| name.starts_with(&format!("{p}.")))
    })
}

fn received_json(r: &Received, system: &[String], wanted: &[String]) -> Value {
    let m = &r.message;
    let mut v = json!({
        "MessageId": m.id,
        "ReceiptHandle": r.receipt,
        "MD5OfBody": m.md5_body,
        "Body": m.body,
    });
    let attrs: Map<String, Value> = system_attributes(m)
        .into_iter()
        .filter(|(k, _)| system.iter().any(|n| n == "All" || n == k))
        .map(|(k, val)| (k.to_string(), val.into()))
        .collect();
    if !attrs.is_empty() {
        v["Attributes"] = Value::Object(attrs);
    }
    let user: BTreeMap<String, Value> = m
        .attributes
        .iter()
        .filter(|(k, _)| wanted_attribute(k, wanted))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if let Some(md5) = md5_of_attributes(&user) {
        v["MD5OfMessageAttributes"] = md5.into();
        v["MessageAttributes"] = json!(user);
    }
    v
}

impl JsonService for SqsService {
    fn target_prefix(&self) -> &'static str {
        "AmazonSQS"
    }

    /// A body too large to read is over SQS's own size limits.
    fn too_large(&self, operation: &str) -> AwsError {
        if operation == "SendMessageBatch" {
            return sqs_error(
                "BatchRequestTooLong",
                "AWS.SimpleQueueService.BatchRequestTooLong",
                format!("Batch requests cannot be longer than {MAX_MESSAGE} bytes."),
            );
        }
        invalid(format!(
            "One or more parameters are invalid. Reason: Message must be shorter than {MAX_MESSAGE} bytes."
        ))
    }

    fn call(&self, operation: &str, input: Value) -> BoxFuture<'_, Result<Value, AwsError>> {
        let op = operation.to_string();
        Box::pin(async move { self.operation(&op, input).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "http://127.0.0.1:9000/012345678912/q";

    fn store() -> Store {
        let mut st = Store::new("http://127.0.0.1:9000", "us-east-1");
        st.create("q", &BTreeMap::new(), BTreeMap::new(), 0)
            .unwrap();
        st
    }

    fn msg(body: &str) -> Outgoing {
        Outgoing {
            body: body.into(),
            ..Outgoing::default()
        }
    }

    fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn md5_of_body_and_attributes_follow_sqs() {
        assert_eq!(md5_hex("hello"), "5d41402abc4b2a76b9719d911017c592");
        // The attribute digest of one String attribute, computed by hand
        // from the documented layout.
        let mut a = BTreeMap::new();
        a.insert(
            "k".to_string(),
            json!({"DataType": "String", "StringValue": "v"}),
        );
        let mut raw = Vec::new();
        for part in [&b"k"[..], b"String"] {
            raw.extend((part.len() as u32).to_be_bytes());
            raw.extend(part);
        }
        raw.push(1);
        raw.extend(1u32.to_be_bytes());
        raw.push(b'v');
        assert_eq!(md5_of_attributes(&a).unwrap(), hex(&Md5::digest(&raw)));
        assert_eq!(md5_of_attributes(&BTreeMap::new()), None);
    }

    #[test]
    fn received_messages_hide_until_their_visibility_timeout_ends() {
        let mut st = store();
        st.send(URL, msg("a"), 0).unwrap();
        let (got, _) = st.receive(URL, 10, Some(10), 1_000).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].message.receive_count, 1);
        assert!(
            st.receive(URL, 10, None, 10_999).unwrap().0.is_empty(),
            "still in flight"
        );
        let (again, _) = st.receive(URL, 10, None, 11_000).unwrap();
        assert_eq!(again.len(), 1, "visible again after 10 s");
        assert_eq!(again[0].message.receive_count, 2);
        assert_eq!(again[0].message.first_receive, Some(1_000));
        // Visibility changed to 0: at once visible; deleted: gone for good.
        st.change_visibility(URL, &again[0].receipt, 0, 11_000)
            .unwrap();
        let (third, _) = st.receive(URL, 10, None, 11_000).unwrap();
        st.delete(URL, &third[0].receipt).unwrap();
        assert!(st.receive(URL, 10, None, 100_000).unwrap().0.is_empty());
        let err = st
            .change_visibility(URL, &third[0].receipt, 5, 100_000)
            .unwrap_err();
        assert_eq!(err.code, "com.amazonaws.sqs#MessageNotInflight");
        assert_eq!(
            st.delete(URL, "garbage").unwrap_err().code,
            "com.amazonaws.sqs#ReceiptHandleIsInvalid"
        );
    }

    #[test]
    fn fifo_groups_deliver_in_order_one_batch_in_flight_and_dedup_for_five_minutes() {
        let mut st = Store::new("http://x", "us-east-1");
        let url = st
            .create(
                "f.fifo",
                &attrs(&[("FifoQueue", "true"), ("ContentBasedDeduplication", "true")]),
                BTreeMap::new(),
                0,
            )
            .unwrap();
        let send = |st: &mut Store, body: &str, group: &str, now| {
            st.send(
                &url,
                Outgoing {
                    body: body.into(),
                    group: Some(group.into()),
                    ..Outgoing::default()
                },
                now,
            )
            .unwrap()
        };
        let first = send(&mut st, "a1", "a", 0);
        send(&mut st, "a2", "a", 0);
        send(&mut st, "b1", "b", 0);
        // The same content within 5 minutes is the same message.
        let dup = send(&mut st, "a1", "a", 1_000);
        assert_eq!(dup.id, first.id);
        let (got, _) = st.receive(&url, 1, None, 0).unwrap();
        assert_eq!(got[0].message.body, "a1");
        // Group a is in flight: only b is handed out.
        let (got, _) = st.receive(&url, 10, None, 0).unwrap();
        let bodies: Vec<_> = got.iter().map(|r| r.message.body.as_str()).collect();
        assert_eq!(bodies, ["b1"]);
        // After 5 minutes the same content is new.
        let later = send(&mut st, "a1", "a", DEDUP_WINDOW_MS + 1);
        assert_ne!(later.id, first.id);
        // A missing group id is refused.
        let err = st.send(&url, msg("x"), 0).unwrap_err();
        assert_eq!(err.code, "com.amazonaws.sqs#MissingParameterException");
    }

    #[test]
    fn a_message_received_max_receive_count_times_moves_to_the_dead_letter_queue() {
        let mut st = store();
        st.create("dlq", &BTreeMap::new(), BTreeMap::new(), 0)
            .unwrap();
        let policy = r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:012345678912:dlq","maxReceiveCount":2}"#;
        st.set_attributes(
            URL,
            &attrs(&[("RedrivePolicy", policy), ("VisibilityTimeout", "1")]),
            0,
        )
        .unwrap();
        let id = st.send(URL, msg("poison"), 0).unwrap().id;
        assert_eq!(st.receive(URL, 1, None, 0).unwrap().0.len(), 1);
        assert_eq!(st.receive(URL, 1, None, 1_000).unwrap().0.len(), 1);
        let (got, redriven) = st.receive(URL, 1, None, 2_000).unwrap();
        assert!(got.is_empty());
        assert_eq!(redriven, vec![(id.clone(), "dlq".to_string())]);
        let (dead, _) = st.receive("dlq", 1, None, 2_000).unwrap();
        assert_eq!(dead[0].message.id, id);
        assert_eq!(
            dead[0].message.dlq_source.as_deref(),
            Some("arn:aws:sqs:us-east-1:012345678912:q")
        );
        assert_eq!(st.queue(URL).unwrap().messages.len(), 0);
    }

    #[test]
    fn limits_and_names_are_enforced_with_aws_errors() {
        let mut st = store();
        let big = "x".repeat(MAX_MESSAGE as usize + 1);
        assert_eq!(
            st.send(URL, msg(&big), 0).unwrap_err().code,
            "com.amazonaws.sqs#InvalidParameterValueException"
        );
        assert!(
            st.create("bad name", &BTreeMap::new(), BTreeMap::new(), 0)
                .is_err()
        );
        assert!(
            st.create(&"n".repeat(81), &BTreeMap::new(), BTreeMap::new(), 0)
                .is_err()
        );
        let err = st
            .create(
                "q",
                &attrs(&[("VisibilityTimeout", "5")]),
                BTreeMap::new(),
                0,
            )
            .unwrap_err();
        assert_eq!(err.code, "com.amazonaws.sqs#QueueNameExists");
        assert_eq!(
            err.query_error.as_deref(),
            Some("QueueAlreadyExists;Sender")
        );
        let err = st
            .send("http://x/012345678912/nope", msg("a"), 0)
            .unwrap_err();
        assert_eq!(
            err.query_error.as_deref(),
            Some("AWS.SimpleQueueService.NonExistentQueue;Sender")
        );
        let err = st
            .set_attributes(URL, &attrs(&[("VisibilityTimeout", "43201")]), 0)
            .unwrap_err();
        assert_eq!(err.code, "com.amazonaws.sqs#InvalidAttributeValue");
        // Retention: a message older than the retention period is gone.
        st.set_attributes(URL, &attrs(&[("MessageRetentionPeriod", "60")]), 0)
            .unwrap();
        st.send(URL, msg("old"), 0).unwrap();
        assert!(st.receive(URL, 1, None, 60_000).unwrap().0.is_empty());
    }
}
