//! `cargo xtask bench --only dashboard`: the dashboard's page weight and the
//! latency from an invocation to its row on the page, in a real headless
//! Chromium (the Debian package) following the emulator's live stream
//! (release builds of cargo-fn and the echo fixture). The baseline, measured
//! in the same run, is the Invoke round trip itself: the row can only
//! appear after the function answered.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use cargo_fn::dashboard::{self, Dashboard};
use cargo_fn::emulator::{Emulator, EmulatorOptions, FunctionSpec, LogLine};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

#[allow(dead_code)] // the tests use more of it
#[path = "../../tests/it/support/browser.rs"]
mod browser;

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

const WARMUP: usize = 10;
const INVOCATIONS: usize = 100;

pub fn run() -> Result<()> {
    let bins = super::release_fixtures()?;
    tokio::runtime::Runtime::new()?.block_on(measure(&bins))
}

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
        * 1000.0
}

async fn measure(bins: &Path) -> Result<()> {
    let dashboard = Dashboard::default();
    let specs = vec![FunctionSpec::new("echo", bins.join("echo"))];
    let options = EmulatorOptions {
        bind: "127.0.0.1:0".parse()?,
        log_sink: Arc::new(|_: LogLine<'_>| {}),
        routes: Some(dashboard.router()),
        ..EmulatorOptions::default()
    };
    let emu = Emulator::start(options, specs.clone()).await?;
    dashboard.serving(&specs, 1);
    let browser = browser::Browser::open(&format!("{}{}", emu.endpoint(), dashboard::PATH));
    let mut page = browser::Page::attach(&browser, dashboard::PATH).await;
    page.wait_for(
        "the page follows the live stream",
        "document.querySelector('#live')?.classList.contains('ok')",
    )
    .await;
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let url = format!("{}/2015-03-31/functions/echo/invocations", emu.endpoint());

    let (mut round_trip, mut answer_to_row, mut send_to_row) = (vec![], vec![], vec![]);
    for i in 0..WARMUP + INVOCATIONS {
        let sent = now_ms();
        let id = invoke(&client, &url).await?;
        let answered = now_ms();
        let shown = page
            .wait_for(
                "the invocation's row",
                &format!(
                    "document.querySelector('tr.inv[data-request-id=\"{id}\"]')?.dataset.shownMs"
                ),
            )
            .await;
        let shown: f64 = shown
            .as_str()
            .and_then(|s| s.parse().ok())
            .context("the row's shownMs")?;
        if i >= WARMUP {
            round_trip.push(answered - sent);
            answer_to_row.push(shown - answered);
            send_to_row.push(shown - sent);
        }
    }
    let loaded = page
        .eval("performance.getEntriesByType('resource').concat(performance.getEntriesByType('navigation')).filter((e) => /\\/_cargo-fn\\/(app\\.(js|css))?$/.test(e.name)).reduce((n, e) => n + e.transferSize, 0)")
        .await;
    drop(page);
    drop(browser);
    emu.shutdown().await;

    println!(
        "\n## Dashboard ({INVOCATIONS} sequential warm invocations after {WARMUP} warm-up, headless Chromium, release builds)\n"
    );
    println!(
        "page weight: {} bytes (HTML + CSS + JS, uncompressed, no other requests); {} bytes transferred with headers as Chromium counts them",
        dashboard::page_weight(),
        loaded
    );
    println!("\n| interval | p50 | p95 | max |");
    println!("|---|---|---|---|");
    for (name, samples) in [
        ("Invoke round trip (baseline)", &mut round_trip),
        ("answer -> row on the page", &mut answer_to_row),
        ("request sent -> row on the page", &mut send_to_row),
    ] {
        samples.sort_by(f64::total_cmp);
        let at = |p: f64| samples[((samples.len() as f64 * p).ceil() as usize).saturating_sub(1)];
        println!(
            "| {name} | {:.1} ms | {:.1} ms | {:.1} ms |",
            at(0.50),
            at(0.95),
            samples[samples.len() - 1]
        );
    }
    Ok(())
}

/// One synchronous invocation; its request id.
async fn invoke(client: &HttpClient, url: &str) -> Result<String> {
    let req = hyper::Request::builder()
        .method("POST")
        .uri(url)
        .body(Full::new(Bytes::from_static(b"{\"bench\": true}")))?;
    let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .context("no answer in 10 s")??;
    if !resp.status().is_success() {
        bail!("Invoke: status {}", resp.status());
    }
    let id = resp
        .headers()
        .get("x-amzn-requestid")
        .and_then(|v| v.to_str().ok())
        .context("no x-amzn-requestid")?
        .to_string();
    resp.into_body().collect().await?;
    Ok(id)
}
