//! `cargo xtask bench --only sqs`: messages per second through the local
//! SQS queue: an `aws-sdk-sqs` producer sends, the poller hands batches of
//! 10 to the `sqs` fixture function (release builds), and deletes them;
//! timed from the first send until the queue is empty, with the poller's
//! maximum concurrency 1 and 5. Beside it, in the same run, the same
//! function invoked directly through the Invoke API with the same 10-record
//! events, 1 and 5 at a time: the difference is the queue and poller's cost.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_sqs::types::{QueueAttributeName, SendMessageBatchRequestEntry};
use bytes::Bytes;
use cargo_fn::config::Trigger;
use cargo_fn::config::triggers::{SqsTrigger, TriggerKind};
use cargo_fn::emulator::{Emulator, EmulatorOptions, FunctionSpec, LogLine};
use cargo_fn::local::LocalTriggers;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

const MESSAGES: usize = 2_000;
const BATCH: u32 = 10;

pub fn run() -> Result<()> {
    let bins = super::release_fixtures()?;
    tokio::runtime::Runtime::new()?.block_on(measure(&bins))
}

fn trigger(queue: &str, concurrency: u32) -> Trigger {
    Trigger {
        name: queue.to_string(),
        kind: TriggerKind::Sqs(SqsTrigger {
            queue: queue.to_string(),
            batch_size: Some(BATCH),
            maximum_batching_window: None,
            maximum_concurrency: Some(concurrency),
            report_batch_item_failures: true,
            filters: Vec::new(),
            enabled: true,
        }),
    }
}

async fn measure(bins: &Path) -> Result<()> {
    let local = LocalTriggers::new();
    let options = EmulatorOptions {
        bind: "127.0.0.1:0".parse()?,
        log_sink: Arc::new(|_: LogLine<'_>| {}),
        routes: Some(local.router()),
        front: Some(local.front()),
        ..EmulatorOptions::default()
    };
    let emu = Emulator::start(options, vec![FunctionSpec::new("sqs", bins.join("sqs"))]).await?;
    local.start(
        &emu,
        &[(
            "sqs".to_string(),
            vec![trigger("bench-1", 1), trigger("bench-5", 5)],
        )],
        cargo_fn::ui::Ui::silent(),
    )?;
    let conf = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(emu.endpoint())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("AKIDBENCH", "bench", None, None, "bench"))
        .build();
    let sqs = aws_sdk_sqs::Client::from_conf(conf);

    let mut rows = Vec::new();
    for (queue, concurrency) in [("bench-1", 1usize), ("bench-5", 5)] {
        let url = format!("{}/012345678912/{queue}", emu.endpoint());
        // Warm-up: environments started, connections open.
        through_queue(&sqs, &url, 100).await?;
        let rate = through_queue(&sqs, &url, MESSAGES).await?;
        rows.push((format!("SQS poller, concurrency {concurrency}"), rate));
    }
    let event = event();
    for concurrency in [1usize, 5] {
        direct(&emu.endpoint(), &event, 10, concurrency).await?;
        let rate = direct(
            &emu.endpoint(),
            &event,
            MESSAGES / BATCH as usize,
            concurrency,
        )
        .await?;
        rows.push((format!("Invoke API direct, {concurrency} at a time"), rate));
    }
    local.stop();
    emu.shutdown().await;

    println!(
        "\n## Local SQS: messages/second from an aws-sdk-sqs producer to the function, deleted ({MESSAGES} messages, batch size {BATCH}, release builds)\n"
    );
    println!("| path | messages/s |");
    println!("|---|---|");
    for (name, rate) in &rows {
        println!("| {name} | {rate:.0} |");
    }
    Ok(())
}

/// Sends `n` messages (batches of 10, 4 producers) and waits until the
/// poller has deleted them all: messages per second.
async fn through_queue(sqs: &aws_sdk_sqs::Client, url: &str, n: usize) -> Result<f64> {
    let started = Instant::now();
    let mut producers = Vec::new();
    for p in 0..4 {
        let (sqs, url) = (sqs.clone(), url.to_string());
        producers.push(tokio::spawn(async move {
            for b in (p * 10..n).step_by(40) {
                let mut req = sqs.send_message_batch().queue_url(&url);
                for i in b..(b + 10).min(n) {
                    req = req.entries(
                        SendMessageBatchRequestEntry::builder()
                            .id(format!("m{i}"))
                            .message_body(format!("{{\"n\":{i}}}"))
                            .build()?,
                    );
                }
                req.send().await?;
            }
            anyhow::Ok(())
        }));
    }
    for p in producers {
        p.await??;
    }
    let give_up = Instant::now() + Duration::from_secs(600);
    loop {
        let a = sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await?;
        let a = a.attributes().context("no attributes")?;
        let left: u64 = a.values().map(|v| v.parse::<u64>().unwrap_or(0)).sum();
        if left == 0 {
            break;
        }
        if Instant::now() > give_up {
            bail!("{url}: {left} messages still in the queue after 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// A 10-record SQS event like the poller's.
fn event() -> Bytes {
    let records: Vec<serde_json::Value> = (0..BATCH)
        .map(|i| {
            serde_json::json!({
                "messageId": format!("00000000-0000-0000-0000-00000000000{i}"),
                "receiptHandle": "handle",
                "body": format!("{{\"n\":{i}}}"),
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1700000000000", "SenderId": "012345678912", "ApproximateFirstReceiveTimestamp": "1700000000000"},
                "messageAttributes": {},
                "md5OfBody": "0",
                "md5OfMessageAttributes": null,
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:012345678912:bench",
                "awsRegion": "us-east-1",
            })
        })
        .collect();
    Bytes::from(serde_json::json!({ "Records": records }).to_string())
}

/// `invocations` Invoke API calls with `event`, `concurrency` at a time:
/// messages (records) per second.
async fn direct(
    endpoint: &str,
    event: &Bytes,
    invocations: usize,
    concurrency: usize,
) -> Result<f64> {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let url = format!("{endpoint}/2015-03-31/functions/sqs/invocations");
    let started = Instant::now();
    let mut workers = Vec::new();
    for w in 0..concurrency {
        let (client, url, event) = (client.clone(), url.clone(), event.clone());
        workers.push(tokio::spawn(async move {
            for _ in (w..invocations).step_by(concurrency) {
                let req = hyper::Request::post(&url).body(Full::new(event.clone()))?;
                let resp = client.request(req).await?;
                if !resp.status().is_success() {
                    bail!("invoke: status {}", resp.status());
                }
                resp.into_body().collect().await?;
            }
            anyhow::Ok(())
        }));
    }
    for w in workers {
        w.await??;
    }
    Ok((invocations * BATCH as usize) as f64 / started.elapsed().as_secs_f64())
}
