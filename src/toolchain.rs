//! The only place that spawns cargo (and cargo-zigbuild), and that knows
//! about the pieces a Lambda build needs: target triples, the host's glibc,
//! zig, cargo-zigbuild and rustup targets. Finds artifacts from cargo's JSON
//! messages, never by guessing paths.
//!
//! Knows nothing about functions, configuration or packaging: callers say
//! which triple, which glibc and which driver; this module runs it.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::thread::JoinHandle;

use anyhow::{Context, Result, bail};
use cargo_metadata::Message;

use crate::config::Arch;
use crate::error::hinted;

/// Which program drives the build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Driver {
    /// Plain `cargo build`: the host links a compatible binary itself.
    #[default]
    Cargo,
    /// `cargo zigbuild`: zig links against the glibc version we pin.
    Zigbuild,
}

impl fmt::Display for Driver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Driver::Cargo => "cargo build",
            Driver::Zigbuild => "cargo zigbuild",
        })
    }
}

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
    pub driver: Driver,
    /// With [`Driver::Zigbuild`] and a `-gnu` target: the glibc to link
    /// against, passed as cargo-zigbuild's `<triple>.<major>.<minor>` suffix.
    pub glibc: Option<(u32, u32)>,
    /// PATH for the child (with the tools dir); `None` inherits ours.
    pub path: Option<OsString>,
}

impl BuildRequest {
    /// The program and arguments this request runs (shown with `-v`, and
    /// used by the benchmark to run the very same command by hand).
    pub fn command(&self) -> Command {
        let mut cmd = match self.driver {
            Driver::Cargo => {
                let mut c =
                    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
                c.arg("build");
                c
            }
            Driver::Zigbuild => {
                let mut c = Command::new("cargo-zigbuild");
                c.arg("zigbuild");
                c
            }
        };
        // Diagnostics come in the JSON stream (rendered by rustc, in colour
        // on a terminal): `cargo_build` prints them and keeps the first error.
        let format = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            "--message-format=json-diagnostic-rendered-ansi"
        } else {
            "--message-format=json"
        };
        cmd.arg(format)
            .arg("--profile")
            .arg(if self.profile.is_empty() {
                "dev"
            } else {
                &self.profile
            });
        if let Some(path) = &self.manifest_path {
            cmd.arg("--manifest-path").arg(path);
        }
        for p in &self.packages {
            cmd.arg("--package").arg(p);
        }
        for b in &self.bins {
            cmd.arg("--bin").arg(b);
        }
        if self.bins.is_empty() {
            cmd.arg("--bins");
        }
        if let Some(t) = &self.target {
            match (self.driver, self.glibc) {
                (Driver::Zigbuild, Some((major, minor))) if t.ends_with("-gnu") => {
                    cmd.arg("--target").arg(format!("{t}.{major}.{minor}"))
                }
                _ => cmd.arg("--target").arg(t),
            };
        }
        if let Some(dir) = &self.target_dir {
            cmd.arg("--target-dir").arg(dir);
        }
        cmd.args(&self.cargo_flags);
        if let Some(path) = &self.path {
            cmd.env("PATH", path);
        }
        cmd
    }
}

/// An executable produced by a build.
#[derive(Debug, Clone)]
pub struct BuiltBinary {
    /// cargo's package id.
    pub package: String,
    /// The Cargo.toml of the package it belongs to.
    pub manifest_path: PathBuf,
    pub bin: String,
    pub path: PathBuf,
}

