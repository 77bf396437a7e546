//! `cargo xtask bench --only ship`: what serving "what ships" costs. The
//! same function (tests/fixtures/hello, release) behind `cargo fn watch`
//! four ways, in one run: a host build (the baseline), the x86_64 artifact
//! from `cargo fn build` (native), the arm64 artifact under qemu-user, and
//! the arm64 image unpacked and run under qemu-user. For each: time from
//! start to the first answer (build excluded: every mode is built once
//! before it is timed) and warm invoke latency (p50, p95 of sequential
//! invocations).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use cargo_fn::config::{Arch, Overrides};
use cargo_fn::emulator::{EmulatorOptions, LogLine};
use cargo_fn::watch::{Serve, WatchEvent, WatchOptions};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

const WARM_INVOKES: usize = 200;

pub fn run() -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = root.join("target/bench");
    let dir = std::env::temp_dir().join(format!("cargo-fn-bench-ship-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(&root.join("tests/fixtures/hello"), &dir)?;
    let modes: [(&str, Serve, Arch); 4] = [
        ("host build (baseline)", Serve::HostBuild, Arch::X86_64),
        (
            "x86_64 artifact",
            Serve::Artifact { musl: false },
            Arch::X86_64,
        ),
        (
            "arm64 artifact, qemu",
            Serve::Artifact { musl: false },
            Arch::Arm64,
        ),
        (
            "arm64 image, qemu",
            Serve::Image {
                musl: false,
                image: Default::default(),
            },
            Arch::Arm64,
        ),
    ];
    let rt = tokio::runtime::Runtime::new()?;
    let mut rows = Vec::new();
    for (label, serve, arch) in modes {
        eprintln!("bench: {label}: building");
        // Once to build; then timed from a built tree.
        rt.block_on(serve_once(&dir, &target, serve.clone(), arch, 1))?;
        eprintln!("bench: {label}: measuring");
        let row = rt.block_on(serve_once(&dir, &target, serve, arch, WARM_INVOKES))?;
        rows.push((label, row));
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "\nwatch serving the hello fixture (release), {WARM_INVOKES} sequential warm invokes:"
    );
    println!(
        "{:<24} {:>16} {:>10} {:>10}",
        "mode", "start->answer", "p50", "p95"
    );
    for (label, r) in rows {
        println!(
            "{label:<24} {:>16.1?} {:>10.2?} {:>10.2?}",
            r.first_answer, r.p50, r.p95
        );
    }
    Ok(())
}

struct Row {
    first_answer: Duration,
    p50: Duration,
    p95: Duration,
}

async fn serve_once(dir: &Path, target: &Path, serve: Serve, arch: Arch, n: usize) -> Result<Row> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let opts = WatchOptions {
        selection: cargo_fn::project::Selection {
            manifest_path: Some(dir.join("Cargo.toml")),
            packages: vec![],
            bins: vec![],
            target_dir: Some(target.to_path_buf()),
        },
        overrides: Overrides {
            architecture: Some(arch),
            ..Default::default()
        },
        profile: "release".into(),
        cargo_flags: vec![],
        emulator: EmulatorOptions {
            bind: "127.0.0.1:0".parse()?,
            log_sink: Arc::new(|_: LogLine<'_>| {}),
            ..EmulatorOptions::default()
        },
        extra_env: Default::default(),
        debounce: Duration::from_millis(25),
        event_format: None,
        extensions_dir: None,
        serve,
        default_function: None,
        durable_clock: Default::default(),
    };
    let started = Instant::now();
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
            None => {
                let err = watch.await?.err();
                bail!("watch stopped before serving: {err:?}");
            }
        }
    };
    let url = format!("{endpoint}/2015-03-31/functions/hello/invocations");
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    invoke(&client, &url).await?;
    let first_answer = started.elapsed();
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        invoke(&client, &url).await?;
        times.push(t.elapsed());
    }
    let _ = stop_tx.send(());
    watch.await??;
    times.sort();
    Ok(Row {
        first_answer,
        p50: times[times.len() / 2],
        p95: times[times.len() * 95 / 100],
    })
}

async fn invoke(client: &HttpClient, url: &str) -> Result<()> {
    let req = hyper::Request::post(url)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(br#"{"n":1}"#)))?;
    let resp = tokio::time::timeout(Duration::from_secs(60), client.request(req))
        .await
        .context("no answer in 60 s")??;
    let ok = resp.status().is_success() && !resp.headers().contains_key("x-amz-function-error");
    let body = resp.into_body().collect().await?.to_bytes();
    if !ok || !body.starts_with(br#"{"hello""#) {
        bail!("bad answer: {}", String::from_utf8_lossy(&body));
    }
    Ok(())
}

fn copy_dir(src: &Path, dest: &Path) -> Result<()> {
    std::fs::create_dir_all(dest)?;
    for entry in std::fs::read_dir(src)? {
        let entry = entry?;
        let to: PathBuf = dest.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &to)?;
        } else {
            std::fs::copy(entry.path(), &to)?;
        }
    }
    Ok(())
}
