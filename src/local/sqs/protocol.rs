//! The SQS JSON protocol: one handler per operation reads the request,
//! calls the queue model through the service and writes SQS's answer. A
//! handler returns the first error with `?`; every error is the
//! [`AwsError`] SQS answers (shape, `x-amzn-query-error` code and message),
//! checked in the order SQS checks: the queue URL, then the parameters.
//!
//! Batch operations answer per entry (`Successful` / `Failed`) once the
//! batch itself is well formed.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::SqsService;
use super::queue::{
    MAX_BATCH, MAX_MESSAGE, MAX_RECEIVE, MAX_VISIBILITY, Outgoing, Received, Sent, invalid,
    md5_of_attributes, message_size, missing, sqs_error, system_attributes,
};
use crate::local::AwsError;

type Answer = Result<Value, AwsError>;

/// Runs one JSON-protocol operation (`X-Amz-Target: AmazonSQS.<op>`).
pub(super) async fn operation(svc: &SqsService, op: &str, input: &Value) -> Answer {
    match op {
        "CreateQueue" => create_queue(svc, input),
        "GetQueueUrl" => get_queue_url(svc, input),
        "ListQueues" => list_queues(svc, input),
        "DeleteQueue" => delete_queue(svc, input),
        "PurgeQueue" => purge_queue(svc, input),
        "GetQueueAttributes" => get_queue_attributes(svc, input),
        "SetQueueAttributes" => set_queue_attributes(svc, input),
        "SendMessage" => send_message(svc, input),
        "SendMessageBatch" => send_message_batch(svc, input),
        "ReceiveMessage" => receive_message(svc, input).await,
        "DeleteMessage" => delete_message(svc, input),
        "DeleteMessageBatch" => delete_message_batch(svc, input),
        "ChangeMessageVisibility" => change_message_visibility(svc, input),
        "ChangeMessageVisibilityBatch" => change_message_visibility_batch(svc, input),
        "TagQueue" => tag_queue(svc, input),
        "ListQueueTags" => list_queue_tags(svc, input),
        other => Err(AwsError::new(
            400,
            "com.amazonaws.sqs#UnsupportedOperation",
            format!("The local SQS endpoint does not serve {other}"),
        )
        .with_query_error("AWS.SimpleQueueService.UnsupportedOperation;Sender")),
    }
}

/// A string member, when present.
fn string(input: &Value, key: &str) -> Option<String> {
    input[key].as_str().map(str::to_string)
}

/// A string member SQS requires (`MissingParameter` without it).
fn required(input: &Value, key: &str) -> Result<String, AwsError> {
    string(input, key).ok_or_else(|| missing(key))
}

fn create_queue(svc: &SqsService, input: &Value) -> Answer {
    let name = required(input, "QueueName")?;
    let attributes = string_map(&input["Attributes"])?;
    let tags = string_map(&input["tags"])?;
    let url = svc.with(|st, now| st.create(&name, &attributes, tags, now))?;
    Ok(json!({ "QueueUrl": url }))
}

fn get_queue_url(svc: &SqsService, input: &Value) -> Answer {
    let name = required(input, "QueueName")?;
    let url = svc.with(|st, _| st.queue(&name).map(|q| st.url(&q.name)))?;
    Ok(json!({ "QueueUrl": url }))
}

