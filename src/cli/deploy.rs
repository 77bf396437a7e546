//! `cargo fn deploy`: arguments -> resolved configuration and packages ->
//! [`crate::deploy`]. Configuration is resolved and validated before any
//! AWS call.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, ValueEnum};

use super::{ConfigFlags, GlobalArgs};
use crate::aws::sdk::{ConnectOptions, SdkAws, connect};
use crate::config::{self, FunctionConfig};
use crate::deploy::{
    self, DEFAULT_ALIAS, DIRECT_UPLOAD_LIMIT, DeployOptions, EnvMode, Package, S3Target,
};
use crate::error::{UsageError, hinted};
use crate::project::Project;
use crate::ui::Ui;

/// How to reach AWS; shared by deploy, promote and rollback.
#[derive(Debug, Args, Clone, Default)]
pub struct AwsArgs {
    /// AWS profile (shared config/credentials files)
    #[arg(long, value_name = "NAME", env = "AWS_PROFILE")]
    pub profile: Option<String>,
    /// AWS region
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// AWS endpoint URL (LocalStack, moto); AWS_ENDPOINT_URL and
    /// AWS_ENDPOINT_URL_LAMBDA are honoured too
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
}

impl AwsArgs {
    pub(super) fn options(&self) -> ConnectOptions {
        ConnectOptions {
            profile: self.profile.clone(),
            region: self.region.clone(),
            endpoint_url: self.endpoint_url.clone(),
            upload_progress: None,
        }
    }

    pub async fn connect(&self) -> Result<SdkAws> {
        connect(&self.options()).await
    }

