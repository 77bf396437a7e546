//! The watch dashboard: its JSON API (the emulator's history, environments,
//! live events; the dashboard's state) and the page itself in a real
//! headless Chromium driven over the DevTools protocol.

use std::path::Path;
use std::time::{Duration, Instant};

use cargo_fn::dashboard::Dashboard;
use cargo_fn::emulator::{Emulator, EmulatorOptions};
use serde_json::{Value, json};

use crate::support::browser::{Browser, Page};
use crate::support::emulator::{Logs, http, invoke, lambda_client, spec};
use crate::support::watch::Watch;

async fn start_with_dashboard() -> (Emulator, Dashboard, aws_sdk_lambda::Client) {
    let logs = Logs::default();
    let dashboard = Dashboard::default();
    let specs = vec![spec("echo", "echo"), spec("fail", "fail")];
    let options = EmulatorOptions {
        bind: "127.0.0.1:0".parse().unwrap(),
        log_sink: logs.sink(),
        routes: Some(dashboard.router()),
        ..EmulatorOptions::default()
    };
    let emu = Emulator::start(options, specs.clone()).await.unwrap();
    dashboard.serving(&specs, 1);
    let client = lambda_client(&emu.endpoint());
    (emu, dashboard, client)
}

async fn get_json(emu: &Emulator, path: &str) -> Value {
    let (status, _, body) = http("GET", &format!("{}{path}", emu.endpoint()), &[], vec![]).await;
    assert_eq!(
        status,
        200,
        "GET {path}: {}",
        String::from_utf8_lossy(&body)
    );
    serde_json::from_slice(&body).unwrap()
}