/// Runs the build and returns the executables it produced. The compiler's
/// diagnostics go to stderr as cargo renders them.
pub fn cargo_build(req: &BuildRequest) -> Result<Vec<BuiltBinary>> {
    let mut cmd = req.command();
    tracing::info!("running {cmd:?}");
    cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
    let mut child = cmd.spawn().with_context(|| match req.driver {
        Driver::Cargo => "starting cargo".to_string(),
        Driver::Zigbuild => "starting cargo-zigbuild (is it installed and on PATH?)".to_string(),
    })?;
    let stdout = child.stdout.take().expect("piped stdout");
    let mut built = Vec::new();
    let mut first_error = None;
    for message in Message::parse_stream(BufReader::new(stdout)) {
        match message.context("reading cargo's output")? {
            Message::CompilerArtifact(artifact) if artifact.target.is_bin() => {
                if let Some(exe) = artifact.executable {
                    built.push(BuiltBinary {
                        package: artifact.package_id.repr.clone(),
                        manifest_path: artifact.manifest_path.into_std_path_buf(),
                        bin: artifact.target.name.clone(),
                        path: exe.into_std_path_buf(),
                    });
                }
            }
            Message::CompilerMessage(m) => {
                if let Some(text) = &m.message.rendered {
                    eprint!("{text}");
                }
                if first_error.is_none() {
                    first_error = error_summary(&m.message);
                }
            }
            _ => {}
        }
    }
    let status = child.wait().context("waiting for cargo")?;
    if !status.success() {
        return Err(BuildFailed {
            message: format!(
                "{} failed ({status}); see the compiler output above",
                req.driver
            ),
            first_error,
        }
        .into());
    }
    Ok(built)
}

/// A failed build, with the compiler's first error when there was one.
#[derive(Debug)]
pub struct BuildFailed {
    message: String,
    /// `error[E0425]: cannot find value `x` in this scope` and its place.
    pub first_error: Option<String>,
}

impl fmt::Display for BuildFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for BuildFailed {}

/// `error[CODE]: message` and ` --> file:line:column` of an error (plain
/// text, whatever the terminal), or `None` for warnings and notes.
fn error_summary(d: &cargo_metadata::diagnostic::Diagnostic) -> Option<String> {
    use cargo_metadata::diagnostic::DiagnosticLevel;
    if !matches!(d.level, DiagnosticLevel::Error | DiagnosticLevel::Ice) {
        return None;
    }
    let mut text = match &d.code {
        Some(code) => format!("error[{}]: {}", code.code, d.message),
        None => format!("error: {}", d.message),
    };
    if let Some(span) = d.spans.iter().find(|s| s.is_primary) {
        text.push_str(&format!(
            "\n --> {}:{}:{}",
            span.file_name, span.line_start, span.column_start
        ));
    }
    Some(text)
}

/// The target triple for an architecture.
pub fn triple(arch: Arch, musl: bool) -> &'static str {
    if musl {
        arch.musl_triple()
    } else {
        arch.gnu_triple()
    }
}

/// What the machine running cargo-fn links by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Host {
    /// `None` on an architecture Lambda does not run.
    pub arch: Option<Arch>,
    pub linux: bool,
    /// The host glibc (None on musl hosts or when unknown).
    pub glibc: Option<(u32, u32)>,
}

impl Host {
    /// Detects the host; the glibc comes from `getconf GNU_LIBC_VERSION`.
    pub fn detect() -> Host {
        let arch = Arch::host();
        let linux = std::env::consts::OS == "linux";
        let glibc = if linux { host_glibc() } else { None };
        Host { arch, linux, glibc }
    }
}

fn host_glibc() -> Option<(u32, u32)> {
    let out = Command::new("getconf")
        .arg("GNU_LIBC_VERSION")
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    // "glibc 2.36"
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text.split_whitespace().nth(1)?;
    let mut parts = version.split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// Plain cargo when the host links a binary that runs on Lambda as is (a
/// Linux host of the same architecture whose glibc is not newer than the
/// runtime's, or a musl build for the host architecture); zig otherwise.
pub fn choose_driver(host: &Host, arch: Arch, musl: bool, runtime_glibc: (u32, u32)) -> Driver {
    if !host.linux || host.arch != Some(arch) {
        return Driver::Zigbuild;
    }
    if musl {
        return Driver::Cargo;
    }
    match host.glibc {
        Some(glibc) if glibc <= runtime_glibc => Driver::Cargo,
        _ => Driver::Zigbuild,
    }
}

/// A tool a build needs that is not installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    Zig,
    CargoZigbuild,
    /// The standard library for a target triple.
    RustTarget {
        triple: String,
        /// Whether the toolchain is managed by rustup (so `rustup target add` works).
        rustup: bool,
    },
}

