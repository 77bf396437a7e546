//! `cargo fn tune`: power tuning. Runs a function at several memory sizes
//! (and architectures), measures each from Lambda's own REPORT lines, and
//! says which size is cheapest, fastest, or the best balance.
//!
//! Two sources of measurements, one report:
//! - [`local`]: the function's release build under the emulator, with
//!   Lambda's memory and CPU limits (cgroups). An **estimate**: the CPU
//!   share is Lambda's, the CPU, network and cold-start machinery are not.
//! - [`remote`]: the deployed function, through [`LambdaApi`]: per size a
//!   configuration update and a published version behind a temporary
//!   alias; everything it created is removed and the original memory
//!   restored, also after a failure or Ctrl-C.
//!
//! `stats.rs` holds the numbers (pure), `render.rs` the table, chart and
//! HTML, `apply.rs` the edit of the function's `[package.metadata.fn]`.

pub mod apply;
mod render;
pub mod stats;

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::aws::{LambdaApi, Settings};
use crate::config::{Arch, FunctionConfig, Overrides};
use crate::emulator::{Emulator, EmulatorOptions, FunctionSpec, LimitsStatus};
use crate::error::hinted;
use crate::project::{Project, Selection};
use crate::ui::Ui;

pub use render::{chart, html, table};
pub use stats::{Picks, Point, Sample, Strategy};

/// Lambda's memory sizes, MB.
pub const MEMORY_RANGE: std::ops::RangeInclusive<u32> = 128..=10_240;
/// The sizes tried when none are given.
pub const DEFAULT_MEMORIES: [u32; 6] = [128, 256, 512, 1024, 1769, 3008];
/// Prefix of the temporary alias (and of the published versions'
/// descriptions) of a remote run: nothing else is ever deleted.
pub const TEMP_PREFIX: &str = "cargo-fn-tune";

/// One payload and how often it is sent relative to the others.
#[derive(Debug, Clone, PartialEq)]
pub struct Payload {
    pub body: Vec<u8>,
    pub weight: u32,
}

/// What to measure.
#[derive(Debug, Clone)]
pub struct TuneOptions {
    pub memories: Vec<u32>,
    /// Measured invocations per (architecture, memory).
    pub invocations: u32,
    pub payloads: Vec<Payload>,
    /// All invocations of a size at once (each on its own environment).
    pub parallel: bool,
    /// Weight of cost (0..=1) in the balanced strategy.
    pub weight: f64,
    /// Architectures to compare; empty: the configured (deployed) one.
    pub archs: Vec<Arch>,
    /// Measure cold starts (a fresh environment per invocation locally;
    /// remotely, the first invocation of each version is kept).
    pub cold_starts: bool,
}

impl Default for TuneOptions {
    fn default() -> Self {
        TuneOptions {
            memories: DEFAULT_MEMORIES.to_vec(),
            invocations: 10,
            payloads: vec![Payload {
                body: b"{}".to_vec(),
                weight: 1,
            }],
            parallel: false,
            weight: 0.5,
            archs: Vec::new(),
            cold_starts: false,
        }
    }
}

impl TuneOptions {
    /// Checks every value against its allowed range (named by its flag).
    pub fn validate(&self) -> Result<()> {
        if self.memories.is_empty() {
            bail!("--memory: give at least one size (MB)");
        }
        for m in &self.memories {
            if !MEMORY_RANGE.contains(m) {
                bail!("--memory {m}: Lambda allows 128 to 10240 MB");
            }
        }
        if !(1..=1000).contains(&self.invocations) {
            bail!("--invocations {}: allowed 1 to 1000", self.invocations);
        }
        if !(0.0..=1.0).contains(&self.weight) {
            bail!(
                "--weight {}: allowed 0.0 (speed only) to 1.0 (cost only)",
                self.weight
            );
        }
        if self.payloads.is_empty() || self.payloads.iter().all(|p| p.weight == 0) {
            bail!("payloads: at least one needs a weight above 0");
        }
        Ok(())
    }

    /// The payload of the `i`-th invocation: the weighted list in turn
    /// (weights 3 and 1: A A A B A A A B ...), so every run sends the same mix.
    pub fn payload(&self, i: usize) -> &[u8] {
        let total: usize = self.payloads.iter().map(|p| p.weight as usize).sum();
        let mut slot = i % total.max(1);
        for p in &self.payloads {
            if slot < p.weight as usize {
                return &p.body;
            }
            slot -= p.weight as usize;
        }
        &self.payloads[0].body
    }
}

/// The result of a run.
#[derive(Debug, Clone, Serialize)]
pub struct TuneReport {
    pub function: String,
    /// `local` (an estimate) or `remote` (measured in AWS).
    pub mode: &'static str,
    /// What the numbers are, in one sentence, shown with every output.
    pub label: String,
    pub points: Vec<Point>,
    pub picks: Picks,
}

