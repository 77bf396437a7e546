//! `cargo xtask bench-profile`: the figures behind the `[profile.release]`
//! of the built-in templates. Generates the `basic` template, builds it in
//! release mode with each candidate profile (cargo's `CARGO_PROFILE_RELEASE_*`
//! variables override the template's own table), and reports the stripped
//! binary size and the time from spawn to the first response on a fake
//! Lambda Runtime API (cold start plus one invoke).
//!
//! Slow (one full release build per variant); target dirs are kept in the
//! tools dir so a second run only re-measures.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// (label, opt-level, lto, codegen-units, strip, panic)
const VARIANTS: &[(&str, &str, &str, &str, &str, &str)] = &[
    ("cargo default", "3", "false", "16", "false", "unwind"),
    ("strip", "3", "false", "16", "true", "unwind"),
    ("O3 lto cgu1 strip", "3", "true", "1", "true", "unwind"),
    ("Os lto cgu1 strip", "s", "true", "1", "true", "unwind"),
    ("Os lto cgu1 strip abort", "s", "true", "1", "true", "abort"),
    ("O3 lto cgu1 strip abort", "3", "true", "1", "true", "abort"),
    ("Oz lto cgu1 strip abort", "z", "true", "1", "true", "abort"),
];

const RUNS: usize = 30;

pub fn run() -> Result<()> {
    let work = crate::tools::tools_dir().join("bench-profile");
    let krate = work.join("hello");
    if krate.exists() {
        std::fs::remove_dir_all(&krate)?;
    }
    std::fs::create_dir_all(&work)?;
    let rendered = cargo_fn::templates::builtin("basic")?
        .render("hello", &Default::default())
        .context("render the basic template")?;
    cargo_fn::templates::create_new(&krate, &rendered)?;

    println!(
        "| profile | opt-level | lto | codegen-units | strip | panic | size (bytes) | spawn to first response, median of {RUNS} (ms) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (i, (label, opt, lto, cgu, strip, panic)) in VARIANTS.iter().enumerate() {
        let target = work.join(format!("target-{i}"));
        let status = crate::cargo()
            .args(["build", "--release", "--quiet", "--target-dir"])
            .arg(&target)
            .current_dir(&krate)
            .env("CARGO_PROFILE_RELEASE_OPT_LEVEL", opt)
            .env("CARGO_PROFILE_RELEASE_LTO", lto)
            .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", cgu)
            .env("CARGO_PROFILE_RELEASE_STRIP", strip)
            .env("CARGO_PROFILE_RELEASE_PANIC", panic)
            .status()?;
        if !status.success() {
            bail!("release build `{label}` failed");
        }
        let bin = target.join("release/hello");
        let size = std::fs::metadata(&bin)?.len();
        let median = startup_median(&bin)?;
        println!(
            "| {label} | {opt} | {lto} | {cgu} | {strip} | {panic} | {size} | {:.2} |",
            median.as_secs_f64() * 1000.0
        );
    }
    Ok(())
}

/// Median time from spawning `bin` to its first response on a fake Runtime API.
fn startup_median(bin: &Path) -> Result<Duration> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let mut times = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let started = Instant::now();
        let mut child = Command::new(bin)
            .env("AWS_LAMBDA_FUNCTION_NAME", "hello")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        serve_one_invoke(&listener)?;
        times.push(started.elapsed());
        let _ = child.kill();
        let _ = child.wait();
    }
    times.sort();
    Ok(times[RUNS / 2])
}

/// Answers `GET .../invocation/next` with one event, then waits for the
/// `POST .../response` (on the same keep-alive connection or a new one).
fn serve_one_invoke(listener: &TcpListener) -> Result<()> {
    loop {
        let (stream, _) = listener.accept()?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut writer = stream.try_clone()?;
        let mut reader = BufReader::new(stream);
        loop {
            let mut request_line = String::new();
            if reader.read_line(&mut request_line)? == 0 {
                break; // connection closed: accept the next one
            }
            let mut content_length = 0usize;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line)?;
                if line.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = line.split_once(':')
                    && k.eq_ignore_ascii_case("content-length")
                {
                    content_length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; content_length];
            reader.read_exact(&mut body)?;
            if request_line.starts_with("GET") && request_line.contains("/invocation/next") {
                let event = br#"{"name":"world"}"#;
                let deadline = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)?
                    .as_millis()
                    + 30_000;
                write!(
                    writer,
                    "HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: bench\r\n\
                     Lambda-Runtime-Deadline-Ms: {deadline}\r\n\
                     Lambda-Runtime-Invoked-Function-Arn: \
                     arn:aws:lambda:us-east-1:123456789012:function:hello\r\n\
                     Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    event.len()
                )?;
                writer.write_all(event)?;
            } else if request_line.starts_with("POST") {
                writer.write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")?;
                return Ok(());
            } else {
                bail!("unexpected request from the function: {request_line}");
            }
        }
    }
}