impl Missing {
    /// The exact command that installs it.
    pub fn install_command(&self) -> String {
        match self {
            Missing::Zig => "pip3 install ziglang   (or a zig release from https://ziglang.org/download/ on PATH)".into(),
            Missing::CargoZigbuild => "cargo install --locked cargo-zigbuild   (or pip3 install cargo-zigbuild)".into(),
            Missing::RustTarget { triple, rustup: true } => format!("rustup target add {triple}"),
            Missing::RustTarget { triple, rustup: false } => format!(
                "install the Rust standard library for {triple} into your toolchain (rustup is not available: `rustup target add {triple}` with rustup)"
            ),
        }
    }

    fn describe(&self) -> String {
        match self {
            Missing::Zig => "zig (the linker cargo-zigbuild drives)".into(),
            Missing::CargoZigbuild => "cargo-zigbuild".into(),
            Missing::RustTarget { triple, .. } => format!("the Rust target {triple}"),
        }
    }
}

/// The error for missing pieces found before building. The CLI recognises
/// it to offer installing them at a terminal prompt.
#[derive(Debug)]
pub struct MissingTools {
    pub missing: Vec<Missing>,
}

impl fmt::Display for MissingTools {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "the build needs tools that are not installed:")?;
        for m in &self.missing {
            writeln!(f, "  - {}: {}", m.describe(), m.install_command())?;
        }
        write!(
            f,
            "or run again with --install-missing to install them (zig and cargo-zigbuild go into {})",
            tools_dir().display()
        )
    }
}

impl std::error::Error for MissingTools {}

/// Where `--install-missing` puts zig and cargo-zigbuild (a Python venv):
/// `$CARGO_FN_TOOLS_DIR`, else `$XDG_CACHE_HOME/cargo-fn/tools`, else
/// `~/.cache/cargo-fn/tools`.
pub fn tools_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_FN_TOOLS_DIR") {
        return PathBuf::from(dir);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/".into())).join(".cache")
        });
    cache.join("cargo-fn/tools")
}

/// PATH for the build: the user's PATH, then our tools venv (so tools the
/// user installed win).
pub fn build_path() -> OsString {
    let mut paths: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    paths.push(tools_dir().join("bin"));
    std::env::join_paths(paths).unwrap_or_else(|_| std::env::var_os("PATH").unwrap_or_default())
}

