//! `cargo xtask bench --only emulator|invoke|reload|stamina|overload`: the
//! emulator measured from outside, as users run it. A release `cargo fn
//! watch --release` process (its output to a file) serves a generated crate
//! of `lambda_runtime` functions; `wrk` (keep-alive) drives it. Beside it,
//! in the same run and the same rounds: the floor, a bare nginx on loopback
//! answering a fixed JSON (its own config in a temp dir), and cargo-lambda's
//! `watch --release` (from PyPI, in the dev venv; left out, and said so, when
//! it cannot be installed). Figures are reported as ratios to the floor,
//! because this shared 2-core machine is noisy.
//!
//! - `invoke`: Invoke API and function URL at concurrency 1 and 8,
//!   InvokeWithResponseStream's first byte, a 10 ms sleeping function at 1
//!   vs 8, a CPU-bound one at 1 vs 2.
//! - `reload`: save to the new code answering, beyond the same incremental
//!   `cargo build`, a client looping throughout.
//! - `stamina`: `--calls N` (1,000,000 by default) mixed calls (Invoke, URL,
//!   streaming, 1% function errors, a hot reload every 100,000), the watch
//!   process's RSS and open descriptors every 10,000 calls, leftover
//!   environment processes at the end.
//! - `overload`: 10x the concurrency limit for 10 s: 429s with Lambda's
//!   TooManyRequestsException body, bounded memory.
//! - `phases`: one warm Invoke cut into the emulator's, the function's and
//!   the kernel's parts, from a `perf` trace of the syscalls ([`phases`]).

mod phases;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

const PAYLOAD: &str = r#"{"hello":"world","n":42}"#;
const ROUNDS: usize = 3;
const MEASURE_SECS: u32 = 3;
/// Concurrency limit of the watch process (its default).
const LIMIT: usize = 8;

pub fn run(part: &str, calls: u64) -> Result<()> {
    let setup = Setup::prepare()?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        match part {
            "emulator" => {
                invoke(&setup).await?;
                reload(&setup).await
            }
            "invoke" => invoke(&setup).await,
            "reload" => reload(&setup).await,
            "stamina" => stamina(&setup, calls).await,
            "overload" => overload(&setup).await,
            "phases" => phases::phases(&setup).await,
            other => bail!("unknown emulator bench part `{other}`"),
        }
    })
}

/// The release cargo-fn, the generated function crate and its target dir.
struct Setup {
    cargo_fn: PathBuf,
    /// Another build measured in the same rounds (`CARGO_FN_BENCH_BASE`).
    base: Option<PathBuf>,
    krate: PathBuf,
    target: PathBuf,
    work: tempfile::TempDir,
}

impl Setup {
    fn prepare() -> Result<Setup> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for tool in ["wrk", "nginx"] {
            if which(tool).is_none() {
                bail!("`{tool}` is not installed: run `cargo xtask setup`");
            }
        }
        // A given binary (an older build, to compare) or this tree's.
        let cargo_fn = match std::env::var_os("CARGO_FN_BENCH_BIN") {
            Some(bin) => PathBuf::from(bin),
            None => {
                eprintln!("bench: building cargo-fn (release)");
                super::run(super::cargo().current_dir(&root).args([
                    "build",
                    "--release",
                    "--quiet",
                    "--bin",
                    "cargo-fn",
                ]))?;
                root.join("target/release/cargo-fn")
            }
        };
        let target = root.join("target/bench/emulator");
        let krate = target.join("crate");
        write_crate(&krate, &root)?;
        write_version(&krate, 0)?;
        eprintln!("bench: building the bench functions (release)");
        super::run(
            super::cargo()
                .args(["build", "--release", "--quiet", "--manifest-path"])
                .arg(krate.join("Cargo.toml"))
                .env("CARGO_TARGET_DIR", target.join("fn")),
        )?;
        Ok(Setup {
            cargo_fn,
            base: std::env::var_os("CARGO_FN_BENCH_BASE").map(PathBuf::from),
            krate,
            target,
            work: tempfile::tempdir()?,
        })
    }
}

fn which(tool: &str) -> Option<PathBuf> {
    let path = super::tools::path_with_tools().ok()?;
    std::env::split_paths(&path)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
        .or_else(|| Some(PathBuf::from("/usr/sbin").join(tool)).filter(|p| p.is_file()))
}

