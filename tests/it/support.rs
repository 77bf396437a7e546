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
/// their dependencies compile once per test run (and across runs).
pub fn shared_target_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-crates");
    std::fs::create_dir_all(&dir).expect("create shared target dir");
    dir
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}
