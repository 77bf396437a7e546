//! Finds the functions of a workspace through `cargo metadata`: packages,
//! their binary targets, their `[package.metadata]` tables and the target
//! directory. Never touches the network (`--no-deps`).
//!
//! A function is a binary target. With no `-p`, every workspace member is
//! selected (workspace-wide, like `cargo build --workspace`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::error::hinted;

/// What the user asked for on the command line.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub manifest_path: Option<PathBuf>,
    pub packages: Vec<String>,
    pub bins: Vec<String>,
    pub target_dir: Option<PathBuf>,
}

/// One binary target of a workspace package.
#[derive(Debug, Clone)]
pub struct FunctionTarget {
    pub package: String,
    pub bin: String,
    /// The package's Cargo.toml.
    pub manifest_path: PathBuf,
    /// The package's `[package.metadata]` table (JSON null when absent).
    pub package_metadata: serde_json::Value,
    pub src_path: PathBuf,
}

impl FunctionTarget {
    pub fn package_dir(&self) -> &Path {
        self.manifest_path.parent().unwrap_or(Path::new("."))
    }
}

/// The selected functions of a workspace and where artifacts go.
#[derive(Debug, Clone)]
pub struct Project {
    pub workspace_root: PathBuf,
    /// The workspace's Cargo.toml.
    pub workspace_manifest: PathBuf,
    pub target_dir: PathBuf,
    /// `[workspace.metadata]` (JSON null when absent).
    pub workspace_metadata: serde_json::Value,
    pub functions: Vec<FunctionTarget>,
}

impl Project {
    /// Reads the workspace with `cargo metadata --no-deps` and applies the selection.
    pub fn load(selection: &Selection) -> Result<Project> {
        let mut cmd = cargo_metadata::MetadataCommand::new();
        cmd.no_deps();
        if let Some(path) = &selection.manifest_path {
            if !path.is_file() {
                return Err(hinted(
                    format!("manifest `{}` does not exist", path.display()),
                    "pass --manifest-path pointing at a Cargo.toml",
                ));
            }
            cmd.manifest_path(path);
        }
        let metadata = cmd.exec().map_err(|e| {
            hinted(
                format!("could not read the cargo workspace: {e}"),
                "run inside a cargo project, or pass --manifest-path PATH/Cargo.toml (`cargo fn new NAME` creates one)",
            )
        })?;

        let members: Vec<&cargo_metadata::Package> = metadata.workspace_packages();
        let selected: Vec<&cargo_metadata::Package> = if selection.packages.is_empty() {
            members.clone()
        } else {
            let mut out = Vec::new();
            for spec in &selection.packages {
                let found = members.iter().find(|p| p.name.as_str() == spec.as_str());
                match found {
                    Some(p) => out.push(*p),
                    None => {
                        let names: Vec<_> = members.iter().map(|p| p.name.to_string()).collect();
                        bail!(
                            "package `{spec}` (from -p/--package) is not a member of this workspace; members: {}",
                            names.join(", ")
                        );
                    }
                }
            }
            out
        };

        let mut functions = Vec::new();
        for pkg in &selected {
            for target in &pkg.targets {
                if !target.is_bin() {
                    continue;
                }
                functions.push(FunctionTarget {
                    package: pkg.name.to_string(),
                    bin: target.name.clone(),
                    manifest_path: pkg.manifest_path.clone().into_std_path_buf(),
                    package_metadata: pkg.metadata.clone(),
                    src_path: target.src_path.clone().into_std_path_buf(),
                });
            }
        }
        if !selection.bins.is_empty() {
            for bin in &selection.bins {
                if !functions.iter().any(|f| &f.bin == bin) {
                    let names: Vec<_> = functions.iter().map(|f| f.bin.clone()).collect();
                    bail!(
                        "no binary target named `{bin}` (from --bin) in the selected packages; available: {}",
                        if names.is_empty() {
                            "none".to_string()
                        } else {
                            names.join(", ")
                        }
                    );
                }
            }
            functions.retain(|f| selection.bins.contains(&f.bin));
        }

        let workspace_root = metadata.workspace_root.clone().into_std_path_buf();
        let target_dir = match &selection.target_dir {
            Some(dir) if dir.is_absolute() => dir.clone(),
            Some(dir) => std::env::current_dir()
                .context("reading the current directory")?
                .join(dir),
            None => metadata.target_directory.clone().into_std_path_buf(),
        };
        Ok(Project {
            workspace_manifest: workspace_root.join("Cargo.toml"),
            workspace_root,
            target_dir,
            workspace_metadata: metadata.workspace_metadata.clone(),
            functions,
        })
    }

    /// `target/lambda`: where cargo-fn puts what it produces.
    pub fn lambda_dir(&self) -> PathBuf {
        self.target_dir.join("lambda")
    }
}
