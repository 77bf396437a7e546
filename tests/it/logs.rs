//! `cargo fn logs`: remote against moto's CloudWatch Logs (events written
//! by the test, then read, filtered and followed), local against an
//! emulator's invocation history.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::doubles::{Double, Kind};
use crate::support::moto::json_call;
use crate::support::{cargo_fn, tempdir};

const GROUP: &str = "/aws/lambda/hello";
const V1: &str = "2026/11/30/[1]0123456789abcdef";
const V2: &str = "2026/11/30/[2]fedcba9876543210";

fn logs_call(aws: &Double, action: &str, body: Value) -> Value {
    let (status, out) = json_call(aws.port, "logs", &format!("Logs_20140328.{action}"), &body);
    assert!(
        (200..300).contains(&status),
        "{action}: HTTP {status} {}",
        String::from_utf8_lossy(&out)
    );
    serde_json::from_slice(&out).unwrap_or(Value::Null)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn setup(aws: &Double) {
    logs_call(aws, "CreateLogGroup", json!({"logGroupName": GROUP}));
    for stream in [V1, V2] {
        logs_call(
            aws,
            "CreateLogStream",
            json!({"logGroupName": GROUP, "logStreamName": stream}),
        );
    }
}

fn put(aws: &Double, stream: &str, messages: &[&str]) {
    let t = now_ms();
    let events: Vec<Value> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| json!({"timestamp": t + i as i64, "message": m}))
        .collect();
    logs_call(
        aws,
        "PutLogEvents",
        json!({"logGroupName": GROUP, "logStreamName": stream, "logEvents": events}),
    );
}

fn report(id: &str) -> String {
    format!(
        "REPORT RequestId: {id}\tDuration: 12.50 ms\tBilled Duration: 13 ms\tMemory Size: 128 MB\tMax Memory Used: 20 MB\tInit Duration: 40.00 ms\t"
    )
}

/// Two invocations on two versions, their lines interleaved in time.
fn two_invocations(aws: &Double) {
    put(aws, V1, &["START RequestId: r-one Version: 1"]);
    put(aws, V2, &["START RequestId: r-two Version: 2"]);
    put(aws, V1, &["hello from one", "ERROR boom in one"]);
    put(aws, V2, &["hello from two"]);
    put(aws, V1, &["END RequestId: r-one", &report("r-one")]);
    put(aws, V2, &["END RequestId: r-two", &report("r-two")]);
}

