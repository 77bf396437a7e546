//! The emulator driven as users drive it: the Invoke API through
//! aws-sdk-lambda with an endpoint URL, function fixtures built with the
//! official `lambda_runtime` crate, and the Runtime API driven directly over
//! HTTP for the rules a well-behaved runtime never trips.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use base64::Engine;
use cargo_fn::emulator::{Emulator, EmulatorOptions};
use serde_json::{Value, json};

use crate::support::emulator::{
    Logs, http, invoke, lambda_client, manual_runtime, options, runtime_api_addr, spec, start,
    try_http, try_http_with,
};
use crate::support::process_alive;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn echo_through_the_sdk_with_tail_log_and_warm_reuse() {
    let (emu, client, logs) = start(vec![spec("echo", "echo")]).await;
    let first = invoke(&client, "echo", json!({"hello": "world"})).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.body, json!({"hello": "world"}));
    assert_eq!(first.function_error, None);
    assert_eq!(first.executed_version.as_deref(), Some("$LATEST"));
    assert!(first.log.contains("START RequestId: "), "{}", first.log);
    assert!(first.log.contains("echo handling "), "{}", first.log);
    assert!(first.log.contains("END RequestId: "), "{}", first.log);
    let report = first
        .log
        .lines()
        .find(|l| l.starts_with("REPORT RequestId: "))
        .expect("REPORT line");
    let fields: Vec<&str> = report.split('\t').collect();
    assert!(fields[1].starts_with("Duration: ") && fields[1].ends_with(" ms"));
    assert!(fields[2].starts_with("Billed Duration: "));
    assert_eq!(fields[3], "Memory Size: 128 MB");
    assert!(fields[4].starts_with("Max Memory Used: "));
    let used: u64 = fields[4]
        .trim_start_matches("Max Memory Used: ")
        .trim_end_matches(" MB")
        .parse()
        .unwrap();
    assert!(used > 0, "memory measured from the process: {report}");
    assert!(
        fields[5].starts_with("Init Duration: "),
        "cold start: {report}"
    );
    // The cost estimate is the emulator's: in its output, not in the
    // log AWS clients get back.
    assert!(!first.log.contains("COST"), "{}", first.log);
    assert_eq!(logs.count("COST RequestId: "), 1);

    let second = invoke(&client, "echo", json!([1, 2, 3])).await;
    assert_eq!(second.body, json!([1, 2, 3]));
    assert!(
        !second.log.contains("Init Duration"),
        "warm: {}",
        second.log
    );
    assert_eq!(logs.count("START RequestId"), 2);
    // One environment served both.
    let envs: std::collections::BTreeSet<_> = logs
        .lines()
        .iter()
        .filter(|l| l.contains("START RequestId"))
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect();
    assert_eq!(envs.len(), 1, "{envs:?}");
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_function_sees_lambdas_environment_and_context() {
    let mut s = spec("ctx", "context");
    s.env = BTreeMap::from([("GREETING".to_string(), "hi".to_string())]);
    s.memory_mb = 256;
    s.aliases = vec!["live".into()];
    let (emu, client, _logs) = start(vec![s]).await;
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let cc = base64::engine::general_purpose::STANDARD.encode(
        json!({
            "client": {
                "installation_id": "install-1",
                "app_title": "app",
                "app_version_name": "1.0",
                "app_version_code": "1",
                "app_package_name": "com.example"
            },
            "custom": {"k": "v"},
            "environment": {}
        })
        .to_string(),
    );
    let out = client
        .invoke()
        .function_name("ctx")
        .qualifier("live")
        .client_context(cc)
        .payload(Blob::new("{}"))
        .send()
        .await
        .unwrap();
    let body: Value = serde_json::from_slice(out.payload().unwrap().as_ref()).unwrap();
    assert_eq!(out.function_error(), None, "{body}");
    let env = &body["env"];
    assert_eq!(env["AWS_LAMBDA_FUNCTION_NAME"], "ctx");
    assert_eq!(env["AWS_LAMBDA_FUNCTION_VERSION"], "$LATEST");
    assert_eq!(env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "256");
    assert_eq!(env["AWS_LAMBDA_INITIALIZATION_TYPE"], "on-demand");
    assert_eq!(env["AWS_REGION"], "us-east-1");
    assert_eq!(env["AWS_DEFAULT_REGION"], "us-east-1");
    assert_eq!(env["AWS_LAMBDA_LOG_GROUP_NAME"], "/aws/lambda/ctx");
    assert_eq!(env["TZ"], ":UTC");
    assert_eq!(env["GREETING"], "hi");
    assert!(
        env["AWS_LAMBDA_RUNTIME_API"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    assert!(
        env.get("AWS_SECRET_ACCESS_KEY").is_none(),
        "no credentials unless asked"
    );
    assert_eq!(
        body["invoked_function_arn"],
        "arn:aws:lambda:us-east-1:012345678912:function:ctx:live"
    );
    let deadline = body["deadline"].as_u64().unwrap();
    assert!(
        deadline >= before + 9_000 && deadline <= before + 11_000 + 5_000,
        "{deadline} vs {before}"
    );
    assert!(
        body["xray_trace_id"]
            .as_str()
            .unwrap()
            .starts_with("Root=1-")
    );
    assert_eq!(body["client_context"], json!({"k": "v"}));
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn api_errors_have_aws_status_type_and_body() {
    let (emu, client, _logs) = start(vec![spec("echo", "echo")]).await;
    // Unknown function, through the SDK.
    let err = client
        .invoke()
        .function_name("nope")
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error()
            .unwrap()
            .is_resource_not_found_exception(),
        "{err:?}"
    );
    // Body that is not JSON.
    let err = client
        .invoke()
        .function_name("echo")
        .payload(Blob::new("not json"))
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error()
            .unwrap()
            .is_invalid_request_content_exception(),
        "{err:?}"
    );

    let url = format!("{}/2015-03-31/functions/echo/invocations", emu.endpoint());
    let (status, headers, body) = http("POST", &url, &[], b"{oops".to_vec()).await;
    assert_eq!(status, 400);
    assert_eq!(
        headers["x-amzn-errortype"],
        "InvalidRequestContentException"
    );
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["Type"], "User");
    assert!(body["message"].as_str().unwrap().contains("json"));

    // Over 6 MB.
    let big = format!("\"{}\"", "x".repeat(6_300_000)).into_bytes();
    let (status, headers, body) = http("POST", &url, &[], big).await;
    assert_eq!(status, 413);
    assert_eq!(
        headers["x-amzn-errortype"],
        "RequestEntityTooLargeException"
    );
    assert!(String::from_utf8_lossy(&body).contains("6291556"));

    let nf = format!(
        "{}/2015-03-31/functions/missing/invocations",
        emu.endpoint()
    );
    let (status, headers, body) = http("POST", &nf, &[], b"{}".to_vec()).await;
    assert_eq!(status, 404);
    assert_eq!(headers["x-amzn-errortype"], "ResourceNotFoundException");
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert!(
        body["Message"]
            .as_str()
            .unwrap()
            .contains("function:missing")
    );

    let (status, _, _) = http(
        "POST",
        &url,
        &[("x-amz-invocation-type", "Sometimes")],
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(status, 400);

    let (status, _, body) = http(
        "POST",
        &url,
        &[("x-amz-invocation-type", "DryRun")],
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(status, 204);
    assert!(body.is_empty());
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn event_invocations_are_queued_and_run() {
    let (emu, client, logs) = start(vec![spec("echo", "echo")]).await;
    for i in 0..3 {
        let out = client
            .invoke()
            .function_name("echo")
            .invocation_type(InvocationType::Event)
            .payload(Blob::new(json!({ "n": i }).to_string()))
            .send()
            .await
            .unwrap();
        assert_eq!(out.status_code(), 202);
    }
    let until = Instant::now() + Duration::from_secs(20);
    while logs.count("REPORT RequestId") < 3 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(logs.count("REPORT RequestId"), 3, "{:#?}", logs.lines());
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn handled_errors_and_caught_panics_keep_the_environment_warm() {
    let (emu, client, logs) = start(vec![spec("counter", "counter"), spec("fail", "fail")]).await;
    let first = invoke(&client, "counter", json!({})).await;
    assert_eq!(first.body["count"], 1);
    let pid = first.body["pid"].as_u64().unwrap();

    let error = invoke(&client, "counter", json!({"error": true})).await;
    assert_eq!(error.status, 200);
    assert_eq!(error.function_error.as_deref(), Some("Unhandled"));
    assert_eq!(error.body["errorMessage"], "handled failure at count 2");
    let after_error = invoke(&client, "counter", json!({})).await;
    assert_eq!(after_error.function_error, None);
    assert_eq!(after_error.body["count"], 3, "the state survives an error");
    assert_eq!(after_error.body["pid"].as_u64().unwrap(), pid);
    assert!(
        !after_error.log.contains("Init Duration"),
        "warm: {}",
        after_error.log
    );

    let panic = invoke(&client, "counter", json!({"panic": true})).await;
    assert_eq!(panic.function_error.as_deref(), Some("Unhandled"));
    assert!(
        panic.body["errorMessage"]
            .as_str()
            .unwrap()
            .contains("fixture panic at count 4"),
        "{}",
        panic.body
    );
    let after_panic = invoke(&client, "counter", json!({})).await;
    assert_eq!(after_panic.body["count"], 5, "a caught panic keeps it warm");
    assert_eq!(after_panic.body["pid"].as_u64().unwrap(), pid);
    assert_eq!(logs.count("Init Duration"), 1, "{:#?}", logs.lines());

    let failed = invoke(&client, "fail", json!({})).await;
    assert_eq!(failed.function_error.as_deref(), Some("Unhandled"));
    assert_eq!(failed.body["errorMessage"], "fixture failure");
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invalid_utf8_output_never_closes_the_functions_pipe() {
    let (emu, client, logs) = start(vec![spec("counter", "counter")]).await;
    for count in 1..=2 {
        let out = invoke(&client, "counter", json!({"bad_utf8": true})).await;
        assert_eq!(out.function_error, None, "{}", out.body);
        assert_eq!(out.body["count"], count);
        assert!(
            out.log.contains("bytes \u{fffd}\u{fffd} are not text"),
            "shown lossily: {}",
            out.log
        );
        assert!(
            out.log.contains("still printing after invalid UTF-8"),
            "{}",
            out.log
        );
    }
    assert_eq!(logs.count("still printing after invalid UTF-8"), 2);
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_long_line_is_split_into_cloudwatch_sized_events() {
    let (emu, client, logs) = start(vec![spec("counter", "counter")]).await;
    let out = invoke(&client, "counter", json!({"long": 600_000})).await;
    assert_eq!(out.function_error, None, "{}", out.body);
    let pieces: Vec<usize> = logs
        .lines()
        .iter()
        .filter_map(|l| l.split_once(' ').map(|(_, text)| text.to_string()))
        .filter(|text| !text.is_empty() && text.bytes().all(|b| b == b'x'))
        .map(|text| text.len())
        .collect();
    assert_eq!(pieces, [262_144, 262_144, 75_712]);
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_line_of_an_invocation_is_logged_before_its_end() {
    let (emu, client, logs) = start(vec![spec("counter", "counter")]).await;
    let calls: Vec<_> = (0..4)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move { invoke(&c, "counter", json!({"lines": 300})).await })
        })
        .collect();
    for c in calls {
        assert_eq!(c.await.unwrap().function_error, None);
    }
    // Per environment, the 300 lines come between START and END.
    let lines = logs.lines();
    let mut envs: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for l in &lines {
        let (env, text) = l.split_once(' ').unwrap();
        envs.entry(env.to_string())
            .or_default()
            .push(text.to_string());
    }
    for (env, texts) in envs {
        let mut printed = 0;
        for text in texts {
            if text.starts_with("line ") {
                printed += 1;
            } else if text.starts_with("END RequestId") {
                assert_eq!(printed, 300, "{env}: a line landed after END");
                printed = 0;
            }
        }
        assert_eq!(printed, 0, "{env}: lines after the last END");
    }
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn process_exit_and_init_failure_give_runtime_exit_error() {
    let (emu, client, _logs) =
        start(vec![spec("exit", "exit"), spec("initfail", "initfail")]).await;
    let out = invoke(&client, "exit", json!({"exit": true})).await;
    assert_eq!(out.function_error.as_deref(), Some("Unhandled"));
    assert_eq!(out.body["errorType"], "Runtime.ExitError");
    assert!(
        out.body["errorMessage"]
            .as_str()
            .unwrap()
            .contains("exit status 3"),
        "{}",
        out.body
    );
    assert!(
        out.log.contains("fixture exiting with code 3"),
        "{}",
        out.log
    );
    let next = invoke(&client, "exit", json!({})).await;
    assert_eq!(next.function_error, None, "{}", next.body);

    let init = invoke(&client, "initfail", json!({})).await;
    assert_eq!(init.function_error.as_deref(), Some("Unhandled"));
    assert_eq!(init.body["errorType"], "Runtime.ExitError");
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn timeouts_kill_the_environment_and_report_sandbox_timedout() {
    let mut s = spec("sleepy", "sleep");
    s.timeout = Duration::from_secs(1);
    let (emu, client, logs) = start(vec![s]).await;
    let warm = invoke(&client, "sleepy", json!({"ms": 1})).await;
    let pid = warm.body["pid"].as_u64().unwrap();
    let out = invoke(&client, "sleepy", json!({"ms": 30_000})).await;
    assert_eq!(out.function_error.as_deref(), Some("Unhandled"));
    assert_eq!(out.body["errorType"], "Sandbox.Timedout");
    assert!(
        out.body["errorMessage"]
            .as_str()
            .unwrap()
            .ends_with("Task timed out after 1.00 seconds"),
        "{}",
        out.body
    );
    assert!(out.log.contains("Status: timeout"), "{}", out.log);
    let until = Instant::now() + Duration::from_secs(5);
    while process_alive(pid) && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!process_alive(pid), "the timed-out process is killed");
    let again = invoke(&client, "sleepy", json!({"ms": 1})).await;
    assert_eq!(again.function_error, None);
    assert_ne!(again.body["pid"].as_u64().unwrap(), pid);
    assert!(logs.count("REPORT RequestId") >= 3);
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn oversized_responses_are_refused() {
    let (emu, client, _logs) = start(vec![spec("big", "big")]).await;
    let out = invoke(&client, "big", json!({})).await;
    assert_eq!(out.function_error.as_deref(), Some("Unhandled"));
    assert_eq!(out.body["errorType"], "Function.ResponseSizeTooLarge");
    // Just under the limit passes.
    let ok = invoke(&client, "big", json!({"bytes": 6_000_000})).await;
    assert_eq!(ok.function_error, None);
    assert_eq!(ok.body.as_str().unwrap().len(), 6_000_000);
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_invocations_run_in_parallel_environments() {
    let (emu, client, _logs) = start(vec![spec("sleep", "sleep")]).await;
    // Start the environments once so the measure is about invocations.
    let n = 4;
    let sleep_ms = 1000u64;
    let started = Instant::now();
    let calls: Vec<_> = (0..n)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move { invoke(&c, "sleep", json!({ "ms": sleep_ms })).await })
        })
        .collect();
    let mut pids = std::collections::BTreeSet::new();
    for c in calls {
        let out = c.await.unwrap();
        assert_eq!(out.function_error, None, "{}", out.body);
        pids.insert(out.body["pid"].as_u64().unwrap());
    }
    let elapsed = started.elapsed();
    assert_eq!(pids.len(), n, "one environment per concurrent invocation");
    assert!(
        elapsed < Duration::from_millis(n as u64 * sleep_ms * 6 / 10),
        "{n} sleeps of {sleep_ms} ms took {elapsed:?}"
    );
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reserved_concurrency_throttles_with_429() {
    let mut s = spec("sleep", "sleep");
    s.reserved_concurrency = Some(2);
    let (emu, client, logs) = start(vec![s]).await;
    let calls: Vec<_> = (0..2)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move { invoke(&c, "sleep", json!({"ms": 3000})).await })
        })
        .collect();
    // Both are running once the runtime has taken them.
    let until = Instant::now() + Duration::from_secs(20);
    while logs.count("START RequestId") < 2 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let err = client
        .invoke()
        .function_name("sleep")
        .payload(Blob::new("{}"))
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error()
            .unwrap()
            .is_too_many_requests_exception(),
        "{err:?}"
    );
    let url = format!("{}/2015-03-31/functions/sleep/invocations", emu.endpoint());
    let (status, headers, body) = http("POST", &url, &[], b"{}".to_vec()).await;
    assert_eq!(status, 429);
    assert_eq!(headers["x-amzn-errortype"], "TooManyRequestsException");
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        body["Reason"],
        "ReservedFunctionConcurrentInvocationLimitExceeded"
    );
    for c in calls {
        assert_eq!(c.await.unwrap().function_error, None);
    }
    emu.shutdown().await;
}

