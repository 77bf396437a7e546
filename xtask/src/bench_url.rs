//! `cargo xtask bench --only url`: the function URL round trip against the
//! bare Invoke API round trip of the same function, in one run (release
//! builds of cargo-fn and the fixture functions). The echo fixture answers
//! its event, so the Invoke requests carry exactly the event the function
//! URL front builds: the difference is the front's own cost (HTTP request
//! to event, answer to HTTP response). Also the streaming routes with the
//! `chunks` fixture: `InvokeWithResponseStream` and a RESPONSE_STREAM
//! function URL, time to first byte and to the end.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use cargo_fn::emulator::{Emulator, EmulatorOptions, FunctionSpec, InvokeMode, LogLine};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

const WARMUP: usize = 50;
const REQUESTS: usize = 500;

/// Median and 95th percentile of sequential round trips.
struct Figures {
    p50: Duration,
    p95: Duration,
}

fn figures(mut samples: Vec<Duration>) -> Figures {
    samples.sort();
    let at = |p: f64| samples[((samples.len() as f64 * p).ceil() as usize).saturating_sub(1)];
    Figures {
        p50: at(0.50),
        p95: at(0.95),
    }
}

pub fn run() -> Result<()> {
    let bins = super::release_fixtures()?;
    tokio::runtime::Runtime::new()?.block_on(measure(&bins))
}

async fn measure(bins: &Path) -> Result<()> {
    let options = EmulatorOptions {
        bind: "127.0.0.1:0".parse()?,
        // Logs go nowhere: we measure the emulator, not a terminal.
        log_sink: Arc::new(|_: LogLine<'_>| {}),
        ..EmulatorOptions::default()
    };
    let echo = FunctionSpec::new("echo", bins.join("echo"));
    let mut chunks = FunctionSpec::new("chunks", bins.join("chunks"));
    chunks.http.invoke_mode = InvokeMode::ResponseStream;
    let emu = Emulator::start(options, vec![echo, chunks]).await?;
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let base = emu.endpoint();

    // The event the front builds, answered back by echo: the Invoke payload.
    let url = format!("{base}/lambda-url/echo/bench/path?q=1");
    let (event, _) = round_trip(&client, "GET", &url, Bytes::new()).await?;
    let invoke = format!("{base}/2015-03-31/functions/echo/invocations");

    let mut rows = Vec::new();
    for (name, method, target, body) in [
        ("Invoke API (echo)", "POST", invoke.as_str(), event.clone()),
        (
            "function URL (echo, BUFFERED)",
            "GET",
            url.as_str(),
            Bytes::new(),
        ),
    ] {
        rows.push((name, sample(&client, method, target, body).await?));
    }
    let stream_invoke =
        format!("{base}/2021-11-15/functions/chunks/response-streaming-invocations");
    let stream_url = format!("{base}/lambda-url/chunks/");
    for (name, method, target, body) in [
        (
            "InvokeWithResponseStream (chunks)",
            "POST",
            stream_invoke.as_str(),
            Bytes::from_static(b"{}"),
        ),
        (
            "function URL (chunks, RESPONSE_STREAM)",
            "GET",
            stream_url.as_str(),
            Bytes::new(),
        ),
    ] {
        rows.push((name, sample(&client, method, target, body).await?));
    }
    emu.shutdown().await;

    println!(
        "\n## Function URL vs Invoke API round trip ({REQUESTS} sequential requests after {WARMUP} warm-up, release builds)\n"
    );
    println!("| route | first byte p50 | first byte p95 | round trip p50 | round trip p95 |");
    println!("|---|---|---|---|---|");
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    for (name, (first, total)) in &rows {
        println!(
            "| {name} | {:.0} µs | {:.0} µs | {:.0} µs | {:.0} µs |",
            us(first.p50),
            us(first.p95),
            us(total.p50),
            us(total.p95)
        );
    }
    let (invoke, url) = (&rows[0].1.1, &rows[1].1.1);
    println!(
        "\nfunction URL - Invoke API: p50 {:+.0} µs ({:.2}x), p95 {:+.0} µs ({:.2}x)",
        us(url.p50) - us(invoke.p50),
        url.p50.as_secs_f64() / invoke.p50.as_secs_f64(),
        us(url.p95) - us(invoke.p95),
        url.p95.as_secs_f64() / invoke.p95.as_secs_f64(),
    );
    Ok(())
}

/// Warm-up, then `REQUESTS` sequential round trips: (time to the first
/// body byte, time to the end of the body).
async fn sample(
    client: &HttpClient,
    method: &str,
    url: &str,
    body: Bytes,
) -> Result<(Figures, Figures)> {
    for _ in 0..WARMUP {
        round_trip(client, method, url, body.clone()).await?;
    }
    let mut first = Vec::with_capacity(REQUESTS);
    let mut total = Vec::with_capacity(REQUESTS);
    for _ in 0..REQUESTS {
        let (_, t) = round_trip(client, method, url, body.clone()).await?;
        first.push(t.0);
        total.push(t.1);
    }
    Ok((figures(first), figures(total)))
}

/// One request; the whole answer and (first byte, end) times.
async fn round_trip(
    client: &HttpClient,
    method: &str,
    url: &str,
    body: Bytes,
) -> Result<(Bytes, (Duration, Duration))> {
    let req = hyper::Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json")
        .body(Full::new(body))?;
    let started = Instant::now();
    let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .context("no answer in 10 s")??;
    if !resp.status().is_success() || resp.headers().contains_key("x-amz-function-error") {
        bail!("{url}: status {}", resp.status());
    }
    let mut body = resp.into_body();
    let mut out = Vec::new();
    let mut first = None;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            if first.is_none() && !data.is_empty() {
                first = Some(started.elapsed());
            }
            out.extend_from_slice(&data);
        }
    }
    let total = started.elapsed();
    Ok((Bytes::from(out), (first.unwrap_or(total), total)))
}