impl TuneReport {
    fn new(
        function: &str,
        mode: &'static str,
        label: String,
        points: Vec<Point>,
        weight: f64,
    ) -> Self {
        let picks = stats::picks(&points, weight);
        TuneReport {
            function: function.to_string(),
            mode,
            label,
            points,
            picks,
        }
    }

    /// The point a strategy chose.
    pub fn pick(&self, strategy: Strategy) -> Option<&Point> {
        let i = match strategy {
            Strategy::Cost => self.picks.cost,
            Strategy::Speed => self.picks.speed,
            Strategy::Balanced => self.picks.balanced,
        }?;
        self.points.get(i)
    }
}

/// The report file names under `<lambda dir>/<function>/`: the HTML for
/// people, the JSON for `cargo fn watch`'s dashboard (its `tune` section;
/// named in the bridge, which both read).
pub const HTML_FILE: &str = "tune.html";
pub use crate::bridge::TUNE_REPORT_JSON as JSON_FILE;

/// Saves the last report of `report.function` as `<dir>/<function>/tune.html`
/// and `tune.json` (each written atomically: a reader never sees half a
/// file). Returns the HTML's path.
pub fn write_report(report: &TuneReport, lambda_dir: &Path) -> Result<PathBuf> {
    let dir = lambda_dir.join(&report.function);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let json = serde_json::to_string_pretty(report).context("encoding the tune report")?;
    write_atomic(&dir, JSON_FILE, json.as_bytes())?;
    write_atomic(&dir, HTML_FILE, html(report).as_bytes())
}

fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf> {
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Where a local run finds its function.
#[derive(Debug, Clone)]
pub struct LocalTarget {
    pub selection: Selection,
    pub overrides: Overrides,
    pub cargo_flags: Vec<String>,
    /// Lambda name or binary name; the lone function when `None`.
    pub function: Option<String>,
}

/// The function a local run tunes, with its project.
pub fn local_function(target: &LocalTarget) -> Result<(Project, FunctionConfig)> {
    let project = Project::load(&target.selection)?;
    let configs: Vec<FunctionConfig> = crate::config::resolve(&project, &target.overrides)?
        .into_iter()
        .filter(|c| !c.extension)
        .collect();
    let names = || {
        configs
            .iter()
            .map(|c| c.name.clone())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let cfg = match &target.function {
        Some(f) => configs
            .iter()
            .find(|c| &c.name == f || &c.bin == f)
            .cloned()
            .ok_or_else(|| {
                hinted(
                    format!("FUNCTION `{f}`: no such function here"),
                    format!("functions: {}", names()),
                )
            })?,
        None if configs.len() == 1 => configs[0].clone(),
        None => {
            return Err(hinted(
                "which function? this workspace has several",
                format!(
                    "name one: cargo fn tune <FUNCTION> (functions: {})",
                    names()
                ),
            ));
        }
    };
    Ok((project, cfg))
}

/// Local estimate: the release build under the emulator with Lambda's
/// limits, per architecture and memory size.
pub async fn local(opts: &TuneOptions, target: &LocalTarget, ui: &Ui) -> Result<TuneReport> {
    opts.validate()?;
    let (project, cfg) = local_function(target)?;
    let archs = if opts.archs.is_empty() {
        vec![cfg.architecture]
    } else {
        opts.archs.clone()
    };
    let mut points = Vec::new();
    for &arch in &archs {
        let spec = local_spec(&project, &cfg, arch, &target.cargo_flags, ui).await?;
        let emulator = Emulator::start(
            EmulatorOptions {
                bind: "127.0.0.1:0".parse().expect("loopback address"),
                concurrency: opts.invocations as usize,
                region: "us-east-1".into(),
                log_sink: Arc::new(|_| {}),
                limits: true,
                routes: None,
                front: None,
            },
            Vec::new(),
        )
        .await?;
        if let LimitsStatus::Unavailable(why) = emulator.limits() {
            return Err(hinted(
                format!(
                    "cannot estimate: Lambda's memory and CPU limits cannot be set here: {why}"
                ),
                "run as root (cgroup v1/v2) or inside a delegated cgroup v2 scope",
            ));
        }
        let endpoint = emulator.endpoint();
        for &memory in &opts.memories {
            ui.status(
                "Measuring",
                format!("{} {memory} MB on {}", cfg.name, arch.as_str()),
            );
            let mut spec = spec.clone();
            spec.memory_mb = memory;
            let samples = local_samples(&emulator, &endpoint, &spec, opts).await?;
            points.push(stats::point(arch, memory, &samples));
        }
        emulator.shutdown().await;
    }
    let mut label = "Local estimate: the release build under the emulator with Lambda's memory limit and CPU share (memory/1,769 MB of a vCPU); this machine's CPU, not Lambda's.".to_string();
    if archs.iter().any(|a| Some(*a) != Arch::host()) {
        label.push_str(" Other-architecture points run under qemu-user: a rough estimate only.");
    }
    Ok(TuneReport::new(
        &cfg.name,
        "local",
        label,
        points,
        opts.weight,
    ))
}

/// Builds the function for `arch` (release, as it ships) and describes how
/// to start it here.
async fn local_spec(
    project: &Project,
    cfg: &FunctionConfig,
    arch: Arch,
    cargo_flags: &[String],
    ui: &Ui,
) -> Result<FunctionSpec> {
    let mut cfg = cfg.clone();
    cfg.architecture = arch;
    let build_opts = crate::build::BuildOptions {
        cargo_flags: cargo_flags.to_vec(),
        manifest_path: Some(project.workspace_manifest.clone()),
        ..Default::default()
    };
    let (p, c, u) = (project.clone(), cfg.clone(), *ui);
    let built = tokio::task::spawn_blocking(move || crate::build::build(&p, &[c], &build_opts, &u))
        .await
        .context("the build task failed")??;
    let bin = built
        .into_iter()
        .find(|b| b.bin == cfg.bin)
        .with_context(|| format!("cargo did not report a binary for `{}`", cfg.bin))?;
    let root = crate::package::image::default_sysroot(arch);
    let run = crate::launch::for_arch(arch, &bin.path, &[], &root)?;
    let mut spec = crate::bridge::spec(&cfg, run.command, &Default::default(), project);
    spec.args = run.args;
    Ok(spec)
}

/// The measured invocations of one spec.
async fn local_samples(
    emulator: &Emulator,
    endpoint: &str,
    spec: &FunctionSpec,
    opts: &TuneOptions,
) -> Result<Vec<Sample>> {
    // A new spec: environments of the previous size are gone.
    emulator.set_function(spec.clone());
    let n = opts.invocations as usize;
    let invoke = |i: usize| {
        let opts_i = crate::invoke::InvokeOptions {
            function: spec.name.clone(),
            qualifier: None,
            payload: opts.payload(i).to_vec(),
            target: crate::invoke::Target::Local {
                endpoint: endpoint.to_string(),
            },
            tail_log: true,
            asynchronous: false,
        };
        async move {
            let out = crate::invoke::invoke(&opts_i).await?;
            let log = out.log.unwrap_or_default();
            let mut sample = stats::parse_report(&log)
                .with_context(|| format!("no REPORT line in the log tail:\n{log}"))?;
            sample.error |= out.function_error.is_some();
            Ok(sample)
        }
    };
    if opts.parallel {
        if !opts.cold_starts {
            // As many warm environments as the measured batch needs.
            futures_util::future::try_join_all((0..n).map(invoke)).await?;
        }
        return futures_util::future::try_join_all((0..n).map(invoke)).await;
    }
    if !opts.cold_starts {
        invoke(0).await?;
    }
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        if opts.cold_starts {
            emulator.set_function(spec.clone());
        }
        samples.push(invoke(i).await?);
    }
    Ok(samples)
}

/// What a remote run created, for the cleanup.
#[derive(Debug, Default)]
struct Created {
    alias: Option<String>,
    versions: Vec<String>,
    configuration_changed: bool,
}

/// Remote measurement of the deployed function. `interrupt` resolving
/// (Ctrl-C) stops the run; the cleanup runs in every case.
pub async fn remote<A: LambdaApi>(
    api: &A,
    function: &str,
    opts: &TuneOptions,
    interrupt: impl Future<Output = ()>,
    ui: &Ui,
) -> Result<TuneReport> {
    opts.validate()?;
    let original = api.get_function(function).await?.ok_or_else(|| {
        hinted(
            format!("function `{function}` does not exist"),
            "deploy it first: cargo fn deploy",
        )
    })?;
    let deployed = match original.settings.architecture.as_str() {
        "arm64" => Arch::Arm64,
        _ => Arch::X86_64,
    };
    if opts.archs.iter().any(|a| *a != deployed) {
        return Err(hinted(
            format!(
                "--remote --arch: `{function}` is deployed for {}; changing the architecture needs code built for it",
                deployed.as_str()
            ),
            "tune the other architecture locally (--local --arch x86_64,arm64), or deploy it for that architecture and tune again",
        ));
    }
    let before: BTreeSet<String> = api
        .list_versions(function)
        .await?
        .into_iter()
        .map(|v| v.version)
        .collect();
    let alias = format!(
        "{TEMP_PREFIX}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let created = RefCell::new(Created::default());
    let run = measure_remote(
        api,
        function,
        &original.settings,
        &before,
        &alias,
        opts,
        &created,
        ui,
    );
    let outcome = tokio::select! {
        r = run => r,
        _ = interrupt => Err(anyhow::anyhow!("interrupted")),
    };
    let cleanup = clean_up(
        api,
        function,
        &original.settings,
        &before,
        &created.into_inner(),
    )
    .await;
    let points = match (outcome, cleanup) {
        (Ok(points), Ok(())) => points,
        (Ok(_), Err(e)) => return Err(e),
        (Err(e), Ok(())) => return Err(e.context("tuning stopped; everything it created was removed and the original configuration restored")),
        (Err(e), Err(c)) => return Err(e.context(format!("tuning stopped, and the cleanup failed too: {c:#}"))),
    };
    let label = "Measured in AWS Lambda (REPORT lines of the deployed function, one published version per size behind a temporary alias).".to_string();
    Ok(TuneReport::new(
        function,
        "remote",
        label,
        points,
        opts.weight,
    ))
}

#[allow(clippy::too_many_arguments)]
async fn measure_remote<A: LambdaApi>(
    api: &A,
    function: &str,
    original: &Settings,
    before: &BTreeSet<String>,
    alias: &str,
    opts: &TuneOptions,
    created: &RefCell<Created>,
    ui: &Ui,
) -> Result<Vec<Point>> {
    let arch = match original.architecture.as_str() {
        "arm64" => Arch::Arm64,
        _ => Arch::X86_64,
    };
    let mut points = Vec::new();
    let no_weights = Default::default();
    for &memory in &opts.memories {
        ui.status("Measuring", format!("{function} {memory} MB in AWS"));
        let mut settings = original.clone();
        settings.memory = memory;
        created.borrow_mut().configuration_changed = true;
        api.update_configuration(function, &settings, None).await?;
        api.wait_updated(function).await?;
        let v = api
            .publish_version(function, "", None, &format!("{TEMP_PREFIX}: {memory} MB"))
            .await?;
        if !before.contains(&v.version) {
            created.borrow_mut().versions.push(v.version.clone());
        }
        api.wait_version_active(function, &v.version).await?;
        let exists = created.borrow().alias.is_some();
        if exists {
            api.update_alias(function, alias, &v.version, &no_weights, None)
                .await?;
        } else {
            api.create_alias(function, alias, &v.version, &no_weights)
                .await?;
            created.borrow_mut().alias = Some(alias.to_string());
        }
        let n = opts.invocations as usize;
        let invoke = |i: usize| async move {
            let out = api.invoke(function, alias, opts.payload(i)).await?;
            stats::parse_report(&out.log)
                .map(|mut s| {
                    s.error |= out.function_error.is_some();
                    s
                })
                .with_context(|| format!("no REPORT line in the log tail of `{function}:{alias}`"))
        };
        // The first call of a version is cold: kept only when asked.
        let first = invoke(0).await?;
        let mut samples = if opts.cold_starts {
            vec![first]
        } else {
            Vec::new()
        };
        let rest = n - samples.len();
        if opts.parallel {
            samples.extend(futures_util::future::try_join_all((0..rest).map(invoke)).await?);
        } else {
            for i in 0..rest {
                samples.push(invoke(i).await?);
            }
        }
        points.push(stats::point(arch, memory, &samples));
    }
    Ok(points)
}

/// Removes the temporary alias and the versions this run published (by
/// number, and any other with its description that appeared meanwhile),
/// then restores the original configuration.
async fn clean_up<A: LambdaApi>(
    api: &A,
    function: &str,
    original: &Settings,
    before: &BTreeSet<String>,
    created: &Created,
) -> Result<()> {
    let mut failures = Vec::new();
    if let Some(alias) = &created.alias
        && let Err(e) = api.delete_alias(function, alias).await
        && !e.is_not_found()
    {
        failures.push(format!("alias {alias}: {e}"));
    }
    // A publish interrupted before its answer still made a version.
    let mut versions = created.versions.clone();
    if let Ok(now) = api.list_versions(function).await {
        for v in now {
            if !before.contains(&v.version)
                && v.description.starts_with(TEMP_PREFIX)
                && !versions.contains(&v.version)
            {
                versions.push(v.version);
            }
        }
    }
    for v in &versions {
        if let Err(e) = api.delete_version(function, v).await
            && !e.is_not_found()
        {
            failures.push(format!("version {v}: {e}"));
        }
    }
    if created.configuration_changed {
        let restored = async {
            api.wait_updated(function).await?;
            api.update_configuration(function, original, None).await?;
            api.wait_updated(function).await
        };
        if let Err(e) = restored.await {
            failures.push(format!("restoring memory {} MB: {e}", original.memory));
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        bail!(
            "could not remove what tuning created: {}",
            failures.join("; ")
        )
    }
}

#[cfg(test)]
mod tests;
