//! The example application (`examples/orders`: an HTTP API, a queue
//! consumer, a stream consumer and a schedule, JSON logs, a secret) end to
//! end, as a user meets it: under `cargo fn watch`, fed by the SDKs'
//! producers and a plain HTTP client, read back through the history API;
//! then packaged, deployed to moto behind an alias, changed and deployed
//! again as a canary rollout, and read back with the SDKs. Most defects sat
//! where two features meet: this is the net for them.
//!
//! One build of the example (the shared target dir) serves watch and the
//! package; the test's wall time is printed at its end.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use serde_json::{Value, json};

use crate::support::emulator::Logs;
use crate::support::moto::{Aws, SECRET_KEY, json_call};
use crate::support::watch::{Watch, watch_options};
use crate::support::{cargo_fn, shared_target_dir, tempdir};

/// The secret's value, stored in moto's Secrets Manager: no output may show it.
const SECRET_VALUE: &str = "pay-key-9f8e7d6c5b4a-never-printed";
const ACCOUNT: &str = "123456789012";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_orders_example_runs_under_watch_and_rolls_out_to_moto() {
    let started = Instant::now();
    let dir = tempdir();
    let root = dir.path().join("orders");
    copy_example(&root);

    let logs = Logs::default();
    let watch = Watch::start(watch_options(&root, &logs)).await;
    let endpoint = watch.endpoint.clone();
    eprintln!(
        "example app: watch ready after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let local = sdk_config(&endpoint).await;
    http_api_accepts_and_refuses_orders(&endpoint).await;
    queue_redelivers_the_bad_order_into_the_dead_letter_queue(&endpoint, &local).await;
    stream_totals_the_order_events(&endpoint, &local).await;
    schedule_fires_the_daily_report(&endpoint).await;
    watch.stop().await.expect("watch ends cleanly");
    let local_done = started.elapsed();

    tokio::task::block_in_place(|| deploy_then_roll_out(&root));
    eprintln!(
        "example app: watch part {:.1} s, whole test {:.1} s",
        local_done.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

/// The example as a user copies it: its manifest, lock file and sources, in
/// a temporary dir (the test edits the copy; the build goes to the shared
/// target dir).
fn copy_example(to: &Path) {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/orders");
    for file in ["Cargo.toml", "Cargo.lock", "src/lib.rs"] {
        copy(&from.join(file), &to.join(file));
    }
    let bins = std::fs::read_dir(from.join("src/bin")).expect("examples/orders/src/bin");
    for entry in bins {
        let path = entry.unwrap().path();
        copy(&path, &to.join("src/bin").join(path.file_name().unwrap()));
    }
}

fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::copy(from, to).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
}

/// An SDK configuration for a local or double endpoint: any credentials,
/// us-east-1, no shared files.
async fn sdk_config(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "AKIDEXAMPLEAPP",
            SECRET_KEY,
            None,
            None,
            "tests",
        ))
        .load()
        .await
}

/// A plain HTTP request; (status, body as JSON).
async fn http(method: &'static str, url: String, body: &'static str) -> (u16, Value) {
    tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut resp = match method {
            "GET" => agent.get(&url).call(),
            _ => agent
                .post(&url)
                .header("content-type", "application/json")
                .send(body),
        }
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let text = resp.body_mut().read_to_string().unwrap();
        let value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{method} {url}: not JSON ({e}): {text}"));
        (resp.status().as_u16(), value)
    })
    .await
    .unwrap()
}

/// The function's finished invocations, from the history API.
async fn invocations(endpoint: &str, function: &str) -> Vec<Value> {
    let url = format!("{endpoint}/_cargo-fn/api/invocations?function={function}");
    match http("GET", url, "").await {
        (200, Value::Array(list)) => list,
        other => panic!("the history API answered {other:?}"),
    }
}

