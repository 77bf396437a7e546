//! `cargo fn invoke`: one invocation through the Invoke API, either of the
//! local emulator (`cargo fn watch`) or of the real service, plus the
//! embedded library of example events (offline, realistic payloads from
//! the event sources people wire to Lambda).
//!
//! Both targets go through the same aws-sdk-lambda client
//! ([`crate::aws::invoke`]): the emulator speaks the same wire protocol, so
//! the local path exercises exactly what a real client sends. This module
//! knows nothing of the emulator's internals, and words what the user is
//! told.

use anyhow::{Context, Result};
use base64::Engine;

use crate::aws::invoke::{Endpoint, InvokeCall, InvokeFailure};
use crate::error::hinted;

/// One example event: its name (for `--example`), what it is, and the JSON.
pub struct Example {
    pub name: &'static str,
    pub description: &'static str,
    pub json: &'static str,
}

/// Every embedded example event.
pub const EXAMPLES: &[Example] = &[
    Example {
        name: "apigw-rest",
        description: "API Gateway REST API proxy request (payload format 1.0)",
        json: include_str!("invoke/examples/apigw-rest.json"),
    },
    Example {
        name: "apigw-http",
        description: "API Gateway HTTP API request (payload format 2.0)",
        json: include_str!("invoke/examples/apigw-http.json"),
    },
    Example {
        name: "function-url",
        description: "Lambda function URL request",
        json: include_str!("invoke/examples/function-url.json"),
    },
    Example {
        name: "sqs",
        description: "SQS batch with one message",
        json: include_str!("invoke/examples/sqs.json"),
    },
    Example {
        name: "sns",
        description: "SNS notification",
        json: include_str!("invoke/examples/sns.json"),
    },
    Example {
        name: "s3",
        description: "S3 ObjectCreated:Put notification",
        json: include_str!("invoke/examples/s3.json"),
    },
    Example {
        name: "eventbridge-scheduled",
        description: "EventBridge scheduled rule (cron/rate)",
        json: include_str!("invoke/examples/eventbridge-scheduled.json"),
    },
    Example {
        name: "eventbridge",
        description: "EventBridge custom application event",
        json: include_str!("invoke/examples/eventbridge.json"),
    },
    Example {
        name: "kinesis",
        description: "Kinesis Data Streams record batch",
        json: include_str!("invoke/examples/kinesis.json"),
    },
    Example {
        name: "dynamodb-stream",
        description: "DynamoDB stream MODIFY record",
        json: include_str!("invoke/examples/dynamodb-stream.json"),
    },
];

/// The example called `name`, or an error listing the names.
pub fn example(name: &str) -> Result<&'static Example> {
    EXAMPLES.iter().find(|e| e.name == name).ok_or_else(|| {
        let names: Vec<&str> = EXAMPLES.iter().map(|e| e.name).collect();
        hinted(
            format!("no example event named `{name}` (from --example)"),
            format!("available: {}", names.join(", ")),
        )
    })
}

/// Where the invocation goes.
#[derive(Debug, Clone)]
pub enum Target {
    /// The local emulator's Invoke API, e.g. `http://127.0.0.1:9000`.
    Local { endpoint: String },
    /// The real service, with the developer's AWS configuration.
    Remote {
        profile: Option<String>,
        region: Option<String>,
        endpoint_url: Option<String>,
    },
}

/// One invocation to make.
#[derive(Debug, Clone)]
pub struct InvokeOptions {
    pub function: String,
    pub qualifier: Option<String>,
    pub payload: Vec<u8>,
    pub target: Target,
    /// Ask for the last 4 KB of the log (`X-Amz-Log-Type: Tail`).
    pub tail_log: bool,
    /// Queue the invocation (`Event`) instead of waiting for the result.
    pub asynchronous: bool,
}

/// What came back.
#[derive(Debug, Clone)]
pub struct InvokeOutcome {
    pub status: i32,
    pub payload: Vec<u8>,
    /// `Unhandled` when the function failed.
    pub function_error: Option<String>,
    /// The decoded tail of the log, when asked for.
    pub log: Option<String>,
    pub executed_version: Option<String>,
    /// The invocation's request id (`x-amz-request-id`), when given.
    pub request_id: Option<String>,
    /// The durable execution the invoke started (durable functions).
    pub durable_execution_arn: Option<String>,
}

