//! `cargo fn package`: arguments -> [`pipeline::PackageRequest`] ->
//! [`pipeline::package`] (build unless told not to, then zip or image) ->
//! the packages printed.

use std::path::PathBuf;

use clap::Args;

use super::build::BuildFlags;
use super::{ConfigFlags, GlobalArgs};
use crate::package::{self, image::ImageOptions};
use crate::pipeline::{self, Binaries, PackageRequest, PackageResult};

#[derive(Debug, Args)]
#[command(after_long_help = "\
Output layout (stable):
  target/lambda/<function>/bootstrap.zip   a function: bootstrap (0755) at the root
  target/lambda/extensions/<name>.zip      an extension: extensions/<name>; + <name>.json
  target/lambda/layers/<NAME>.zip          --layer NAME: bin/, extensions/, includes; + .json

Zips are byte-reproducible (sorted entries, fixed timestamps and
compression); the base64 SHA-256 printed is what Lambda reports as
CodeSha256. Include paths are relative to the crate and must stay inside it.")]
pub struct PackageArgs {
    #[command(flatten)]
    pub flags: ConfigFlags,
    #[command(flatten)]
    pub build: BuildFlags,
    /// Extra files or directories to put in the zip, relative to the crate
    /// directory (added to the configured `include` list)
    #[arg(long, value_name = "PATH", num_args = 1..)]
    pub include: Vec<PathBuf>,
    /// Package the selected functions as one layer: executables under bin/,
    /// extensions under extensions/<name>, includes as given
    #[arg(long, value_name = "NAME")]
    pub layer: Option<String>,
    /// Package this executable instead of building (it is checked first)
    #[arg(long, value_name = "PATH", conflicts_with = "no_build")]
    pub binary: Option<PathBuf>,
    /// Package what `cargo fn build` left in target/lambda without building
    #[arg(long)]
    pub no_build: bool,
    /// Write the zip here instead of target/lambda/... (one package only)
    #[arg(long, value_name = "ZIP")]
    pub out: Option<PathBuf>,
    /// Build an OCI container image instead of a zip (no Docker needed):
    /// target/lambda/<function>/image (OCI layout), image.tar (oci-archive)
    /// and an equivalent Dockerfile
    #[arg(long, conflicts_with_all = ["layer", "out"])]
    pub image: bool,
    /// Base image for --image, pulled from its registry (HOST/REPO:TAG);
    /// default: scratch, with the loader and libraries a glibc bootstrap needs
    #[arg(long, value_name = "REF", requires = "image")]
    pub base_image: Option<String>,
    /// Reach the base image's registry over plain HTTP (a local registry)
    #[arg(long, requires = "base_image")]
    pub plain_http: bool,
    /// Put the host's CA certificate bundle in the image
    #[arg(long, requires = "image")]
    pub ca_certificates: bool,
    /// Put the host's time zone database in the image
    #[arg(long, requires = "image")]
    pub tzdata: bool,
}

pub fn run(global: &GlobalArgs, args: PackageArgs) -> anyhow::Result<()> {
    let ui = global.ui();
    let req = PackageRequest {
        selection: global.selection(),
        overrides: args.flags.overrides(global)?,
        binaries: match (&args.binary, args.no_build) {
            (Some(b), _) => Binaries::Given(b.clone()),
            (None, true) => Binaries::Built,
            (None, false) => Binaries::Build(args.build.options(global)),
        },
        include: args.include.clone(),
        layer: args.layer.clone(),
        out: args.out.clone(),
        image: args.image.then(|| ImageOptions {
            base: args.base_image.clone(),
            plain_http: args.plain_http,
            ca_certificates: args.ca_certificates,
            tzdata: args.tzdata,
        }),
    };
    let ask = super::build::ask_install;
    let result = pipeline::package(&req, Some(&ask), &ui)?;
    if ui.is_json() {
        let value = match &result {
            PackageResult::Zips(z) => serde_json::to_string_pretty(z)?,
            PackageResult::Images(i) => serde_json::to_string_pretty(i)?,
        };
        println!("{value}");
        return Ok(());
    }
    let cwd = std::env::current_dir().unwrap_or_default();
    match result {
        PackageResult::Zips(packaged) => {
            for p in &packaged {
                let shown = p.path.strip_prefix(&cwd).unwrap_or(&p.path);
                ui.status(
                    "Packaged",
                    format!(
                        "{} -> {} ({}, {} unzipped)",
                        p.name,
                        shown.display(),
                        package::human_size(p.zipped_size),
                        package::human_size(p.unzipped_size)
                    ),
                );
                // The hash is the result: stdout, one line per package.
                println!("{}  CodeSha256={}", shown.display(), p.code_sha256);
            }
        }
        PackageResult::Images(built) => {
            for i in &built {
                ui.status(
                    "Image",
                    format!(
                        "{} ({}, {} in {} layer(s)) -> {}",
                        i.name,
                        i.architecture,
                        package::human_size(i.size),
                        i.layers.len(),
                        i.layout.display()
                    ),
                );
                println!("{}  {}", i.archive.display(), i.manifest_digest);
            }
        }
    }
    Ok(())
}
