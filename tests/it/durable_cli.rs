//! `cargo fn durable list|history|stop|callback` against the local durable
//! execution service of `cargo fn watch` (the CLI, with the durable
//! fixture's `flow` function on the official SDK), the
//! dashboard's durable section in headless Chromium on the same run, and
//! `cargo fn deploy` of a durable function against moto with the
//! `DurableConfig` cargo-fn sent read from the proxy's recorded bodies.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::browser::{Browser, Page};
use crate::support::deploy::{cargo_fn_in, deploy, ok, project, zip};
use crate::support::doubles::{Double, Kind};
use crate::support::fixtures;
use crate::support::moto::{FaultAction, Patch};
use crate::support::tempdir;
use crate::support::watch::CliWatch;

/// `cargo fn ARGS --port PORT` in `dir`; stdout as JSON (`--output json`).
fn durable_json(dir: &Path, port: u16, args: &[&str]) -> Value {
    let out = fixtures::cargo_fn_in(dir)
        .args(args)
        .args(["--port", &port.to_string(), "--output", "json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    serde_json::from_slice(&out).unwrap_or_else(|e| {
        panic!(
            "{args:?}: not JSON ({e}): {}",
            String::from_utf8_lossy(&out)
        )
    })
}

/// Polls `probe` until it returns `Some` (the service works on its own
/// schedule); panics naming `what` after ten minutes.
fn eventually<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "never happened: {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The one execution of `list` whose ARN is not in `known`.
fn new_execution(dir: &Path, port: u16, function: &str, known: &[String]) -> String {
    eventually("an execution is listed", || {
        let list = durable_json(dir, port, &["durable", "list", function]);
        list.as_array()?
            .iter()
            .filter_map(|e| e["arn"].as_str())
            .find(|a| !known.iter().any(|k| k == a))
            .map(str::to_string)
    })
}

/// The callback id the execution waits on, once the history shows it.
fn callback_id(dir: &Path, port: u16, arn: &str) -> String {
    eventually("the callback is started", || {
        let h = durable_json(dir, port, &["durable", "history", arn]);
        h["events"]
            .as_array()?
            .iter()
            .find(|e| e["event_type"] == "CallbackStarted")
            .and_then(|e| e["callback_id"].as_str())
            .map(str::to_string)
    })
}

