//! The durable execution operations of the Lambda API behind plain types,
//! for `cargo fn durable`: ListDurableExecutionsByFunction,
//! GetDurableExecution, GetDurableExecutionHistory, StopDurableExecution
//! and SendDurableExecutionCallbackSuccess/Failure/Heartbeat. The same
//! aws-sdk-lambda client reaches AWS or the local service under
//! `cargo fn watch` (it serves the same REST routes), as in [`super::invoke`].
//!
//! Knows nothing of how results are shown: times come out as RFC 3339
//! text, statuses and event types as the API spells them, and failures as
//! an [`ApiError`] naming the IAM action.

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{Event, EventError, EventResult, ExecutionStatus};
use aws_smithy_types::DateTime;
use aws_smithy_types::date_time::Format;

use super::ApiError;
use super::invoke::Endpoint;
use super::sdk::{api_err, local_lambda_client, remote_lambda_client};

/// One execution as ListDurableExecutionsByFunction returns it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ExecutionSummary {
    pub arn: String,
    pub name: String,
    pub function_arn: String,
    /// `RUNNING`, `SUCCEEDED`, `FAILED`, `TIMED_OUT` or `STOPPED`.
    pub status: String,
    pub started: String,
    pub ended: Option<String>,
}

/// An error object (ErrorObject) as the API reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ErrorInfo {
    pub error_type: Option<String>,
    pub message: Option<String>,
    pub data: Option<String>,
}

/// GetDurableExecution's answer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ExecutionDetail {
    #[serde(flatten)]
    pub summary: ExecutionSummary,
    /// The published version it runs (or `$LATEST`).
    pub version: Option<String>,
    pub input: Option<String>,
    pub result: Option<String>,
    pub error: Option<ErrorInfo>,
}

/// One event of GetDurableExecutionHistory, its type-specific details
/// folded into the few fields a timeline shows.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct HistoryEvent {
    pub event_id: i32,
    /// `StepStarted`, `WaitSucceeded`, `CallbackStarted`, ...
    pub event_type: String,
    pub sub_type: Option<String>,
    /// The operation the event belongs to.
    pub operation_id: Option<String>,
    pub name: Option<String>,
    pub parent_id: Option<String>,
    pub timestamp: Option<String>,
    /// A step's attempt number (retries: 2, 3, ...).
    pub attempt: Option<i32>,
    /// The delay before the next attempt of a failed step, in seconds.
    pub next_attempt_delay_seconds: Option<i32>,
    /// A wait's duration in seconds.
    pub wait_seconds: Option<i32>,
    /// When a wait ends.
    pub wait_until: Option<String>,
    pub callback_id: Option<String>,
    pub callback_timeout_seconds: Option<i32>,
    /// A chained invoke's target function.
    pub function_name: Option<String>,
    /// An invocation's request id (InvocationCompleted: one per replay).
    pub request_id: Option<String>,
    /// Input, result or error payload, when the history carries data.
    pub payload: Option<String>,
    pub error: Option<ErrorInfo>,
}

/// Which executions to list.
#[derive(Debug, Clone, Default)]
pub struct ListFilter<'a> {
    pub qualifier: Option<&'a str>,
    pub name: Option<&'a str>,
    /// API spellings (`RUNNING`, ...); empty = all.
    pub statuses: &'a [String],
    /// At most this many (newest first); `None` = every page.
    pub max: Option<usize>,
}

async fn client(endpoint: &Endpoint) -> aws_sdk_lambda::Client {
    match endpoint {
        Endpoint::Local(url) => local_lambda_client(url),
        Endpoint::Remote(opts) => remote_lambda_client(opts).await,
    }
}

fn time(t: &DateTime) -> String {
    t.fmt(Format::DateTime)
        .unwrap_or_else(|_| t.secs().to_string())
}

fn error_info(e: &aws_sdk_lambda::types::ErrorObject) -> ErrorInfo {
    ErrorInfo {
        error_type: e.error_type().map(str::to_string),
        message: e.error_message().map(str::to_string),
        data: e.error_data().map(str::to_string),
    }
}

fn error_object(e: &ErrorInfo) -> aws_sdk_lambda::types::ErrorObject {
    aws_sdk_lambda::types::ErrorObject::builder()
        .set_error_type(e.error_type.clone())
        .set_error_message(e.message.clone())
        .set_error_data(e.data.clone())
        .build()
}

