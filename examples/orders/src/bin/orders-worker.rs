//! The queue consumer: processes each order of an SQS batch on its own and
//! reports the ones that failed in `batchItemFailures`, so SQS redelivers
//! only those (and, with a redrive policy, moves them to the dead-letter
//! queue in the end).

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use orders::Order;

async fn handler(
    max_quantity: u32,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, Error> {
    let mut response = SqsBatchResponse::default();
    for message in event.payload.records {
        let id = message.message_id.clone().unwrap_or_default();
        if let Err(err) = process(max_quantity, message) {
            tracing::error!(message_id = %id, error = %err, "order failed; SQS will redeliver it");
            response.add_failure(id);
        }
    }
    Ok(response)
}

/// One message; an `Err` marks only this message for redelivery.
fn process(max_quantity: u32, message: SqsMessage) -> Result<(), String> {
    let body = message.body.unwrap_or_default();
    let order: Order = serde_json::from_str(&body).map_err(|e| format!("invalid order: {e}"))?;
    order.validate(max_quantity)?;
    tracing::info!(order_id = %order.order_id, product = %order.product, quantity = order.quantity, "order processed");
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let max_quantity = orders::max_quantity()?;
    lambda_runtime::run(service_fn(move |event| handler(max_quantity, event))).await
}
