//! The only place that spawns cargo (and cargo-zigbuild). Finds artifacts
//! from cargo's JSON messages, never by guessing paths.

use std::io::BufReader;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use cargo_metadata::Message;

/// One `cargo build` (or `cargo zigbuild`) invocation.
#[derive(Debug, Clone, Default)]
pub struct BuildRequest {
    pub manifest_path: Option<PathBuf>,
    pub packages: Vec<String>,
    pub bins: Vec<String>,
    /// Cargo profile name (`dev`, `release`, ...).
    pub profile: String,
    /// Target triple; `None` builds for the host.
    pub target: Option<String>,
    pub target_dir: Option<PathBuf>,
    /// Passed through untouched (`--locked`, `--offline`, `--frozen`).
    pub cargo_flags: Vec<String>,
}

/// An executable produced by a build.
#[derive(Debug, Clone)]
pub struct BuiltBinary {
    pub package: String,
    pub bin: String,
    pub path: PathBuf,
}

/// Runs `cargo build` and returns the executables it produced. The
/// compiler's diagnostics go to stderr as cargo renders them.
pub fn cargo_build(req: &BuildRequest) -> Result<Vec<BuiltBinary>> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--message-format=json-render-diagnostics")
        .arg("--profile")
        .arg(if req.profile.is_empty() {
            "dev"
        } else {
            &req.profile
        });
    if let Some(path) = &req.manifest_path {
        cmd.arg("--manifest-path").arg(path);
    }
    for p in &req.packages {
        cmd.arg("--package").arg(p);
    }
    for b in &req.bins {
        cmd.arg("--bin").arg(b);
    }
    if req.bins.is_empty() {
        cmd.arg("--bins");
    }
    if let Some(t) = &req.target {
        cmd.arg("--target").arg(t);
    }
    if let Some(dir) = &req.target_dir {
        cmd.arg("--target-dir").arg(dir);
    }
    cmd.args(&req.cargo_flags);
    cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
    let mut child = cmd.spawn().context("starting cargo")?;
    let stdout = child.stdout.take().expect("piped stdout");
    let mut built = Vec::new();
    for message in Message::parse_stream(BufReader::new(stdout)) {
        if let Message::CompilerArtifact(artifact) = message.context("reading cargo's output")?
            && artifact.target.is_bin()
            && let Some(exe) = artifact.executable
        {
            built.push(BuiltBinary {
                package: artifact.package_id.repr.clone(),
                bin: artifact.target.name.clone(),
                path: exe.into_std_path_buf(),
            });
        }
    }
    let status = child.wait().context("waiting for cargo")?;
    if !status.success() {
        bail!("cargo build failed ({status}); see the compiler output above");
    }
    Ok(built)
}
