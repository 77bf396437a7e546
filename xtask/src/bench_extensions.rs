//! `cargo xtask bench --only extensions`: what an external extension costs
//! under the emulator. The echo fixture function (release build) alone, and
//! the same function with the `noop` fixture extension (the
//! `lambda-extension` crate, release build), measured in the same run:
//! warm invoke latency (p50, p99, sequential) and cold start latency (a hot
//! reload before each invocation, so each one starts a new environment:
//! spawn, init of runtime and extension, first answer), plus the time a
//! reload takes to end the old environment (SHUTDOWN, then the kill).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use cargo_fn::emulator::{Emulator, EmulatorOptions, FunctionSpec, LogLine};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

const PAYLOAD: &str = r#"{"hello":"world"}"#;
const WARM: usize = 2000;
const COLD: usize = 30;

pub fn run() -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = root.join("target/bench");
    for manifest in ["functions", "extensions"] {
        eprintln!("bench: building the fixture {manifest} (release)");
        let status = super::cargo()
            .args(["build", "--release", "--quiet", "--manifest-path"])
            .arg(root.join(format!("tests/fixtures/{manifest}/Cargo.toml")))
            .arg("--target-dir")
            .arg(&target)
            .status()
            .context("running cargo")?;
        if !status.success() {
            bail!("building the fixture {manifest} failed");
        }
    }
    let echo = target.join("release/echo");
    let noop = target.join("release/noop");
    tokio::runtime::Runtime::new()?.block_on(measure(&echo, &noop))
}

async fn measure(echo: &Path, noop: &Path) -> Result<()> {
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    println!("\n## External extension cost (echo, release; `noop` lambda-extension)\n");
    println!("| setup | warm p50 | warm p99 | cold p50 | cold p99 | reload ends old env p50 |");
    println!("|---|---|---|---|---|---|");
    for (name, extensions) in [
        ("function alone", vec![]),
        ("function + 1 extension", vec![noop.to_path_buf()]),
    ] {
        let options = EmulatorOptions {
            bind: "127.0.0.1:0".parse()?,
            log_sink: Arc::new(|_: LogLine<'_>| {}),
            ..EmulatorOptions::default()
        };
        let mut spec = FunctionSpec::new("echo", echo);
        spec.extensions = extensions;
        let emu = Emulator::start(options, vec![spec.clone()]).await?;
        let url = format!("{}/2015-03-31/functions/echo/invocations", emu.endpoint());

        for _ in 0..100 {
            post(&client, &url).await?;
        }
        let mut warm = Vec::with_capacity(WARM);
        for _ in 0..WARM {
            let t = Instant::now();
            post(&client, &url).await?;
            warm.push(t.elapsed());
        }

        let mut cold = Vec::with_capacity(COLD);
        let mut ends = Vec::with_capacity(COLD);
        for _ in 0..COLD {
            let before = processes();
            let t = Instant::now();
            emu.set_function(spec.clone());
            // The old environment's processes are gone (SHUTDOWN handled,
            // group killed).
            while processes() >= before && t.elapsed() < Duration::from_secs(5) {
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
            ends.push(t.elapsed());
            let t = Instant::now();
            post(&client, &url).await?;
            cold.push(t.elapsed());
        }
        emu.shutdown().await;
        println!(
            "| {name} | {} | {} | {} | {} | {} |",
            ms(pct(&mut warm, 0.5)),
            ms(pct(&mut warm, 0.99)),
            ms(pct(&mut cold, 0.5)),
            ms(pct(&mut cold, 0.99)),
            ms(pct(&mut ends, 0.5)),
        );
    }
    Ok(())
}

/// Our child processes (the environments' runtimes and extensions).
fn processes() -> usize {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .map(|dir| {
            dir.flatten()
                .filter(|e| {
                    std::fs::read_to_string(e.path().join("stat")).is_ok_and(|s| {
                        // Field 4 (after the `(comm)`) is the parent pid.
                        s.rsplit_once(')')
                            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                            == Some(me.as_str())
                    })
                })
                .count()
        })
        .unwrap_or(0)
}

fn pct(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

async fn post(client: &HttpClient, url: &str) -> Result<()> {
    let req = hyper::Request::post(url)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(PAYLOAD.as_bytes())))?;
    let resp = tokio::time::timeout(Duration::from_secs(15), client.request(req))
        .await
        .context("no answer in 15 s")??;
    let ok = resp.status().is_success() && !resp.headers().contains_key("x-amz-function-error");
    let body = resp.into_body().collect().await?.to_bytes();
    if !ok || body.len() != PAYLOAD.len() {
        bail!("bad answer: {}", String::from_utf8_lossy(&body));
    }
    Ok(())
}
