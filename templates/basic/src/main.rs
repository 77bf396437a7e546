//! A Lambda function that takes a JSON event and returns a JSON response.
//!
//! Everything that is costly or reads configuration happens once in `main`
//! (the cold start); the handler only does per-request work.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde::{Deserialize, Serialize};

/// The event this function accepts.
#[derive(Debug, Deserialize)]
struct Request {
    name: String,
}

/// The response it returns.
#[derive(Debug, Serialize, PartialEq)]
struct Response {
    message: String,
}

/// Settings read once from the environment (see `[package.metadata.fn] env`).
#[derive(Debug)]
struct Config {
    greeting: String,
}

impl Config {
    fn from_env() -> Self {
        Config {
            greeting: std::env::var("GREETING").unwrap_or_else(|_| "Hello".to_string()),
        }
    }
}

async fn handler(config: &Config, event: LambdaEvent<Request>) -> Result<Response, Error> {
    let (request, context) = event.into_parts();
    tracing::info!(request_id = %context.request_id, name = %request.name, "greeting");
    if request.name.trim().is_empty() {
        // An Err becomes a Lambda function error; the environment stays warm.
        return Err("`name` must not be empty".into());
    }
    Ok(Response {
        message: format!("{}, {}!", config.greeting, request.name),
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
            greeting: "Hello".to_string(),
        }
    }

    #[tokio::test]
    async fn greets_by_name() {
        let request: Request =
            serde_json::from_str(include_str!("../events/example.json")).unwrap();
        let response = handler(&config(), LambdaEvent::new(request, Context::default()))
            .await
            .unwrap();
        assert_eq!(response.message, "Hello, world!");
    }

    #[tokio::test]
    async fn rejects_an_empty_name() {
        let request = Request {
            name: " ".to_string(),
        };
        let result = handler(&config(), LambdaEvent::new(request, Context::default())).await;
        assert!(result.is_err());
    }
}
