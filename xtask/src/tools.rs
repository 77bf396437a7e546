//! Installs the tools the tests need. Everything lands in one tools dir
//! outside the clone (`$CARGO_FN_DEV_TOOLS`, default `~/.cache/cargo-fn-dev`)
//! so that a second run costs nothing; a fresh machine gets it all.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::run;

/// Debian packages the tests use.
const APT_PACKAGES: &[&str] = &[
    "unzip",
    "qemu-user-static",
    "libc6-arm64-cross",
    "python3-venv",
    // OCI image tests: inspect/unpack, a local registry, htpasswd for its auth.
    "skopeo",
    "umoci",
    "docker-registry",
    "apache2-utils",
    "gcc",
    "time",
    // The dashboard test drives a real headless browser.
    "chromium",
];

/// PyPI packages, in the tools venv.
const PIP_PACKAGES: &[&str] = &["ziglang", "cargo-zigbuild", "moto[server]"];

/// rustup targets for cross builds.
const RUST_TARGETS: &[&str] = &["aarch64-unknown-linux-gnu", "x86_64-unknown-linux-musl"];

pub fn tools_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_FN_DEV_TOOLS") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".cache/cargo-fn-dev")
}

/// PATH with the tools venv first.
pub fn path_with_tools() -> Result<std::ffi::OsString> {
    let bin = tools_dir().join("venv/bin");
    let mut paths = vec![bin];
    if let Some(old) = std::env::var_os("PATH") {
        paths.extend(std::env::split_paths(&old));
    }
    std::env::join_paths(paths).context("building PATH")
}

pub fn setup() -> Result<()> {
    apt()?;
    venv()?;
    rustup()?;
    eprintln!("xtask: tools ready in {}", tools_dir().display());
    Ok(())
}

fn have_deb(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

fn apt() -> Result<()> {
    let missing: Vec<&str> = APT_PACKAGES
        .iter()
        .copied()
        .filter(|p| !have_deb(p))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    run(Command::new("apt-get").arg("update").arg("-qq"))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

fn venv() -> Result<()> {
    let dir = tools_dir();
    let venv = dir.join("venv");
    let stamp = venv.join(".cargo-fn-packages");
    let wanted = PIP_PACKAGES.join("\n");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return Ok(());
    }
    std::fs::create_dir_all(&dir)?;
    if !venv.join("bin/python").exists() {
        run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
    }
    run(Command::new(venv.join("bin/pip"))
        .args(["install", "-q", "--disable-pip-version-check"])
        .args(PIP_PACKAGES))?;
    std::fs::write(&stamp, wanted)?;
    Ok(())
}

fn rustup() -> Result<()> {
    let out = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .context("running rustup (is rustup installed?)")?;
    let installed = String::from_utf8_lossy(&out.stdout).to_string();
    for target in RUST_TARGETS {
        if !installed.lines().any(|l| l.trim() == *target) {
            run(Command::new("rustup").args(["target", "add", target]))?;
        }
    }
    if !Command::new("rustup")
        .args(["component", "list", "--installed"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("clippy"))
        .unwrap_or(false)
    {
        bail!("clippy is not installed: run `rustup component add clippy rustfmt`");
    }
    Ok(())
}
