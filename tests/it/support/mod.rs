//! Test harness: isolated temp dirs and the cargo-fn command.

#![allow(dead_code)]

use std::path::PathBuf;

use assert_cmd::Command;

/// `cargo-fn` as built for this test run.
pub fn cargo_fn() -> Command {
    let mut cmd = Command::cargo_bin("cargo-fn").expect("cargo-fn binary");
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

/// The dev tools dir filled by `cargo xtask setup` (zig, cargo-zigbuild, moto).
pub fn tools_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_FN_DEV_TOOLS") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".cache/cargo-fn-dev")
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
