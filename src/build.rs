//! The build operation: compiles the selected functions for their Lambda
//! architecture and runtime, checks each artifact, and places it at the
//! stable output layout:
//!
//! - functions: `target/lambda/<function>/bootstrap`
//! - extensions: `target/lambda/extensions/<name>`
//!
//! Chooses plain cargo or cargo-zigbuild per (architecture, runtime), finds
//! missing tools before building anything, and copies an artifact only when
//! cargo produced a new one (a no-op build costs about cargo's own no-op).
//! Knows nothing about clap or zips.

use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::artifact::{self, ArtifactReport};
use crate::config::{Arch, FunctionConfig, Runtime};
use crate::error::hinted;
use crate::project::Project;
use crate::toolchain::{self, BuildRequest, Driver, Host, MissingTools};
use crate::ui::Ui;

/// How to build, beyond each function's configuration.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Cargo profile; `release` unless the user says otherwise.
    pub profile: String,
    /// Static musl binaries instead of glibc ones.
    pub musl: bool,
    /// Install missing zig / cargo-zigbuild / rustup targets instead of failing.
    pub install_missing: bool,
    /// Forces the driver instead of choosing it from the host.
    pub driver: Option<Driver>,
    /// Passed to cargo untouched (`--locked`, ...).
    pub cargo_flags: Vec<String>,
    pub manifest_path: Option<PathBuf>,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            profile: "release".into(),
            musl: false,
            install_missing: false,
            driver: None,
            cargo_flags: Vec::new(),
            manifest_path: None,
        }
    }
}

/// One built and checked function.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BuiltFunction {
    pub name: String,
    pub package: String,
    pub bin: String,
    pub extension: bool,
    pub architecture: Arch,
    pub runtime: Runtime,
    pub target: String,
    pub driver: Driver,
    /// `target/lambda/<name>/bootstrap` or `target/lambda/extensions/<name>`.
    pub path: PathBuf,
    /// False when the artifact was unchanged and not copied again.
    pub copied: bool,
    pub check: ArtifactReport,
}

/// Where a function's executable goes.
pub fn output_path(lambda_dir: &Path, f: &FunctionConfig) -> PathBuf {
    if f.extension {
        lambda_dir.join("extensions").join(&f.name)
    } else {
        lambda_dir.join(&f.name).join("bootstrap")
    }
}

/// One cargo invocation: functions sharing architecture, libc and runtime glibc.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Group {
    arch: Arch,
    runtime: Runtime,
    driver: Driver,
    functions: Vec<usize>,
}

/// The build plan: one cargo invocation per group, with the driver chosen.
fn plan(functions: &[FunctionConfig], opts: &BuildOptions, host: &Host) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    for (i, f) in functions.iter().enumerate() {
        let driver = opts.driver.unwrap_or_else(|| {
            toolchain::choose_driver(host, f.architecture, opts.musl, f.runtime.glibc())
        });
        // Plain cargo and musl links do not depend on the runtime's glibc:
        // group those regardless of runtime so they build once.
        let glibc_matters = driver == Driver::Zigbuild && !opts.musl;
        match groups.iter_mut().find(|g| {
            g.arch == f.architecture
                && g.driver == driver
                && (!glibc_matters || g.runtime.glibc() == f.runtime.glibc())
        }) {
            Some(g) => g.functions.push(i),
            None => groups.push(Group {
                arch: f.architecture,
                runtime: f.runtime,
                driver,
                functions: vec![i],
            }),
        }
    }
    groups
}

