//! `cargo xtask bench` (deploy part): calls and wall time of a first deploy,
//! a no-change redeploy and a code-change redeploy of the built cargo-fn,
//! counted by the test proxy (tests/it/support/moto.rs, included), against both AWS
//! doubles in one run: moto, and LocalStack (tests/it/support/localstack.rs, the
//! stricter one; its start-up is measured too). Baselines from the same
//! run: `cargo-fn --version` (process start) and one GET straight to each
//! double, cold (it loads its Lambda backend) and warm (a round trip). Then
//! the same three for an image function (`deploy --image --no-build`) on
//! moto only (LocalStack has no ECR here): moto for ECR and Lambda, a local
//! `docker-registry` behind the ECR shim of the tests (registry requests
//! counted too). The zip run also adds a public function URL and a secret,
//! then redeploys that unchanged.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

#[path = "../../tests/it/support/moto.rs"]
mod moto;

#[path = "../../tests/it/support/localstack.rs"]
mod localstack;

#[path = "../../tests/it/support/ecr_shim.rs"]
mod ecr_shim;

fn zip(path: &Path, content: &str) -> Result<()> {
    let file = std::fs::File::create(path)?;
    let mut z = zip::ZipWriter::new(file);
    let opts = zip::write::SimpleFileOptions::default()
        .unix_permissions(0o755)
        .last_modified_time(zip::DateTime::default());
    z.start_file("bootstrap", opts)?;
    z.write_all(format!("#!/bin/sh\n# {content}\n").as_bytes())?;
    z.finish()?;
    Ok(())
}

struct Sample {
    name: &'static str,
    wall: Duration,
    calls: Vec<String>,
    /// Requests that reached the registry (image deploys).
    registry: Option<Vec<String>>,
}

/// One double's figures: its baselines and the three zip deploys.
struct DoubleRun {
    name: &'static str,
    /// Spawn to answering its readiness check.
    startup: Duration,
    cold_trip: Duration,
    round_trip: Duration,
    samples: Vec<Sample>,
}

pub fn run() -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    // The dev build the tests use: a deploy's time is AWS round trips, and
    // a release build of the AWS SDK costs many minutes on this machine.
    crate::run(
        crate::cargo()
            .current_dir(&root)
            .args(["build", "--bin", "cargo-fn"]),
    )?;
    crate::tools::setup()?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let bin = target.join("debug/cargo-fn");

    let started = Instant::now();
    let status = Command::new(&bin).arg("--version").output()?.status;
    let process_start = started.elapsed();
    if !status.success() {
        bail!("cargo-fn --version failed");
    }

    let mut runs = Vec::new();
    {
        let started = Instant::now();
        let moto = moto::Moto::start();
        let startup = started.elapsed();
        runs.push(zip_run(&bin, "moto 5.2", moto.port, startup)?);
    }
    {
        let started = Instant::now();
        let ls = localstack::LocalStack::start();
        let startup = started.elapsed();
        runs.push(zip_run(&bin, "LocalStack 2026.3", ls.port, startup)?);
    }
    let image = image_samples(&bin)?;

    println!("deploy benchmark (via the counting proxy, dev build)");
    println!(
        "  baseline: cargo-fn --version      {:>8.1?}",
        process_start
    );
    for r in &runs {
        println!("  {}:", r.name);
        println!("    start-up (spawn to ready)       {:>8.1?}", r.startup);
        println!("    first Lambda GET (cold)         {:>8.1?}", r.cold_trip);
        println!("    one Lambda GET (warm)           {:>8.1?}", r.round_trip);
        print_samples(&r.samples);
    }
    println!("  moto 5.2, image function:");
    print_samples(&image);
    println!("  no-change redeploy, side by side:");
    for r in &runs {
        if let Some(s) = r.samples.iter().find(|s| s.name == "no-change redeploy") {
            println!(
                "    {:<30} {:>8.1?}  {} calls ({} writes)",
                r.name,
                s.wall,
                s.calls.len(),
                s.calls.iter().filter(|c| !moto::is_read(c)).count()
            );
        }
    }
    Ok(())
}

fn print_samples(samples: &[Sample]) {
    for s in samples {
        let reads = s.calls.iter().filter(|c| moto::is_read(c)).count();
        println!(
            "    {:<30} {:>8.1?}  {} calls ({} reads, {} writes)",
            s.name,
            s.wall,
            s.calls.len(),
            reads,
            s.calls.len() - reads
        );
        for c in &s.calls {
            println!("        {c}");
        }
        if let Some(r) = &s.registry {
            let blobs = r
                .iter()
                .filter(|c| {
                    (c.starts_with("PUT ") || c.starts_with("PATCH ")) && c.contains("/blobs/")
                })
                .count();
            println!(
                "        registry: {} requests, {blobs} blob uploads",
                r.len()
            );
        }
    }
}

