//! Reacts to S3 event notifications (for example `s3:ObjectCreated:*`).
//!
//! Object keys arrive URL-encoded (`+` for a space, `%28` for `(`); they are
//! decoded before use. Configuration is read once in `main` (the cold start);
//! create SDK clients there too and pass them to the handler by reference.

use aws_lambda_events::event::s3::{S3Event, S3EventRecord};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde::Serialize;

/// Settings read once from the environment (see `[package.metadata.fn] env`).
#[derive(Debug)]
struct Config {
    /// Only keys under this prefix are handled.
    key_prefix: String,
}

impl Config {
    fn from_env() -> Self {
        Config {
            key_prefix: std::env::var("KEY_PREFIX").unwrap_or_default(),
        }
    }
}

/// One object this invocation handled.
#[derive(Debug, Serialize, PartialEq)]
struct Handled {
    bucket: String,
    key: String,
    size: i64,
}

async fn handler(config: &Config, event: LambdaEvent<S3Event>) -> Result<Vec<Handled>, Error> {
    let mut handled = Vec::new();
    for record in event.payload.records {
        if let Some(object) = process(config, record)? {
            handled.push(object);
        }
    }
    Ok(handled)
}

/// Handles one record; `None` when it is outside `KEY_PREFIX`.
fn process(config: &Config, record: S3EventRecord) -> Result<Option<Handled>, Error> {
    let bucket = record.s3.bucket.name.unwrap_or_default();
    let raw_key = record
        .s3
        .object
        .key
        .ok_or("S3 record without an object key")?;
    let key = decode_key(&raw_key)?;
    if !key.starts_with(&config.key_prefix) {
        tracing::debug!(%bucket, %key, "outside KEY_PREFIX; skipped");
        return Ok(None);
    }
    let size = record.s3.object.size.unwrap_or(0);
    tracing::info!(%bucket, %key, size, event = record.event_name.as_deref().unwrap_or(""), "object");
    Ok(Some(Handled { bucket, key, size }))
}

/// Decodes an object key as S3 writes it in notifications (form encoding).
fn decode_key(raw: &str) -> Result<String, Error> {
    let mut bytes = Vec::with_capacity(raw.len());
    let mut input = raw.bytes();
    while let Some(b) = input.next() {
        match b {
            b'+' => bytes.push(b' '),
            b'%' => {
                let hex = [input.next(), input.next()];
                let [Some(hi), Some(lo)] = hex else {
                    return Err(format!("truncated escape in key `{raw}`").into());
                };
                let hex = std::str::from_utf8(&[hi, lo])?.to_string();
                bytes.push(
                    u8::from_str_radix(&hex, 16)
                        .map_err(|_| format!("bad escape in key `{raw}`"))?,
                );
            }
            _ => bytes.push(b),
        }
    }
    Ok(String::from_utf8(bytes)?)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    // JSON logs when AWS_LAMBDA_LOG_FORMAT=JSON; level from AWS_LAMBDA_LOG_LEVEL or RUST_LOG.
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env();
    let config = &config;
    lambda_runtime::run(service_fn(move |event| handler(config, event))).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_runtime::Context;

    #[tokio::test]
    async fn handles_objects_under_the_prefix_with_decoded_keys() {
        let event: S3Event = serde_json::from_str(include_str!("../events/s3.json")).unwrap();
        let config = Config {
            key_prefix: "uploads/".to_string(),
        };
        let handled = handler(&config, LambdaEvent::new(event, Context::default()))
            .await
            .unwrap();
        assert_eq!(
            handled,
            [Handled {
                bucket: "example-bucket".to_string(),
                key: "uploads/annual report(2026).pdf".to_string(),
                size: 1024,
            }]
        );
    }

    #[test]
    fn refuses_a_truncated_escape() {
        assert!(decode_key("bad%2").is_err());
    }
}
