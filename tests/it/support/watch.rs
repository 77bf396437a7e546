//! `cargo fn watch` as the tests run it: in this process
//! ([`Watch::start`], with its events) or as the CLI ([`CliWatch::start`],
//! with its stderr); both return once watch serves and stop on drop. Also
//! the one-function crate the watch tests edit.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use cargo_fn::emulator::EmulatorOptions;
use cargo_fn::project::Selection;
use cargo_fn::ui::Ui;
use cargo_fn::watch::{WatchEvent, WatchOptions};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::emulator::Logs;
use super::{cargo_fn_command, path_with_tools, shared_target_dir};

/// How long the first build may take before Ready (a cold shared target
/// dir on a loaded machine).
const READY_WITHIN: Duration = Duration::from_secs(600);

/// `cargo_fn::watch::run` on a task of the test's runtime, serving.
pub struct Watch {
    /// The Invoke API (and HTTP front) address, e.g. `http://127.0.0.1:PORT`.
    pub endpoint: String,
    events: mpsc::UnboundedReceiver<WatchEvent>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Watch {
    /// Starts watch with `opts` and waits for Ready; panics if the first
    /// build fails or watch ends first.
    pub async fn start(opts: WatchOptions) -> Watch {
        let (tx, mut events) = mpsc::unbounded_channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(cargo_fn::watch::run(opts, Ui::silent(), Some(tx), async {
            let _ = stopped.await;
        }));
        let endpoint = loop {
            let event = tokio::time::timeout(READY_WITHIN, events.recv())
                .await
                .expect("watch ready within 10 minutes");
            match event {
                Some(WatchEvent::Ready { endpoint }) => break endpoint,
                Some(WatchEvent::BuildFailed) => panic!("the first build failed"),
                Some(_) => {}
                None => panic!("watch ended before Ready: {:?}", task.await),
            }
        };
        Watch {
            endpoint,
            events,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// The next event (a rebuild, its result), within 5 minutes.
    pub async fn next_event(&mut self) -> WatchEvent {
        tokio::time::timeout(Duration::from_secs(300), self.events.recv())
            .await
            .expect("a watch event within 5 minutes")
            .expect("watch still running")
    }

    /// An event already sent, if any (without waiting).
    pub fn try_event(&mut self) -> Option<WatchEvent> {
        self.events.try_recv().ok()
    }

    /// Waits for the next reload, passing over rebuild starts; panics on
    /// anything else (a failed build).
    pub async fn reloaded(&mut self) {
        loop {
            match self.next_event().await {
                WatchEvent::Reloaded { .. } => return,
                WatchEvent::Rebuilding { .. } => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    /// Stops watch as Ctrl-C does and returns how it ended.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.take().unwrap().await.expect("the watch task")
    }
}

impl Drop for Watch {
    /// A test that ends early (or panics) still stops watch: its function
    /// processes end with it.
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let Some(task) = self.task.take() else { return };
        let multi_thread = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        if multi_thread {
            tokio::task::block_in_place(|| {
                let _ = tokio::runtime::Handle::current()
                    .block_on(tokio::time::timeout(Duration::from_secs(30), task));
            });
        }
    }
}

/// `cargo-fn watch ARGS` run as a user runs it, in `dir` with the test
/// tools on PATH; killed on drop unless stopped.
pub struct CliWatch {
    pub child: Child,
    /// Its stderr lines not yet read.
    pub lines: std_mpsc::Receiver<String>,
    /// The stderr lines read until it served.
    pub seen: Vec<String>,
    pub port: u16,
}

impl CliWatch {
    /// Starts `cargo-fn watch --port P ARGS` in `dir` and returns once a
    /// stderr line says it is serving.
    pub fn start(dir: &Path, args: &[&str]) -> CliWatch {
        CliWatch::start_until(dir, args, "Serving")
    }

    /// [`CliWatch::start`], returning once a stderr line contains `ready`
    /// (`Watching`: every function and trigger is up).
    pub fn start_until(dir: &Path, args: &[&str], ready: &str) -> CliWatch {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = cargo_fn_command()
            .current_dir(dir)
            .env("PATH", path_with_tools())
            .arg("--target-dir")
            .arg(shared_target_dir())
            .arg("watch")
            .args(["--port", &port.to_string()])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn cargo-fn watch");
        let (tx, lines) = std_mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut seen = Vec::new();
        loop {
            match lines.recv_timeout(Duration::from_secs(900)) {
                Ok(line) => {
                    let serving = line.contains(ready);
                    seen.push(line);
                    if serving {
                        return CliWatch {
                            child,
                            lines,
                            seen,
                            port,
                        };
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("watch never served:\n{}", seen.join("\n"));
                }
            }
        }
    }

    /// Waits for a stderr line containing `needle`.
    pub fn wait_for_line(&self, needle: &str) {
        let mut seen = Vec::new();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(900)) {
            if line.contains(needle) {
                return;
            }
            seen.push(line);
        }
        panic!("no line with {needle:?}:\n{}", seen.join("\n"));
    }

    /// Ctrl-C, then the exit status, with the rest of stderr on failure.
    pub fn stop(mut self) {
        // SAFETY: signalling our own child, not yet reaped (so its pid is
        // still ours).
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let status = self.child.wait().unwrap();
        let rest: Vec<String> = self.lines.try_iter().collect();
        assert!(
            status.success(),
            "watch exited {status}:\n{}",
            rest.join("\n")
        );
    }
}

impl Drop for CliWatch {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: as in `stop`: our own child, not yet reaped.
            unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
            let _ = self.child.wait();
        }
    }
}

/// A one-function crate answering `{"version": N, "pid": ...}`, locked to
/// the fixture crate's dependency versions so the shared target dir already
/// holds every dependency.
pub fn function_crate(dir: &Path, bin: &str, version: u32) {
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            r#"[workspace]

[package]
name = "{bin}"
version = "0.1.0"
edition = "2021"

[package.metadata.fn]
timeout = 10

[dependencies]
lambda_runtime = "1.5"
serde_json = "1"
tokio = {{ version = "1", features = ["macros", "rt-multi-thread", "time"] }}
"#
        ),
    )
    .unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/functions/Cargo.lock"),
        dir.join("Cargo.lock"),
    )
    .unwrap();
    std::fs::write(dir.join(".gitignore"), "/scratch\n").unwrap();
    write_version(dir, version);
}