    /// Like [`AwsArgs::connect`], with a byte bar for each large upload.
    pub async fn connect_with_progress(&self, ui: Ui) -> Result<SdkAws> {
        connect(&ConnectOptions {
            upload_progress: Some(ui),
            ..self.options()
        })
        .await
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum EnvModeArg {
    /// Keep remote entries that the configuration does not set
    Merge,
    /// Make the remote map exactly the configured one
    Replace,
}

impl From<EnvModeArg> for EnvMode {
    fn from(arg: EnvModeArg) -> EnvMode {
        match arg {
            EnvModeArg::Merge => EnvMode::Merge,
            EnvModeArg::Replace => EnvMode::Replace,
        }
    }
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// Functions to deploy (default: every selected function)
    #[arg(value_name = "FUNCTION")]
    pub functions: Vec<String>,
    /// Alias to create or move (default: the `alias` key, else "live")
    #[arg(long, value_name = "NAME")]
    pub alias: Option<String>,
    /// Route PERCENT of the alias's traffic to the new version; the alias stays on its version
    #[arg(long, value_name = "PERCENT")]
    pub canary: Option<f64>,
    /// Print the plan (calls and configuration diff) and change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Deploy this packaged zip instead of building and packaging first
    #[arg(long, value_name = "PATH")]
    pub zip: Option<PathBuf>,
    /// Deploy what `cargo fn package` left in target/lambda without
    /// building and packaging first
    #[arg(long, conflicts_with = "zip")]
    pub no_build: bool,
    /// Build static musl binaries when packaging first
    #[arg(long)]
    pub musl: bool,
    /// How the configured environment combines with the function's current one
    #[arg(long, value_enum, default_value_t = EnvModeArg::Replace)]
    pub env_mode: EnvModeArg,
    /// How the configured tags combine with the function's current ones
    /// (replace removes tags that left the configuration; `aws:` tags are kept)
    #[arg(long, value_enum, default_value_t = EnvModeArg::Replace)]
    pub tag_mode: EnvModeArg,
    /// Upload the zip through this S3 bucket (required over the 50 MB direct-upload limit)
    #[arg(long, value_name = "BUCKET")]
    pub s3_bucket: Option<String>,
    /// S3 key for the zip (default: cargo-fn/<function>/<CodeSha256>.zip)
    #[arg(long, value_name = "KEY", requires = "s3_bucket")]
    pub s3_key: Option<String>,
    /// How many of our zips per function to keep in the bucket (older ones are deleted)
    #[arg(long, value_name = "N", default_value_t = 3, requires = "s3_bucket")]
    pub s3_keep: usize,
    /// Publish a packaged layer (or extension) instead of a function
    #[arg(long, value_name = "NAME", conflicts_with_all = ["alias", "canary", "functions"])]
    pub layer: Option<String>,
    /// Deploy as a container image (PackageType Image): build the OCI image,
    /// push it to ECR (repository created if missing), pin the function to
    /// its digest. Also set by `package-type = "image"`
    #[arg(long, conflicts_with_all = ["zip", "s3_bucket", "layer"])]
    pub image: bool,
    /// Push images to this registry URL (http:// or https://) instead of
    /// the ECR repository's own host; the function still gets the
    /// repository's URI (LocalStack-like setups, tests)
    #[arg(long, value_name = "URL", env = "CARGO_FN_ECR_REGISTRY")]
    pub registry_url: Option<String>,
    #[command(flatten)]
    pub aws: AwsArgs,
    #[command(flatten)]
    pub flags: ConfigFlags,
}

pub fn run(global: &GlobalArgs, args: DeployArgs) -> Result<()> {
    runtime()?.block_on(run_async(global, args))
}

pub(super) fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

async fn run_async(global: &GlobalArgs, args: DeployArgs) -> Result<()> {
    let ui = global.ui();
    let overrides = args.flags.overrides()?;
    if let Some(layer) = &args.layer {
        return deploy_layer(global, &args, layer, &overrides).await;
    }
    if let Some(p) = args.canary
        && !(p > 0.0 && p < 100.0)
    {
        return Err(UsageError(format!(
            "--canary expects a percentage between 0 and 100 (exclusive), got {p}"
        ))
        .into());
    }
    let project = Project::load(&global.selection())?;
    // Everything is validated here, before any AWS call.
    let mut functions = config::resolve(&project, &overrides)?;
    if !args.functions.is_empty() {
        let known: Vec<String> = functions.iter().map(|f| f.name.clone()).collect();
        for wanted in &args.functions {
            if !known.contains(wanted) {
                return Err(UsageError(format!(
                    "no function named `{wanted}` in this workspace (functions: {})",
                    known.join(", ")
                ))
                .into());
            }
        }
        functions.retain(|f| args.functions.contains(&f.name));
    }
    if args.s3_keep == 0 {
        return Err(
            UsageError("--s3-keep must be at least 1 (the zip just deployed)".into()).into(),
        );
    }
    if (args.zip.is_some() || args.s3_key.is_some()) && functions.len() != 1 {
        return Err(UsageError(format!(
            "--zip and --s3-key name one package but {} functions are selected: name one FUNCTION",
            functions.len()
        ))
        .into());
    }
    if let Some(url) = &args.registry_url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        return Err(UsageError(format!(
            "--registry-url / CARGO_FN_ECR_REGISTRY `{url}`: expected an http:// or https:// URL"
        ))
        .into());
    }
    let is_image = |f: &FunctionConfig| args.image || f.image.enabled;
    let (images, zips): (Vec<FunctionConfig>, Vec<FunctionConfig>) =
        functions.iter().cloned().partition(|f| is_image(f));
    if !images.is_empty() && (args.zip.is_some() || args.s3_bucket.is_some()) {
        return Err(UsageError(format!(
            "--zip and --s3-bucket are for zip functions, but {} deploy as images (package-type = \"image\")",
            images.iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(", ")
        ))
        .into());
    }
    // Package first (the build is a no-op when nothing changed), so what
    // ships is never missing or stale. A dry run packages too: that changes
    // nothing in AWS and lets the plan compare the real CodeSha256.
    if args.zip.is_none() && !args.no_build {
        let build = super::build::BuildFlags {
            profile: "release".into(),
            musl: args.musl,
            install_missing: false,
            compiler: super::build::CompilerArg::Auto,
        };
        if !zips.is_empty() {
            super::package::package_functions(global, &project, &zips, &build, &ui)?;
        }
        if !images.is_empty() {
            super::package::package_function_images(global, &project, &images, &build, &ui)?;
        }
    }
    let mut jobs = Vec::new();
    for f in &functions {
        for w in &f.warnings {
            ui.warn(format!("{}: {w}", f.name));
        }
        let alias = args
            .alias
            .clone()
            .or_else(|| f.alias.clone())
            .unwrap_or_else(|| DEFAULT_ALIAS.to_string());
        config::check_alias_name(&alias)
            .map_err(|e| UsageError(format!("--alias `{alias}`: {e}")))?;
        if is_image(f) {
            let pkg = image_package(&project, f, args.registry_url.clone())?;
            jobs.push((f, alias, pkg));
            continue;
        }
        let zip = args
            .zip
            .clone()
            .unwrap_or_else(|| deploy::default_zip_path(&project.lambda_dir(), &f.name));
        deploy::package_if_missing_or_stale(&zip)?;
        let pkg = Package::read(&zip)?;
        if pkg.bytes.len() as u64 > DIRECT_UPLOAD_LIMIT && args.s3_bucket.is_none() {
            return Err(hinted(
                format!(
                    "{} is {} bytes, over Lambda's 50 MB direct-upload limit",
                    zip.display(),
                    pkg.bytes.len()
                ),
                "pass --s3-bucket BUCKET to upload it through S3",
            ));
        }
        jobs.push((f, alias, pkg));
    }

    let description = deploy::git_description(&project.workspace_root);
    let api = args.aws.connect_with_progress(ui).await?;
    let mut plans = Vec::new();
    let mut outcomes = Vec::new();
    for (f, alias, pkg) in jobs {
        let opts = DeployOptions {
            alias,
            canary: args.canary.map(|p| p / 100.0),
            env_mode: args.env_mode.into(),
            tag_mode: args.tag_mode.into(),
            description: description.clone(),
            s3: args.s3_bucket.clone().map(|bucket| S3Target {
                bucket,
                key: args.s3_key.clone(),
                keep: args.s3_keep,
            }),
        };
        let (plan, outcome) = deploy_one(&api, f, &pkg, &opts, args.dry_run, &ui).await?;
        if args.dry_run && !ui.is_json() {
            print!("{}", plan.render());
        }
        if let Some(o) = &outcome
            && !ui.is_json()
        {
            print_outcome(o);
        }
        plans.push(plan_json(&plan));
        outcomes.extend(outcome);
    }
    if ui.is_json() {
        let value = if args.dry_run {
            serde_json::json!({ "dry_run": true, "plans": plans })
        } else {
            serde_json::json!({ "functions": outcomes })
        };
        println!("{}", serde_json::to_string_pretty(&value)?);
    }
    Ok(())
}

async fn deploy_one(
    api: &SdkAws,
    f: &FunctionConfig,
    pkg: &Package,
    opts: &DeployOptions,
    dry_run: bool,
    ui: &crate::ui::Ui,
) -> Result<(deploy::Plan, Option<deploy::Outcome>)> {
    deploy::deploy(api, f, pkg, opts, dry_run, ui)
        .await
        .map_err(crate::aws::with_api_hint)
}

/// The image `package --image` left for `f`, and where it goes.
fn image_package(
    project: &Project,
    f: &FunctionConfig,
    registry_url: Option<String>,
) -> Result<Package> {
    let repository = match &f.image.repository {
        Some(r) => r.clone(),
        None => {
            let r = f.name.to_ascii_lowercase();
            deploy::image::check_repository_name(&r).map_err(|e| {
                hinted(
                    format!("{}: the default ECR repository name {e}", f.name),
                    "set `image = { repository = \"...\" }` in [package.metadata.fn]",
                )
            })?;
            r
        }
    };
    let layout = project.lambda_dir().join(&f.name).join("image");
    let image = deploy::image::read_layout(
        &layout,
        f.architecture,
        repository,
        f.image.scan_on_push,
        f.image.keep,
        registry_url,
    )?;
    Ok(Package::image(image))
}

fn plan_json(plan: &deploy::Plan) -> serde_json::Value {
    serde_json::json!({
        "function": plan.function,
        "alias": plan.alias,
        "exists": plan.exists,
        "code_changed": plan.exists && plan.code_changed,
        "changes": plan.changes,
        "env_mode": plan.env_mode,
        "tags": plan.tags,
        "untag": plan.untag,
        "publish": plan.publish,
        "calls": plan.calls,
    })
}

fn print_outcome(o: &deploy::Outcome) {
    let routing = match o.routing.iter().next() {
        Some((v, w)) => format!(" (canary: {}% on version {v})", (w * 1000.0).round() / 10.0),
        None => String::new(),
    };
    let verb = if o.changed { "deployed" } else { "up to date" };
    println!(
        "{}: {verb}, version {}, alias {} -> {}{routing}",
        o.function, o.version, o.alias, o.alias_version
    );
    println!("  {}", o.function_arn);
    println!("  CodeSha256 {}", o.code_sha256);
    if let Some(uri) = &o.image_uri {
        println!("  image {uri}");
    }
    if let Some(u) = &o.url {
        println!("  URL {u}");
    }
}

async fn deploy_layer(
    global: &GlobalArgs,
    args: &DeployArgs,
    layer: &str,
    overrides: &config::Overrides,
) -> Result<()> {
    if layer.is_empty()
        || layer.len() > 140
        || !layer
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(UsageError(format!(
            "--layer `{layer}`: a layer name is 1-140 characters of letters, digits, `-` and `_`"
        ))
        .into());
    }
    let ui = global.ui();
    let zip = match &args.zip {
        Some(z) => z.clone(),
        None => {
            let project = Project::load(&global.selection())?;
            project
                .lambda_dir()
                .join("layers")
                .join(format!("{layer}.zip"))
        }
    };
    let arch = overrides.architecture.unwrap_or_default();
    let runtimes = match &overrides.runtime {
        Some(r) => match config::Runtime::parse(r) {
            Some(r) => vec![r.as_str().to_string()],
            None => {
                return Err(UsageError(format!(
                    "--runtime `{r}`: expected provided.al2023 or provided.al2"
                ))
                .into());
            }
        },
        None => vec!["provided.al2023".to_string(), "provided.al2".to_string()],
    };
    if args.dry_run {
        println!(
            "call lambda:PublishLayerVersion {layer} ({}, {}, {})",
            zip.display(),
            arch,
            runtimes.join(", ")
        );
        return Ok(());
    }
    let api = args.aws.connect_with_progress(ui).await?;
    let description = match &global.manifest_path {
        Some(p) => deploy::git_description(p.parent().unwrap_or(std::path::Path::new("."))),
        None => deploy::git_description(std::path::Path::new(".")),
    };
    ui.status("Publishing", format!("layer {layer}"));
    let v = deploy::publish_layer(
        &api,
        layer,
        &zip,
        &[arch.as_str().to_string()],
        &runtimes,
        &description,
    )
    .await
    .map_err(crate::aws::with_api_hint)?;
    if ui.is_json() {
        println!(
            "{}",
            serde_json::json!({"layer": layer, "arn": v.arn, "version": v.version})
        );
    } else {
        println!("{}", v.arn);
    }
    Ok(())
}
