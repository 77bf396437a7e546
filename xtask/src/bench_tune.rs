//! `cargo xtask bench --only tune`: the wall time of a local `cargo fn
//! tune` of the basic template (6 sizes x 10 invocations, the function's
//! release build under the emulator with Lambda's limits), and how well the
//! CPU share is modelled: the CPU-bound fixture's duration at 128 MB over
//! its duration at 1,769 MB, next to Lambda's documented proportion
//! (1,769 / 128 = 13.8: CPU is allocated in proportion to memory).
//!
//! Runs in the debug xtask on purpose: what is timed is the function's
//! release build under the emulator, not cargo-fn's own code.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use cargo_fn::emulator::{Emulator, EmulatorOptions, FunctionSpec, LimitsStatus};
use cargo_fn::project::Selection;
use cargo_fn::tune::{LocalTarget, Payload, TuneOptions};

const SIZES: [u32; 2] = [128, 1769];

pub fn run() -> Result<()> {
    let tools = crate::tools::tools_dir();
    let work = tools.join("bench-tune");
    let krate = work.join("hello");
    if krate.exists() {
        std::fs::remove_dir_all(&krate)?;
    }
    std::fs::create_dir_all(&work)?;
    let rendered = cargo_fn::templates::builtin("basic")?
        .render("hello", &Default::default())
        .context("render the basic template")?;
    cargo_fn::templates::create_new(&krate, &rendered)?;
    // zig and cargo-zigbuild for the release build, as `cargo fn build` uses them.
    let mut path = vec![tools.join("venv/bin")];
    path.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    // SAFETY: single-threaded here, before any runtime starts.
    unsafe { std::env::set_var("PATH", std::env::join_paths(path)?) };

    let target = LocalTarget {
        selection: Selection {
            manifest_path: Some(krate.join("Cargo.toml")),
            target_dir: Some(tools.join("test-target")),
            ..Default::default()
        },
        overrides: Default::default(),
        cargo_flags: Vec::new(),
        function: None,
    };
    let opts = TuneOptions {
        payloads: vec![Payload {
            body: br#"{"name":"bench"}"#.to_vec(),
            weight: 1,
        }],
        ..Default::default()
    };
    let ui = cargo_fn::ui::Ui::new(
        true,
        0,
        cargo_fn::ui::ColorChoice::Never,
        cargo_fn::ui::OutputFormat::Human,
    );
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        // The first run builds (release, deps maybe cached); the second is
        // what a developer re-running tune waits for.
        let started = Instant::now();
        cargo_fn::tune::local(&opts, &target, &ui).await?;
        let first = started.elapsed();
        let started = Instant::now();
        let report = cargo_fn::tune::local(&opts, &target, &ui).await?;
        let again = started.elapsed();
        print!("{}", cargo_fn::tune::table(&report));
        println!(
            "tune (basic template, 6 sizes x 10 invocations): {:.1} s including the release build, {:.1} s with the build up to date",
            first.as_secs_f64(),
            again.as_secs_f64()
        );
        cpu_ratio().await
    })
}

/// Median warm duration of the CPU-bound fixture at each size.
async fn cpu_ratio() -> Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = crate::tools::tools_dir().join("test-target");
    let status = crate::cargo()
        .args(["build", "--quiet", "--bin", "cpu", "--manifest-path"])
        .arg(root.join("tests/fixtures/functions/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .status()
        .context("running cargo")?;
    if !status.success() {
        bail!("building the cpu fixture failed");
    }
    let mut medians = Vec::new();
    for memory in SIZES {
        let mut spec = FunctionSpec::new("cpu", target.join("debug/cpu"));
        spec.memory_mb = memory;
        spec.timeout = Duration::from_secs(120);
        let emulator = Emulator::start(
            EmulatorOptions {
                bind: "127.0.0.1:0".parse()?,
                log_sink: std::sync::Arc::new(|_| {}),
                limits: true,
                ..Default::default()
            },
            vec![spec],
        )
        .await?;
        if let LimitsStatus::Unavailable(why) = emulator.limits() {
            bail!("limits cannot be set here: {why}");
        }
        let mut durations = Vec::new();
        for i in 0..6 {
            let out = cargo_fn::invoke::invoke(&cargo_fn::invoke::InvokeOptions {
                function: "cpu".into(),
                qualifier: None,
                payload: br#"{"rounds":20}"#.to_vec(),
                target: cargo_fn::invoke::Target::Local {
                    endpoint: emulator.endpoint(),
                },
                tail_log: true,
                asynchronous: false,
            })
            .await?;
            let sample = cargo_fn::tune::stats::parse_report(&out.log.unwrap_or_default())
                .context("no REPORT line")?;
            if i > 0 {
                durations.push(sample.duration_ms);
            }
        }
        emulator.shutdown().await;
        durations.sort_by(f64::total_cmp);
        let median = durations[durations.len() / 2];
        println!(
            "cpu fixture (20M xorshift steps) at {memory} MB: median {median:.1} ms of {durations:?}"
        );
        medians.push(median);
    }
    let lambda = f64::from(SIZES[1]) / f64::from(SIZES[0]);
    println!(
        "duration 128 MB / 1,769 MB: {:.1}x predicted here; Lambda's documented proportion {lambda:.1}x (CPU share follows memory; 1,769 MB = 1 vCPU)",
        medians[0] / medians[1]
    );
    Ok(())
}