fn list_queues(svc: &SqsService, input: &Value) -> Answer {
    let prefix = string(input, "QueueNamePrefix").unwrap_or_default();
    let max = ranged(input, "MaxResults", 1..=1000)?.map(|m| m as usize);
    let mut urls = svc.with(|st, _| st.list(&prefix));
    let start = string(input, "NextToken")
        .and_then(|t| t.parse::<usize>().ok())
        .unwrap_or(0);
    urls = urls.split_off(start.min(urls.len()));
    let mut out = Map::new();
    match max {
        Some(m) if urls.len() > m => {
            urls.truncate(m);
            out.insert("NextToken".into(), (start + m).to_string().into());
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

fn delete_queue(svc: &SqsService, input: &Value) -> Answer {
    let url = required(input, "QueueUrl")?;
    svc.with(|st, _| st.delete_queue(&url))?;
    Ok(json!({}))
}

fn purge_queue(svc: &SqsService, input: &Value) -> Answer {
    let url = required(input, "QueueUrl")?;
    svc.with(|st, _| st.purge(&url))?;
    Ok(json!({}))
}

fn get_queue_attributes(svc: &SqsService, input: &Value) -> Answer {
    let url = required(input, "QueueUrl")?;
    let names = string_list(&input["AttributeNames"]);
    let all = svc.with(|st, now| st.queue(&url).map(|q| q.attributes(now)))?;
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

fn set_queue_attributes(svc: &SqsService, input: &Value) -> Answer {
    let url = required(input, "QueueUrl")?;
    let attributes = string_map(&input["Attributes"])?;
    svc.with(|st, now| st.set_attributes(&url, &attributes, now))?;
    Ok(json!({}))
}

fn send_message(svc: &SqsService, input: &Value) -> Answer {
    let url = required(input, "QueueUrl")?;
    let m = outgoing(input)?;
    let sent = svc.with(|st, now| st.send(&url, m, now))?;
    Ok(sent_json(&sent, None))
}

fn send_message_batch(svc: &SqsService, input: &Value) -> Answer {
    let url = required(input, "QueueUrl")?;
    let entries = batch_entries(input, "SendMessageBatchRequestEntry")?;
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
    svc.with(|st, _| st.queue(&url).map(|_| ()))?;
    Ok(per_entry(entries, |id, e| {
        let m = outgoing(e)?;
        let sent = svc.with(|st, now| st.send(&url, m, now))?;
        Ok(sent_json(&sent, Some(id)))
    }))
}

async fn receive_message(svc: &SqsService, input: &Value) -> Answer {
    let url = required(input, "QueueUrl")?;
    let max = ranged(input, "MaxNumberOfMessages", 1..=MAX_RECEIVE as i64)?.unwrap_or(1) as usize;
    let visibility =
        ranged(input, "VisibilityTimeout", 0..=i64::from(MAX_VISIBILITY))?.map(|v| v as u32);
    let wait = ranged(input, "WaitTimeSeconds", 0..=20)?;
    let default_wait = svc.with(|st, _| st.queue(&url).map(|q| q.wait))?;
    let wait = wait.map_or(u64::from(default_wait), |w| w as u64);
    let (got, _) = svc
        .receive(&url, max, visibility, Duration::from_secs(wait))
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

fn delete_message(svc: &SqsService, input: &Value) -> Answer {
    let url = required(input, "QueueUrl")?;
    let handle = required(input, "ReceiptHandle")?;
    svc.with(|st, _| st.delete(&url, &handle))?;
    Ok(json!({}))
}

fn delete_message_batch(svc: &SqsService, input: &Value) -> Answer {
    let url = required(input, "QueueUrl")?;
    let entries = batch_entries(input, "DeleteMessageBatchRequestEntry")?;
    svc.with(|st, _| st.queue(&url).map(|_| ()))?;
    Ok(per_entry(entries, |id, e| {
        let handle = e["ReceiptHandle"].as_str().unwrap_or_default();
        svc.with(|st, _| st.delete(&url, handle))?;
        Ok(json!({ "Id": id }))
    }))
}

fn change_message_visibility(svc: &SqsService, input: &Value) -> Answer {
    let url = required(input, "QueueUrl")?;
    let handle = required(input, "ReceiptHandle")?;
    let timeout = visibility_timeout(input)?.ok_or_else(|| missing("VisibilityTimeout"))?;
    svc.with(|st, now| st.change_visibility(&url, &handle, timeout, now))?;
    Ok(json!({}))
}

fn change_message_visibility_batch(svc: &SqsService, input: &Value) -> Answer {
    let url = required(input, "QueueUrl")?;
    let entries = batch_entries(input, "ChangeMessageVisibilityBatchRequestEntry")?;
    svc.with(|st, _| st.queue(&url).map(|_| ()))?;
    Ok(per_entry(entries, |id, e| {
        let handle = e["ReceiptHandle"].as_str().unwrap_or_default();
        let timeout = visibility_timeout(e)?.unwrap_or(0);
        svc.with(|st, now| st.change_visibility(&url, handle, timeout, now))?;
        Ok(json!({ "Id": id }))
    }))
}

fn tag_queue(svc: &SqsService, input: &Value) -> Answer {
    let url = required(input, "QueueUrl")?;
    let tags = string_map(&input["Tags"])?;
    svc.with(|st, _| st.tag(&url, tags))?;
    Ok(json!({}))
}

fn list_queue_tags(svc: &SqsService, input: &Value) -> Answer {
    let url = required(input, "QueueUrl")?;
    let tags = svc.with(|st, _| st.queue(&url).map(|q| q.tags.clone()))?;
    if tags.is_empty() {
        return Ok(json!({}));
    }
    Ok(json!({ "Tags": tags }))
}

/// A batch's answer: each entry's success (`each`'s value) or its failure.
fn per_entry(entries: &[Value], mut each: impl FnMut(&str, &Value) -> Answer) -> Value {
    let (mut ok, mut failed) = (Vec::new(), Vec::new());
    for e in entries {
        let id = e["Id"].as_str().unwrap_or_default();
        match each(id, e) {
            Ok(v) => ok.push(v),
            Err(err) => failed.push(failure(id, &err)),
        }
    }
    json!({ "Successful": ok, "Failed": failed })
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