/// Finds an executable on a PATH value.
pub fn find_on_path(name: &str, path: &OsStr) -> Option<PathBuf> {
    std::env::split_paths(path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// zig as cargo-zigbuild finds it: `$CARGO_ZIGBUILD_ZIG_PATH`, `zig` on
/// PATH, or the `ziglang` Python package of the `python3` on PATH.
fn have_zig(path: &OsStr) -> bool {
    if std::env::var_os("CARGO_ZIGBUILD_ZIG_PATH").is_some() || find_on_path("zig", path).is_some()
    {
        return true;
    }
    let Some(python) = find_on_path("python3", path) else {
        return false;
    };
    // Cheap check first: a venv's site-packages next to its python3.
    if let Some(prefix) = python.parent().and_then(Path::parent)
        && let Ok(entries) = std::fs::read_dir(prefix.join("lib"))
    {
        for entry in entries.flatten() {
            if entry.path().join("site-packages/ziglang").is_dir() {
                return true;
            }
        }
    }
    Command::new(python)
        .args(["-c", "import ziglang"])
        .env("PATH", path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// The active toolchain's sysroot (`rustc --print sysroot`), with rustup's
/// error when the toolchain itself does not exist.
fn sysroot(path: &OsStr) -> Result<PathBuf> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .env("PATH", path)
        .env("RUST_BACKTRACE", "0")
        .output()
        .with_context(|| format!("running {} --print sysroot", rustc.to_string_lossy()))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        bail!("{}", stderr.trim());
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// What a build needs to know about the machine before it starts: found by
/// spawning `getconf` and `rustc`, so [`prefetch`] starts it on a thread
/// while the caller reads the workspace (it overlaps `cargo metadata`).
struct Probe {
    host: Host,
    sysroot: Result<PathBuf, String>,
}

static PROBE: OnceLock<Probe> = OnceLock::new();
static PREFETCH: Mutex<Option<JoinHandle<()>>> = Mutex::new(None);

fn run_probe() -> Probe {
    // Both children at once: rustc (through rustup) is the slow one.
    let rustc = std::thread::spawn(|| sysroot(&build_path()).map_err(|e| format!("{e:#}")));
    let host = Host::detect();
    Probe {
        host,
        sysroot: rustc
            .join()
            .unwrap_or_else(|_| Err("probing rustc panicked".into())),
    }
}

/// Starts probing the host and toolchain in the background.
pub fn prefetch() {
    let mut slot = PREFETCH.lock().unwrap_or_else(|e| e.into_inner());
    if slot.is_none() && PROBE.get().is_none() {
        *slot = Some(std::thread::spawn(|| {
            PROBE.get_or_init(run_probe);
        }));
    }
}

fn probe() -> &'static Probe {
    let handle = PREFETCH.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(handle) = handle {
        let _ = handle.join();
    }
    PROBE.get_or_init(run_probe)
}

/// The host, as probed once per process (see [`prefetch`]).
pub fn host() -> Host {
    probe().host
}

/// Finds what a build with `driver` for `triple` lacks, without building.
pub fn missing_pieces(driver: Driver, triples: &[&str], path: &OsStr) -> Result<Vec<Missing>> {
    let mut missing = Vec::new();
    if driver == Driver::Zigbuild {
        if !have_zig(path) {
            missing.push(Missing::Zig);
        }
        if find_on_path("cargo-zigbuild", path).is_none() {
            missing.push(Missing::CargoZigbuild);
        }
    }
    if triples.is_empty() {
        return Ok(missing);
    }
    let rustup = find_on_path("rustup", path).is_some();
    let sysroot = match &probe().sysroot {
        Ok(s) => s,
        Err(e) => {
            return Err(hinted(
                format!(
                    "cannot find the Rust toolchain to check the targets {}: {e:#}",
                    triples.join(", ")
                ),
                "install the toolchain (`rustup toolchain install <name>`) or unset RUSTUP_TOOLCHAIN / fix rust-toolchain.toml",
            ));
        }
    };
    for triple in triples {
        if !sysroot
            .join("lib/rustlib")
            .join(triple)
            .join("lib")
            .is_dir()
        {
            missing.push(Missing::RustTarget {
                triple: triple.to_string(),
                rustup,
            });
        }
    }
    Ok(missing)
}

/// Installs missing pieces: `rustup target add`, and zig plus
/// cargo-zigbuild from PyPI into the tools venv.
pub fn install(missing: &[Missing], path: &OsStr, ui: &crate::ui::Ui) -> Result<()> {
    let needs_venv = missing
        .iter()
        .any(|m| matches!(m, Missing::Zig | Missing::CargoZigbuild));
    for m in missing {
        if let Missing::RustTarget { triple, rustup } = m {
            if !rustup {
                return Err(hinted(
                    format!(
                        "the Rust target {triple} is not installed and rustup is not available to install it"
                    ),
                    m.install_command(),
                ));
            }
            ui.status(
                "Installing",
                format!("Rust target {triple} (rustup target add {triple})"),
            );
            let out = Command::new("rustup")
                .args(["target", "add", triple])
                .env("PATH", path)
                .env("RUST_BACKTRACE", "0")
                .output()
                .context("running rustup")?;
            if !out.status.success() {
                let stderr = String::from_utf8_lossy(&out.stderr);
                return Err(hinted(
                    format!(
                        "rustup could not install the Rust target {triple}: the standard library for it could not be downloaded or does not exist for this toolchain.\nrustup said: {}",
                        stderr.trim()
                    ),
                    format!(
                        "on a machine with access to static.rust-lang.org run `rustup target add {triple}`; offline, use a toolchain that already has {triple}"
                    ),
                ));
            }
        }
    }
    if needs_venv {
        let dir = tools_dir();
        ui.status(
            "Installing",
            format!("zig and cargo-zigbuild from PyPI into {}", dir.display()),
        );
        let python = find_on_path("python3", path).ok_or_else(|| {
            hinted(
                "installing zig and cargo-zigbuild needs python3, which is not on PATH",
                "install python3 (with venv), or install zig and cargo-zigbuild yourself: pip3 install ziglang; cargo install --locked cargo-zigbuild",
            )
        })?;
        if !dir.join("bin/python3").exists() {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            run_quiet(Command::new(python).arg("-m").arg("venv").arg(&dir))
                .context("creating the tools venv (on Debian/Ubuntu: apt install python3-venv)")?;
        }
        run_quiet(Command::new(dir.join("bin/pip")).args([
            "install",
            "--disable-pip-version-check",
            "-q",
            "ziglang",
            "cargo-zigbuild",
        ]))
        .context("installing ziglang and cargo-zigbuild with pip (is PyPI reachable?)")?;
        link_zig(&dir)?;
    }
    Ok(())
}

/// Puts the `zig` of the venv's `ziglang` package on the tools PATH, so
/// cargo-zigbuild finds it whichever `python3` comes first on PATH.
fn link_zig(venv: &Path) -> Result<()> {
    let link = venv.join("bin/zig");
    if link.exists() {
        return Ok(());
    }
    for entry in std::fs::read_dir(venv.join("lib"))?.flatten() {
        let zig = entry.path().join("site-packages/ziglang/zig");
        if zig.is_file() {
            std::os::unix::fs::symlink(&zig, &link)
                .with_context(|| format!("linking {}", link.display()))?;
            return Ok(());
        }
    }
    bail!(
        "pip installed ziglang, but its zig executable is not in {}",
        venv.display()
    )
}

fn run_quiet(cmd: &mut Command) -> Result<()> {
    let out = cmd.output().with_context(|| format!("starting {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(arch: Arch, glibc: Option<(u32, u32)>) -> Host {
        Host {
            arch: Some(arch),
            linux: true,
            glibc,
        }
    }

    #[test]
    fn plain_cargo_only_when_the_host_links_a_compatible_binary() {
        let al2023 = (2, 34);
        assert_eq!(
            choose_driver(
                &host(Arch::X86_64, Some((2, 34))),
                Arch::X86_64,
                false,
                al2023
            ),
            Driver::Cargo
        );
        assert_eq!(
            choose_driver(
                &host(Arch::X86_64, Some((2, 36))),
                Arch::X86_64,
                false,
                al2023
            ),
            Driver::Zigbuild
        );
        assert_eq!(
            choose_driver(
                &host(Arch::X86_64, Some((2, 36))),
                Arch::X86_64,
                true,
                al2023
            ),
            Driver::Cargo
        );
        assert_eq!(
            choose_driver(
                &host(Arch::X86_64, Some((2, 17))),
                Arch::Arm64,
                false,
                al2023
            ),
            Driver::Zigbuild
        );
        assert_eq!(
            choose_driver(&host(Arch::Arm64, None), Arch::Arm64, false, al2023),
            Driver::Zigbuild
        );
    }

    #[test]
    fn zigbuild_gets_the_glibc_suffix() {
        let req = BuildRequest {
            driver: Driver::Zigbuild,
            target: Some("aarch64-unknown-linux-gnu".into()),
            glibc: Some((2, 34)),
            profile: "release".into(),
            ..Default::default()
        };
        let args: Vec<_> = req
            .command()
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(
            args.contains(&"aarch64-unknown-linux-gnu.2.34".to_string()),
            "{args:?}"
        );
        let musl = BuildRequest {
            target: Some("aarch64-unknown-linux-musl".into()),
            ..req
        };
        let args: Vec<_> = musl
            .command()
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(
            args.contains(&"aarch64-unknown-linux-musl".to_string()),
            "{args:?}"
        );
    }
}
