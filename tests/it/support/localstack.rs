//! Test harness for deploy: LocalStack's core, the stricter AWS double
//! (it enforces RevisionId and CodeSha256 preconditions, which moto does
//! not), installed by `cargo xtask setup` in its own Python 3.13 venv with
//! our runtime-executor plugin (xtask/localstack-plugin: functions reach
//! Active without Docker; their code never runs).
//!
//! One LocalStack serves a whole test run ([`LocalStack::shared`]): it is
//! ready in ~1.5 s on an idle machine (7.5 s on a loaded one), but each
//! service then loads on its first request (IAM and Lambda ~4 s together,
//! idle) and it holds ~0.5 GB, so one per test would cost more than the
//! tests. Tests keep apart by naming their resources uniquely
//! (tests/it/support/doubles.rs). It listens on 127.0.0.1 only, keeps its files in
//! a temp dir, and is killed (its whole process group) when the test
//! process ends: a watchdog shell waits for its stdin to close.

#![allow(dead_code)]

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::moto::{http, tools_dir};

/// The services the deploy tests (and what builds on deploy) use.
const SERVICES: &str = "lambda,iam,sts,s3,sqs,scheduler,cloudwatch,logs";

/// A running LocalStack.
pub struct LocalStack {
    pub port: u16,
    /// The watchdog shell; LocalStack runs in its own process group under it.
    child: Child,
    /// Closing it makes the watchdog kill LocalStack and remove `root`.
    stdin: Option<ChildStdin>,
    root: PathBuf,
}

static SHARED: OnceLock<LocalStack> = OnceLock::new();

impl LocalStack {
    /// The LocalStack of this test run, started on first use. It is never
    /// dropped: it ends with the test process (see the module doc).
    pub fn shared() -> &'static LocalStack {
        SHARED.get_or_init(LocalStack::start)
    }

    /// A LocalStack of its own; killed on drop. Panics loudly when it is
    /// not installed or does not start.
    pub fn start() -> LocalStack {
        let python = tools_dir().join("localstack-venv/bin/python");
        assert!(
            python.exists(),
            "LocalStack is not installed at {}: run `cargo xtask setup`",
            python.display()
        );
        let mut last_log = String::new();
        for _ in 0..3 {
            let port = TcpListener::bind("127.0.0.1:0")
                .expect("bind a free port")
                .local_addr()
                .unwrap()
                .port();
            let root = tempfile::Builder::new()
                .prefix("cargo-fn-localstack-")
                .tempdir()
                .expect("temp dir")
                .keep();
            let mut ls = LocalStack::spawn(&python, port, &root);
            if ls.wait_ready(Duration::from_secs(90)) {
                return ls;
            }
            last_log = read_log(&root);
            drop(ls);
        }
        panic!("LocalStack did not start on 127.0.0.1; its log:\n{last_log}");
    }

    fn spawn(python: &Path, port: u16, root: &Path) -> LocalStack {
        // `set -m` puts LocalStack in a process group of its own, so the
        // kill reaches whatever it spawned. The shell ignores signals (and
        // so does `cat`): only the end of its stdin, which comes when the
        // test process exits or drops the handle, stops it.
        let script = r#"trap '' INT TERM HUP
set -m
"$0" -m localstack.runtime.main </dev/null >>"$LS_LOG" 2>&1 &
pid=$!
cat >/dev/null
kill -KILL -- "-$pid" 2>/dev/null
wait
rm -rf "$LS_ROOT""#;
        let mut cmd = Command::new("bash");
        cmd.arg("-c")
            .arg(script)
            .arg(python)
            .env("LS_ROOT", root)
            .env("LS_LOG", log_path(root))
            .envs(server_env(port, root))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // Not in the terminal's foreground group: Ctrl-C goes to the test
        // process only, whose exit then closes the pipe.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut child = cmd.spawn().expect("start bash for LocalStack");
        let stdin = child.stdin.take();
        LocalStack {
            port,
            child,
            stdin,
            root: root.to_path_buf(),
        }
    }

    fn wait_ready(&mut self, limit: Duration) -> bool {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                let (status, body) = http(self.port, "GET", "/_localstack/health", b"");
                let health: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                if status == 200
                    && SERVICES.split(',').all(|s| {
                        health["services"][s]
                            .as_str()
                            .is_some_and(|v| v != "disabled")
                    })
                {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// LocalStack's own log so far (for a failing test's message).
    pub fn log(&self) -> String {
        read_log(&self.root)
    }
}

/// LocalStack's log: in its temp dir, or where `CARGO_FN_LOCALSTACK_LOG`
/// says (kept after the run: every request LocalStack answered, with its
/// status and error code).
fn log_path(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_FN_LOCALSTACK_LOG") {
        Some(p) => PathBuf::from(p),
        None => root.join("localstack.log"),
    }
}

fn read_log(root: &Path) -> String {
    let mut bytes = Vec::new();
    if let Ok(mut f) = std::fs::File::open(log_path(root)) {
        let _ = f.read_to_end(&mut bytes);
    }
    let start = bytes.len().saturating_sub(4000);
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

/// LocalStack's settings: loopback only, files under `root`, nothing that
/// reaches outside this machine.
fn server_env(port: u16, root: &Path) -> Vec<(&'static str, String)> {
    vec![
        // The hypercorn server binds exactly GATEWAY_LISTEN (the default
        // server binds 0.0.0.0).
        ("GATEWAY_SERVER", "hypercorn".into()),
        ("GATEWAY_LISTEN", format!("127.0.0.1:{port}")),
        // The host in the URLs it hands out (GetFunction's pre-signed
        // `Code.Location`): by default localhost.localstack.cloud, which
        // only public DNS resolves (to 127.0.0.1); offline it is not found.
        ("LOCALSTACK_HOST", format!("127.0.0.1:{port}")),
        ("SERVICES", SERVICES.into()),
        ("LAMBDA_RUNTIME_EXECUTOR", "cargo-fn-noop".into()),
        // Host mode: with it, LocalStack keeps its files under
        // FILESYSTEM_ROOT; in a container it would use /var/lib/localstack
        // and ping the Docker bridge address.
        ("OVERRIDE_IN_DOCKER", "0".into()),
        ("FILESYSTEM_ROOT", root.display().to_string()),
        ("DOCKER_BRIDGE_IP", "127.0.0.1".into()),
        // Its DNS server would bind 0.0.0.0:53; no certificate download,
        // no usage events.
        ("DNS_ADDRESS", "0".into()),
        ("SKIP_SSL_CERT_DOWNLOAD", "1".into()),
        ("DISABLE_EVENTS", "1".into()),
    ]
}

impl Drop for LocalStack {
    fn drop(&mut self) {
        // Closing the pipe is the stop signal; the watchdog cleans up.
        self.stdin.take();
        let _ = self.child.wait();
    }
}
