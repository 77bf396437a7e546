//! The package operation: turns built functions into what Lambda takes.
//!
//! - a function: `target/lambda/<function>/bootstrap.zip` with `bootstrap`
//!   (0755) at the root plus the included files;
//! - an extension: `target/lambda/extensions/<name>.zip` laid out as a layer
//!   (`extensions/<name>`), with a manifest for publishing;
//! - `--layer NAME`: `target/lambda/layers/<NAME>.zip` with every selected
//!   function under `bin/` or `extensions/`, plus `<NAME>.json`.
//!
//! Every binary is checked again (architecture, glibc, libraries) before it
//! is packaged; includes never escape the crate; limits are checked before
//! writing. Knows nothing about clap or cargo.

pub mod image;
pub mod layer;
pub mod zip;

use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::artifact;
use crate::config::{Arch, Runtime};
use crate::error::hinted;
use crate::ui::Ui;

use self::zip::Entry;

/// Lambda's package size limits, injectable so tests need no huge files.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Unzipped function code plus layers: refused above this (250 MB).
    pub max_unzipped: u64,
    /// Zipped size a direct (non-S3) upload accepts (50 MB).
    pub direct_upload: u64,
    /// The HTTP request body cap of a direct upload, base64 included.
    pub request_cap: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_unzipped: 262_144_000,
            direct_upload: 52_428_800,
            request_cap: 70_167_211,
        }
    }
}

/// One function (or extension) to package.
#[derive(Debug, Clone)]
pub struct Input {
    pub name: String,
    pub extension: bool,
    pub architecture: Arch,
    pub runtime: Runtime,
    /// The executable (usually `target/lambda/<name>/bootstrap`).
    pub binary: PathBuf,
    /// The crate's directory: include paths are relative to it and must stay inside.
    pub package_dir: PathBuf,
    /// Include paths (configuration and command line).
    pub include: Vec<PathBuf>,
}

#[derive(Debug, Clone, Default)]
pub struct PackageOptions {
    /// Package everything as one layer with this name.
    pub layer: Option<String>,
    pub limits: Limits,
    /// Zip path instead of the default layout (one output only).
    pub out: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Function,
    Extension,
    Layer,
}

/// A written package.
#[derive(Debug, Clone, Serialize)]
pub struct Packaged {
    pub kind: Kind,
    pub name: String,
    pub path: PathBuf,
    /// Base64 SHA-256 of the zip, as Lambda reports it (CodeSha256).
    pub code_sha256: String,
    pub zipped_size: u64,
    pub unzipped_size: u64,
    /// Over the direct-upload limit: deploy must go through S3.
    pub needs_s3: bool,
    pub entries: Vec<String>,
    /// The layer manifest, for extensions and layers.
    pub manifest: Option<PathBuf>,
}

/// Packages `inputs` under `lambda_dir` (`target/lambda`).
pub fn package(
    inputs: &[Input],
    opts: &PackageOptions,
    lambda_dir: &Path,
    ui: &Ui,
) -> Result<Vec<Packaged>> {
    if inputs.is_empty() {
        bail!("nothing to package: no functions selected");
    }
    // Check every binary before anything is written.
    let mut max_glibc: Vec<Option<(u32, u32)>> = Vec::new();
    for input in inputs {
        let report = artifact::check_file(&input.binary, input.architecture, input.runtime)
            .with_context(|| format!("function `{}`", input.name))?;
        max_glibc.push(report.max_glibc_version);
    }
    if let Some(name) = &opts.layer {
        layer::validate_name(name)?;
        return Ok(vec![package_layer(
            name, inputs, &max_glibc, opts, lambda_dir, ui,
        )?]);
    }
    if opts.out.is_some() && inputs.len() > 1 {
        return Err(crate::error::UsageError(format!(
            "--out names one zip, but {} functions are selected; select one with --bin or -p",
            inputs.len()
        ))
        .into());
    }
    let mut out = Vec::new();
    for (input, glibc) in inputs.iter().zip(&max_glibc) {
        let mut entries = includes(&input.package_dir, &input.include)?;
        if input.extension {
            entries.push(Entry {
                name: layer::layer_path(&input.name, true),
                source: input.binary.clone(),
                mode: 0o755,
            });
            let dest = opts.out.clone().unwrap_or_else(|| {
                lambda_dir
                    .join("extensions")
                    .join(format!("{}.zip", input.name))
            });
            let mut p = write_checked(Kind::Extension, &input.name, &dest, entries, opts, ui)?;
            p.manifest = Some(write_manifest(&p, &[input.architecture], &[*glibc])?);
            out.push(p);
        } else {
            entries.push(Entry {
                name: "bootstrap".into(),
                source: input.binary.clone(),
                mode: 0o755,
            });
            let dest = opts
                .out
                .clone()
                .unwrap_or_else(|| lambda_dir.join(&input.name).join("bootstrap.zip"));
            out.push(write_checked(
                Kind::Function,
                &input.name,
                &dest,
                entries,
                opts,
                ui,
            )?);
        }
    }
    Ok(out)
}