/// Builds `functions` (resolved configurations of `project.functions`).
pub fn build(
    project: &Project,
    functions: &[FunctionConfig],
    opts: &BuildOptions,
    ui: &Ui,
) -> Result<Vec<BuiltFunction>> {
    if functions.is_empty() {
        return Err(hinted(
            "no functions to build: the selected packages have no binary targets",
            "add a binary (src/main.rs) or select another package with -p",
        ));
    }
    let host = toolchain::host();
    let groups = plan(functions, opts, &host);
    let path = toolchain::build_path();
    ensure_tools(&groups, opts, &path, ui)?;

    let lambda_dir = project.lambda_dir();
    let mut out = Vec::new();
    for group in &groups {
        let triple = toolchain::triple(group.arch, opts.musl);
        let members: Vec<&FunctionConfig> =
            group.functions.iter().map(|&i| &functions[i]).collect();
        let mut packages: Vec<String> = members.iter().map(|f| f.package.clone()).collect();
        packages.sort();
        packages.dedup();
        let mut bins: Vec<String> = members.iter().map(|f| f.bin.clone()).collect();
        bins.sort();
        bins.dedup();
        let req = BuildRequest {
            manifest_path: opts.manifest_path.clone(),
            packages,
            bins,
            profile: opts.profile.clone(),
            target: Some(triple.to_string()),
            target_dir: Some(project.target_dir.clone()),
            cargo_flags: opts.cargo_flags.clone(),
            driver: group.driver,
            glibc: (!opts.musl).then(|| group.runtime.glibc()),
            path: Some(path.clone()),
        };
        let names: Vec<&str> = members.iter().map(|f| f.name.as_str()).collect();
        ui.status(
            "Building",
            format!(
                "{} ({}, {}{}) with {}",
                names.join(", "),
                group.arch,
                triple,
                match req.glibc {
                    Some((a, b)) if group.driver == Driver::Zigbuild => format!(", glibc {a}.{b}"),
                    _ => String::new(),
                },
                group.driver
            ),
        );
        ui.detail(format!("{:?}", req.command()));
        let built = toolchain::cargo_build(&req)?;
        for f in members {
            let manifest = project
                .functions
                .iter()
                .find(|t| t.package == f.package && t.bin == f.bin)
                .map(|t| t.manifest_path.clone());
            let binary = built
                .iter()
                .find(|b| b.bin == f.bin && manifest.as_ref().is_none_or(|m| &b.manifest_path == m))
                .with_context(|| {
                    format!(
                        "cargo reported no executable for binary `{}` of package `{}`",
                        f.bin, f.package
                    )
                })?;
            // Check before placing it: a binary that cannot run on Lambda
            // never reaches target/lambda.
            let check = artifact::check_file(&binary.path, f.architecture, f.runtime)
                .with_context(|| format!("function `{}`", f.name))?;
            let dest = output_path(&lambda_dir, f);
            let copied = copy_if_changed(&binary.path, &dest)?;
            out.push(BuiltFunction {
                name: f.name.clone(),
                package: f.package.clone(),
                bin: f.bin.clone(),
                extension: f.extension,
                architecture: f.architecture,
                runtime: f.runtime,
                target: triple.to_string(),
                driver: group.driver,
                path: dest,
                copied,
                check,
            });
        }
    }
    Ok(out)
}

