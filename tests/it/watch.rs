//! `cargo fn watch`: hot reload under load (no invocation fails or is lost,
//! each new build answers after its reload), a broken build keeps the last
//! good one serving, and Ctrl-C leaves no process behind.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cargo_fn::watch::WatchEvent;
use serde_json::{Value, json};

use crate::support::emulator::{Logs, invoke, lambda_client};
use crate::support::watch::{CliWatch, Watch, function_crate, watch_options, write_version};
use crate::support::{process_alive, shared_target_dir, tempdir};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hot_reload_under_load_loses_nothing_and_serves_each_new_build() {
    let dir = tempdir();
    let root: PathBuf = dir.path().to_path_buf();
    function_crate(&root, "hot", 0);
    let logs = Logs::default();
    let mut watch = Watch::start(watch_options(&root, &logs)).await;
    let endpoint = watch.endpoint.clone();
    let client = lambda_client(&endpoint);

    // A client invoking in a loop, each call with a deadline: an answer
    // that never comes counts as a failure.
    let stop = Arc::new(AtomicBool::new(false));
    let latest = Arc::new(AtomicU64::new(u64::MAX));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = Arc::new(Mutex::new(Vec::<u64>::new()));
    let pids = Arc::new(Mutex::new(std::collections::BTreeSet::<u64>::new()));
    let looper = {
        let (stop, latest, failures, seen, pids, client) = (
            stop.clone(),
            latest.clone(),
            failures.clone(),
            seen.clone(),
            pids.clone(),
            client.clone(),
        );
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let call = client
                    .invoke()
                    .function_name("hot")
                    .payload(aws_sdk_lambda::primitives::Blob::new(r#"{"ms": 20}"#))
                    .send();
                match tokio::time::timeout(Duration::from_secs(30), call).await {
                    Ok(Ok(out)) if out.function_error().is_none() => {
                        let body: Value =
                            serde_json::from_slice(out.payload().unwrap().as_ref()).unwrap();
                        let v = body["version"].as_u64().unwrap();
                        latest.store(v, Ordering::SeqCst);
                        seen.lock().unwrap().push(v);
                        pids.lock().unwrap().insert(body["pid"].as_u64().unwrap());
                    }
                    Ok(Ok(out)) => failures.lock().unwrap().push(format!(
                        "function error: {:?}",
                        out.payload()
                            .map(|p| String::from_utf8_lossy(p.as_ref()).into_owned())
                    )),
                    Ok(Err(e)) => failures.lock().unwrap().push(format!("{e:?}")),
                    Err(_) => failures.lock().unwrap().push("no answer in 30 s".into()),
                }
            }
        })
    };

    let reloads = 10;
    for version in 1..=reloads {
        write_version(&root, version);
        loop {
            match watch.next_event().await {
                WatchEvent::Reloaded { .. } => break,
                WatchEvent::Rebuilding { trigger } => {
                    assert!(trigger.starts_with(&root), "{trigger:?}");
                }
                other => panic!("reload {version}: unexpected {other:?}"),
            }
        }
        let until = tokio::time::Instant::now() + Duration::from_secs(30);
        while latest.load(Ordering::SeqCst) != u64::from(version) {
            assert!(
                tokio::time::Instant::now() < until,
                "version {version} never answered after its reload"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    // A broken build keeps the last good one serving.
    std::fs::write(root.join("src/main.rs"), "fn main() { this is not rust }").unwrap();
    loop {
        match watch.next_event().await {
            WatchEvent::BuildFailed => break,
            WatchEvent::Rebuilding { .. } => {}
            other => panic!("expected BuildFailed, got {other:?}"),
        }
    }
    // The dashboard shows the compiler's first error and the generation serving.
    let (_, _, body) = crate::support::emulator::http(
        "GET",
        &format!("{endpoint}/_cargo-fn/api/state"),
        &[],
        vec![],
    )
    .await;
    let state: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let error = state["build"]["error"].as_str().unwrap_or_default();
    assert_eq!(state["build"]["state"], "failed", "{state}");
    assert_eq!(state["build"]["generation"], u64::from(reloads), "{state}");
    assert!(
        error.starts_with("error") && error.contains("src/main.rs:1:"),
        "{error}"
    );
    let out = invoke(&client, "hot", json!({})).await;
    assert_eq!(out.body["version"], u64::from(reloads));

    // Ignored paths do not rebuild.
    std::fs::create_dir_all(root.join("scratch")).unwrap();
    std::fs::write(root.join("scratch/notes.txt"), "x").unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        watch.try_event().is_none(),
        "a .gitignored file triggered a rebuild"
    );

    stop.store(true, Ordering::SeqCst);
    looper.await.unwrap();
    let failures = failures.lock().unwrap().clone();
    assert!(failures.is_empty(), "failed invocations: {failures:#?}");
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.len() > reloads as usize,
        "the client kept invoking: {seen:?}"
    );
    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]),
        "no old code after new code: {seen:?}"
    );

    watch.stop().await.expect("watch ends cleanly");
    for pid in pids.lock().unwrap().iter() {
        assert!(!process_alive(*pid), "function process {pid} survived");
    }
}