/// The JSON lines the function wrote (tracing's JSON format), with the
/// invocation's status, over all its invocations.
async fn json_logs(endpoint: &str, function: &str) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for inv in invocations(endpoint, function).await {
        let status = inv["status"].as_str().unwrap_or_default().to_string();
        for line in inv["log"].as_array().into_iter().flatten() {
            let line = line.as_str().unwrap_or_default();
            if let Ok(v) = serde_json::from_str::<Value>(line)
                && v["fields"]["message"].is_string()
            {
                out.push((status.clone(), v));
            }
        }
    }
    out
}

/// Waits (a hang guard, not a timing assertion) until `done` holds.
async fn until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let give_up = Instant::now() + Duration::from_secs(120);
    while !done().await {
        assert!(Instant::now() < give_up, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn message(v: &Value) -> &str {
    v["fields"]["message"].as_str().unwrap_or_default()
}

/// Orders through the HTTP API's routes, with a plain HTTP client. (The
/// secret's name under `watch` is checked in `watch.rs`, here on the
/// deployed function.)
async fn http_api_accepts_and_refuses_orders(endpoint: &str) {
    let order = r#"{"order_id": "o-1", "product": "tea", "quantity": 3}"#;
    let (status, body) = http("POST", format!("{endpoint}/orders"), order).await;
    assert_eq!(
        (status, &body["status"]),
        (202, &json!("accepted")),
        "{body}"
    );
    let (status, body) = http("GET", format!("{endpoint}/orders/o-1"), "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["order_id"], "o-1");
    let too_many = r#"{"order_id": "o-9", "product": "tea", "quantity": 500}"#;
    let (status, body) = http("POST", format!("{endpoint}/orders"), too_many).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["error"], "quantity 500 is outside 1-100",
        "MAX_QUANTITY from env"
    );
    // A path no route matches is API Gateway's 404, without an invocation.
    let (status, body) = http("GET", format!("{endpoint}/nothing"), "").await;
    assert_eq!((status, body), (404, json!({"message": "Not Found"})));

    let logs = json_logs(endpoint, "orders-api").await;
    assert_eq!(invocations(endpoint, "orders-api").await.len(), 3);
    assert!(
        logs.iter().all(|(status, _)| status == "success"),
        "{logs:?}"
    );
    let accepted = logs
        .iter()
        .find(|(_, v)| message(v) == "order accepted")
        .unwrap_or_else(|| panic!("no `order accepted` JSON line: {logs:?}"));
    assert_eq!(accepted.1["level"], "INFO");
    assert_eq!(accepted.1["fields"]["order_id"], "o-1");
    assert_eq!(accepted.1["fields"]["quantity"], 3);
    assert!(
        logs.iter().any(|(_, v)| message(v) == "order refused"),
        "{logs:?}"
    );
}

/// Orders through the queue: the good ones are processed once, the bad one
/// is reported in `batchItemFailures`, redelivered after the visibility
/// timeout, and moved to the dead-letter queue after two receives.
async fn queue_redelivers_the_bad_order_into_the_dead_letter_queue(
    endpoint: &str,
    local: &SdkConfig,
) {
    let sqs = aws_sdk_sqs::Client::new(local);
    let url = sqs.get_queue_url().queue_name("orders").send().await;
    let url = url
        .expect("watch created the trigger's queue")
        .queue_url
        .unwrap();
    let dlq = sqs.create_queue().queue_name("orders-dlq").send().await;
    let dlq = dlq.expect("CreateQueue").queue_url.unwrap();
    let dlq_arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    let redrive = json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2}).to_string();
    sqs.set_queue_attributes()
        .queue_url(&url)
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout,
            "1",
        )
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy,
            redrive,
        )
        .send()
        .await
        .expect("SetQueueAttributes");
    let orders = [("o-2", 2), ("o-3", 3), ("o-4", 500)];
    let mut batch = sqs.send_message_batch().queue_url(&url);
    for (id, quantity) in orders {
        let body = json!({"order_id": id, "product": "tea", "quantity": quantity});
        let entry = aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
            .id(id)
            .message_body(body.to_string())
            .build()
            .unwrap();
        batch = batch.entries(entry);
    }
    let sent = batch.send().await.expect("SendMessageBatch");
    assert!(sent.failed.is_empty(), "{:?}", sent.failed);
    let bad_id = sent
        .successful
        .iter()
        .find(|e| e.id == "o-4")
        .unwrap()
        .message_id
        .clone();

    let moved = async || {
        let got = sqs.receive_message().queue_url(&dlq).send().await.unwrap();
        got.messages.unwrap_or_default()
    };
    let mut in_dlq = Vec::new();
    until("the bad order reaches the dead-letter queue", async || {
        in_dlq.extend(moved().await);
        !in_dlq.is_empty()
    })
    .await;
    assert_eq!(in_dlq.len(), 1, "{in_dlq:?}");
    assert_eq!(in_dlq[0].message_id.as_deref(), Some(bad_id.as_str()));
    assert!(in_dlq[0].body().unwrap().contains("\"o-4\""));

    let logs = json_logs(endpoint, "orders-worker").await;
    assert!(
        logs.iter().all(|(status, _)| status == "success"),
        "{logs:?}"
    );
    let processed: Vec<&Value> = logs
        .iter()
        .filter(|(_, v)| message(v) == "order processed")
        .map(|(_, v)| &v["fields"]["order_id"])
        .collect();
    assert_eq!(processed.len(), 2, "each good order once: {logs:?}");
    assert!(processed.contains(&&json!("o-2")) && processed.contains(&&json!("o-3")));
    let failed = logs
        .iter()
        .filter(|(_, v)| v["fields"]["message_id"] == json!(bad_id))
        .count();
    assert_eq!(
        failed, 2,
        "delivered, redelivered, then dead-lettered: {logs:?}"
    );
}