#[tokio::test]
async fn account_concurrency_throttles_the_excess_with_lambdas_429() {
    let logs = Logs::default();
    let opts = EmulatorOptions {
        concurrency: 2,
        ..options(&logs)
    };
    let emu = Emulator::start(opts, vec![spec("sleep", "sleep")])
        .await
        .expect("emulator starts");
    let client = lambda_client(&emu.endpoint());
    let calls: Vec<_> = (0..2)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move { invoke(&c, "sleep", json!({"ms": 3000})).await })
        })
        .collect();
    let until = Instant::now() + Duration::from_secs(20);
    while logs.count("START RequestId") < 2 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Ten times the limit at once: every one is refused at once, none waits.
    let url = format!("{}/2015-03-31/functions/sleep/invocations", emu.endpoint());
    let excess: Vec<_> = (0..20)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { http("POST", &url, &[], b"{}".to_vec()).await })
        })
        .collect();
    for e in excess {
        let (status, headers, body) = e.await.unwrap();
        assert_eq!(status, 429);
        assert_eq!(headers["x-amzn-errortype"], "TooManyRequestsException");
        assert_eq!(headers["retry-after"], "1");
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            body,
            json!({"Type": "User", "message": "Rate Exceeded.", "Reason": "ConcurrentInvocationLimitExceeded"})
        );
    }
    assert_eq!(logs.count("START RequestId"), 2, "nothing queued");
    for c in calls {
        assert_eq!(c.await.unwrap().function_error, None);
    }
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn runtime_api_rules_for_ids_answers_and_sizes() {
    let dir = crate::support::tempdir();
    let (emu, client, _logs) = start(vec![manual_runtime(dir.path())]).await;
    let c = client.clone();
    let first = tokio::spawn(async move { invoke(&c, "manual", json!({"q": 1})).await });
    let api = format!(
        "http://{}/2018-06-01/runtime",
        runtime_api_addr(dir.path()).await
    );

    let (status, headers, body) = http("GET", &format!("{api}/invocation/next"), &[], vec![]).await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap(),
        json!({"q": 1})
    );
    let id = headers["lambda-runtime-aws-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let deadline: u64 = headers["lambda-runtime-deadline-ms"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(deadline > 1_700_000_000_000);
    assert_eq!(
        headers["lambda-runtime-invoked-function-arn"],
        "arn:aws:lambda:us-east-1:012345678912:function:manual"
    );
    assert!(headers.contains_key("lambda-runtime-trace-id"));

    // Unknown id: 400 InvalidRequestID, and nothing changes.
    let (status, _, body) = http(
        "POST",
        &format!("{api}/invocation/not-the-id/response"),
        &[],
        b"\"wrong\"".to_vec(),
    )
    .await;
    assert_eq!(status, 400);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["errorType"], "InvalidRequestID");

    let resp_url = format!("{api}/invocation/{id}/response");
    let (status, _, body) = http("POST", &resp_url, &[], b"\"right\"".to_vec()).await;
    assert_eq!(status, 202);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap(),
        json!({"status": "OK"})
    );
    // A second answer: 403 InvalidStateTransition.
    let (status, _, body) = http("POST", &resp_url, &[], b"\"again\"".to_vec()).await;
    assert_eq!(status, 403);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["errorType"], "InvalidStateTransition");
    let (status, _, _) = http("POST", &format!("{api}/invocation/{id}/error"), &[], vec![]).await;
    assert_eq!(status, 403);

    let out = first.await.unwrap();
    assert_eq!(out.body, json!("right"));
    assert_eq!(out.function_error, None);

    // Next invocation: the old id is now stale.
    let c = client.clone();
    let second = tokio::spawn(async move { invoke(&c, "manual", json!({"q": 2})).await });
    let (_, headers, _) = http("GET", &format!("{api}/invocation/next"), &[], vec![]).await;
    let id2 = headers["lambda-runtime-aws-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert_ne!(id, id2);
    let (status, _, _) = http("POST", &resp_url, &[], b"\"stale\"".to_vec()).await;
    assert_eq!(status, 400, "stale id");
    // Oversized response: 413 to the runtime, ResponseSizeTooLarge to the caller.
    let big = format!("\"{}\"", "y".repeat(6_291_600)).into_bytes();
    let (status, _, body) = http(
        "POST",
        &format!("{api}/invocation/{id2}/response"),
        &[],
        big,
    )
    .await;
    assert_eq!(status, 413);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["errorType"], "RequestEntityTooLarge");
    let out = second.await.unwrap();
    assert_eq!(out.function_error.as_deref(), Some("Unhandled"));
    assert_eq!(out.body["errorType"], "Function.ResponseSizeTooLarge");
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn runtime_error_route_and_header_only_errors() {
    let dir = crate::support::tempdir();
    let (emu, client, _logs) = start(vec![manual_runtime(dir.path())]).await;
    let c = client.clone();
    let call = tokio::spawn(async move { invoke(&c, "manual", json!({})).await });
    let api = format!(
        "http://{}/2018-06-01/runtime",
        runtime_api_addr(dir.path()).await
    );
    let (_, headers, _) = http("GET", &format!("{api}/invocation/next"), &[], vec![]).await;
    let id = headers["lambda-runtime-aws-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let (status, _, _) = http(
        "POST",
        &format!("{api}/invocation/{id}/error"),
        &[(
            "lambda-runtime-function-error-type",
            "Runtime.NoSuchHandler",
        )],
        vec![],
    )
    .await;
    assert_eq!(status, 202);
    let out = call.await.unwrap();
    assert_eq!(out.function_error.as_deref(), Some("Unhandled"));
    assert_eq!(out.body["errorType"], "Runtime.NoSuchHandler");
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_leaves_no_function_process() {
    let (emu, client, _logs) = start(vec![spec("sleep", "sleep")]).await;
    let calls: Vec<_> = (0..3)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move { invoke(&c, "sleep", json!({"ms": 50})).await })
        })
        .collect();
    let mut pids = Vec::new();
    for c in calls {
        pids.push(c.await.unwrap().body["pid"].as_u64().unwrap());
    }
    assert!(
        pids.iter().all(|p| process_alive(*p)),
        "warm environments stay up"
    );
    let addr = emu.addr();
    emu.shutdown().await;
    for pid in pids {
        assert!(!process_alive(pid), "process {pid} survived shutdown");
    }
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "nothing listens after shutdown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_runtime_api_refuses_processes_outside_the_environment() {
    let (emu, client, logs) = start(vec![spec("ctx", "context")]).await;
    let out = invoke(&client, "ctx", json!({})).await;
    let api = out.body["env"]["AWS_LAMBDA_RUNTIME_API"]
        .as_str()
        .unwrap()
        .to_string();
    // This test process is not in the environment: it may not take the
    // next event, twice over.
    for _ in 0..2 {
        let url = format!("http://{api}/2018-06-01/runtime/invocation/next");
        let refused = tokio::time::timeout(Duration::from_secs(60), try_http("GET", &url, vec![]))
            .await
            .expect("refused, not left waiting for an event");
        assert!(refused.is_err(), "a foreign process got {refused:?}");
    }
    // The runtime itself still works, on the same environment.
    let again = invoke(&client, "ctx", json!({})).await;
    assert_eq!(again.function_error, None, "{}", again.body);
    assert_eq!(again.body["pid"], out.body["pid"]);
    assert_eq!(
        logs.count("refused a connection"),
        1,
        "logged once: {:#?}",
        logs.lines()
    );
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_init_error_fails_the_waiting_invocation_at_once_and_discards_the_environment() {
    let dir = crate::support::tempdir();
    let (emu, client, _logs) = start(vec![manual_runtime(dir.path())]).await;
    let c = client.clone();
    let call = tokio::spawn(async move { invoke(&c, "manual", json!({"secret": 1})).await });
    let api = format!(
        "http://{}/2018-06-01/runtime",
        runtime_api_addr(dir.path()).await
    );
    // Accepted (202), and the environment is discarded at once: the relay
    // this test speaks through may be gone before the 202 gets back.
    let accepted = try_http_with(
        "POST",
        &format!("{api}/init/error"),
        &[("lambda-runtime-function-error-type", "Runtime.ConfigError")],
        br#"{"errorType":"Runtime.ConfigError","errorMessage":"missing TABLE_NAME"}"#.to_vec(),
    )
    .await;
    if let Ok((status, body)) = &accepted {
        assert_eq!(*status, 202, "{}", String::from_utf8_lossy(body));
    }
    // The runtime does not get the event after its init error (the
    // environment may already be gone: a refused connection is fine too).
    let next = try_http("GET", &format!("{api}/invocation/next"), vec![]).await;
    if let Ok((status, body)) = &next {
        assert_ne!(*status, 200, "{}", String::from_utf8_lossy(body));
    }
    // The caller has the init error, without waiting for the init limit:
    // the runtime never exits, so only the init error can end the call.
    let out = call.await.unwrap();
    assert_eq!(out.function_error.as_deref(), Some("Unhandled"));
    assert_eq!(out.body["errorType"], "Runtime.ConfigError");
    assert_eq!(out.body["errorMessage"], "missing TABLE_NAME");
    assert!(out.log.contains("INIT_REPORT Status: error"), "{}", out.log);
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_invoke_api_validates_names_qualifiers_payloads_and_client_context() {
    let mut s = spec("ctx", "context");
    s.aliases = vec!["live".into()];
    let (emu, _client, _logs) = start(vec![s]).await;
    let base = format!("{}/2015-03-31/functions", emu.endpoint());
    let post = |url: String, headers: Vec<(&'static str, String)>, body: Vec<u8>| async move {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, h, body) = http("POST", &url, &headers, body).await;
        let kind = h
            .get("x-amzn-errortype")
            .map(|v| v.to_str().unwrap().to_string());
        (status, kind, body)
    };
    // Unknown alias or version: 404; $LATEST and the served alias: 200.
    for q in ["?Qualifier=prod", "?Qualifier=7"] {
        let (status, kind, _) =
            post(format!("{base}/ctx/invocations{q}"), vec![], b"{}".to_vec()).await;
        assert_eq!(
            (status, kind.as_deref()),
            (404, Some("ResourceNotFoundException")),
            "{q}"
        );
    }
    let (status, _, _) = post(
        format!("{base}/ctx:prod/invocations"),
        vec![],
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(status, 404);
    for q in ["?Qualifier=$LATEST", "?Qualifier=live", ""] {
        let (status, kind, body) =
            post(format!("{base}/ctx/invocations{q}"), vec![], b"{}".to_vec()).await;
        assert_eq!(
            status,
            200,
            "{q}: {kind:?} {}",
            String::from_utf8_lossy(&body)
        );
    }
    // Names are 1-64 characters; a FunctionName at most 170.
    for name in ["n".repeat(65), "n".repeat(300), "bad/name".into()] {
        let url = format!("{base}/{}/invocations", name.replace('/', "%2F"));
        let (status, kind, _) = post(url, vec![], b"{}".to_vec()).await;
        assert_eq!(
            (status, kind.as_deref()),
            (400, Some("ValidationException")),
            "{name}"
        );
    }
    // JSON is UTF-8, inside strings too.
    let (status, kind, _) = post(
        format!("{base}/ctx/invocations"),
        vec![],
        b"{\"a\":\"\xff\"}".to_vec(),
    )
    .await;
    assert_eq!(
        (status, kind.as_deref()),
        (400, Some("InvalidRequestContentException"))
    );
    // Client context: a JSON object, at most 3,583 bytes of base64.
    let b64 = |v: Value| base64::engine::general_purpose::STANDARD.encode(v.to_string());
    let array = b64(json!([1, 2]));
    let (status, kind, _) = post(
        format!("{base}/ctx/invocations"),
        vec![("x-amz-client-context", array)],
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(
        (status, kind.as_deref()),
        (400, Some("InvalidRequestContentException"))
    );
    // Decoded it fits (2,700 bytes), encoded it does not (3,600).
    let large = b64(json!({"custom": {"k": "v".repeat(2_680)}}));
    assert!(large.len() > 3_583);
    let (status, _, _) = post(
        format!("{base}/ctx/invocations"),
        vec![("x-amz-client-context", large)],
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(status, 400);
    let fits = b64(json!({"custom": {"k": "v".repeat(2_000)}}));
    let (status, _, body) = post(
        format!("{base}/ctx/invocations"),
        vec![("x-amz-client-context", fits)],
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(status, 200);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["client_context"]["k"].as_str().unwrap().len(), 2_000);
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn localhost_reaches_the_emulator_over_ipv6_too() {
    let (emu, _client, _logs) = start(vec![spec("echo", "echo")]).await;
    let port = emu.addr().port();
    // Clients that resolve `localhost` to ::1 first.
    let v6 = lambda_client(&format!("http://[::1]:{port}"));
    let out = invoke(&v6, "echo", json!({"over": "ipv6"})).await;
    assert_eq!(out.body, json!({"over": "ipv6"}));
    let v4 = lambda_client(&format!("http://127.0.0.1:{port}"));
    assert_eq!(invoke(&v4, "echo", json!(1)).await.body, json!(1));
    assert!(emu.endpoint().starts_with("http://127.0.0.1:"));
    emu.shutdown().await;
    assert!(
        std::net::TcpStream::connect(("::1", port)).is_err(),
        "nothing listens on ::1 after shutdown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_tail_log_has_no_cost_line_and_xray_only_when_traced() {
    let (emu, client, logs) = start(vec![spec("echo", "echo")]).await;
    let plain = invoke(&client, "echo", json!({})).await;
    assert!(plain.log.contains("REPORT RequestId"), "{}", plain.log);
    assert!(!plain.log.contains("XRAY"), "not traced: {}", plain.log);
    assert!(!plain.log.contains("COST"), "{}", plain.log);
    assert_eq!(logs.count("COST RequestId"), 1, "the watch output keeps it");
    assert_eq!(logs.count("XRAY"), 0);

    let url = format!("{}/2015-03-31/functions/echo/invocations", emu.endpoint());
    let (status, headers, _) = http(
        "POST",
        &url,
        &[
            ("x-amz-log-type", "Tail"),
            (
                "x-amzn-trace-id",
                "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
            ),
        ],
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(status, 200);
    let tail = base64::engine::general_purpose::STANDARD
        .decode(headers["x-amz-log-result"].to_str().unwrap())
        .unwrap();
    let tail = String::from_utf8(tail).unwrap();
    assert!(
        tail.contains("XRAY TraceId: 1-5759e988-bd862e3fe1be46a994272793"),
        "{tail}"
    );
    assert!(!tail.contains("COST"), "{tail}");
    emu.shutdown().await;
}
