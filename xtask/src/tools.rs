//! Installs the tools the tests need. Everything lands in one tools dir
//! outside the clone (`$CARGO_FN_DEV_TOOLS`, default `~/.cache/cargo-fn-dev`)
//! so that a second run costs nothing; a fresh machine gets it all.

use std::path::{Path, PathBuf};
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
    // The emulator bench: an external load client and a bare loopback baseline.
    "wrk",
    "nginx-light",
    // The dashboard test drives a real headless browser.
    "chromium",
];

/// PyPI packages, in the tools venv.
/// `awscli`: the local SQS endpoint is tested with the AWS CLI too.
const PIP_PACKAGES: &[&str] = &["ziglang", "cargo-zigbuild", "moto[server]", "awscli"];

/// LocalStack's core: the second, stricter AWS double of the deploy tests
/// (tests/it/support/localstack.rs). Its own venv, because it needs Python 3.13
/// (its code uses syntax that 3.11 rejects) and pins that would fight moto's.
const LOCALSTACK_PACKAGES: &[&str] = &[
    "localstack-core[runtime]==2026.3.0",
    // cbor2 6 dropped the module LocalStack's protocol parser imports
    // (`cbor2._decoder`): every service plugin fails to load.
    "cbor2<6",
    // pyOpenSSL 26 dropped `X509.add_extensions`, which LocalStack's
    // self-signed certificate needs at start; 25.x needs this cryptography.
    "pyopenssl<26",
    "cryptography>=45.0.7,<47",
];

/// Our LocalStack plugin (a Lambda runtime executor that needs no Docker),
/// installed from its source in the clone.
const LOCALSTACK_PLUGIN_DIR: &str = "localstack-plugin";
const LOCALSTACK_PLUGIN_FILES: &[&str] = &[
    "pyproject.toml",
    "cargo_fn_localstack/__init__.py",
    "cargo_fn_localstack/executor.py",
];

/// rustup targets for cross builds.
const RUST_TARGETS: &[&str] = &["aarch64-unknown-linux-gnu", "x86_64-unknown-linux-musl"];

pub fn tools_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_FN_DEV_TOOLS") {
        return PathBuf::from(dir);
    }
    home().join(".cache/cargo-fn-dev")
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
    localstack_venv()?;
    rustup()?;
    mdbook()?;
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

fn localstack_venv() -> Result<()> {
    let venv = tools_dir().join("localstack-venv");
    let plugin = Path::new(env!("CARGO_MANIFEST_DIR")).join(LOCALSTACK_PLUGIN_DIR);
    let stamp = venv.join(".cargo-fn-packages");
    // The stamp covers the plugin's source too, so an edit reinstalls it.
    let mut wanted = LOCALSTACK_PACKAGES.join("\n");
    for file in LOCALSTACK_PLUGIN_FILES {
        let text = std::fs::read_to_string(plugin.join(file))
            .with_context(|| format!("reading {}", plugin.join(file).display()))?;
        wanted.push_str(&format!("\n--- {file}\n{text}"));
    }
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str()) {
        return Ok(());
    }
    if !venv.join("bin/python").exists() {
        let python = python313()?;
        run(Command::new(&python).arg("-m").arg("venv").arg(&venv))?;
    }
    let pip = venv.join("bin/pip");
    run(Command::new(&pip)
        .args(["install", "-q", "--disable-pip-version-check"])
        .args(LOCALSTACK_PACKAGES))?;
    // Built from a copy: a build writes `build/` and `*.egg-info` beside
    // its source, which must not land in the clone.
    let copy = tempfile::tempdir()?;
    let src = copy.path().join("cargo_fn_localstack");
    std::fs::create_dir_all(&src)?;
    for file in LOCALSTACK_PLUGIN_FILES {
        std::fs::copy(plugin.join(file), copy.path().join(file))?;
    }
    run(Command::new(&pip)
        .args([
            "install",
            "-q",
            "--disable-pip-version-check",
            "--force-reinstall",
            "--no-deps",
        ])
        .arg(copy.path()))?;
    std::fs::write(&stamp, wanted)?;
    Ok(())
}

/// A Python 3.13: `$CARGO_FN_PYTHON313`, `python3.13` on PATH, or one
/// under pyenv (`$PYENV_ROOT`, default `~/.pyenv`); each is asked for its
/// version, so a pyenv shim that cannot run is passed over.
fn python313() -> Result<PathBuf> {
    let mut tried: Vec<PathBuf> = Vec::new();
    if let Some(p) = std::env::var_os("CARGO_FN_PYTHON313") {
        tried.push(PathBuf::from(p));
    }
    tried.push(PathBuf::from("python3.13"));
    let pyenv = std::env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(".pyenv"));
    let mut versions: Vec<PathBuf> = std::fs::read_dir(pyenv.join("versions"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("3.13"))
        .map(|e| e.path().join("bin/python3"))
        .collect();
    // Newest patch release first.
    versions.sort_by_key(|p| std::cmp::Reverse(p.to_string_lossy().into_owned()));
    tried.extend(versions);
    tried.push(PathBuf::from("/usr/bin/python3.13"));
    for candidate in &tried {
        let ok = Command::new(candidate)
            .args([
                "-c",
                "import sys, venv; assert sys.version_info[:2] == (3, 13)",
            ])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return Ok(candidate.clone());
        }
    }
    bail!(
        "LocalStack (the deploy tests' second AWS double) needs Python 3.13 with its venv module, and none was found; tried: {}. Install one (`pyenv install 3.13`, or Debian's python3.13 and python3.13-venv) or set CARGO_FN_PYTHON313 to its path",
        tried
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn home() -> PathBuf {
    PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
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

/// The mdBook that builds the guide, pinned, compiled once into the tools dir.
const MDBOOK_VERSION: &str = "0.5.4";

/// Path to the pinned mdBook, installed with `cargo install --root` if missing.
pub fn mdbook() -> Result<PathBuf> {
    let root = tools_dir().join(format!("mdbook-{MDBOOK_VERSION}"));
    let bin = root.join("bin/mdbook");
    if !bin.exists() {
        run(crate::cargo()
            .args(["install", "--locked", "--quiet", "--root"])
            .arg(&root)
            .args(["--version", MDBOOK_VERSION])
            // Only `build` is used: no file watcher or web server.
            .args(["--no-default-features", "--features", "search", "mdbook"]))?;
    }
    Ok(bin)
}
