//! The Invoke API behind plain types, for `cargo fn invoke`: one `Invoke`
//! or one `InvokeWithResponseStream`, against the local emulator or the
//! real service, through the same aws-sdk-lambda client (the emulator
//! speaks the same wire protocol).
//!
//! Knows nothing of examples, payload sources or what the user is told: it
//! returns what the service answered, and a failure as the SDK's text plus
//! whether the service answered at all (the caller words the hint).

use aws_sdk_lambda::error::{DisplayErrorContext, SdkError};
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{
    InvocationType, InvokeWithResponseStreamResponseEvent as Event, LogType,
    ResponseStreamingInvocationType,
};

use super::sdk::{ConnectOptions, local_lambda_client, remote_lambda_client};

/// Which Invoke API to call.
#[derive(Debug, Clone)]
pub enum Endpoint {
    /// The local emulator, e.g. `http://127.0.0.1:9000`: fixed local
    /// credentials, no retries.
    Local(String),
    /// The real service (or a double), with the developer's configuration.
    Remote(ConnectOptions),
}

/// One invocation.
#[derive(Debug, Clone)]
pub struct InvokeCall<'a> {
    pub function: &'a str,
    pub qualifier: Option<&'a str>,
    pub payload: &'a [u8],
    /// `X-Amz-Log-Type: Tail`.
    pub tail_log: bool,
    /// `InvocationType: Event` (ignored by [`invoke_stream`]).
    pub asynchronous: bool,
}

/// What `Invoke` answered.
#[derive(Debug, Clone)]
pub struct InvokeReply {
    pub status: i32,
    pub payload: Vec<u8>,
    pub function_error: Option<String>,
    /// The log tail as sent: base64.
    pub log_result: Option<String>,
    pub executed_version: Option<String>,
    pub request_id: Option<String>,
    /// The execution a durable function's invoke started.
    pub durable_execution_arn: Option<String>,
}

/// How a response stream ended.
#[derive(Debug, Clone, Default)]
pub struct StreamEnd {
    /// `InvokeComplete`'s ErrorCode and ErrorDetails.
    pub error: Option<(String, String)>,
    /// The log tail as sent: base64.
    pub log_result: Option<String>,
    pub bytes: u64,
}

/// Why an invocation did not come back.
#[derive(Debug)]
pub enum InvokeFailure {
    /// The call failed; `service` is whether the service answered (an error
    /// response) rather than the request not getting through.
    Call { detail: String, service: bool },
    /// The response stream broke after it started.
    Broken(String),
    /// Writing a chunk to the caller's output failed.
    Write(std::io::Error),
}

async fn client(endpoint: &Endpoint) -> aws_sdk_lambda::Client {
    match endpoint {
        Endpoint::Local(url) => local_lambda_client(url),
        Endpoint::Remote(opts) => remote_lambda_client(opts).await,
    }
}

/// One `Invoke` (`lambda:InvokeFunction`).
pub async fn invoke(
    endpoint: &Endpoint,
    call: &InvokeCall<'_>,
) -> Result<InvokeReply, InvokeFailure> {
    let client = client(endpoint).await;
    let mut req = client
        .invoke()
        .function_name(call.function)
        .payload(Blob::new(call.payload.to_vec()))
        .set_qualifier(call.qualifier.map(str::to_string));
    if call.asynchronous {
        req = req.invocation_type(InvocationType::Event);
    } else if call.tail_log {
        req = req.log_type(LogType::Tail);
    }
    let out = req.send().await.map_err(call_failure)?;
    Ok(InvokeReply {
        status: out.status_code(),
        payload: out
            .payload()
            .map(|b| b.as_ref().to_vec())
            .unwrap_or_default(),
        function_error: out.function_error().map(str::to_string),
        log_result: out.log_result().map(str::to_string),
        executed_version: out.executed_version().map(str::to_string),
        request_id: aws_sdk_lambda::operation::RequestId::request_id(&out).map(str::to_string),
        durable_execution_arn: out.durable_execution_arn().map(str::to_string),
    })
}

/// One `InvokeWithResponseStream` (`lambda:InvokeFunction`): writes each
/// payload chunk to `out` (and flushes it) as it arrives.
pub async fn invoke_stream(
    endpoint: &Endpoint,
    call: &InvokeCall<'_>,
    out: &mut (dyn std::io::Write + Send),
) -> Result<StreamEnd, InvokeFailure> {
    let client = client(endpoint).await;
    let mut req = client
        .invoke_with_response_stream()
        .function_name(call.function)
        .payload(Blob::new(call.payload.to_vec()))
        .set_qualifier(call.qualifier.map(str::to_string))
        .invocation_type(ResponseStreamingInvocationType::RequestResponse);
    if call.tail_log {
        req = req.log_type(LogType::Tail);
    }
    let resp = req.send().await.map_err(call_failure)?;
    let mut events = resp.event_stream;
    let mut end = StreamEnd::default();
    loop {
        let event = events
            .recv()
            .await
            .map_err(|e| InvokeFailure::Broken(format!("{}", DisplayErrorContext(&e))))?;
        match event {
            Some(Event::PayloadChunk(chunk)) => {
                if let Some(bytes) = chunk.payload() {
                    out.write_all(bytes.as_ref())
                        .and_then(|()| out.flush())
                        .map_err(InvokeFailure::Write)?;
                    end.bytes += bytes.as_ref().len() as u64;
                }
            }
            Some(Event::InvokeComplete(done)) => {
                if let Some(code) = done.error_code() {
                    end.error = Some((
                        code.to_string(),
                        done.error_details().unwrap_or_default().to_string(),
                    ));
                }
                end.log_result = done.log_result().map(str::to_string);
            }
            Some(_) => {}
            None => break,
        }
    }
    Ok(end)
}

/// The service's own error text when it answered, else the SDK's whole
/// chain (connection refused, timeout, ...).
fn call_failure<E, R>(e: SdkError<E, R>) -> InvokeFailure
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match e.as_service_error() {
        Some(se) => InvokeFailure::Call {
            detail: format!("{se}"),
            service: true,
        },
        None => InvokeFailure::Call {
            detail: format!("{}", DisplayErrorContext(&e)),
            service: false,
        },
    }
}
