//! Lambda Managed Instances (#28), checked from outside: the configuration
//! refused before any work with the file, key and range; environments that
//! serve several invocations at once, through the Runtime API spoken by
//! hand (answers matched by id, a timeout that fails one invocation only, a
//! second environment only when every slot is busy) and with the official
//! `lambda_runtime::run_concurrent` under `cargo fn watch` (the `managed`
//! template: one process, one Init Duration, a data race that shows); and
//! `tune`'s refusal.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::emulator::{
    Logs, http, invoke, lambda_client, manual_runtime, runtime_api_addr, start,
};
use crate::support::watch::{Watch, watch_options};
use crate::support::{cargo_fn, tempdir};

fn header(h: &hyper::HeaderMap, name: &str) -> String {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// One event handed out on `/next`: its request id, trace id and payload.
struct Handed {
    id: String,
    trace: String,
    payload: Value,
}

async fn next(api: &str) -> Handed {
    let (status, h, body) = http(
        "GET",
        &format!("http://{api}/2018-06-01/runtime/invocation/next"),
        &[],
        vec![],
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    Handed {
        id: header(&h, "lambda-runtime-aws-request-id"),
        trace: header(&h, "lambda-runtime-trace-id"),
        payload: serde_json::from_slice(&body).unwrap(),
    }
}

async fn answer(api: &str, id: &str, body: Value) -> u16 {
    http(
        "POST",
        &format!("http://{api}/2018-06-01/runtime/invocation/{id}/response"),
        &[],
        body.to_string().into_bytes(),
    )
    .await
    .0
}

/// The environment (`#N`) each request's START line names.
fn environment_of(logs: &Logs, request_id: &str) -> String {
    let line = logs
        .lines()
        .into_iter()
        .find(|l| l.contains(&format!("START RequestId: {request_id}")))
        .unwrap_or_else(|| panic!("no START for {request_id}:\n{:#?}", logs.lines()));
    line.split_whitespace().next().unwrap().to_string()
}

/// The dashboard's in-flight counts of `function`: (environment, in flight).
async fn in_flight(endpoint: &str, function: &str) -> (Option<u64>, Vec<(u64, u64)>) {
    let (status, _, body) = http(
        "GET",
        &format!("{endpoint}/_cargo-fn/api/environments"),
        &[],
        vec![],
    )
    .await;
    assert_eq!(status, 200);
    let all: Value = serde_json::from_slice(&body).unwrap();
    let f = all
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["function"] == function)
        .unwrap_or_else(|| panic!("{function} in {all}"))
        .clone();
    let loads = f["in_flight"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|l| {
                    (
                        l["environment"].as_u64().unwrap(),
                        l["in_flight"].as_u64().unwrap(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    (f["max_concurrency"].as_u64(), loads)
}

/// Polls until the dashboard shows `want` invocations in flight in total.
async fn until_in_flight(endpoint: &str, function: &str, want: u64) -> Vec<(u64, u64)> {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, loads) = in_flight(endpoint, function).await;
        if loads.iter().map(|(_, n)| n).sum::<u64>() == want {
            return loads;
        }
        assert!(Instant::now() < until, "never {want} in flight: {loads:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The relay of a new environment: the address differs from `old`.
async fn new_runtime_api(dir: &Path, old: &str) -> String {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let now = runtime_api_addr(dir).await;
        if now != old {
            return now;
        }
        assert!(Instant::now() < until, "no second environment started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Two `/next` polls open at once each get their own invocation with its
/// own trace header; answers given out of order reach the right callers;
/// a repeated or unknown id is refused. With both slots busy, a third
/// caller gets a second environment; one Init Duration per environment.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_environment_serves_its_slots_and_matches_answers_by_request_id() {
    let tmp = tempdir();
    let mut spec = manual_runtime(tmp.path());
    spec.max_concurrency = Some(2);
    let (emu, client, logs) = start(vec![spec]).await;
    let endpoint = emu.endpoint();
    let call = |n: &str| {
        let client = client.clone();
        let payload = json!({ "n": n });
        tokio::spawn(async move { invoke(&client, "manual", payload).await })
    };

    let a = call("a");
    let api = runtime_api_addr(tmp.path()).await;
    let poll = |api: &str| {
        let api = api.to_string();
        tokio::spawn(async move { next(&api).await })
    };
    let (p1, p2) = (poll(&api), poll(&api));
    let b = call("b");
    let (h1, h2) = (p1.await.unwrap(), p2.await.unwrap());
    assert_ne!(h1.id, h2.id);
    assert!(h1.trace.starts_with("Root=") && h2.trace.starts_with("Root="));
    assert_ne!(h1.trace, h2.trace, "a trace header per request");
    let (max, loads) = in_flight(&endpoint, "manual").await;
    assert_eq!(max, Some(2));
    assert_eq!(loads.len(), 1, "{loads:?}");
    assert_eq!(loads[0].1, 2, "{loads:?}");

    // The later one answered first: each caller gets its own answer.
    for h in [&h2, &h1] {
        let echo = json!({ "answer": h.payload["n"] });
        assert_eq!(answer(&api, &h.id, echo).await, 202);
    }
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    assert_eq!(a.body, json!({ "answer": "a" }));
    assert_eq!(b.body, json!({ "answer": "b" }));
    assert_eq!(answer(&api, &h1.id, json!("again")).await, 403);
    assert_eq!(answer(&api, "not-a-request", json!("?")).await, 400);
    let env1 = environment_of(&logs, &h1.id);
    assert_eq!(env1, environment_of(&logs, &h2.id), "one environment");

    // Both slots taken, the third caller starts a second environment.
    let (p3, p4) = (poll(&api), poll(&api));
    let (c, d) = (call("c"), call("d"));
    until_in_flight(&endpoint, "manual", 2).await;
    let e = call("e");
    let api2 = new_runtime_api(tmp.path(), &api).await;
    let he = next(&api2).await;
    let loads = until_in_flight(&endpoint, "manual", 3).await;
    let mut counts: Vec<u64> = loads.iter().map(|(_, n)| *n).collect();
    counts.sort();
    assert_eq!(counts, [1, 2], "{loads:?}");
    let (h3, h4) = (p3.await.unwrap(), p4.await.unwrap());
    assert_eq!(environment_of(&logs, &h3.id), env1);
    assert_eq!(environment_of(&logs, &h4.id), env1);
    let env2 = environment_of(&logs, &he.id);
    assert_ne!(env2, env1);
    for (at, h) in [(&api, &h3), (&api, &h4), (&api2, &he)] {
        let echo = json!({ "answer": h.payload["n"] });
        assert_eq!(answer(at, &h.id, echo).await, 202);
    }
    for (task, n) in [(c, "c"), (d, "d"), (e, "e")] {
        assert_eq!(task.await.unwrap().body, json!({ "answer": n }));
    }
    // A REPORT per invocation, the Init Duration once per environment.
    assert_eq!(logs.count_when("REPORT RequestId", 5).await, 5);
    let inits: Vec<String> = logs
        .lines()
        .into_iter()
        .filter(|l| l.contains("REPORT RequestId") && l.contains("Init Duration"))
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect();
    let mut expected = vec![env1, env2];
    expected.sort();
    let mut inits_sorted = inits.clone();
    inits_sorted.sort();
    assert_eq!(inits_sorted, expected, "{inits:?}");
    emu.shutdown().await;
}

/// A timeout fails its own invocation (`Sandbox.Timedout`) while the
/// environment keeps serving: the next invocation runs in the same one,
/// without a new init.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_timeout_fails_one_invocation_and_the_environment_keeps_serving() {
    let tmp = tempdir();
    let mut spec = manual_runtime(tmp.path());
    spec.max_concurrency = Some(2);
    spec.timeout = Duration::from_secs(1);
    let (emu, client, logs) = start(vec![spec]).await;
    let call = |n: &str| {
        let client = client.clone();
        let payload = json!({ "n": n });
        tokio::spawn(async move { invoke(&client, "manual", payload).await })
    };
    let slow = call("slow");
    let api = runtime_api_addr(tmp.path()).await;
    let hs = next(&api).await;
    let quick = call("quick");
    let hq = next(&api).await;
    assert_eq!(answer(&api, &hq.id, json!("quick done")).await, 202);
    assert_eq!(quick.await.unwrap().body, json!("quick done"));
    let slow = slow.await.unwrap();
    assert_eq!(slow.function_error.as_deref(), Some("Unhandled"));
    assert_eq!(slow.body["errorType"], "Sandbox.Timedout", "{}", slow.body);

    let again = call("again");
    let ha = next(&api).await;
    assert_eq!(answer(&api, &ha.id, json!("still here")).await, 202);
    assert_eq!(again.await.unwrap().body, json!("still here"));
    let env = environment_of(&logs, &hs.id);
    assert_eq!(environment_of(&logs, &ha.id), env);
    assert_eq!(logs.count_when("REPORT RequestId", 3).await, 3);
    let inits = logs
        .lines()
        .iter()
        .filter(|l| l.contains("Init Duration"))
        .count();
    assert_eq!(inits, 1, "{:#?}", logs.lines());
    emu.shutdown().await;
}

/// The probe: what the official runtime's `run_concurrent` sees.
const PROBE: &str = r#"//! Reports the process, the concurrency it was given and each request's trace id.
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run_concurrent(service_fn(|event: LambdaEvent<Value>| async move {
        let wait = event.payload["wait_ms"].as_u64().unwrap_or(0);
        tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
        // The environment the process was started with (not what the
        // runtime library may set later).
        let environ = std::fs::read("/proc/self/environ").unwrap_or_default();
        let traced = environ.split(|b| *b == 0).any(|v| v.starts_with(b"_X_AMZN_TRACE_ID="));
        Ok::<Value, Error>(json!({
            "pid": std::process::id(),
            "max_concurrency": std::env::var("AWS_LAMBDA_MAX_CONCURRENCY").ok(),
            "trace_in_environment": traced,
            "trace": event.context.xray_trace_id,
        }))
    }))
    .await
}
"#;

/// A handler that keeps scratch data in one temp file per process, without
/// a lock: right one request at a time, wrong when two overlap.
const RACY: &str = r#"//! Writes the request's name to a scratch file, waits, reads it back.
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run_concurrent(service_fn(|event: LambdaEvent<Value>| async move {
        let name = event.payload["name"].as_str().unwrap_or_default().to_string();
        let scratch = std::env::temp_dir().join(format!("racy-{}", std::process::id()));
        std::fs::write(&scratch, &name)?;
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        let read_back = std::fs::read_to_string(&scratch)?;
        Ok::<Value, Error>(json!({ "name": name, "read_back": read_back }))
    }))
    .await
}
"#;

/// The `managed` template under `cargo fn watch`, with two more binaries
/// on the official runtime: N concurrent calls answered by one process
/// (one pid, one Init Duration, `AWS_LAMBDA_MAX_CONCURRENCY` = N, a trace
/// id per request and none in the process environment), the N+1th call at
/// once in a second environment; a handler with a data race right in
/// sequence and wrong under concurrency; the template's own handler
/// overlapping requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn run_concurrent_under_watch_serves_n_calls_per_process_and_shows_a_race() {
    let tmp = tempdir();
    cargo_fn()
        .current_dir(tmp.path())
        .args(["new", "mi-demo", "--template", "managed", "--yes"])
        .assert()
        .success();
    let dir = tmp.path().join("mi-demo");
    std::fs::create_dir_all(dir.join("src/bin")).unwrap();
    std::fs::write(dir.join("src/bin/probe.rs"), PROBE).unwrap();
    std::fs::write(dir.join("src/bin/racy.rs"), RACY).unwrap();
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    assert!(manifest.contains("per-execution-environment-max-concurrency = 4"));
    const N: usize = 4;

    let logs = Logs::default();
    let watch = Watch::start(watch_options(&dir, &logs)).await;
    let client = lambda_client(&watch.endpoint);
    let concurrently = |function: &'static str, payloads: Vec<Value>| {
        let client = client.clone();
        async move {
            let tasks: Vec<_> = payloads
                .into_iter()
                .map(|p| {
                    let client = client.clone();
                    tokio::spawn(async move { invoke(&client, function, p).await })
                })
                .collect();
            let mut out = Vec::new();
            for t in tasks {
                let r = t.await.unwrap();
                assert_eq!(r.function_error, None, "{}", r.body);
                out.push(r.body);
            }
            out
        }
    };

    // N at once: one process.
    let answers = concurrently("probe", vec![json!({ "wait_ms": 1500 }); N]).await;
    let pids: BTreeSet<u64> = answers.iter().map(|a| a["pid"].as_u64().unwrap()).collect();
    assert_eq!(pids.len(), 1, "{answers:?}");
    let traces: BTreeSet<String> = answers
        .iter()
        .map(|a| a["trace"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(traces.len(), N, "a trace id per request: {answers:?}");
    for a in &answers {
        assert_eq!(a["max_concurrency"], json!(N.to_string()), "{a}");
        assert_eq!(a["trace_in_environment"], json!(false), "{a}");
    }
    let inits = |logs: &Logs| {
        logs.lines()
            .iter()
            .filter(|l| l.starts_with("probe#") && l.contains("Init Duration"))
            .count()
    };
    assert!(logs.count_when("Init Duration", 1).await > 0);
    assert_eq!(inits(&logs), 1, "{:#?}", logs.lines());

    // N+1 at once: the first environment's slots, and a second one.
    let answers = concurrently("probe", vec![json!({ "wait_ms": 1500 }); N + 1]).await;
    let pids_now: BTreeSet<u64> = answers.iter().map(|a| a["pid"].as_u64().unwrap()).collect();
    assert_eq!(pids_now.len(), 2, "{answers:?}");
    assert!(
        pids_now.is_superset(&pids),
        "the first process still serves"
    );
    let until = Instant::now() + Duration::from_secs(10);
    while inits(&logs) < 2 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(inits(&logs), 2, "{:#?}", logs.lines());

    // The race: right one at a time, wrong when two overlap in one process.
    for name in ["one", "two", "three"] {
        let r = concurrently("racy", vec![json!({ "name": name })]).await;
        assert_eq!(r[0]["read_back"], json!(name), "{r:?}");
    }
    let r = concurrently(
        "racy",
        vec![json!({ "name": "left" }), json!({ "name": "right" })],
    )
    .await;
    let wrong = r.iter().filter(|a| a["read_back"] != a["name"]).count();
    assert!(
        wrong >= 1,
        "concurrent requests see each other's scratch file: {r:?}"
    );

    // The template's own handler: overlapping requests, counted once each.
    let r = concurrently("mi-demo", vec![json!({ "name": "a", "wait_ms": 800 }); 3]).await;
    let overlapped = r
        .iter()
        .map(|a| a["in_flight"].as_u64().unwrap())
        .max()
        .unwrap();
    assert!(overlapped >= 1, "{r:?}");
    let mut served: Vec<u64> = r.iter().map(|a| a["served"].as_u64().unwrap()).collect();
    served.sort();
    assert_eq!(served, [1, 2, 3], "{r:?}");
    watch.stop().await.unwrap();
}

/// A managed-instances value out of range fails `cargo fn config` naming
/// the file, the key and the range; `tune` refuses such a function, with
/// the reason, before building anything.
#[test]
fn config_errors_name_the_key_and_tune_refuses_before_any_work() {
    let tmp = tempdir();
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(dir.join("src/main.rs"), "fn main() {}\n").unwrap();
    let write = |table: &str| {
        std::fs::write(
            dir.join("Cargo.toml"),
            format!(
                "[package]\nname = \"mi\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[package.metadata.fn]\nmemory = 4096\n\n[package.metadata.fn.managed-instances]\ncapacity-provider = \"arn:aws:lambda:us-east-1:123456789012:capacity-provider:cp\"\n{table}"
            ),
        )
        .unwrap();
    };
    write("per-execution-environment-max-concurrency = 2000\n");
    let out = cargo_fn()
        .current_dir(dir)
        .args(["config"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("Cargo.toml"), "{err}");
    assert!(
        err.contains("managed-instances.per-execution-environment-max-concurrency"),
        "{err}"
    );
    assert!(err.contains("1-1600"), "{err}");

    write("execution-environment-memory-gib-per-vcpu = 8\n");
    let out = cargo_fn()
        .current_dir(dir)
        .args(["config"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "4096 MB is half a vCPU at 8 GiB: {err}"
    );
    assert!(err.contains("multiple of 8192 MB"), "{err}");

    write("per-execution-environment-max-concurrency = 8\n");
    let out = cargo_fn()
        .current_dir(dir)
        .args(["config"])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        shown.contains("max concurrency 8 per environment"),
        "{shown}"
    );
    assert!(shown.contains("(2 vCPU)"), "{shown}");

    let out = cargo_fn()
        .current_dir(dir)
        .args(["tune", "--local"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("tune does not apply"), "{err}");
    assert!(err.contains("EC2 instances"), "{err}");
    assert!(!dir.join("target").exists(), "nothing was built");
}