/// The bench crate: echo (one log line; a handled error for `{"fail":1}`),
/// sleep, cpu, chunks (streaming) and version (the reload target).
fn write_crate(dir: &Path, root: &Path) -> Result<()> {
    let bin = dir.join("src/bin");
    std::fs::create_dir_all(&bin)?;
    let manifest = "[workspace]\n\n[package]\nname = \"benchfns\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
         [dependencies]\nlambda_http = \"1.3\"\nlambda_runtime = \"1.5\"\nserde_json = \"1\"\n\
         tokio = { version = \"1\", features = [\"macros\", \"rt-multi-thread\", \"time\"] }\n\n\
         # One vCPU per environment, as Lambda gives 1769 MB.\n\
         [package.metadata.fn.functions.cpu]\nmemory = 1769\n\n\
         # The emulator's own overhead is measured on these: at the default\n\
         # 128 MB a function gets 7% of a CPU (as on Lambda), and a caller\n\
         # at full speed measures that share instead.\n\
         [package.metadata.fn.functions.echo]\nmemory = 1769\n\n\
         [package.metadata.fn.functions.chunks]\nmemory = 1769\n";
    write_if_changed(&dir.join("Cargo.toml"), manifest)?;
    let lock = std::fs::read_to_string(root.join("tests/fixtures/functions/Cargo.lock"))?
        .replace("\"fixture-functions\"", "\"benchfns\"");
    write_if_changed(&dir.join("Cargo.lock"), &lock)?;
    let fixtures = root.join("tests/fixtures/functions/src/bin");
    for name in ["sleep", "cpu", "chunks"] {
        let text = std::fs::read_to_string(fixtures.join(format!("{name}.rs")))?;
        write_if_changed(&bin.join(format!("{name}.rs")), &text)?;
    }
    let echo = "use lambda_runtime::{service_fn, Error, LambdaEvent};\n\
        use serde_json::Value;\n\n\
        #[tokio::main]\n\
        async fn main() -> Result<(), Error> {\n    \
            lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {\n        \
                println!(\"echo handling {}\", event.context.request_id);\n        \
                if event.payload.get(\"fail\").is_some() {\n            \
                    return Err(\"asked to fail\".into());\n        \
                }\n        \
                Ok::<Value, Error>(event.payload)\n    \
            }))\n    .await\n}\n";
    write_if_changed(&bin.join("echo.rs"), echo)
}

