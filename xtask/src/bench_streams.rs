//! `cargo xtask bench --only streams`: records per second through one
//! Kinesis shard to a function by the local stream poller, with
//! parallelization factor 1 and 10, beside the same function invoked
//! directly (sequentially, with events of the same batch size) in the same
//! run. Release builds of cargo-fn and the `echo` fixture function.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use cargo_fn::config::triggers::{StartingPosition, StreamTrigger, Trigger, TriggerKind};
use cargo_fn::emulator::{Emulator, EmulatorOptions, FunctionSpec, LogLine};
use cargo_fn::local::kinesis::{KinesisStore, partition_hash};
use cargo_fn::local::stream_poller::{FailureFn, InvokeFn, LogFn, Outcome};
use cargo_fn::local::streams::StreamSource;

const RECORDS: usize = 5_000;
const KEYS: usize = 100;
const BATCH: u32 = 10;

pub fn run() -> Result<()> {
    let bins = super::release_fixtures()?;
    tokio::runtime::Runtime::new()?.block_on(measure(&bins))
}

fn trigger(name: &str, factor: u32) -> Trigger {
    Trigger {
        name: name.to_string(),
        kind: TriggerKind::Kinesis(StreamTrigger {
            stream: format!("arn:aws:kinesis:us-east-1:123456789012:stream/{name}"),
            starting_position: StartingPosition::TrimHorizon,
            starting_position_timestamp: None,
            batch_size: Some(BATCH),
            maximum_batching_window: None,
            parallelization_factor: Some(factor),
            bisect_batch_on_function_error: None,
            maximum_retry_attempts: None,
            maximum_record_age: None,
            tumbling_window: None,
            on_failure: None,
            report_batch_item_failures: true,
            filters: vec![],
            enabled: true,
            local_shards: Some(1),
        }),
    }
}

async fn measure(bins: &Path) -> Result<()> {
    let options = EmulatorOptions {
        bind: "127.0.0.1:0".parse()?,
        log_sink: Arc::new(|_: LogLine<'_>| {}),
        ..EmulatorOptions::default()
    };
    let emu = Emulator::start(options, vec![FunctionSpec::new("echo", bins.join("echo"))]).await?;
    let invoker = emu.invoker();
    let record = |i: usize| format!("{{\"key\":{},\"n\":{i}}}", i % KEYS);

    // Baseline: the same function invoked directly, one batch-sized event at a time.
    let event = |from: usize| {
        let records: Vec<serde_json::Value> = (from..from + BATCH as usize)
            .map(|i| serde_json::json!({"kinesis": {"data": record(i)}}))
            .collect();
        Bytes::from(serde_json::json!({ "Records": records }).to_string())
    };
    invoker
        .invoke("echo", event(0), "bench")
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let started = Instant::now();
    for from in (0..RECORDS).step_by(BATCH as usize) {
        invoker
            .invoke("echo", event(from), "bench")
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let direct = started.elapsed();

    let mut rows = vec![(
        "direct invoke (sequential, same events)".to_string(),
        direct,
        1,
    )];
    for factor in [1u32, 10] {
        let store = KinesisStore::default();
        let name = format!("bench-{factor}");
        let invoke: InvokeFn = {
            let invoker = invoker.clone();
            Arc::new(move |payload| {
                let invoker = invoker.clone();
                Box::pin(async move {
                    let r = invoker
                        .invoke("echo", payload, "kinesis:bench")
                        .await
                        .map_err(|e| e.to_string())?;
                    Ok((r.request_id, Outcome::Success(serde_json::Value::Null)))
                })
            })
        };
        let on_failure: FailureFn = Arc::new(|_| Box::pin(async { Ok(()) }));
        let say: LogFn = Arc::new(|_: &str| {});
        let stream = store.ensure(&name, 1);
        // The records are on the shard before the poller starts (TRIM_HORIZON):
        // the figure is the poller's and the function's, not the producer's.
        for i in 0..RECORDS {
            let key = format!("key-{}", i % KEYS);
            stream.put(&key, partition_hash(&key), Bytes::from(record(i)));
        }
        let started = Instant::now();
        let source = StreamSource::start(
            "echo",
            &trigger(&name, factor),
            &store,
            invoke,
            on_failure,
            say,
        )
        .context("starting the poller")?;
        while source.done() < RECORDS as u64 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        rows.push((
            format!("stream poller, parallelization factor {factor}"),
            started.elapsed(),
            source.max_parallel(),
        ));
    }
    emu.shutdown().await;

    println!(
        "\n## Kinesis stream to function: {RECORDS} records, {KEYS} partition keys, one shard, batch size {BATCH} (release builds, echo function)\n"
    );
    println!("| path | time | records/s | batches at once (max) |");
    println!("|---|---|---|---|");
    for (name, took, parallel) in &rows {
        println!(
            "| {name} | {:.0} ms | {:.0} | {parallel} |",
            took.as_secs_f64() * 1e3,
            RECORDS as f64 / took.as_secs_f64()
        );
    }
    Ok(())
}
