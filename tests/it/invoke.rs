//! `cargo fn invoke` as a user runs it, against an emulator started in the
//! test (local mode) and, for `--remote`, through the real-service code path
//! pointed at the same emulator with `--endpoint-url`.

use std::time::Duration;

use cargo_fn::emulator::Emulator;
use serde_json::{Value, json};

use crate::support::cargo_fn;
use crate::support::emulator::{Logs, options, spec};

async fn emulator() -> (Emulator, Logs) {
    let logs = Logs::default();
    let mut sleepy = spec("sleep", "sleep");
    sleepy.timeout = Duration::from_secs(1);
    // `echo` is served under the alias `live` too, as a deployed one would be.
    let mut echo = spec("echo", "echo");
    echo.aliases = vec!["live".into()];
    let emu = Emulator::start(options(&logs), vec![echo, spec("panic", "panic"), sleepy])
        .await
        .unwrap();
    (emu, logs)
}

/// Runs cargo-fn off the async runtime: (exit code, stdout, stderr).
async fn run(args: Vec<String>, stdin: Option<&'static str>) -> (i32, String, String) {
    tokio::task::spawn_blocking(move || {
        let mut cmd = cargo_fn();
        cmd.args(&args)
            .env("AWS_ACCESS_KEY_ID", "AKIDINVOKETEST")
            .env("AWS_SECRET_ACCESS_KEY", "invoke-test-secret")
            .env("AWS_CONFIG_FILE", "/nonexistent/aws-config")
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                "/nonexistent/aws-credentials",
            )
            .env("AWS_EC2_METADATA_DISABLED", "true");
        if let Some(input) = stdin {
            cmd.write_stdin(input);
        }
        let out = cmd.output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_sources_and_log_tail() {
    let (emu, _logs) = emulator().await;
    let ep = emu.endpoint();

    let (code, out, err) = run(
        args(&["invoke", "echo", "--endpoint", &ep, "--data", r#"{"a":1}"#]),
        None,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap(),
        json!({"a": 1})
    );

    let (code, out, err) = run(
        args(&["invoke", "echo", "--endpoint", &ep, "--example", "sqs"]),
        None,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let body: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(body["Records"][0]["eventSource"], "aws:sqs");

    let (code, out, err) = run(
        args(&[
            "invoke",
            "echo",
            "--endpoint",
            &ep,
            "--data-file",
            "-",
            "--log",
        ]),
        Some(r#"{"from":"stdin"}"#),
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap(),
        json!({"from": "stdin"})
    );
    assert!(err.contains("START RequestId: "), "{err}");
    assert!(err.contains("REPORT RequestId: "), "{err}");

    let port = emu.addr().port().to_string();
    let (code, out, err) = run(args(&["invoke", "echo", "--port", &port]), None).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), json!({}));
    emu.shutdown().await;
}

/// `--async` queues an Event invocation: it says so (the function, the
/// status and the request id) instead of printing nothing, and the
/// invocation runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_invocation_says_what_was_queued() {
    let (emu, logs) = emulator().await;
    let ep = emu.endpoint();
    let (code, out, err) = run(
        args(&[
            "invoke",
            "echo",
            "--endpoint",
            &ep,
            "--async",
            "--data",
            r#"{"a":1}"#,
        ]),
        None,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "", "an Event invocation has no result to print");
    assert!(
        err.contains(
            "queued an asynchronous invocation of echo (7 bytes of payload, HTTP 202, request id "
        ),
        "{err}"
    );
    assert!(err.contains("the `cargo fn watch` output"), "{err}");
    for _ in 0..100 {
        if logs.count("END RequestId") >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(logs.count("END RequestId"), 1, "the queued invocation ran");
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn function_errors_exit_non_zero_with_the_error_on_stdout() {
    let (emu, _logs) = emulator().await;
    let ep = emu.endpoint();
    let (code, out, err) = run(
        args(&[
            "invoke",
            "panic",
            "--endpoint",
            &ep,
            "--data",
            r#"{"panic":true}"#,
        ]),
        None,
    )
    .await;
    assert_eq!(code, 1, "{out}{err}");
    let body: Value = serde_json::from_str(&out).unwrap();
    assert!(
        body["errorMessage"]
            .as_str()
            .unwrap()
            .contains("fixture panic")
    );
    assert!(err.contains("Unhandled"), "{err}");

    let (code, out, err) = run(
        args(&[
            "invoke",
            "sleep",
            "--endpoint",
            &ep,
            "--data",
            r#"{"ms":5000}"#,
        ]),
        None,
    )
    .await;
    assert_eq!(code, 1);
    assert!(out.contains("Sandbox.Timedout"), "{out}");
    assert!(err.contains("failed"), "{err}");

    let (code, _, err) = run(args(&["invoke", "missing", "--endpoint", &ep]), None).await;
    assert_ne!(code, 0);
    assert!(err.contains("Function not found"), "{err}");
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_named_and_nothing_is_sent() {
    let (emu, logs) = emulator().await;
    let ep = emu.endpoint();
    let (code, _, err) = run(
        args(&["invoke", "echo", "--endpoint", &ep, "--data", "{nope"]),
        None,
    )
    .await;
    assert_ne!(code, 0);
    assert!(err.contains("--data is not valid JSON"), "{err}");
    let (code, _, err) = run(
        args(&[
            "invoke",
            "echo",
            "--endpoint",
            &ep,
            "--example",
            "carrier-pigeon",
        ]),
        None,
    )
    .await;
    assert_ne!(code, 0);
    assert!(
        err.contains("carrier-pigeon") && err.contains("sqs"),
        "{err}"
    );
    let (code, _, err) = run(
        args(&[
            "invoke",
            "echo",
            "--endpoint",
            &ep,
            "--data-file",
            "/nonexistent/event.json",
        ]),
        None,
    )
    .await;
    assert_ne!(code, 0);
    assert!(err.contains("/nonexistent/event.json"), "{err}");
    assert_eq!(logs.count("START RequestId"), 0, "nothing was invoked");

    let (code, out, _) = run(args(&["invoke", "--list-examples"]), None).await;
    assert_eq!(code, 0);
    for name in [
        "apigw-rest",
        "apigw-http",
        "function-url",
        "sqs",
        "sns",
        "s3",
        "eventbridge-scheduled",
        "kinesis",
        "dynamodb-stream",
    ] {
        assert!(out.contains(name), "{name} missing from {out}");
    }
    // Nothing listening: a hint to start watch.
    let (code, _, err) = run(
        args(&["invoke", "echo", "--endpoint", "http://127.0.0.1:9"]),
        None,
    )
    .await;
    assert_ne!(code, 0);
    assert!(err.contains("cargo fn watch"), "{err}");
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_mode_goes_through_the_aws_configuration_path() {
    let (emu, _logs) = emulator().await;
    let ep = emu.endpoint();
    let (code, out, err) = run(
        args(&[
            "invoke",
            "echo",
            "--remote",
            "--endpoint-url",
            &ep,
            "--region",
            "eu-west-1",
            "--qualifier",
            "live",
            "--data",
            r#"{"remote":true}"#,
            "--log",
        ]),
        None,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap(),
        json!({"remote": true})
    );
    assert!(
        err.contains("REPORT RequestId: "),
        "decoded tail log: {err}"
    );
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_prints_each_chunk_as_it_arrives_and_reports_a_mid_stream_error() {
    use std::io::Read;
    let logs = Logs::default();
    let emu = Emulator::start(options(&logs), vec![spec("chunks", "chunks")])
        .await
        .unwrap();
    let ep = emu.endpoint();
    let dir = crate::support::tempdir();
    let gate = dir.path().join("gate");
    let data = json!({"gate": gate.to_str().unwrap()}).to_string();
    let mut child = crate::support::cargo_fn_command()
        .args(["invoke", "chunks", "--stream", "--log", "--endpoint", &ep])
        .args(["--data", &data])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    // The first chunk is on stdout while the handler still waits on the gate.
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    while !seen.ends_with(b"first\n") {
        let n = stdout.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "stdout ended early: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "invoke ended before the gate opened"
    );
    std::fs::write(&gate, b"").unwrap();
    stdout.read_to_end(&mut seen).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        seen.ends_with(b"first\nsecond\nthird\n\n"),
        "{}",
        String::from_utf8_lossy(&seen)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("REPORT RequestId"), "the log tail: {err}");

    // An error after the first chunk: the chunk is printed, the error named.
    let failing = json!({"gate": gate.to_str().unwrap(), "fail": 1}).to_string();
    let (code, out, err) = run(
        args(&[
            "invoke",
            "chunks",
            "--stream",
            "--endpoint",
            &ep,
            "--data",
            &failing,
        ]),
        None,
    )
    .await;
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(out.contains("first\n"), "{out}");
    assert!(err.contains("failed mid-stream"), "{err}");
    emu.shutdown().await;
}
