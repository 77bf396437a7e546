//! `cargo fn package --image`: a function's bootstrap and includes as an OCI
//! image, through [`crate::image`]. This bridge decides what goes in (the
//! includes under the task root, the loader and libraries of a glibc
//! bootstrap from the matching sysroot, or a base image pulled from a
//! registry); `crate::image` does the writing.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use super::{Input, includes};
use crate::config::Arch;
use crate::error::hinted;
use crate::image::registry::{Reference, Registry};
use crate::image::{self, ImageSpec, TASK_ROOT};

/// How to build the image, beyond what the function's configuration says.
#[derive(Debug, Clone, Default)]
pub struct ImageOptions {
    /// A base image to build on, pulled from its registry (`HOST/REPO:TAG`).
    pub base: Option<String>,
    /// Talk plain HTTP to the base image's registry (local registries).
    pub plain_http: bool,
    pub ca_certificates: bool,
    pub tzdata: bool,
}

/// What `--output json` prints for an image.
#[derive(Debug, Clone, Serialize)]
pub struct PackagedImage {
    pub name: String,
    pub architecture: Arch,
    pub layout: PathBuf,
    pub archive: PathBuf,
    pub dockerfile: PathBuf,
    pub manifest_digest: String,
    pub layers: Vec<String>,
    /// Compressed size of all layers.
    pub size: u64,
}

/// Where a dynamically linked bootstrap's loader and libraries come from:
/// the host itself for its own architecture, Debian's cross libc otherwise.
/// The image module's name for a Lambda architecture.
fn platform(arch: Arch) -> crate::image::Platform {
    match arch {
        Arch::X86_64 => crate::image::Platform::Amd64,
        Arch::Arm64 => crate::image::Platform::Arm64,
    }
}

pub fn default_sysroot(arch: Arch) -> PathBuf {
    match (Arch::host() == Some(arch), arch) {
        (true, _) => PathBuf::from("/"),
        (false, Arch::Arm64) => PathBuf::from("/usr/aarch64-linux-gnu"),
        (false, Arch::X86_64) => PathBuf::from("/usr/x86_64-linux-gnu"),
    }
}

/// Builds the image of one function into `target/lambda/<function>/`.
pub fn package_image(
    input: &Input,
    opts: &ImageOptions,
    lambda_dir: &Path,
) -> Result<PackagedImage> {
    // On a base image the bootstrap meets that image's glibc (the runtime's);
    // on scratch it brings its own loader and libraries, so only the
    // architecture matters, and `image::build` checks that.
    if opts.base.is_some() {
        crate::artifact::check_file(&input.binary, input.architecture, input.runtime)
            .with_context(|| {
                format!(
                    "checking {} before building its image",
                    input.binary.display()
                )
            })?;
    }
    let files = includes(&input.package_dir, &input.include)?
        .into_iter()
        .map(|e| (e.source, format!("{TASK_ROOT}/{}", e.name)))
        .collect();
    let base = match &opts.base {
        None => None,
        Some(reference) => {
            let r = Reference::parse(reference)?;
            let mut registry = Registry::new(&r.registry, None, opts.plain_http);
            let dir = lambda_dir
                .join(".base-images")
                .join(r.repository.replace('/', "_"));
            Some(
                registry
                    .pull(&r, platform(input.architecture), &dir)
                    .with_context(|| format!("pulling the base image {reference}"))?,
            )
        }
    };
    let sysroot = default_sysroot(input.architecture);
    let spec = ImageSpec {
        arch: platform(input.architecture),
        bootstrap: input.binary.clone(),
        files,
        env: Default::default(),
        ca_certificates: opts.ca_certificates,
        tzdata: opts.tzdata,
        sysroot: sysroot.is_dir().then_some(sysroot.clone()),
        base,
    };
    let out_dir = lambda_dir.join(&input.name);
    let built = image::build(&spec, &out_dir).map_err(|e| {
        if spec.sysroot.is_none() && format!("{e:#}").contains("dynamically linked") {
            hinted(
                format!("{e:#}"),
                format!(
                    "{} is missing: install the cross libc (apt-get install libc6-arm64-cross), build with --musl, or pass --base-image",
                    sysroot.display()
                ),
            )
        } else {
            e
        }
    })?;
    // The Dockerfile copies `bootstrap` from its own directory.
    let beside = out_dir.join("bootstrap");
    if input.binary != beside {
        std::fs::copy(&input.binary, &beside)
            .with_context(|| format!("copying the bootstrap to {}", beside.display()))?;
    }
    Ok(PackagedImage {
        name: input.name.clone(),
        architecture: input.architecture,
        size: built.layers.iter().map(|l| l.size).sum(),
        layers: built.layers.iter().map(|l| l.digest.clone()).collect(),
        manifest_digest: built.manifest.digest,
        layout: built.layout,
        archive: built.archive,
        dockerfile: built.dockerfile,
    })
}
