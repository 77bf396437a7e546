//! Development automation, run as `cargo xtask <task>` (see README).
//!
//! - `setup`: installs every tool the tests need on a fresh Debian machine
//!   (apt packages, a Python venv with zig, cargo-zigbuild and moto, one with
//!   LocalStack (Python 3.13) and our plugin for it, rustup
//!   targets) into a tools dir outside the clone, so it is reused across runs.
//! - `ci`: setup, then fmt --check, the house's rules (`arch`), the generated docs check, clippy -D
//!   warnings, all tests, and the guide build with its link check.
//! - `arch`: the house's import rules, checked from the source (see
//!   `arch.rs`); part of `ci`.
//! - `docs`: the guide's generated reference pages (`--check` compares);
//!   `ci` also builds the guide and checks its internal links.
//! - `dist`: shell completions and a man page from the clap definitions.
//! - `demo`: the main job end to end (see README).
//! - `bench-profile`: release profile candidates for the templates (size, start-up).
//! - `bench`: the benchmarks.

mod arch;
mod bench_dashboard;
mod bench_deploy;
mod bench_emulator;
mod bench_extensions;
mod bench_image;
mod bench_package;
mod bench_profile;
mod bench_ship;
mod bench_sqs;
mod bench_streams;
mod bench_tune;
mod bench_url;
mod demo;
mod docs;
mod tools;

use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
struct Xtask {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install the tools the tests need (idempotent)
    Setup,
    /// Setup, then formatting, lints and every test
    Ci,
    /// Check the house's rules: room import order (README), no circles, SDK types in aws/, short functions
    Arch {
        /// Print the floors today's imports allow instead of checking
        #[arg(long)]
        suggest: bool,
    },
    /// Regenerate the guide's reference pages from the code (`--check`: fail if they differ)
    Docs {
        #[arg(long)]
        check: bool,
        /// Also build the guide into target/book and check its internal links
        #[arg(long)]
        book: bool,
    },
    /// Generate shell completions and the man page into target/dist
    Dist,
    /// Release profile candidates for the templates: binary size and startup
    BenchProfile,
    /// The main job: scaffold, build, package, emulate and invoke a function
    Demo,
    /// Run the benchmarks and print their figures (packaging, build overhead, deploy, emulator)
    Bench {
        /// Only one part: `package`, `image`, `ship`, `deploy`, `emulator`, the emulator's
        /// `invoke`, `reload`, `stamina` (`--calls N`), `overload` or `phases` (perf syscall trace), `extensions`, `url` (function
        /// URL vs Invoke API round trip), `dashboard` (page weight, invocation -> row latency in
        /// headless Chromium), `sqs`, or `streams` (records/s through a Kinesis shard, factor 1 vs 10)
        #[arg(long)]
        only: Option<String>,
        /// Calls of the emulator's `stamina` part
        #[arg(long, default_value_t = 1_000_000)]
        calls: u64,
    },
}

