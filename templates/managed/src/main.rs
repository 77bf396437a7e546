//! A Lambda function for Lambda Managed Instances: one execution
//! environment (this process) serves several requests at the same time.
//!
//! `run_concurrent` starts `AWS_LAMBDA_MAX_CONCURRENCY` tasks, each polling
//! for its own request, so the handler runs concurrently with itself. State
//! shared by requests is built once in `main`, held in an `Arc`, and only
//! changed through atomics or a lock: no `static mut`, no global buffer or
//! fixed temp file that two requests could write at once. (Without the
//! variable, on classic Lambda, the same code handles one request at a time.)

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

/// The event this function accepts.
#[derive(Debug, Deserialize)]
struct Request {
    name: String,
    /// Stands in for I/O (a database or HTTP call) so requests overlap.
    #[serde(default)]
    wait_ms: u64,
}

/// The response it returns.
#[derive(Debug, Serialize, PartialEq)]
struct Response {
    message: String,
    /// Requests this environment has served, this one included.
    served: u64,
    /// Requests in progress in this environment when this one started.
    in_flight: usize,
    /// The names of the latest requests (at most `RECENT`), newest last.
    recent: Vec<String>,
}

/// How many names `State::recent` keeps.
const RECENT: usize = 5;

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

/// What every request of this environment shares. Counters are atomics;
/// the list is behind an async lock held only while it is changed (never
/// across an `.await` on I/O).
#[derive(Debug)]
struct State {
    config: Config,
    served: AtomicU64,
    in_flight: AtomicUsize,
    recent: Mutex<VecDeque<String>>,
}

impl State {
    fn new(config: Config) -> Self {
        State {
            config,
            served: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            recent: Mutex::new(VecDeque::with_capacity(RECENT)),
        }
    }
}

async fn handler(state: Arc<State>, event: LambdaEvent<Request>) -> Result<Response, Error> {
    let (request, context) = event.into_parts();
    // Per-request data (the request id, the trace id) comes from the
    // context, never from process-wide environment variables.
    tracing::info!(request_id = %context.request_id, name = %request.name, "greeting");
    if request.name.trim().is_empty() {
        // An Err becomes a Lambda function error for this request only.
        return Err("`name` must not be empty".into());
    }
    let in_flight = state.in_flight.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(request.wait_ms.min(10_000))).await;
    let served = state.served.fetch_add(1, Ordering::SeqCst) + 1;
    let recent = {
        let mut recent = state.recent.lock().await;
        if recent.len() == RECENT {
            recent.pop_front();
        }
        recent.push_back(request.name.clone());
        recent.iter().cloned().collect()
    };
    state.in_flight.fetch_sub(1, Ordering::SeqCst);
    Ok(Response {
        message: format!("{}, {}!", state.config.greeting, request.name),
        served,
        in_flight,
        recent,
    })
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    // JSON logs when AWS_LAMBDA_LOG_FORMAT=JSON; level from AWS_LAMBDA_LOG_LEVEL or RUST_LOG.
    lambda_runtime::tracing::init_default_subscriber();
    let state = Arc::new(State::new(Config::from_env()));
    // The handler is cloned into each polling task: it holds the `Arc`.
    lambda_runtime::run_concurrent(service_fn(move |event| handler(state.clone(), event))).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_runtime::Context;

    fn state() -> Arc<State> {
        Arc::new(State::new(Config {
            greeting: "Hello".to_string(),
        }))
    }

    fn event(name: &str, wait_ms: u64) -> LambdaEvent<Request> {
        let request = Request {
            name: name.to_string(),
            wait_ms,
        };
        LambdaEvent::new(request, Context::default())
    }

    #[tokio::test]
    async fn greets_by_name() {
        let request: Request =
            serde_json::from_str(include_str!("../events/example.json")).unwrap();
        let response = handler(state(), LambdaEvent::new(request, Context::default()))
            .await
            .unwrap();
        assert_eq!(response.message, "Hello, world!");
        assert_eq!(response.served, 1);
    }

    /// Two requests at once in one process, as a managed-instances
    /// environment runs them: each sees the other in flight, and the shared
    /// state counts both exactly once.
    #[tokio::test]
    async fn serves_two_requests_at_once_from_one_process() {
        let state = state();
        let (a, b) = tokio::join!(
            handler(state.clone(), event("a", 200)),
            handler(state.clone(), event("b", 200)),
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(
            a.in_flight + b.in_flight,
            1,
            "one started while the other ran"
        );
        let mut served = [a.served, b.served];
        served.sort();
        assert_eq!(served, [1, 2]);
        assert_eq!(state.served.load(Ordering::SeqCst), 2);
        assert_eq!(state.in_flight.load(Ordering::SeqCst), 0);
        assert_eq!(state.recent.lock().await.len(), 2);
    }

    #[tokio::test]
    async fn rejects_an_empty_name() {
        assert!(handler(state(), event(" ", 0)).await.is_err());
    }
}