#[cfg(unix)]
#[test]
fn ctrl_c_stops_the_cli_and_every_function_process() {
    stop_the_cli_with(libc::SIGINT, "ctrlc");
}

/// SIGTERM (`kill`, IDEs, systemd, container runtimes) stops watch like
/// Ctrl-C: exit 0, extensions get SHUTDOWN, no process or snapshot left;
/// and a run removes the snapshots of runs killed with SIGKILL.
#[cfg(unix)]
#[test]
fn sigterm_stops_the_cli_like_ctrl_c_and_stale_snapshots_are_removed() {
    stop_the_cli_with(libc::SIGTERM, "sigterm");
}

#[cfg(unix)]
fn stop_the_cli_with(signal: i32, name: &str) {
    let dir = tempdir();
    function_crate(dir.path(), name, 7);
    let records = tempdir();
    let extension = crate::support::fixtures::extension("recorder", records.path());
    // Left by a run that died with SIGKILL: unlocked, or without a lock
    // and a process id that is not running. A live run's stays.
    let watch_dir = shared_target_dir().join("lambda/watch");
    std::fs::create_dir_all(&watch_dir).unwrap();
    let stale_locked = watch_dir.join(format!("stale-{name}-0"));
    std::fs::create_dir_all(&stale_locked).unwrap();
    std::fs::write(watch_dir.join(format!("stale-{name}-0.lock")), "").unwrap();
    let stale_pid = watch_dir.join(format!("{}-0", i32::MAX));
    std::fs::create_dir_all(&stale_pid).unwrap();
    let live = watch_dir.join(format!("live-{name}-0"));
    std::fs::create_dir_all(&live).unwrap();
    let live_lock = std::fs::File::create(watch_dir.join(format!("live-{name}-0.lock"))).unwrap();
    // SAFETY: plain syscall on a descriptor we own.
    assert_eq!(
        unsafe {
            libc::flock(
                std::os::fd::AsRawFd::as_raw_fd(&live_lock),
                libc::LOCK_EX | libc::LOCK_NB,
            )
        },
        0
    );

    let ext_dir = extension.parent().unwrap().display().to_string();
    let env = format!("EXT_RECORD_DIR={}", records.path().display());
    let prefix = format!("Serving {name} at ");
    let mut watch = CliWatch::start_until(
        dir.path(),
        &[
            "--color",
            "never",
            "--extensions-dir",
            &ext_dir,
            "--env-var",
            &env,
        ],
        &prefix,
    );
    let serving = watch.seen.last().unwrap();
    let endpoint = serving.trim_start()[prefix.len()..]
        .split("/2015-03-31")
        .next()
        .unwrap()
        .to_string();
    assert!(!stale_locked.exists(), "an unlocked snapshot dir is stale");
    assert!(
        !stale_pid.exists(),
        "a dead process's snapshot dir is stale"
    );
    assert!(live.exists(), "a live run's snapshot dir stays");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let out = rt.block_on(async { invoke(&lambda_client(&endpoint), name, json!({})).await });
    assert_eq!(out.body["version"], 7);
    let pid = out.body["pid"].as_u64().unwrap();
    assert!(process_alive(pid));
    let mine: Vec<PathBuf> = std::fs::read_dir(&watch_dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&format!("{}-", watch.child.id()))
        })
        .collect();
    assert!(
        !mine.is_empty(),
        "this run's snapshots in {}",
        watch_dir.display()
    );

    // SAFETY: signalling our own child, not yet reaped.
    unsafe {
        libc::kill(watch.child.id() as i32, signal);
    }
    let status = watch.child.wait().unwrap();
    let output: Vec<String> = watch.lines.iter().collect();
    assert!(status.success(), "watch exit {status}: {output:#?}");
    assert!(
        !process_alive(pid),
        "function process {pid} survived the signal"
    );
    let addr = endpoint.trim_start_matches("http://");
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "nothing listens after the signal"
    );
    let recorded = std::fs::read_to_string(records.path().join("recorder.jsonl")).unwrap();
    assert!(
        recorded.contains(r#""shutdownReason":"spindown""#),
        "the extension got SHUTDOWN: {recorded}"
    );
    for p in mine {
        assert!(!p.exists(), "{} left behind", p.display());
    }
    drop(live_lock);
    let _ = std::fs::remove_dir_all(&live);
    let _ = std::fs::remove_file(watch_dir.join(format!("live-{name}-0.lock")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn env_file_and_configuration_changes_apply_without_restarting() {
    let dir = tempdir();
    let root = dir.path().to_path_buf();
    function_crate(&root, "envy", 0);
    // A function that reports what it sees, with an env file the
    // .gitignore hides (as most .env files are).
    std::fs::write(
        root.join("src/main.rs"),
        r#"use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|_e: LambdaEvent<Value>| async move {
        Ok::<Value, Error>(json!({
            "greeting": std::env::var("GREETING").ok(),
            "memory": std::env::var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE").ok(),
        }))
    }))
    .await
}
"#,
    )
    .unwrap();
    let manifest = std::fs::read_to_string(root.join("Cargo.toml"))
        .unwrap()
        .replace(
            "timeout = 10",
            "timeout = 10\nenv-file = \".env\"\nmemory = 256",
        );
    std::fs::write(root.join("Cargo.toml"), &manifest).unwrap();
    std::fs::write(root.join(".gitignore"), ".env\n").unwrap();
    std::fs::write(root.join(".env"), "GREETING=hello\n").unwrap();

    let logs = Logs::default();
    let mut watch = Watch::start(watch_options(&root, &logs)).await;
    let endpoint = watch.endpoint.clone();
    let client = lambda_client(&endpoint);
    let out = invoke(&client, "envy", json!({})).await;
    assert_eq!(out.body, json!({"greeting": "hello", "memory": "256"}));

    std::fs::write(root.join(".env"), "GREETING=bonjour\n").unwrap();
    loop {
        match watch.next_event().await {
            WatchEvent::Reloaded { .. } => break,
            WatchEvent::Rebuilding { trigger } => assert!(trigger.ends_with(".env")),
            other => panic!("unexpected {other:?}"),
        }
    }
    let out = invoke(&client, "envy", json!({})).await;
    assert_eq!(out.body["greeting"], "bonjour");

    std::fs::write(
        root.join("Cargo.toml"),
        manifest.replace("memory = 256", "memory = 512"),
    )
    .unwrap();
    watch.reloaded().await;
    let out = invoke(&client, "envy", json!({})).await;
    assert_eq!(out.body["memory"], "512");
    assert!(out.log.contains("Memory Size: 512 MB"), "{}", out.log);

    watch.stop().await.expect("watch ends cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_bin_file_is_served_after_the_reload_that_announces_it() {
    let dir = tempdir();
    let root = dir.path().to_path_buf();
    function_crate(&root, "firstbin", 0);
    let logs = Logs::default();
    let mut watch = Watch::start(watch_options(&root, &logs)).await;
    let endpoint = watch.endpoint.clone();
    let client = lambda_client(&endpoint);
    assert_eq!(
        invoke(&client, "firstbin", json!({})).await.body["version"],
        0
    );

    // A new binary target, discovered by cargo from its file alone.
    std::fs::create_dir_all(root.join("src/bin")).unwrap();
    let tmp = root.join("src/bin/second.rs.tmp~");
    std::fs::write(
        &tmp,
        r#"use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|_e: LambdaEvent<Value>| async move {
        Ok::<Value, Error>(json!({"second": true}))
    }))
    .await
}
"#,
    )
    .unwrap();
    std::fs::rename(&tmp, root.join("src/bin/second.rs")).unwrap();
    watch.reloaded().await;
    let out = invoke(&client, "second", json!({})).await;
    assert_eq!(out.body, json!({"second": true}));
    assert_eq!(
        invoke(&client, "firstbin", json!({})).await.body["version"],
        0
    );

    watch.stop().await.expect("watch ends cleanly");
}

