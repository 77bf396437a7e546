//! CloudWatch Logs behind a narrow seam: the three reads `cargo fn logs`
//! makes ([`LogsApi`]: find a log group, FilterLogEvents one page, a Live
//! Tail session) and their one SDK adapter ([`SdkLogs`]).
//!
//! Knows nothing of functions, versions or request ids: it speaks log
//! groups, streams and events. Errors are [`ApiError`]s naming the IAM
//! action (`logs:FilterLogEvents`, ...).

use aws_sdk_cloudwatchlogs::error::ProvideErrorMetadata;
use aws_sdk_cloudwatchlogs::types::StartLiveTailResponseStream;
use tokio::sync::mpsc;

use super::sdk::{ConnectOptions, api_err, load_config};
use super::{ApiError, ApiResult};

/// One log event.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LogEvent {
    /// CloudWatch's event id; Live Tail events have none.
    pub event_id: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
    /// The log group's name (FilterLogEvents) or ARN (Live Tail).
    pub group: String,
    pub stream: String,
    pub message: String,
}

/// One FilterLogEvents call.
#[derive(Debug, Clone, Default)]
pub struct FilterQuery {
    pub group: String,
    /// Inclusive, ms since the epoch.
    pub start_ms: i64,
    pub end_ms: Option<i64>,
    /// CloudWatch filter pattern syntax.
    pub pattern: Option<String>,
    pub next_token: Option<String>,
}

/// One page of events (oldest first) and the token for the next.
#[derive(Debug, Clone, Default)]
pub struct EventPage {
    pub events: Vec<LogEvent>,
    pub next_token: Option<String>,
}

/// The CloudWatch Logs reads `logs` uses.
#[allow(async_fn_in_trait)] // used from one task; no Send bound needed
pub trait LogsApi {
    /// The group's ARN (without the trailing `:*`), or `None` when it does
    /// not exist.
    async fn group_arn(&self, group: &str) -> ApiResult<Option<String>>;
    async fn filter(&self, query: &FilterQuery) -> ApiResult<EventPage>;
    /// Whether [`LogsApi::live_tail`] can be tried (AWS itself, not an
    /// emulator that lacks the streaming endpoint).
    fn live_tail_available(&self) -> bool;
    /// Streams a Live Tail session's events to `tx` until it ends (Live
    /// Tail sessions last up to 3 hours) or `tx` closes. `Err` before the
    /// first event means Live Tail is not usable here.
    async fn live_tail(
        &self,
        group_arns: &[String],
        pattern: Option<&str>,
        tx: mpsc::Sender<LogEvent>,
    ) -> ApiResult<()>;
}

/// The SDK adapter.
#[derive(Debug, Clone)]
pub struct SdkLogs {
    client: aws_sdk_cloudwatchlogs::Client,
    /// `--endpoint-url` / `AWS_ENDPOINT_URL` points elsewhere than AWS.
    custom_endpoint: bool,
}

/// Builds the client from the same configuration chain as the Lambda one.
pub async fn connect(opts: &ConnectOptions) -> anyhow::Result<SdkLogs> {
    let (config, _region) = load_config(opts).await?;
    Ok(SdkLogs {
        custom_endpoint: config.endpoint_url().is_some(),
        client: super::sdk::logged_client!(aws_sdk_cloudwatchlogs, &config),
    })
}

impl LogsApi for SdkLogs {
    async fn group_arn(&self, group: &str) -> ApiResult<Option<String>> {
        const OP: &str = "logs:DescribeLogGroups";
        let mut token = None;
        loop {
            let out = self
                .client
                .describe_log_groups()
                .log_group_name_prefix(group)
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| api_err(OP, e))?;
            for g in out.log_groups() {
                if g.log_group_name() == Some(group) {
                    let arn = g
                        .log_group_arn()
                        .map(str::to_string)
                        .or_else(|| g.arn().map(|a| a.trim_end_matches(":*").to_string()))
                        .unwrap_or_default();
                    return Ok(Some(arn));
                }
            }
            match out.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => return Ok(None),
            }
        }
    }

    async fn filter(&self, q: &FilterQuery) -> ApiResult<EventPage> {
        let out = self
            .client
            .filter_log_events()
            .log_group_name(&q.group)
            .start_time(q.start_ms)
            .set_end_time(q.end_ms)
            .set_filter_pattern(q.pattern.clone())
            .set_next_token(q.next_token.clone())
            .send()
            .await
            .map_err(|e| api_err("logs:FilterLogEvents", e))?;
        let events = out
            .events()
            .iter()
            .map(|e| LogEvent {
                event_id: e.event_id().map(str::to_string),
                timestamp: e.timestamp().unwrap_or_default(),
                group: q.group.clone(),
                stream: e.log_stream_name().unwrap_or_default().to_string(),
                message: e.message().unwrap_or_default().to_string(),
            })
            .collect();
        Ok(EventPage {
            events,
            next_token: out
                .next_token()
                .filter(|t| !t.is_empty())
                .map(str::to_string),
        })
    }

    fn live_tail_available(&self) -> bool {
        !self.custom_endpoint
    }

    async fn live_tail(
        &self,
        group_arns: &[String],
        pattern: Option<&str>,
        tx: mpsc::Sender<LogEvent>,
    ) -> ApiResult<()> {
        const OP: &str = "logs:StartLiveTail";
        let mut out = self
            .client
            .start_live_tail()
            .set_log_group_identifiers(Some(group_arns.to_vec()))
            .set_log_event_filter_pattern(pattern.map(str::to_string))
            .send()
            .await
            .map_err(|e| api_err(OP, e))?;
        loop {
            let next = out.response_stream.recv().await.map_err(|e| {
                let (code, message) = match e.as_service_error() {
                    Some(s) => (
                        s.code().unwrap_or("LiveTailError").to_string(),
                        s.message().unwrap_or_default().to_string(),
                    ),
                    None => ("LiveTailError".to_string(), e.to_string()),
                };
                ApiError::new(OP, &code, message)
            })?;
            let Some(StartLiveTailResponseStream::SessionUpdate(update)) = next else {
                match next {
                    None => return Ok(()),
                    Some(_) => continue,
                }
            };
            for e in update.session_results() {
                let event = LogEvent {
                    event_id: None,
                    timestamp: e.timestamp().unwrap_or_default(),
                    group: e.log_group_identifier().unwrap_or_default().to_string(),
                    stream: e.log_stream_name().unwrap_or_default().to_string(),
                    message: e.message().unwrap_or_default().to_string(),
                };
                if tx.send(event).await.is_err() {
                    return Ok(());
                }
            }
        }
    }
}