/// Order events put with the Kinesis SDK are totalled per product.
async fn stream_totals_the_order_events(endpoint: &str, local: &SdkConfig) {
    let kinesis = aws_sdk_kinesis::Client::new(local);
    let mut put = kinesis.put_records().stream_name("order-events");
    for (id, product, quantity) in [("o-5", "tea", 2), ("o-6", "coffee", 1), ("o-7", "tea", 4)] {
        let data = json!({"order_id": id, "product": product, "quantity": quantity});
        let entry = aws_sdk_kinesis::types::PutRecordsRequestEntry::builder()
            .data(aws_sdk_kinesis::primitives::Blob::new(data.to_string()))
            .partition_key(product)
            .build()
            .unwrap();
        put = put.records(entry);
    }
    let out = put.send().await.expect("PutRecords");
    assert_eq!(out.failed_record_count, Some(0));

    let mut totals = BTreeMap::new();
    until("the stream consumer totals 7 units", async || {
        totals.clear();
        for (status, v) in json_logs(endpoint, "orders-stream").await {
            assert_eq!(status, "success", "{v}");
            if message(&v) == "batch aggregated" {
                let batch: BTreeMap<String, u64> =
                    serde_json::from_str(v["fields"]["totals"].as_str().unwrap()).unwrap();
                for (product, n) in batch {
                    *totals.entry(product).or_insert(0) += n;
                }
            }
        }
        totals.values().sum::<u64>() >= 7
    })
    .await;
    assert_eq!(
        totals,
        BTreeMap::from([("coffee".into(), 1), ("tea".into(), 6)])
    );
}

