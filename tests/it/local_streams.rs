//! Stream triggers under `cargo fn watch`: an unmodified aws-sdk-kinesis
//! producer feeds the local Kinesis endpoint; the poller keeps per-key order
//! while running several batches of one shard at once (parallelization
//! factor), bisects a failing batch down to the poison record and sends
//! AWS's failure record to the local on-failure queue; a DynamoDB stream
//! trigger is fed through the fire API and retried to its quota. Everything
//! is asserted from the function's own record of its invocations.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_sdk_kinesis::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType};
use cargo_fn::config::Trigger;
use cargo_fn::config::triggers::{StartingPosition, StreamTrigger, TriggerKind};
use cargo_fn::emulator::LOCAL_ACCOUNT_ID;
use cargo_fn::ui::Ui;
use cargo_fn::watch::WatchOptions;
use serde_json::{Value, json};

use crate::support::emulator::{Logs, MAX_EVENT, Polled, polled};
use crate::support::tempdir;
use crate::support::watch::{Watch, watch_options};

const ACCOUNT: &str = "123456789012";

/// A function that records every invocation in its own file under
/// `$BATCH_DIR` (start and end time in ns, the event), sleeps a little so
/// batches overlap when they can, and fails any batch holding a record
/// whose data (Kinesis) or `NewImage.Message` (DynamoDB) is `poison`.
fn stream_function(dir: &Path) {
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            r#"[workspace]

[package]
name = "streamfn"
version = "0.1.0"
edition = "2021"

[package.metadata.fn]
timeout = 30

[[package.metadata.fn.triggers]]
type = "kinesis"
name = "ordered"
stream = "arn:aws:kinesis:us-east-1:{ACCOUNT}:stream/ordered"
batch-size = 10
parallelization-factor = 10
starting-position = "TRIM_HORIZON"

[[package.metadata.fn.triggers]]
type = "kinesis"
name = "bisect"
stream = "arn:aws:kinesis:us-east-1:{ACCOUNT}:stream/bisect"
local-shards = 2
batch-size = 8
maximum-batching-window = 1
bisect-batch-on-function-error = true
maximum-retry-attempts = 1
on-failure = "arn:aws:sqs:us-east-1:{ACCOUNT}:bisect-failures"

[[package.metadata.fn.triggers]]
type = "dynamodb"
name = "table"
stream = "arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/items/stream/2026-01-01T00:00:00.000"
maximum-retry-attempts = 2
on-failure = "arn:aws:sqs:us-east-1:{ACCOUNT}:table-failures"

[dependencies]
lambda_runtime = "1.5"
serde_json = "1"
tokio = {{ version = "1", features = ["macros", "rt-multi-thread", "time"] }}
"#
        ),
    )
    .unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/functions/Cargo.lock"),
        dir.join("Cargo.lock"),
    )
    .unwrap();
    std::fs::write(
        dir.join("src/main.rs"),
        r#"use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};
use std::time::{SystemTime, UNIX_EPOCH};

fn now_ns() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos()
}

fn poisoned(r: &Value) -> bool {
    r["kinesis"]["data"] == "cG9pc29u" || r["dynamodb"]["NewImage"]["Message"]["S"] == "poison"
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let dir = std::env::var("BATCH_DIR").expect("BATCH_DIR");
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let dir = dir.clone();
        async move {
            let start = now_ns();
            tokio::time::sleep(std::time::Duration::from_millis(30)).await;
            let records = event.payload["Records"].as_array().cloned().unwrap_or_default();
            let failed = records.iter().any(poisoned);
            let line = json!({
                "start": start.to_string(),
                "end": now_ns().to_string(),
                "failed": failed,
                "event": event.payload,
            });
            let path = format!("{dir}/{}.json", event.context.request_id);
            std::fs::write(format!("{path}.tmp"), line.to_string()).unwrap();
            std::fs::rename(format!("{path}.tmp"), path).unwrap();
            if failed {
                return Err(Error::from("poison record"));
            }
            Ok::<Value, Error>(json!({}))
        }
    }))
    .await
}
"#,
    )
    .unwrap();
}

