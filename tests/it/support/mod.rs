//! The test harness every test module uses, and the only code they share:
//! the cargo-fn command, temp dirs and the dev tools (here); the emulator
//! and its clients (`emulator`); `cargo fn watch` started, watched and
//! stopped (`watch`); the AWS doubles (`moto`, `localstack`, `ecr_shim`,
//! `doubles`, and `managed_instances` for what moto lacks of Lambda
//! Managed Instances) and deploying to them (`deploy`); the API's shapes
//! from botocore's model (`shapes`); a real OCI registry
//! (`registry`); a headless browser (`browser`); fixture crates and
//! builds (`fixtures`). Test modules import from here, never from each
//! other.

#![allow(dead_code)]

pub mod accounts;
pub mod browser;
pub mod deploy;
pub mod doubles;
pub mod ecr_shim;
pub mod emulator;
pub mod fixtures;
pub mod localstack;
pub mod managed_instances;
pub mod moto;
pub mod registry;
pub mod shapes;
pub mod watch;

pub use moto::{free_port, tools_dir};

use std::path::PathBuf;

use assert_cmd::Command;

/// `cargo-fn` as built for this test run.
pub fn cargo_fn() -> Command {
    Command::from_std(cargo_fn_command())
}

/// [`cargo_fn`] as a plain `std::process::Command`, for a child the test
/// reads while it runs. Neither inherits the test run's `CARGO_TARGET_DIR`
/// (cargo-fn would look for the project's packages there) or any
/// `CARGO_FN_*` setting.
pub fn cargo_fn_command() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_cargo-fn"));
    cmd.env_remove("CARGO_TARGET_DIR");
    for (k, _) in std::env::vars() {
        if k.starts_with("CARGO_FN_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// One target dir shared by every crate the tests generate and build, so
/// their dependencies compile once per test run. It lives beside the tools,
/// outside the clone, so later runs (and CI on the same machine) reuse it;
/// on a fresh machine it is simply built from scratch.
pub fn shared_target_dir() -> PathBuf {
    let dir = match std::env::var_os("CARGO_FN_TEST_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => tools_dir().join("test-target"),
    };
    std::fs::create_dir_all(&dir).expect("create shared target dir");
    dir
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

/// PATH with the tools venv first. Panics, loudly, when the tools are not
/// installed: tests never skip silently.
pub fn path_with_tools() -> std::ffi::OsString {
    let bin = tools_dir().join("venv/bin");
    assert!(
        bin.join("python").exists(),
        "the test tools are not installed in {}: run `cargo xtask setup` (or `cargo xtask ci`)",
        bin.display()
    );
    let mut paths = vec![bin];
    if let Some(old) = std::env::var_os("PATH") {
        paths.extend(std::env::split_paths(&old));
    }
    std::env::join_paths(paths).expect("PATH")
}

/// Whether process `pid` is running (Linux: its /proc entry exists).
pub fn process_alive(pid: u64) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// A system tool `cargo xtask setup` installs; panics, naming it, when missing.
pub fn tool(name: &str) -> std::process::Command {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "{name} is not installed: run `cargo xtask setup` (it installs skopeo, umoci, docker-registry)"
    );
    std::process::Command::new(name)
}

/// Runs `cmd`; its stdout, or a panic with its stderr.
pub fn run_ok(cmd: &mut std::process::Command) -> String {
    let out = cmd.output().expect("running a tool");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `deploy --no-build` run through [`cargo_fn_command`] looked for packages
/// under the test run's own `CARGO_TARGET_DIR` (rollout's tests failed when
/// it was set): no child may inherit it, whatever the test run's
/// environment.
#[test]
fn cargo_fn_children_never_inherit_the_test_runs_cargo_target_dir() {
    let cmd = cargo_fn_command();
    let removed = cmd
        .get_envs()
        .any(|(k, v)| k == "CARGO_TARGET_DIR" && v.is_none());
    assert!(removed, "{cmd:?} passes CARGO_TARGET_DIR on");
}
