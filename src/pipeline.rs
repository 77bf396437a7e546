//! The ship pipeline: build -> package -> deploy, as library operations that
//! `cargo fn build`, `package` and `deploy` call with a request and whose
//! result they print. Owns the order of the steps, the checks that must
//! pass before any AWS call, which package each function ships (a zip,
//! an image, or one given by path), and the gradual rollout of the release
//! after the publish; it does no printing of results.
//!
//! Knows the configuration model, the build, packaging and deploy
//! operations and how to reach AWS (`aws::sdk::connect`); knows nothing of
//! clap. The one interactive moment (offering to install missing build
//! tools) is a callback the command supplies.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::aws::sdk::ConnectOptions;
use crate::build::{BuildOptions, BuiltFunction};
use crate::config::{self, Arch, FunctionConfig, Overrides, Runtime, StageConfig, Strategy};
use crate::deploy::guard::{self, Confirm, Pin};
use crate::deploy::rollout::{self, Member};
use crate::deploy::{
    self, DEFAULT_ALIAS, DIRECT_UPLOAD_LIMIT, DeployOptions, EnvMode, Outcome, Package, Plan,
    S3Target,
};
use crate::error::{UsageError, hinted};
use crate::package::image::{ImageOptions, PackagedImage, package_image};
use crate::package::{self, Input, PackageOptions, Packaged};
use crate::project::{Project, Selection};
use crate::toolchain::MissingTools;
use crate::ui::Ui;

/// Asked when build tools are missing: install them and try again?
pub type AskInstall<'a> = &'a dyn Fn(&anyhow::Error) -> bool;

/// Resolves the selected functions' configuration (everything validated,
/// before any build or AWS call) and shows its warnings.
pub fn resolve(project: &Project, overrides: &Overrides, ui: &Ui) -> Result<Vec<FunctionConfig>> {
    let functions = config::resolve(project, overrides)?;
    for f in &functions {
        for w in &f.warnings {
            ui.warn(format!("{}: {w}", f.name));
        }
    }
    Ok(functions)
}

/// Builds; when tools are missing and `ask` says so, installs them and
/// tries again.
pub fn build(
    project: &Project,
    functions: &[FunctionConfig],
    opts: &BuildOptions,
    ask: Option<AskInstall<'_>>,
    ui: &Ui,
) -> Result<Vec<BuiltFunction>> {
    match crate::build::build(project, functions, opts, ui) {
        Err(e)
            if !opts.install_missing
                && e.downcast_ref::<MissingTools>().is_some()
                && ask.is_some_and(|ask| ask(&e)) =>
        {
            let opts = BuildOptions {
                install_missing: true,
                ..opts.clone()
            };
            crate::build::build(project, functions, &opts, ui)
        }
        other => other,
    }
}

/// Where the executables to package come from.
#[derive(Debug, Clone)]
pub enum Binaries {
    /// Build them first.
    Build(BuildOptions),
    /// What `cargo fn build` left in target/lambda.
    Built,
    /// This executable (one function; outside a project too).
    Given(PathBuf),
}

/// What `cargo fn package` asks for.
#[derive(Debug, Clone)]
pub struct PackageRequest {
    pub selection: Selection,
    pub overrides: Overrides,
    pub binaries: Binaries,
    /// Extra include paths, added to each function's `include`.
    pub include: Vec<PathBuf>,
    /// Package the functions as one layer of this name.
    pub layer: Option<String>,
    pub out: Option<PathBuf>,
    /// Build OCI images instead of zips.
    pub image: Option<ImageOptions>,
}

/// What `cargo fn package` made.
#[derive(Debug)]
pub enum PackageResult {
    Zips(Vec<Packaged>),
    Images(Vec<PackagedImage>),
}

