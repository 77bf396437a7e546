//! Durable functions under `cargo fn watch` (issue #29), checked from
//! outside: real functions using `aws-durable-execution-sdk` and
//! `lambda_runtime` (tests/fixtures/durable), invoked with an unmodified
//! aws-sdk-lambda client, a callback completed with boto3, and the
//! executions read back through the Lambda API.

use std::path::Path;
use std::time::{Duration, Instant};

use aws_sdk_lambda::Client;
use aws_sdk_lambda::operation::get_durable_execution::GetDurableExecutionOutput;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{Event, EventType, ExecutionStatus, InvocationType};
use cargo_fn::local::durable::clock::ClockMode;
use cargo_fn::watch::WatchOptions;
use serde_json::{Value, json};

use crate::support::emulator::{Logs, lambda_client};
use crate::support::fixtures::fixture;
use crate::support::tools_dir;
use crate::support::watch::{CliWatch, Watch, watch_options};

/// How long an execution may take before the test gives up (a guard
/// against hanging, not a speed check).
const GIVE_UP: Duration = Duration::from_secs(300);

/// Watch serving a copy of the durable fixture; its functions record side
/// effects under the returned `side` directory.
async fn serve(package: &str, clock: ClockMode) -> (tempfile::TempDir, std::path::PathBuf, Watch) {
    let (dir, root) = fixture("durable", package);
    let side = root.join("side");
    std::fs::create_dir_all(&side).unwrap();
    let logs = Logs::default();
    let opts = WatchOptions {
        durable_clock: clock,
        ..watch_options(&root, &logs)
    };
    let watch = Watch::start(opts).await;
    (dir, side, watch)
}

/// Starts an execution of `flow` (an asynchronous invoke); its ARN.
async fn start(client: &Client, event: Value) -> String {
    let out = client
        .invoke()
        .function_name("flow")
        .invocation_type(InvocationType::Event)
        .payload(Blob::new(event.to_string()))
        .send()
        .await
        .expect("invoke starts an execution");
    assert_eq!(out.status_code(), 202);
    out.durable_execution_arn()
        .expect("the execution ARN in the answer")
        .to_string()
}