/// First deploy, no-change and code-change redeploys of a zip function
/// against the double on `port`, through a proxy of its own.
fn zip_run(bin: &Path, name: &'static str, port: u16, startup: Duration) -> Result<DoubleRun> {
    let proxy = moto::Proxy::start(port);
    let dir = tempfile::tempdir()?;
    std::fs::create_dir_all(dir.path().join("src"))?;
    std::fs::write(
        dir.path().join("Cargo.toml"),
        "[package]\nname = \"hello\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n\n[package.metadata.fn]\nmemory = 256\n",
    )?;
    std::fs::write(dir.path().join("src/main.rs"), "fn main() {}\n")?;
    let v1 = dir.path().join("v1.zip");
    let v2 = dir.path().join("v2.zip");
    zip(&v1, "one")?;
    zip(&v2, "two")?;

    // The first Lambda request makes the double load its Lambda backend:
    // time it (every first deploy pays it) and a warm one separately.
    let started = Instant::now();
    moto::http(port, "GET", "/2015-03-31/functions/", b"");
    let cold_trip = started.elapsed();
    let started = Instant::now();
    moto::http(port, "GET", "/2015-03-31/functions/", b"");
    let round_trip = started.elapsed();

    let deploy = |zip: &Path| -> Result<Duration> {
        let mut cmd = Command::new(bin);
        cmd.current_dir(dir.path())
            .args(["deploy", "--quiet", "--zip"])
            .arg(zip)
            .env_remove("AWS_PROFILE");
        for (k, v) in moto::client_env(proxy.url()) {
            cmd.env(k, v);
        }
        let started = Instant::now();
        let out = cmd.output().context("run cargo-fn deploy")?;
        let wall = started.elapsed();
        if !out.status.success() {
            bail!(
                "deploy against {name} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(wall)
    };
    let mut samples = Vec::new();
    for (sample, zip) in [
        ("first deploy", &v1),
        ("no-change redeploy", &v1),
        ("code-change redeploy", &v2),
    ] {
        proxy.reset_calls();
        let wall = deploy(zip)?;
        samples.push(Sample {
            name: sample,
            wall,
            calls: proxy.calls(),
            registry: None,
        });
    }
    // A public URL and a secret: the URL statements and the role policy
    // are decided from the function's tags, then two more reads (the URL
    // and its policy) per deploy.
    std::fs::write(
        dir.path().join("Cargo.toml"),
        "[package]\nname = \"hello\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n\n[package.metadata.fn]\nmemory = 256\nfunction-url = { auth = \"NONE\" }\nsecrets = { DB_SECRET = \"prod/db\" }\n",
    )?;
    for sample in ["URL + secret added", "URL + secret, no change"] {
        proxy.reset_calls();
        let wall = deploy(&v2)?;
        samples.push(Sample {
            name: sample,
            wall,
            calls: proxy.calls(),
            registry: None,
        });
    }
    Ok(DoubleRun {
        name,
        startup,
        cold_trip,
        round_trip,
        samples,
    })
}

/// First deploy, no-change and code-change redeploys of an image function.
fn image_samples(bin: &Path) -> Result<Vec<Sample>> {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/image-fn");
    let target = crate::tools::tools_dir().join("test-target");
    crate::run(
        crate::cargo()
            .args(["build", "--release", "--quiet", "--manifest-path"])
            .arg(fixture.join("Cargo.toml"))
            .args(["--target", "x86_64-unknown-linux-musl"])
            .env("CARGO_TARGET_DIR", &target),
    )?;
    let bootstrap = target.join("x86_64-unknown-linux-musl/release/image-fn");

    let aws = moto::Aws::start_with_env(&[("MOTO_LAMBDA_STUB_ECR", "false")]);
    let work = tempfile::tempdir()?;
    let registry = crate::bench_image::LocalRegistry::start(work.path())?;
    let shim = ecr_shim::Shim::start(&registry.addr, aws.moto.port);
    let dir = work.path().join("hello");
    std::fs::create_dir_all(dir.join("src"))?;
    std::fs::write(
        dir.join("Cargo.toml"),
        "[package]\nname = \"hello\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n\n[package.metadata.fn]\npackage-type = \"image\"\nimage = { keep = 5 }\n",
    )?;
    std::fs::write(dir.join("src/main.rs"), "fn main() {}\n")?;
    let package = |content: &str| -> Result<()> {
        std::fs::write(dir.join("data.txt"), content)?;
        let out = Command::new(bin)
            .current_dir(&dir)
            .args([
                "package",
                "--image",
                "--quiet",
                "--include",
                "data.txt",
                "--binary",
            ])
            .arg(&bootstrap)
            .output()?;
        if !out.status.success() {
            bail!(
                "package --image failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    };
    let mut samples = Vec::new();
    for (name, content) in [
        ("first image deploy", "one"),
        ("no-change image redeploy", "one"),
        ("code-change image redeploy", "two"),
    ] {
        package(content)?;
        aws.proxy.reset_calls();
        shim.reset();
        let mut cmd = Command::new(bin);
        cmd.current_dir(&dir)
            .args(["deploy", "--quiet", "--no-build"])
            .env_remove("AWS_PROFILE")
            .env("CARGO_FN_ECR_REGISTRY", shim.url());
        for (k, v) in aws.env() {
            cmd.env(k, v);
        }
        let started = Instant::now();
        let out = cmd.output().context("run cargo-fn deploy --image")?;
        let wall = started.elapsed();
        if !out.status.success() {
            bail!(
                "image deploy failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        samples.push(Sample {
            name,
            wall,
            calls: aws.proxy.calls(),
            registry: Some(shim.calls()),
        });
    }
    Ok(samples)
}
