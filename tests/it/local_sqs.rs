//! The local SQS endpoint and the SQS poller, driven as users drive them:
//! an unmodified `aws-sdk-sqs` client (and the AWS CLI) pointed at the
//! emulator's address, a real `lambda_runtime` function (the `sqs` fixture)
//! invoked by the poller, events checked against `aws_lambda_events`.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsEvent;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_sqs::primitives::Blob;
use aws_sdk_sqs::types::{
    MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName,
    SendMessageBatchRequestEntry,
};
use cargo_fn::config::Trigger;
use cargo_fn::config::triggers::{SqsTrigger, TriggerKind};
use cargo_fn::emulator::Emulator;
use cargo_fn::local::LocalTriggers;
use cargo_fn::ui::Ui;
use md5::{Digest, Md5};

use crate::support::emulator::{Logs, MAX_EVENT, options, polled, spec};
use crate::support::watch::Watch;

const FUNCTION: &str = "sqs-fn";

fn sqs_trigger(name: &str, queue: &str, batch: u32, concurrency: Option<u32>) -> Trigger {
    Trigger {
        name: name.to_string(),
        kind: TriggerKind::Sqs(SqsTrigger {
            queue: queue.to_string(),
            batch_size: Some(batch),
            maximum_batching_window: Some(1),
            maximum_concurrency: concurrency,
            report_batch_item_failures: true,
            filters: Vec::new(),
            enabled: true,
        }),
    }
}

struct Local {
    emulator: Emulator,
    triggers: LocalTriggers,
    client: Client,
    logs: Logs,
}

/// The emulator serving the `sqs` fixture as `sqs-fn`, with the local
/// services and `triggers` started, as watch starts them.
async fn serve(triggers: Vec<Trigger>) -> Local {
    serve_fixture("sqs", triggers).await
}

/// [`serve`] with another fixture as `sqs-fn`.
async fn serve_fixture(fixture: &str, triggers: Vec<Trigger>) -> Local {
    let logs = Logs::default();
    let local = LocalTriggers::new();
    let mut opts = options(&logs);
    opts.routes = Some(local.router());
    opts.front = Some(local.front());
    let emulator = Emulator::start(opts, vec![spec(FUNCTION, fixture)])
        .await
        .expect("emulator starts");
    local
        .start(&emulator, &[(FUNCTION.to_string(), triggers)], Ui::silent())
        .expect("triggers start");
    let client = sqs_client(&emulator.endpoint());
    Local {
        emulator,
        triggers: local,
        client,
        logs,
    }
}

/// An unmodified SDK client pointed at the emulator.
fn sqs_client(endpoint: &str) -> Client {
    let conf = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "AKIDLOCALTEST",
            "local-test-secret",
            None,
            None,
            "tests",
        ))
        .build();
    Client::from_conf(conf)
}