/// One invocation as the function recorded it.
#[derive(Debug, Clone)]
struct Call {
    start: u128,
    end: u128,
    event: Value,
}

impl Call {
    fn source(&self) -> &str {
        self.event["Records"][0]["eventSourceARN"]
            .as_str()
            .unwrap_or("")
    }
    fn kinesis_data(&self) -> Vec<(String, String)> {
        let e: aws_lambda_events::event::kinesis::KinesisEvent =
            serde_json::from_value(self.event.clone()).expect("a KinesisEvent");
        e.records
            .iter()
            .map(|r| {
                (
                    r.kinesis.partition_key.clone(),
                    String::from_utf8(r.kinesis.data.0.clone()).unwrap(),
                )
            })
            .collect()
    }
}

fn calls(dir: &Path, stream: &str) -> Vec<Call> {
    let mut out: Vec<Call> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let p = e.ok()?.path();
            (p.extension()? == "json").then_some(p)
        })
        .map(|p| {
            let v: Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
            Call {
                start: v["start"].as_str().unwrap().parse().unwrap(),
                end: v["end"].as_str().unwrap().parse().unwrap(),
                event: v["event"].clone(),
            }
        })
        .filter(|c| c.source().contains(stream))
        .collect();
    out.sort_by_key(|c| c.start);
    out
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..1200 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("gave up waiting (2 minutes) for {what}");
}

fn kinesis_client(endpoint: &str) -> aws_sdk_kinesis::Client {
    kinesis_client_in(endpoint, "us-east-1")
}

fn kinesis_client_in(endpoint: &str, region: &str) -> aws_sdk_kinesis::Client {
    let conf = aws_sdk_kinesis::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(region.to_string()))
        .credentials_provider(Credentials::new("AKIDLOCAL", "local", None, None, "tests"))
        .build();
    aws_sdk_kinesis::Client::from_conf(conf)
}

fn sqs_client(endpoint: &str) -> aws_sdk_sqs::Client {
    let conf = aws_sdk_sqs::Config::builder()
        .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_sdk_sqs::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "AKIDLOCAL",
            "local",
            None,
            None,
            "tests",
        ))
        .build();
    aws_sdk_sqs::Client::from_conf(conf)
}

/// The AWS CLI of the tools venv against the local Kinesis endpoint, with
/// the variable watch prints; its JSON answer.
async fn aws_cli(endpoint: &str, args: &[&str]) -> Value {
    let aws = crate::support::tools_dir().join("venv/bin/aws");
    assert!(
        aws.exists(),
        "the AWS CLI is not installed at {}: run `cargo xtask setup`",
        aws.display()
    );
    let endpoint = endpoint.to_string();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(aws)
            .arg("kinesis")
            .args(&args)
            .args(["--output", "json"])
            .env("AWS_ENDPOINT_URL_KINESIS", &endpoint)
            .env("AWS_ACCESS_KEY_ID", "AKIDLOCALTEST")
            .env("AWS_SECRET_ACCESS_KEY", "local-test-secret")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_CONFIG_FILE", "/nonexistent/aws-config")
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                "/nonexistent/aws-credentials",
            )
            .output()
            .expect("running aws")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "aws kinesis failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    if stdout.trim().is_empty() {
        return Value::Null;
    }
    serde_json::from_str(&stdout).unwrap()
}