fn status(dir: &Path, port: u16, arn: &str) -> String {
    durable_json(dir, port, &["durable", "history", arn])["execution"]["status"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn commands_list_history_complete_a_callback_and_stop_an_execution_under_watch() {
    // The durable fixture's `flow`: in mode "callback" it waits for the
    // callback `approval` and returns its result.
    let (_tmp, dir) = fixtures::fixture("durable", "durable-flows-cli");
    let watch = CliWatch::start_until(&dir, &[], "Watching");
    let port = watch.port;
    let start = |tag: &str| {
        fixtures::cargo_fn_in(&dir)
            .args(["invoke", "flow", "--async", "--port", &port.to_string()])
            .args([
                "--data",
                &json!({"mode": "callback", "tag": tag}).to_string(),
            ])
            .assert()
            .success();
    };

    // Start one execution (asynchronously: it waits for its callback).
    start("a");
    let arn = new_execution(&dir, port, "flow", &[]);
    assert!(arn.starts_with("arn:aws:lambda:"), "{arn}");
    let id = callback_id(&dir, port, &arn);
    assert_eq!(status(&dir, port, &arn), "RUNNING");

    // The human list prints the ARN and the status.
    let human = fixtures::cargo_fn_in(&dir)
        .args(["durable", "list", "flow", "--port", &port.to_string()])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let human = String::from_utf8(human).unwrap();
    assert!(human.contains(&arn) && human.contains("RUNNING"), "{human}");

    // Complete the callback: the execution replays and succeeds.
    let sent = durable_json(
        &dir,
        port,
        &[
            "durable",
            "callback",
            "succeed",
            &id,
            "--result",
            r#""approved""#,
        ],
    );
    assert_eq!(sent["sent"], "success");
    eventually("the execution succeeds", || {
        (status(&dir, port, &arn) == "SUCCEEDED").then_some(())
    });
    let h = durable_json(&dir, port, &["durable", "history", &arn]);
    let result: Value = serde_json::from_str(h["execution"]["result"].as_str().unwrap()).unwrap();
    assert_eq!(result, json!({"approval": "approved"}));
    let names: Vec<&str> = h["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert!(names.contains(&"approval"), "{names:?}");
    let text = String::from_utf8(
        fixtures::cargo_fn_in(&dir)
            .args(["durable", "history", &arn, "--port", &port.to_string()])
            .assert()
            .success()
            .get_output()
            .stdout
            .clone(),
    )
    .unwrap();
    assert!(text.starts_with(&arn), "{text}");
    for line in [
        "execution",
        "callback approval",
        "ended (first run)",
        "ended (replay 1)",
    ] {
        assert!(text.contains(line), "{line:?} missing:\n{text}");
    }
    assert!(text.contains(&format!("callback id {id}")), "{text}");
    let succeeded = durable_json(
        &dir,
        port,
        &["durable", "list", "flow", "--status", "succeeded"],
    );
    assert_eq!(succeeded.as_array().unwrap().len(), 1, "{succeeded}");

    // A second execution, stopped while it waits.
    start("b");
    let second = new_execution(&dir, port, "flow", std::slice::from_ref(&arn));
    callback_id(&dir, port, &second);
    let stopped = durable_json(&dir, port, &["durable", "stop", &second]);
    assert_eq!(stopped["arn"], second.as_str());
    eventually("the execution is stopped", || {
        (status(&dir, port, &second) == "STOPPED").then_some(())
    });

    // Bad input is refused before any call.
    fixtures::cargo_fn_in(&dir)
        .args(["durable", "list", "flow", "--status", "done"])
        .args(["--port", &port.to_string()])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("--status `done`"));
    fixtures::cargo_fn_in(&dir)
        .args(["durable", "callback", "heartbeat", &id, "--result", "1"])
        .args(["--port", &port.to_string()])
        .assert()
        .code(2);

    // The dashboard draws the executions, and the first one's timeline.
    dashboard_shows_the_timeline(port, &arn);
    watch.stop();
}

fn dashboard_shows_the_timeline(port: u16, arn: &str) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let url = format!("http://127.0.0.1:{port}/_cargo-fn/");
        let browser = Browser::open(&url);
        let mut page = Page::attach(&browser, "/_cargo-fn/").await;
        let row = format!(
            "document.querySelector('#durable tr.durable-exec[data-arn=\"{arn}\"]')"
        );
        page.wait_for(
            "the durable section lists the execution",
            &format!("document.querySelector('#durable')?.hidden === false && {row}?.dataset.status === 'SUCCEEDED'"),
        )
        .await;
        page.eval(&format!("{row}.click()")).await;
        let lanes = page
            .wait_for(
                "the timeline's lanes",
                "(() => { const t = document.querySelector('#durable .durable-timeline'); if (!t) return null; return [...t.querySelectorAll('.lane .label')].map((l) => l.textContent.trim()); })()",
            )
            .await;
        let lanes: Vec<&str> = lanes
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap())
            .collect();
        for lane in ["callback approval", "invocations"] {
            assert!(lanes.contains(&lane), "{lane} missing from {lanes:?}");
        }
        let replays = page
            .eval("[...document.querySelectorAll('#durable .bar.invocation')].map((b) => b.textContent)")
            .await;
        assert!(
            replays.to_string().contains("replay 1"),
            "the invocations lane shows the replay: {replays}"
        );
        screenshot(&mut page, "durable-dashboard.png").await;
    });
}

/// Saves the durable section's screenshot under target/ (to look at).
async fn screenshot(page: &mut Page, name: &str) {
    let rect = page
        .eval("(() => { const r = document.querySelector('#durable').getBoundingClientRect(); return [r.x, r.y + window.scrollY, r.width, r.height]; })()")
        .await;
    let n = |i: usize| rect[i].as_f64().unwrap();
    let clip = json!({"x": n(0), "y": n(1), "width": n(2), "height": n(3), "scale": 1});
    let shot = page
        .call(
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true, "clip": clip}),
        )
        .await;
    use base64::Engine;
    let png = base64::engine::general_purpose::STANDARD
        .decode(shot["data"].as_str().unwrap())
        .unwrap();
    assert!(png.starts_with(b"\x89PNG"));
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, &png).unwrap();
    eprintln!("durable dashboard: screenshot at {}", path.display());
}

/// `DurableConfig` as the API shapes it.
fn durable_config(timeout: u64, days: u64) -> Value {
    json!({ "ExecutionTimeout": timeout, "RetentionPeriodInDays": days })
}