/// `cargo fn invoke --trigger` fires the schedule through the running watch.
async fn schedule_fires_the_daily_report(endpoint: &str) {
    let endpoint_arg = endpoint.to_string();
    let out = tokio::task::spawn_blocking(move || {
        cargo_fn()
            .args(["fn", "invoke", "orders-report", "--trigger", "daily-report"])
            .args(["--endpoint", &endpoint_arg])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(answer["response"]["report"], "daily", "{answer}");
    let logs = json_logs(endpoint, "orders-report").await;
    let sent = logs
        .iter()
        .find(|(_, v)| message(v) == "daily report sent")
        .unwrap_or_else(|| panic!("no `daily report sent` line: {logs:?}"));
    assert_eq!(sent.0, "success");
    assert_eq!(sent.1["fields"]["source"], "aws.scheduler");
}

/// cargo-fn run in the example's copy with moto's environment and the
/// shared target dir; (stdout, stderr), panicking on failure. No output may
/// hold the secret's value or the secret key.
fn run_in(root: &Path, aws: &Aws, args: &[&str]) -> (String, String) {
    let mut cmd = cargo_fn();
    cmd.current_dir(root)
        .arg("fn")
        .args(args)
        .env("CARGO_TARGET_DIR", shared_target_dir())
        .env_remove("AWS_PROFILE");
    for (k, v) in aws.env() {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run cargo-fn");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "cargo fn {args:?} failed:\n{stdout}\n{stderr}"
    );
    for text in [&stdout, &stderr] {
        assert!(
            !text.contains(SECRET_VALUE),
            "the secret's value was printed: {text}"
        );
        assert!(
            !text.contains(SECRET_KEY),
            "the secret key was printed: {text}"
        );
    }
    (stdout, stderr)
}

/// Packages the example (dev profile, the shared target dir), deploys it to
/// moto behind `live`, changes the API's env and deploys again as a canary
/// that bakes 2 s, then reads the result back with the SDKs.
fn deploy_then_roll_out(root: &Path) {
    let aws = Aws::start();
    let moto = tokio::runtime::Handle::current().block_on(sdk_config(&aws.moto.url()));
    let rt = tokio::runtime::Handle::current();
    // What the application expects to exist: the queue, the stream, the secret.
    rt.block_on(async {
        let sqs = aws_sdk_sqs::Client::new(&moto);
        sqs.create_queue()
            .queue_name("orders")
            .send()
            .await
            .expect("moto CreateQueue");
        let kinesis = aws_sdk_kinesis::Client::new(&moto);
        let stream = kinesis
            .create_stream()
            .stream_name("order-events")
            .shard_count(1);
        stream.send().await.expect("moto CreateStream");
    });
    let secret = json!({"Name": "orders/payment-api-key", "SecretString": SECRET_VALUE});
    let (status, body) = json_call(
        aws.moto.port,
        "secretsmanager",
        "secretsmanager.CreateSecret",
        &secret,
    );
    assert_eq!(
        status,
        200,
        "CreateSecret: {}",
        String::from_utf8_lossy(&body)
    );

    let started = Instant::now();
    let (_, err) = run_in(root, &aws, &["package", "--profile", "dev"]);
    eprintln!(
        "example app: package {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(err.matches("Packaged").count(), 4, "{err}");
    let (out, _) = run_in(
        root,
        &aws,
        &[
            "deploy",
            "--no-build",
            "--alias",
            "live",
            "--output",
            "json",
        ],
    );
    let first: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let url = first["functions"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|f| f["triggers"]["api"].as_str().map(str::to_string));
    assert!(
        url.is_some_and(|u| u.contains("execute-api")),
        "the invoke URL: {first}"
    );
    for f in first["functions"].as_array().unwrap() {
        assert_eq!(f["version"], "1", "{first}");
    }

    // A change of the API's configuration, rolled out. On AWS only orders-api
    // would get a version; moto keeps no `LoggingConfig` (deploy.rs), so the
    // JSON log format reads as a change of each function and all four take
    // part in the release.
    let manifest = root.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let secrets = "secrets = { PAYMENT_API_KEY = \"orders/payment-api-key\" }\n";
    assert!(text.contains(secrets));
    let text = text.replace(
        secrets,
        &format!("{secrets}env = {{ MAX_QUANTITY = \"50\" }}\n"),
    );
    std::fs::write(&manifest, text).unwrap();
    let (out, err) = run_in(
        root,
        &aws,
        &[
            "deploy",
            "--no-build",
            "--alias",
            "live",
            "--canary",
            "10",
            "--bake",
            "2s",
            "--poll",
            "1s",
            "--output",
            "json",
        ],
    );
    let events: Vec<Value> = out
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("event").is_some())
        .collect();
    let steps: Vec<f64> = events
        .iter()
        .filter(|e| e["event"] == "step")
        .filter_map(|e| e["percent"].as_f64())
        .collect();
    assert_eq!(steps, vec![10.0, 100.0], "{out}\n{err}");
    assert_eq!(
        events.iter().filter(|e| e["event"] == "done").count(),
        1,
        "{out}"
    );
    rt.block_on(read_back(&moto));
}

/// What AWS (moto) holds after the rollout, read with the SDKs.
async fn read_back(moto: &SdkConfig) {
    let lambda = aws_sdk_lambda::Client::new(moto);
    for function in [
        "orders-api",
        "orders-worker",
        "orders-stream",
        "orders-report",
    ] {
        let latest = "2";
        let versions = lambda
            .list_versions_by_function()
            .function_name(function)
            .send()
            .await;
        let versions: Vec<String> = versions
            .expect("ListVersionsByFunction")
            .versions()
            .iter()
            .filter_map(|v| v.version.clone())
            .collect();
        assert_eq!(
            versions.last().map(String::as_str),
            Some(latest),
            "{function}: {versions:?}"
        );
        let alias = lambda
            .get_alias()
            .function_name(function)
            .name("live")
            .send()
            .await;
        let alias = alias.expect("GetAlias");
        assert_eq!(
            alias.function_version(),
            Some(latest),
            "{function}: {alias:?}"
        );
        let weights = alias
            .routing_config()
            .and_then(|r| r.additional_version_weights());
        assert!(
            weights.is_none_or(|w| w.is_empty()),
            "all traffic moved: {alias:?}"
        );
    }
    let config = lambda
        .get_function_configuration()
        .function_name("orders-api")
        .qualifier("live")
        .send()
        .await
        .expect("GetFunctionConfiguration");
    let env = config
        .environment()
        .and_then(|e| e.variables())
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        env.get("MAX_QUANTITY").map(String::as_str),
        Some("50"),
        "{env:?}"
    );
    assert_eq!(
        env.get("PAYMENT_API_KEY").map(String::as_str),
        Some("orders/payment-api-key"),
        "the secret travels by name: {env:?}"
    );
    assert!(!format!("{config:?}").contains(SECRET_VALUE));

    let alias_arn = |f: &str| format!("arn:aws:lambda:us-east-1:{ACCOUNT}:function:{f}:live");
    for (function, source) in [
        (
            "orders-worker",
            format!("arn:aws:sqs:us-east-1:{ACCOUNT}:orders"),
        ),
        (
            "orders-stream",
            format!("arn:aws:kinesis:us-east-1:{ACCOUNT}:stream/order-events"),
        ),
    ] {
        let list = lambda
            .list_event_source_mappings()
            .function_name(alias_arn(function))
            .send()
            .await;
        let list = list.expect("ListEventSourceMappings");
        let sources: Vec<&str> = list
            .event_source_mappings()
            .iter()
            .filter_map(|m| m.event_source_arn())
            .collect();
        assert_eq!(sources, [source.as_str()], "{function}: {list:?}");
    }

    let scheduler = aws_sdk_scheduler::Client::new(moto);
    let schedule = scheduler
        .get_schedule()
        .name("orders-report.daily-report")
        .send()
        .await;
    let schedule = schedule.expect("GetSchedule");
    assert_eq!(schedule.schedule_expression(), Some("cron(0 6 * * ? *)"));
    assert_eq!(
        schedule.schedule_expression_timezone(),
        Some("Europe/Paris")
    );
    assert_eq!(
        schedule.target().map(|t| t.arn()),
        Some(alias_arn("orders-report").as_str())
    );

    let apigw = aws_sdk_apigatewayv2::Client::new(moto);
    let apis = apigw.get_apis().send().await.expect("GetApis");
    let api = apis
        .items()
        .iter()
        .find(|a| a.name() == Some("orders-api-api"));
    let api = api.unwrap_or_else(|| panic!("no API orders-api-api: {apis:?}"));
    let routes = apigw
        .get_routes()
        .api_id(api.api_id().unwrap())
        .send()
        .await
        .expect("GetRoutes");
    let mut keys: Vec<&str> = routes
        .items()
        .iter()
        .filter_map(|r| r.route_key())
        .collect();
    keys.sort();
    assert_eq!(keys, ["GET /orders/{id}", "POST /orders"]);
}