/// Finds missing tools for every group before building anything; installs
/// them with `install_missing`, otherwise fails naming each one.
fn ensure_tools(groups: &[Group], opts: &BuildOptions, path: &OsString, ui: &Ui) -> Result<()> {
    let mut missing = Vec::new();
    let mut triples: Vec<&str> = groups
        .iter()
        .map(|g| toolchain::triple(g.arch, opts.musl))
        .collect();
    triples.sort();
    triples.dedup();
    let zig = groups.iter().any(|g| g.driver == Driver::Zigbuild);
    for m in toolchain::missing_pieces(
        if zig { Driver::Zigbuild } else { Driver::Cargo },
        &triples,
        path,
    )? {
        if !missing.contains(&m) {
            missing.push(m);
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    if !opts.install_missing {
        return Err(MissingTools { missing }.into());
    }
    toolchain::install(&missing, path, ui)?;
    let still = toolchain::missing_pieces(
        if zig { Driver::Zigbuild } else { Driver::Cargo },
        &triples,
        path,
    )?;
    if !still.is_empty() {
        return Err(MissingTools { missing: still }.into());
    }
    Ok(())
}

/// Copies `src` to `dest` unless `dest` already has its size and mtime
/// (cargo rewrites the artifact whenever it relinks). Writes a temp file
/// and renames it, so `dest` is never half-written. Returns whether it copied.
pub fn copy_if_changed(src: &Path, dest: &Path) -> Result<bool> {
    use std::os::unix::fs::PermissionsExt;
    let src_meta = std::fs::metadata(src).with_context(|| format!("reading {}", src.display()))?;
    let src_mtime = src_meta
        .modified()
        .context("reading the artifact's mtime")?;
    if let Ok(dest_meta) = std::fs::metadata(dest)
        && dest_meta.len() == src_meta.len()
        && dest_meta.modified().ok() == Some(src_mtime)
    {
        return Ok(false);
    }
    let dir = dest.parent().context("output path has no parent")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".bootstrap.")
        .tempfile_in(dir)
        .with_context(|| format!("creating a temp file in {}", dir.display()))?;
    let mut input = File::open(src).with_context(|| format!("opening {}", src.display()))?;
    std::io::copy(&mut input, tmp.as_file_mut())
        .with_context(|| format!("copying {}", src.display()))?;
    let file = tmp.as_file();
    file.set_permissions(std::fs::Permissions::from_mode(0o755))?;
    file.set_modified(src_mtime)?;
    tmp.persist(dest)
        .with_context(|| format!("writing {}", dest.display()))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn function(name: &str, arch: Arch, runtime: Runtime) -> FunctionConfig {
        FunctionConfig {
            name: name.into(),
            package: name.into(),
            bin: name.into(),
            extension: false,
            architecture: arch,
            runtime,
            memory: 128,
            timeout: 3,
            ephemeral_storage: 512,
            env: Default::default(),
            env_file: None,
            secrets: Default::default(),
            layers: vec![],
            role: None,
            tracing: Default::default(),
            vpc: None,
            reserved_concurrency: None,
            provisioned_concurrency: Default::default(),
            log_format: Default::default(),
            log_level: None,
            log_group: None,
            tags: Default::default(),
            function_url: None,
            alias: None,
            include: vec![],
            event_format: Default::default(),
            image: Default::default(),
            triggers: vec![],
            deployment: Default::default(),
            durable: None,
            sources: Default::default(),
            warnings: vec![],
        }
    }

    #[test]
    fn groups_by_architecture_and_glibc() {
        let host = Host {
            arch: Some(Arch::X86_64),
            linux: true,
            glibc: Some((2, 36)),
        };
        let fs = vec![
            function("a", Arch::X86_64, Runtime::ProvidedAl2023),
            function("b", Arch::X86_64, Runtime::ProvidedAl2),
            function("c", Arch::Arm64, Runtime::ProvidedAl2023),
            function("d", Arch::X86_64, Runtime::ProvidedAl2023),
        ];
        let groups = plan(&fs, &BuildOptions::default(), &host);
        assert_eq!(groups.len(), 3);
        assert_eq!(groups[0].functions, vec![0, 3]);
        assert!(groups.iter().all(|g| g.driver == Driver::Zigbuild));
        // musl ignores the runtime glibc: one group per architecture.
        let musl = BuildOptions {
            musl: true,
            ..Default::default()
        };
        assert_eq!(plan(&fs, &musl, &host).len(), 2);
    }

    #[test]
    fn copy_skips_an_unchanged_artifact() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("hello");
        std::fs::write(&src, b"\x7fELF fake").unwrap();
        let dest = dir.path().join("lambda/hello/bootstrap");
        assert!(copy_if_changed(&src, &dest).unwrap());
        assert!(!copy_if_changed(&src, &dest).unwrap());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&dest).unwrap().permissions().mode() & 0o777,
            0o755
        );
        std::fs::write(&src, b"\x7fELF changed!").unwrap();
        assert!(copy_if_changed(&src, &dest).unwrap());
        assert_eq!(std::fs::read(&dest).unwrap(), b"\x7fELF changed!");
    }
}