/// Checks that a payload is JSON, naming where it came from.
pub fn check_json(payload: &[u8], source: &str) -> Result<()> {
    serde_json::from_slice::<serde::de::IgnoredAny>(payload)
        .map(|_| ())
        .map_err(|e| {
            hinted(
                format!("{source} is not valid JSON: {e}"),
                "Lambda payloads are JSON documents, e.g. --data '{\"key\":\"value\"}'",
            )
        })
}

/// The adapter's view of the target.
fn endpoint(target: &Target) -> Endpoint {
    match target {
        Target::Local { endpoint } => Endpoint::Local(endpoint.clone()),
        Target::Remote {
            profile,
            region,
            endpoint_url,
        } => Endpoint::Remote(crate::aws::sdk::ConnectOptions {
            profile: profile.clone(),
            region: region.clone(),
            endpoint_url: endpoint_url.clone(),
            upload_progress: None,
        }),
    }
}

/// The adapter's view of the invocation.
fn call(opts: &InvokeOptions) -> InvokeCall<'_> {
    InvokeCall {
        function: &opts.function,
        qualifier: opts.qualifier.as_deref(),
        payload: &opts.payload,
        tail_log: opts.tail_log,
        asynchronous: opts.asynchronous,
    }
}

/// A base64 log tail as text.
fn decode_log(encoded: Option<&str>) -> Result<Option<String>> {
    match encoded {
        Some(encoded) => Ok(Some(
            base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .context("decoding the log tail")?,
        )),
        None => Ok(None),
    }
}

/// Invokes the function once.
pub async fn invoke(opts: &InvokeOptions) -> Result<InvokeOutcome> {
    let out = crate::aws::invoke::invoke(&endpoint(&opts.target), &call(opts))
        .await
        .map_err(|e| invoke_error(opts, e))?;
    Ok(InvokeOutcome {
        status: out.status,
        payload: out.payload,
        function_error: out.function_error,
        log: decode_log(out.log_result.as_deref())?,
        executed_version: out.executed_version,
        request_id: out.request_id,
        durable_execution_arn: out.durable_execution_arn,
    })
}

/// What `--async` reports: what was queued, and where its outcome shows up
/// (an Event invocation answers 202 with no result).
pub fn queued_message(opts: &InvokeOptions, outcome: &InvokeOutcome) -> String {
    let qualified = match &opts.qualifier {
        Some(q) => format!("{}:{q}", opts.function),
        None => opts.function.clone(),
    };
    let id = match &outcome.request_id {
        Some(id) => format!(", request id {id}"),
        None => String::new(),
    };
    let logs = match opts.target {
        Target::Local { .. } => "the `cargo fn watch` output",
        Target::Remote { .. } => "its logs (`cargo fn logs --remote`)",
    };
    format!(
        "queued an asynchronous invocation of {qualified} ({} bytes of payload, HTTP {}{id}); it runs in the background, its result shows in {logs}",
        opts.payload.len(),
        outcome.status
    )
}

/// What cargo-fn says when the Invoke call itself fails (not the function).
fn invoke_error(opts: &InvokeOptions, e: InvokeFailure) -> anyhow::Error {
    let (detail, service) = match e {
        InvokeFailure::Call { detail, service } => (detail, service),
        InvokeFailure::Broken(detail) => {
            return anyhow::anyhow!("the response stream of `{}` broke: {detail}", opts.function);
        }
        InvokeFailure::Write(e) => return e.into(),
    };
    match &opts.target {
        Target::Local { endpoint } if !service => hinted(
            format!(
                "could not invoke `{}` at {endpoint}: {detail}",
                opts.function
            ),
            "is `cargo fn watch` running? Start it, or pass --port/--endpoint to reach it",
        ),
        Target::Local { .. } => {
            anyhow::anyhow!("invoking `{}` locally failed: {detail}", opts.function)
        }
        Target::Remote { .. } => hinted(
            format!("invoking `{}` in AWS failed: {detail}", opts.function),
            "check --profile/--region and that the function exists (`cargo fn deploy` creates it)",
        ),
    }
}