fn write_if_changed(path: &Path, text: &str) -> Result<()> {
    if std::fs::read_to_string(path).ok().as_deref() != Some(text) {
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn write_version(dir: &Path, version: u64) -> Result<()> {
    let src = format!(
        "use lambda_runtime::{{service_fn, Error, LambdaEvent}};\n\
         use serde_json::{{json, Value}};\n\n\
         #[tokio::main]\n\
         async fn main() -> Result<(), Error> {{\n    \
             lambda_runtime::run(service_fn(|_e: LambdaEvent<Value>| async move {{\n        \
                 Ok::<Value, Error>(json!({{\"version\": {version}}}))\n    \
             }}))\n    .await\n}}\n"
    );
    let path = dir.join("src/bin/version.rs");
    if std::fs::read_to_string(&path).ok() == Some(src.clone()) {
        return Ok(());
    }
    let tmp = dir.join("src/bin/version.rs.tmp~");
    std::fs::write(&tmp, src)?;
    std::fs::rename(tmp, path)?;
    Ok(())
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A server process of the bench, stopped (SIGINT, then SIGKILL) on drop.
struct Server {
    name: &'static str,
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn stop(&mut self) {
        // SAFETY: a signal to our own child.
        unsafe { libc::kill(self.pid(), libc::SIGINT) };
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn start_nginx(work: &Path) -> Result<Server> {
    let dir = work.join("nginx");
    std::fs::create_dir_all(dir.join("tmp"))?;
    let port = free_port()?;
    let conf = format!(
        "worker_processes 2;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/tmp/body;\n  \
         proxy_temp_path {d}/tmp/proxy;\n  fastcgi_temp_path {d}/tmp/fcgi;\n  \
         uwsgi_temp_path {d}/tmp/uwsgi;\n  scgi_temp_path {d}/tmp/scgi;\n  \
         keepalive_requests 100000000;\n  \
         server {{\n    listen 127.0.0.1:{port};\n    location / {{\n      \
         default_type application/json;\n      return 200 '{PAYLOAD}';\n    }}\n  }}\n}}\n",
        d = dir.display()
    );
    std::fs::write(dir.join("nginx.conf"), conf)?;
    let log = dir.join("out.log");
    let child = Command::new(which("nginx").context("nginx")?)
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .arg("-p")
        .arg(&dir)
        .args(["-g", "daemon off;"])
        .stdout(std::fs::File::create(&log)?)
        .stderr(std::fs::File::create(dir.join("err.log"))?)
        .spawn()
        .context("starting nginx")?;
    Ok(Server {
        name: "bare nginx",
        child,
        port,
        log,
    })
}

fn start_watch(setup: &Setup, extra: &[&str]) -> Result<Server> {
    start_watch_of(setup, &setup.cargo_fn, "fn", "cargo fn", extra)
}

/// `cargo fn watch --release` of binary `bin`, building into its own
/// target dir `target` (under the bench's).
fn start_watch_of(
    setup: &Setup,
    bin: &Path,
    target: &str,
    name: &'static str,
    extra: &[&str],
) -> Result<Server> {
    let port = free_port()?;
    let log = setup.work.path().join(format!("watch-{port}.log"));
    let out = std::fs::File::create(&log)?;
    let child = Command::new(bin)
        .args(["fn", "watch", "--release", "--port", &port.to_string()])
        .args(extra)
        .arg("--manifest-path")
        .arg(setup.krate.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", setup.target.join(target))
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()
        .context("starting cargo fn watch")?;
    Ok(Server {
        name,
        child,
        port,
        log,
    })
}

/// cargo-lambda from PyPI in the dev venv; None (with the reason printed)
/// when it cannot be had.
fn start_cargo_lambda(setup: &Setup) -> Option<Server> {
    let venv = super::tools::tools_dir().join("venv");
    let bin = venv.join("bin/cargo-lambda");
    if !bin.is_file() {
        eprintln!("bench: installing cargo-lambda from PyPI into the dev venv");
        let ok = Command::new(venv.join("bin/pip"))
            .args([
                "install",
                "-q",
                "--disable-pip-version-check",
                "cargo-lambda",
            ])
            .status()
            .is_ok_and(|s| s.success());
        if !ok || !bin.is_file() {
            println!(
                "\ncargo-lambda could not be installed (pip install cargo-lambda): left out\n"
            );
            return None;
        }
    }
    let port = free_port().ok()?;
    let log = setup.work.path().join("cargo-lambda.log");
    let out = std::fs::File::create(&log).ok()?;
    let child = Command::new(&bin)
        .args([
            "lambda",
            "watch",
            "--release",
            "--invoke-port",
            &port.to_string(),
        ])
        .current_dir(&setup.krate)
        .env("PATH", super::tools::path_with_tools().ok()?)
        .env("CARGO_TARGET_DIR", setup.target.join("cargo-lambda"))
        .stdin(Stdio::null())
        .stdout(out.try_clone().ok()?)
        .stderr(out)
        .spawn();
    match child {
        Ok(child) => Some(Server {
            name: "cargo-lambda",
            child,
            port,
            log,
        }),
        Err(e) => {
            println!("\ncargo-lambda did not start ({e}): left out\n");
            None
        }
    }
}

fn client() -> HttpClient {
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(256)
        .build_http()
}

/// Posts until a 200 comes back (the server has built and started).
async fn wait_ready(client: &HttpClient, server: &mut Server, url: &str, body: &str) -> Result<()> {
    let until = Instant::now() + Duration::from_secs(900);
    loop {
        if let Ok(Some(status)) = server.child.try_wait() {
            bail!(
                "{} exited ({status}); its output: {}",
                server.name,
                server.log.display()
            );
        }
        if let Ok(r) = call(client, "POST", url, body).await
            && r.status == 200
        {
            return Ok(());
        }
        if Instant::now() > until {
            bail!("{} did not answer within 15 minutes", server.name);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

struct Answer {
    status: u16,
    function_error: bool,
    body: Bytes,
    first_byte: Duration,
}

async fn call(client: &HttpClient, method: &str, url: &str, body: &str) -> Result<Answer> {
    let t = Instant::now();
    let req = hyper::Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::copy_from_slice(body.as_bytes())))?;
    let resp = tokio::time::timeout(Duration::from_secs(30), client.request(req))
        .await
        .context("no answer in 30 s")??;
    let status = resp.status().as_u16();
    let function_error = resp.headers().contains_key("x-amz-function-error");
    let mut body = resp.into_body();
    let mut all = Vec::new();
    let mut first_byte = None;
    while let Some(frame) = tokio::time::timeout(Duration::from_secs(30), body.frame())
        .await
        .context("body stalled")?
    {
        if let Ok(data) = frame?.into_data()
            && !data.is_empty()
        {
            first_byte.get_or_insert_with(|| t.elapsed());
            all.extend_from_slice(&data);
        }
    }
    Ok(Answer {
        status,
        function_error,
        body: all.into(),
        first_byte: first_byte.unwrap_or_else(|| t.elapsed()),
    })
}

/// One wrk run's figures.
#[derive(Clone, Copy, Default)]
struct Wrk {
    p50: f64,
    p99: f64,
    rps: f64,
    requests: u64,
    errors: u64,
}

/// A process as /proc/<pid>/stat shows it.
struct Proc {
    pid: i32,
    ppid: i32,
    name: String,
    /// CPU time used so far (user + system), in clock ticks.
    ticks: u64,
}

/// `root` itself and its descendants, from one read of /proc.
fn descendants(root: i32) -> (Option<Proc>, Vec<Proc>) {
    let mut procs: Vec<Proc> = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (name) state ppid ...`; utime and stime are the 12th and
        // 13th fields after the name.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let f: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        procs.push(Proc {
            pid,
            ppid: num(1) as i32,
            name: stat[open + 1..close].to_string(),
            ticks: num(11) + num(12),
        });
    }
    let own = procs
        .iter()
        .position(|p| p.pid == root)
        .map(|i| procs.swap_remove(i));
    let mut tree = Vec::new();
    let mut parents = vec![root];
    while let Some(parent) = parents.pop() {
        let (children, rest): (Vec<Proc>, Vec<Proc>) =
            procs.into_iter().partition(|p| p.ppid == parent);
        procs = rest;
        parents.extend(children.iter().map(|p| p.pid));
        tree.extend(children);
    }
    (own, tree)
}

/// CPU seconds (user + system) used so far by a process and by all its
/// descendants.
fn tree_cpu(root: i32) -> (f64, f64) {
    // SAFETY: sysconf only reads a constant.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let (own, below) = descendants(root);
    let own = own.map_or(0, |p| p.ticks);
    let below: u64 = below.iter().map(|p| p.ticks).sum();
    (own as f64 / tick, below as f64 / tick)
}

/// [`wrk`], and the CPU time per answered call of the server process and
/// of its children (the function processes) while it ran.
fn wrk_cpu(
    work: &Path,
    server: i32,
    url: &str,
    body: Option<&str>,
    conns: usize,
    secs: u32,
) -> Result<(Wrk, f64, f64)> {
    let (own0, below0) = tree_cpu(server);
    let w = wrk(work, url, body, conns, secs)?;
    let (own1, below1) = tree_cpu(server);
    let calls = w.requests.max(1) as f64;
    Ok((
        w,
        (own1 - own0) * 1e6 / calls,
        (below1 - below0) * 1e6 / calls,
    ))
}

/// `wrk` with keep-alive at `conns` connections for `secs`, POSTing
/// `body` (or GETting when None).
fn wrk(work: &Path, url: &str, body: Option<&str>, conns: usize, secs: u32) -> Result<Wrk> {
    let out = wrk_command(work, url, body, conns, secs)?
        .output()
        .context("running wrk")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!("wrk failed: {text}{}", String::from_utf8_lossy(&out.stderr));
    }
    parse_wrk(&text).with_context(|| format!("reading wrk's output:\n{text}"))
}

/// The `wrk` command line (and its Lua script, written to `work`).
fn wrk_command(
    work: &Path,
    url: &str,
    body: Option<&str>,
    conns: usize,
    secs: u32,
) -> Result<Command> {
    let script = work.join(format!("wrk-{}.lua", conns));
    let lua = match body {
        Some(b) => format!(
            "wrk.method = \"POST\"\nwrk.body = '{b}'\nwrk.headers[\"Content-Type\"] = \"application/json\"\n"
        ),
        None => "wrk.method = \"GET\"\n".to_string(),
    };
    std::fs::write(&script, lua)?;
    let mut cmd = Command::new("wrk");
    cmd.args(["--latency", "-t", if conns > 1 { "2" } else { "1" }])
        .args(["-c", &conns.to_string(), "-d", &format!("{secs}s")])
        .args(["--timeout", "10s", "-s"])
        .arg(&script)
        .arg(url);
    Ok(cmd)
}

fn parse_wrk(text: &str) -> Result<Wrk> {
    let mut w = Wrk::default();
    let dur = |s: &str| -> Result<f64> {
        let (num, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic()).context("unit")?);
        let v: f64 = num.parse()?;
        Ok(match unit {
            "us" => v / 1000.0,
            "ms" => v,
            "s" => v * 1000.0,
            "m" => v * 60_000.0,
            u => bail!("unit {u}"),
        })
    };
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["50%", v] => w.p50 = dur(v)?,
            ["99%", v] => w.p99 = dur(v)?,
            ["Requests/sec:", v] => w.rps = v.parse()?,
            [n, "requests", "in", ..] => w.requests = n.parse()?,
            ["Non-2xx", "or", "3xx", "responses:", n] => w.errors += n.parse::<u64>()?,
            ["Socket", "errors:", rest @ ..] => {
                for n in rest
                    .iter()
                    .filter_map(|s| s.trim_end_matches(',').parse::<u64>().ok())
                {
                    w.errors += n;
                }
            }
            _ => {}
        }
    }
    if w.requests == 0 {
        bail!("no requests");
    }
    Ok(w)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p) as usize).min(sorted.len() - 1);
    sorted[i].as_secs_f64() * 1e3
}

/// Time to the first body byte of `n` sequential calls (ms: p50, p99).
async fn first_bytes(client: &HttpClient, url: &str, body: &str, n: usize) -> Result<(f64, f64)> {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let a = call(client, "POST", url, body).await?;
        if a.status != 200 {
            bail!("status {} from {url}", a.status);
        }
        samples.push(a.first_byte);
    }
    samples.sort();
    Ok((pct(&samples, 0.5), pct(&samples, 0.99)))
}

async fn invoke(setup: &Setup) -> Result<()> {
    let client = client();
    let work = setup.work.path();
    let mut nginx = start_nginx(work)?;
    let mut watch = start_watch(setup, &[])?;
    let mut lambda = start_cargo_lambda(setup);
    let mut base = match &setup.base {
        Some(bin) => Some(start_watch_of(
            setup,
            bin,
            "fn-base",
            "cargo fn (base)",
            &[],
        )?),
        None => None,
    };
    let invoke_path = |f: &str| format!("/2015-03-31/functions/{f}/invocations");
    let bare = nginx.url("/");
    eprintln!("bench: waiting for the servers (cargo fn watch builds first)");
    wait_ready(&client, &mut nginx, &bare, PAYLOAD).await?;
    let fn_invoke = watch.url(&invoke_path("echo"));
    wait_ready(&client, &mut watch, &fn_invoke, PAYLOAD).await?;
    let fn_url = watch.url("/lambda-url/echo/hello");
    let fn_stream = watch.url("/2021-11-15/functions/chunks/response-streaming-invocations");
    if let Some(l) = lambda.as_mut() {
        eprintln!("bench: waiting for cargo-lambda (it builds on the first call)");
        let url = l.url(&invoke_path("echo"));
        if let Err(e) = wait_ready(&client, l, &url, PAYLOAD).await {
            println!("\ncargo-lambda left out: {e:#}\n");
            lambda = None;
        }
    }
    if let Some(b) = base.as_mut() {
        let url = b.url(&invoke_path("echo"));
        wait_ready(&client, b, &url, PAYLOAD).await?;
    }
    // Streaming and the URL front warm too.
    first_bytes(&client, &fn_stream, "{}", 20).await?;
    call(&client, "GET", &fn_url, "").await?;

    // (target, concurrency) -> per-round figures.
    let mut rows: Vec<(String, usize, Vec<Wrk>)> = Vec::new();
    let mut push = |name: &str, c: usize, w: Wrk| match rows
        .iter_mut()
        .find(|(n, cc, _)| n == name && *cc == c)
    {
        Some((_, _, v)) => v.push(w),
        None => rows.push((name.to_string(), c, vec![w])),
    };
    let mut streams: Vec<(&str, f64, f64)> = Vec::new();
    // (target, emulator µs per call, function µs per call), at concurrency 1.
    let mut cpu: Vec<(&str, f64, f64)> = Vec::new();
    for round in 1..=ROUNDS {
        eprintln!("bench: round {round}/{ROUNDS}");
        for c in [1usize, 8] {
            push(
                "bare nginx",
                c,
                wrk(work, &bare, Some(PAYLOAD), c, MEASURE_SECS)?,
            );
            // cargo fn, then the baseline build and cargo-lambda when run.
            for server in std::iter::once(&watch).chain(&base).chain(&lambda) {
                let (w, own, below) = wrk_cpu(
                    work,
                    server.pid(),
                    &server.url(&invoke_path("echo")),
                    Some(PAYLOAD),
                    c,
                    MEASURE_SECS,
                )?;
                if c == 1 {
                    cpu.push((server.name, own, below));
                }
                push(&format!("{} Invoke", server.name), c, w);
            }
            push(
                "cargo fn URL",
                c,
                wrk(work, &fn_url, None, c, MEASURE_SECS)?,
            );
        }
        let (p50, p99) = first_bytes(&client, &bare, PAYLOAD, 1000).await?;
        streams.push(("bare nginx", p50, p99));
        let (p50, p99) = first_bytes(&client, &fn_stream, "{}", 1000).await?;
        streams.push(("cargo fn stream", p50, p99));
    }

    println!(
        "\n## Warm calls from outside (wrk, keep-alive; median of {ROUNDS} rounds of {MEASURE_SECS} s)\n"
    );
    println!("| target | concurrency | p50 | p99 | requests/s | errors |");
    println!("|---|---|---|---|---|---|");
    let med = |v: &[Wrk], f: fn(&Wrk) -> f64| median(v.iter().map(f).collect());
    for (name, c, v) in &rows {
        println!(
            "| {name} | {c} | {:.3} ms | {:.3} ms | {:.0} | {} |",
            med(v, |w| w.p50),
            med(v, |w| w.p99),
            med(v, |w| w.rps),
            v.iter().map(|w| w.errors).sum::<u64>()
        );
    }
    let get = |name: &str, c: usize| {
        rows.iter()
            .find(|(n, cc, _)| n == name && *cc == c)
            .map(|r| &r.2)
    };
    let bare1 = get("bare nginx", 1).expect("measured");
    println!("\nRatios to bare nginx at concurrency 1, per round (goal: p50 <= 3x, p99 <= 5x):\n");
    for target in [
        "cargo fn Invoke",
        "cargo fn URL",
        "cargo fn (base) Invoke",
        "cargo-lambda Invoke",
    ] {
        let Some(v) = get(target, 1) else { continue };
        let p50: Vec<String> = v
            .iter()
            .zip(bare1)
            .map(|(w, b)| format!("{:.2}x", w.p50 / b.p50))
            .collect();
        let p99: Vec<String> = v
            .iter()
            .zip(bare1)
            .map(|(w, b)| format!("{:.2}x", w.p99 / b.p99))
            .collect();
        println!("- {target}: p50 {} ; p99 {}", p50.join(" "), p99.join(" "));
    }
    for (other, goal) in [
        ("cargo-lambda Invoke", " (goal < 1)"),
        ("cargo fn (base) Invoke", ""),
    ] {
        if let (Some(f), Some(o)) = (get("cargo fn Invoke", 1), get(other, 1)) {
            let r: Vec<String> = f
                .iter()
                .zip(o)
                .map(|(a, b)| format!("{:.2}x", a.p50 / b.p50))
                .collect();
            println!(
                "- cargo fn / {other} p50 at 1, per round{goal}: {}",
                r.join(" ")
            );
        }
    }
    println!(
        "\nCPU time per Invoke at concurrency 1 (user + system, from /proc; median of the rounds):\n"
    );
    for target in ["cargo fn", "cargo fn (base)", "cargo-lambda"] {
        let own: Vec<f64> = cpu.iter().filter(|c| c.0 == target).map(|c| c.1).collect();
        let below: Vec<f64> = cpu.iter().filter(|c| c.0 == target).map(|c| c.2).collect();
        if own.is_empty() {
            continue;
        }
        println!(
            "- {target}: emulator {:.0} µs, the echo function (lambda_runtime) {:.0} µs",
            median(own),
            median(below)
        );
    }
    println!(
        "\nInvokeWithResponseStream first byte (own client, 1000 sequential calls per round):\n"
    );
    for chunk in streams.chunks(2) {
        let (b, s) = (&chunk[0], &chunk[1]);
        println!(
            "- bare nginx first byte p50 {:.3} ms p99 {:.3} ms; cargo fn stream p50 {:.3} ms ({:.2}x) p99 {:.3} ms ({:.2}x)",
            b.1,
            b.2,
            s.1,
            s.1 / b.1,
            s.2,
            s.2 / b.2
        );
    }

    // Environments in parallel: a 10 ms sleep (not CPU-bound), and a
    // CPU-bound function with one vCPU per environment.
    println!("\n## Scaling\n");
    let sleep = watch.url(&invoke_path("sleep"));
    wait_ready(&client, &mut watch, &sleep, r#"{"ms":10}"#).await?;
    let s1 = wrk(work, &sleep, Some(r#"{"ms":10}"#), 1, MEASURE_SECS)?;
    let s8 = wrk(work, &sleep, Some(r#"{"ms":10}"#), 8, MEASURE_SECS)?;
    println!(
        "- sleep 10 ms: {:.0} req/s at 1, {:.0} at 8: {:.2}x (goal 8x within 10%)",
        s1.rps,
        s8.rps,
        s8.rps / s1.rps
    );
    let cpu = watch.url(&invoke_path("cpu"));
    wait_ready(&client, &mut watch, &cpu, r#"{"rounds":10}"#).await?;
    let c1 = wrk(work, &cpu, Some(r#"{"rounds":10}"#), 1, MEASURE_SECS)?;
    let c2 = wrk(work, &cpu, Some(r#"{"rounds":10}"#), 2, MEASURE_SECS)?;
    println!(
        "- CPU-bound (1769 MB = 1 vCPU each): {:.0} req/s at 1, {:.0} at 2: {:.2}x (goal >= 1.8x; {} CPUs, shared)",
        c1.rps,
        c2.rps,
        c2.rps / c1.rps,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    let lines = std::fs::read_to_string(&watch.log)?.lines().count();
    println!("\nwatch output written to a file: {lines} lines");
    drop(nginx);
    drop(lambda);
    drop(base);
    drop(watch);
    Ok(())
}

async fn version_of(client: &HttpClient, url: &str) -> Result<u64> {
    let a = call(client, "POST", url, "{}").await?;
    if a.status != 200 || a.function_error {
        bail!("failed invocation ({})", a.status);
    }
    let v: serde_json::Value = serde_json::from_slice(&a.body)?;
    v["version"].as_u64().context("no version")
}

/// watch's own account of each reload: (total from save, cargo's part),
/// from its `Reloaded generation N in T ms (cargo B ms)` lines.
fn reload_lines(log: &Path) -> Vec<(Duration, Duration)> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let rest = &l[l.find("Reloaded")? + "Reloaded".len()..];
            let total = rest.split(" in ").nth(1)?.split(" ms").next()?;
            let cargo = rest.split("(cargo ").nth(1)?.split(" ms").next()?;
            Some((
                Duration::from_millis(total.trim().parse().ok()?),
                Duration::from_millis(cargo.trim().parse().ok()?),
            ))
        })
        .collect()
}

async fn reload(setup: &Setup) -> Result<()> {
    let client = client();
    write_version(&setup.krate, 0)?;
    let mut watch = start_watch(setup, &[])?;
    let url = watch.url("/2015-03-31/functions/version/invocations");
    wait_ready(&client, &mut watch, &url, "{}").await?;

    let stop = Arc::new(AtomicBool::new(false));
    let latest = Arc::new(AtomicU64::new(u64::MAX));
    let (failures, answered) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
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
                match version_of(&client, &url).await {
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
    let mut rows = Vec::new();
    let mut version = 0;
    for _ in 0..5 {
        version += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let saved = Instant::now();
        write_version(&setup.krate, version)?;
        let seen = wait_version(&first_seen, version, Duration::from_secs(300)).await?;
        rows.push((version, seen.duration_since(saved)));
    }
    stop.store(true, Ordering::SeqCst);
    looper.await?;
    // The incremental build each reload needed is the one watch ran: its
    // time, from watch's own line, is taken out of the total seen outside.
    let builds = reload_lines(&watch.log);
    drop(watch);
    if builds.len() != rows.len() {
        bail!(
            "watch reported {} reloads for {} saves (see its output)",
            builds.len(),
            rows.len()
        );
    }

    println!("\n## Hot reload from outside (release; save -> first answer from the new code)\n");
    println!(
        "| reload | save to new answer (outside) | its cargo build (watch's line) | overhead | watch's own save-to-swap |"
    );
    println!("|---|---|---|---|---|");
    let mut overheads = Vec::new();
    for ((v, seen), (swapped, build)) in rows.iter().zip(&builds) {
        let overhead = seen.as_secs_f64() - build.as_secs_f64();
        overheads.push(overhead * 1e3);
        println!(
            "| {v} | {:.0} ms | {} ms | {:.0} ms | {} ms |",
            seen.as_secs_f64() * 1e3,
            build.as_millis(),
            overhead * 1e3,
            swapped.as_millis()
        );
    }
    println!(
        "\nmedian overhead beyond cargo: {:.0} ms (goal < 100 ms; includes the 25 ms debounce)",
        median(overheads)
    );
    println!(
        "calls during the reloads: {} answered, {} failed or unanswered",
        answered.load(Ordering::SeqCst),
        failures.load(Ordering::SeqCst)
    );
    Ok(())
}

async fn wait_version(
    first_seen: &std::sync::Mutex<Vec<(u64, Instant)>>,
    version: u64,
    limit: Duration,
) -> Result<Instant> {
    let until = Instant::now() + limit;
    loop {
        if let Some((_, at)) = first_seen
            .lock()
            .unwrap()
            .iter()
            .find(|(v, _)| *v == version)
        {
            return Ok(*at);
        }
        if Instant::now() > until {
            bail!("version {version} never answered");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// An event stream with the three chunks in order and its InvokeComplete
/// (the frames wrap each chunk; the bytes between are binary).
fn streamed_in_order(body: &[u8]) -> bool {
    let find = |from: usize, needle: &[u8]| {
        body[from..]
            .windows(needle.len())
            .position(|w| w == needle)
            .map(|i| from + i + needle.len())
    };
    find(0, b"first")
        .and_then(|at| find(at, b"second"))
        .and_then(|at| find(at, b"third"))
        .and_then(|at| find(at, b"InvokeComplete"))
        .is_some()
}

/// Resident memory (kB) and open descriptors of a process.
fn rss_and_fds(pid: i32) -> (u64, usize) {
    let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0);
    (rss, fds)
}

/// Processes running a binary of the bench crate's target dir.
fn function_processes(dir: &Path) -> usize {
    // /proc gives canonical paths; the target dir is spelled with `..`.
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter(|e| std::fs::read_link(e.path().join("exe")).is_ok_and(|exe| exe.starts_with(&dir)))
        .count()
}

async fn stamina(setup: &Setup, calls: u64) -> Result<()> {
    let client = client();
    write_version(&setup.krate, 0)?;
    let mut watch = start_watch(setup, &[])?;
    let invoke = watch.url("/2015-03-31/functions/echo/invocations");
    wait_ready(&client, &mut watch, &invoke, PAYLOAD).await?;
    let url = watch.url("/lambda-url/echo/stamina");
    let stream = watch.url("/2021-11-15/functions/chunks/response-streaming-invocations");
    let version = watch.url("/2015-03-31/functions/version/invocations");
    wait_ready(&client, &mut watch, &version, "{}").await?;

    let next = Arc::new(AtomicU64::new(0));
    let (bad, unanswered) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let done = Arc::new(AtomicU64::new(0));
    println!("\n## Stamina: {calls} mixed calls through `cargo fn watch --release`, 8 clients\n");
    println!("| calls | RSS | open fds | calls/s since last |");
    println!("|---|---|---|---|");
    let pid = watch.pid();
    let (rss0, fds0) = rss_and_fds(pid);
    println!("| 0 | {} MB | {fds0} | |", rss0 / 1024);
    let mut workers = Vec::new();
    for _ in 0..LIMIT {
        let (client, next, bad, unanswered, done) = (
            client.clone(),
            next.clone(),
            bad.clone(),
            unanswered.clone(),
            done.clone(),
        );
        let (invoke, url, stream, version) =
            (invoke.clone(), url.clone(), stream.clone(), version.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= calls {
                    return;
                }
                let result = match i % 100 {
                    // 1% function errors.
                    0 => call(&client, "POST", &invoke, r#"{"fail":1}"#)
                        .await
                        .map(|a| a.status == 200 && a.function_error),
                    n if n % 4 == 1 => call(&client, "GET", &url, "")
                        .await
                        .map(|a| a.status == 200),
                    n if n % 4 == 2 => call(&client, "POST", &stream, "{}")
                        .await
                        .map(|a| a.status == 200 && streamed_in_order(&a.body)),
                    n if n % 16 == 3 => call(&client, "POST", &version, "{}")
                        .await
                        .map(|a| a.status == 200 && !a.function_error),
                    _ => call(&client, "POST", &invoke, PAYLOAD)
                        .await
                        .map(|a| a.status == 200 && &a.body[..] == PAYLOAD.as_bytes()),
                };
                match result {
                    Ok(true) => {}
                    Ok(false) => {
                        bad.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(_) => {
                        unanswered.fetch_add(1, Ordering::SeqCst);
                    }
                }
                done.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    let mut sampled = 0u64;
    let mut reloads = 0u64;
    let mut last = Instant::now();
    let mut curve = Vec::new();
    loop {
        let d = done.load(Ordering::SeqCst);
        if d >= sampled + 10_000 || d >= calls {
            let at = if d >= calls { calls } else { sampled + 10_000 };
            let (rss, fds) = rss_and_fds(pid);
            let rate = (at - sampled) as f64 / last.elapsed().as_secs_f64();
            last = Instant::now();
            println!(
                "| {at} | {:.1} MB | {fds} | {rate:.0} |",
                rss as f64 / 1024.0
            );
            curve.push((at, rss, fds));
            sampled = at;
            if at / 100_000 > reloads && at < calls {
                reloads = at / 100_000;
                // A hot reload while the clients keep calling.
                write_version(&setup.krate, reloads)?;
            }
        }
        if d >= calls {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for w in workers {
        w.await?;
    }
    let v = version_of(&client, &version).await?;
    // watch runs copies of the binaries under the target dir's lambda/.
    let target_dir = setup.target.join("fn");
    let live = function_processes(&target_dir);
    drop(watch);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let left = function_processes(&target_dir);
    let warm: Vec<&(u64, u64, usize)> = curve.iter().filter(|(at, _, _)| *at >= 50_000).collect();
    if let (Some(first), Some(last)) = (warm.first(), warm.last()) {
        println!(
            "\nafter warm-up ({} -> {} calls): RSS {:+.1} MB, open fds {:+}",
            first.0,
            last.0,
            (last.1 as f64 - first.1 as f64) / 1024.0,
            last.2 as i64 - first.2 as i64
        );
    }
    println!(
        "wrong answers {}, unanswered {}; {reloads} hot reloads (the version function answers {v}); \
         function/extension processes at the end: {live} live under watch, {left} left after it stopped",
        bad.load(Ordering::SeqCst),
        unanswered.load(Ordering::SeqCst)
    );
    Ok(())
}

async fn overload(setup: &Setup) -> Result<()> {
    let client = client();
    let mut watch = start_watch(setup, &[])?;
    let sleep = watch.url("/2015-03-31/functions/sleep/invocations");
    wait_ready(&client, &mut watch, &sleep, r#"{"ms":10}"#).await?;
    let pid = watch.pid();
    let (rss0, fds0) = rss_and_fds(pid);
    let conns = LIMIT * 10;
    println!(
        "\n## Overload: {conns} clients (10x the limit of {LIMIT}) for 10 s on a 50 ms function\n"
    );
    let body = r#"{"ms":50}"#;
    let work = setup.work.path().to_path_buf();
    let url = sleep.clone();
    let load = std::thread::spawn(move || wrk(&work, &url, Some(body), conns, 10));
    // One throttled answer's shape, taken while the load runs.
    let mut sample = None;
    let t = Instant::now();
    let mut peak = rss0;
    while t.elapsed() < Duration::from_secs(9) {
        let a = call(&client, "POST", &sleep, body).await?;
        if a.status == 429 && sample.is_none() {
            sample = Some(a.body.clone());
        }
        peak = peak.max(rss_and_fds(pid).0);
    }
    let w = load.join().expect("wrk thread")?;
    let (rss1, fds1) = rss_and_fds(pid);
    println!(
        "- {} calls in 10 s ({:.0}/s), {} answered non-2xx (throttled); p50 {:.1} ms p99 {:.1} ms",
        w.requests, w.rps, w.errors, w.p50, w.p99
    );
    match sample {
        Some(b) => println!("- a throttled answer: 429 {}", String::from_utf8_lossy(&b)),
        None => println!("- no 429 seen by the sampling client"),
    }
    println!(
        "- watch RSS {:.1} MB before, {:.1} MB peak, {:.1} MB after; fds {fds0} -> {fds1}",
        rss0 as f64 / 1024.0,
        peak as f64 / 1024.0,
        rss1 as f64 / 1024.0
    );
    let _ = std::io::stdout().flush();
    drop(watch);
    Ok(())
}
