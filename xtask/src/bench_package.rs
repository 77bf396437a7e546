//! Benchmarks of `cargo fn build` and `cargo fn package`:
//!
//! - packaging throughput and peak memory (GNU time's max RSS of the
//!   release `cargo fn package --binary`) for 10 MB and 100 MB bootstraps
//!   (a real bootstrap padded with random bytes);
//! - the overhead of `cargo fn build` over the very cargo-zigbuild (or
//!   cargo) command it runs, for a no-op and an incremental build, measured
//!   alternately in the same run.
//!
//! Goals: >= 200 MB/s packaging, memory independent of size; build overhead
//! < 5% and < 100 ms on a no-op.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::{cargo, run};

const RUNS: usize = 5;

pub fn run_all() -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let root = root.canonicalize()?;
    run(cargo()
        .current_dir(&root)
        .args(["build", "--release", "--bin", "cargo-fn", "-q"]))?;
    let cargo_fn = root.join("target/release/cargo-fn");
    let bootstrap = build_overhead(&root, &cargo_fn)?;
    packaging(&cargo_fn, &bootstrap)?;
    Ok(())
}

/// Peak RSS (KB) and wall time of a command, through GNU time.
fn time_rss(cmd: &mut Command) -> Result<(u64, f64)> {
    let report = tempfile::NamedTempFile::new()?;
    let program = cmd.get_program().to_owned();
    let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
    let out = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%M %e")
        .arg("-o")
        .arg(report.path())
        .arg(program)
        .args(args)
        .stdout(Stdio::null())
        .output()
        .context("running /usr/bin/time (apt install time; cargo xtask setup)")?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let text = std::fs::read_to_string(report.path())?;
    let last = text.lines().last().context("no GNU time report")?;
    let mut fields = last.split_whitespace();
    let kb = fields.next().context("no RSS")?.parse()?;
    let secs = fields.next().context("no time")?.parse()?;
    Ok((kb, secs))
}

/// A real bootstrap followed by pseudo-random bytes (xorshift64*) up to
/// `size`: a valid ELF for the artifact check, incompressible like the
/// worst case, with no dependency.
fn padded_bootstrap(bootstrap: &Path, path: &Path, size: usize) -> Result<()> {
    use std::io::Write;
    std::fs::copy(bootstrap, path)?;
    let mut written = std::fs::metadata(path)?.len() as usize;
    let mut f = std::io::BufWriter::new(std::fs::OpenOptions::new().append(true).open(path)?);
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15 ^ size as u64;
    let mut buf = [0u8; 8192];
    while written < size {
        for chunk in buf.chunks_mut(8) {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            chunk.copy_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
        }
        let n = (size - written).min(buf.len());
        f.write_all(&buf[..n])?;
        written += n;
    }
    f.flush()?;
    Ok(())
}

