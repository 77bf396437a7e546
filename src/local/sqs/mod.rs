//! The local SQS service: queues in memory, served on the emulator's
//! address with the AWS JSON protocol (awsJson1_0, `X-Amz-Target:
//! AmazonSQS.<Operation>`) that current AWS SDKs and the AWS CLI speak.
//!
//! - `queue`: the model ([`Store`]), plain data driven by a clock it is
//!   handed, its errors already SQS's.
//! - `protocol`: one handler per JSON operation, from request to model call
//!   to answer.
//! - here: [`SqsService`], the store behind a lock with long polling, and
//!   its place among the local JSON services.
//!
//! It knows nothing of functions or pollers: the SQS poller
//! (`sqs_poller`) uses the same public operations as an SDK client.

mod protocol;
mod queue;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::Value;

pub use queue::*;
use queue::{invalid, now_ms, sqs_error};

use super::{AwsError, JsonService, Scope};

/// The local SQS service: a [`Store`] behind a lock, long polling, JSON.
pub struct SqsService {
    store: Mutex<Store>,
    /// Woken on every change that may make a message receivable.
    changed: tokio::sync::Notify,
}

impl SqsService {
    pub fn new(endpoint: &str, scope: &Scope) -> Arc<SqsService> {
        Arc::new(SqsService {
            store: Mutex::new(Store::new(endpoint, scope)),
            changed: tokio::sync::Notify::new(),
        })
    }

    /// Runs `f` on the store (with the current time).
    pub fn with<T>(&self, f: impl FnOnce(&mut Store, u64) -> T) -> T {
        let out = f(&mut self.store.lock().expect("sqs store"), now_ms());
        self.changed.notify_waiters();
        out
    }

    /// Receives up to `max` messages, waiting up to `wait` for the first.
    pub async fn receive(
        &self,
        url: &str,
        max: usize,
        visibility: Option<u32>,
        wait: Duration,
    ) -> Result<(Vec<Received>, Redriven), AwsError> {
        self.receive_fitting(url, max, visibility, wait, &mut |_| true)
            .await
    }

    /// [`receive`](Self::receive) of the messages `fits` accepts
    /// ([`Store::receive_fitting`]).
    pub async fn receive_fitting(
        &self,
        url: &str,
        max: usize,
        visibility: Option<u32>,
        wait: Duration,
        fits: &mut (dyn FnMut(&Received) -> bool + Send),
    ) -> Result<(Vec<Received>, Redriven), AwsError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            // A refused message ends the wait too: the caller is full.
            let mut refused = false;
            let got = self.store.lock().expect("sqs store").receive_fitting(
                url,
                max,
                visibility,
                now_ms(),
                &mut |r| {
                    let ok = fits(r);
                    refused |= !ok;
                    ok
                },
            )?;
            let now = tokio::time::Instant::now();
            if refused || !got.0.is_empty() || !got.1.is_empty() || now >= deadline {
                return Ok(got);
            }
            // Woken by a change, or soon anyway (a visibility timeout or delay ending).
            let nap = (deadline - now).min(Duration::from_millis(100));
            tokio::select! {
                _ = changed => {}
                _ = tokio::time::sleep(nap) => {}
            }
        }
    }
}

impl JsonService for SqsService {
    fn target_prefix(&self) -> &'static str {
        "AmazonSQS"
    }

    /// A body too large to read is over SQS's own size limits.
    fn too_large(&self, operation: &str) -> AwsError {
        if operation == "SendMessageBatch" {
            return sqs_error(
                "BatchRequestTooLong",
                "AWS.SimpleQueueService.BatchRequestTooLong",
                format!("Batch requests cannot be longer than {MAX_MESSAGE} bytes."),
            );
        }
        invalid(format!(
            "One or more parameters are invalid. Reason: Message must be shorter than {MAX_MESSAGE} bytes."
        ))
    }

    fn call(&self, operation: &str, input: Value) -> BoxFuture<'_, Result<Value, AwsError>> {
        let op = operation.to_string();
        Box::pin(async move { protocol::operation(self, &op, &input).await })
    }
}
