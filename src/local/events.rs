//! Events for triggers that have no local service behind them (S3): built
//! in AWS's shape from the trigger's configuration and what the caller of
//! "fire" gave (nothing, an object key, or a whole event).
//!
//! Pure: no I/O; the time and ids are given or random.

use jiff::Timestamp;
use serde_json::{Value, json};

/// What the developer asked S3 to send: a whole event (`{"Records": [..]}`,
/// sent as is), an object (`{"key": .., "size": .., "event": ..}`), a bare
/// key (a JSON string), or nothing (an example object under the trigger's
/// prefix and suffix).
pub struct S3Fire<'a> {
    pub bucket: &'a str,
    /// The configured event types (`s3:ObjectCreated:*`, ...).
    pub events: &'a [String],
    pub prefix: Option<&'a str>,
    pub suffix: Option<&'a str>,
    /// The S3 notification's configuration id.
    pub configuration_id: &'a str,
    pub region: &'a str,
}

impl S3Fire<'_> {
    /// The notification event, or why `payload` cannot be one.
    pub fn event(&self, payload: Option<Value>, now: Timestamp) -> Result<Value, String> {
        let (key, size, name) = match payload {
            Some(v @ Value::Object(_)) if v.get("Records").is_some() => return Ok(v),
            None => (self.example_key(), 1024, None),
            Some(Value::String(key)) => (key, 1024, None),
            Some(Value::Object(o)) => {
                let key = o
                    .get("key")
                    .and_then(Value::as_str)
                    .ok_or("an S3 fire payload: {\"Records\": [...]}, {\"key\": \"...\", \"size\": N, \"event\": \"ObjectCreated:Put\"} or a key string")?
                    .to_string();
                let size = o.get("size").and_then(Value::as_u64).unwrap_or(1024);
                let name = o.get("event").and_then(Value::as_str).map(str::to_string);
                (key, size, name)
            }
            Some(other) => {
                return Err(format!(
                    "an S3 fire payload is a key string, an object with `key`, or a whole event; got {other}"
                ));
            }
        };
        let name = match name {
            Some(n) => n.trim_start_matches("s3:").to_string(),
            None => self.event_name(),
        };
        Ok(self.record_event(&key, size, &name, now))
    }

    /// An example key that passes the trigger's filter.
    pub fn example_key(&self) -> String {
        format!(
            "{}example{}",
            self.prefix.unwrap_or(""),
            self.suffix.unwrap_or(".json")
        )
    }

    /// The first configured event type as S3 names it in a record:
    /// `s3:ObjectCreated:*` sends `ObjectCreated:Put`.
    fn event_name(&self) -> String {
        let first = self
            .events
            .first()
            .map(String::as_str)
            .unwrap_or("s3:ObjectCreated:*");
        let name = first.trim_start_matches("s3:");
        match name {
            "ObjectCreated:*" => "ObjectCreated:Put".into(),
            "ObjectRemoved:*" => "ObjectRemoved:Delete".into(),
            "ObjectRestore:*" => "ObjectRestore:Completed".into(),
            "Replication:*" => "Replication:OperationReplicatedAfterThreshold".into(),
            "LifecycleExpiration:*" => "LifecycleExpiration:Delete".into(),
            "ObjectTagging:*" => "ObjectTagging:Put".into(),
            other => other.to_string(),
        }
    }

    fn record_event(&self, key: &str, size: u64, name: &str, now: Timestamp) -> Value {
        let mut object = json!({
            // Keys arrive URL-encoded, a space as `+`.
            "key": form_urlencoded::byte_serialize(key.as_bytes()).collect::<String>()
                .replace("%2F", "/"),
            "sequencer": format!("{:018X}", now.as_millisecond()),
        });
        if name.starts_with("ObjectCreated") {
            object["size"] = json!(size);
            object["eTag"] = json!(format!("{:032x}", u128::from(size) ^ 0x5eed));
        }
        let request_id = uuid::Uuid::new_v4().simple().to_string()[..16].to_uppercase();
        json!({"Records": [{
            "eventVersion": "2.1",
            "eventSource": "aws:s3",
            "awsRegion": self.region,
            "eventTime": format!("{}", now.round(jiff::Unit::Millisecond).unwrap_or(now)
                .strftime("%Y-%m-%dT%H:%M:%S%.3fZ")),
            "eventName": name,
            "userIdentity": {"principalId": "AWS:CARGOFNLOCAL"},
            "requestParameters": {"sourceIPAddress": "127.0.0.1"},
            "responseElements": {
                "x-amz-request-id": request_id,
                "x-amz-id-2": "cargo-fn/local",
            },
            "s3": {
                "s3SchemaVersion": "1.0",
                "configurationId": self.configuration_id,
                "bucket": {
                    "name": self.bucket,
                    "ownerIdentity": {"principalId": "CARGOFNLOCAL"},
                    "arn": format!("arn:aws:s3:::{}", self.bucket),
                },
                "object": object,
            },
        }]})
    }
}