/// ListDurableExecutionsByFunction, newest first, following `NextMarker`.
pub async fn list(
    endpoint: &Endpoint,
    function: &str,
    filter: &ListFilter<'_>,
) -> Result<Vec<ExecutionSummary>, ApiError> {
    let client = client(endpoint).await;
    let statuses: Vec<ExecutionStatus> = filter
        .statuses
        .iter()
        .map(|s| ExecutionStatus::from(s.as_str()))
        .collect();
    let mut out = Vec::new();
    let mut marker = None;
    loop {
        let page = client
            .list_durable_executions_by_function()
            .function_name(function)
            .set_qualifier(filter.qualifier.map(str::to_string))
            .set_durable_execution_name(filter.name.map(str::to_string))
            .set_statuses((!statuses.is_empty()).then(|| statuses.clone()))
            .reverse_order(true)
            .set_marker(marker.take())
            .send()
            .await
            .map_err(|e| api_err("lambda:ListDurableExecutionsByFunction", e))?;
        for e in page.durable_executions() {
            out.push(ExecutionSummary {
                arn: e.durable_execution_arn().to_string(),
                name: e.durable_execution_name().to_string(),
                function_arn: e.function_arn().to_string(),
                status: e.status().as_str().to_string(),
                started: time(e.start_timestamp()),
                ended: e.end_timestamp().map(time),
            });
        }
        if filter.max.is_some_and(|m| out.len() >= m) {
            out.truncate(filter.max.unwrap_or(usize::MAX));
            return Ok(out);
        }
        match page.next_marker() {
            Some(m) if !m.is_empty() => marker = Some(m.to_string()),
            _ => return Ok(out),
        }
    }
}

/// GetDurableExecution.
pub async fn get(endpoint: &Endpoint, arn: &str) -> Result<ExecutionDetail, ApiError> {
    let out = client(endpoint)
        .await
        .get_durable_execution()
        .durable_execution_arn(arn)
        .send()
        .await
        .map_err(|e| api_err("lambda:GetDurableExecution", e))?;
    Ok(ExecutionDetail {
        summary: ExecutionSummary {
            arn: out.durable_execution_arn().to_string(),
            name: out.durable_execution_name().to_string(),
            function_arn: out.function_arn().to_string(),
            status: out.status().as_str().to_string(),
            started: time(out.start_timestamp()),
            ended: out.end_timestamp().map(time),
        },
        version: out.version().map(str::to_string),
        input: out.input_payload().map(str::to_string),
        result: out.result().map(str::to_string),
        error: out.error().map(error_info),
    })
}

/// GetDurableExecutionHistory with execution data, oldest first, every page.
pub async fn history(endpoint: &Endpoint, arn: &str) -> Result<Vec<HistoryEvent>, ApiError> {
    let client = client(endpoint).await;
    let mut out = Vec::new();
    let mut marker = None;
    loop {
        let page = client
            .get_durable_execution_history()
            .durable_execution_arn(arn)
            .include_execution_data(true)
            .set_marker(marker.take())
            .send()
            .await
            .map_err(|e| api_err("lambda:GetDurableExecutionHistory", e))?;
        out.extend(page.events().iter().map(history_event));
        match page.next_marker() {
            Some(m) if !m.is_empty() => marker = Some(m.to_string()),
            _ => return Ok(out),
        }
    }
}

/// StopDurableExecution; returns when it stopped.
pub async fn stop(
    endpoint: &Endpoint,
    arn: &str,
    error: Option<&ErrorInfo>,
) -> Result<String, ApiError> {
    let out = client(endpoint)
        .await
        .stop_durable_execution()
        .durable_execution_arn(arn)
        .set_error(error.map(error_object))
        .send()
        .await
        .map_err(|e| api_err("lambda:StopDurableExecution", e))?;
    Ok(time(out.stop_timestamp()))
}

/// How to complete a callback.
#[derive(Debug, Clone)]
pub enum CallbackAnswer {
    /// SendDurableExecutionCallbackSuccess with this result (JSON text).
    Success(Option<Vec<u8>>),
    /// SendDurableExecutionCallbackFailure.
    Failure(ErrorInfo),
    /// SendDurableExecutionCallbackHeartbeat.
    Heartbeat,
}