fn package_layer(
    name: &str,
    inputs: &[Input],
    max_glibc: &[Option<(u32, u32)>],
    opts: &PackageOptions,
    lambda_dir: &Path,
    ui: &Ui,
) -> Result<Packaged> {
    let mut archs: Vec<Arch> = inputs.iter().map(|i| i.architecture).collect();
    archs.sort_by_key(|a| a.as_str());
    archs.dedup();
    if archs.len() > 1 {
        return Err(hinted(
            format!(
                "layer `{name}` would mix architectures ({}): a layer's binaries must all run on one architecture",
                archs
                    .iter()
                    .map(|a| a.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "build and package one layer per architecture (`--arch x86_64` / `--arch arm64`)",
        ));
    }
    let mut entries = Vec::new();
    for input in inputs {
        for e in includes(&input.package_dir, &input.include)? {
            if !entries.contains(&e) {
                entries.push(e);
            }
        }
        entries.push(Entry {
            name: layer::layer_path(&input.name, input.extension),
            source: input.binary.clone(),
            mode: 0o755,
        });
    }
    let dest = opts
        .out
        .clone()
        .unwrap_or_else(|| lambda_dir.join("layers").join(format!("{name}.zip")));
    let mut p = write_checked(Kind::Layer, name, &dest, entries, opts, ui)?;
    p.manifest = Some(write_manifest(&p, &archs, max_glibc)?);
    Ok(p)
}

fn write_manifest(
    p: &Packaged,
    archs: &[Arch],
    max_glibc: &[Option<(u32, u32)>],
) -> Result<PathBuf> {
    let newest = max_glibc.iter().flatten().max().copied();
    let runtimes = layer::compatible_runtimes(newest);
    let path = p.path.with_extension("json");
    layer::LayerManifest {
        name: p.name.clone(),
        zip: p
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        code_sha256: p.code_sha256.clone(),
        compatible_architectures: archs.to_vec(),
        compatible_runtimes: runtimes,
        contents: p.entries.clone(),
    }
    .write(&path)?;
    Ok(path)
}

/// Checks the unzipped limit up front, writes the zip, then notes when its
/// size means deploy has to go through S3.
fn write_checked(
    kind: Kind,
    name: &str,
    dest: &Path,
    entries: Vec<Entry>,
    opts: &PackageOptions,
    ui: &Ui,
) -> Result<Packaged> {
    let mut unzipped = 0u64;
    for e in &entries {
        unzipped += std::fs::metadata(&e.source)
            .with_context(|| format!("reading {}", e.source.display()))?
            .len();
    }
    check_unzipped(name, unzipped, &opts.limits)?;
    let archive = zip::write(dest, entries)?;
    let needs_s3 = archive.zipped_size > opts.limits.direct_upload;
    if needs_s3 {
        ui.warn(format!(
            "{} is {} zipped, over Lambda's {} direct-upload limit (a direct request is capped at {} bytes): deploy uploads it through S3",
            archive.path.display(),
            human_size(archive.zipped_size),
            human_size(opts.limits.direct_upload),
            opts.limits.request_cap
        ));
    }
    Ok(Packaged {
        kind,
        name: name.to_string(),
        path: archive.path,
        code_sha256: archive.code_sha256,
        zipped_size: archive.zipped_size,
        unzipped_size: archive.unzipped_size,
        needs_s3,
        entries: archive.entries,
        manifest: None,
    })
}

/// Refuses a package whose unzipped size is over Lambda's limit.
pub fn check_unzipped(name: &str, unzipped: u64, limits: &Limits) -> Result<()> {
    if unzipped > limits.max_unzipped {
        return Err(hinted(
            format!(
                "`{name}` is {} unzipped ({unzipped} bytes), over Lambda's limit of {} ({} bytes) for a function and its layers",
                human_size(unzipped),
                human_size(limits.max_unzipped),
                limits.max_unzipped
            ),
            "drop large includes, strip the binary (profile.release strip = true), or ship it as a container image",
        ));
    }
    Ok(())
}

/// Lambda's `CodeSha256` of a zip: base64 of its SHA-256.
pub fn sha256_b64(bytes: &[u8]) -> String {
    use base64::Engine;
    use sha2::Digest;
    base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(bytes))
}

/// `12.3 MB` (decimal megabytes, as Lambda's limits are stated).
pub fn human_size(bytes: u64) -> String {
    if bytes >= 1_000_000 {
        format!("{:.1} MB", bytes as f64 / 1_048_576.0)
    } else {
        format!("{:.1} KB", bytes as f64 / 1024.0)
    }
}

/// Resolves include paths (relative to `root`, the crate directory) into
/// zip entries named by their path relative to `root`. Refuses absolute
/// paths, `..`, and symlinks that lead outside `root`.
pub fn includes(root: &Path, paths: &[PathBuf]) -> Result<Vec<Entry>> {
    let root_canon = root
        .canonicalize()
        .with_context(|| format!("reading the crate directory {}", root.display()))?;
    let mut out = Vec::new();
    for path in paths {
        if path.is_absolute() {
            return Err(hinted(
                format!("include `{}` is an absolute path", path.display()),
                format!(
                    "include paths are relative to the crate directory {}",
                    root.display()
                ),
            ));
        }
        if path.components().any(|c| matches!(c, Component::ParentDir)) {
            return Err(hinted(
                format!(
                    "include `{}` contains `..` and could escape the crate",
                    path.display()
                ),
                format!(
                    "include paths must stay inside the crate directory {}",
                    root.display()
                ),
            ));
        }
        let full = root.join(path);
        let canon = full.canonicalize().map_err(|e| {
            hinted(
                format!(
                    "include `{}` does not exist in {}: {e}",
                    path.display(),
                    root.display()
                ),
                "include paths are relative to the crate directory (the one with Cargo.toml)",
            )
        })?;
        ensure_inside(&root_canon, &canon, path)?;
        let name: Vec<String> = path
            .components()
            .filter_map(|c| match c {
                Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
                _ => None,
            })
            .collect();
        let name = name.join("/");
        if canon.is_dir() {
            walk(&root_canon, &canon, &name, path, &mut out, 0)?;
        } else {
            out.push(Entry {
                mode: mode_of(&canon)?,
                name,
                source: canon,
            });
        }
    }
    Ok(out)
}

fn ensure_inside(root: &Path, canon: &Path, given: &Path) -> Result<()> {
    if !canon.starts_with(root) {
        return Err(hinted(
            format!(
                "include `{}` resolves to {}, outside the crate {} (through a symlink)",
                given.display(),
                canon.display(),
                root.display()
            ),
            "copy the file into the crate, or point the symlink at a file inside it",
        ));
    }
    Ok(())
}

fn walk(
    root: &Path,
    dir: &Path,
    prefix: &str,
    given: &Path,
    out: &mut Vec<Entry>,
    depth: usize,
) -> Result<()> {
    if depth > 64 {
        bail!(
            "include `{}` nests more than 64 directories deep (a symlink loop?)",
            given.display()
        );
    }
    let mut children: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("reading {}", dir.display()))?;
    children.sort_by_key(|e| e.file_name());
    for child in children {
        let file_name = child.file_name().to_string_lossy().into_owned();
        let name = if prefix.is_empty() {
            file_name.clone()
        } else {
            format!("{prefix}/{file_name}")
        };
        let canon = child.path().canonicalize().with_context(|| {
            format!(
                "include `{}`: {} is a broken link",
                given.display(),
                child.path().display()
            )
        })?;
        ensure_inside(root, &canon, &given.join(&file_name))?;
        if canon.is_dir() {
            walk(root, &canon, &name, &given.join(&file_name), out, depth + 1)?;
        } else {
            out.push(Entry {
                mode: mode_of(&canon)?,
                name,
                source: canon,
            });
        }
    }
    Ok(())
}

