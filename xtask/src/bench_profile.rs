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
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
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
    // hyper may post the response on a new connection while the first one
    // is still open: serve every connection on its own thread.
    // Each run's events carry the run number as request id, so a late
    // response from an earlier run is never counted.
    let run = Arc::new(AtomicUsize::new(0));
    let (posted, responses) = mpsc::channel::<usize>();
    let current = run.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (posted, current) = (posted.clone(), current.clone());
            std::thread::spawn(move || {
                let _ = serve_connection(stream, &current, &posted);
            });
        }
    });
    let mut times = Vec::with_capacity(RUNS);
    for n in 1..=RUNS {
        run.store(n, Ordering::SeqCst);
        let started = Instant::now();
        let mut child = Command::new(bin)
            .env("AWS_LAMBDA_FUNCTION_NAME", "hello")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let answered = loop {
            match responses.recv_timeout(Duration::from_secs(120)) {
                Ok(id) if id == n => break Ok(()),
                Ok(_) => continue,
                Err(e) => break Err(e),
            }
        };
        times.push(started.elapsed());
        let _ = child.kill();
        let _ = child.wait();
        answered.context("the function did not post a response within 120 s")?;
    }
    times.sort();
    Ok(times[RUNS / 2])
}

/// Serves requests on one connection: an event with the current run number
/// as request id for each `GET .../invocation/next`; reports each
/// `POST .../invocation/{id}/response` on `posted`.
fn serve_connection(
    stream: std::net::TcpStream,
    run: &AtomicUsize,
    posted: &mpsc::Sender<usize>,
) -> Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
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
                "HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: {}\r\n\
                 Lambda-Runtime-Deadline-Ms: {deadline}\r\n\
                 Lambda-Runtime-Invoked-Function-Arn: \
                 arn:aws:lambda:us-east-1:123456789012:function:hello\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                run.load(Ordering::SeqCst),
                event.len()
            )?;
            writer.write_all(event)?;
        } else if request_line.starts_with("POST") {
            writer.write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")?;
            // POST /2018-06-01/runtime/invocation/{id}/response
            let id = request_line
                .split('/')
                .skip_while(|part| *part != "invocation")
                .nth(1)
                .and_then(|id| id.parse().ok());
            if let Some(id) = id {
                let _ = posted.send(id);
            }
        } else {
            bail!("unexpected request from the function: {request_line}");
        }
    }
}