/// Build (unless told not to), then zip or build images.
pub fn package(
    req: &PackageRequest,
    ask: Option<AskInstall<'_>>,
    ui: &Ui,
) -> Result<PackageResult> {
    crate::toolchain::prefetch();
    let (inputs, lambda_dir) = match Project::load(&req.selection) {
        Ok(project) => inputs_from_project(req, &project, ask, ui)?,
        // A binary given by path can be packaged outside any cargo project.
        Err(_)
            if matches!(req.binaries, Binaries::Given(_))
                && req.selection.manifest_path.is_none() =>
        {
            standalone(req)?
        }
        Err(e) => return Err(e),
    };
    if let Some(opts) = &req.image {
        let mut built = Vec::new();
        for input in &inputs {
            let step = ui.step(format!("Building the image of {}", input.name));
            built.push(package_image(input, opts, &lambda_dir)?);
            step.finish();
        }
        return Ok(PackageResult::Images(built));
    }
    let opts = PackageOptions {
        layer: req.layer.clone(),
        limits: Default::default(),
        out: req.out.clone(),
    };
    Ok(PackageResult::Zips(package::package(
        &inputs,
        &opts,
        &lambda_dir,
        ui,
    )?))
}

fn input_for(
    project: &Project,
    f: &FunctionConfig,
    binary: PathBuf,
    extra_include: &[PathBuf],
) -> Result<Input> {
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
    req: &PackageRequest,
    project: &Project,
    ask: Option<AskInstall<'_>>,
    ui: &Ui,
) -> Result<(Vec<Input>, PathBuf)> {
    let functions = resolve(project, &req.overrides, ui)?;
    let lambda_dir = project.lambda_dir();
    let binaries: Vec<PathBuf> = match &req.binaries {
        Binaries::Given(binary) => {
            if functions.len() != 1 {
                return Err(UsageError(format!(
                    "--binary packages one function, but {} are selected; pick one with --bin or -p",
                    functions.len()
                ))
                .into());
            }
            vec![binary.clone()]
        }
        Binaries::Built => {
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
        }
        Binaries::Build(opts) => build(project, &functions, opts, ask, ui)?
            .into_iter()
            .map(|b| b.path)
            .collect(),
    };
    let mut inputs = Vec::new();
    for (f, binary) in functions.iter().zip(binaries) {
        inputs.push(input_for(project, f, binary, &req.include)?);
    }
    Ok((inputs, lambda_dir))
}

/// `--binary PATH` outside a cargo project: architecture and runtime come
/// from the overrides (or the defaults), includes are relative to the
/// current directory, and the zip goes next to it unless `out` says so.
fn standalone(req: &PackageRequest) -> Result<(Vec<Input>, PathBuf)> {
    let Binaries::Given(binary) = &req.binaries else {
        unreachable!("checked by the caller")
    };
    let runtime = match &req.overrides.runtime {
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
        architecture: req.overrides.architecture.unwrap_or(Arch::X86_64),
        runtime,
        binary: binary.clone(),
        package_dir: cwd.clone(),
        include: req.include.clone(),
    };
    Ok((vec![input], cwd))
}

/// Where zips go in S3 (`--s3-bucket`, `--s3-key`, `--s3-keep`).
#[derive(Debug, Clone)]
pub struct S3Request {
    pub bucket: String,
    pub key: Option<String>,
    pub keep: usize,
}

/// What `cargo fn deploy` asks for.
#[derive(Debug, Clone)]
pub struct DeployRequest {
    pub selection: Selection,
    pub overrides: Overrides,
    /// Function names to deploy (empty: every selected function).
    pub functions: Vec<String>,
    pub alias: Option<String>,
    /// Percent (0 < p < 100) of the alias's traffic for the new version.
    pub canary: Option<f64>,
    pub dry_run: bool,
    /// Deploy this zip instead of packaging.
    pub zip: Option<PathBuf>,
    /// How to build first; `None`: ship what `package` left.
    pub build: Option<BuildOptions>,
    pub env_mode: EnvMode,
    pub tag_mode: EnvMode,
    pub s3: Option<S3Request>,
    /// Every function as an image (else `package-type` decides).
    pub image: bool,
    pub registry_url: Option<String>,
    pub connect: ConnectOptions,
    /// A gradual rollout after the publish (see [`RolloutRequest`]).
    pub rollout: RolloutRequest,
    /// `--from STAGE`: ship the code that stage's alias runs (no build);
    /// see [`deploy::source`].
    pub from: Option<String>,
}

/// How the aliases move after the publish.
#[derive(Debug, Clone, Default)]
pub struct RolloutRequest {
    /// The strategy from the flags; `None`: the functions' configured one
    /// (unless `canary` asks for a manual canary).
    pub strategy: Option<Strategy>,
    /// Time between two health checks.
    pub poll: Duration,
}

