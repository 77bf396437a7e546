//! Local triggers (placeholder until the shared framework lands): the
//! shapes of LOCAL.md that the stream modules are written against.

pub mod kinesis;
pub mod stream_poller;
pub mod streams;

use futures_util::future::BoxFuture;

/// An AWS JSON-protocol service on the emulator's address.
pub trait JsonService: Send + Sync + 'static {
    fn target_prefix(&self) -> &'static str;
    fn call(
        &self,
        operation: &str,
        input: serde_json::Value,
    ) -> BoxFuture<'_, Result<serde_json::Value, AwsError>>;
}

/// An error as the AWS JSON protocols render it.
#[derive(Debug, Clone)]
pub struct AwsError {
    pub status: u16,
    pub code: String,
    pub message: String,
}

/// A trigger source: status and "fire now".
pub trait Source: Send + Sync + 'static {
    fn function(&self) -> &str;
    fn trigger(&self) -> &str;
    fn kind(&self) -> &'static str;
    fn status(&self) -> serde_json::Value;
    fn fire(
        &self,
        payload: Option<serde_json::Value>,
    ) -> BoxFuture<'_, anyhow::Result<serde_json::Value>>;
}