/// Rewrites the [`function_crate`]'s main.rs to answer `version`.
pub fn write_version(dir: &Path, version: u32) {
    let src = format!(
        r#"use lambda_runtime::{{service_fn, Error, LambdaEvent}};
use serde_json::{{json, Value}};

#[tokio::main]
async fn main() -> Result<(), Error> {{
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {{
        let ms = event.payload["ms"].as_u64().unwrap_or(0);
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        Ok::<Value, Error>(json!({{"version": {version}, "pid": std::process::id()}}))
    }}))
    .await
}}
"#
    );
    // Write then rename, as editors do, so the build never reads half a file.
    let tmp = dir.join("src/main.rs.tmp~");
    std::fs::write(&tmp, src).unwrap();
    std::fs::rename(tmp, dir.join("src/main.rs")).unwrap();
}

/// Options for watching the crate at `dir` as `cargo fn watch` would (dev
/// profile, a free port on 127.0.0.1, the shared target dir), its log
/// lines collected in `logs`. Tests change fields with struct update.
pub fn watch_options(dir: &Path, logs: &Logs) -> WatchOptions {
    WatchOptions {
        selection: Selection {
            manifest_path: Some(dir.join("Cargo.toml")),
            packages: vec![],
            bins: vec![],
            target_dir: Some(shared_target_dir()),
        },
        overrides: Default::default(),
        profile: "dev".into(),
        cargo_flags: vec![],
        emulator: EmulatorOptions {
            bind: "127.0.0.1:0".parse().unwrap(),
            log_sink: logs.sink(),
            ..EmulatorOptions::default()
        },
        extra_env: Default::default(),
        debounce: Duration::from_millis(50),
        event_format: None,
        serve: Default::default(),
        extensions_dir: None,
        default_function: None,
        durable_clock: Default::default(),
    }
}
