//! `cargo xtask bench` (emulator part): warm invoke latency (p50, p99) and
//! throughput through the emulator at concurrency 1 and 8, with the echo
//! fixture built in release mode, side by side with a bare loopback HTTP
//! round trip (a tiny hyper echo server) measured by the same load client in
//! the same run; then save-to-new-code reload latency of `watch` minus
//! cargo's incremental build time of the same change, with a client looping
//! throughout and counting failed or unanswered invocations.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use cargo_fn::emulator::{Emulator, EmulatorOptions, FunctionSpec, LogLine};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};

const PAYLOAD: &str = r#"{"hello":"world","n":42}"#;
const MEASURE: Duration = Duration::from_secs(4);
const WARMUP: Duration = Duration::from_secs(1);

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

/// Latency and throughput of one load run.
struct Stats {
    p50: Duration,
    p99: Duration,
    per_second: f64,
    requests: usize,
    failures: usize,
}

pub fn run(only: Option<&str>) -> Result<()> {
    let only = match only {
        None | Some("emulator") => None,
        Some(part @ ("invoke" | "reload")) => Some(part),
        Some(part) => bail!("expected `emulator`, `invoke` or `reload`, got `{part}`"),
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = root.join("target/bench");
    eprintln!("bench: building the fixture functions (release)");
    let status = super::cargo()
        .args(["build", "--release", "--quiet", "--manifest-path"])
        .arg(root.join("tests/fixtures/functions/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .status()
        .context("running cargo")?;
    if !status.success() {
        bail!("building the fixture functions failed");
    }
    let echo = target.join("release/echo");
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        if only != Some("reload") {
            invoke_latency(&echo).await?;
        }
        if only != Some("invoke") {
            reload_latency(&root, &target).await?;
        }
        Ok(())
    })
}

async fn invoke_latency(echo: &Path) -> Result<()> {
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(64)
        .build_http();

    // The floor: a bare hyper echo server on loopback.
    let bare = start_bare_server().await?;
    let bare_url = format!("http://{bare}/echo");

    let options = EmulatorOptions {
        bind: "127.0.0.1:0".parse()?,
        concurrency: 8,
        // Logs go nowhere: we measure the emulator, not a terminal.
        log_sink: Arc::new(|_: LogLine<'_>| {}),
        ..EmulatorOptions::default()
    };
    let mut spec = FunctionSpec::new("echo", echo);
    spec.memory_mb = 128;
    let sleep = FunctionSpec::new("sleep", echo.with_file_name("sleep"));
    let emu = Emulator::start(options, vec![spec, sleep]).await?;
    let emu_url = format!("{}/2015-03-31/functions/echo/invocations", emu.endpoint());

    println!("\n## Warm invoke latency (echo, release build, {PAYLOAD:?})\n");
    println!("| target | concurrency | p50 | p99 | requests/s | requests | failures |");
    println!("|---|---|---|---|---|---|---|");
    let mut results = Vec::new();
    for concurrency in [1usize, 8] {
        for (name, url) in [
            ("bare loopback hyper", &bare_url),
            ("cargo fn emulator", &emu_url),
        ] {
            load(&client, url, concurrency, WARMUP).await;
            let s = load(&client, url, concurrency, MEASURE).await;
            println!(
                "| {name} | {concurrency} | {:.0} µs | {:.0} µs | {:.0} | {} | {} |",
                s.p50.as_secs_f64() * 1e6,
                s.p99.as_secs_f64() * 1e6,
                s.per_second,
                s.requests,
                s.failures
            );
            results.push((name, concurrency, s));
        }
    }
    let get = |n: &str, c: usize| {
        results
            .iter()
            .find(|(name, conc, _)| *name == n && *conc == c)
            .map(|(_, _, s)| s)
            .expect("measured")
    };
    let e1 = get("cargo fn emulator", 1);
    let b1 = get("bare loopback hyper", 1);
    let e8 = get("cargo fn emulator", 8);
    println!(
        "\nemulator p50 / bare p50 at concurrency 1: {:.2}x (goal <= 3x)",
        e1.p50.as_secs_f64() / b1.p50.as_secs_f64()
    );
    println!(
        "emulator throughput at 8 / at 1: {:.2}x (goal >= 3x; {} CPUs here)",
        e8.per_second / e1.per_second,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );

    // Environments in parallel, without the CPU as the limit: a function
    // that waits 10 ms per invocation.
    let sleep_url = format!("{}/2015-03-31/functions/sleep/invocations", emu.endpoint());
    println!("\n## Parallel environments (function sleeping 10 ms per invocation)\n");
    println!("| concurrency | p50 | p99 | requests/s |");
    println!("|---|---|---|---|");
    let mut rates = Vec::new();
    for concurrency in [1usize, 8] {
        load_with(
            &client,
            &sleep_url,
            r#"{"ms":10}"#,
            false,
            concurrency,
            WARMUP,
        )
        .await;
        let s = load_with(
            &client,
            &sleep_url,
            r#"{"ms":10}"#,
            false,
            concurrency,
            MEASURE,
        )
        .await;
        println!(
            "| {concurrency} | {:.1} ms | {:.1} ms | {:.0} |",
            s.p50.as_secs_f64() * 1e3,
            s.p99.as_secs_f64() * 1e3,
            s.per_second
        );
        rates.push(s.per_second);
    }
    println!(
        "\nthroughput at 8 / at 1: {:.2}x (ideal 8x)",
        rates[1] / rates[0]
    );
    emu.shutdown().await;
    Ok(())
}

/// `concurrency` workers posting back to back for `duration`.
async fn load(client: &HttpClient, url: &str, concurrency: usize, duration: Duration) -> Stats {
    load_with(client, url, PAYLOAD, true, concurrency, duration).await
}

/// `concurrency` workers posting `payload` back to back for `duration`;
/// with `echo`, the answer must be the payload itself.
async fn load_with(
    client: &HttpClient,
    url: &str,
    payload: &'static str,
    echo: bool,
    concurrency: usize,
    duration: Duration,
) -> Stats {
    let stop_at = Instant::now() + duration;
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let client = client.clone();
        let url = url.to_string();
        workers.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut failures = 0usize;
            while Instant::now() < stop_at {
                let t = Instant::now();
                match post(&client, &url, payload, echo).await {
                    Ok(()) => lat.push(t.elapsed()),
                    Err(_) => failures += 1,
                }
            }
            (lat, failures)
        }));
    }
    let mut all = Vec::new();
    let mut failures = 0;
    for w in workers {
        let (lat, f) = w.await.expect("worker");
        all.extend(lat);
        failures += f;
    }
    let elapsed = started.elapsed();
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Stats {
        p50: pct(0.50),
        p99: pct(0.99),
        per_second: all.len() as f64 / elapsed.as_secs_f64(),
        requests: all.len(),
        failures,
    }
}