/// The failure records in a local queue (received, then deleted).
async fn failure_records(sqs: &aws_sdk_sqs::Client, queue: &str, want: usize) -> Vec<Value> {
    let url = sqs
        .get_queue_url()
        .queue_name(queue)
        .send()
        .await
        .expect("the on-failure queue exists")
        .queue_url
        .unwrap();
    let mut out = Vec::new();
    for _ in 0..60 {
        let got = sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .wait_time_seconds(2)
            .send()
            .await
            .unwrap();
        for m in got.messages() {
            out.push(serde_json::from_str(m.body().unwrap()).unwrap());
            sqs.delete_message()
                .queue_url(&url)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
        if out.len() >= want {
            break;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kinesis_and_dynamodb_stream_triggers_run_locally_with_lambda_semantics() {
    let dir = tempdir();
    let root: PathBuf = dir.path().to_path_buf();
    stream_function(&root.join("fn"));
    let batches = root.join("batches");
    std::fs::create_dir_all(&batches).unwrap();
    let logs = Logs::default();
    let opts = WatchOptions {
        extra_env: BTreeMap::from([(
            "BATCH_DIR".to_string(),
            batches.to_string_lossy().into_owned(),
        )]),
        ..watch_options(&root.join("fn"), &logs)
    };
    let watch = Watch::start(opts).await;
    let endpoint = watch.endpoint.clone();
    let kinesis = kinesis_client(&endpoint);
    let sqs = sqs_client(&endpoint);

    // The trigger's streams exist at start, with their configured shards.
    let listed = kinesis.list_streams().send().await.unwrap();
    let mut names = listed.stream_names().to_vec();
    names.sort();
    assert_eq!(names, vec!["bisect", "ordered"]);
    let other = kinesis.describe_stream().stream_name("nope").send().await;
    let err = other.expect_err("an unknown stream");
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_resource_not_found_exception()),
        "{err:?}"
    );
    let shards = kinesis
        .list_shards()
        .stream_name("bisect")
        .send()
        .await
        .unwrap();
    assert_eq!(shards.shards().len(), 2);

    // The AWS CLI: create a stream, put a record, read it back.
    aws_cli(
        &endpoint,
        &[
            "create-stream",
            "--stream-name",
            "cli",
            "--shard-count",
            "3",
        ],
    )
    .await;
    let summary = aws_cli(
        &endpoint,
        &["describe-stream-summary", "--stream-name", "cli"],
    )
    .await;
    assert_eq!(summary["StreamDescriptionSummary"]["OpenShardCount"], 3);
    let put = aws_cli(
        &endpoint,
        &[
            "put-record",
            "--stream-name",
            "cli",
            "--partition-key",
            "user-1",
            "--data",
            "hello",
        ],
    )
    .await;
    let shard = put["ShardId"].as_str().unwrap().to_string();
    let it = aws_cli(
        &endpoint,
        &[
            "get-shard-iterator",
            "--stream-name",
            "cli",
            "--shard-id",
            &shard,
            "--shard-iterator-type",
            "TRIM_HORIZON",
        ],
    )
    .await;
    let got = aws_cli(
        &endpoint,
        &[
            "get-records",
            "--shard-iterator",
            it["ShardIterator"].as_str().unwrap(),
        ],
    )
    .await;
    // awscli (v1, as the tools venv installs it) base64-encodes blobs itself.
    assert_eq!(got["Records"][0]["Data"], "aGVsbG8=");
    assert_eq!(got["Records"][0]["SequenceNumber"], put["SequenceNumber"]);
    assert_eq!(got["Records"][0]["PartitionKey"], "user-1");

    // 1,000 records over 100 partition keys, parallelization factor 10.
    let mut expected: HashMap<String, Vec<String>> = HashMap::new();
    for chunk in 0..2 {
        let mut req = kinesis.put_records().stream_name("ordered");
        for i in chunk * 500..(chunk + 1) * 500 {
            let key = format!("key-{}", i % 100);
            let data = format!("{key}/{i:04}");
            expected.entry(key.clone()).or_default().push(data.clone());
            req = req.records(
                PutRecordsRequestEntry::builder()
                    .partition_key(key)
                    .data(Blob::new(data))
                    .build()
                    .unwrap(),
            );
        }
        let out = req.send().await.expect("PutRecords");
        assert_eq!(out.failed_record_count(), Some(0));
        assert_eq!(out.records().len(), 500);
    }
    let count = || {
        calls(&batches, "stream/ordered")
            .iter()
            .map(|c| c.event["Records"].as_array().map_or(0, Vec::len))
            .sum::<usize>()
    };
    wait_for("1,000 records to reach the function", || count() >= 1000).await;
    let ordered = calls(&batches, "stream/ordered");
    assert_eq!(count(), 1000, "each record delivered once");
    let mut seen: HashMap<String, Vec<String>> = HashMap::new();
    for c in &ordered {
        assert!(c.event["Records"].as_array().unwrap().len() <= 10);
        for (key, data) in c.kinesis_data() {
            seen.entry(key).or_default().push(data);
        }
    }
    assert_eq!(seen.len(), 100);
    for (key, data) in &seen {
        assert_eq!(data, &expected[key], "records of {key} in order");
    }
    let overlapping = ordered.iter().enumerate().any(|(i, a)| {
        ordered[i + 1..]
            .iter()
            .any(|b| a.start < b.end && b.start < a.end)
    });
    assert!(
        overlapping,
        "with parallelization factor 10, batches of the one shard ran at once"
    );

    // Bisect down to the poison record; the on-failure queue gets AWS's record.
    let mut req = kinesis.put_records().stream_name("bisect");
    for i in 0..8 {
        let data = if i == 5 {
            "poison".to_string()
        } else {
            format!("ok-{i}")
        };
        req = req.records(
            PutRecordsRequestEntry::builder()
                .partition_key("one-key")
                // One shard of the two, so the eight records form one batch.
                .explicit_hash_key("0")
                .data(Blob::new(data))
                .build()
                .unwrap(),
        );
    }
    let put = req.send().await.unwrap();
    let poison_seq = put.records()[5].sequence_number().unwrap().to_string();
    let failures = failure_records(&sqs, "bisect-failures", 1).await;
    assert_eq!(failures.len(), 1, "one failure record: {failures:?}");
    let f = &failures[0];
    assert_eq!(f["requestContext"]["condition"], "RetryAttemptsExhausted");
    // The function's and the local stream's account, not the configured one.
    assert_eq!(
        f["requestContext"]["functionArn"],
        format!("arn:aws:lambda:us-east-1:{LOCAL_ACCOUNT_ID}:function:streamfn")
    );
    assert_eq!(f["responseContext"]["functionError"], "Unhandled");
    assert_eq!(f["version"], "1.0");
    let info = &f["KinesisBatchInfo"];
    assert_eq!(info["batchSize"], 1);
    assert_eq!(info["startSequenceNumber"], poison_seq);
    assert_eq!(info["endSequenceNumber"], poison_seq);
    assert_eq!(info["shardId"], "shardId-000000000000");
    assert_eq!(
        info["streamArn"],
        format!("arn:aws:kinesis:us-east-1:{LOCAL_ACCOUNT_ID}:stream/bisect")
    );
    wait_for("the batch after the poison record", || {
        calls(&batches, "stream/bisect").len() >= 8
    })
    .await;
    let sizes: Vec<usize> = calls(&batches, "stream/bisect")
        .iter()
        .map(|c| c.kinesis_data().len())
        .collect();
    // 8 -> 4 + 4 -> (first 4 ok) 2 + 2 -> 1 + 1 -> the poison retried once -> the last 2.
    assert_eq!(sizes, vec![8, 4, 4, 2, 1, 1, 1, 2]);

    // DynamoDB: fire the built-in INSERT example, then a poison record that
    // is retried to the quota and reported.
    let fire = |body: Option<Value>| {
        let url = format!("{endpoint}/_cargo-fn/api/triggers/streamfn/table/fire");
        tokio::task::spawn_blocking(move || {
            let agent = ureq::Agent::new_with_defaults();
            let mut resp = match body {
                Some(b) => agent.post(&url).send(b.to_string()),
                None => agent.post(&url).send_empty(),
            }
            .expect("fire");
            serde_json::from_str::<Value>(&resp.body_mut().read_to_string().unwrap()).unwrap()
        })
    };
    let out = fire(None).await.unwrap();
    assert_eq!(out["processed"], true, "{out}");
    let ddb = calls(&batches, "table/items/stream");
    assert_eq!(ddb.len(), 1);
    let e: aws_lambda_events::event::dynamodb::Event =
        serde_json::from_value(ddb[0].event.clone()).expect("a DynamoDB event");
    assert_eq!(e.records[0].event_name, "INSERT");
    assert_eq!(
        e.records[0].change.sequence_number.as_deref(),
        out["records"][0]["sequenceNumber"].as_str()
    );
    let poison = json!([
        {"eventName": "MODIFY", "dynamodb": {"Keys": {"Id": {"N": "7"}},
            "NewImage": {"Id": {"N": "7"}, "Message": {"S": "poison"}}}},
        {"eventName": "INSERT", "dynamodb": {"Keys": {"Id": {"N": "8"}},
            "NewImage": {"Id": {"N": "8"}, "Message": {"S": "fine"}}}}
    ]);
    let out = fire(Some(poison)).await.unwrap();
    assert_eq!(out["processed"], true, "{out}");
    let ddb = calls(&batches, "table/items/stream");
    assert_eq!(ddb.len(), 4, "the first batch and the poison batch 3 times");
    for c in &ddb[1..] {
        let e: aws_lambda_events::event::dynamodb::Event =
            serde_json::from_value(c.event.clone()).unwrap();
        assert_eq!(e.records.len(), 2);
    }
    let failures = failure_records(&sqs, "table-failures", 1).await;
    assert_eq!(failures.len(), 1);
    let f = &failures[0];
    assert_eq!(f["requestContext"]["approximateInvokeCount"], 3);
    assert_eq!(f["DDBStreamBatchInfo"]["batchSize"], 2);
    assert_eq!(
        f["DDBStreamBatchInfo"]["startSequenceNumber"],
        out["records"][0]["sequenceNumber"]
    );

    // Firing a kinesis trigger puts the payload as one record.
    let fire_kinesis = {
        let url = format!("{endpoint}/_cargo-fn/api/triggers/streamfn/ordered/fire");
        tokio::task::spawn_blocking(move || {
            let mut resp = ureq::Agent::new_with_defaults()
                .post(&url)
                .send(r#"{"hello":"fired"}"#)
                .expect("fire");
            serde_json::from_str::<Value>(&resp.body_mut().read_to_string().unwrap()).unwrap()
        })
    };
    let out = fire_kinesis.await.unwrap();
    assert_eq!(out["processed"], true, "{out}");
    let key = out["records"][0]["partitionKey"]
        .as_str()
        .unwrap()
        .to_string();
    let fired: Vec<(String, String)> = calls(&batches, "stream/ordered")
        .iter()
        .flat_map(|c| c.kinesis_data())
        .filter(|(k, _)| *k == key)
        .collect();
    assert_eq!(
        fired,
        vec![(key.clone(), r#"{"hello":"fired"}"#.to_string())]
    );

    watch.stop().await.unwrap();
}

/// The emulator serving the `poller` fixture as `stream-fn` in `region`,
/// with the local services and `triggers` started, as watch starts them.
struct Local {
    emulator: cargo_fn::emulator::Emulator,
    triggers: cargo_fn::local::LocalTriggers,
    logs: Logs,
    kinesis: aws_sdk_kinesis::Client,
    sqs: aws_sdk_sqs::Client,
}

const STREAM_FN: &str = "stream-fn";

async fn serve(region: &str, triggers: Vec<Trigger>) -> Local {
    let logs = Logs::default();
    let local = cargo_fn::local::LocalTriggers::new();
    let mut opts = crate::support::emulator::options(&logs);
    opts.region = region.to_string();
    opts.routes = Some(local.router());
    opts.front = Some(local.front());
    let emulator = cargo_fn::emulator::Emulator::start(
        opts,
        vec![crate::support::emulator::spec(STREAM_FN, "poller")],
    )
    .await
    .expect("emulator starts");
    local
        .start(
            &emulator,
            &[(STREAM_FN.to_string(), triggers)],
            Ui::silent(),
        )
        .expect("triggers start");
    let endpoint = emulator.endpoint();
    Local {
        kinesis: kinesis_client_in(&endpoint, region),
        sqs: sqs_client(&endpoint),
        emulator,
        triggers: local,
        logs,
    }
}

/// A stream trigger as the configuration gives it (its ARN naming the
/// real account), retried `retries` times, failures to `on_failure`.
fn stream_trigger(name: &str, kind: &str, arn: &str, on_failure: Option<&str>) -> Trigger {
    let t = StreamTrigger {
        stream: arn.to_string(),
        starting_position: StartingPosition::TrimHorizon,
        starting_position_timestamp: None,
        batch_size: Some(100),
        maximum_batching_window: Some(1),
        parallelization_factor: None,
        bisect_batch_on_function_error: None,
        maximum_retry_attempts: Some(0),
        maximum_record_age: None,
        tumbling_window: None,
        on_failure: on_failure.map(str::to_string),
        report_batch_item_failures: false,
        filters: Vec::new(),
        enabled: true,
        local_shards: None,
    };
    Trigger {
        name: name.to_string(),
        kind: if kind == "kinesis" {
            TriggerKind::Kinesis(t)
        } else {
            TriggerKind::DynamoDb(t)
        },
    }
}

/// `POST /_cargo-fn/api/triggers/stream-fn/{name}/fire`: (status, answer).
async fn fire(endpoint: &str, name: &str, body: Value) -> (u16, Value) {
    let url = format!("{endpoint}/_cargo-fn/api/triggers/{STREAM_FN}/{name}/fire");
    tokio::task::spawn_blocking(move || {
        let mut resp = ureq::post(&url)
            .config()
            .http_status_as_error(false)
            .build()
            .send(body.to_string())
            .expect("fire");
        let text = resp.body_mut().read_to_string().unwrap();
        (resp.status().as_u16(), serde_json::from_str(&text).unwrap())
    })
    .await
    .unwrap()
}

async fn until_polled(logs: &Logs, records: usize) -> Vec<Polled> {
    wait_for(&format!("{records} records to reach the function"), || {
        polled(logs).iter().map(|p| p.records).sum::<usize>() >= records
    })
    .await;
    polled(logs)
}

#[tokio::test(flavor = "multi_thread")]
async fn stream_arns_records_and_failure_records_name_the_functions_account_and_region() {
    let local = serve(
        "eu-west-1",
        vec![
            stream_trigger(
                "clicks",
                "kinesis",
                &format!("arn:aws:kinesis:us-east-1:{ACCOUNT}:stream/clicks"),
                Some(&format!("arn:aws:sqs:us-east-1:{ACCOUNT}:clicks-failures")),
            ),
            stream_trigger(
                "items",
                "dynamodb",
                &format!(
                    "arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/items/stream/2026-01-01T00:00:00.000"
                ),
                Some(&format!("arn:aws:sqs:us-east-1:{ACCOUNT}:items-failures")),
            ),
        ],
    )
    .await;
    let region_account = format!("eu-west-1:{LOCAL_ACCOUNT_ID}");
    let stream_arn = format!("arn:aws:kinesis:{region_account}:stream/clicks");
    let described = local
        .kinesis
        .describe_stream()
        .stream_name("clicks")
        .send()
        .await
        .unwrap();
    assert_eq!(
        described.stream_description().unwrap().stream_arn(),
        stream_arn
    );
    let listed = local.kinesis.list_streams().send().await.unwrap();
    assert_eq!(listed.stream_summaries()[0].stream_arn(), stream_arn);

    // A poison record: one invocation, then the failure record.
    local
        .kinesis
        .put_record()
        .stream_name("clicks")
        .partition_key("user-1")
        .data(Blob::new("poison"))
        .send()
        .await
        .unwrap();
    let seen = until_polled(&local.logs, 1).await;
    let function_arn = seen[0].arn.clone();
    assert_eq!(
        function_arn,
        format!("arn:aws:lambda:{region_account}:function:{STREAM_FN}")
    );
    assert_eq!(seen[0].region, "eu-west-1");
    assert_eq!(seen[0].source, stream_arn);
    let f = &failure_records(&local.sqs, "clicks-failures", 1).await[0];
    assert_eq!(f["requestContext"]["functionArn"], function_arn);
    assert_eq!(f["KinesisBatchInfo"]["streamArn"], stream_arn);

    // DynamoDB: the fired record and its failure record, in the same scope.
    let poison = json!({"eventName": "MODIFY", "dynamodb": {"Keys": {"Id": {"N": "7"}},
        "NewImage": {"Id": {"N": "7"}, "Message": {"S": "poison"}}}});
    let (status, out) = fire(&local.emulator.endpoint(), "items", poison).await;
    assert_eq!(status, 200, "{out}");
    let table_stream =
        format!("arn:aws:dynamodb:{region_account}:table/items/stream/2026-01-01T00:00:00.000");
    assert_eq!(out["stream"], table_stream);
    let seen = until_polled(&local.logs, 2).await;
    assert_eq!(seen[1].arn, function_arn);
    assert_eq!(seen[1].region, "eu-west-1");
    assert_eq!(seen[1].source, table_stream);
    let f = &failure_records(&local.sqs, "items-failures", 1).await[0];
    assert_eq!(f["requestContext"]["functionArn"], function_arn);
    assert_eq!(f["DDBStreamBatchInfo"]["streamArn"], table_stream);
    local.triggers.stop();
    local.emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kinesis_and_dynamodb_poller_events_stay_within_the_synchronous_payload_limit() {
    let local = serve(
        "us-east-1",
        vec![
            stream_trigger(
                "big",
                "kinesis",
                &format!("arn:aws:kinesis:us-east-1:{ACCOUNT}:stream/big"),
                None,
            ),
            stream_trigger(
                "rows",
                "dynamodb",
                &format!(
                    "arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/rows/stream/2026-01-01T00:00:00.000"
                ),
                None,
            ),
        ],
    )
    .await;
    // Nine records of 524,287 bytes, one partition key: 4.7 MB of data
    // (under PutRecords' 5 MiB), 6.3 MB once base64 in an event.
    let mut req = local.kinesis.put_records().stream_name("big");
    for _ in 0..9 {
        req = req.records(
            PutRecordsRequestEntry::builder()
                .partition_key("k")
                .data(Blob::new(vec![b'x'; 524_287]))
                .build()
                .unwrap(),
        );
    }
    req.send().await.expect("PutRecords under 5 MiB");
    let kinesis = until_polled(&local.logs, 9).await;
    // DynamoDB: ten records of 700 KB images in one fire (7 MB).
    let row = |i: usize| {
        json!({"eventName": "INSERT", "dynamodb": {"Keys": {"Id": {"N": i.to_string()}},
            "NewImage": {"Id": {"N": i.to_string()}, "Blob": {"S": "r".repeat(700_000)}}}})
    };
    let (status, out) = fire(
        &local.emulator.endpoint(),
        "rows",
        Value::Array((0..10).map(row).collect()),
    )
    .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["processed"], true, "{out}");
    let all = until_polled(&local.logs, 19).await;
    let largest = all.iter().map(|p| p.bytes).max().unwrap();
    eprintln!(
        "stream events (records, bytes): {:?}; largest {largest}",
        all.iter().map(|p| (p.records, p.bytes)).collect::<Vec<_>>()
    );
    assert!(largest <= MAX_EVENT, "an event of {largest} bytes");
    assert_eq!(
        kinesis.iter().map(|p| p.records).collect::<Vec<_>>(),
        vec![8, 1],
        "the batch is cut by its size as sent"
    );
    // One record that no event could carry is refused where it enters.
    let huge = json!({"eventName": "INSERT", "dynamodb": {"Keys": {"Id": {"N": "1"}},
        "NewImage": {"Id": {"N": "1"}, "Blob": {"S": "r".repeat(6_500_000)}}}});
    let (status, out) = fire(&local.emulator.endpoint(), "rows", huge).await;
    assert_eq!(status, 400, "{out}");
    assert!(
        out["message"].as_str().unwrap().contains("payload limit"),
        "{out}"
    );
    assert_eq!(polled(&local.logs).len(), all.len(), "nothing invoked");
    local.triggers.stop();
    local.emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kinesis_refuses_sequence_numbers_it_never_issued_and_answers_oversized_requests_in_its_shape()
 {
    let local = serve("us-east-1", Vec::new()).await;
    let k = &local.kinesis;
    k.create_stream()
        .stream_name("wire")
        .shard_count(2)
        .send()
        .await
        .unwrap();
    let put = k
        .put_record()
        .stream_name("wire")
        .partition_key("k")
        .explicit_hash_key("0")
        .data(Blob::new("one"))
        .send()
        .await
        .unwrap();
    let seq = put.sequence_number().to_string();
    assert_eq!(put.shard_id(), "shardId-000000000000");
    let iterator = |kind: ShardIteratorType, shard: &str, seq: &str| {
        k.get_shard_iterator()
            .stream_name("wire")
            .shard_id(shard)
            .shard_iterator_type(kind)
            .starting_sequence_number(seq)
            .send()
    };
    // A number shard 0 never issued (its tenth record), and shard 0's
    // number on shard 1: AWS's 400 InvalidArgumentException, no iterator.
    let never = format!("{}{:050}", &seq[..6], 9);
    for kind in [
        ShardIteratorType::AfterSequenceNumber,
        ShardIteratorType::AtSequenceNumber,
    ] {
        for (shard, number) in [
            ("shardId-000000000000", never.as_str()),
            ("shardId-000000000001", seq.as_str()),
        ] {
            let err = iterator(kind.clone(), shard, number)
                .await
                .expect_err("an iterator for a number this shard never issued");
            assert!(
                err.as_service_error()
                    .is_some_and(|e| e.is_invalid_argument_exception()),
                "{err:?}"
            );
        }
    }
    // The connection still serves: after the last record, nothing yet.
    let it = iterator(
        ShardIteratorType::AfterSequenceNumber,
        "shardId-000000000000",
        &seq,
    )
    .await
    .unwrap();
    let got = k
        .get_records()
        .shard_iterator(it.shard_iterator().unwrap())
        .send()
        .await
        .unwrap();
    assert!(got.records().is_empty());

    // Six 1 MiB records (8 MiB on the wire): Kinesis's own error.
    let mut req = k.put_records().stream_name("wire");
    for _ in 0..6 {
        req = req.records(
            PutRecordsRequestEntry::builder()
                .partition_key("k")
                .data(Blob::new(vec![b'x'; 1024 * 1024]))
                .build()
                .unwrap(),
        );
    }
    let err = req.send().await.expect_err("6 MiB of records is refused");
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_invalid_argument_exception()),
        "{err:?}"
    );
    local.emulator.shutdown().await;
}