fn md5_hex(text: &str) -> String {
    Md5::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Waits (a hang guard, not a timing assertion) until `done` holds.
async fn until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let give_up = std::time::Instant::now() + Duration::from_secs(180);
    while !done().await {
        assert!(
            std::time::Instant::now() < give_up,
            "never happened: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn counts(client: &Client, url: &str) -> (u64, u64) {
    let a = client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .unwrap();
    let a = a.attributes().unwrap();
    let n = |k: QueueAttributeName| a[&k].parse::<u64>().unwrap();
    (
        n(QueueAttributeName::ApproximateNumberOfMessages),
        n(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
    )
}

/// Bodies the function saw, in order, with their group and receive count.
fn seen(logs: &Logs) -> Vec<(String, String, u32)> {
    logs.lines()
        .iter()
        .filter_map(|l| l.split_once("sqs got ").map(|(_, rest)| rest.to_string()))
        .map(|rest| {
            let mut parts = rest.split(' ');
            let body = parts.next().unwrap().to_string();
            let group = parts
                .next()
                .unwrap()
                .trim_start_matches("group=")
                .to_string();
            let count = parts
                .next()
                .unwrap()
                .trim_start_matches("count=")
                .parse()
                .unwrap();
            (body, group, count)
        })
        .collect()
}

fn events(logs: &Logs) -> Vec<SqsEvent> {
    logs.lines()
        .iter()
        .filter_map(|l| l.split_once("EVENT ").map(|(_, json)| json.to_string()))
        .map(|json| serde_json::from_str::<SqsEvent>(&json).expect("the event is an SqsEvent"))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sdk_sends_receives_deletes_and_changes_visibility_with_checked_md5s() {
    let local = serve(Vec::new()).await;
    let c = &local.client;
    let url = c
        .create_queue()
        .queue_name("plain")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    assert_eq!(
        url,
        format!("{}/012345678912/plain", local.emulator.endpoint())
    );
    let sent = c
        .send_message()
        .queue_url(&url)
        .message_body("hello")
        .message_attributes(
            "color",
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value("blue")
                .build()
                .unwrap(),
        )
        .message_attributes(
            "blob",
            MessageAttributeValue::builder()
                .data_type("Binary")
                .binary_value(Blob::new(vec![0u8, 1, 2]))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(sent.md5_of_message_body(), Some(md5_hex("hello").as_str()));
    assert!(sent.md5_of_message_attributes().is_some());
    let batch = c
        .send_message_batch()
        .queue_url(&url)
        .entries(
            SendMessageBatchRequestEntry::builder()
                .id("one")
                .message_body("b1")
                .build()
                .unwrap(),
        )
        .entries(
            SendMessageBatchRequestEntry::builder()
                .id("two")
                .message_body("b2")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(batch.successful().len(), 2);
    assert!(batch.failed().is_empty());

    let got = c
        .receive_message()
        .queue_url(&url)
        .max_number_of_messages(10)
        .wait_time_seconds(1)
        .visibility_timeout(30)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .message_attribute_names("All")
        .send()
        .await
        .unwrap();
    let messages = got.messages();
    assert_eq!(messages.len(), 3);
    for m in messages {
        assert_eq!(m.md5_of_body(), Some(md5_hex(m.body().unwrap()).as_str()));
        let a = m.attributes().unwrap();
        assert_eq!(a[&MessageSystemAttributeName::ApproximateReceiveCount], "1");
        assert!(a.contains_key(&MessageSystemAttributeName::SentTimestamp));
        assert!(a.contains_key(&MessageSystemAttributeName::ApproximateFirstReceiveTimestamp));
    }
    let hello = messages.iter().find(|m| m.body() == Some("hello")).unwrap();
    assert_eq!(
        hello.md5_of_message_attributes(),
        sent.md5_of_message_attributes()
    );
    assert_eq!(
        hello.message_attributes().unwrap()["color"].string_value(),
        Some("blue")
    );
    assert_eq!(counts(c, &url).await, (0, 3));
    assert!(
        c.receive_message()
            .queue_url(&url)
            .send()
            .await
            .unwrap()
            .messages()
            .is_empty(),
        "in flight messages are not handed out again"
    );

    // Visible at once again, received a second time.
    c.change_message_visibility()
        .queue_url(&url)
        .receipt_handle(hello.receipt_handle().unwrap())
        .visibility_timeout(0)
        .send()
        .await
        .unwrap();
    let again = c
        .receive_message()
        .queue_url(&url)
        .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
        .send()
        .await
        .unwrap();
    let again = &again.messages()[0];
    assert_eq!(again.body(), Some("hello"));
    assert_eq!(
        again.attributes().unwrap()[&MessageSystemAttributeName::ApproximateReceiveCount],
        "2"
    );
    c.delete_message()
        .queue_url(&url)
        .receipt_handle(again.receipt_handle().unwrap())
        .send()
        .await
        .unwrap();
    let mut delete = c.delete_message_batch().queue_url(&url);
    for (i, m) in messages
        .iter()
        .filter(|m| m.body() != Some("hello"))
        .enumerate()
    {
        delete = delete.entries(
            aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                .id(format!("d{i}"))
                .receipt_handle(m.receipt_handle().unwrap())
                .build()
                .unwrap(),
        );
    }
    assert_eq!(delete.send().await.unwrap().successful().len(), 2);
    assert_eq!(counts(c, &url).await, (0, 0));

    // Errors come back as the SDK's modeled errors.
    let err = c
        .change_message_visibility()
        .queue_url(&url)
        .receipt_handle(again.receipt_handle().unwrap())
        .visibility_timeout(5)
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error().unwrap().is_message_not_inflight(),
        "{err:?}"
    );
    let err = c
        .get_queue_url()
        .queue_name("missing")
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error().unwrap().is_queue_does_not_exist(),
        "{err:?}"
    );
    let mut too_many = c.send_message_batch().queue_url(&url);
    for i in 0..11 {
        too_many = too_many.entries(
            SendMessageBatchRequestEntry::builder()
                .id(format!("e{i}"))
                .message_body("x")
                .build()
                .unwrap(),
        );
    }
    let err = too_many.send().await.unwrap_err();
    assert!(
        err.as_service_error()
            .unwrap()
            .is_too_many_entries_in_batch_request(),
        "{err:?}"
    );
    let listed = c
        .list_queues()
        .queue_name_prefix("pla")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.queue_urls(), std::slice::from_ref(&url));
    c.send_message()
        .queue_url(&url)
        .message_body("purged")
        .send()
        .await
        .unwrap();
    c.purge_queue().queue_url(&url).send().await.unwrap();
    assert_eq!(counts(c, &url).await, (0, 0));
    c.delete_queue().queue_url(&url).send().await.unwrap();
    let err = c
        .get_queue_url()
        .queue_name("plain")
        .send()
        .await
        .unwrap_err();
    assert!(err.as_service_error().unwrap().is_queue_does_not_exist());
    local.triggers.stop();
    local.emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_partial_batch_failure_redelivers_only_the_failed_message_until_the_dlq_gets_it() {
    let local = serve(vec![sqs_trigger("orders", "orders", 10, None)]).await;
    let c = &local.client;
    // The trigger's queue exists at start.
    let url = c
        .get_queue_url()
        .queue_name("orders")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let dlq = c
        .create_queue()
        .queue_name("orders-dlq")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let policy = serde_json::json!({
        "deadLetterTargetArn": "arn:aws:sqs:us-east-1:012345678912:orders-dlq",
        "maxReceiveCount": "2",
    });
    c.set_queue_attributes()
        .queue_url(&url)
        .attributes(QueueAttributeName::RedrivePolicy, policy.to_string())
        // Longer than an invocation takes on a loaded machine: a message
        // still in flight when it ends is delivered again (at least once).
        .attributes(QueueAttributeName::VisibilityTimeout, "5")
        .send()
        .await
        .unwrap();
    let mut batch = c.send_message_batch().queue_url(&url);
    for body in ["ok-1", "fail-1", "ok-2"] {
        batch = batch.entries(
            SendMessageBatchRequestEntry::builder()
                .id(body)
                .message_body(body)
                .build()
                .unwrap(),
        );
    }
    batch.send().await.unwrap();

    let mut dead = None;
    until("the failed message reaches the DLQ", async || {
        let got = c
            .receive_message()
            .queue_url(&dlq)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        dead = got.messages().first().cloned();
        dead.is_some()
    })
    .await;
    assert_eq!(dead.unwrap().body(), Some("fail-1"));
    until("the source queue is empty", async || {
        counts(c, &url).await == (0, 0)
    })
    .await;

    let seen = seen(&local.logs);
    let times = |body: &str| seen.iter().filter(|(b, _, _)| b == body).count();
    assert_eq!(times("ok-1"), 1, "{seen:?}");
    assert_eq!(times("ok-2"), 1, "{seen:?}");
    assert_eq!(
        times("fail-1"),
        2,
        "received maxReceiveCount times: {seen:?}"
    );
    let counts_of_fail: Vec<u32> = seen
        .iter()
        .filter(|(b, _, _)| b == "fail-1")
        .map(|(_, _, n)| *n)
        .collect();
    assert_eq!(counts_of_fail, [1, 2]);

    // Every event deserializes into aws_lambda_events' SqsEvent.
    let events = events(&local.logs);
    assert!(!events.is_empty());
    for e in &events {
        for r in &e.records {
            assert_eq!(r.event_source.as_deref(), Some("aws:sqs"));
            assert_eq!(
                r.event_source_arn.as_deref(),
                Some("arn:aws:sqs:us-east-1:012345678912:orders")
            );
            assert_eq!(
                r.md5_of_body.as_deref(),
                Some(md5_hex(r.body.as_deref().unwrap()).as_str())
            );
            assert!(r.attributes.contains_key("ApproximateReceiveCount"));
            assert!(r.attributes.contains_key("SentTimestamp"));
        }
    }

    // The triggers API shows the trigger and its queue.
    let list = local.triggers.list();
    assert_eq!(list[0]["name"], "orders");
    assert_eq!(list[0]["status"]["queue"], "orders");
    // The dead-letter queue holds the failed message (received above, in flight).
    assert_eq!(list[0]["status"]["dlq"], "orders-dlq (1)");
    local.triggers.stop();
    local.emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_function_error_returns_the_whole_batch() {
    let local = serve(vec![sqs_trigger("jobs", "jobs", 10, None)]).await;
    let c = &local.client;
    let url = c
        .get_queue_url()
        .queue_name("jobs")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let dlq = c
        .create_queue()
        .queue_name("jobs-dlq")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let policy = r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:012345678912:jobs-dlq","maxReceiveCount":1}"#;
    c.set_queue_attributes()
        .queue_url(&url)
        .attributes(QueueAttributeName::RedrivePolicy, policy)
        .attributes(QueueAttributeName::VisibilityTimeout, "3")
        .send()
        .await
        .unwrap();
    c.send_message()
        .queue_url(&url)
        .message_body("crash")
        .send()
        .await
        .unwrap();
    // Failed once (the whole batch returned), then moved on its next receive.
    until("the crashing message reaches the DLQ", async || {
        counts(c, &dlq).await.0 == 1 && seen(&local.logs).iter().any(|(b, _, _)| b == "crash")
    })
    .await;
    assert_eq!(
        seen(&local.logs)
            .iter()
            .filter(|(b, _, _)| b == "crash")
            .count(),
        1
    );
    local.triggers.stop();
    local.emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fifo_groups_are_processed_in_order_and_duplicates_dropped() {
    let local = serve(vec![sqs_trigger("ordered", "ordered.fifo", 3, Some(5))]).await;
    let c = &local.client;
    let url = c
        .get_queue_url()
        .queue_name("ordered.fifo")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let groups = ["a", "b", "c"];
    for i in 0..10 {
        let mut batch = c.send_message_batch().queue_url(&url);
        for g in groups {
            batch = batch.entries(
                SendMessageBatchRequestEntry::builder()
                    .id(format!("{g}{i}"))
                    .message_body(format!("{g}-{i}"))
                    .message_group_id(g)
                    .message_deduplication_id(format!("{g}-{i}"))
                    .build()
                    .unwrap(),
            );
        }
        let sent = batch.send().await.unwrap();
        assert_eq!(sent.successful().len(), 3);
        assert!(sent.successful()[0].sequence_number().is_some());
    }
    // A duplicate (same deduplication id within 5 minutes) is accepted, not delivered.
    c.send_message()
        .queue_url(&url)
        .message_body("a-0")
        .message_group_id("a")
        .message_deduplication_id("a-0")
        .send()
        .await
        .unwrap();
    until("all 30 messages are processed", async || {
        seen(&local.logs).len() >= 30 && counts(c, &url).await == (0, 0)
    })
    .await;
    let seen = seen(&local.logs);
    assert_eq!(seen.len(), 30, "{seen:?}");
    let mut per_group: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (body, group, _) in &seen {
        per_group
            .entry(group.clone())
            .or_default()
            .push(body.clone());
    }
    for g in groups {
        let expected: Vec<String> = (0..10).map(|i| format!("{g}-{i}")).collect();
        assert_eq!(per_group[g], expected, "group {g} out of order");
    }
    for e in events(&local.logs) {
        for r in &e.records {
            assert!(r.attributes.contains_key("MessageGroupId"));
            assert!(r.attributes.contains_key("SequenceNumber"));
        }
    }
    local.triggers.stop();
    local.emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reload_while_polling_loses_no_message() {
    let local = serve(vec![sqs_trigger("reload", "reload", 5, Some(2))]).await;
    let c = &local.client;
    let url = c
        .get_queue_url()
        .queue_name("reload")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    for i in 0..40 {
        c.send_message()
            .queue_url(&url)
            .message_body(format!("m-{i}"))
            .send()
            .await
            .unwrap();
        if i % 8 == 0 {
            // Hot reload: a new spec; invocations in flight finish on the old one.
            local.emulator.set_function(spec(FUNCTION, "sqs"));
        }
    }
    until("the queue is drained", async || {
        counts(c, &url).await == (0, 0)
    })
    .await;
    let seen = seen(&local.logs);
    for i in 0..40 {
        let body = format!("m-{i}");
        assert!(
            seen.iter().any(|(b, _, _)| *b == body),
            "{body} was lost across reloads: {seen:?}"
        );
    }
    local.triggers.stop();
    local.emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_aws_cli_sends_a_message_the_poller_delivers() {
    let aws = crate::support::tools_dir().join("venv/bin/aws");
    assert!(
        aws.exists(),
        "the AWS CLI is not installed at {}: run `cargo xtask setup`",
        aws.display()
    );
    let local = serve(vec![sqs_trigger("cli", "cli", 10, None)]).await;
    let endpoint = local.emulator.endpoint();
    let url = format!("{endpoint}/012345678912/cli");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(aws)
            .args(["sqs", "send-message", "--queue-url", &url])
            .args(["--message-body", "from-cli", "--output", "json"])
            .args(["--endpoint-url", &endpoint])
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
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "aws sqs send-message failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(answer["MD5OfMessageBody"], md5_hex("from-cli"));
    until("the function gets the CLI's message", async || {
        seen(&local.logs).iter().any(|(b, _, _)| b == "from-cli")
    })
    .await;
    local.triggers.stop();
    local.emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cargo_fn_watch_creates_the_trigger_queue_and_polls_it() {
    use crate::support::watch::{function_crate, watch_options};

    let dir = crate::support::tempdir();
    let root = dir.path().to_path_buf();
    function_crate(&root, "orders-fn", 0);
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let manifest = manifest.replace(
        "[dependencies]",
        "[[package.metadata.fn.triggers]]\ntype = \"sqs\"\nname = \"orders\"\nqueue = \"arn:aws:sqs:us-east-1:012345678912:orders\"\n\n[dependencies]",
    );
    std::fs::write(root.join("Cargo.toml"), manifest).unwrap();
    std::fs::write(
        root.join("src/main.rs"),
        r#"use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        for r in event.payload["Records"].as_array().cloned().unwrap_or_default() {
            println!("sqs got {} group=- count=1", r["body"].as_str().unwrap_or_default());
        }
        Ok::<Value, Error>(Value::Null)
    }))
    .await
}
"#,
    )
    .unwrap();
    let logs = Logs::default();
    let watch = Watch::start(watch_options(&root, &logs)).await;
    let endpoint = watch.endpoint.clone();
    let c = sqs_client(&endpoint);
    // The queue named by the trigger's ARN exists at start.
    let url = c
        .get_queue_url()
        .queue_name("orders")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    c.send_message()
        .queue_url(&url)
        .message_body("from-sdk")
        .send()
        .await
        .unwrap();
    // The triggers API: listed, and "fire now" sends a message.
    let api = endpoint.clone();
    let (list, fired) = tokio::task::spawn_blocking(move || {
        let list = ureq::get(format!("{api}/_cargo-fn/api/triggers"))
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap();
        let fired = ureq::post(format!(
            "{api}/_cargo-fn/api/triggers/orders-fn/orders/fire"
        ))
        .send("\"fired\"")
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
        let missing = ureq::post(format!("{api}/_cargo-fn/api/triggers/orders-fn/nope/fire"))
            .config()
            .http_status_as_error(false)
            .build()
            .send("")
            .unwrap();
        assert_eq!(missing.status(), 404);
        let parse = |s: String| serde_json::from_str::<serde_json::Value>(&s).unwrap();
        (parse(list), parse(fired))
    })
    .await
    .unwrap();
    assert_eq!(list[0]["function"], "orders-fn");
    assert_eq!(list[0]["type"], "sqs");
    assert_eq!(list[0]["status"]["queue"], "orders");
    assert!(fired["messageId"].is_string(), "{fired}");
    until("the function gets both messages", async || {
        let seen = seen(&logs);
        ["from-sdk", "fired"]
            .iter()
            .all(|b| seen.iter().any(|(s, _, _)| s == b))
    })
    .await;
    until("the queue is empty", async || {
        counts(&c, &url).await == (0, 0)
    })
    .await;
    watch.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn sqs_poller_events_stay_within_the_synchronous_payload_limit() {
    let mut trigger = sqs_trigger("big", "big", 100, Some(1));
    if let TriggerKind::Sqs(t) = &mut trigger.kind {
        t.maximum_batching_window = Some(2);
    }
    let local = serve_fixture("poller", vec![trigger]).await;
    let c = &local.client;
    let url = c
        .get_queue_url()
        .queue_name("big")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    // Ten messages of 1,000,000 bytes (SQS's limit is 1 MiB): 10 MB of
    // bodies, more than one event may carry.
    for i in 0..10 {
        c.send_message()
            .queue_url(&url)
            .message_body(format!("{i}").repeat(1_000_000))
            .send()
            .await
            .unwrap();
    }
    until("the function gets all ten messages", async || {
        polled(&local.logs).iter().map(|p| p.records).sum::<usize>() >= 10
    })
    .await;
    let events = polled(&local.logs);
    let largest = events.iter().map(|p| p.bytes).max().unwrap();
    eprintln!(
        "sqs events: {:?}, largest {largest} bytes",
        events
            .iter()
            .map(|p| (p.records, p.bytes))
            .collect::<Vec<_>>()
    );
    assert_eq!(events.iter().map(|p| p.records).sum::<usize>(), 10);
    assert!(
        largest <= MAX_EVENT,
        "an event of {largest} bytes, over Lambda's limit"
    );
    until("the queue is empty", async || {
        counts(c, &url).await == (0, 0)
    })
    .await;
    local.triggers.stop();
    local.emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sqs_refuses_ill_typed_or_out_of_range_parameters_and_counts_attributes_in_a_batch() {
    let local = serve(Vec::new()).await;
    let c = &local.client;
    let url = c
        .create_queue()
        .queue_name("strict")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    // A string where SQS wants an integer (no SDK sends one; a hand-made
    // request does).
    let (endpoint, q) = (local.emulator.endpoint(), url.clone());
    let (status, body) = tokio::task::spawn_blocking(move || {
        let mut resp = ureq::post(&endpoint)
            .header("content-type", "application/x-amz-json-1.0")
            .header("x-amz-target", "AmazonSQS.ReceiveMessage")
            .config()
            .http_status_as_error(false)
            .build()
            .send(serde_json::json!({"QueueUrl": q, "MaxNumberOfMessages": "ten"}).to_string())
            .unwrap();
        (
            resp.status().as_u16(),
            resp.body_mut().read_to_string().unwrap(),
        )
    })
    .await
    .unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("SerializationException"), "{body}");
    // A negative visibility timeout, as the SDK sends it.
    let err = c
        .receive_message()
        .queue_url(&url)
        .visibility_timeout(-1)
        .send()
        .await
        .expect_err("VisibilityTimeout -1 is refused");
    let e = err.into_service_error();
    assert!(
        e.meta()
            .message()
            .unwrap_or_default()
            .contains("VisibilityTimeout"),
        "{e:?}"
    );
    // Bodies of 600,000 bytes in all, attributes of another 600,000: over
    // the 1 MiB a batch request may carry.
    let entry = |i: usize| {
        SendMessageBatchRequestEntry::builder()
            .id(format!("m{i}"))
            .message_body("b".repeat(300_000))
            .message_attributes(
                "pad",
                MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value("a".repeat(300_000))
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap()
    };
    let err = c
        .send_message_batch()
        .queue_url(&url)
        .entries(entry(0))
        .entries(entry(1))
        .send()
        .await
        .expect_err("a batch over 1 MiB with its attributes is refused");
    assert!(
        err.into_service_error().is_batch_request_too_long(),
        "BatchRequestTooLong"
    );
    assert_eq!(counts(c, &url).await, (0, 0), "nothing was sent");
    local.emulator.shutdown().await;
}
