//! The rules of an `s3` trigger (S3 `PutBucketNotificationConfiguration`).

use serde_json::Value;

use super::S3Trigger;
use super::read::only;
use crate::config::value::{Result, Table};

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

pub(super) fn s3(t: &Table) -> Result<S3Trigger> {
    only(t, "s3", &["bucket", "events", "prefix", "suffix"])?;
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