/// Polls the execution until it ends.
async fn ended(client: &Client, arn: &str) -> GetDurableExecutionOutput {
    let started = Instant::now();
    loop {
        let out = client
            .get_durable_execution()
            .durable_execution_arn(arn)
            .send()
            .await
            .expect("GetDurableExecution");
        if out.status() != &ExecutionStatus::Running {
            return out;
        }
        assert!(started.elapsed() < GIVE_UP, "{arn} still running");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn history(client: &Client, arn: &str) -> Vec<Event> {
    let mut events = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let out = client
            .get_durable_execution_history()
            .durable_execution_arn(arn)
            .include_execution_data(true)
            .set_marker(marker.clone())
            .send()
            .await
            .expect("GetDurableExecutionHistory");
        events.extend(out.events().iter().cloned());
        match out.next_marker() {
            Some(m) if !m.is_empty() => marker = Some(m.to_string()),
            _ => return events,
        }
    }
}

/// `EventType name` of each event, without the invocations and the step
/// starts (which the SDK may or may not checkpoint).
fn outline(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter(|e| {
            !matches!(
                e.event_type(),
                Some(EventType::InvocationCompleted | EventType::StepStarted)
            )
        })
        .map(|e| {
            format!(
                "{} {}",
                e.event_type().map(|t| t.as_str()).unwrap_or("?"),
                e.name().unwrap_or("")
            )
            .trim()
            .to_string()
        })
        .collect()
}

fn lines(side: &Path, file: &str) -> usize {
    std::fs::read_to_string(side.join(file))
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

fn result(out: &GetDurableExecutionOutput) -> Value {
    serde_json::from_str(out.result().unwrap_or("null")).expect("a JSON result")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn durable_workflows_run_to_completion_under_watch() {
    let (_dir, side, watch) = serve("durable-flows-a", ClockMode::Fast).await;
    let client = lambda_client(&watch.endpoint);

    // The SDK README's first function, invoked synchronously: the invoke
    // waits for the whole execution and answers its result.
    let out = client
        .invoke()
        .function_name("first")
        .payload(Blob::new("{}"))
        .send()
        .await
        .expect("invoke");
    assert_eq!(out.function_error(), None);
    assert_eq!(out.payload().unwrap().as_ref(), b"\"hello, world\"");
    let arn = out
        .durable_execution_arn()
        .expect("execution ARN")
        .to_string();
    let prefix = "arn:aws:lambda:us-east-1:012345678912:function:first:$LATEST/durable-execution/";
    assert!(arn.starts_with(prefix), "{arn}");
    let first = ended(&client, &arn).await;
    assert_eq!(first.status(), &ExecutionStatus::Succeeded);
    assert_eq!(
        outline(&history(&client, &arn).await),
        [
            "ExecutionStarted",
            "StepSucceeded fetch-name",
            "WaitStarted cooldown",
            "WaitSucceeded cooldown",
            "StepSucceeded format",
            "ExecutionSucceeded",
        ]
    );

    // A function whose execution may outlive 15 minutes is not invoked
    // synchronously, as on AWS.
    let sync = client
        .invoke()
        .function_name("flow")
        .payload(Blob::new(r#"{"mode":"child"}"#))
        .send()
        .await
        .expect_err("a synchronous invoke of a 2-day execution");
    let text = format!("{}", aws_sdk_lambda::error::DisplayErrorContext(&sync));
    assert!(text.contains("InvalidParameterValue"), "{text}");

    // A day's wait ends at once on the fast clock; the history says what
    // the function did, and each step body ran once.
    let started = Instant::now();
    let arn = start(&client, json!({"mode": "long", "tag": "long"})).await;
    let long = ended(&client, &arn).await;
    eprintln!(
        "a 24-hour durable wait took {} ms locally (fast clock)",
        started.elapsed().as_millis()
    );
    assert_eq!(long.status(), &ExecutionStatus::Succeeded, "{long:?}");
    assert_eq!(result(&long), json!({"slept": true, "after": 1}));
    let events = history(&client, &arn).await;
    assert_eq!(
        outline(&events),
        [
            "ExecutionStarted",
            "StepSucceeded before",
            "WaitStarted a-day",
            "WaitSucceeded a-day",
            "StepSucceeded after",
            "ExecutionSucceeded",
        ]
    );
    let wait = events
        .iter()
        .find_map(|e| e.wait_started_details())
        .expect("WaitStarted details");
    assert_eq!(wait.duration(), 86_400);
    assert_eq!(
        (lines(&side, "long-before"), lines(&side, "long-after")),
        (1, 1)
    );

    // Retries as the SDK's strategy asks: two failed attempts, then success.
    let arn = start(&client, json!({"mode": "retry", "tag": "retry"})).await;
    let retried = ended(&client, &arn).await;
    assert_eq!(retried.status(), &ExecutionStatus::Succeeded, "{retried:?}");
    assert_eq!(result(&retried), json!({"attempts": 3}));
    let failures = history(&client, &arn)
        .await
        .iter()
        .filter(|e| e.event_type() == Some(&EventType::StepFailed))
        .count();
    assert_eq!(failures, 2, "one StepFailed per failed attempt");

    // A child context.
    let arn = start(&client, json!({"mode": "child"})).await;
    let child = ended(&client, &arn).await;
    assert_eq!(result(&child), json!({"sum": 42}));
    let events = history(&client, &arn).await;
    assert!(
        outline(&events).contains(&"ContextSucceeded branch".to_string()),
        "{:?}",
        outline(&events)
    );

    // A chained invoke of another local function (SAM: "CHAINED_INVOKE is
    // not implemented yet").
    let arn = start(&client, json!({"mode": "chain"})).await;
    let chained = ended(&client, &arn).await;
    assert_eq!(chained.status(), &ExecutionStatus::Succeeded, "{chained:?}");
    assert_eq!(
        result(&chained),
        json!({"chained": {"echo": {"from": "flow"}}})
    );

    // A chained invoke of a durable function runs its own execution.
    let arn = start(&client, json!({"mode": "chain-durable"})).await;
    let chained = ended(&client, &arn).await;
    assert_eq!(chained.status(), &ExecutionStatus::Succeeded, "{chained:?}");
    assert_eq!(result(&chained), json!({"chained": "hello, world"}));
    let firsts = client
        .list_durable_executions_by_function()
        .function_name("first")
        .send()
        .await
        .expect("ListDurableExecutionsByFunction");
    assert_eq!(
        firsts.durable_executions().len(),
        2,
        "the README's and the chained one"
    );

    // The environment dies in the middle of step two: the next invocation
    // replays step one (not run again) and runs step two again.
    let arn = start(&client, json!({"mode": "crash", "tag": "crash"})).await;
    let crashed = ended(&client, &arn).await;
    assert_eq!(crashed.status(), &ExecutionStatus::Succeeded, "{crashed:?}");
    assert_eq!(
        (
            lines(&side, "crash-one"),
            lines(&side, "crash-two"),
            lines(&side, "crash-three")
        ),
        (1, 2, 1),
        "finished steps are not run again after the crash"
    );
    let invocation_errors = history(&client, &arn)
        .await
        .iter()
        .filter(|e| {
            e.invocation_completed_details()
                .is_some_and(|d| d.error().is_some())
        })
        .count();
    assert_eq!(invocation_errors, 1);

    // Code that takes another path on replay fails the execution.
    let arn = start(&client, json!({"mode": "diverge", "tag": "diverge"})).await;
    let diverged = ended(&client, &arn).await;
    assert_eq!(diverged.status(), &ExecutionStatus::Failed, "{diverged:?}");
    let error = diverged.error().expect("the execution's error");
    let error = format!(
        "{} {}",
        error.error_type().unwrap_or_default(),
        error.error_message().unwrap_or_default()
    );
    assert!(error.contains("eterministic"), "{error}");

    // The service's own rules: a checkpoint with a stale token is refused.
    let stale = client
        .checkpoint_durable_execution()
        .durable_execution_arn(&arn)
        .checkpoint_token("not-a-token")
        .send()
        .await
        .expect_err("a stale token");
    let text = format!("{}", aws_sdk_lambda::error::DisplayErrorContext(&stale));
    assert!(text.contains("Invalid Checkpoint Token"), "{text}");

    // Every execution of `flow` is listed.
    let listed = client
        .list_durable_executions_by_function()
        .function_name("flow")
        .send()
        .await
        .expect("ListDurableExecutionsByFunction");
    assert_eq!(listed.durable_executions().len(), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_callback_completed_with_boto3_resumes_the_workflow() {
    let (_dir, _side, watch) = serve("durable-flows-b", ClockMode::Real).await;
    let client = lambda_client(&watch.endpoint);
    let arn = start(&client, json!({"mode": "callback"})).await;

    // boto3 (the moto venv's botocore knows the durable operations) finds
    // the callback id in the history and completes it.
    let script = r#"
import json, sys, time
import boto3
c = boto3.client("lambda", endpoint_url=sys.argv[1], region_name="us-east-1",
                 aws_access_key_id="local", aws_secret_access_key="local")
for _ in range(3000):
    events = c.get_durable_execution_history(DurableExecutionArn=sys.argv[2])["Events"]
    ids = [e["CallbackStartedDetails"]["CallbackId"] for e in events
           if e["EventType"] == "CallbackStarted"]
    if ids:
        break
    time.sleep(0.1)
c.send_durable_execution_callback_heartbeat(CallbackId=ids[0])
c.send_durable_execution_callback_success(CallbackId=ids[0],
                                          Result=json.dumps({"approved": True}).encode())
try:
    c.send_durable_execution_callback_success(CallbackId=ids[0], Result=b"{}")
    print("second completion accepted")
except c.exceptions.InvalidParameterValueException:
    print("completed once")
"#;
    let python = tools_dir().join("venv/bin/python");
    let endpoint = watch.endpoint.clone();
    let arn_arg = arn.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(&python)
            .args(["-c", script, &endpoint, &arn_arg])
            .output()
            .unwrap_or_else(|e| panic!("{}: {e} (run `cargo xtask setup`)", python.display()))
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.trim(), "completed once");
    let done = ended(&client, &arn).await;
    assert_eq!(done.status(), &ExecutionStatus::Succeeded, "{done:?}");
    assert_eq!(result(&done), json!({"approval": {"approved": true}}));

    // Stopping an ended execution is refused; a running one stops.
    let again = start(&client, json!({"mode": "callback"})).await;
    client
        .stop_durable_execution()
        .durable_execution_arn(&again)
        .send()
        .await
        .expect("StopDurableExecution");
    assert_eq!(
        ended(&client, &again).await.status(),
        &ExecutionStatus::Stopped
    );
    let twice = client
        .stop_durable_execution()
        .durable_execution_arn(&again)
        .send()
        .await;
    assert!(twice.is_err(), "an ended execution cannot be stopped");
}

/// `cargo fn watch` prints where the durable SDK's client is pointed, the
/// advance call skips a real-clock wait, and `cargo fn invoke` prints the
/// execution it started.
#[test]
fn watch_serves_durable_executions_to_the_cli() {
    let (_dir, root) = fixture("durable", "durable-flows-c");
    let side = root.join("side");
    std::fs::create_dir_all(&side).unwrap();
    let watch = CliWatch::start_until(&root, &[], "AWS_ENDPOINT_URL_LAMBDA=");
    let base = format!("http://127.0.0.1:{}", watch.port);
    let invoke = crate::support::fixtures::cargo_fn_in(&root)
        .args(["invoke", "flow", "--async", "--port"])
        .arg(watch.port.to_string())
        .args(["--data", r#"{"mode":"long","tag":"cli"}"#])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&invoke.stderr);
    assert!(invoke.status.success(), "{stderr}");
    let arn = stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix("Durable execution "))
        .unwrap_or_else(|| panic!("no execution ARN in: {stderr}"))
        .to_string();
    let client = lambda_client(&base);
    let rt = tokio::runtime::Runtime::new().unwrap();
    // The wait is on the real clock: skip to it.
    let skipped = loop {
        let (status, body) =
            crate::support::moto::http(watch.port, "POST", "/_cargo-fn/api/durable/advance", b"");
        assert_eq!(status, 200);
        let v: Value = serde_json::from_slice(&body).unwrap();
        if v["skippedSeconds"].as_f64().unwrap_or(0.0) > 80_000.0 {
            break v;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(skipped["now"].as_f64().is_some());
    let done = rt.block_on(ended(&client, &arn));
    assert_eq!(done.status(), &ExecutionStatus::Succeeded, "{done:?}");

    // A synchronous invoke prints the result, and the execution it ran.
    let sync = crate::support::fixtures::cargo_fn_in(&root)
        .args(["invoke", "first", "--port"])
        .arg(watch.port.to_string())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&sync.stderr);
    assert!(sync.status.success(), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&sync.stdout).trim(),
        "\"hello, world\""
    );
    assert!(
        stderr.contains("Durable execution arn:aws:lambda:"),
        "{stderr}"
    );
    watch.stop();
}