/// Polls the dashboard's state until `ok` holds (generous bound, no timing
/// claim) and returns it.
async fn wait_state(emu: &Emulator, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let state = get_json(emu, "/_cargo-fn/api/state").await;
        if ok(&state) {
            return state;
        }
        assert!(Instant::now() < deadline, "{what}: never happened: {state}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A tune report as `cargo fn tune` makes it, from REPORT-like samples.
fn tune_report(function: &str, points: &[(u32, f64)]) -> cargo_fn::tune::TuneReport {
    use cargo_fn::tune::stats;
    let points: Vec<_> = points
        .iter()
        .map(|&(memory, ms)| {
            let sample = stats::Sample {
                duration_ms: ms,
                billed_ms: ms.ceil() as u64,
                init_ms: None,
                max_memory_mb: 18,
                error: false,
            };
            stats::point(cargo_fn::config::Arch::X86_64, memory, &[sample; 5])
        })
        .collect();
    cargo_fn::tune::TuneReport {
        function: function.into(),
        mode: "local",
        label: "Local estimate: the release build under the emulator with Lambda's memory limit and CPU share.".into(),
        picks: stats::picks(&points, 0.5),
        points,
    }
}

/// Triggers as `watch` publishes them (the shape of `GET /_cargo-fn/api/triggers`).
fn triggers_section() -> Value {
    let next =
        aws_smithy_types::DateTime::from(std::time::SystemTime::now() + Duration::from_secs(300))
            .fmt(aws_smithy_types::date_time::Format::DateTime)
            .unwrap();
    json!([
        {"function": "echo", "name": "orders", "type": "sqs",
         "status": {"queue": "orders", "visible": 3, "in flight": 1, "dlq": "orders-dlq (2)"}},
        {"function": "echo", "name": "nightly", "type": "schedule",
         "status": {"expression": "rate(5 minutes)", "next": next}},
    ])
}

fn request_id(log: &str) -> String {
    log.lines()
        .find_map(|l| l.strip_prefix("START RequestId: "))
        .and_then(|r| r.split_whitespace().next())
        .expect("a START line")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_api_lists_details_filters_and_counts() {
    let (emu, dashboard, client) = start_with_dashboard().await;
    let ok = invoke(&client, "echo", json!({"hello": "world"})).await;
    let id = request_id(&ok.log);
    let failed = invoke(&client, "fail", json!({})).await;
    assert!(failed.function_error.is_some());

    let list = get_json(&emu, "/_cargo-fn/api/invocations").await;
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    let first = &list[0];
    assert_eq!(first["request_id"], id.as_str());
    assert_eq!(first["function"], "echo");
    assert_eq!(first["status"], "success");
    assert_eq!(first["caller"], "Invoke API");
    assert!(first["init_ms"].as_f64().is_some(), "a cold start: {first}");
    assert!(first["billed_ms"].as_u64().unwrap() >= 1);
    assert!(first["cost_usd"].as_f64().unwrap() > 0.0);
    let log: Vec<&str> = first["log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert!(
        log[0].starts_with(&format!("START RequestId: {id}")),
        "{log:?}"
    );
    assert!(
        log.iter()
            .any(|l| l.contains(&format!("echo handling {id}"))),
        "{log:?}"
    );
    assert!(
        log.iter()
            .any(|l| l.starts_with(&format!("REPORT RequestId: {id}")))
    );
    assert!(
        first.get("payload").is_none(),
        "the list leaves payloads out"
    );
    assert_eq!(list[1]["status"], "error");

    let seq = first["seq"].as_u64().unwrap();
    let one = get_json(&emu, &format!("/_cargo-fn/api/invocations/{seq}")).await;
    assert_eq!(
        serde_json::from_str::<Value>(one["payload"].as_str().unwrap()).unwrap(),
        json!({"hello": "world"})
    );
    assert_eq!(
        serde_json::from_str::<Value>(one["response"].as_str().unwrap()).unwrap(),
        ok.body
    );
    let by_id = get_json(&emu, &format!("/_cargo-fn/api/invocations/{id}")).await;
    assert_eq!(by_id["seq"], seq);
    let (status, _, _) = http(
        "GET",
        &format!("{}/_cargo-fn/api/invocations/999", emu.endpoint()),
        &[],
        vec![],
    )
    .await;
    assert_eq!(status, 404);

    let errors = get_json(&emu, "/_cargo-fn/api/invocations?status=error").await;
    assert_eq!(errors.as_array().unwrap().len(), 1);
    assert_eq!(errors[0]["function"], "fail");
    let echo = get_json(&emu, "/_cargo-fn/api/invocations?function=echo&after=0").await;
    assert_eq!(echo.as_array().unwrap().len(), 1);
    let after = get_json(&emu, &format!("/_cargo-fn/api/invocations?after={seq}")).await;
    assert_eq!(after.as_array().unwrap().len(), 1);

    let envs = get_json(&emu, "/_cargo-fn/api/environments").await;
    let echo_env = envs
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["function"] == "echo")
        .unwrap();
    assert_eq!(echo_env["warm"], 1, "{echo_env}");
    assert_eq!(echo_env["busy"], 0);
    assert_eq!(echo_env["invocations"], 1);
    assert_eq!(echo_env["cold_starts"], 1);
    assert_eq!(echo_env["memory_mb"], 128);

    let state = get_json(&emu, "/_cargo-fn/api/state").await;
    assert_eq!(state["build"], json!({"state": "serving", "generation": 1}));
    assert_eq!(state["functions"][0]["name"], "echo");
    assert_eq!(state["sections"], json!({}), "no triggers or tune data yet");
    dashboard.set_section(
        "tune",
        Some(json!({"title": "Tune", "rows": [{"memory": 256}]})),
    );
    let state = get_json(&emu, "/_cargo-fn/api/state").await;
    assert_eq!(state["sections"]["tune"]["rows"][0]["memory"], 256);

    let (status, headers, body) = http(
        "GET",
        &format!("{}/_cargo-fn/", emu.endpoint()),
        &[],
        vec![],
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(String::from_utf8_lossy(&body).contains("/_cargo-fn/app.js"));
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saved_tune_reports_become_the_tune_section_and_follow_each_run() {
    let (emu, dashboard, _client) = start_with_dashboard().await;
    let dir = tempfile::tempdir().unwrap();
    dashboard.follow_reports("tune", dir.path().to_path_buf(), cargo_fn::tune::JSON_FILE);
    let state = get_json(&emu, "/_cargo-fn/api/state").await;
    assert!(state["sections"].get("tune").is_none(), "no report yet");

    cargo_fn::tune::write_report(&tune_report("echo", &[(128, 90.0)]), dir.path()).unwrap();
    let state = wait_state(&emu, "the saved report on the dashboard", |s| {
        s["sections"]["tune"][0]["report"]["function"] == "echo"
    })
    .await;
    let item = &state["sections"]["tune"][0];
    assert_eq!(item["report"]["mode"], "local");
    assert_eq!(item["report"]["points"][0]["memory_mb"], 128);
    assert!(item["saved_ms"].as_u64().unwrap() > 0, "{item}");

    // The next run replaces it; a report removed leaves the page.
    cargo_fn::tune::write_report(
        &tune_report("echo", &[(128, 90.0), (512, 30.0)]),
        dir.path(),
    )
    .unwrap();
    let state = wait_state(&emu, "the next run's report", |s| {
        s["sections"]["tune"][0]["report"]["points"]
            .as_array()
            .is_some_and(|p| p.len() == 2)
    })
    .await;
    assert_eq!(state["sections"]["tune"][0]["report"]["picks"]["speed"], 1);
    std::fs::remove_file(dir.path().join("echo").join(cargo_fn::tune::JSON_FILE)).unwrap();
    wait_state(&emu, "the section to go with its file", |s| {
        s["sections"].get("tune").is_none()
    })
    .await;
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_stream_sends_the_backlog_then_each_new_invocation_once() {
    let (emu, _dashboard, client) = start_with_dashboard().await;
    let first = request_id(&invoke(&client, "echo", json!({})).await.log);
    let url = format!("{}/_cargo-fn/api/events?after=0", emu.endpoint());
    let client_http =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let resp = client_http.get(url.parse().unwrap()).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut body = resp.into_body();
    let mut text = String::new();
    let mut next_event = async |text: &mut String| -> Value {
        use http_body_util::BodyExt;
        loop {
            if let Some(end) = text.find("\n\n") {
                let block: String = text.drain(..end + 2).collect();
                if let Some(data) = block.lines().find_map(|l| l.strip_prefix("data:")) {
                    return serde_json::from_str(data.trim()).unwrap();
                }
                continue;
            }
            let frame = tokio::time::timeout(Duration::from_secs(60), body.frame())
                .await
                .expect("an event within a minute")
                .expect("the stream stays open")
                .unwrap();
            if let Ok(data) = frame.into_data() {
                text.push_str(&String::from_utf8_lossy(&data));
            }
        }
    };
    let backlog = next_event(&mut text).await;
    assert_eq!(backlog["request_id"], first.as_str());
    let second = request_id(&invoke(&client, "echo", json!({})).await.log);
    let live = next_event(&mut text).await;
    assert_eq!(live["request_id"], second.as_str());
    assert_eq!(live["seq"], backlog["seq"].as_u64().unwrap() + 1);
    emu.shutdown().await;
}

fn row(id: &str) -> String {
    format!("document.querySelector('tr.inv[data-request-id=\"{id}\"]')")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_chromium_shows_invocations_live_and_invokes_again() {
    let (emu, dashboard, client) = start_with_dashboard().await;
    let browser = Browser::open(&format!("{}/_cargo-fn/", emu.endpoint()));
    let mut page = Page::attach(&browser, "/_cargo-fn/").await;
    page.wait_for(
        "the page follows the live stream",
        "document.querySelector('#live')?.classList.contains('ok')",
    )
    .await;
    page.wait_for(
        "the functions table is filled",
        "document.querySelector('#functions tr[data-function=\"echo\"] .env')?.textContent",
    )
    .await;

    let invoked = invoke(&client, "echo", json!({"from": "the test"})).await;
    let id = request_id(&invoked.log);
    let shown = page
        .wait_for(
            "the invocation's row",
            &format!(
                "(() => {{ const r = {}; if (!r) return null; return {{ duration: r.querySelector('.duration').textContent, shown: Number(r.dataset.shownMs), log: r.nextElementSibling.querySelector('.log').textContent, caller: r.querySelector('.caller').textContent }}; }})()",
                row(&id)
            ),
        )
        .await;
    assert!(
        shown["duration"].as_str().unwrap().ends_with(" ms"),
        "{shown}"
    );
    let log = shown["log"].as_str().unwrap();
    assert!(log.contains(&format!("echo handling {id}")), "{log}");
    assert!(log.contains(&format!("REPORT RequestId: {id}")), "{log}");
    assert_eq!(shown["caller"], "Invoke API");
    page.wait_for(
        "the environments column counts the cold start",
        "document.querySelector('#functions tr[data-function=\"echo\"] .env').textContent.includes('cold starts 1')",
    )
    .await;
    // Ten warm invocations, each reaching the page (their latency is
    // measured by `cargo xtask bench --only dashboard`, not here).
    for _ in 0..10 {
        let out = invoke(&client, "echo", json!({"warm": true})).await;
        let warm = request_id(&out.log);
        page.wait_for("a warm invocation's row", &row(&warm)).await;
    }

    // Open the row: its payload loads; "Invoke again" sends it once more.
    page.eval(&format!("{}.click()", row(&id))).await;
    page.wait_for(
        "the payload in the details",
        &format!(
            "{}.nextElementSibling.querySelector('.payload').value",
            row(&id)
        ),
    )
    .await;
    page.eval(&format!(
        "{}.nextElementSibling.querySelector('.again').click()",
        row(&id)
    ))
    .await;
    // 11 rows so far (the first and 10 measured); the newest is on top.
    let newest = |count: usize| {
        format!(
            "document.querySelectorAll('tr.inv[data-function=\"echo\"]').length === {count} && document.querySelector('tr.inv[data-function=\"echo\"]').dataset.requestId"
        )
    };
    let again = page
        .wait_for("a new invocation from \"Invoke again\"", &newest(12))
        .await;
    let again = again.as_str().unwrap();
    let record = get_json(&emu, &format!("/_cargo-fn/api/invocations/{again}")).await;
    assert_eq!(
        serde_json::from_str::<Value>(record["payload"].as_str().unwrap()).unwrap(),
        json!({"from": "the test"})
    );

    // "Edit and invoke": a changed payload.
    page.eval(&format!(
        "(() => {{ const d = {}.nextElementSibling; d.querySelector('.edit').click(); d.querySelector('.payload').value = '{{\"edited\": true}}'; d.querySelector('.send').click(); }})()",
        row(&id)
    ))
    .await;
    let edited = page
        .wait_for("a new invocation from \"Edit and invoke\"", &newest(13))
        .await;
    let edited = edited.as_str().unwrap();
    let record = get_json(&emu, &format!("/_cargo-fn/api/invocations/{edited}")).await;
    assert_eq!(
        serde_json::from_str::<Value>(record["payload"].as_str().unwrap()).unwrap(),
        json!({"edited": true})
    );

    // Filter by status: a failing function's row hides under "success".
    let failed = invoke(&client, "fail", json!({})).await;
    let failed_id = request_id(&failed.log);
    page.wait_for("the failed row", &row(&failed_id)).await;
    let hidden = page
        .eval(&format!(
            "(() => {{ const s = document.querySelector('#f-status'); s.value = 'success'; s.dispatchEvent(new Event('change')); return {}.hidden; }})()",
            row(&failed_id)
        ))
        .await;
    assert_eq!(hidden, json!(true));
    page.eval("(() => { const s = document.querySelector('#f-status'); s.value = ''; s.dispatchEvent(new Event('change')); })()")
        .await;

    page.wait_for(
        "the counters follow every invocation",
        "document.querySelector('#functions tr[data-function=\"fail\"] .env').textContent.includes('errors 1') && document.querySelector('#functions tr[data-function=\"echo\"] .env').textContent.includes('invocations 13')",
    )
    .await;
    // Triggers and a tune report, as watch publishes them.
    let tune_dir = tempfile::tempdir().unwrap();
    dashboard.set_section("triggers", Some(triggers_section()));
    cargo_fn::tune::write_report(
        &tune_report("echo", &[(128, 42.0), (512, 11.0), (1024, 6.0)]),
        tune_dir.path(),
    )
    .unwrap();
    dashboard.follow_reports(
        "tune",
        tune_dir.path().to_path_buf(),
        cargo_fn::tune::JSON_FILE,
    );
    let status = page
        .wait_for(
            "the queue's depth and DLQ",
            "document.querySelector('#triggers tr[data-trigger=\"orders\"] .status')?.textContent",
        )
        .await;
    let status = status.as_str().unwrap();
    assert!(
        status.contains("visible 3") && status.contains("dlq orders-dlq (2)"),
        "{status}"
    );
    let next = page
        .wait_for(
            "the schedule's next firing",
            "document.querySelector('#triggers tr[data-trigger=\"nightly\"] .status')?.textContent",
        )
        .await;
    assert!(next.as_str().unwrap().contains("(in "), "{next}");
    assert_eq!(
        page.eval("document.querySelectorAll('#triggers button.fire').length")
            .await,
        2
    );
    let picked = page
        .wait_for(
            "the tune report's picks",
            "[...document.querySelectorAll('section[data-section=\"tune\"] tr.picked')].map((r) => r.dataset.memory + ':' + r.querySelector('.pick').textContent).join(' ')",
        )
        .await;
    assert!(picked.as_str().unwrap().contains("1024:"), "{picked}");
    screenshot(&mut page, "dashboard.png").await;
    drop(page);
    drop(browser);
    emu.shutdown().await;
}

/// Saves the page's screenshot under target/ (for the README's picture).
async fn screenshot(page: &mut Page, name: &str) {
    page.eval("document.activeElement.blur(); window.scrollTo(0, 0)")
        .await;
    // The whole page, not only the window.
    let height = page.eval("document.documentElement.scrollHeight").await;
    let clip = json!({"x": 0, "y": 0, "width": 1280, "height": height, "scale": 1});
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
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    // The checkout's target/ is missing when CARGO_TARGET_DIR points elsewhere.
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, &png).unwrap();
    eprintln!("dashboard: screenshot at {}", path.display());
}

/// `cargo fn watch` (in-process) on a function with two SQS triggers, a
/// Kinesis trigger and a saved tune report: the page shows the queues and
/// the stream, "Fire now" on the polled queue and on the stream produces an
/// invocation whose row names the trigger as caller, and on the disabled
/// queue the message waits (its depth shows).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dashboard_under_watch_fires_queue_and_stream_triggers_and_shows_the_tune_report() {
    let dir = crate::support::tempdir();
    let root = dir.path().to_path_buf();
    crate::support::watch::function_crate(&root, "dashwatch", 0);
    let manifest = root.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap().replace(
        "[package.metadata.fn]\ntimeout = 10\n",
        r#"[package.metadata.fn]
timeout = 10

[[package.metadata.fn.triggers]]
type = "sqs"
name = "orders"
queue = "orders"

[[package.metadata.fn.triggers]]
type = "sqs"
name = "paused"
queue = "backlog"
enabled = false

[[package.metadata.fn.triggers]]
type = "kinesis"
name = "clicks"
stream = "arn:aws:kinesis:us-east-1:123456789012:stream/clicks"
starting-position = "TRIM_HORIZON"
"#,
    );
    std::fs::write(&manifest, text).unwrap();
    // A report as `cargo fn tune` leaves it in the project's target dir.
    let lambda_dir = crate::support::shared_target_dir().join("lambda");
    cargo_fn::tune::write_report(
        &tune_report("dashwatch", &[(128, 38.0), (512, 9.5), (1024, 5.0)]),
        &lambda_dir,
    )
    .unwrap();

    let logs = Logs::default();
    let watch = Watch::start(crate::support::watch::watch_options(&root, &logs)).await;
    let endpoint = watch.endpoint.clone();
    let browser = Browser::open(&format!("{endpoint}/_cargo-fn/"));
    let mut page = Page::attach(&browser, "/_cargo-fn/").await;
    let trigger =
        |name: &str| format!("document.querySelector('#triggers tr[data-trigger=\"{name}\"]')");
    let status = page
        .wait_for(
            "the queue trigger's status",
            &format!(
                "{}?.querySelector('.status').textContent",
                trigger("orders")
            ),
        )
        .await;
    assert!(
        status.as_str().unwrap().contains("queue orders"),
        "{status}"
    );
    page.wait_for(
        "the saved tune report",
        "document.querySelector('section[data-section=\"tune\"] tr[data-memory=\"1024\"] .pick')?.textContent.includes('speed')",
    )
    .await;

    // "Fire now" on the polled queue: the poller's invocation comes back
    // to the button, and its row names the trigger.
    page.eval(&format!(
        "{}.querySelector('button.fire').click()",
        trigger("orders")
    ))
    .await;
    let id = page
        .wait_for(
            "the fired trigger's invocation",
            &format!(
                "{}.querySelector('.result').dataset.requestIds",
                trigger("orders")
            ),
        )
        .await;
    let id = id.as_str().unwrap().to_string();
    let caller = page
        .wait_for(
            "the invocation's row",
            &format!("{}?.querySelector('.caller').textContent", row(&id)),
        )
        .await;
    assert_eq!(caller, "sqs:orders");
    let (status, _, body) = http(
        "GET",
        &format!("{endpoint}/_cargo-fn/api/invocations/{id}"),
        &[],
        vec![],
    )
    .await;
    assert_eq!(status, 200);
    let record: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(record["status"], "success", "{record}");
    let event: Value = serde_json::from_str(record["payload"].as_str().unwrap()).unwrap();
    assert_eq!(event["Records"][0]["eventSource"], "aws:sqs", "{event}");

    // "Fire now" on the disabled trigger: the message waits, the depth shows.
    page.eval(&format!(
        "{}.querySelector('button.fire').click()",
        trigger("paused")
    ))
    .await;
    page.wait_for(
        "the waiting message in the queue's depth",
        &format!(
            "{}.querySelector('.status').textContent.includes('visible 1')",
            trigger("paused")
        ),
    )
    .await;
    // Loading the page invoked nothing (no favicon request reached the
    // function URL front, which serves every path for a lone function).
    let (_, _, body) = http(
        "GET",
        &format!("{endpoint}/_cargo-fn/api/invocations"),
        &[],
        vec![],
    )
    .await;
    let callers: Vec<Value> = serde_json::from_slice::<Value>(&body)
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["caller"].clone())
        .collect();
    assert_eq!(callers, [json!("sqs:orders")]);

    // A stream trigger: "Fire now" puts a record; the shard's poller invokes.
    let status = page
        .wait_for(
            "the stream trigger's status",
            &format!(
                "{}?.querySelector('.status').textContent",
                trigger("clicks")
            ),
        )
        .await;
    assert!(
        status.as_str().unwrap().contains("stream clicks"),
        "{status}"
    );
    page.eval(&format!(
        "{}.querySelector('button.fire').click()",
        trigger("clicks")
    ))
    .await;
    let id = page
        .wait_for(
            "the stream trigger's invocation",
            &format!(
                "{}.querySelector('.result').dataset.requestIds",
                trigger("clicks")
            ),
        )
        .await;
    let caller = page
        .wait_for(
            "the stream invocation's row",
            &format!(
                "{}?.querySelector('.caller').textContent",
                row(id.as_str().unwrap())
            ),
        )
        .await;
    assert_eq!(caller, "kinesis:clicks");
    screenshot(&mut page, "dashboard-watch.png").await;
    drop(page);
    drop(browser);
    watch.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sections_show_only_this_projects_data() {
    let (emu, dashboard, _client) = start_with_dashboard().await;
    // Functions without triggers: watch publishes an empty list.
    dashboard.set_section("triggers", Some(json!([])));
    let state = get_json(&emu, "/_cargo-fn/api/state").await;
    assert!(
        state["sections"].get("triggers").is_none(),
        "an empty Triggers table: {state}"
    );
    dashboard.set_section("triggers", Some(triggers_section()));
    let state = get_json(&emu, "/_cargo-fn/api/state").await;
    assert!(state["sections"]["triggers"].is_array(), "{state}");

    // A target directory shared with another project: its tune report
    // (`other`) is not this project's (`echo`, `fail`).
    let dir = tempfile::tempdir().unwrap();
    cargo_fn::tune::write_report(&tune_report("other", &[(128, 50.0)]), dir.path()).unwrap();
    cargo_fn::tune::write_report(&tune_report("echo", &[(128, 90.0)]), dir.path()).unwrap();
    dashboard.follow_reports("tune", dir.path().to_path_buf(), cargo_fn::tune::JSON_FILE);
    let state = wait_state(&emu, "this project's report", |s| {
        s["sections"]["tune"].is_array()
    })
    .await;
    let functions: Vec<&Value> = state["sections"]["tune"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["report"]["function"])
        .collect();
    assert_eq!(functions, [&json!("echo")], "{state}");
    emu.shutdown().await;
}