/// `cargo fn invoke FUNCTION --trigger NAME`: asks a running `cargo fn
/// watch` at `endpoint` to fire one of the function's local triggers now
/// (`POST /_cargo-fn/api/triggers/{function}/{name}/fire`), with `payload`
/// or, when `None`, the trigger's built-in example. Returns the trigger's
/// outcome (JSON). An unknown trigger is an error listing the function's
/// triggers.
pub fn fire_trigger(
    endpoint: &str,
    function: &str,
    trigger: &str,
    payload: Option<&[u8]>,
) -> Result<serde_json::Value> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let base = endpoint.trim_end_matches('/');
    let enc = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    let url = format!(
        "{base}/_cargo-fn/api/triggers/{}/{}/fire",
        enc(function),
        enc(trigger)
    );
    let unreachable = |e: ureq::Error| {
        hinted(
            format!("could not reach `cargo fn watch` at {endpoint}: {e}"),
            "is `cargo fn watch` running? Start it, or pass --port/--endpoint to reach it",
        )
    };
    let req = agent.post(&url).header("content-type", "application/json");
    let mut resp = match payload {
        Some(p) => req.send(p),
        None => req.send_empty(),
    }
    .map_err(unreachable)?;
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    let body: serde_json::Value =
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text.clone()));
    let message = body
        .get("message")
        .and_then(|m| m.as_str())
        .map(str::to_string)
        .unwrap_or_else(|| text.clone());
    match status {
        200 => Ok(body),
        404 => {
            let known = known_triggers(&agent, base, function);
            Err(hinted(
                format!(
                    "`{function}` has no local trigger `{trigger}` in the `cargo fn watch` at {endpoint} ({message})"
                ),
                if known.is_empty() {
                    format!(
                        "`{function}` has no triggers there: add one under [package.metadata.fn] triggers"
                    )
                } else {
                    format!("its triggers: {}", known.join(", "))
                },
            ))
        }
        400 => Err(hinted(
            format!("trigger `{trigger}` of `{function}` refused the payload: {message}"),
            "see the trigger's section in docs/src/local-triggers.md for the payloads it takes",
        )),
        _ => Err(anyhow::anyhow!(
            "firing trigger `{trigger}` of `{function}` failed (HTTP {status}): {message}"
        )),
    }
}

/// The names of `function`'s local triggers (with their type), best effort.
fn known_triggers(agent: &ureq::Agent, base: &str, function: &str) -> Vec<String> {
    let Ok(mut resp) = agent.get(format!("{base}/_cargo-fn/api/triggers")).call() else {
        return Vec::new();
    };
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    let list: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    list.as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["function"] == function)
        .map(|t| {
            format!(
                "{} ({})",
                t["name"].as_str().unwrap_or("?"),
                t["type"].as_str().unwrap_or("?")
            )
        })
        .collect()
}

/// How a streamed invocation ended.
#[derive(Debug, Clone, Default)]
pub struct StreamOutcome {
    /// `InvokeComplete`'s ErrorCode and ErrorDetails, when the stream failed.
    pub error: Option<(String, String)>,
    pub log: Option<String>,
    pub bytes: u64,
}

/// `InvokeWithResponseStream`: writes each payload chunk to `out` (and
/// flushes it) as it arrives, so a streaming function is seen streaming.
pub async fn invoke_stream(
    opts: &InvokeOptions,
    out: &mut (dyn std::io::Write + Send),
) -> Result<StreamOutcome> {
    let end = crate::aws::invoke::invoke_stream(&endpoint(&opts.target), &call(opts), out)
        .await
        .map_err(|e| invoke_error(opts, e))?;
    Ok(StreamOutcome {
        error: end.error,
        log: decode_log(end.log_result.as_deref())?,
        bytes: end.bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_example_is_json_with_a_unique_name() {
        let mut names = std::collections::BTreeSet::new();
        for e in EXAMPLES {
            assert!(names.insert(e.name), "duplicate {}", e.name);
            serde_json::from_str::<serde_json::Value>(e.json)
                .unwrap_or_else(|err| panic!("{}: {err}", e.name));
        }
        assert!(example("nope").is_err());
    }
}