#[test]
fn deploy_sends_durable_config_on_create_and_by_diff_and_grants_the_checkpoint_actions_moto() {
    let aws = Double::start(Kind::Moto);
    let dir = tempdir();
    let name = aws.name("orders");
    project(
        dir.path(),
        &name,
        "durable = { execution-timeout = \"15m\", retention-days = 7 }",
    );
    let v1 = zip(dir.path(), "v1.zip", "one");

    // The plan shows it; CreateFunction carries it.
    let plan = ok(deploy(&aws, dir.path(), &v1, &["--dry-run"]));
    assert!(
        plan.to_string().contains("RetentionPeriodInDays"),
        "the dry run shows DurableConfig: {plan}"
    );
    ok(deploy(&aws, dir.path(), &v1, &[]));
    let created = aws.proxy.json_bodies("POST /2015-03-31/functions");
    assert_eq!(created.len(), 1, "{created:?}");
    assert_eq!(created[0]["DurableConfig"], durable_config(900, 7));

    // The role may checkpoint and read this function's executions only.
    let policy = role_policy(&aws, &format!("cargo-fn-{name}"));
    let statement = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Sid"] == "DurableExecution")
        .unwrap_or_else(|| panic!("no durable statement: {policy}"))
        .clone();
    assert_eq!(
        statement["Action"],
        json!([
            "lambda:CheckpointDurableExecution",
            "lambda:GetDurableExecutionState"
        ])
    );
    let resource = statement["Resource"].as_str().unwrap();
    assert!(
        resource.starts_with("arn:aws:lambda:us-east-1:")
            && resource.ends_with(&format!(":function:{name}:*")),
        "{resource}"
    );

    // moto drops DurableConfig: to it the function is an ordinary one,
    // which Lambda cannot make durable, so deploy refuses before any write.
    aws.proxy.reset_calls();
    let refused = deploy(&aws, dir.path(), &v1, &[]);
    assert!(!refused.ok, "{}", refused.stdout);
    assert!(
        refused
            .stderr
            .contains("Lambda enables durable execution only when it creates a function"),
        "{}",
        refused.stderr
    );
    assert!(aws.proxy.writes().is_empty(), "{:?}", aws.proxy.writes());

    // With the DurableConfig AWS keeps put back into moto's answers, a
    // changed retention is one UpdateFunctionConfiguration carrying it.
    let keep = Patch(Arc::new(|v: &mut Value| {
        let config = if v.get("Configuration").is_some() {
            &mut v["Configuration"]
        } else {
            v
        };
        if config.get("FunctionName").is_some() {
            config["DurableConfig"] = durable_config(900, 7);
        }
    }));
    let function_path = format!("/2015-03-31/functions/{name}");
    aws.proxy.inject(
        &format!("GET {function_path}"),
        FaultAction::Patch(keep),
        1000,
    );
    project(
        dir.path(),
        &name,
        "durable = { execution-timeout = \"15m\", retention-days = 30 }",
    );
    aws.proxy.reset_calls();
    let out = ok(deploy(&aws, dir.path(), &v1, &[]));
    assert_eq!(out["functions"][0]["changed"], true, "{out}");
    let updates = aws
        .proxy
        .json_bodies(&format!("PUT {function_path}/configuration"));
    assert_eq!(updates.len(), 1, "{:?}", aws.proxy.calls());
    assert_eq!(updates[0]["DurableConfig"], durable_config(900, 30));

    // The same function without its `durable` table is refused too.
    project(dir.path(), &name, "memory = 128");
    let run = cargo_fn_in(
        &aws,
        dir.path(),
        &["deploy", "--zip", v1.to_str().unwrap(), "--dry-run"],
    );
    assert!(!run.ok);
    assert!(
        run.stderr
            .contains("Lambda cannot turn durable execution off"),
        "{}",
        run.stderr
    );
}

/// The inline policy of `role`, read back from moto with boto3.
fn role_policy(aws: &Double, role: &str) -> Value {
    let script = r#"
import json, sys
import boto3
iam = boto3.client("iam", endpoint_url=sys.argv[1], region_name="us-east-1",
                   aws_access_key_id="test", aws_secret_access_key="test")
doc = iam.get_role_policy(RoleName=sys.argv[2], PolicyName="cargo-fn-execution")["PolicyDocument"]
print(json.dumps(doc))
"#;
    let python = crate::support::tools_dir().join("venv/bin/python");
    let out = std::process::Command::new(&python)
        .args([
            "-c",
            script,
            &format!("http://127.0.0.1:{}", aws.port),
            role,
        ])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (run `cargo xtask setup`)", python.display()));
    assert!(
        out.status.success(),
        "boto3: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