async fn post(client: &HttpClient, url: &str, payload: &'static str, echo: bool) -> Result<()> {
    let req = hyper::Request::post(url)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(payload.as_bytes())))?;
    let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .context("no answer in 10 s")??;
    let ok = resp.status().is_success() && !resp.headers().contains_key("x-amz-function-error");
    let body = resp.into_body().collect().await?.to_bytes();
    if !ok || (echo && body.len() != payload.len()) {
        bail!("bad answer");
    }
    Ok(())
}

async fn start_bare_server() -> Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    |req: hyper::Request<hyper::body::Incoming>| async move {
                        let body = req.into_body().collect().await?.to_bytes();
                        Ok::<_, hyper::Error>(hyper::Response::new(Full::new(body)))
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

/// A one-function crate answering its version, locked to the fixture
/// crate's dependency versions.
fn reload_crate(dir: &Path, root: &Path, version: u32) -> Result<()> {
    std::fs::create_dir_all(dir.join("src"))?;
    std::fs::write(
        dir.join("Cargo.toml"),
        "[workspace]\n\n[package]\nname = \"reload\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
         [dependencies]\nlambda_runtime = \"1.5\"\nserde_json = \"1\"\n\
         tokio = { version = \"1\", features = [\"macros\", \"rt-multi-thread\"] }\n",
    )?;
    std::fs::copy(
        root.join("tests/fixtures/functions/Cargo.lock"),
        dir.join("Cargo.lock"),
    )?;
    write_reload_version(dir, version)
}

fn write_reload_version(dir: &Path, version: u32) -> Result<()> {
    let src = format!(
        "use lambda_runtime::{{service_fn, Error, LambdaEvent}};\n\
         use serde_json::{{json, Value}};\n\n\
         #[tokio::main]\n\
         async fn main() -> Result<(), Error> {{\n    \
             lambda_runtime::run(service_fn(|_e: LambdaEvent<Value>| async move {{\n        \
                 Ok::<Value, Error>(json!({{\"version\": {version}}}))\n    \
             }}))\n    .await\n}}\n"
    );
    let tmp = dir.join("src/main.rs.tmp~");
    std::fs::write(&tmp, src)?;
    std::fs::rename(tmp, dir.join("src/main.rs"))?;
    Ok(())
}

async fn reload_latency(root: &Path, target: &Path) -> Result<()> {
    use cargo_fn::watch::{WatchEvent, WatchOptions};
    let dir = std::env::temp_dir().join(format!("cargo-fn-bench-reload-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    reload_crate(&dir, root, 0)?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let opts = WatchOptions {
        selection: cargo_fn::project::Selection {
            manifest_path: Some(dir.join("Cargo.toml")),
            packages: vec![],
            bins: vec![],
            target_dir: Some(target.to_path_buf()),
        },
        overrides: Default::default(),
        profile: "dev".into(),
        cargo_flags: vec![],
        emulator: EmulatorOptions {
            bind: "127.0.0.1:0".parse()?,
            log_sink: Arc::new(|_: LogLine<'_>| {}),
            ..EmulatorOptions::default()
        },
        extra_env: Default::default(),
        debounce: Duration::from_millis(25),
        event_format: None,
        serve: Default::default(),
        extensions_dir: None,
        default_function: None,
    };
    eprintln!("bench: starting watch (first dev build of the reload crate)");
    let watch = tokio::spawn(cargo_fn::watch::run(
        opts,
        cargo_fn::ui::Ui::silent(),
        Some(tx),
        async {
            let _ = stop_rx.await;
        },
    ));
    let endpoint = loop {
        match rx.recv().await {
            Some(WatchEvent::Ready { endpoint }) => break endpoint,
            Some(_) => {}
            None => bail!("watch stopped before serving"),
        }
    };
    let url = format!("{endpoint}/2015-03-31/functions/reload/invocations");
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();

    // A client looping for the whole run; it records when each version
    // first answers.
    let stop = Arc::new(AtomicBool::new(false));
    let latest = Arc::new(AtomicU64::new(u64::MAX));
    let failures = Arc::new(AtomicU64::new(0));
    let answered = Arc::new(AtomicU64::new(0));
    let first_seen = Arc::new(std::sync::Mutex::new(Vec::<(u64, Instant)>::new()));
    let looper = {
        let (stop, latest, failures, answered, first_seen, client, url) = (
            stop.clone(),
            latest.clone(),
            failures.clone(),
            answered.clone(),
            first_seen.clone(),
            client.clone(),
            url.clone(),
        );
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                match version_call(&client, &url).await {
                    Ok(v) => {
                        answered.fetch_add(1, Ordering::SeqCst);
                        if latest.swap(v, Ordering::SeqCst) != v {
                            first_seen.lock().unwrap().push((v, Instant::now()));
                        }
                    }
                    Err(_) => {
                        failures.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
        })
    };

    let reloads = 5u32;
    let mut rows = Vec::new();
    for version in 1..=reloads {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let saved = Instant::now();
        write_reload_version(&dir, version)?;
        let build = loop {
            match tokio::time::timeout(Duration::from_secs(300), rx.recv()).await {
                Ok(Some(WatchEvent::Reloaded { build, .. })) => break build,
                Ok(Some(WatchEvent::BuildFailed)) => bail!("reload build failed"),
                Ok(Some(_)) => {}
                _ => bail!("no reload within 5 minutes"),
            }
        };
        let until = Instant::now() + Duration::from_secs(30);
        let seen_at = loop {
            if let Some((_, at)) = first_seen
                .lock()
                .unwrap()
                .iter()
                .find(|(v, _)| *v == u64::from(version))
            {
                break *at;
            }
            if Instant::now() > until {
                bail!("version {version} never answered");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        let total = seen_at.duration_since(saved);
        rows.push((version, total, build));
    }
    stop.store(true, Ordering::SeqCst);
    looper.await?;
    let _ = stop_tx.send(());
    watch.await??;
    let _ = std::fs::remove_dir_all(&dir);

    println!("\n## Reload latency (dev profile, save -> first answer from the new code)\n");
    println!("| reload | save to new answer | cargo build | overhead |");
    println!("|---|---|---|---|");
    let mut overheads = Vec::new();
    for (v, total, build) in &rows {
        let overhead = total.saturating_sub(*build);
        overheads.push(overhead);
        println!(
            "| {v} | {:.0} ms | {:.0} ms | {:.0} ms |",
            total.as_secs_f64() * 1e3,
            build.as_secs_f64() * 1e3,
            overhead.as_secs_f64() * 1e3
        );
    }
    overheads.sort();
    println!(
        "\nmedian reload overhead beyond cargo: {:.0} ms (goal < 100 ms; includes the 25 ms debounce)",
        overheads[overheads.len() / 2].as_secs_f64() * 1e3
    );
    println!(
        "invocations during reloads: {} answered, {} failed or unanswered (10 s client timeout)",
        answered.load(Ordering::SeqCst),
        failures.load(Ordering::SeqCst)
    );
    Ok(())
}

async fn version_call(client: &HttpClient, url: &str) -> Result<u64> {
    let req = hyper::Request::post(url).body(Full::new(Bytes::from_static(b"{}")))?;
    let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .context("no answer in 10 s")??;
    if resp.headers().contains_key("x-amz-function-error") || !resp.status().is_success() {
        bail!("failed invocation");
    }
    let body = resp.into_body().collect().await?.to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&body)?;
    v["version"].as_u64().context("no version")
}