/// One of the three SendDurableExecutionCallback* operations.
pub async fn callback(
    endpoint: &Endpoint,
    callback_id: &str,
    answer: &CallbackAnswer,
) -> Result<(), ApiError> {
    let client = client(endpoint).await;
    match answer {
        CallbackAnswer::Success(result) => client
            .send_durable_execution_callback_success()
            .callback_id(callback_id)
            .set_result(result.clone().map(Blob::new))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| api_err("lambda:SendDurableExecutionCallbackSuccess", e)),
        CallbackAnswer::Failure(error) => client
            .send_durable_execution_callback_failure()
            .callback_id(callback_id)
            .error(error_object(error))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| api_err("lambda:SendDurableExecutionCallbackFailure", e)),
        CallbackAnswer::Heartbeat => client
            .send_durable_execution_callback_heartbeat()
            .callback_id(callback_id)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| api_err("lambda:SendDurableExecutionCallbackHeartbeat", e)),
    }
}

fn result_payload(r: Option<&EventResult>) -> Option<String> {
    r.and_then(|r| r.payload()).map(str::to_string)
}

fn event_error(e: Option<&EventError>) -> Option<ErrorInfo> {
    e.and_then(|e| e.payload()).map(error_info)
}

/// One SDK event as a [`HistoryEvent`]: the one details member the event
/// type sets, read into the shared fields.
fn history_event(e: &Event) -> HistoryEvent {
    let mut h = HistoryEvent {
        event_id: e.event_id(),
        event_type: e
            .event_type()
            .map(|t| t.as_str().to_string())
            .unwrap_or_default(),
        sub_type: e.sub_type().map(str::to_string),
        operation_id: e.id().map(str::to_string),
        name: e.name().map(str::to_string),
        parent_id: e.parent_id().map(str::to_string),
        timestamp: e.event_timestamp().map(time),
        ..HistoryEvent::default()
    };
    if let Some(d) = e.execution_started_details() {
        h.payload = d.input().and_then(|i| i.payload()).map(str::to_string);
    }
    if let Some(d) = e.execution_succeeded_details() {
        h.payload = result_payload(d.result());
    }
    for err in [
        e.execution_failed_details().map(|d| d.error()),
        e.execution_timed_out_details().map(|d| d.error()),
        e.execution_stopped_details().map(|d| d.error()),
        e.context_failed_details().map(|d| d.error()),
        e.wait_cancelled_details().map(|d| d.error()),
        e.callback_failed_details().map(|d| d.error()),
        e.callback_timed_out_details().map(|d| d.error()),
        e.chained_invoke_failed_details().map(|d| d.error()),
        e.chained_invoke_timed_out_details().map(|d| d.error()),
        e.chained_invoke_stopped_details().map(|d| d.error()),
    ]
    .into_iter()
    .flatten()
    {
        h.error = event_error(err);
    }
    for res in [
        e.context_succeeded_details().map(|d| d.result()),
        e.callback_succeeded_details().map(|d| d.result()),
        e.chained_invoke_succeeded_details().map(|d| d.result()),
    ]
    .into_iter()
    .flatten()
    {
        h.payload = result_payload(res);
    }
    if let Some(d) = e.step_succeeded_details() {
        h.payload = result_payload(d.result());
        h.attempt = d.retry_details().map(|r| r.current_attempt());
    }
    if let Some(d) = e.step_failed_details() {
        h.error = event_error(d.error());
        h.attempt = d.retry_details().map(|r| r.current_attempt());
        h.next_attempt_delay_seconds = d
            .retry_details()
            .and_then(|r| r.next_attempt_delay_seconds());
    }
    if let Some(d) = e.wait_started_details() {
        h.wait_seconds = Some(d.duration());
        h.wait_until = Some(time(d.scheduled_end_timestamp()));
    }
    if let Some(d) = e.wait_succeeded_details() {
        h.wait_seconds = d.duration();
    }
    if let Some(d) = e.callback_started_details() {
        h.callback_id = Some(d.callback_id().to_string());
        h.callback_timeout_seconds = d.timeout();
    }
    if let Some(d) = e.chained_invoke_started_details() {
        h.function_name = Some(d.function_name().to_string());
        h.payload = d.input().and_then(|i| i.payload()).map(str::to_string);
    }
    if let Some(d) = e.invocation_completed_details() {
        h.request_id = Some(d.request_id().to_string());
        h.error = event_error(d.error());
    }
    h
}