/// What happened to one function (or, in a dry run, would).
pub struct Deployed {
    pub plan: Plan,
    pub outcome: Option<Outcome>,
}

/// Checks a deploy request before anything is built or called.
fn check(req: &DeployRequest) -> Result<()> {
    if let Some(p) = req.canary
        && !(p > 0.0 && p < 100.0)
    {
        return Err(UsageError(format!(
            "--canary expects a percentage between 0 and 100 (exclusive), got {p}"
        ))
        .into());
    }
    if req.s3.as_ref().is_some_and(|s| s.keep == 0) {
        return Err(
            UsageError("--s3-keep must be at least 1 (the zip just deployed)".into()).into(),
        );
    }
    if let Some(url) = &req.registry_url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        return Err(UsageError(format!(
            "--registry-url / CARGO_FN_ECR_REGISTRY `{url}`: expected an http:// or https:// URL"
        ))
        .into());
    }
    Ok(())
}

/// Selects the requested functions among the resolved ones; under a stage
/// a binary's name stands for its function in that stage.
fn select(functions: Vec<FunctionConfig>, wanted: &[String]) -> Result<Vec<FunctionConfig>> {
    if wanted.is_empty() {
        return Ok(functions);
    }
    let known: Vec<String> = functions.iter().map(|f| f.name.clone()).collect();
    let mut names = Vec::new();
    for w in wanted {
        let name = functions
            .iter()
            .find(|f| &f.name == w)
            .or_else(|| functions.iter().find(|f| &f.bin == w && f.stage.is_some()))
            .map(|f| f.name.clone());
        match name {
            Some(n) => names.push(n),
            None => {
                return Err(UsageError(format!(
                    "no function named `{w}` in this workspace (functions: {})",
                    known.join(", ")
                ))
                .into());
            }
        }
    }
    Ok(functions
        .into_iter()
        .filter(|f| names.contains(&f.name))
        .collect())
}

