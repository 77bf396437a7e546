//! A job that runs on an EventBridge schedule (`rate(1 hour)`, `cron(...)`).
//!
//! The schedule's event says which schedule fired and when; the job uses the
//! scheduled time, not the clock, so a retried or late run does the same
//! work. Both schedulers send a "Scheduled Event": EventBridge Scheduler
//! (the `schedule` trigger in Cargo.toml) with source `aws.scheduler`, an
//! EventBridge rule with `aws.events`. Configuration is read once in `main`
//! (the cold start).

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde::Serialize;

/// Settings read once from the environment (see `[package.metadata.fn] env`).
#[derive(Debug)]
struct Config {
    job_name: String,
}

impl Config {
    fn from_env() -> Self {
        Config {
            job_name: std::env::var("JOB_NAME").unwrap_or_else(|_| "job".to_string()),
        }
    }
}

/// What one run did (returned for `cargo fn invoke`; a schedule ignores it).
#[derive(Debug, Serialize, PartialEq)]
struct Run {
    job: String,
    scheduled_for: String,
    rule: String,
}

async fn handler(config: &Config, event: LambdaEvent<EventBridgeEvent>) -> Result<Run, Error> {
    let event = event.payload;
    let scheduler = matches!(event.source.as_str(), "aws.scheduler" | "aws.events");
    if !scheduler || event.detail_type != "Scheduled Event" {
        return Err(format!(
            "expected a scheduled event, got `{}` from `{}`",
            event.detail_type, event.source
        )
        .into());
    }
    let scheduled_for = event
        .time
        .ok_or("scheduled event without a `time`")?
        .to_rfc3339();
    let rule = event
        .resources
        .and_then(|r| r.into_iter().next())
        .unwrap_or_default();
    tracing::info!(job = %config.job_name, %scheduled_for, %rule, "running");
    // The job's work goes here.
    Ok(Run {
        job: config.job_name.clone(),
        scheduled_for,
        rule,
    })
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

    fn config() -> Config {
        Config {
            job_name: "nightly".to_string(),
        }
    }

    #[tokio::test]
    async fn runs_for_the_scheduled_time() {
        let event: EventBridgeEvent =
            serde_json::from_str(include_str!("../events/scheduled.json")).unwrap();
        let run = handler(&config(), LambdaEvent::new(event, Context::default()))
            .await
            .unwrap();
        assert_eq!(run.job, "nightly");
        assert_eq!(run.scheduled_for, "2026-11-27T17:00:00+00:00");
        assert_eq!(
            run.rule,
            "arn:aws:events:us-east-1:123456789012:rule/every-hour"
        );
    }

    /// What the `schedule` trigger in Cargo.toml sends (EventBridge Scheduler).
    #[tokio::test]
    async fn runs_on_an_eventbridge_scheduler_event() {
        let mut event: serde_json::Value =
            serde_json::from_str(include_str!("../events/scheduled.json")).unwrap();
        event["source"] = "aws.scheduler".into();
        event["resources"] =
            serde_json::json!(["arn:aws:scheduler:us-east-1:123456789012:schedule/default/every-hour"]);
        let event: EventBridgeEvent = serde_json::from_value(event).unwrap();
        let run = handler(&config(), LambdaEvent::new(event, Context::default()))
            .await
            .unwrap();
        assert_eq!(run.scheduled_for, "2026-11-27T17:00:00+00:00");
        assert!(run.rule.ends_with(":schedule/default/every-hour"), "{}", run.rule);
    }

    #[tokio::test]
    async fn refuses_other_events() {
        let mut event: serde_json::Value =
            serde_json::from_str(include_str!("../events/scheduled.json")).unwrap();
        event["detail-type"] = "Object Created".into();
        let event: EventBridgeEvent = serde_json::from_value(event).unwrap();
        let result = handler(&config(), LambdaEvent::new(event, Context::default())).await;
        assert!(result.is_err());
    }
}
