//! Local triggers without a local service: schedules (fired by the test's
//! clock and by `cargo fn invoke --trigger`), S3 notifications, and HTTP API
//! routes, each through a real `lambda_runtime` function; every event is
//! read back with the `aws_lambda_events` types.

use std::path::Path;
use std::time::Duration;

use aws_lambda_events::event::apigw::{ApiGatewayProxyRequest, ApiGatewayV2httpRequest};
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::s3::S3Event;
use cargo_fn::config::Trigger;
use cargo_fn::config::triggers::{S3Trigger, ScheduleTrigger, TriggerKind};
use cargo_fn::emulator::{Emulator, HttpRoute, PayloadFormat};
use cargo_fn::local::LocalTriggers;
use cargo_fn::local::schedule::ManualClock;
use cargo_fn::ui::Ui;
use serde_json::{Value, json};

use crate::support::emulator::{Logs, http, options, spec, start};
use crate::support::watch::Watch;
use crate::support::{cargo_fn, tempdir};

fn route(function: &str, key: &str, stage: &str, payload: PayloadFormat) -> HttpRoute {
    HttpRoute {
        function: function.into(),
        route_key: key.into(),
        stage: stage.into(),
        payload,
        cors: None,
        api: "api".into(),
    }
}

/// The event the `reflect` fixture got, from its answer.
fn reflected(status: u16, body: &[u8]) -> Value {
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(body));
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn http_api_routes_fill_route_key_path_parameters_and_stage() {
    let (emu, _client, _logs) =
        start(vec![spec("items", "reflect"), spec("orders", "reflect")]).await;
    emu.set_http_routes(vec![
        route("items", "GET /items/{id}", "$default", PayloadFormat::V2),
        route("items", "GET /items/new", "$default", PayloadFormat::V2),
        route("items", "ANY /files/{path+}", "$default", PayloadFormat::V2),
        route("orders", "POST /orders/{order}", "prod", PayloadFormat::V1),
    ])
    .unwrap();
    let base = emu.endpoint();

    // A parameter: payload 2.0 as API Gateway sends it.
    let (status, _, body) = http("GET", &format!("{base}/items/42?tag=a"), &[], vec![]).await;
    let raw = reflected(status, &body);
    let event: ApiGatewayV2httpRequest = serde_json::from_value(raw.clone()).unwrap();
    assert_eq!(event.route_key.as_deref(), Some("GET /items/{id}"));
    assert_eq!(event.raw_path.as_deref(), Some("/items/42"));
    assert_eq!(
        event.path_parameters.get("id").map(String::as_str),
        Some("42")
    );
    assert_eq!(
        event.request_context.route_key.as_deref(),
        Some("GET /items/{id}")
    );
    assert_eq!(event.request_context.stage.as_deref(), Some("$default"));
    assert_eq!(raw["queryStringParameters"]["tag"], "a");

    // A literal segment beats the parameter; no parameters, no field.
    let (status, _, body) = http("GET", &format!("{base}/items/new"), &[], vec![]).await;
    let raw = reflected(status, &body);
    assert_eq!(raw["routeKey"], "GET /items/new");
    assert!(raw.get("pathParameters").is_none(), "{raw}");

    // Greedy: the rest of the path, any method.
    let (status, _, body) = http(
        "DELETE",
        &format!("{base}/files/a/b%20c/d.txt"),
        &[],
        vec![],
    )
    .await;
    let event: ApiGatewayV2httpRequest = serde_json::from_value(reflected(status, &body)).unwrap();
    assert_eq!(event.route_key.as_deref(), Some("ANY /files/{path+}"));
    assert_eq!(
        event.path_parameters.get("path").map(String::as_str),
        Some("a/b c/d.txt")
    );

    // Payload 1.0 on a named stage: the stage prefixes the path.
    let (status, _, body) = http(
        "POST",
        &format!("{base}/prod/orders/o-7"),
        &[("content-type", "application/json")],
        br#"{"qty":2}"#.to_vec(),
    )
    .await;
    let raw = reflected(status, &body);
    let event: ApiGatewayProxyRequest = serde_json::from_value(raw.clone()).unwrap();
    assert_eq!(raw["version"], "1.0");
    assert_eq!(event.resource.as_deref(), Some("/orders/{order}"));
    assert_eq!(event.path.as_deref(), Some("/prod/orders/o-7"));
    assert_eq!(
        event.path_parameters.get("order").map(String::as_str),
        Some("o-7")
    );
    assert_eq!(event.request_context.stage.as_deref(), Some("prod"));
    assert_eq!(
        event.request_context.resource_path.as_deref(),
        Some("/orders/{order}")
    );
    assert_eq!(raw["requestContext"]["routeKey"], "POST /orders/{order}");
    assert_eq!(event.body.as_deref(), Some(r#"{"qty":2}"#));

    // Unmatched: API Gateway's 404, whatever the cause.
    for (method, path) in [
        ("POST", "/items/42"),
        ("GET", "/orders/o-7"),
        ("GET", "/prod/items/42"),
        ("GET", "/files"),
        ("GET", "/"),
    ] {
        let (status, headers, body) = http(method, &format!("{base}{path}"), &[], vec![]).await;
        assert_eq!(status, 404, "{method} {path}");
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(body, br#"{"message":"Not Found"}"#, "{method} {path}");
    }

    // Function URLs stay where they were, with the function's own front.
    let (status, _, body) = http(
        "GET",
        &format!("{base}/lambda-url/items/anything"),
        &[],
        vec![],
    )
    .await;
    let raw = reflected(status, &body);
    assert_eq!(raw["routeKey"], "$default");
    assert_eq!(raw["rawPath"], "/anything");

    // --default-function serves what no route matches.
    emu.set_default(Some("orders")).unwrap();
    let (status, _, body) = http("GET", &format!("{base}/elsewhere"), &[], vec![]).await;
    assert_eq!(reflected(status, &body)["rawPath"], "/elsewhere");
    emu.shutdown().await;
}

fn every_minute() -> Trigger {
    Trigger {
        name: "every-minute".into(),
        kind: TriggerKind::Schedule(ScheduleTrigger {
            expression: "rate(1 minute)".into(),
            timezone: Some("Europe/Paris".into()),
            flexible_window: None,
            input: None,
            maximum_event_age: None,
            maximum_retry_attempts: None,
            enabled: true,
        }),
    }
}

fn uploads() -> Trigger {
    Trigger {
        name: "uploads".into(),
        kind: TriggerKind::S3(S3Trigger {
            bucket: "incoming-files".into(),
            events: vec!["s3:ObjectCreated:*".into()],
            prefix: Some("reports/".into()),
            suffix: Some(".csv".into()),
        }),
    }
}

/// Waits (a hang guard, not a timing assertion) until `done` holds.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let give_up = std::time::Instant::now() + Duration::from_secs(120);
    while !done() {
        assert!(
            std::time::Instant::now() < give_up,
            "never happened: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn fire(endpoint: &str, function: &str, name: &str, body: &[u8]) -> (u16, Value) {
    let (status, _, body) = http(
        "POST",
        &format!("{endpoint}/_cargo-fn/api/triggers/{function}/{name}/fire"),
        &[],
        body.to_vec(),
    )
    .await;
    (status, serde_json::from_slice(&body).unwrap())
}

fn status_of(triggers: &LocalTriggers, name: &str) -> Value {
    triggers
        .list()
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("no trigger {name}"))["status"]
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_schedule_fires_on_the_test_clock_and_on_demand_and_s3_fires_its_example() {
    let logs = Logs::default();
    let local = LocalTriggers::new();
    let start_at: jiff::Timestamp = "2026-11-30T04:00:00Z".parse().unwrap();
    let clock = ManualClock::new(start_at);
    local.set_clock(clock.clone());
    let mut opts = options(&logs);
    opts.routes = Some(local.router());
    opts.front = Some(local.front());
    let emu = Emulator::start(opts, vec![spec("tick", "echo")])
        .await
        .unwrap();
    local
        .start(
            &emu,
            &[("tick".to_string(), vec![every_minute(), uploads()])],
            Ui::silent(),
        )
        .unwrap();
    let ran = || logs.count("echo handling");

    // rate(): a first firing when the schedule is created, then each minute
    // of the clock, each a real invocation of the function.
    until("the first firing", || ran() == 1).await;
    until("the next firing is planned", || {
        status_of(&local, "every-minute")["next"] == "2026-11-30T04:01:00Z"
    })
    .await;
    let status = status_of(&local, "every-minute");
    assert_eq!(status["expression"], "rate(1 minute)");
    assert_eq!(status["timezone"], "Europe/Paris");
    assert_eq!(ran(), 1, "nothing fires before the clock moves");
    for minute in 1..=3 {
        let at = format!("2026-11-30T04:0{minute}:00Z");
        clock.set(at.parse().unwrap());
        until(&format!("the firing at {at}"), || ran() == 1 + minute).await;
        until("its log line", || {
            status_of(&local, "every-minute")["last"]
                .as_str()
                .is_some_and(|l| l.starts_with(&format!("fired for {at} -> ")))
        })
        .await;
    }

    // Fire now: Scheduler's event, answered by the function (echo).
    let (status, out) = fire(&emu.endpoint(), "tick", "every-minute", b"").await;
    assert_eq!(status, 200, "{out}");
    let event: EventBridgeEvent = serde_json::from_value(out["response"].clone()).unwrap();
    assert_eq!(event.source, "aws.scheduler");
    assert_eq!(event.detail_type, "Scheduled Event");
    assert_eq!(event.detail, json!("{}"));
    assert_eq!(
        event.resources.unwrap(),
        ["arn:aws:scheduler:us-east-1:012345678912:schedule/default/tick.every-minute"]
    );
    assert!(
        out["requestId"].is_string() && out.get("functionError").is_none(),
        "{out}"
    );
    // ...or with a given payload.
    let (_, out) = fire(&emu.endpoint(), "tick", "every-minute", br#"{"job":1}"#).await;
    assert_eq!(out["response"], json!({"job": 1}));

    // S3: the example honours prefix and suffix; a given key is URL-encoded.
    let (status, out) = fire(&emu.endpoint(), "tick", "uploads", b"").await;
    assert_eq!(status, 200, "{out}");
    let event: S3Event = serde_json::from_value(out["response"].clone()).unwrap();
    let record = &event.records[0];
    assert_eq!(record.event_name.as_deref(), Some("ObjectCreated:Put"));
    assert_eq!(record.s3.bucket.name.as_deref(), Some("incoming-files"));
    assert_eq!(record.s3.object.key.as_deref(), Some("reports/example.csv"));
    let (_, out) = fire(&emu.endpoint(), "tick", "uploads", br#""reports/q 4.csv""#).await;
    let event: S3Event = serde_json::from_value(out["response"].clone()).unwrap();
    assert_eq!(
        event.records[0].s3.object.key.as_deref(),
        Some("reports/q+4.csv")
    );
    let (status, out) = fire(&emu.endpoint(), "tick", "uploads", b"42").await;
    assert_eq!(status, 400, "{out}");

    let (status, out) = fire(&emu.endpoint(), "tick", "nope", b"").await;
    assert_eq!(status, 404, "{out}");
    local.stop();
    emu.shutdown().await;
}

/// A project whose one function has a schedule and an S3 trigger.
fn scheduled_crate(dir: &Path) {
    crate::support::watch::function_crate(dir, "ticker", 1);
    let manifest = dir.join("Cargo.toml");
    let mut text = std::fs::read_to_string(&manifest).unwrap();
    text.push_str(
        r#"
[[package.metadata.fn.triggers]]
type = "schedule"
name = "every-minute"
expression = "rate(1 minute)"

[[package.metadata.fn.triggers]]
type = "s3"
name = "uploads"
bucket = "incoming-files"
"#,
    );
    std::fs::write(manifest, text).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invoke_trigger_fires_through_a_running_watch() {
    let dir = tempdir();
    let root = dir.path().join("ticker");
    scheduled_crate(&root);
    let logs = Logs::default();
    let opts = crate::support::watch::watch_options(&root, &logs);
    let watch = Watch::start(opts).await;
    let endpoint = watch.endpoint.clone();

    let run = |args: &[&str]| {
        let out = cargo_fn()
            .args(["fn", "invoke", "ticker"])
            .args(args)
            .args(["--endpoint", &endpoint])
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stdout, stderr) =
        tokio::task::block_in_place(|| run(&["--trigger", "every-minute"]));
    assert_eq!(code, Some(0), "{stderr}");
    let out: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(out["response"]["version"], 1, "{out}");
    assert!(out["requestId"].is_string());

    let (code, stdout, stderr) = tokio::task::block_in_place(|| {
        run(&[
            "--trigger",
            "uploads",
            "--data",
            r#"{"key":"a.txt","size":3}"#,
        ])
    });
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        serde_json::from_str::<Value>(stdout.trim()).unwrap()["response"]["version"],
        1
    );

    // An unknown trigger names the known ones.
    let (code, _, stderr) = tokio::task::block_in_place(|| run(&["--trigger", "hourly"]));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("no local trigger `hourly`"), "{stderr}");
    assert!(
        stderr.contains("every-minute (schedule), uploads (s3)"),
        "{stderr}"
    );

    // Local only: with --remote it is a usage error, before any AWS call.
    let out = tokio::task::block_in_place(|| {
        cargo_fn()
            .args([
                "fn",
                "invoke",
                "ticker",
                "--trigger",
                "every-minute",
                "--remote",
            ])
            .output()
            .unwrap()
    });
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("local emulator"));

    // The schedule also fires on its own when watch starts (rate() fires
    // at creation): three invocations with the two fires above.
    until("the schedule's own first firing", || {
        logs.count("START RequestId") >= 3
    })
    .await;
    watch.stop().await.unwrap();
}

fn orders_api() -> Trigger {
    Trigger {
        name: "api".into(),
        kind: TriggerKind::HttpApi(cargo_fn::config::triggers::HttpApiTrigger {
            routes: vec!["POST /orders/{id}".into(), "GET /orders".into()],
            payload_format: "2.0".into(),
            cors: None,
            stage: "prod".into(),
        }),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn http_api_triggers_are_listed_and_fired_through_the_route_table() {
    let logs = Logs::default();
    let local = LocalTriggers::new();
    let mut opts = options(&logs);
    opts.routes = Some(local.router());
    opts.front = Some(local.front());
    let emu = Emulator::start(opts, vec![spec("orders", "reflect")])
        .await
        .unwrap();
    // As watch serves them: the trigger's routes in the emulator's table.
    emu.set_http_routes(vec![
        route("orders", "POST /orders/{id}", "prod", PayloadFormat::V2),
        route("orders", "GET /orders", "prod", PayloadFormat::V2),
    ])
    .unwrap();
    local
        .start(
            &emu,
            &[("orders".to_string(), vec![orders_api()])],
            Ui::silent(),
        )
        .unwrap();
    let endpoint = emu.endpoint();

    // Listed with its routes and local URL.
    let (status, _, body) = http(
        "GET",
        &format!("{endpoint}/_cargo-fn/api/triggers"),
        &[],
        vec![],
    )
    .await;
    assert_eq!(status, 200);
    let list: Value = serde_json::from_slice(&body).unwrap();
    let api = list
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "api")
        .unwrap_or_else(|| panic!("the http-api trigger is not listed: {list}"));
    assert_eq!(api["type"], "http-api");
    assert_eq!(api["function"], "orders");
    assert_eq!(api["status"]["routes"], "POST /orders/{id}, GET /orders");
    assert_eq!(api["status"]["url"], format!("{endpoint}/prod/"));

    // Fired with the example request of its first route.
    let (status, out) = fire(&endpoint, "orders", "api", b"").await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["request"], "POST /orders/example");
    assert_eq!(out["statusCode"], 200, "{out}");
    let id = out["requestId"].as_str().unwrap();
    until("the invocation it made", || {
        logs.count(&format!("START RequestId: {id}")) == 1
    })
    .await;
    let event: ApiGatewayV2httpRequest = serde_json::from_value(out["body"].clone()).unwrap();
    assert_eq!(event.route_key.as_deref(), Some("POST /orders/{id}"));
    assert_eq!(event.raw_path.as_deref(), Some("/prod/orders/example"));
    assert_eq!(event.request_context.stage.as_deref(), Some("prod"));
    assert_eq!(
        event.path_parameters.get("id").map(String::as_str),
        Some("example")
    );

    // `cargo fn invoke --trigger api --data REQUEST`: the request given.
    let data =
        br#"{"method": "GET", "path": "/orders?status=open", "headers": {"x-tenant": "t1"}}"#;
    let fired = tokio::task::spawn_blocking({
        let endpoint = endpoint.clone();
        move || cargo_fn::invoke::fire_trigger(&endpoint, "orders", "api", Some(data))
    })
    .await
    .unwrap()
    .expect("--trigger fires an http-api trigger");
    let event: ApiGatewayV2httpRequest = serde_json::from_value(fired["body"].clone()).unwrap();
    assert_eq!(event.route_key.as_deref(), Some("GET /orders"));
    assert_eq!(event.raw_query_string.as_deref(), Some("status=open"));
    assert_eq!(event.headers["x-tenant"], "t1");

    // A request that is not one is refused, naming the field.
    let (status, out) = fire(&endpoint, "orders", "api", br#"{"path": "orders"}"#).await;
    assert_eq!(status, 400, "{out}");
    assert!(out["message"].as_str().unwrap().contains("`path`"), "{out}");
    local.stop();
    emu.shutdown().await;
}