/// What "fire now" answers for one synchronous invocation: its request
/// id, the function's response (JSON when it is JSON), and
/// `functionError` when it failed.
pub fn outcome(done: &crate::emulator::Invoked) -> Value {
    let response = serde_json::from_slice::<Value>(&done.body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&done.body).into_owned()));
    let mut v = json!({"requestId": done.request_id, "response": response});
    if let Some(e) = &done.function_error {
        v["functionError"] = Value::String(e.clone());
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fire<'a>(
        events: &'a [String],
        prefix: Option<&'a str>,
        suffix: Option<&'a str>,
    ) -> S3Fire<'a> {
        S3Fire {
            bucket: "uploads",
            events,
            prefix,
            suffix,
            configuration_id: "cargo-fn.resize.uploads",
            region: "eu-west-1",
        }
    }

    #[test]
    fn example_honours_prefix_suffix_and_event_type() {
        let events = vec!["s3:ObjectCreated:*".to_string()];
        let f = fire(&events, Some("images/"), Some(".jpg"));
        let e = f
            .event(None, "2026-11-30T04:05:06.789Z".parse().unwrap())
            .unwrap();
        let r = &e["Records"][0];
        assert_eq!(r["eventName"], "ObjectCreated:Put");
        assert_eq!(r["eventTime"], "2026-11-30T04:05:06.789Z");
        assert_eq!(r["awsRegion"], "eu-west-1");
        assert_eq!(r["s3"]["bucket"]["name"], "uploads");
        assert_eq!(r["s3"]["bucket"]["arn"], "arn:aws:s3:::uploads");
        assert_eq!(r["s3"]["object"]["key"], "images/example.jpg");
        assert_eq!(r["s3"]["object"]["size"], 1024);

        let removed = vec!["s3:ObjectRemoved:*".to_string()];
        let e = fire(&removed, None, None)
            .event(None, Timestamp::UNIX_EPOCH)
            .unwrap();
        assert_eq!(e["Records"][0]["eventName"], "ObjectRemoved:Delete");
        assert_eq!(e["Records"][0]["s3"]["object"]["key"], "example.json");
        assert!(e["Records"][0]["s3"]["object"].get("size").is_none());
    }

    #[test]
    fn given_keys_objects_and_whole_events() {
        let events = vec!["s3:ObjectCreated:*".to_string()];
        let f = fire(&events, None, None);
        let now = Timestamp::UNIX_EPOCH;
        let e = f.event(Some(json!("in/a photo.png")), now).unwrap();
        assert_eq!(e["Records"][0]["s3"]["object"]["key"], "in/a+photo.png");
        let e = f
            .event(
                Some(json!({"key": "x.csv", "size": 7, "event": "s3:ObjectCreated:Copy"})),
                now,
            )
            .unwrap();
        assert_eq!(e["Records"][0]["eventName"], "ObjectCreated:Copy");
        assert_eq!(e["Records"][0]["s3"]["object"]["size"], 7);
        let whole = json!({"Records": [{"eventName": "custom"}]});
        assert_eq!(f.event(Some(whole.clone()), now).unwrap(), whole);
        let err = f.event(Some(json!(42)), now).unwrap_err();
        assert!(err.contains("key"), "{err}");
    }
}