fn logs(aws: &Double, args: &[&str]) -> String {
    let dir = tempdir();
    let out = cargo_fn()
        .current_dir(dir.path())
        .envs(aws.env())
        .args(["fn", "logs", "hello", "--remote", "--color", "never"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo fn logs {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn remote_logs_are_grouped_per_request_with_a_summary() {
    let aws = Double::start(Kind::Moto);
    setup(&aws);
    two_invocations(&aws);
    let out = logs(&aws, &["--since", "10m"]);
    let lines: Vec<&str> = out.lines().collect();
    let at = |needle: &str| {
        lines
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no `{needle}` in\n{out}"))
    };
    // r-one's lines together, then r-two's, though they interleave in time.
    assert!(at("START RequestId: r-one") < at("hello from one"));
    assert!(at("hello from one") < at("REPORT RequestId: r-one"));
    assert!(at("REPORT RequestId: r-one") < at("START RequestId: r-two"));
    assert!(at("START RequestId: r-two") < at("hello from two"));
    assert!(lines[at("hello from one")].contains("[r-one]"), "{out}");
    // The summary after each REPORT: figures and the cost estimate.
    let summary = lines[at("REPORT RequestId: r-one") + 1];
    assert!(
        summary.contains("12.50 ms (billed 13 ms)") && summary.contains("20/128 MB"),
        "{summary}"
    );
    assert!(
        summary.contains("init 40.00 ms") && summary.contains("~$0.0000002"),
        "{summary}"
    );
    assert!(!out.contains('\x1b'), "--color never: {out}");
}

#[test]
fn remote_logs_filter_by_pattern_version_and_print_json() {
    let aws = Double::start(Kind::Moto);
    setup(&aws);
    two_invocations(&aws);

    let out = logs(&aws, &["--filter", "boom"]);
    assert!(out.contains("ERROR boom in one"), "{out}");
    assert!(!out.contains("hello from"), "the filter applies: {out}");

    let out = logs(&aws, &["--version", "2"]);
    assert!(out.contains("hello from two"), "{out}");
    assert!(!out.contains("r-one"), "only version 2's stream: {out}");

    let out = logs(&aws, &["--output", "json"]);
    let events: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(events.len(), 9, "{out}");
    let report = events
        .iter()
        .find(|e| {
            e["message"]
                .as_str()
                .unwrap()
                .starts_with("REPORT RequestId: r-two")
        })
        .unwrap();
    assert_eq!(report["request_id"], "r-two");
    assert_eq!(report["stream"], V2);
    assert_eq!(report["report"]["billed_ms"], 13);
    assert!(report["report"]["cost_usd"].as_f64().unwrap() > 0.0);
    assert!(report["event_id"].is_string());
}

#[test]
fn remote_logs_name_a_missing_group_and_reject_bad_flags_before_any_call() {
    let aws = Double::start(Kind::Moto);
    let dir = tempdir();
    let out = cargo_fn()
        .current_dir(dir.path())
        .envs(aws.env())
        .args(["fn", "logs", "nothere", "--remote"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("log group `/aws/lambda/nothere` of function `nothere` does not exist"),
        "{err}"
    );

    aws.proxy.reset_calls();
    let out = cargo_fn()
        .current_dir(dir.path())
        .envs(aws.env())
        .args(["fn", "logs", "hello", "--remote", "--since", "yesterday"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--since `yesterday`"), "{err}");
    assert!(aws.proxy.calls().is_empty(), "{:?}", aws.proxy.calls());
}

#[test]
fn alias_selects_the_log_streams_of_its_version() {
    let aws = Double::start(Kind::Moto);
    let dir = tempdir();
    crate::support::deploy::project(dir.path(), "hello", "");
    let zip = crate::support::deploy::zip(dir.path(), "hello.zip", "v1");
    // Creates the function, publishes version 1 and points `live` at it.
    crate::support::deploy::ok(crate::support::deploy::deploy(&aws, dir.path(), &zip, &[]));
    setup(&aws);
    two_invocations(&aws);
    // The function comes from the project's configuration.
    let out = cargo_fn()
        .current_dir(dir.path())
        .envs(aws.env())
        .args([
            "fn", "logs", "--remote", "--alias", "live", "--color", "never",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("hello from one"), "{text}");
    assert!(
        !text.contains("r-two"),
        "version 2 is not behind `live`: {text}"
    );

    let out = cargo_fn()
        .current_dir(dir.path())
        .envs(aws.env())
        .args(["fn", "logs", "--remote", "--alias", "nope"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("function `hello` has no alias `nope`"),
        "{err}"
    );
}

/// Kills the follower when the test ends, however it ends.
struct Follower(Child);

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Lines of a child's stdout, as they come.
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Collects lines until one contains `needle` (generous bound: a loaded
/// machine).
fn wait_for(rx: &mpsc::Receiver<String>, seen: &mut Vec<String>, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while !seen.iter().any(|l| l.contains(needle)) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(_) => panic!("`{needle}` never came; got:\n{}", seen.join("\n")),
        }
    }
}

#[test]
fn tail_prints_events_written_after_it_started_once_each() {
    let aws = Double::start(Kind::Moto);
    setup(&aws);
    put(&aws, V1, &["before the tail"]);
    let dir = tempdir();
    let mut child = crate::support::cargo_fn_command()
        .current_dir(dir.path())
        .envs(aws.env())
        .args([
            "fn", "logs", "hello", "--remote", "--tail", "--color", "never",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let rx = lines_of(&mut child);
    let _guard = Follower(child);
    let mut seen = Vec::new();
    wait_for(&rx, &mut seen, "before the tail");
    put(
        &aws,
        V1,
        &["START RequestId: r-late Version: 1", "first after"],
    );
    put(&aws, V2, &["second after"]);
    wait_for(&rx, &mut seen, "first after");
    wait_for(&rx, &mut seen, "second after");
    // A marker written once the others were seen: the polls that bring it
    // re-read the others (they are inside the look-back window), so a
    // duplicate would have shown by then.
    put(&aws, V1, &["marker"]);
    wait_for(&rx, &mut seen, "marker");
    for needle in ["before the tail", "first after", "second after", "marker"] {
        let n = seen.iter().filter(|l| l.contains(needle)).count();
        assert_eq!(n, 1, "`{needle}` printed {n} times:\n{}", seen.join("\n"));
    }
    let first = seen.iter().find(|l| l.contains("first after")).unwrap();
    assert!(first.contains("[r-late]"), "grouped by request: {first}");
}

mod local {
    use super::*;
    use crate::support::emulator::{invoke, spec, start};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn local_logs_of_a_lone_function_are_not_prefixed_with_its_name() {
        let (emu, client, _logs) = start(vec![spec("echo", "echo")]).await;
        let first = invoke(&client, "echo", json!({"n": 1})).await;
        assert_eq!(first.status, 200);
        let port = emu.addr().port().to_string();
        let run = |args: Vec<String>| {
            tokio::task::spawn_blocking(move || {
                let out = cargo_fn().args(args).output().unwrap();
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                String::from_utf8(out.stdout).unwrap()
            })
        };
        let base: Vec<String> = ["fn", "logs", "--port", &port, "--color", "never"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        // No FUNCTION given, and the emulator serves one: no name column.
        let text = run(base.clone()).await.unwrap();
        assert!(text.contains("echo handling"), "{text}");
        assert!(
            text.lines().all(|l| !l.contains("Z echo [")),
            "the lone function's name on its lines:\n{text}"
        );
        // With a second function served, every line says whose it is.
        let mut two = spec("other", "echo");
        two.memory_mb = 256;
        emu.set_function(two);
        let text = run(base).await.unwrap();
        assert!(
            text.lines().any(|l| l.contains("Z echo [")),
            "two functions served: each line names its function:\n{text}"
        );
        emu.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn local_logs_read_and_follow_the_emulator_history() {
        let (emu, client, _logs) = start(vec![spec("echo", "echo")]).await;
        let first = invoke(&client, "echo", json!({"n": 1})).await;
        assert_eq!(first.status, 200);
        let port = emu.addr().port().to_string();
        let out = tokio::task::spawn_blocking({
            let port = port.clone();
            move || {
                cargo_fn()
                    .args(["fn", "logs", "--port", &port, "--color", "never"])
                    .output()
                    .unwrap()
            }
        })
        .await
        .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("echo handling"), "{text}");
        assert!(text.contains("REPORT RequestId:"), "{text}");
        assert!(text.contains("(billed "), "the summary: {text}");

        let mut child = crate::support::cargo_fn_command()
            .args([
                "fn", "logs", "echo", "--tail", "--port", &port, "--color", "never",
            ])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let rx = lines_of(&mut child);
        let _guard = Follower(child);
        let mut seen = Vec::new();
        let rx = tokio::task::spawn_blocking(move || {
            wait_for(&rx, &mut seen, "echo handling");
            (rx, seen)
        })
        .await
        .unwrap();
        let (rx, mut seen) = rx;
        let later = invoke(&client, "echo", json!({"n": 2})).await;
        assert_eq!(later.status, 200);
        let later_id = later
            .log
            .lines()
            .find_map(|l| l.strip_prefix("START RequestId: "))
            .and_then(|r| r.split_whitespace().next())
            .unwrap()
            .to_string();
        tokio::task::spawn_blocking(move || {
            wait_for(&rx, &mut seen, &format!("REPORT RequestId: {later_id}"));
            let n = seen
                .iter()
                .filter(|l| l.contains(&format!("START RequestId: {later_id}")))
                .count();
            assert_eq!(n, 1, "{}", seen.join("\n"));
        })
        .await
        .unwrap();
        emu.shutdown().await;
    }
}
