//! `cargo fn watch --artifact` and `--image`: the emulator serves what
//! ships -- here the basic template's arm64 release bootstrap, on this
//! x86_64 machine through qemu-user -- and `cargo fn invoke` reaches it
//! through the Invoke API.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::build::cargo_fn_in;
use crate::support::{cargo_fn, path_with_tools, shared_target_dir, tempdir};

/// `cargo-fn watch ARGS` in `dir`; returns once it serves, with its stderr lines so far.
pub fn start_watch(dir: &Path, args: &[&str]) -> (Child, mpsc::Receiver<String>, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(assert_cmd::cargo::cargo_bin("cargo-fn"))
        .current_dir(dir)
        .env("PATH", path_with_tools())
        .env_remove("CARGO_TARGET_DIR")
        .arg("--target-dir")
        .arg(shared_target_dir())
        .arg("watch")
        .args(["--port", &port.to_string()])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn cargo-fn watch");
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(900)) {
            Ok(line) => {
                let serving = line.contains("Serving");
                seen.push(line);
                if serving {
                    return (child, rx, port);
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
fn wait_for_line(rx: &mpsc::Receiver<String>, needle: &str) {
    let mut seen = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(900)) {
        if line.contains(needle) {
            return;
        }
        seen.push(line);
    }
    panic!("no line with {needle:?}:\n{}", seen.join("\n"));
}

/// Command lines of every process whose command line contains `needle`.
fn processes_with(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(raw) = std::fs::read(entry.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&raw).replace('\0', " ");
            if cmd.contains(needle) {
                found.push(cmd);
            }
        }
    }
    found
}

/// Ctrl-C, then the exit status, with the rest of stderr on failure.
pub fn stop(mut child: Child, rx: mpsc::Receiver<String>) {
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    let rest: Vec<String> = rx.try_iter().collect();
    assert!(
        status.success(),
        "watch exited {status}:\n{}",
        rest.join("\n")
    );
}

fn invoke(dir: &Path, function: &str, port: u16) -> String {
    let out = cargo_fn_in(dir)
        .args(["invoke", function, "--port", &port.to_string()])
        .args(["--data", r#"{"name":"qemu"}"#])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    String::from_utf8(out).unwrap()
}

#[test]
fn arm64_artifact_and_image_are_served_under_qemu() {
    let tmp = tempdir();
    cargo_fn()
        .current_dir(tmp.path())
        .args(["new", "fn-ship", "--template", "basic", "--yes"])
        .assert()
        .success();
    let root = tmp.path().join("fn-ship");

    // The zip's bootstrap: built by `cargo fn build` for arm64, run by qemu
    // with Debian's arm64 libc as the loader root.
    let (watch, rx, port) = start_watch(&root, &["--artifact", "--arm64"]);
    let answer = invoke(&root, "fn-ship", port);
    assert!(answer.contains(r#"{"message":"Hello, qemu!"}"#), "{answer}");
    let runs = processes_with("fn-ship-0");
    assert!(
        runs.iter()
            .any(|c| c.contains("qemu-aarch64") && c.contains("-L /usr/aarch64-linux-gnu")),
        "the function is not the arm64 artifact under qemu: {runs:?}"
    );
    let report = cargo_fn::artifact::check_file(
        &shared_target_dir().join("lambda/fn-ship/bootstrap"),
        cargo_fn::config::Arch::Arm64,
        cargo_fn::config::Runtime::ProvidedAl2023,
    );
    assert!(report.is_ok(), "{report:?}");

    // Hot reload rebuilds the artifact, not a host binary.
    let main_rs = root.join("src/main.rs");
    let src = std::fs::read_to_string(&main_rs).unwrap();
    std::fs::write(
        &main_rs,
        src.replace(r#""{}, {}!""#, r#""{} from arm64, {}!""#),
    )
    .unwrap();
    wait_for_line(&rx, "Reloaded");
    let answer = invoke(&root, "fn-ship", port);
    assert!(
        answer.contains(r#"{"message":"Hello from arm64, qemu!"}"#),
        "{answer}"
    );
    assert!(
        processes_with("fn-ship-1")
            .iter()
            .any(|c| c.contains("qemu-aarch64")),
        "generation 1 is not the arm64 artifact under qemu"
    );
    stop(watch, rx);
    assert!(
        processes_with("fn-ship-1").is_empty(),
        "a function process outlived watch"
    );

    // The image: unpacked, its own loader and libraries, under qemu.
    let (watch, rx, port) = start_watch(&root, &["--image", "--arm64"]);
    let answer = invoke(&root, "fn-ship", port);
    assert!(
        answer.contains(r#"{"message":"Hello from arm64, qemu!"}"#),
        "{answer}"
    );
    let runs = processes_with("rootfs");
    assert!(
        runs.iter()
            .any(|c| c.contains("qemu-aarch64")
                && c.contains("fn-ship-0/rootfs/var/runtime/bootstrap")),
        "the function is not the unpacked image under qemu: {runs:?}"
    );
    stop(watch, rx);
}
