//! The daily report, run by an EventBridge Scheduler schedule. It reports on
//! the scheduled time the event carries, not the clock, so a retried or late
//! run covers the same day.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

async fn handler(event: LambdaEvent<EventBridgeEvent>) -> Result<Value, Error> {
    let event = event.payload;
    if event.detail_type != "Scheduled Event" {
        return Err(format!("expected a scheduled event, got `{}`", event.detail_type).into());
    }
    let scheduled_for = event
        .time
        .ok_or("scheduled event without a `time`")?
        .to_rfc3339();
    // The report's work goes here: read the day's totals, send them.
    tracing::info!(%scheduled_for, source = %event.source, "daily report sent");
    Ok(json!({ "report": "daily", "scheduled_for": scheduled_for }))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    lambda_runtime::run(service_fn(handler)).await
}
