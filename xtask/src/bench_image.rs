//! Benchmark of `cargo fn package --image` against the zip of the same
//! function, and of pushing it to a local registry (`docker-registry` on a
//! free loopback port): a first push, then a second push of the unchanged
//! image, which should upload no blob.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use cargo_fn::config::{Arch, Runtime};
use cargo_fn::image::registry::Registry;
use cargo_fn::image::{self, ImageSpec};
use cargo_fn::package::{self, Input, PackageOptions};
use cargo_fn::ui::Ui;

use crate::{cargo, run, tools};

const RUNS: usize = 5;

pub fn run_image() -> Result<()> {
    tools::setup()?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/image-fn");
    let target = tools::tools_dir().join("test-target");
    run(cargo()
        .args(["build", "--release", "--quiet", "--manifest-path"])
        .arg(root.join("Cargo.toml"))
        .args(["--target", "x86_64-unknown-linux-musl"])
        .env("CARGO_TARGET_DIR", &target))?;
    let bootstrap = target.join("x86_64-unknown-linux-musl/release/image-fn");
    let work = tempfile::tempdir()?;

    let input = Input {
        name: "image-fn".into(),
        extension: false,
        architecture: Arch::X86_64,
        runtime: Runtime::ProvidedAl2023,
        binary: bootstrap.clone(),
        package_dir: root.clone(),
        include: vec![],
    };
    let opts = PackageOptions {
        layer: None,
        limits: Default::default(),
        out: None,
    };
    let mut zip_times = Vec::new();
    let mut zip_size = 0;
    for _ in 0..RUNS {
        let start = Instant::now();
        let p = package::package(
            std::slice::from_ref(&input),
            &opts,
            work.path(),
            &Ui::silent(),
        )?;
        zip_times.push(start.elapsed());
        zip_size = p[0].zipped_size;
    }
    let spec = ImageSpec {
        arch: image::Platform::Amd64,
        bootstrap,
        files: vec![],
        env: Default::default(),
        ca_certificates: false,
        tzdata: false,
        sysroot: None,
        base: None,
    };
    let mut image_times = Vec::new();
    let mut built = None;
    for _ in 0..RUNS {
        let start = Instant::now();
        let b = image::build(&spec, &work.path().join("image"))?;
        image_times.push(start.elapsed());
        built = Some(b);
    }
    let built = built.context("no image built")?;
    let image_size: u64 = built.layers.iter().map(|l| l.size).sum();
    println!("bench image (static musl image-fn, median of {RUNS}):");
    println!(
        "  zip    {:>8.1} ms  {:>9} bytes",
        ms(median(zip_times)),
        zip_size
    );
    println!(
        "  image  {:>8.1} ms  {:>9} bytes of layers (+ config and manifest)",
        ms(median(image_times)),
        image_size
    );

    let registry = LocalRegistry::start(work.path())?;
    let mut client = Registry::new(&registry.addr, None, true);
    let start = Instant::now();
    let first = client.push_layout(&built.layout, "bench/image-fn", "v1")?;
    let first_time = start.elapsed();
    let start = Instant::now();
    let second = client.push_layout(&built.layout, "bench/image-fn", "v2")?;
    let second_time = start.elapsed();
    println!(
        "  push, first:  {:>8.1} ms  ({} blobs, {} bytes uploaded)",
        ms(first_time),
        first.uploaded.len(),
        first.bytes_uploaded
    );
    println!(
        "  push, again:  {:>8.1} ms  ({} blobs uploaded, {} skipped)",
        ms(second_time),
        second.uploaded.len(),
        second.skipped.len()
    );
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// `docker-registry` on a free loopback port, stopped on drop.
pub(crate) struct LocalRegistry {
    child: std::process::Child,
    pub(crate) addr: String,
}

impl LocalRegistry {
    pub(crate) fn start(dir: &Path) -> Result<LocalRegistry> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let addr = format!("127.0.0.1:{port}");
        let config = dir.join("registry.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
                dir.join("registry-data").display()
            ),
        )?;
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting docker-registry (cargo xtask setup installs it)")?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&addr).is_err() {
            if Instant::now() > deadline {
                bail!("docker-registry did not start on {addr}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(LocalRegistry { child, addr })
    }
}

impl Drop for LocalRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
