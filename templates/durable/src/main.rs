//! A Lambda durable function: a step, a two-second timer, then a second step
//! that reads the first one's result.
//!
//! Lambda checkpoints each operation. The timer ends the invocation; when it
//! fires, the function is invoked again and replays the handler from the top:
//! recorded steps return their saved result instead of running again. Keep
//! the handler deterministic (same operations, same order) and put side
//! effects inside steps.

use std::sync::Arc;
use std::time::Duration;

use aws_durable_execution_sdk as durable;
use serde::{Deserialize, Serialize};

/// The event that starts an execution.
#[derive(Debug, Deserialize, Serialize)]
struct Request {
    name: String,
}

async fn handler(
    greeting: Arc<String>,
    request: Request,
    ctx: durable::DurableContext,
) -> Result<String, durable::BoxError> {
    let name = ctx
        .step(move |_| async move { Ok(request.name) })
        .name("fetch-name")
        .await?;

    ctx.wait(Duration::from_secs(2)).name("cooldown").await?;

    let greeting = ctx
        .step(move |_| async move { Ok(format!("{greeting}, {name}")) })
        .name("format")
        .await?;

    Ok(greeting)
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    // JSON logs when AWS_LAMBDA_LOG_FORMAT=JSON; level from AWS_LAMBDA_LOG_LEVEL or RUST_LOG.
    lambda_runtime::tracing::init_default_subscriber();
    // Settings are read once, at the cold start (see `[package.metadata.fn] env`).
    let greeting = Arc::new(std::env::var("GREETING").unwrap_or_else(|_| "hello".to_string()));
    durable::run(move |request, ctx| handler(greeting.clone(), request, ctx)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use durable::test_util::LocalRunner;

    #[tokio::test]
    async fn greets_after_the_timer_and_runs_each_step_once() {
        let request: Request =
            serde_json::from_str(include_str!("../events/example.json")).unwrap();
        let result = LocalRunner::new()
            .run(
                |request, ctx| handler(Arc::new("hello".to_string()), request, ctx),
                request,
            )
            .await;
        assert_eq!(result.output().map(String::as_str), Some("hello, world"));
        // The timer ended the first invocation; the second replayed the first step.
        assert!(result.invocation_count() >= 2);
        let names: Vec<_> = result.operations().iter().filter_map(|o| o.name()).collect();
        assert_eq!(names, ["fetch-name", "cooldown", "format"]);
    }
}
