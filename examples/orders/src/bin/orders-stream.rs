//! The stream consumer: totals the quantity of each product over a batch of
//! order events from Kinesis. Records of a shard come in order; a record that
//! is not an order stops the batch there and is reported in
//! `batchItemFailures`, so Lambda retries from it.

use std::collections::BTreeMap;

use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_lambda_events::event::streams::KinesisEventResponse;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use orders::Order;

async fn handler(event: LambdaEvent<KinesisEvent>) -> Result<KinesisEventResponse, Error> {
    let mut response = KinesisEventResponse::default();
    let mut totals: BTreeMap<String, u64> = BTreeMap::new();
    let mut records = 0;
    for record in event.payload.records {
        match serde_json::from_slice::<Order>(&record.kinesis.data) {
            Ok(order) => {
                *totals.entry(order.product).or_default() += u64::from(order.quantity);
                records += 1;
            }
            Err(err) => {
                let sequence_number = record.kinesis.sequence_number;
                tracing::error!(%sequence_number, error = %err, "not an order; retrying from it");
                response.add_failure(sequence_number);
                break;
            }
        }
    }
    let totals = serde_json::to_string(&totals)?;
    tracing::info!(records, %totals, "batch aggregated");
    Ok(response)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    lambda_runtime::run(service_fn(handler)).await
}