fn packaging(cargo_fn: &Path, bootstrap: &Path) -> Result<()> {
    let dir = tempfile::tempdir()?;
    println!(
        "\n== cargo fn package --binary (release build; best of {RUNS}; bootstrap padded with random bytes) =="
    );
    println!(
        "{:>14} {:>10} {:>12} {:>12}",
        "input", "time", "throughput", "peak RSS"
    );
    let base = std::fs::metadata(bootstrap)?.len() as usize;
    for (label, size) in [
        ("bootstrap", base),
        ("10 MB", 10 * 1024 * 1024),
        ("100 MB", 100 * 1024 * 1024),
    ] {
        let input = dir.path().join(format!("bootstrap-{size}"));
        padded_bootstrap(bootstrap, &input, size)?;
        let mut best: Option<(f64, u64)> = None;
        for _ in 0..RUNS {
            let (kb, secs) = time_rss(
                Command::new(cargo_fn)
                    .current_dir(dir.path())
                    .args(["package", "-q", "--x86-64", "--binary"])
                    .arg(&input)
                    .arg("--out")
                    .arg(dir.path().join("out.zip")),
            )?;
            if best.is_none_or(|b| secs < b.0) {
                best = Some((secs.max(0.001), kb));
            }
        }
        let (secs, kb) = best.expect("runs");
        println!(
            "{:>14} {:>8.0}ms {:>7.0} MB/s {:>9} KB",
            format!("{label} ({:.1} MB)", size as f64 / 1_048_576.0),
            secs * 1000.0,
            size as f64 / 1_048_576.0 / secs,
            kb
        );
    }
    Ok(())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time(cmd: &mut Command) -> Result<Duration> {
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let started = Instant::now();
    let status = cmd.status().with_context(|| format!("starting {cmd:?}"))?;
    let took = started.elapsed();
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(took)
}

fn build_overhead(root: &Path, cargo_fn: &Path) -> Result<PathBuf> {
    use cargo_fn::toolchain::{BuildRequest, Driver, Host};
    let tmp = tempfile::tempdir()?;
    let krate = tmp.path().join("bench_hello");
    copy_dir(&root.join("tests/fixtures/hello"), &krate)?;
    let manifest = krate.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest)?.replacen(
        "name = \"hello\"",
        "name = \"bench_hello\"",
        1,
    );
    std::fs::write(&manifest, text)?;
    let target_dir = root.join("target/test-crates");
    let path = crate::tools::path_with_tools()?;

    // The command cargo fn runs for this host, built by the same library code.
    let host = Host::detect();
    let runtime = cargo_fn::config::Runtime::ProvidedAl2023;
    let arch = cargo_fn::config::Arch::X86_64;
    let driver = cargo_fn::toolchain::choose_driver(&host, arch, false, runtime.glibc());
    let req = BuildRequest {
        packages: vec!["bench_hello".into()],
        bins: vec!["bench_hello".into()],
        profile: "release".into(),
        target: Some(arch.gnu_triple().into()),
        target_dir: Some(target_dir.clone()),
        driver,
        glibc: Some(runtime.glibc()),
        path: Some(path.clone()),
        ..Default::default()
    };
    let plain = || {
        let mut c = req.command();
        c.current_dir(&krate);
        c
    };
    let ours = || {
        let mut c = Command::new(cargo_fn);
        c.current_dir(&krate)
            .env("PATH", &path)
            .env_remove("CARGO_TARGET_DIR")
            .args(["build", "-q", "--x86-64", "--target-dir"])
            .arg(&target_dir);
        c
    };
    println!(
        "\n== cargo fn build overhead over `{}` (x86_64, release, median of {RUNS}, alternating) ==",
        if driver == Driver::Zigbuild {
            "cargo zigbuild --target x86_64-unknown-linux-gnu.2.34"
        } else {
            "cargo build"
        }
    );
    eprintln!("xtask: warming up (first build of the fixture)");
    time(&mut ours())?;
    time(&mut plain())?;

    let mut rows = Vec::new();
    for (label, touch) in [("no-op", false), ("incremental", true)] {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for i in 0..RUNS {
            let main = krate.join("src/main.rs");
            if touch {
                edit(&main, 2 * i)?;
            }
            a.push(time(&mut plain())?);
            if touch {
                edit(&main, 2 * i + 1)?;
            }
            b.push(time(&mut ours())?);
        }
        rows.push((label, median(a), median(b)));
    }
    println!(
        "{:>12} {:>12} {:>12} {:>10} {:>9}",
        "build", "plain", "cargo fn", "overhead", "percent"
    );
    for (label, plain, ours) in rows {
        let over = ours.as_secs_f64() - plain.as_secs_f64();
        println!(
            "{:>12} {:>10.0}ms {:>10.0}ms {:>8.0}ms {:>8.1}%",
            label,
            plain.as_secs_f64() * 1000.0,
            ours.as_secs_f64() * 1000.0,
            over * 1000.0,
            over / plain.as_secs_f64() * 100.0
        );
    }
    Ok(target_dir.join("lambda/bench_hello/bootstrap"))
}

/// A real source change (a new constant), so cargo recompiles the crate.
fn edit(main: &Path, n: usize) -> Result<()> {
    let text = std::fs::read_to_string(main)?;
    let base = text
        .split("\n// bench edit")
        .next()
        .unwrap_or(&text)
        .to_string();
    std::fs::write(
        main,
        format!("{base}\n// bench edit\n#[allow(dead_code)]\nconst BENCH_EDIT: usize = {n};\n"),
    )?;
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