/// Build -> package -> plan -> (unless a dry run) execute, function by
/// function; `each` sees every function's result as soon as it is known.
/// Configuration, arguments and packages are all checked before the first
/// AWS call.
///
/// Long: the order of the checks is the contract (nothing written before
/// all of them pass), so it stays one sequence.
pub async fn deploy(
    req: &DeployRequest,
    ask: Option<AskInstall<'_>>,
    confirm: &Confirm<'_>,
    ui: &Ui,
    each: &mut dyn FnMut(&Deployed),
) -> Result<Shipped> {
    check(req)?;
    let project = Project::load(&req.selection)?;
    let functions = select(resolve(&project, &req.overrides, ui)?, &req.functions)?;
    // One stage per run (the configuration checks it).
    let stage = functions.first().and_then(|f| f.stage.clone());
    if req.from.is_some() {
        check_from(req, stage.as_ref())?;
    }
    let strategy =
        rollout::release_strategy(req.rollout.strategy, req.canary.is_some(), &functions)?;
    if (req.zip.is_some() || req.s3.as_ref().is_some_and(|s| s.key.is_some()))
        && functions.len() != 1
    {
        return Err(UsageError(format!(
            "--zip and --s3-key name one package but {} functions are selected: name one FUNCTION",
            functions.len()
        ))
        .into());
    }
    let is_image = |f: &FunctionConfig| req.image || f.image.enabled;
    let (images, zips): (Vec<FunctionConfig>, Vec<FunctionConfig>) =
        functions.iter().cloned().partition(|f| is_image(f));
    if !images.is_empty() && (req.zip.is_some() || req.s3.is_some()) {
        return Err(UsageError(format!(
            "--zip and --s3-bucket are for zip functions, but {} deploy as images (package-type = \"image\")",
            images.iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(", ")
        ))
        .into());
    }
    let mut aliases = Vec::new();
    for f in &functions {
        let alias = req
            .alias
            .clone()
            .or_else(|| f.alias.clone())
            .unwrap_or_else(|| DEFAULT_ALIAS.to_string());
        config::check_alias_name(&alias)
            .map_err(|e| UsageError(format!("--alias `{alias}`: {e}")))?;
        aliases.push(alias);
    }
    // Region and credentials (no call) first; who they belong to before a
    // build, or else right after the local packages are checked: a missing
    // one is one line, not an SDK error after a release build.
    let api = crate::aws::sdk::connect(&req.connect).await?;
    let what = format!(
        "deploy {}",
        functions
            .iter()
            .map(|f| f.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let building = req.zip.is_none() && req.build.is_some() && req.from.is_none();
    if building {
        guard(&api, stage.as_ref(), &what, confirm, req.dry_run).await?;
    }
    // Package first (the build is a no-op when nothing changed), so what
    // ships is never missing or stale. A dry run packages too: that changes
    // nothing in AWS and lets the plan compare the real CodeSha256.
    if let (None, Some(build_opts), true) = (&req.zip, &req.build, building) {
        if !zips.is_empty() {
            package_functions(&project, &zips, build_opts, ask, ui)?;
        }
        if !images.is_empty() {
            package_function_images(&project, &images, build_opts, ask, ui)?;
        }
    }
    let mut packages = Vec::new();
    let mut sources = Vec::new();
    if let Some(from) = &req.from {
        // The code another stage runs, read (and verified) before anything
        // is written here.
        for (pkg, source) in packages_from(&project, req, from, &functions).await? {
            packages.push(pkg);
            sources.push(Some(source));
        }
    } else {
        for f in &functions {
            packages.push(if is_image(f) {
                image_package(&project, f, req.registry_url.clone())?
            } else {
                zip_package(&project, f, req)?
            });
            sources.push(None);
        }
    }

    if !building {
        guard(&api, stage.as_ref(), &what, confirm, req.dry_run).await?;
    }
    let description = git_description(&project.workspace_root);
    let mut done = Vec::new();
    for (((f, alias), pkg), source) in functions.iter().zip(aliases).zip(packages).zip(sources) {
        let opts = DeployOptions {
            alias,
            // With a strategy, `--canary P` is its first step, not a weight.
            canary: req.canary.filter(|_| strategy.is_none()).map(|p| p / 100.0),
            env_mode: req.env_mode,
            tag_mode: req.tag_mode,
            description: description.clone(),
            s3: req.s3.as_ref().map(|s| S3Target {
                bucket: s.bucket.clone(),
                key: s.key.clone(),
                keep: s.keep,
            }),
            hold_alias: strategy.is_some(),
            stage: f.stage.as_ref().map(|s| s.name.clone()),
        };
        let (plan, mut outcome) = deploy::deploy(&api, f, &pkg, &opts, req.dry_run, ui)
            .await
            .map_err(crate::aws::with_api_hint)?;
        if let Some(o) = outcome.as_mut() {
            o.source = source;
        }
        let d = Deployed { plan, outcome };
        if strategy.is_none() {
            each(&d);
        }
        done.push(d);
    }
    let mut report = None;
    if let Some(s) = strategy
        && !req.dry_run
    {
        let members: Vec<Member> = functions
            .iter()
            .zip(&done)
            .filter_map(|(f, d)| {
                let o = d.outcome.as_ref()?;
                (o.alias_version != o.version).then(|| Member {
                    function: f.name.clone(),
                    alias: o.alias.clone(),
                    to: o.version.clone(),
                    deployment: f.deployment.clone(),
                })
            })
            .collect();
        if !members.is_empty() {
            let r = roll_out(&api, ui, s, req.rollout.poll, members).await?;
            for o in done.iter_mut().filter_map(|d| d.outcome.as_mut()) {
                r.settle(o);
            }
            report = Some(r);
        }
    }
    if strategy.is_some() {
        done.iter().for_each(&mut *each);
    }
    Ok(Shipped {
        functions: done,
        strategy,
        rollout: report,
    })
}

/// `sts:GetCallerIdentity`: the credentials are accepted by AWS.
async fn check_identity(api: &crate::aws::sdk::SdkAws) -> Result<crate::aws::triggers::Caller> {
    crate::aws::TriggerApi::caller(api)
        .await
        .map_err(|e| crate::aws::with_api_hint(e.into()))
}

/// What a stage pins, for the guard.
pub fn pin(stage: &StageConfig) -> Pin<'_> {
    Pin {
        stage: &stage.name,
        account: stage.account.as_deref(),
        region: stage.region.as_deref(),
        confirm: stage.confirm,
    }
}

/// The stage guard before any write (deploy, promote, rollback, remote
/// tune): the credentials are accepted, belong to the account the stage
/// pins and talk to its region, and a stage with `confirm = true` was
/// confirmed (`what` says what; a dry run writes nothing and needs no
/// confirmation). Reads only: one GetCallerIdentity per connection.
pub async fn guard(
    api: &crate::aws::sdk::SdkAws,
    stage: Option<&StageConfig>,
    what: &str,
    confirm: &Confirm<'_>,
    dry_run: bool,
) -> Result<()> {
    let caller = check_identity(api).await?;
    let Some(stage) = stage else {
        return Ok(());
    };
    let pin = pin(stage);
    guard::check_target(&pin, &caller)?;
    if !dry_run {
        guard::check_confirmation(&pin, what, confirm)?;
    }
    Ok(())
}

/// The stage guard for a command that changes one deployed function
/// outside a deploy (promote, rollback, remote tune): with a stage
/// selected, [`guard`], then the function may not belong to another stage
/// (its `cargo-fn:stage` tag). Without a stage: nothing to check, no call.
pub async fn guard_function(
    api: &crate::aws::sdk::SdkAws,
    stage: Option<&StageConfig>,
    function: &str,
    what: &str,
    confirm: &Confirm<'_>,
    dry_run: bool,
) -> Result<()> {
    let Some(s) = stage else {
        return Ok(());
    };
    guard(api, stage, what, confirm, dry_run).await?;
    let remote = crate::aws::LambdaApi::get_function(api, function)
        .await
        .map_err(|e| crate::aws::with_api_hint(e.into()))?;
    if let Some(f) = remote {
        guard::check_owner("function", function, &f.tags, Some(&s.name))?;
    }
    Ok(())
}

/// `--from STAGE` is checked before anything is built or called: a stage
/// to copy into, another to copy from.
fn check_from(req: &DeployRequest, stage: Option<&StageConfig>) -> Result<()> {
    let Some(from) = &req.from else {
        return Ok(());
    };
    let Some(stage) = stage else {
        return Err(UsageError(format!(
            "--from {from} copies into a stage: select it with --stage (or CARGO_FN_STAGE)"
        ))
        .into());
    };
    if &stage.name == from {
        return Err(UsageError(format!(
            "--from {from} names the stage being deployed; name the stage to copy from"
        ))
        .into());
    }
    Ok(())
}

/// For each function, the code `from`'s alias runs as the package to ship,
/// with where it came from. The source stage's configuration names the
/// function, alias, account, region and profile; its account is checked
/// like a deploy's (reads only).
async fn packages_from(
    project: &Project,
    req: &DeployRequest,
    from: &str,
    functions: &[FunctionConfig],
) -> Result<Vec<(Package, deploy::source::Source)>> {
    let overrides = Overrides {
        stage: Some(from.to_string()),
        ..Default::default()
    };
    let sources = config::resolve(project, &overrides)
        .with_context(|| format!("resolving the configuration of stage `{from}` (--from)"))?;
    let source_stage = sources.first().and_then(|f| f.stage.clone());
    // The source stage's own profile and region; else this connection's,
    // unless those are the target stage's pins (then the environment's).
    let target = functions.first().and_then(|f| f.stage.as_ref());
    let unpinned =
        |value: &Option<String>, pin: Option<&String>| value.clone().filter(|v| Some(v) != pin);
    let connect = ConnectOptions {
        profile: source_stage
            .as_ref()
            .and_then(|s| s.profile.clone())
            .or_else(|| {
                unpinned(
                    &req.connect.profile,
                    target.and_then(|t| t.profile.as_ref()),
                )
            })
            .or_else(|| std::env::var("AWS_PROFILE").ok().filter(|p| !p.is_empty())),
        region: source_stage
            .as_ref()
            .and_then(|s| s.region.clone())
            .or_else(|| unpinned(&req.connect.region, target.and_then(|t| t.region.as_ref()))),
        endpoint_url: req.connect.endpoint_url.clone(),
        upload_progress: None,
    };
    let src_api = crate::aws::sdk::connect(&connect)
        .await
        .with_context(|| format!("connecting to stage `{from}` (--from)"))?;
    let caller = check_identity(&src_api).await?;
    if let Some(s) = &source_stage {
        guard::check_target(&pin(s), &caller)?;
    }
    let mut out = Vec::new();
    for f in functions {
        let Some(sf) = sources
            .iter()
            .find(|s| s.package == f.package && s.bin == f.bin)
        else {
            return Err(UsageError(format!(
                "--from {from}: stage `{from}` has no function for binary `{}`",
                f.bin
            ))
            .into());
        };
        let alias = sf
            .alias
            .clone()
            .unwrap_or_else(|| DEFAULT_ALIAS.to_string());
        // A package here is used only when its CodeSha256 (an image: its
        // digest) is the source's.
        let local = if req.image || f.image.enabled {
            image_package(project, f, req.registry_url.clone()).ok()
        } else {
            let zip = req
                .zip
                .clone()
                .unwrap_or_else(|| default_zip_path(&project.lambda_dir(), &f.name));
            zip.is_file().then(|| Package::read(&zip)).transpose()?
        };
        let from_ref = deploy::source::SourceRef {
            stage: from,
            function: &sf.name,
            alias: &alias,
        };
        let (source, pkg) = deploy::source::fetch(&src_api, &from_ref, local.as_ref())
            .await
            .map_err(crate::aws::with_api_hint)?;
        out.push((pkg, source));
    }
    Ok(out)
}

/// What `deploy` did: each function, and the rollout that moved their
/// aliases (a rolled back or stopped one is an error only after
/// [`rollout::Report::into_result`], so the caller can print it first).
pub struct Shipped {
    pub functions: Vec<Deployed>,
    pub strategy: Option<Strategy>,
    pub rollout: Option<rollout::Report>,
}

async fn roll_out(
    api: &crate::aws::sdk::SdkAws,
    ui: &Ui,
    strategy: Strategy,
    poll: Duration,
    members: Vec<Member>,
) -> Result<rollout::Report> {
    let opts = rollout::Options {
        strategy,
        poll,
        time_scale: rollout::time_scale_from_env(),
    };
    let control = rollout::SignalControl::install();
    let mut observer = rollout::UiObserver::new(*ui);
    rollout::start(
        api,
        &rollout::SystemClock,
        &control,
        &mut observer,
        members,
        &opts,
    )
    .await
    .map_err(crate::aws::with_api_hint)
}

/// `deploy --resume`: the rollout recorded on the selected functions'
/// aliases continues where it stands.
pub async fn resume(req: &DeployRequest, ui: &Ui) -> Result<rollout::Report> {
    let project = Project::load(&req.selection)?;
    let functions = select(resolve(&project, &req.overrides, ui)?, &req.functions)?;
    let mut targets = Vec::new();
    for f in &functions {
        let alias = req
            .alias
            .clone()
            .or_else(|| f.alias.clone())
            .unwrap_or_else(|| DEFAULT_ALIAS.to_string());
        config::check_alias_name(&alias)
            .map_err(|e| UsageError(format!("--alias `{alias}`: {e}")))?;
        targets.push(rollout::ResumeTarget {
            function: f.name.clone(),
            alias,
            deployment: f.deployment.clone(),
        });
    }
    let api = crate::aws::sdk::connect(&req.connect).await?;
    let control = rollout::SignalControl::install();
    let mut observer = rollout::UiObserver::new(*ui);
    rollout::resume(
        &api,
        &rollout::SystemClock,
        &control,
        &mut observer,
        targets,
        req.rollout.poll,
        rollout::time_scale_from_env(),
    )
    .await
    .map_err(crate::aws::with_api_hint)
}

/// The zip of a function: `--zip`, else the one `package` wrote; checked
/// against the direct-upload limit unless it travels through S3.
fn zip_package(project: &Project, f: &FunctionConfig, req: &DeployRequest) -> Result<Package> {
    let zip = req
        .zip
        .clone()
        .unwrap_or_else(|| default_zip_path(&project.lambda_dir(), &f.name));
    package_if_missing_or_stale(&zip)?;
    let pkg = Package::read(&zip)?;
    if pkg.bytes.len() as u64 > DIRECT_UPLOAD_LIMIT && req.s3.is_none() {
        return Err(hinted(
            format!(
                "{} is {} bytes, over Lambda's 50 MB direct-upload limit",
                zip.display(),
                pkg.bytes.len()
            ),
            "pass --s3-bucket BUCKET to upload it through S3",
        ));
    }
    Ok(pkg)
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
            config::check_repository_name(&r).map_err(|e| {
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

/// Builds and zips the given functions into their standard places: what
/// `deploy` runs first so it never ships a missing or stale package (cargo
/// makes the build a no-op when nothing changed, and the zip is
/// reproducible, so an unchanged function keeps its CodeSha256).
pub fn package_functions(
    project: &Project,
    functions: &[FunctionConfig],
    build_opts: &BuildOptions,
    ask: Option<AskInstall<'_>>,
    ui: &Ui,
) -> Result<Vec<Packaged>> {
    let built = build(project, functions, build_opts, ask, ui)?;
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
pub fn package_function_images(
    project: &Project,
    functions: &[FunctionConfig],
    build_opts: &BuildOptions,
    ask: Option<AskInstall<'_>>,
    ui: &Ui,
) -> Result<Vec<PackagedImage>> {
    let built = build(project, functions, build_opts, ask, ui)?;
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

/// What `cargo fn deploy --layer` asks for.
#[derive(Debug, Clone)]
pub struct LayerRequest {
    pub layer: String,
    /// The zip; default `target/lambda/layers/<layer>.zip` of the project.
    pub zip: Option<PathBuf>,
    pub selection: Selection,
    pub architecture: Arch,
    /// `--runtime`, else both OS-only runtimes.
    pub runtime: Option<String>,
    pub dry_run: bool,
    pub connect: ConnectOptions,
    /// The selected stage: its guard runs before the publish.
    pub stage: Option<StageConfig>,
}

/// The layer's one-change plan, and the published version unless a dry run.
pub async fn publish_layer(
    req: &LayerRequest,
    confirm: &Confirm<'_>,
) -> Result<(deploy::View, Option<crate::aws::LayerVersion>)> {
    let layer = &req.layer;
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
    let runtimes = match &req.runtime {
        Some(r) => match Runtime::parse(r) {
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
    let zip = match &req.zip {
        Some(z) => z.clone(),
        None => Project::load(&req.selection)?
            .lambda_dir()
            .join("layers")
            .join(format!("{layer}.zip")),
    };
    let dir = req
        .selection
        .manifest_path
        .as_deref()
        .and_then(Path::parent)
        .unwrap_or(Path::new("."));
    let change = deploy::layer::PublishLayer {
        layer: layer.clone(),
        zip,
        architectures: vec![req.architecture.as_str().to_string()],
        runtimes,
        description: git_description(dir),
    };
    let view = deploy::Step::view(&change);
    if req.dry_run {
        return Ok((view, None));
    }
    let api = crate::aws::sdk::connect(&req.connect).await?;
    if req.stage.is_some() {
        let what = format!("publish layer {layer}");
        guard(&api, req.stage.as_ref(), &what, confirm, false).await?;
    }
    let v = change
        .publish(&api)
        .await
        .map_err(crate::aws::with_api_hint)?;
    Ok((view, Some(v)))
}

/// Where `cargo fn package` writes a function's zip.
pub fn default_zip_path(lambda_dir: &Path, function: &str) -> PathBuf {
    lambda_dir.join(function).join("bootstrap.zip")
}

/// The zip to deploy must exist. `cargo fn deploy` packages first unless
/// told `--zip PATH` or `--no-build`; this is the check for those paths.
pub fn package_if_missing_or_stale(zip: &Path) -> Result<()> {
    if zip.is_file() {
        return Ok(());
    }
    Err(hinted(
        format!("no package at {}", zip.display()),
        "run `cargo fn package` first (or pass --zip PATH to a packaged zip)",
    ))
}

/// The version description: the git commit and whether the tree was dirty.
pub fn git_description(dir: &Path) -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match git(&["rev-parse", "HEAD"]) {
        Some(commit) if !commit.is_empty() => {
            let dirty = git(&["status", "--porcelain"]).is_some_and(|s| !s.is_empty());
            format!(
                "cargo-fn: commit {commit}{}",
                if dirty { " (dirty)" } else { "" }
            )
        }
        _ => "cargo-fn: not a git checkout".to_string(),
    }
}