fn mode_of(path: &Path) -> Result<u32> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .permissions()
        .mode();
    Ok(if mode & 0o111 != 0 { 0o755 } else { 0o644 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn includes_stay_inside_the_crate() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"s").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("assets/sub")).unwrap();
        std::fs::write(root.join("assets/a.txt"), b"a").unwrap();
        std::fs::write(root.join("assets/sub/b.txt"), b"b").unwrap();
        std::fs::write(root.join("config.toml"), b"c").unwrap();
        std::os::unix::fs::symlink(root.join("config.toml"), root.join("assets/link.toml"))
            .unwrap();

        let entries = includes(
            root,
            &[PathBuf::from("assets"), PathBuf::from("./config.toml")],
        )
        .unwrap();
        let names: Vec<_> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "assets/a.txt",
                "assets/link.toml",
                "assets/sub/b.txt",
                "config.toml"
            ]
        );

        let abs = includes(root, &[outside.path().join("secret")]).unwrap_err();
        assert!(abs.to_string().contains("absolute"), "{abs}");
        let up = includes(root, &[PathBuf::from("assets/../../x")]).unwrap_err();
        assert!(up.to_string().contains(".."), "{up}");

        std::os::unix::fs::symlink(outside.path().join("secret"), root.join("escape")).unwrap();
        let link = includes(root, &[PathBuf::from("escape")]).unwrap_err();
        assert!(link.to_string().contains("outside the crate"), "{link}");

        // A symlink inside an included directory that points out is refused too.
        std::os::unix::fs::symlink(outside.path(), root.join("assets/out")).unwrap();
        let nested = includes(root, &[PathBuf::from("assets")]).unwrap_err();
        assert!(nested.to_string().contains("outside the crate"), "{nested}");

        let missing = includes(root, &[PathBuf::from("nope")]).unwrap_err();
        assert!(missing.to_string().contains("does not exist"), "{missing}");
    }

    #[test]
    fn sizes_over_the_limits_are_noted_or_refused_before_writing() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bootstrap");
        std::fs::write(&file, vec![7u8; 4096]).unwrap();
        let entries = || {
            vec![Entry {
                name: "bootstrap".into(),
                source: file.clone(),
                mode: 0o755,
            }]
        };
        // Zipped size over the direct-upload limit: written, flagged for S3.
        let opts = PackageOptions {
            limits: Limits {
                direct_upload: 10,
                ..Default::default()
            },
            ..Default::default()
        };
        let dest = dir.path().join("f.zip");
        let p = write_checked(Kind::Function, "f", &dest, entries(), &opts, &Ui::silent()).unwrap();
        assert!(p.needs_s3);
        assert!(dest.is_file());
        // Unzipped size over the limit: refused, nothing written.
        let opts = PackageOptions {
            limits: Limits {
                max_unzipped: 4095,
                ..Default::default()
            },
            ..Default::default()
        };
        let refused = dir.path().join("g.zip");
        let err = write_checked(
            Kind::Function,
            "g",
            &refused,
            entries(),
            &opts,
            &Ui::silent(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("4096 bytes"), "{err}");
        assert!(!refused.exists());
        // Within both limits.
        let p = write_checked(
            Kind::Function,
            "h",
            &dir.path().join("h.zip"),
            entries(),
            &PackageOptions::default(),
            &Ui::silent(),
        )
        .unwrap();
        assert!(!p.needs_s3);
        assert_eq!(p.unzipped_size, 4096);
    }

    #[test]
    fn unzipped_limit() {
        let limits = Limits {
            max_unzipped: 1000,
            ..Default::default()
        };
        assert!(check_unzipped("f", 1000, &limits).is_ok());
        let err = check_unzipped("f", 1001, &limits).unwrap_err();
        assert!(err.to_string().contains("over Lambda's limit"), "{err}");
    }
}
