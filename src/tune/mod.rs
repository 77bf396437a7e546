//! `cargo fn tune`: power tuning. Runs a function at several memory sizes
//! (and architectures), measures each from Lambda's own REPORT lines, and
//! says which size is cheapest, fastest, or the best balance.
//!
//! Two sources of measurements, one report:
//! - [`local`]: the function's release build under the emulator, with
//!   Lambda's memory and CPU limits (cgroups), sizes measured in turns and
//!   the machine's load taken out (`cpu.rs`). An **estimate**: the CPU
//!   share is Lambda's, the CPU, network and cold-start machinery are not.
//! - [`remote`]: the deployed function, through [`LambdaApi`]: per size a
//!   configuration update and a published version behind a temporary
//!   alias; everything it created is removed and the original memory
//!   restored, also after a failure or Ctrl-C.
//!
//! `stats.rs` holds the numbers (pure), `render.rs` the table, chart and
//! HTML, `apply.rs` the edit of the function's Cargo.toml.

pub mod apply;
mod cpu;
mod render;
pub mod stats;

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::aws::{FunctionState, LambdaApi, Settings};
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

/// Refuses a managed-instances function, before any work. Tuning sweeps
/// memory sizes and prices each invocation in GB-seconds, one request per
/// environment; such a function is billed for its capacity provider's EC2
/// instances (plus a management fee), not per GB-second, and its memory is
/// per execution environment, shared by concurrent requests. A per-request
/// memory sweep would price something Lambda does not bill.
pub fn refuse_managed(cfg: &FunctionConfig) -> Result<()> {
    let Some(mi) = &cfg.managed_instances else {
        return Ok(());
    };
    Err(hinted(
        format!(
            "`{}` runs on Lambda Managed Instances: tune does not apply. Tune prices each invocation in GB-seconds at several memory sizes; a managed-instances function is billed for the EC2 instances of its capacity provider (plus a management fee), and its {} MB are per execution environment, shared by up to {} requests at once",
            cfg.name,
            cfg.memory,
            mi.local_max_concurrency()
        ),
        "size it by load instead: run `cargo fn watch`, send concurrent requests and watch requests in flight per environment on the dashboard; then adjust `per-execution-environment-max-concurrency` and `execution-environment-memory-gib-per-vcpu` in [package.metadata.fn.managed-instances] (see the guide's Managed instances page)",
    ))
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
/// limits, per architecture and memory size. Sizes are measured in turns
/// (one invocation of each, then the next round), so a change in the
/// machine's load falls on every size alike instead of on whichever ran
/// then; each turn's wait for a CPU that other programs held is taken out
/// ([`cpu`]), and the label says when the load was too high to trust.
pub async fn local(opts: &TuneOptions, target: &LocalTarget, ui: &Ui) -> Result<TuneReport> {
    opts.validate()?;
    let (project, cfg) = local_function(target)?;
    refuse_managed(&cfg)?;
    let archs = if opts.archs.is_empty() {
        vec![cfg.architecture]
    } else {
        opts.archs.clone()
    };
    let mut points = Vec::new();
    let mut load = Load::default();
    for &arch in &archs {
        let spec = local_spec(&project, &cfg, arch, &target.cargo_flags, ui).await?;
        ui.status(
            "Measuring",
            format!(
                "{} on {}: {} MB in turns",
                cfg.name,
                arch.as_str(),
                opts.memories
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
        let mut sizes = Vec::new();
        let mut started = Ok(());
        for &memory in &opts.memories {
            match Size::start(&spec, memory, opts).await {
                Ok(size) => sizes.push(size),
                Err(e) => {
                    started = Err(e);
                    break;
                }
            }
        }
        let measured = match started {
            Ok(()) => in_turns(&sizes, opts, &mut load).await,
            Err(e) => Err(e),
        };
        for size in sizes {
            size.emulator.shutdown().await;
        }
        for (memory, samples) in opts.memories.iter().zip(measured?) {
            points.push(stats::point(arch, *memory, &samples));
        }
    }
    let mut label = "Local estimate: the release build under the emulator with Lambda's memory limit and CPU share (memory/1,769 MB of a vCPU); this machine's CPU, not Lambda's.".to_string();
    if archs.iter().any(|a| Some(*a) != Arch::host()) {
        label.push_str(" Other-architecture points run under qemu-user: a rough estimate only.");
    }
    label.push_str(&load.note(opts));
    Ok(TuneReport::new(
        &cfg.name,
        "local",
        label,
        points,
        opts.weight,
    ))
}

/// A share of waiting for a CPU above which the estimate is not trusted.
const UNRELIABLE_LOAD: f64 = 0.25;
/// A share below which the load is not worth a word.
const NOTABLE_LOAD: f64 = 0.02;

/// How much of the measured time was the machine's load.
#[derive(Debug, Default)]
struct Load {
    wall_ms: f64,
    waited_ms: f64,
    /// Turns where the counters could not be read.
    unmeasured: usize,
}

impl Load {
    fn share(&self) -> f64 {
        if self.wall_ms > 0.0 {
            self.waited_ms / self.wall_ms
        } else {
            0.0
        }
    }

    /// The label's sentence about the load (empty when there is nothing to say).
    fn note(&self, opts: &TuneOptions) -> String {
        let share = self.share();
        let pct = (share * 100.0).round();
        if opts.cold_starts {
            return " Cold starts: durations as measured, not corrected for this machine's load."
                .into();
        }
        if self.unmeasured > 0 && self.wall_ms == 0.0 {
            return " Durations as measured: this machine does not show the CPU time of each environment, so its load is not taken out.".into();
        }
        if share >= UNRELIABLE_LOAD {
            format!(
                " UNRELIABLE: this machine was busy, {pct}% of the measured time went to waiting for a CPU that other programs held; that wait is taken out, but measure again on an idle machine before trusting the curve."
            )
        } else if share >= NOTABLE_LOAD {
            format!(
                " Corrected for this machine's load: {pct}% of the measured time was spent waiting for a CPU that other programs held, and is taken out."
            )
        } else {
            String::new()
        }
    }
}

/// One memory size under its own emulator, all sizes alive at once so
/// they can be measured in turns.
struct Size {
    memory: u32,
    spec: FunctionSpec,
    emulator: Emulator,
    endpoint: String,
}

impl Size {
    async fn start(spec: &FunctionSpec, memory: u32, opts: &TuneOptions) -> Result<Size> {
        let mut spec = spec.clone();
        spec.memory_mb = memory;
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
            vec![spec.clone()],
        )
        .await?;
        if let LimitsStatus::Unavailable(why) = emulator.limits() {
            let why = why.clone();
            emulator.shutdown().await;
            return Err(hinted(
                format!(
                    "cannot estimate: Lambda's memory and CPU limits cannot be set here: {why}"
                ),
                "run as root (cgroup v1/v2) or inside a delegated cgroup v2 scope",
            ));
        }
        let endpoint = emulator.endpoint();
        Ok(Size {
            memory,
            spec,
            emulator,
            endpoint,
        })
    }

    /// One invocation (the `i`-th payload) and its REPORT.
    async fn invoke(&self, opts: &TuneOptions, i: usize) -> Result<Sample> {
        let out = crate::invoke::invoke(&crate::invoke::InvokeOptions {
            function: self.spec.name.clone(),
            qualifier: None,
            payload: opts.payload(i).to_vec(),
            target: crate::invoke::Target::Local {
                endpoint: self.endpoint.clone(),
            },
            tail_log: true,
            asynchronous: false,
        })
        .await?;
        let log = out.log.unwrap_or_default();
        let mut sample = stats::parse_report(&log)
            .with_context(|| format!("no REPORT line in the log tail:\n{log}"))?;
        sample.error |= out.function_error.is_some();
        Ok(sample)
    }

    /// `count` invocations at once (payloads from `first`), with the wait
    /// for a busy machine taken out of their durations.
    async fn turn(
        &self,
        opts: &TuneOptions,
        first: usize,
        count: usize,
        load: &mut Load,
    ) -> Result<Vec<Sample>> {
        let name = self.spec.name.clone();
        let before = cpu::sample(&name, self.memory);
        let mut samples = futures_util::future::try_join_all(
            (first..first + count).map(|i| self.invoke(opts, i)),
        )
        .await?;
        let after = cpu::sample(&name, self.memory);
        let (Some(before), Some(after)) = (before, after) else {
            load.unmeasured += 1;
            return Ok(samples);
        };
        let wall: f64 = samples.iter().map(|s| s.duration_ms).sum();
        if wall <= 0.0 {
            return Ok(samples);
        }
        let vcpus = crate::emulator::vcpus(self.memory);
        let kept = cpu::without_load(wall, after.since(before), vcpus) / wall;
        load.wall_ms += wall;
        load.waited_ms += wall * (1.0 - kept);
        for s in &mut samples {
            s.duration_ms *= kept;
            // Lambda bills by the millisecond, rounded up.
            s.billed_ms = s.duration_ms.ceil() as u64;
        }
        Ok(samples)
    }
}

/// The sizes (indexes) of round `round` in the order they run.
fn turn_order(round: usize, sizes: usize) -> Vec<usize> {
    if round.is_multiple_of(2) {
        (0..sizes).collect()
    } else {
        (0..sizes).rev().collect()
    }
}

/// Measures every size in turns: round `r` runs one turn of each size,
/// in ascending order on even rounds and descending on odd ones, so no
/// size always runs right after the same neighbour. A turn is one
/// invocation, or with `--parallel` all of a size's invocations at once.
async fn in_turns(sizes: &[Size], opts: &TuneOptions, load: &mut Load) -> Result<Vec<Vec<Sample>>> {
    let n = opts.invocations as usize;
    let per_turn = if opts.parallel { n } else { 1 };
    if !opts.cold_starts {
        // Warm environments first: as many as a turn needs.
        for size in sizes {
            futures_util::future::try_join_all((0..per_turn).map(|i| size.invoke(opts, i))).await?;
        }
    }
    let mut samples: Vec<Vec<Sample>> = vec![Vec::with_capacity(n); sizes.len()];
    for round in 0..n / per_turn {
        for k in turn_order(round, sizes.len()) {
            let size = &sizes[k];
            let first = round * per_turn;
            if opts.cold_starts {
                // A new spec: the environments of the last turn are gone.
                size.emulator.set_function(size.spec.clone());
                let turn = futures_util::future::try_join_all(
                    (first..first + per_turn).map(|i| size.invoke(opts, i)),
                )
                .await?;
                samples[k].extend(turn);
            } else {
                samples[k].extend(size.turn(opts, first, per_turn, load).await?);
            }
        }
    }
    Ok(samples)
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
        api, function, &original, &before, &alias, opts, &created, ui,
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
    original: &FunctionState,
    before: &BTreeSet<String>,
    alias: &str,
    opts: &TuneOptions,
    created: &RefCell<Created>,
    ui: &Ui,
) -> Result<Vec<Point>> {
    let arch = match original.settings.architecture.as_str() {
        "arm64" => Arch::Arm64,
        _ => Arch::X86_64,
    };
    let mut points = Vec::new();
    let no_weights = Default::default();
    for &memory in &opts.memories {
        ui.status("Measuring", format!("{function} {memory} MB in AWS"));
        let mut settings = original.settings.clone();
        settings.memory = memory;
        created.borrow_mut().configuration_changed = true;
        api.update_configuration(function, &settings, None).await?;
        api.wait_updated(function).await?;
        // CodeSha256 is PublishVersion's precondition: the code read at the
        // start, so a deploy that changed it meanwhile stops the run
        // instead of being measured (an empty hash matches no code).
        let v = api
            .publish_version(
                function,
                &original.code_sha256,
                None,
                &format!("{TEMP_PREFIX}: {memory} MB"),
            )
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
