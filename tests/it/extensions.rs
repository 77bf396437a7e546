//! The Extensions, Telemetry and Logs APIs: external extensions built on
//! the official `lambda-extension` crate (tests/fixtures/extensions) run
//! beside `lambda_runtime` functions, record what they receive, and the
//! tests assert it; the API rules are driven directly over HTTP with a
//! hand-driven runtime.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cargo_fn::emulator::FunctionSpec;
use serde_json::{Value, json};

use crate::support::emulator::{Logs, http, invoke, manual_runtime, runtime_api_addr, spec, start};
use crate::support::fixtures::extension;
use crate::support::watch::{Watch, watch_options};
use crate::support::{shared_target_dir, tempdir};

/// The JSON lines of a record file once `done` holds for them (polled, with
/// a generous deadline: no timing is asserted).
async fn records_until(file: &Path, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let lines: Vec<Value> = std::fs::read_to_string(file)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        if done(&lines) {
            return lines;
        }
        assert!(
            Instant::now() < until,
            "{} never got what was expected; it holds {lines:#?}",
            file.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until no environment of `function` is busy. An invocation whose
/// extensions are still busy after the answer keeps its environment (the
/// caller already has the answer); a call made in that window gets a new
/// environment, as on Lambda, so tests that assert warm reuse wait here.
async fn until_idle(emu: &cargo_fn::emulator::Emulator, function: &str) {
    let until = Instant::now() + Duration::from_secs(30);
    let url = format!("{}/_cargo-fn/api/environments", emu.endpoint());
    loop {
        let (status, _, body) = http("GET", &url, &[], Vec::new()).await;
        assert_eq!(status, 200);
        let envs: Value = serde_json::from_slice(&body).unwrap();
        let busy = envs
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["function"] == function)
            .map(|e| e["busy"].as_u64().unwrap());
        if busy == Some(0) {
            return;
        }
        assert!(Instant::now() < until, "`{function}` stayed busy: {envs}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn count(lines: &[Value], event_type: &str) -> usize {
    lines
        .iter()
        .filter(|l| l["eventType"] == event_type)
        .count()
}

fn request_id(log: &str) -> String {
    log.lines()
        .find_map(|l| l.strip_prefix("START RequestId: "))
        .and_then(|rest| rest.split(' ').next())
        .expect("START line")
        .to_string()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn with_recorder(name: &str, fixture: &str, dir: &Path) -> FunctionSpec {
    let mut s = spec(name, fixture);
    s.extensions = vec![extension("recorder", dir)];
    s.env
        .insert("EXT_RECORD_DIR".into(), dir.display().to_string());
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invoke_and_shutdown_events_reach_a_lambda_extension_on_reload_and_stop() {
    let dir = tempdir();
    let file = dir.path().join("recorder.jsonl");
    let (emu, client, logs) = start(vec![with_recorder("echo", "echo", dir.path())]).await;

    let first = invoke(&client, "echo", json!({"n": 1})).await;
    assert_eq!(first.body, json!({"n": 1}));
    until_idle(&emu, "echo").await;
    let before = now_ms();
    let second = invoke(&client, "echo", json!({"n": 2})).await;
    assert_eq!(second.function_error, None);
    let ids = [request_id(&first.log), request_id(&second.log)];
    let lines = records_until(&file, |l| count(l, "INVOKE") == 2).await;
    assert_eq!(count(&lines, "STARTED"), 1, "one environment: {lines:#?}");
    let invokes: Vec<&Value> = lines
        .iter()
        .filter(|l| l["eventType"] == "INVOKE")
        .collect();
    for (event, id) in invokes.iter().zip(&ids) {
        assert_eq!(event["requestId"], id.as_str());
        assert_eq!(
            event["invokedFunctionArn"],
            "arn:aws:lambda:us-east-1:012345678912:function:echo"
        );
        assert_eq!(event["tracing"]["type"], "X-Amzn-Trace-Id");
        assert!(
            event["tracing"]["value"]
                .as_str()
                .unwrap()
                .starts_with("Root=1-"),
            "{event}"
        );
        assert_eq!(event["functionName"], "echo", "the function's environment");
    }
    // The deadline is the invocation's: now + the 10 s timeout.
    let deadline = invokes[1]["deadlineMs"].as_u64().unwrap();
    assert!(deadline >= before + 10_000 && deadline <= now_ms() + 10_000);
    // The extension's output is in the function's log, under its name.
    assert!(
        logs.lines()
            .iter()
            .any(|l| l.contains("[recorder] recorder saw invoke")),
        "{:#?}",
        logs.lines()
    );

    // Hot reload: the idle environment gets SHUTDOWN (spindown) and ends.
    let reload_at = now_ms();
    emu.set_function(with_recorder("echo", "echo", dir.path()));
    let lines = records_until(&file, |l| count(l, "SHUTDOWN") == 1).await;
    let shutdown = lines.iter().find(|l| l["eventType"] == "SHUTDOWN").unwrap();
    assert_eq!(shutdown["shutdownReason"], "spindown");
    let deadline = shutdown["deadlineMs"].as_u64().unwrap();
    assert!(
        deadline >= reload_at + 2000 && deadline <= now_ms() + 2000,
        "a 2 s shutdown phase: {shutdown}"
    );

    // The new generation starts its own extension; stopping the emulator
    // gives it SHUTDOWN too.
    let third = invoke(&client, "echo", json!({"n": 3})).await;
    assert_eq!(third.body, json!({"n": 3}));
    emu.shutdown().await;
    let lines = records_until(&file, |l| count(l, "SHUTDOWN") == 2).await;
    assert_eq!(count(&lines, "STARTED"), 2, "{lines:#?}");
    let last = lines.last().unwrap();
    assert_eq!(last["eventType"], "SHUTDOWN");
    assert_eq!(last["shutdownReason"], "spindown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn timeouts_and_crashes_shut_extensions_down_with_their_reason() {
    let slow_dir = tempdir();
    let crash_dir = tempdir();
    let mut slow = with_recorder("slow", "sleep", slow_dir.path());
    slow.timeout = Duration::from_secs(1);
    let crash = with_recorder("crash", "exit", crash_dir.path());
    let (emu, client, _logs) = start(vec![slow, crash]).await;

    let out = invoke(&client, "slow", json!({"ms": 30_000})).await;
    assert_eq!(out.body["errorType"], "Sandbox.Timedout");
    let lines = records_until(&slow_dir.path().join("recorder.jsonl"), |l| {
        count(l, "SHUTDOWN") == 1
    })
    .await;
    let shutdown = lines.iter().find(|l| l["eventType"] == "SHUTDOWN").unwrap();
    assert_eq!(shutdown["shutdownReason"], "timeout");

    let out = invoke(&client, "crash", json!({"exit": true})).await;
    assert_eq!(out.body["errorType"], "Runtime.ExitError");
    let lines = records_until(&crash_dir.path().join("recorder.jsonl"), |l| {
        count(l, "SHUTDOWN") == 1
    })
    .await;
    let shutdown = lines.iter().find(|l| l["eventType"] == "SHUTDOWN").unwrap();
    assert_eq!(shutdown["shutdownReason"], "failure");
    // The next invocation gets a fresh environment, extension included.
    let again = invoke(&client, "crash", json!({})).await;
    assert_eq!(again.function_error, None);
    let lines = records_until(&crash_dir.path().join("recorder.jsonl"), |l| {
        count(l, "STARTED") == 2 && count(l, "INVOKE") == 2
    })
    .await;
    assert_eq!(count(&lines, "SHUTDOWN"), 1);
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_extension_dying_mid_invocation_does_not_hold_the_invocation() {
    let dir = tempdir();
    let mut s = with_recorder("echo", "echo", dir.path());
    s.env.insert("EXT_EXIT_ON_INVOKE".into(), "1".into());
    let (emu, client, logs) = start(vec![s]).await;
    let out = invoke(&client, "echo", json!({"still": "answered"})).await;
    assert_eq!(out.body, json!({"still": "answered"}));
    assert_eq!(out.function_error, None);
    let until = Instant::now() + Duration::from_secs(30);
    while logs.count("EXTENSION Name: recorder exited (exit status: 7)") == 0 {
        assert!(Instant::now() < until, "{:#?}", logs.lines());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The environment is reset: the next invocation starts a new one, with
    // its own extension.
    let again = invoke(&client, "echo", json!({"n": 2})).await;
    assert_eq!(again.body, json!({"n": 2}));
    let lines = records_until(&dir.path().join("recorder.jsonl"), |l| {
        count(l, "STARTED") == 2 && count(l, "INVOKE") == 2
    })
    .await;
    assert_eq!(count(&lines, "SHUTDOWN"), 0, "{lines:#?}");
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_telemetry_extension_receives_platform_records_and_log_lines() {
    let dir = tempdir();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut s = spec("echo", "echo");
    s.extensions = vec![extension("telemetry", dir.path())];
    s.env
        .insert("EXT_RECORD_DIR".into(), dir.path().display().to_string());
    s.env.insert("EXT_TELEMETRY_PORT".into(), port.to_string());
    let (emu, client, _logs) = start(vec![s]).await;
    let out = invoke(&client, "echo", json!({"hi": 1})).await;
    assert_eq!(out.body, json!({"hi": 1}));
    let id = request_id(&out.log);

    let file = dir.path().join("telemetry.jsonl");
    let lines = records_until(&file, |l| {
        l.iter()
            .any(|r| r["type"] == "platform.report" && r["record"]["requestId"] == id.as_str())
    })
    .await;
    let of = |t: &str| -> Vec<&Value> { lines.iter().filter(|r| r["type"] == t).collect() };
    let init = of("platform.initStart");
    assert_eq!(init.len(), 1, "{lines:#?}");
    assert_eq!(init[0]["record"]["initializationType"], "on-demand");
    assert_eq!(init[0]["record"]["phase"], "init");
    let start = of("platform.start");
    assert_eq!(start[0]["record"]["requestId"], id.as_str());
    assert_eq!(start[0]["record"]["version"], "$LATEST");
    let done = of("platform.runtimeDone");
    assert_eq!(done[0]["record"]["requestId"], id.as_str());
    assert_eq!(done[0]["record"]["status"], "success");
    let report = of("platform.report");
    let metrics = &report[0]["record"]["metrics"];
    assert_eq!(report[0]["record"]["status"], "success");
    assert_eq!(metrics["memorySizeMB"], 128);
    assert!(
        metrics["maxMemoryUsedMB"].as_u64().unwrap() > 0,
        "{metrics}"
    );
    assert!(metrics["durationMs"].as_f64().unwrap() > 0.0, "{metrics}");
    assert!(
        metrics["billedDurationMs"].as_u64().unwrap() >= 1,
        "{metrics}"
    );
    assert!(
        metrics["initDurationMs"].as_f64().unwrap() > 0.0,
        "cold start: {metrics}"
    );
    let function_lines: Vec<&str> = of("function")
        .iter()
        .filter_map(|r| r["record"].as_str())
        .collect();
    assert!(
        function_lines.contains(&format!("echo handling {id}").as_str()),
        "{function_lines:?}"
    );
    assert!(
        of("extension")
            .iter()
            .any(|r| r["record"].as_str()
                == Some(&format!("telemetry extension listening on {port}"))),
        "{lines:#?}"
    );
    // In the order Lambda sends them.
    let position = |t: &str| lines.iter().position(|r| r["type"] == t).unwrap();
    assert!(position("platform.initStart") < position("platform.start"));
    assert!(position("platform.start") < position("platform.runtimeDone"));
    assert!(position("platform.runtimeDone") < position("platform.report"));
    emu.shutdown().await;
}

fn json_body(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn extensions_and_telemetry_api_rules_and_the_invoke_waits_for_extensions() {
    let dir = tempdir();
    let (emu, client, logs) = start(vec![manual_runtime(dir.path())]).await;
    let c = client.clone();
    let call = tokio::spawn(async move { invoke(&c, "manual", json!({"q": 1})).await });
    let base = format!("http://{}", runtime_api_addr(dir.path()).await);
    let register = format!("{base}/2020-01-01/extension/register");
    let next = format!("{base}/2020-01-01/extension/event/next");
    let telemetry = format!("{base}/2022-07-01/telemetry");

    // Register rules: a name is required; an internal extension (no
    // executable of that name) cannot take SHUTDOWN.
    let (status, _, body) =
        http("POST", &register, &[], br#"{"events":["INVOKE"]}"#.to_vec()).await;
    assert_eq!(status, 403);
    assert_eq!(
        json_body(&body)["errorType"],
        "Extension.InvalidExtensionName"
    );
    let (status, _, body) = http(
        "POST",
        &register,
        &[("Lambda-Extension-Name", "probe")],
        br#"{"events":["INVOKE","SHUTDOWN"]}"#.to_vec(),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(json_body(&body)["errorType"], "Extension.InvalidEventType");
    let (status, headers, body) = http(
        "POST",
        &register,
        &[
            ("Lambda-Extension-Name", "probe"),
            ("Lambda-Extension-Accept-Feature", "accountId"),
        ],
        br#"{"events":["INVOKE"]}"#.to_vec(),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(
        json_body(&body),
        json!({"functionName": "manual", "functionVersion": "$LATEST", "handler": "bootstrap", "accountId": "012345678912"})
    );
    let id = headers["lambda-extension-identifier"]
        .to_str()
        .unwrap()
        .to_string();

    // Identifier rules.
    let (status, _, body) = http("GET", &next, &[], vec![]).await;
    assert_eq!(status, 403);
    assert_eq!(
        json_body(&body)["errorType"],
        "Extension.MissingExtensionIdentifier"
    );
    let (status, _, body) = http(
        "GET",
        &next,
        &[("Lambda-Extension-Identifier", "nope")],
        vec![],
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(
        json_body(&body)["errorType"],
        "Extension.InvalidExtensionIdentifier"
    );
    let stranger = "8a1c3c3e-0000-4000-8000-000000000000";
    let (status, _, body) = http(
        "GET",
        &next,
        &[("Lambda-Extension-Identifier", stranger)],
        vec![],
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(
        json_body(&body)["errorType"],
        "Extension.UnknownExtensionIdentifier"
    );

    // Telemetry subscription: buffering out of bounds is a 400 naming the
    // field and its range; a valid one (and a legacy Logs API one) is accepted.
    let subscription = |buffering: Value| {
        json!({
            "schemaVersion": "2022-07-01",
            "types": ["platform", "function"],
            "buffering": buffering,
            "destination": {"protocol": "HTTP", "URI": "http://sandbox.localdomain:9/"},
        })
        .to_string()
        .into_bytes()
    };
    let auth = [("Lambda-Extension-Identifier", id.as_str())];
    for (buffering, field, range) in [
        (
            json!({"maxItems": 999}),
            "buffering.maxItems",
            "1000 to 10000",
        ),
        (
            json!({"maxBytes": 2_000_000}),
            "buffering.maxBytes",
            "262144 to 1048576",
        ),
        (
            json!({"timeoutMs": 10}),
            "buffering.timeoutMs",
            "25 to 30000",
        ),
    ] {
        let (status, _, body) = http("PUT", &telemetry, &auth, subscription(buffering)).await;
        assert_eq!(status, 400);
        let body = json_body(&body);
        let message = body["errorMessage"].as_str().unwrap();
        assert!(message.contains(field) && message.contains(range), "{body}");
    }
    let (status, _, body) = http("PUT", &telemetry, &[], subscription(json!({}))).await;
    assert_eq!(status, 403);
    assert_eq!(
        json_body(&body)["errorType"],
        "Extension.MissingExtensionIdentifier"
    );
    let (status, _, _) = http(
        "PUT",
        &telemetry,
        &auth,
        subscription(json!({"maxItems": 1000})),
    )
    .await;
    assert_eq!(status, 200);
    let legacy = json!({
        "schemaVersion": "2021-03-18",
        "types": ["platform", "function"],
        "buffering": {"maxItems": 1000, "maxBytes": 262144, "timeoutMs": 100},
        "destination": {"protocol": "HTTP", "URI": "http://sandbox.localdomain:9"},
    });
    let (status, _, _) = http(
        "PUT",
        &format!("{base}/2020-08-15/logs"),
        &auth,
        legacy.to_string().into_bytes(),
    )
    .await;
    assert_eq!(status, 200);

    // Init ends when both the runtime and the extension wait: the
    // extension asks first, then the runtime gets the invocation and the
    // extension its INVOKE.
    let ext_next = {
        let next = next.clone();
        let id = id.clone();
        tokio::spawn(async move {
            http(
                "GET",
                &next,
                &[("Lambda-Extension-Identifier", id.as_str())],
                vec![],
            )
            .await
        })
    };
    let runtime = format!("{base}/2018-06-01/runtime");
    let (status, headers, _) =
        http("GET", &format!("{runtime}/invocation/next"), &[], vec![]).await;
    assert_eq!(status, 200);
    let request_id = headers["lambda-runtime-aws-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let (status, _, body) = ext_next.await.unwrap();
    assert_eq!(status, 200);
    let event = json_body(&body);
    assert_eq!(event["eventType"], "INVOKE");
    assert_eq!(event["requestId"], request_id.as_str());
    assert_eq!(
        event["invokedFunctionArn"],
        "arn:aws:lambda:us-east-1:012345678912:function:manual"
    );
    // Registration is closed now.
    let (status, _, body) = http(
        "POST",
        &register,
        &[("Lambda-Extension-Name", "late")],
        br#"{"events":["INVOKE"]}"#.to_vec(),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(
        json_body(&body)["errorType"],
        "Extension.RegistrationClosed"
    );

    // The runtime answers: the caller gets the answer at once (as on
    // Lambda), but the invocation is not complete (no REPORT) while the
    // extension has not asked for its next event.
    let (status, _, _) = http(
        "POST",
        &format!("{runtime}/invocation/{request_id}/response"),
        &[],
        b"\"done\"".to_vec(),
    )
    .await;
    assert_eq!(status, 202);
    let out = call.await.unwrap();
    assert_eq!(out.body, json!("done"));
    assert_eq!(out.function_error, None);
    assert_eq!(logs.count(&format!("REPORT RequestId: {request_id}")), 0);
    assert!(!out.log.contains("REPORT RequestId"), "{}", out.log);
    let ext_again = tokio::spawn(async move {
        http(
            "GET",
            &next,
            &[("Lambda-Extension-Identifier", id.as_str())],
            vec![],
        )
        .await
    });
    let until = Instant::now() + Duration::from_secs(30);
    while logs.count(&format!("REPORT RequestId: {request_id}")) == 0 {
        assert!(Instant::now() < until, "{:#?}", logs.lines());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    ext_again.abort();
    emu.shutdown().await;
}

/// Copies the fixture crate (sources and lock file) into `dir`.
fn fixture_workspace(dir: &Path) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/extensions");
    std::fs::create_dir_all(dir.join("src/bin")).unwrap();
    for file in ["Cargo.toml", "Cargo.lock"] {
        std::fs::copy(src.join(file), dir.join(file)).unwrap();
    }
    for entry in std::fs::read_dir(src.join("src/bin")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join("src/bin").join(entry.file_name())).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watch_runs_workspace_extensions_and_an_extensions_dir_beside_each_function() {
    use cargo_fn::watch::WatchOptions;

    let dir = tempdir();
    let root = dir.path().join("ws");
    fixture_workspace(&root);
    let records = dir.path().join("records");
    std::fs::create_dir_all(&records).unwrap();
    // A directory like /opt/extensions: one executable (the recorder under
    // another name) and a file that is not executable (ignored).
    let ext_dir = dir.path().join("opt-extensions");
    std::fs::create_dir_all(&ext_dir).unwrap();
    let other = ext_dir.join("second");
    std::fs::copy(extension("recorder", dir.path()), &other).unwrap();
    std::fs::write(ext_dir.join("README"), "not an extension").unwrap();

    let logs = Logs::default();
    let mut opts = WatchOptions {
        extra_env: [("EXT_RECORD_DIR".to_string(), records.display().to_string())].into(),
        extensions_dir: Some(ext_dir.clone()),
        ..watch_options(&root, &logs)
    };
    opts.selection.bins = vec!["func".into(), "recorder".into()];
    let watch = Watch::start(opts).await;
    let endpoint = watch.endpoint.clone();
    let client = crate::support::emulator::lambda_client(&endpoint);
    let out = invoke(&client, "func", json!({"w": 1})).await;
    assert_eq!(out.body, json!({"w": 1}), "{}", out.log);
    let id = request_id(&out.log);
    for name in ["recorder", "second"] {
        let lines = records_until(&records.join(format!("{name}.jsonl")), |l| {
            count(l, "INVOKE") == 1
        })
        .await;
        let invoke = lines.iter().find(|l| l["eventType"] == "INVOKE").unwrap();
        assert_eq!(invoke["requestId"], id.as_str(), "{name}");
    }
    // The extension binary is not served as a function.
    let err = client
        .invoke()
        .function_name("recorder")
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_resource_not_found_exception()),
        "{err:?}"
    );

    // Ctrl-C (here: the shutdown future) gives both SHUTDOWN (spindown).
    watch.stop().await.unwrap();
    for name in ["recorder", "second"] {
        let lines = records_until(&records.join(format!("{name}.jsonl")), |l| {
            count(l, "SHUTDOWN") == 1
        })
        .await;
        assert_eq!(
            lines.last().unwrap()["shutdownReason"],
            "spindown",
            "{name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_extension_failing_its_init_fails_the_invocation_that_started_it() {
    // An external extension that exits at once: Extension.Crash.
    let mut crashing = spec("crashing", "echo");
    crashing.extensions = vec![PathBuf::from("/bin/false")];
    // One that cannot be started: Extension.LaunchError.
    let mut unlaunchable = spec("unlaunchable", "echo");
    unlaunchable.extensions = vec![PathBuf::from("/nonexistent/extensions/ghost")];
    // One that never registers: init ends at its limit, naming it.
    let dir = tempdir();
    let silent = dir.path().join("silent");
    std::fs::write(&silent, "#!/bin/sh\nexec sleep 60\n").unwrap();
    std::fs::set_permissions(&silent, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut waiting = spec("waiting", "echo");
    waiting.extensions = vec![silent];
    // A hand-driven environment whose extension reports init/error.
    let (emu, client, _logs) = start(vec![
        crashing,
        unlaunchable,
        waiting,
        manual_runtime(dir.path()),
    ])
    .await;
    let waited = {
        let c = client.clone();
        tokio::spawn(async move { invoke(&c, "waiting", json!({})).await })
    };
    let out = invoke(&client, "unlaunchable", json!({})).await;
    assert_eq!(
        out.body["errorType"], "Extension.LaunchError",
        "{}",
        out.body
    );
    assert!(
        out.body["errorMessage"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/extensions/ghost"),
        "{}",
        out.body
    );
    let out = invoke(&client, "crashing", json!({})).await;
    assert_eq!(out.function_error.as_deref(), Some("Unhandled"));
    assert_eq!(out.body["errorType"], "Extension.Crash", "{}", out.body);
    assert!(
        out.body["errorMessage"]
            .as_str()
            .unwrap()
            .contains("`false`"),
        "{}",
        out.body
    );

    let c = client.clone();
    let call = tokio::spawn(async move { invoke(&c, "manual", json!({})).await });
    let base = format!("http://{}", runtime_api_addr(dir.path()).await);
    let (status, headers, _) = http(
        "POST",
        &format!("{base}/2020-01-01/extension/register"),
        &[("Lambda-Extension-Name", "picky")],
        br#"{"events":["INVOKE"]}"#.to_vec(),
    )
    .await;
    assert_eq!(status, 200);
    let id = headers["lambda-extension-identifier"].to_str().unwrap();
    let error_url = format!("{base}/2020-01-01/extension/init/error");
    let (status, _, body) = http(
        "POST",
        &error_url,
        &[("Lambda-Extension-Identifier", id)],
        vec![],
    )
    .await;
    assert_eq!(status, 400, "the error type header is required");
    assert_eq!(json_body(&body)["errorType"], "InvalidRequestFormat");
    // Accepted (202), and the environment is discarded at once: its
    // processes, the relay this test speaks through included, may be gone
    // before the 202 gets back. The caller's error below shows it was taken.
    let accepted = crate::support::emulator::try_http_with(
        "POST",
        &error_url,
        &[
            ("Lambda-Extension-Identifier", id),
            (
                "Lambda-Extension-Function-Error-Type",
                "Extension.ConfigInvalid",
            ),
        ],
        br#"{"errorMessage":"missing API key","errorType":"ConfigInvalid"}"#.to_vec(),
    )
    .await;
    if let Ok((status, body)) = &accepted {
        assert_eq!(*status, 202, "{}", String::from_utf8_lossy(body));
    }
    let out = call.await.unwrap();
    assert_eq!(out.function_error.as_deref(), Some("Unhandled"));
    assert_eq!(
        out.body["errorType"], "Extension.ConfigInvalid",
        "{}",
        out.body
    );
    assert!(
        out.body["errorMessage"]
            .as_str()
            .unwrap()
            .contains("missing API key"),
        "{}",
        out.body
    );
    let out = waited.await.unwrap();
    assert_eq!(out.function_error.as_deref(), Some("Unhandled"));
    assert!(
        out.body["errorMessage"]
            .as_str()
            .unwrap()
            .contains("init did not end within 10 seconds: extension `silent` has not registered"),
        "{}",
        out.body
    );
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_logs_api_extension_receives_the_legacy_records() {
    let dir = tempdir();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut s = spec("echo", "echo");
    s.extensions = vec![extension("logs", dir.path())];
    s.env
        .insert("EXT_RECORD_DIR".into(), dir.path().display().to_string());
    s.env.insert("EXT_LOGS_PORT".into(), port.to_string());
    let (emu, client, _logs) = start(vec![s]).await;
    let out = invoke(&client, "echo", json!({"legacy": true})).await;
    assert_eq!(out.function_error, None, "{}", out.body);
    let id = request_id(&out.log);
    let file = dir.path().join("logs.txt");
    let until = Instant::now() + Duration::from_secs(60);
    let text = loop {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        if text.contains("PlatformReport") {
            break text;
        }
        assert!(Instant::now() < until, "no platform.report arrived: {text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // Parsed by the crate's own Logs API types: only legacy record types
    // were sent (a Telemetry-only type would fail the whole batch).
    assert!(
        text.contains(&format!("PlatformStart {{ request_id: \"{id}\" }}")),
        "{text}"
    );
    assert!(
        text.contains(&format!("Function(\"echo handling {id}\")")),
        "{text}"
    );
    assert!(
        text.contains(&format!("PlatformEnd {{ request_id: \"{id}\" }}")),
        "{text}"
    );
    assert!(text.contains("memory_size_mb: 128"), "{text}");
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_extension_template_runs_beside_a_function() {
    let dir = tempdir();
    let name = "ext-tmpl-emu";
    crate::support::cargo_fn()
        .current_dir(dir.path())
        .args(["new", name, "--template", "extension", "--yes"])
        .assert()
        .success();
    let crate_dir = dir.path().join(name);
    let mut cargo = std::process::Command::new(env!("CARGO"));
    cargo.args(["build", "--quiet"]).current_dir(&crate_dir);
    for (key, _) in std::env::vars() {
        if key.starts_with("CARGO_") && key != "CARGO_HOME" {
            cargo.env_remove(key);
        }
    }
    let status = cargo
        .env("CARGO_TARGET_DIR", shared_target_dir())
        .status()
        .expect("run cargo");
    assert!(status.success(), "building the generated extension failed");
    let exts = dir.path().join("extensions");
    std::fs::create_dir_all(&exts).unwrap();
    std::fs::copy(
        shared_target_dir().join("debug").join(name),
        exts.join(name),
    )
    .unwrap();

    let mut s = spec("echo", "echo");
    s.extensions = vec![exts.join(name)];
    s.env.insert("EXT_TMPL_EMU_REPORT_EVERY".into(), "2".into());
    let (emu, client, logs) = start(vec![s]).await;
    for n in 0..2 {
        let out = invoke(&client, "echo", json!({"n": n})).await;
        assert_eq!(out.body, json!({"n": n}));
        // Both invocations on one environment: its extension counts them.
        until_idle(&emu, "echo").await;
    }
    emu.shutdown().await;
    let wanted = |l: &String, words: &[&str]| {
        l.contains(&format!("[{name}]")) && words.iter().all(|w| l.contains(w))
    };
    let until = Instant::now() + Duration::from_secs(30);
    while !logs
        .lines()
        .iter()
        .any(|l| wanted(l, &["INFO shutdown reason=spindown invocations=2"]))
    {
        assert!(Instant::now() < until, "{:#?}", logs.lines());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        logs.lines()
            .iter()
            .any(|l| wanted(l, &["INFO report invocations=2"])),
        "{:#?}",
        logs.lines()
    );
}

#[test]
fn a_missing_extensions_dir_is_refused_naming_the_flag() {
    let dir = tempdir();
    let missing = dir.path().join("nope");
    let out = crate::support::cargo_fn()
        .args(["watch", "--extensions-dir"])
        .arg(&missing)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "--extensions-dir {}: not a directory",
            missing.display()
        )),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn telemetry_over_tcp_arrives_as_json_lines() {
    use tokio::io::AsyncBufReadExt;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (lines_tx, mut lines_rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let tx = lines_tx.clone();
            tokio::spawn(async move {
                let mut lines = tokio::io::BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let _ = tx.send(serde_json::from_str(&line).expect("one JSON record per line"));
                }
            });
        }
    });

    let dir = tempdir();
    let (emu, client, _logs) = start(vec![manual_runtime(dir.path())]).await;
    let c = client.clone();
    let call = tokio::spawn(async move { invoke(&c, "manual", json!({})).await });
    let base = format!("http://{}", runtime_api_addr(dir.path()).await);
    let (_, headers, _) = http(
        "POST",
        &format!("{base}/2020-01-01/extension/register"),
        &[("Lambda-Extension-Name", "tcp-probe")],
        br#"{"events":[]}"#.to_vec(),
    )
    .await;
    let id = headers["lambda-extension-identifier"]
        .to_str()
        .unwrap()
        .to_string();
    let subscription = json!({
        "schemaVersion": "2022-07-01",
        "types": ["platform"],
        "buffering": {"maxItems": 1000, "maxBytes": 262144, "timeoutMs": 25},
        "destination": {"protocol": "TCP", "port": port},
    });
    let (status, _, body) = http(
        "PUT",
        &format!("{base}/2022-07-01/telemetry"),
        &[("Lambda-Extension-Identifier", id.as_str())],
        subscription.to_string().into_bytes(),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let next = format!("{base}/2020-01-01/extension/event/next");
    tokio::spawn(async move {
        http(
            "GET",
            &next,
            &[("Lambda-Extension-Identifier", id.as_str())],
            vec![],
        )
        .await
    });
    let runtime = format!("{base}/2018-06-01/runtime");
    let (_, headers, _) = http("GET", &format!("{runtime}/invocation/next"), &[], vec![]).await;
    let request_id = headers["lambda-runtime-aws-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    http(
        "POST",
        &format!("{runtime}/invocation/{request_id}/response"),
        &[],
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(call.await.unwrap().function_error, None);
    let mut seen = Vec::new();
    let until = tokio::time::Instant::now() + Duration::from_secs(30);
    while !seen.iter().any(|r: &Value| {
        r["type"] == "platform.report" && r["record"]["requestId"] == request_id.as_str()
    }) {
        match tokio::time::timeout_at(until, lines_rx.recv()).await {
            Ok(Some(record)) => seen.push(record),
            _ => panic!("no platform.report over TCP: {seen:#?}"),
        }
    }
    let types: Vec<&str> = seen.iter().filter_map(|r| r["type"].as_str()).collect();
    assert!(types.contains(&"platform.initStart"), "{types:?}");
    assert!(types.contains(&"platform.start"), "{types:?}");
    assert!(
        types
            .iter()
            .all(|t| t.starts_with("platform.") && *t != "platform.end"),
        "only the subscribed type, Telemetry API records: {types:?}"
    );
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watch_refuses_two_extensions_with_one_name() {
    use cargo_fn::ui::Ui;
    use cargo_fn::watch::WatchOptions;

    let dir = tempdir();
    let root = dir.path().join("ws");
    fixture_workspace(&root);
    let ext_dir = dir.path().join("opt-extensions");
    std::fs::create_dir_all(&ext_dir).unwrap();
    std::fs::copy(extension("recorder", dir.path()), ext_dir.join("recorder")).unwrap();
    let mut opts = WatchOptions {
        extensions_dir: Some(ext_dir.clone()),
        ..watch_options(&root, &Logs::default())
    };
    opts.selection.bins = vec!["func".into(), "recorder".into()];
    let err = cargo_fn::watch::run(opts, Ui::silent(), None, std::future::pending())
        .await
        .unwrap_err();
    let text = format!("{err:#}");
    assert!(
        text.contains("--extensions-dir") && text.contains("same name as the workspace extension"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_streamed_answer_is_handed_to_extensions_like_a_buffered_one() {
    let dir = tempdir();
    let file = dir.path().join("recorder.jsonl");
    // The gate is open: the handler streams its three chunks at once.
    let gate = dir.path().join("gate");
    std::fs::write(&gate, b"").unwrap();
    let (emu, _client, logs) = start(vec![with_recorder("chunks", "chunks", dir.path())]).await;
    let url = format!("{}/2015-03-31/functions/chunks/invocations", emu.endpoint());
    let payload = json!({"gate": gate.to_str().unwrap()}).to_string();
    for n in 1..=2 {
        let (status, _, body) = http("POST", &url, &[], payload.clone().into_bytes()).await;
        assert_eq!(status, 200);
        assert!(
            body.ends_with(b"first\nsecond\nthird\n"),
            "{}",
            String::from_utf8_lossy(&body)
        );
        // The invocation completes (REPORT) once the stream has ended and
        // the extension has asked for its next event.
        let until = Instant::now() + Duration::from_secs(60);
        while logs.count("REPORT RequestId") < n {
            assert!(Instant::now() < until, "no REPORT: {:#?}", logs.lines());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let lines = records_until(&file, |l| count(l, "INVOKE") == 2).await;
    assert_eq!(
        count(&lines, "STARTED"),
        1,
        "the environment was reused: {lines:#?}"
    );
    emu.shutdown().await;
    let lines = records_until(&file, |l| count(l, "SHUTDOWN") == 1).await;
    assert_eq!(lines.last().unwrap()["shutdownReason"], "spindown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ctrl_c_on_cargo_fn_watch_shuts_extensions_down() {
    let dir = tempdir();
    let root = dir.path().join("ws");
    fixture_workspace(&root);
    let records = dir.path().join("records");
    std::fs::create_dir_all(&records).unwrap();
    let env = format!("EXT_RECORD_DIR={}", records.display());
    let watch = crate::support::watch::CliWatch::start(
        &root,
        &[
            "--bin",
            "func",
            "--bin",
            "recorder",
            "--env-var",
            &env,
            "--env-var",
            "EXT_INVOKE_WORK_MS=500",
        ],
    );
    let client =
        crate::support::emulator::lambda_client(&format!("http://127.0.0.1:{}", watch.port));
    let out = invoke(&client, "func", json!({"c": 1})).await;
    assert_eq!(out.body, json!({"c": 1}), "{}", out.log);
    let file = records.join("recorder.jsonl");
    records_until(&file, |l| count(l, "INVOKE") == 1).await;
    // The extension is still at work on the INVOKE (EXT_INVOKE_WORK_MS):
    // its invocation ends first, then its environment gets SHUTDOWN.
    // A real SIGINT, as a terminal's Ctrl-C sends it; watch exits 0.
    watch.stop();
    let lines = records_until(&file, |l| count(l, "SHUTDOWN") == 1).await;
    assert_eq!(lines.last().unwrap()["shutdownReason"], "spindown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_handled_error_keeps_the_environment_and_gives_extensions_no_shutdown() {
    let dir = tempdir();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut s = with_recorder("counter", "counter", dir.path());
    s.extensions.push(extension("telemetry", dir.path()));
    s.env.insert("EXT_TELEMETRY_PORT".into(), port.to_string());
    let (emu, client, _logs) = start(vec![s]).await;
    let failed = invoke(&client, "counter", json!({"error": true})).await;
    assert_eq!(failed.function_error.as_deref(), Some("Unhandled"));
    let id = request_id(&failed.log);
    until_idle(&emu, "counter").await;
    let ok = invoke(&client, "counter", json!({})).await;
    assert_eq!(ok.body["count"], 2, "the same environment: {}", ok.body);

    let lines = records_until(&dir.path().join("recorder.jsonl"), |l| {
        count(l, "INVOKE") == 2
    })
    .await;
    assert_eq!(count(&lines, "STARTED"), 1, "{lines:#?}");
    assert_eq!(count(&lines, "SHUTDOWN"), 0, "no reset: {lines:#?}");
    // Telemetry tells a handled error (`error`) from a crash (`failure`).
    let records = records_until(&dir.path().join("telemetry.jsonl"), |l| {
        l.iter()
            .any(|r| r["type"] == "platform.runtimeDone" && r["record"]["requestId"] == id.as_str())
    })
    .await;
    let done = records
        .iter()
        .find(|r| r["type"] == "platform.runtimeDone" && r["record"]["requestId"] == id.as_str())
        .unwrap();
    assert_eq!(done["record"]["status"], "error", "{done}");
    emu.shutdown().await;
}
