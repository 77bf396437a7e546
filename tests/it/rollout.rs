//! Gradual rollouts (`deploy --strategy/--linear/--canary --bake`,
//! `--resume`, record-aware `promote`/`rollback`) end to end against moto:
//! Lambda aliases and CloudWatch alarms (`SetAlarmState`) and metrics
//! (`PutMetricData`), with step durations of seconds and a 1 s poll.
//!
//! The rollout prints one JSON event per line (`--output json`); the tests
//! read them as they come to act at a given step.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdout, Stdio};
use std::time::Instant;

use serde_json::Value;

use crate::support::deploy::{project, zip};
use crate::support::moto::{Aws, FaultAction, http_as, http_form};
use crate::support::{cargo_fn, cargo_fn_command, tempdir};

/// A CloudWatch query-API call straight to moto (no proxy).
fn cloudwatch(aws: &Aws, params: &[(&str, &str)]) {
    let query: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params.iter().copied())
        .append_pair("Version", "2010-08-01")
        .finish();
    let (status, body) = http_form(aws.moto.port, "monitoring", &query);
    assert!(
        (200..300).contains(&status),
        "{params:?}: HTTP {status} {}",
        String::from_utf8_lossy(&body)
    );
}

fn put_alarm(aws: &Aws, name: &str) {
    cloudwatch(
        aws,
        &[
            ("Action", "PutMetricAlarm"),
            ("AlarmName", name),
            ("Namespace", "AWS/Lambda"),
            ("MetricName", "Errors"),
            ("Statistic", "Sum"),
            ("Period", "60"),
            ("EvaluationPeriods", "1"),
            ("Threshold", "1"),
            ("ComparisonOperator", "GreaterThanOrEqualToThreshold"),
        ],
    );
}

fn set_alarm(aws: &Aws, name: &str, state: &str) {
    cloudwatch(
        aws,
        &[
            ("Action", "SetAlarmState"),
            ("AlarmName", name),
            ("StateValue", state),
            ("StateReason", "set by the test"),
        ],
    );
}

/// `value` of `metric` for the calls alias `live` of hello routed to `version`.
fn put_metric(aws: &Aws, metric: &str, version: &str, value: &str) {
    cloudwatch(
        aws,
        &[
            ("Action", "PutMetricData"),
            ("Namespace", "AWS/Lambda"),
            ("MetricData.member.1.MetricName", metric),
            ("MetricData.member.1.Value", value),
            ("MetricData.member.1.Unit", "Count"),
            (
                "MetricData.member.1.Dimensions.member.1.Name",
                "FunctionName",
            ),
            ("MetricData.member.1.Dimensions.member.1.Value", "hello"),
            ("MetricData.member.1.Dimensions.member.2.Name", "Resource"),
            (
                "MetricData.member.1.Dimensions.member.2.Value",
                "hello:live",
            ),
            (
                "MetricData.member.1.Dimensions.member.3.Name",
                "ExecutedVersion",
            ),
            ("MetricData.member.1.Dimensions.member.3.Value", version),
        ],
    );
}

fn alias(aws: &Aws) -> Value {
    aws.get_json("/2015-03-31/functions/hello/aliases/live")
}

fn weights(a: &Value) -> Vec<(String, f64)> {
    a["RoutingConfig"]["AdditionalVersionWeights"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_f64().unwrap()))
                .collect()
        })
        .unwrap_or_default()
}

