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
/// What GNU time reports about one run.
struct Usage {
    peak_kb: u64,
    wall: f64,
    /// User plus system CPU seconds: steadier than wall time on a shared machine.
    cpu: f64,
}

fn time_rss(cmd: &mut Command) -> Result<Usage> {
    let report = tempfile::NamedTempFile::new()?;
    let program = cmd.get_program().to_owned();
    let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
    let mut timed = Command::new("/usr/bin/time");
    if let Some(dir) = cmd.get_current_dir() {
        timed.current_dir(dir);
    }
    let out = timed
        .arg("-f")
        .arg("%M %e %U %S")
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
    let mut next =
        || -> Result<f64> { Ok(fields.next().context("short GNU time report")?.parse()?) };
    let peak_kb = next()? as u64;
    let wall = next()?;
    let cpu = next()? + next()?;
    Ok(Usage { peak_kb, wall, cpu })
}

/// A minimal x86_64 ELF header (no program or section headers: a static
/// executable as far as the artifact check is concerned) followed by
/// pseudo-random bytes (xorshift64*) up to `size`: random data, the worst
/// case for compression, that `cargo fn package --binary` accepts.
fn random_elf(path: &Path, size: usize) -> Result<()> {
    use std::io::Write;
    let mut header = [0u8; 64];
    header[..4].copy_from_slice(b"\x7fELF");
    header[4] = 2; // ELFCLASS64
    header[5] = 1; // little endian
    header[6] = 1; // EV_CURRENT
    header[16] = 2; // ET_EXEC
    header[18] = 62; // EM_X86_64
    header[20] = 1; // e_version
    header[52] = 64; // e_ehsize
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    f.write_all(&header)?;
    let mut written = header.len();
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
    println!("\n== cargo fn package --binary (release build, whole process; best of {RUNS}) ==");
    println!(
        "{:>24} {:>9} {:>11} {:>9} {:>11} {:>11}",
        "input", "wall", "wall MB/s", "cpu", "cpu MB/s", "peak RSS"
    );
    let base = std::fs::metadata(bootstrap)?.len() as usize;
    let real = dir.path().join("bootstrap-real");
    std::fs::copy(bootstrap, &real)?;
    for (label, size, input) in [
        ("real bootstrap", base, real),
        (
            "random 10 MB",
            10 * 1024 * 1024,
            dir.path().join("random-10"),
        ),
        (
            "random 100 MB",
            100 * 1024 * 1024,
            dir.path().join("random-100"),
        ),
    ] {
        if !input.exists() {
            random_elf(&input, size)?;
        }
        let mut best: Option<Usage> = None;
        for _ in 0..RUNS {
            let usage = time_rss(
                Command::new(cargo_fn)
                    .current_dir(dir.path())
                    .args(["package", "-q", "--x86-64", "--binary"])
                    .arg(&input)
                    .arg("--out")
                    .arg(dir.path().join("out.zip")),
            )?;
            if best.as_ref().is_none_or(|b| usage.wall < b.wall) {
                best = Some(usage);
            }
        }
        let b = best.expect("runs");
        let mb = size as f64 / 1_048_576.0;
        println!(
            "{:>24} {:>7.0}ms {:>6.0} MB/s {:>7.0}ms {:>6.0} MB/s {:>8} KB",
            format!("{label} ({mb:.1} MB)"),
            b.wall * 1000.0,
            mb / b.wall.max(0.001),
            b.cpu * 1000.0,
            mb / b.cpu.max(0.001),
            b.peak_kb
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
        "\n== cargo fn build overhead over `{}` (x86_64, release, median of 11 no-op / {RUNS} incremental, alternating) ==",
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
    for (label, touch, runs) in [("no-op", false, 11), ("incremental", true, RUNS)] {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for i in 0..runs {
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