/// Issue 26: a function under watch got its configured `env` but not its
/// `secrets` (`orders-api` logged "PAYMENT_API_KEY is not set"). It gets
/// each secret's name in its variable, as deployed: never a value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_given_to_functions_under_watch_as_names() {
    let dir = tempdir();
    let root = dir.path().to_path_buf();
    function_crate(&root, "secretive", 0);
    std::fs::write(
        root.join("src/main.rs"),
        r#"use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|_e: LambdaEvent<Value>| async move {
        Ok::<Value, Error>(json!({
            "key": std::env::var("PAYMENT_API_KEY").ok(),
            "stage": std::env::var("STAGE").ok(),
        }))
    }))
    .await
}
"#,
    )
    .unwrap();
    let manifest = std::fs::read_to_string(root.join("Cargo.toml"))
        .unwrap()
        .replace(
            "timeout = 10",
            "timeout = 10\nenv = { STAGE = \"dev\" }\nsecrets = { PAYMENT_API_KEY = \"orders/payment-api-key\" }",
        );
    std::fs::write(root.join("Cargo.toml"), &manifest).unwrap();

    let logs = Logs::default();
    let watch = Watch::start(watch_options(&root, &logs)).await;
    let out = invoke(&lambda_client(&watch.endpoint), "secretive", json!({})).await;
    assert_eq!(
        out.body,
        json!({"key": "orders/payment-api-key", "stage": "dev"})
    );
    watch.stop().await.expect("watch ends cleanly");
}