fn main() -> Result<()> {
    match Xtask::parse().task {
        Task::Setup => tools::setup(),
        Task::Ci => ci(),
        Task::Arch { suggest } => {
            if suggest {
                arch::suggest()
            } else {
                arch::run()
            }
        }
        Task::Docs { check, book } => {
            docs::run_docs(check)?;
            if book {
                docs::build_book()?;
            }
            Ok(())
        }
        Task::Dist => dist(),
        Task::BenchProfile => bench_profile::run(),
        Task::Demo => demo::demo(),
        Task::Bench { only, calls } => bench(only.as_deref(), calls),
    }
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("xtask: running {cmd:?}");
    let status = cmd.status().with_context(|| format!("starting {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}

fn ci() -> Result<()> {
    let started = std::time::Instant::now();
    tools::setup()?;
    let path = tools::path_with_tools()?;
    run(cargo().args(["fmt", "--all", "--", "--check"]))?;
    arch::run()?;
    docs::run_docs(true)?;
    run(cargo()
        .args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ])
        .env("PATH", &path))?;
    run(cargo()
        .args(["test", "--workspace", "--", "--test-threads", "2"])
        .env("PATH", &path))?;
    docs::build_book()?;
    eprintln!("xtask: ci passed in {:.0?}", started.elapsed());
    Ok(())
}

/// Every benchmark, one after the other, each with its baseline measured in
/// the same run.
fn bench(only: Option<&str>, calls: u64) -> Result<()> {
    match only {
        None => {
            bench_package::run_all()?;
            bench_deploy::run()?;
            bench_release("image")?;
            bench_release("ship")?;
            bench_emulator::run("emulator", calls)?;
            bench_release("extensions")?;
            bench_tune::run()?;
            bench_release("url")?;
            bench_release("dashboard")?;
            bench_release("sqs")?;
            bench_release("streams")
        }
        Some("package") => bench_package::run_all(),
        Some("image") => bench_release("image"),
        Some("deploy") => bench_deploy::run(),
        Some("ship") => bench_release("ship"),
        // The function's release build is what is timed: no release xtask.
        Some("tune") => bench_tune::run(),
        // A release cargo-fn process driven from outside: the xtask itself
        // need not be a release build.
        Some(part @ ("emulator" | "invoke" | "reload" | "stamina" | "overload" | "phases")) => {
            bench_emulator::run(part, calls)
        }
        Some(part @ ("extensions" | "url" | "dashboard" | "sqs" | "streams")) => {
            bench_release(part)
        }
        Some(other) => {
            bail!(
                "--only expects package, image, ship, deploy, emulator, invoke, reload, stamina, overload, phases, extensions, tune, url, dashboard, sqs or streams; got `{other}`"
            )
        }
    }
}

/// Builds the fixture functions (tests/fixtures/functions) in release
/// into `target/bench` for the benches that serve them; returns where the
/// binaries are.
fn release_fixtures() -> Result<std::path::PathBuf> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = root.join("target/bench");
    eprintln!("bench: building the fixture functions (release)");
    let status = cargo()
        .args(["build", "--release", "--quiet", "--manifest-path"])
        .arg(root.join("tests/fixtures/functions/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .status()
        .context("running cargo")?;
    if !status.success() {
        bail!("building the fixture functions failed");
    }
    Ok(target.join("release"))
}

/// The emulator and image building are measured as users run them: a
/// release build. A debug xtask re-runs itself in release for these parts.
fn bench_release(part: &str) -> Result<()> {
    if cfg!(debug_assertions) {
        run(cargo().args([
            "run",
            "--release",
            "--quiet",
            "--package",
            "xtask",
            "--",
            "bench",
            "--only",
            part,
        ]))
    } else if part == "image" {
        bench_image::run_image()
    } else if part == "ship" {
        bench_ship::run()
    } else if part == "extensions" {
        bench_extensions::run()
    } else if part == "url" {
        bench_url::run()
    } else if part == "dashboard" {
        bench_dashboard::run()
    } else if part == "sqs" {
        bench_sqs::run()
    } else if part == "streams" {
        bench_streams::run()
    } else {
        bail!("no release part `{part}`")
    }
}

fn dist() -> Result<()> {
    use clap::CommandFactory;
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/dist");
    std::fs::create_dir_all(out.join("completions"))?;
    let mut cmd = cargo_fn::cli::Cli::command();
    for shell in [
        clap_complete::Shell::Bash,
        clap_complete::Shell::Zsh,
        clap_complete::Shell::Fish,
        clap_complete::Shell::PowerShell,
        clap_complete::Shell::Elvish,
    ] {
        clap_complete::generate_to(shell, &mut cmd, "cargo-fn", out.join("completions"))?;
    }
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd).render(&mut page)?;
    std::fs::write(out.join("cargo-fn.1"), page)?;
    eprintln!("xtask: wrote completions and man page to {}", out.display());
    Ok(())
}
