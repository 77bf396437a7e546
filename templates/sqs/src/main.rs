//! An SQS consumer that reports partial batch failures.
//!
//! Each message is processed on its own; the ids of the messages that failed
//! go back in `batchItemFailures`, so SQS retries only those (the event source
//! mapping needs `ReportBatchItemFailures`). Returning `Err` instead would
//! retry the whole batch. Configuration is read once in `main`.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use lambda_runtime::{Error, LambdaEvent, service_fn};

/// Settings read once from the environment (see `[package.metadata.fn] env`).
#[derive(Debug)]
struct Config {
    max_body_bytes: usize,
}

impl Config {
    fn from_env() -> Result<Self, Error> {
        let max_body_bytes = match std::env::var("MAX_BODY_BYTES") {
            Ok(value) => value
                .parse()
                .map_err(|e| format!("MAX_BODY_BYTES=`{value}` is not a number: {e}"))?,
            Err(_) => 256 * 1024,
        };
        Ok(Config { max_body_bytes })
    }
}

async fn handler(config: &Config, event: LambdaEvent<SqsEvent>) -> Result<SqsBatchResponse, Error> {
    let mut response = SqsBatchResponse::default();
    for message in event.payload.records {
        let id = message.message_id.clone().unwrap_or_default();
        if let Err(err) = process(config, message).await {
            tracing::error!(message_id = %id, error = %err, "message failed; SQS will retry it");
            response.add_failure(id);
        }
    }
    Ok(response)
}

/// Handles one message; an `Err` marks only this message for retry.
async fn process(config: &Config, message: SqsMessage) -> Result<(), Error> {
    let body = message.body.unwrap_or_default();
    if body.len() > config.max_body_bytes {
        return Err(format!(
            "body of {} bytes is over {}",
            body.len(),
            config.max_body_bytes
        )
        .into());
    }
    // The work on one message goes here. Read a JSON body into your own
    // type with `let order: Order = serde_json::from_str(&body)?;` (an `Err`
    // then retries only this message, until the queue's redrive policy moves
    // it to a dead-letter queue: set one, or a bad message comes back forever).
    let id = message.message_id.unwrap_or_default();
    tracing::info!(message_id = %id, bytes = body.len(), "message processed");
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    // JSON logs when AWS_LAMBDA_LOG_FORMAT=JSON; level from AWS_LAMBDA_LOG_LEVEL or RUST_LOG.
    lambda_runtime::tracing::init_default_subscriber();
    let config = Config::from_env()?;
    let config = &config;
    lambda_runtime::run(service_fn(move |event| handler(config, event))).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_runtime::Context;

    fn config() -> Config {
        Config {
            max_body_bytes: 1024,
        }
    }

    #[tokio::test]
    async fn processes_every_message_of_the_example_batch() {
        let event: SqsEvent = serde_json::from_str(include_str!("../events/sqs.json")).unwrap();
        let response = handler(&config(), LambdaEvent::new(event, Context::default()))
            .await
            .unwrap();
        assert!(response.batch_item_failures.is_empty());
    }

    #[tokio::test]
    async fn reports_only_the_bad_message_as_failed() {
        let mut event: SqsEvent =
            serde_json::from_str(include_str!("../events/sqs.json")).unwrap();
        event.records[1].body = Some("x".repeat(2000));
        let response = handler(&config(), LambdaEvent::new(event, Context::default()))
            .await
            .unwrap();
        let failed: Vec<_> = response
            .batch_item_failures
            .iter()
            .map(|failure| failure.item_identifier.as_str())
            .collect();
        assert_eq!(failed, ["2e1424d4-f796-459a-8184-9c92662be6da"]);
    }
}
