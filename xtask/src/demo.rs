//! `cargo xtask demo`: the main job end to end, as a newcomer would run it.
//! Scaffolds a function with `cargo fn new`, builds it for Lambda with
//! `cargo fn build` (zig-pinned glibc, artifact checked) and packages it,
//! starts `cargo fn watch` (the embedded emulator) on a free loopback port,
//! invokes it with `cargo fn invoke`, prints the answer and shuts down.
//!
//! It installs only what the main job needs, the way a user gets it:
//! `cargo fn build --install-missing` (zig, cargo-zigbuild, the rustup
//! target). The test tools (`cargo xtask setup`: qemu, skopeo, a registry,
//! moto) are for the test suite, not for this.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::{cargo, run, tools};

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // Ctrl-C semantics: let watch shut its environments down cleanly.
        let pid = self.0.id() as i32;
        let _ = Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn demo() -> Result<()> {
    let started = Instant::now();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    run(cargo()
        .current_dir(&root)
        .args(["build", "--quiet", "--bin", "cargo-fn"]))?;
    let cargo_fn = root.join("target/debug/cargo-fn");
    // Outside this workspace, as a user's new crate would be.
    let work = std::env::temp_dir().join("cargo-fn-demo");
    if work.exists() {
        std::fs::remove_dir_all(&work).context("clearing the demo directory")?;
    }
    std::fs::create_dir_all(&work)?;
    // Dependencies of generated crates compile once, shared with the tests.
    let shared_target: PathBuf = tools::tools_dir().join("test-target");

    let fn_cmd = |dir: &Path| {
        let mut c = Command::new(&cargo_fn);
        c.current_dir(dir).env("CARGO_TARGET_DIR", &shared_target);
        c
    };

    println!("\n== 1. scaffold: cargo fn new hello-fn --template basic");
    run(fn_cmd(&work).args(["new", "hello-fn", "--template", "basic", "--yes"]))?;
    let crate_dir = work.join("hello-fn");

    println!(
        "\n== 2. build for Lambda and package: cargo fn build --install-missing && cargo fn package"
    );
    run(fn_cmd(&crate_dir).args(["build", "--install-missing"]))?;
    run(fn_cmd(&crate_dir).arg("package"))?;

    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    println!("\n== 3. emulate: cargo fn watch --port {port}");
    let watch = fn_cmd(&crate_dir)
        .args(["watch", "--port", &port.to_string()])
        .stdin(Stdio::null())
        .spawn()
        .context("starting cargo fn watch")?;
    let _watch = KillOnDrop(watch);

    println!("\n== 4. invoke: cargo fn invoke hello-fn --data '{{\"name\":\"cargo-fn\"}}'");
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let out = fn_cmd(&crate_dir)
            .args([
                "invoke",
                "hello-fn",
                "--port",
                &port.to_string(),
                "--data",
                r#"{"name":"cargo-fn"}"#,
            ])
            .output()?;
        if out.status.success() {
            let payload = String::from_utf8_lossy(&out.stdout);
            println!(
                "\nthe function answered: {} ({:.0?} after the demo started)",
                payload.trim(),
                started.elapsed()
            );
            if !payload.contains("Hello, cargo-fn!") {
                bail!("unexpected answer from the function: {payload}");
            }
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "the emulator did not answer: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        // The emulator is still building the function.
        std::thread::sleep(Duration::from_millis(500));
    }
    println!("\n== demo done: scaffolded, built, packaged, emulated and invoked");
    Ok(())
}