/// Without limits (no permission for cgroups, macOS, `--no-limits`) a
/// function may use more than its memory size: its REPORT is followed by
/// a LIMIT line, since Lambda would have stopped it; within the size, none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uncapped_invocations_over_their_memory_size_are_marked_after_report() {
    let mut small = crate::support::emulator::spec("small", "alloc");
    small.memory_mb = 128;
    let (emu, client, logs) = crate::support::emulator::start(vec![small]).await;
    assert_eq!(emu.limits(), &cargo_fn::emulator::LimitsStatus::Off);
    let within = invoke(&client, "small", json!({"mb": 8})).await;
    assert_eq!(within.function_error, None, "{}", within.body);
    let over = invoke(&client, "small", json!({"mb": 200})).await;
    assert_eq!(over.function_error, None, "uncapped: {}", over.body);
    let lines = logs.lines();
    let marks: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("LIMIT RequestId"))
        .collect();
    assert_eq!(marks.len(), 1, "{lines:#?}");
    let report = lines
        .iter()
        .position(|l| {
            l.split_once("REPORT ")
                .and_then(|(_, report)| {
                    crate::support::emulator::report_field(
                        &format!("REPORT {report}"),
                        "Max Memory Used",
                    )
                })
                .is_some_and(|mb| mb > 200.0)
        })
        .unwrap_or_else(|| panic!("no REPORT over 200 MB: {lines:#?}"));
    assert!(
        lines[report + 1..]
            .iter()
            .any(|l| l.contains("LIMIT RequestId")
                && l.contains("exceeds Memory Size: 128 MB")
                && l.contains("Runtime.OutOfMemory")),
        "{lines:#?}"
    );
    assert!(
        !over.log.contains("LIMIT"),
        "the log callers get stays Lambda's: {}",
        over.log
    );
    emu.shutdown().await;
}
