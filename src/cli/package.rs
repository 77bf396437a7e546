//! `cargo fn package`: build (unless told not to), then zip.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::build::{BuildFlags, build_functions, resolve};
use super::{ConfigFlags, GlobalArgs};
use crate::config::{Arch, Runtime};
use crate::error::{UsageError, hinted};
use crate::package::image::{ImageOptions, package_image};
use crate::package::{self, Input, PackageOptions};
use crate::project::Project;

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
    crate::toolchain::prefetch();
    let opts = PackageOptions {
        layer: args.layer.clone(),
        limits: Default::default(),
        out: args.out.clone(),
    };
    let (inputs, lambda_dir) = match Project::load(&global.selection()) {
        Ok(project) => inputs_from_project(global, &args, &project, &ui)?,
        // A binary given by path can be packaged outside any cargo project.
        Err(_) if args.binary.is_some() && global.manifest_path.is_none() => standalone(&args)?,
        Err(e) => return Err(e),
    };
    if args.image {
        return images(&args, &inputs, &lambda_dir, &ui);
    }
    let packaged = package::package(&inputs, &opts, &lambda_dir, &ui)?;
    if ui.is_json() {
        println!("{}", serde_json::to_string_pretty(&packaged)?);
        return Ok(());
    }
    let cwd = std::env::current_dir().unwrap_or_default();
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
    Ok(())
}

fn images(
    args: &PackageArgs,
    inputs: &[Input],
    lambda_dir: &std::path::Path,
    ui: &crate::ui::Ui,
) -> anyhow::Result<()> {
    let opts = ImageOptions {
        base: args.base_image.clone(),
        plain_http: args.plain_http,
        ca_certificates: args.ca_certificates,
        tzdata: args.tzdata,
    };
    let mut built = Vec::new();
    for input in inputs {
        let step = ui.step(format!("Building the image of {}", input.name));
        let image = package_image(input, &opts, lambda_dir)?;
        step.finish();
        built.push(image);
    }
    if ui.is_json() {
        println!("{}", serde_json::to_string_pretty(&built)?);
        return Ok(());
    }
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
    Ok(())
}

/// Builds and zips the given functions into their standard places: what
/// `deploy` runs first so it never ships a missing or stale package (cargo
/// makes the build a no-op when nothing changed, and the zip is
/// reproducible, so an unchanged function keeps its CodeSha256).
pub(super) fn package_functions(
    global: &GlobalArgs,
    project: &Project,
    functions: &[crate::config::FunctionConfig],
    build: &BuildFlags,
    ui: &crate::ui::Ui,
) -> anyhow::Result<Vec<package::Packaged>> {
    let built = build_functions(project, functions, &build.options(global), ui)?;
    let mut inputs = Vec::new();
    for (f, b) in functions.iter().zip(built) {
        inputs.push(input_for(project, f, b.path, &[])?);
    }
    let opts = PackageOptions {
        layer: None,
        limits: Default::default(),
        out: None,
    };
    package::package(&inputs, &opts, &project.lambda_dir(), ui)
}

/// Builds the given functions and their images into their standard places
/// (`target/lambda/<function>/image`): what `deploy --image` runs first.
pub(super) fn package_function_images(
    global: &GlobalArgs,
    project: &Project,
    functions: &[crate::config::FunctionConfig],
    build: &BuildFlags,
    ui: &crate::ui::Ui,
) -> anyhow::Result<Vec<crate::package::image::PackagedImage>> {
    let built = build_functions(project, functions, &build.options(global), ui)?;
    let mut out = Vec::new();
    for (f, b) in functions.iter().zip(built) {
        let input = input_for(project, f, b.path, &[])?;
        let step = ui.step(format!("Building the image of {}", f.name));
        out.push(package_image(
            &input,
            &ImageOptions::default(),
            &project.lambda_dir(),
        )?);
        step.finish();
    }
    Ok(out)
}

fn input_for(
    project: &Project,
    f: &crate::config::FunctionConfig,
    binary: PathBuf,
    extra_include: &[PathBuf],
) -> anyhow::Result<Input> {
    let target = project
        .functions
        .iter()
        .find(|t| t.package == f.package && t.bin == f.bin)
        .with_context(|| format!("function `{}` is not in the project", f.name))?;
    let mut include = f.include.clone();
    include.extend(extra_include.iter().cloned());
    Ok(Input {
        name: f.name.clone(),
        extension: f.extension,
        architecture: f.architecture,
        runtime: f.runtime,
        binary,
        package_dir: target.package_dir().to_path_buf(),
        include,
    })
}

fn inputs_from_project(
    global: &GlobalArgs,
    args: &PackageArgs,
    project: &Project,
    ui: &crate::ui::Ui,
) -> anyhow::Result<(Vec<Input>, PathBuf)> {
    let functions = resolve(project, &args.flags, ui)?;
    let lambda_dir = project.lambda_dir();
    let binaries: Vec<PathBuf> = if let Some(binary) = &args.binary {
        if functions.len() != 1 {
            return Err(UsageError(format!(
                "--binary packages one function, but {} are selected; pick one with --bin or -p",
                functions.len()
            ))
            .into());
        }
        vec![binary.clone()]
    } else if args.no_build {
        let mut out = Vec::new();
        for f in &functions {
            let path = crate::build::output_path(&lambda_dir, f);
            if !path.is_file() {
                return Err(hinted(
                    format!(
                        "{} does not exist (--no-build packages what `cargo fn build` produced)",
                        path.display()
                    ),
                    "run `cargo fn build` first, or drop --no-build",
                ));
            }
            out.push(path);
        }
        out
    } else {
        let built = build_functions(project, &functions, &args.build.options(global), ui)?;
        built.into_iter().map(|b| b.path).collect()
    };
    let mut inputs = Vec::new();
    for (f, binary) in functions.iter().zip(binaries) {
        inputs.push(input_for(project, f, binary, &args.include)?);
    }
    Ok((inputs, lambda_dir))
}

/// `--binary PATH` outside a cargo project: architecture and runtime come
/// from the flags (or the defaults), includes are relative to the current
/// directory, and the zip goes next to it unless `--out` says otherwise.
fn standalone(args: &PackageArgs) -> anyhow::Result<(Vec<Input>, PathBuf)> {
    let binary = args.binary.clone().expect("checked by the caller");
    let overrides = args.flags.overrides()?;
    let runtime = match &overrides.runtime {
        Some(r) => Runtime::parse(r).ok_or_else(|| {
            UsageError(format!(
                "--runtime `{r}` is not a Lambda OS-only runtime: use provided.al2023 or provided.al2"
            ))
        })?,
        None => Runtime::default(),
    };
    let cwd = std::env::current_dir()?;
    let name = binary
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "bootstrap".into());
    let input = Input {
        name,
        extension: false,
        architecture: overrides.architecture.unwrap_or(Arch::X86_64),
        runtime,
        binary,
        package_dir: cwd.clone(),
        include: args.include.clone(),
    };
    Ok((vec![input], cwd))
}