/// cargo-fn with moto's environment, stdout piped for the events.
fn spawn(aws: &Aws, dir: &Path, args: &[&str]) -> Rollout {
    let mut cmd = cargo_fn_command();
    cmd.current_dir(dir)
        .args(args)
        .env_remove("AWS_PROFILE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in aws.env() {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("run cargo-fn");
    let stdout = BufReader::new(child.stdout.take().unwrap());
    Rollout {
        child,
        stdout,
        events: Vec::new(),
    }
}

struct Rollout {
    child: Child,
    stdout: BufReader<ChildStdout>,
    events: Vec<Value>,
}

impl Rollout {
    /// The next event; `None` at the end of the output.
    fn next(&mut self) -> Option<Value> {
        let mut line = String::new();
        loop {
            line.clear();
            if self.stdout.read_line(&mut line).ok()? == 0 {
                return None;
            }
            if let Ok(v) = serde_json::from_str::<Value>(line.trim())
                && v.get("event").is_some()
            {
                self.events.push(v.clone());
                return Some(v);
            }
        }
    }

    /// Reads events until one matches.
    fn until(&mut self, what: impl Fn(&Value) -> bool) -> Value {
        while let Some(e) = self.next() {
            if what(&e) {
                return e;
            }
        }
        let err = self.finish().1;
        panic!("the rollout ended first: {:?}\n{err}", self.events);
    }

    /// Waits for the process; (success, stderr).
    fn finish(&mut self) -> (bool, String) {
        while self.next().is_some() {}
        let status = self.child.wait().unwrap();
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        (status.success(), err)
    }

    fn of(&self, kind: &str) -> Vec<&Value> {
        self.events.iter().filter(|e| e["event"] == kind).collect()
    }
}

impl Drop for Rollout {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn step(percent: f64) -> impl Fn(&Value) -> bool {
    move |e| e["event"] == "step" && e["percent"].as_f64() == Some(percent)
}

/// A project whose function `hello` is on version 1 behind alias `live`,
/// and the zip of version 2.
fn deployed(aws: &Aws, metadata: &str) -> (tempfile::TempDir, String) {
    let dir = tempdir();
    project(dir.path(), "hello", metadata);
    let v1 = zip(dir.path(), "v1.zip", "one");
    let v2 = zip(dir.path(), "v2.zip", "two");
    let mut first = spawn(
        aws,
        dir.path(),
        &["deploy", "--zip", v1.to_str().unwrap(), "--output", "json"],
    );
    let (ok, err) = first.finish();
    assert!(ok, "first deploy: {err}");
    assert_eq!(alias(aws)["FunctionVersion"], "1");
    (dir, v2.to_str().unwrap().to_string())
}

#[test]
fn a_healthy_linear_rollout_reaches_100_through_each_weight_with_hooks() {
    let aws = Aws::start();
    // The hooks are hello itself at version 1: moto's Invoke without
    // Docker answers 200 with no function error, so they pass.
    let (dir, v2) = deployed(
        &aws,
        "deployment = { pre-traffic = \"hello:1\", post-traffic = \"hello:1\" }",
    );
    aws.proxy.reset_calls();
    let mut run = spawn(
        &aws,
        dir.path(),
        &[
            "deploy", "--zip", &v2, "--linear", "50", "--every", "2s", "--poll", "1s", "--output",
            "json",
        ],
    );
    let (ok, err) = run.finish();
    assert!(ok, "{err}\n{:?}", run.events);
    let percents: Vec<f64> = run
        .of("step")
        .iter()
        .map(|e| e["percent"].as_f64().unwrap())
        .collect();
    assert_eq!(percents, vec![50.0, 100.0]);
    assert_eq!(run.of("done").len(), 1);
    let hooks: Vec<(&str, bool)> = run
        .of("hook")
        .iter()
        .map(|e| (e["phase"].as_str().unwrap(), e["ok"].as_bool().unwrap()))
        .collect();
    assert_eq!(hooks, vec![("pre-traffic", true), ("post-traffic", true)]);
    let a = alias(&aws);
    assert_eq!(a["FunctionVersion"], "2");
    assert!(weights(&a).is_empty(), "{a}");
    assert!(
        a["Description"].as_str().unwrap().contains("completed"),
        "{a}"
    );
    // The alias moved three times (50%, 100% with the record, the record
    // closed after the post-traffic hook); each poll read the alias and
    // the new version's metrics.
    let calls = aws.proxy.calls();
    let moves = calls
        .iter()
        .filter(|c| *c == "PUT /2015-03-31/functions/hello/aliases/live")
        .count();
    assert_eq!(moves, 3, "{calls:?}");
    let invokes = calls
        .iter()
        .filter(|c| c.ends_with("/functions/hello%3A1/invocations"))
        .count();
    assert_eq!(invokes, 2, "{calls:?}");
    let polls = run.of("poll").len();
    assert!(polls >= 1, "{:?}", run.events);
    let metric_reads = calls
        .iter()
        .filter(|c| *c == "cloudwatch:GetMetricData")
        .count();
    assert_eq!(metric_reads, polls, "{calls:?}");
}

#[test]
fn an_alarm_set_to_alarm_mid_rollout_rolls_back_within_one_poll() {
    let aws = Aws::start();
    let (dir, v2) = deployed(&aws, "deployment = { alarms = [\"hello-errors\"] }");
    put_alarm(&aws, "hello-errors");
    set_alarm(&aws, "hello-errors", "OK");
    let mut run = spawn(
        &aws,
        dir.path(),
        &[
            "deploy", "--zip", &v2, "--linear", "20", "--every", "60s", "--poll", "1s", "--output",
            "json",
        ],
    );
    run.until(step(20.0));
    let seen = run.until(|e| e["event"] == "poll")["poll"]
        .as_u64()
        .unwrap();
    let a = alias(&aws);
    assert_eq!(a["FunctionVersion"], "1");
    assert_eq!(weights(&a), vec![("2".to_string(), 0.2)]);
    set_alarm(&aws, "hello-errors", "ALARM");
    let set_at = Instant::now();
    let rollback = run.until(|e| e["event"] == "rollback");
    let took = set_at.elapsed();
    // The poll in flight when the alarm changed may have read it before;
    // the one after it cannot miss it.
    let at = rollback["poll"].as_u64().unwrap();
    assert!(
        at <= seen + 2,
        "alarm set after poll {seen}, rolled back at poll {at}"
    );
    assert!(
        rollback["reason"]
            .as_str()
            .unwrap()
            .contains("hello-errors"),
        "{rollback}"
    );
    eprintln!("alarm -> rollback event: {took:?} with a 1 s poll");
    let (ok, err) = run.finish();
    assert!(!ok, "a rolled back deploy fails");
    assert!(err.contains("rolled back"), "{err}");
    let a = alias(&aws);
    assert_eq!(a["FunctionVersion"], "1");
    assert!(weights(&a).is_empty(), "{a}");
    // The new version stays published.
    let versions = aws.get_json("/2015-03-31/functions/hello/versions");
    assert!(
        versions["Versions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["Version"] == "2"),
        "{versions}"
    );
}

#[test]
fn errors_of_the_new_version_over_the_threshold_roll_back_without_any_alarm() {
    let aws = Aws::start();
    let (dir, v2) = deployed(&aws, "deployment = { error-threshold = 5 }");
    let mut run = spawn(
        &aws,
        dir.path(),
        &[
            "deploy", "--zip", &v2, "--canary", "10", "--bake", "60s", "--poll", "1s", "--output",
            "json",
        ],
    );
    run.until(step(10.0));
    // Errors of the old version do not count; 3 of 20 calls of the new one do.
    put_metric(&aws, "Errors", "1", "50");
    put_metric(&aws, "Invocations", "1", "50");
    put_metric(&aws, "Invocations", "2", "20");
    put_metric(&aws, "Errors", "2", "3");
    let rollback = run.until(|e| e["event"] == "rollback");
    let reason = rollback["reason"].as_str().unwrap();
    assert!(
        reason.contains("15.0%") && reason.contains("threshold"),
        "{reason}"
    );
    let (ok, _) = run.finish();
    assert!(!ok);
    assert_eq!(alias(&aws)["FunctionVersion"], "1");
    assert!(weights(&alias(&aws)).is_empty());
}

#[test]
fn a_pre_traffic_hook_answering_a_function_error_moves_nothing_proxy_injected() {
    let aws = Aws::start();
    let (dir, v2) = deployed(&aws, "deployment = { pre-traffic = \"hello:1\" }");
    // moto without Docker cannot run a failing function: the proxy answers
    // the hook's Invoke as Lambda does when the handler returns an error.
    aws.proxy.inject(
        "/functions/hello%3A1/invocations",
        FaultAction::Answer(
            "X-Amz-Function-Error",
            "Unhandled",
            r#"{"errorType":"SmokeTestFailed","errorMessage":"checkout returned 500"}"#,
        ),
        1,
    );
    let before = alias(&aws);
    let mut run = spawn(
        &aws,
        dir.path(),
        &[
            "deploy",
            "--zip",
            &v2,
            "--strategy",
            "AllAtOnce",
            "--output",
            "json",
        ],
    );
    let (ok, err) = run.finish();
    assert!(!ok);
    assert!(err.contains("checkout returned 500"), "{err}");
    assert_eq!(run.of("hook")[0]["ok"], false);
    assert!(run.of("step").is_empty(), "{:?}", run.events);
    assert_eq!(alias(&aws), before, "the alias was not touched");
}

#[test]
fn an_interrupted_rollout_is_resumed_from_a_second_process() {
    let aws = Aws::start();
    let (dir, v2) = deployed(&aws, "");
    let mut first = spawn(
        &aws,
        dir.path(),
        &[
            "deploy", "--zip", &v2, "--linear", "50", "--every", "4s", "--poll", "1s", "--output",
            "json",
        ],
    );
    first.until(step(50.0));
    // The machine goes away: no chance to clean up.
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    let a = alias(&aws);
    assert_eq!(weights(&a), vec![("2".to_string(), 0.5)]);
    assert!(
        a["Description"]
            .as_str()
            .unwrap()
            .starts_with("cargo-fn rollout {"),
        "{a}"
    );

    // A new rollout refuses to start over it, before any write.
    aws.proxy.reset_calls();
    let v3 = zip(dir.path(), "v3.zip", "three");
    let mut other = spawn(
        &aws,
        dir.path(),
        &[
            "deploy",
            "--zip",
            v3.to_str().unwrap(),
            "--strategy",
            "AllAtOnce",
            "--output",
            "json",
        ],
    );
    let (ok, err) = other.finish();
    assert!(!ok);
    assert!(
        err.contains("is running") && err.contains("--resume"),
        "{err}"
    );
    let writes = aws.proxy.writes();
    assert!(writes.is_empty(), "{writes:?}");

    let mut second = spawn(
        &aws,
        dir.path(),
        &["deploy", "--resume", "--poll", "1s", "--output", "json"],
    );
    let (ok, err) = second.finish();
    assert!(ok, "{err}\n{:?}", second.events);
    assert_eq!(second.of("start")[0]["resumed"], true);
    let percents: Vec<f64> = second
        .of("step")
        .iter()
        .map(|e| e["percent"].as_f64().unwrap())
        .collect();
    assert_eq!(percents, vec![50.0, 100.0]);
    let a = alias(&aws);
    assert_eq!(a["FunctionVersion"], "2");
    assert!(weights(&a).is_empty());
}

#[test]
fn a_concurrent_alias_change_stops_the_rollout_without_overwriting_it() {
    let aws = Aws::start();
    let (dir, v2) = deployed(&aws, "");
    let mut run = spawn(
        &aws,
        dir.path(),
        &[
            "deploy", "--zip", &v2, "--linear", "10", "--every", "60s", "--poll", "1s", "--output",
            "json",
        ],
    );
    run.until(step(10.0));
    // Someone puts the alias back by hand (straight to moto).
    let body = br#"{"FunctionVersion":"1","Description":"by hand","RoutingConfig":{"AdditionalVersionWeights":{}}}"#;
    let (status, _) = http_as(
        aws.moto.port,
        "lambda",
        "PUT",
        "/2015-03-31/functions/hello/aliases/live",
        body,
    );
    assert!((200..300).contains(&status), "HTTP {status}");
    aws.proxy.reset_calls();
    let stopped = run.until(|e| e["event"] == "stopped");
    assert!(
        stopped["reason"].as_str().unwrap().contains("someone else"),
        "{stopped}"
    );
    let (ok, err) = run.finish();
    assert!(!ok);
    assert!(err.contains("stopped"), "{err}");
    let a = alias(&aws);
    assert_eq!(a["Description"], "by hand");
    assert_eq!(a["FunctionVersion"], "1");
    let writes = aws.proxy.writes();
    assert!(
        writes.is_empty(),
        "nothing written after the change: {writes:?}"
    );
}

#[test]
fn promote_and_rollback_end_a_recorded_rollout() {
    let aws = Aws::start();
    let (dir, v2) = deployed(&aws, "");
    for (command, version) in [("promote", "2"), ("rollback", "1")] {
        let mut run = spawn(
            &aws,
            dir.path(),
            &[
                "deploy", "--zip", &v2, "--linear", "10", "--every", "60s", "--poll", "1s",
                "--output", "json",
            ],
        );
        run.until(step(10.0));
        run.child.kill().unwrap();
        run.child.wait().unwrap();
        let mut by_hand = spawn(&aws, dir.path(), &[command, "hello", "--output", "json"]);
        let (ok, err) = by_hand.finish();
        assert!(ok, "{command}: {err}");
        let a = alias(&aws);
        assert_eq!(a["FunctionVersion"], version, "{command}: {a}");
        assert!(weights(&a).is_empty(), "{command}: {a}");
        let d = a["Description"].as_str().unwrap();
        assert!(d.contains("by hand"), "{command}: {d}");
        if command == "promote" {
            // Back to version 1 for the next round.
            let (status, _) = http_as(
                aws.moto.port,
                "lambda",
                "PUT",
                "/2015-03-31/functions/hello/aliases/live",
                br#"{"FunctionVersion":"1","Description":""}"#,
            );
            assert!((200..300).contains(&status), "HTTP {status}");
        }
    }
}

#[test]
fn ctrl_c_without_a_terminal_rolls_back_the_documented_default() {
    let aws = Aws::start();
    let (dir, v2) = deployed(&aws, "");
    let mut run = spawn(
        &aws,
        dir.path(),
        &[
            "deploy", "--zip", &v2, "--linear", "10", "--every", "60s", "--poll", "1s", "--output",
            "json",
        ],
    );
    run.until(step(10.0));
    // The child is ours and not yet waited for: its pid cannot be reused.
    let pid = run.child.id() as libc::pid_t;
    // SAFETY: kill(2) with a pid we own and a valid signal number.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let rollback = run.until(|e| e["event"] == "rollback");
    assert!(
        rollback["reason"].as_str().unwrap().contains("interrupted"),
        "{rollback}"
    );
    let (ok, _) = run.finish();
    assert!(!ok);
    let a = alias(&aws);
    assert_eq!(a["FunctionVersion"], "1");
    assert!(weights(&a).is_empty(), "{a}");
}

#[test]
fn sigterm_rolls_back_and_the_reason_names_sigterm() {
    let aws = Aws::start();
    let (dir, v2) = deployed(&aws, "");
    let mut run = spawn(
        &aws,
        dir.path(),
        &[
            "deploy", "--zip", &v2, "--linear", "10", "--every", "60s", "--poll", "1s", "--output",
            "json",
        ],
    );
    run.until(step(10.0));
    let pid = run.child.id() as libc::pid_t;
    // SAFETY: kill(2) with a pid we own (not yet waited for) and a valid signal.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let rollback = run.until(|e| e["event"] == "rollback");
    assert_eq!(rollback["reason"], "interrupted by SIGTERM", "{rollback}");
    let (ok, _) = run.finish();
    assert!(!ok);
    assert_eq!(alias(&aws)["FunctionVersion"], "1");
    assert!(weights(&alias(&aws)).is_empty());
}

/// Issue 25 item 4: with DescribeAlarms answering 503 (a real HTTP answer
/// from the proxy on 127.0.0.1), the SDK retries, then the rollout rolls
/// back instead of exiting with the alias split and the record `running`.
#[test]
fn describe_alarms_answering_503_mid_shift_rolls_back_and_says_why() {
    let aws = Aws::start();
    let (dir, v2) = deployed(&aws, "deployment = { alarms = [\"hello-errors\"] }");
    put_alarm(&aws, "hello-errors");
    set_alarm(&aws, "hello-errors", "OK");
    let mut run = spawn(
        &aws,
        dir.path(),
        &[
            "deploy", "--zip", &v2, "--linear", "20", "--every", "60s", "--poll", "1s", "--output",
            "json",
        ],
    );
    run.until(step(20.0));
    assert_eq!(weights(&alias(&aws)), vec![("2".to_string(), 0.2)]);
    let describes = |aws: &Aws| {
        aws.proxy
            .calls()
            .iter()
            .filter(|c| *c == "cloudwatch:DescribeAlarms")
            .count()
    };
    let before = describes(&aws);
    aws.proxy.inject(
        "=cloudwatch:DescribeAlarms",
        FaultAction::Error(503, "ServiceUnavailable"),
        1000,
    );
    // The outage begins at the first DescribeAlarms that meets it (the
    // next poll, 1 s away at most).
    let injected = Instant::now();
    while describes(&aws) == before {
        assert!(
            injected.elapsed() < std::time::Duration::from_secs(30),
            "no DescribeAlarms after the fault: {:?}",
            aws.proxy.calls()
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let outage = Instant::now();
    let rollback = run.until(|e| e["event"] == "rollback");
    // The rollback event comes after every alias write.
    let took = outage.elapsed();
    let a = alias(&aws);
    assert_eq!(a["FunctionVersion"], "1");
    assert!(weights(&a).is_empty(), "{a}");
    let desc = a["Description"].as_str().unwrap();
    assert!(desc.contains("rolled back"), "{desc}");
    let reason = rollback["reason"].as_str().unwrap();
    assert!(
        reason.contains("cloudwatch:DescribeAlarms") && reason.contains("cannot be read"),
        "{reason}"
    );
    let (ok, err) = run.finish();
    assert!(!ok, "a rolled back deploy fails");
    assert!(err.contains("rolled back"), "{err}");
    assert!(!err.contains("converges"), "{err}");
    // One poll's read, tried 6 times by the SDK (the standard retry
    // strategy of src/aws/sdk.rs), then no more CloudWatch calls.
    let failed = describes(&aws) - before;
    assert_eq!(failed, 6, "{:?}", aws.proxy.calls());
    eprintln!(
        "CloudWatch outage -> alias back on the old version: {took:?} ({failed} attempts)\n{err}"
    );
    assert!(took < std::time::Duration::from_secs(15), "{took:?}");
}

/// A crate with two functions, `front` and `back`, whose zips are put
/// where `cargo fn package` leaves them (deployed with `--no-build`).
fn two_functions(dir: &Path, content: &str) {
    std::fs::create_dir_all(dir.join("src/bin")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        "[package]\nname = \"shop\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n\n\
         [package.metadata.fn.functions.back]\ndeployment = { alarms = [\"back-errors\"] }\n",
    )
    .unwrap();
    for f in ["front", "back"] {
        std::fs::write(dir.join(format!("src/bin/{f}.rs")), "fn main() {}\n").unwrap();
        let out = dir.join("target/lambda").join(f);
        std::fs::create_dir_all(&out).unwrap();
        let z = zip(dir, "tmp.zip", &format!("{f} {content}"));
        std::fs::rename(z, out.join("bootstrap.zip")).unwrap();
    }
}

fn alias_of(aws: &Aws, function: &str) -> Value {
    aws.get_json(&format!("/2015-03-31/functions/{function}/aliases/live"))
}

#[test]
fn one_unhealthy_function_rolls_the_whole_release_back() {
    let aws = Aws::start();
    let dir = tempdir();
    two_functions(dir.path(), "one");
    let (ok, err) = spawn(
        &aws,
        dir.path(),
        &["deploy", "--no-build", "--output", "json"],
    )
    .finish();
    assert!(ok, "{err}");
    put_alarm(&aws, "back-errors");
    set_alarm(&aws, "back-errors", "OK");
    two_functions(dir.path(), "two");
    let mut run = spawn(
        &aws,
        dir.path(),
        &[
            "deploy",
            "--no-build",
            "--linear",
            "25",
            "--every",
            "60s",
            "--poll",
            "1s",
            "--output",
            "json",
        ],
    );
    let start = run.until(|e| e["event"] == "start");
    assert_eq!(start["functions"].as_array().unwrap().len(), 2, "{start}");
    run.until(step(25.0));
    for f in ["front", "back"] {
        assert_eq!(
            weights(&alias_of(&aws, f)),
            vec![("2".to_string(), 0.25)],
            "{f}"
        );
    }
    // Only back's alarm fires; front goes back too.
    set_alarm(&aws, "back-errors", "ALARM");
    let rollback = run.until(|e| e["event"] == "rollback");
    assert!(
        rollback["reason"].as_str().unwrap().contains("back-errors"),
        "{rollback}"
    );
    let (ok, _) = run.finish();
    assert!(!ok);
    for f in ["front", "back"] {
        let a = alias_of(&aws, f);
        assert_eq!(a["FunctionVersion"], "1", "{f}: {a}");
        assert!(weights(&a).is_empty(), "{f}: {a}");
    }
}

#[test]
fn bad_strategy_flags_are_usage_errors_before_any_aws_call() {
    let dir = tempdir();
    project(dir.path(), "hello", "");
    let v1 = zip(dir.path(), "v1.zip", "one");
    let v1 = v1.to_str().unwrap();
    for (args, text) in [
        (vec!["--strategy", "Fast"], "Canary10Percent5Minutes"),
        (vec!["--linear", "0", "--every", "1m"], "more than 0"),
        (
            vec!["--canary", "10", "--bake", "5 minutes"],
            "not a duration",
        ),
        (
            vec!["--linear", "10", "--every", "1m", "--poll", "0s"],
            "1 second to 1 hour",
        ),
        // Issue 25 item 5: the flag whose value is wrong is named.
        (
            vec!["--linear", "10", "--every", "0s"],
            "--every `0s`: a bake time or interval is 1 second to 24 hours",
        ),
        (
            vec!["--canary", "10", "--bake", "25h"],
            "--bake `25h`: a bake time or interval is 1 second to 24 hours",
        ),
        (
            vec!["--canary", "100", "--bake", "5m"],
            "--canary `100`: a canary percentage",
        ),
        (
            vec!["--linear", "150", "--every", "5m"],
            "--linear `150`: a linear increment",
        ),
    ] {
        let out = cargo_fn()
            .current_dir(dir.path())
            .args(["deploy", "--zip", v1])
            .args(&args)
            // Nowhere to go: an AWS call would fail differently.
            .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
            .env("AWS_REGION", "us-east-1")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(text), "{args:?}: {err}");
    }
}
