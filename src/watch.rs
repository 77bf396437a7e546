//! `cargo fn watch`: builds the selected functions for the host, serves them
//! with the emulator, and on every saved change rebuilds and swaps the
//! environments (in-flight invocations finish on the old code, new ones get
//! the new code; a failed build keeps the last good one serving).
//!
//! This module turns cargo builds into plain [`FunctionSpec`]s (the
//! configuration's part through [`crate::bridge`], resolved once per
//! generation); the emulator never sees either. Each generation's
//! binary is copied to `target/lambda/watch/` before it is served, so cargo
//! rewriting `target/debug/<bin>` can never change code under a running or
//! starting environment. Each run holds a lock on its snapshot directory;
//! a run that starts removes the directories no live run holds (left by a
//! run killed with SIGKILL).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use notify::{EventKind, RecursiveMode, Watcher as _};
use tokio::sync::mpsc;

use crate::bridge;
use crate::config::{Arch, EventFormat, FunctionConfig, Overrides};
use crate::dashboard::Dashboard;
use crate::emulator::{Emulator, EmulatorOptions, FunctionSpec};
use crate::launch;
use crate::local::LocalTriggers;
use crate::local::durable::DurableService;
use crate::local::durable::clock::ClockMode;
use crate::package::Input;
use crate::package::image::{ImageOptions, default_sysroot, package_image};
use crate::project::{Project, Selection};
use crate::toolchain::{BuildRequest, cargo_build};
use crate::ui::Ui;

mod snapshot;
use snapshot::{SnapshotDir, copy_atomic, prune_snapshots};

/// What `watch` was asked to do.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    pub selection: Selection,
    pub overrides: Overrides,
    /// Cargo profile: `dev` unless `--release`.
    pub profile: String,
    pub cargo_flags: Vec<String>,
    pub emulator: EmulatorOptions,
    /// Extra variables for every function (the developer's credentials, when asked).
    pub extra_env: BTreeMap<String, String>,
    /// Quiet period after the last file event before rebuilding.
    pub debounce: Duration,
    /// `--event-format`: the HTTP front's event for every function,
    /// over each function's configured `event-format`.
    pub event_format: Option<EventFormat>,
    /// `--default-function`: serves HTTP paths outside `/lambda-url/<fn>/`.
    pub default_function: Option<String>,
    /// `--extensions-dir`: every executable in it runs as an external
    /// extension beside each function (Lambda's `/opt/extensions`).
    pub extensions_dir: Option<PathBuf>,
    /// What runs: a host build (the default), or what ships.
    pub serve: Serve,
    /// `--durable-clock`: the clock durable executions' timers run on.
    pub durable_clock: ClockMode,
}

/// Which executable the emulator runs for each function.
#[derive(Debug, Clone, Default)]
pub enum Serve {
    /// A plain `cargo build` for the host: the fastest reload.
    #[default]
    HostBuild,
    /// The bootstrap `cargo fn build` makes (configured architecture, glibc
    /// pinned, checked), under qemu-user when it is not the host's.
    Artifact { musl: bool },
    /// The image `cargo fn package --image` makes, unpacked, started with
    /// its own entrypoint, environment and loader.
    Image { musl: bool, image: ImageOptions },
}

/// One executable a build produced for a binary target.
#[derive(Debug, Clone)]
struct Built {
    bin: String,
    path: PathBuf,
}

/// Progress, for callers that react to it (tests, benchmarks).
#[derive(Debug, Clone, PartialEq)]
pub enum WatchEvent {
    /// Serving; the Invoke API listens at this address.
    Ready { endpoint: String },
    /// A file changed; a rebuild starts.
    Rebuilding { trigger: PathBuf },
    /// The rebuild failed; the previous build keeps serving.
    BuildFailed,
    /// New code is live. `build` is cargo's part of `total` (save to swap).
    Reloaded {
        generation: u64,
        build: Duration,
        total: Duration,
    },
}

/// glibc keeps freed heap for reuse rather than giving it back. A reload
/// frees a whole generation of environments within a moment (the idle at
/// once, the busy as they finish), so the heap is trimmed a little later
/// and a long watch session's memory stays flat.
fn trim_heap_soon() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    tokio::spawn(async {
        tokio::time::sleep(Duration::from_secs(3)).await;
        // SAFETY: malloc_trim only returns free memory to the system.
        unsafe {
            libc::malloc_trim(0);
        }
    });
}

/// Runs until `shutdown` resolves, then stops every function process.
pub async fn run(
    opts: WatchOptions,
    ui: Ui,
    events: Option<mpsc::UnboundedSender<WatchEvent>>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<()> {
    let project = Project::load(&opts.selection)?;
    if project.functions.is_empty() {
        return Err(crate::error::hinted(
            "no functions (binary targets) in the selected packages",
            "add a binary target, or select packages with -p",
        ));
    }
    ui.status("Building", describe(&project));
    let run_dir = SnapshotDir::create(&project)?;
    let first = next_generation(&opts, &project, &run_dir.path, 0, ui).await?;
    let mut session = Session::start(opts, ui, events, &project, &first, run_dir).await?;
    let (watcher, fs_rx) = watch_files(&project)?;
    let env_files = bridge::env_files(&first.configs, &project);
    let watched = Watched::new(project, env_files);
    ui.status("Watching", watched.project.workspace_root.display());
    // Ready only once saves are seen: a change made right after Ready
    // (a test, an editor's first save) must not be lost.
    session.emit(WatchEvent::Ready {
        endpoint: session.emulator.endpoint(),
    });
    let result = session.serve_changes(watched, fs_rx, shutdown).await;
    drop(watcher);
    session.stop().await;
    result
}

/// One generation: the configuration, resolved once and handed to
/// everything that serves it, and the specs of its pinned binaries.
struct Generation {
    number: u64,
    configs: Vec<FunctionConfig>,
    specs: Vec<FunctionSpec>,
    /// How long cargo took.
    build: Duration,
}

/// Resolves the configuration (re-read each time, so edits to it apply on
/// the next environment), builds, and pins a private copy of each binary.
async fn next_generation(
    opts: &WatchOptions,
    project: &Project,
    snapshots: &Path,
    number: u64,
    ui: Ui,
) -> Result<Generation> {
    let configs = crate::config::resolve(project, &opts.overrides)?;
    let started = Instant::now();
    let built = build(opts, project, &configs, ui).await?;
    let build = started.elapsed();
    let specs = specs(opts, project, &configs, &built, snapshots, number)?;
    Ok(Generation {
        number,
        configs,
        specs,
        build,
    })
}

/// The saved files, as a channel of changed paths; events stop when the
/// returned watcher is dropped.
fn watch_files(
    project: &Project,
) -> Result<(notify::RecommendedWatcher, mpsc::UnboundedReceiver<PathBuf>)> {
    let (fs_tx, fs_rx) = mpsc::unbounded_channel::<PathBuf>();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(event) = res
            && matches!(
                event.kind,
                EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_)
            )
        {
            for path in event.paths {
                let _ = fs_tx.send(path);
            }
        }
    })
    .context("starting the file watcher")?;
    watcher
        .watch(&project.workspace_root, RecursiveMode::Recursive)
        .with_context(|| format!("watching {}", project.workspace_root.display()))?;
    Ok((watcher, fs_rx))
}

/// Collects the paths that change until a quiet period of `debounce`.
async fn settle(
    fs_rx: &mut mpsc::UnboundedReceiver<PathBuf>,
    filter: &Filter,
    first: PathBuf,
    debounce: Duration,
) -> Vec<PathBuf> {
    let mut changed = vec![first];
    loop {
        tokio::select! {
            p = fs_rx.recv() => match p {
                Some(p) if !filter.ignored(&p) => changed.push(p),
                Some(_) => {}
                None => break,
            },
            _ = tokio::time::sleep(debounce) => break,
        }
    }
    changed
}

/// What is watched: the project, which changes matter, and the binary
/// source files that decide what the functions are.
struct Watched {
    project: Project,
    filter: Filter,
    bins: std::collections::BTreeSet<PathBuf>,
}

impl Watched {
    fn new(project: Project, env_files: Vec<PathBuf>) -> Watched {
        Watched {
            filter: Filter::new(&project, env_files),
            bins: bin_files(&project),
            project,
        }
    }

    /// A manifest or ignore file may change the functions or the filter;
    /// a binary source file added or removed changes the functions: the
    /// project is read again then.
    fn refresh(&mut self, changed: &[PathBuf], selection: &Selection) -> Result<()> {
        let now_bins = bin_files(&self.project);
        let manifest_or_ignore = changed.iter().any(|p| {
            p.file_name()
                .is_some_and(|n| n == "Cargo.toml" || n == ".gitignore" || n == ".fnignore")
        });
        if now_bins != self.bins || manifest_or_ignore {
            let project = Project::load(selection)?;
            let always = std::mem::take(&mut self.filter.always);
            *self = Watched::new(project, always);
        }
        Ok(())
    }
}

/// The running side of a watch: the emulator with the dashboard's and the
/// local triggers' routes, and what the last good generation configured.
struct Session {
    opts: WatchOptions,
    ui: Ui,
    events: Option<mpsc::UnboundedSender<WatchEvent>>,
    emulator: Emulator,
    dashboard: Dashboard,
    local: LocalTriggers,
    /// The durable execution service (durable functions' executions).
    durable: DurableService,
    /// Copies the triggers' live state into the dashboard every second.
    refresh: tokio::task::JoinHandle<()>,
    /// The triggers the pollers run, by function name.
    configured: Vec<(String, Vec<crate::config::Trigger>)>,
    generation: u64,
    run_dir: SnapshotDir,
}

impl Session {
    /// Starts the emulator with the first generation and says what is served.
    async fn start(
        opts: WatchOptions,
        ui: Ui,
        events: Option<mpsc::UnboundedSender<WatchEvent>>,
        project: &Project,
        first: &Generation,
        run_dir: SnapshotDir,
    ) -> Result<Session> {
        let dashboard = Dashboard::default();
        let local = LocalTriggers::new();
        let durable = DurableService::new(opts.durable_clock);
        let emulator_options = EmulatorOptions {
            routes: Some(dashboard.router().merge(local.router())),
            front: Some(durable.front(local.front())),
            ..opts.emulator.clone()
        };
        let emulator = Emulator::start(emulator_options, first.specs.clone()).await?;
        // Durable functions learn the emulator's address only now.
        durable.serve(&first.configs);
        for spec in durable_specs(&emulator, &first.specs, &first.configs, &opts.extra_env) {
            emulator.set_function(spec);
        }
        durable.attach(&emulator, ui);
        let configured = bridge::triggers(&first.configs);
        local.start(&emulator, &configured, ui)?;
        let refresh = {
            let (local, dashboard) = (local.clone(), dashboard.clone());
            tokio::spawn(async move {
                loop {
                    dashboard.set_section("triggers", Some(local.list()));
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            })
        };
        dashboard.serving(&first.specs, first.number);
        // The last `cargo fn tune` report of each function, when there is one.
        dashboard.follow_reports("tune", project.lambda_dir(), bridge::TUNE_REPORT_JSON);
        let session = Session {
            opts,
            ui,
            events,
            emulator,
            dashboard,
            local,
            durable,
            refresh,
            configured,
            generation: first.number,
            run_dir,
        };
        session.announce(first)?;
        Ok(session)
    }

    /// The first generation's lines: limits, HTTP APIs, the default
    /// function, each function's Invoke URL, extensions, the dashboard.
    fn announce(&self, first: &Generation) -> Result<()> {
        let (emulator, ui) = (&self.emulator, &self.ui);
        limits_notice(emulator, ui);
        serve_http_routes(emulator, &first.configs, Some(ui))?;
        if let Some(name) = &self.opts.default_function {
            emulator.set_default(Some(name)).map_err(|e| {
                crate::error::hinted(
                    format!("--default-function: {e:#}"),
                    "name one of the served functions (its Lambda function name)",
                )
            })?;
            ui.status(
                "Serving",
                format!("{name} on every other path of {}", emulator.endpoint()),
            );
        }
        for s in &first.specs {
            ui.status("Serving", serving_line(emulator, &s.name));
        }
        if let Some(spec) = first.specs.first()
            && !spec.extensions.is_empty()
        {
            let names: Vec<String> = spec
                .extensions
                .iter()
                .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                .collect();
            ui.status("Extensions", names.join(", "));
        }
        let page = format!("{}{}", emulator.endpoint(), crate::dashboard::PATH);
        ui.status("Dashboard", page);
        Ok(())
    }

    fn emit(&self, event: WatchEvent) {
        if let Some(tx) = &self.events {
            let _ = tx.send(event);
        }
    }

    /// Rebuilds and swaps on every relevant change until `shutdown`.
    async fn serve_changes(
        &mut self,
        mut watched: Watched,
        mut fs_rx: mpsc::UnboundedReceiver<PathBuf>,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<()> {
        tokio::pin!(shutdown);
        loop {
            // Wait for a relevant change (or shutdown).
            let first = tokio::select! {
                _ = &mut shutdown => return Ok(()),
                p = fs_rx.recv() => match p { Some(p) => p, None => return Ok(()) },
            };
            if watched.filter.ignored(&first) {
                continue;
            }
            let saved_at = Instant::now();
            let changed = settle(&mut fs_rx, &watched.filter, first, self.opts.debounce).await;
            self.changed(&changed, &watched.project);
            if let Err(e) = watched.refresh(&changed, &self.opts.selection) {
                self.failed(&e);
                continue;
            }
            let next = tokio::select! {
                _ = &mut shutdown => return Ok(()),
                g = next_generation(
                    &self.opts,
                    &watched.project,
                    &self.run_dir.path,
                    self.generation + 1,
                    self.ui,
                ) => g,
            };
            match next {
                Ok(generation) => {
                    watched.filter.always =
                        bridge::env_files(&generation.configs, &watched.project);
                    self.swap(generation, saved_at);
                }
                Err(e) => self.failed(&e),
            }
        }
    }

    /// Says which file changed and that a rebuild starts.
    fn changed(&self, changed: &[PathBuf], project: &Project) {
        let trigger = shown_change(changed).to_path_buf();
        let shown = trigger
            .strip_prefix(&project.workspace_root)
            .unwrap_or(&trigger)
            .display()
            .to_string();
        self.ui.status("Changed", &shown);
        self.emit(WatchEvent::Rebuilding { trigger });
        self.dashboard.building();
    }

    /// Serves a new generation: functions gone are removed, new ones
    /// announced, every spec replaced, HTTP routes and triggers updated.
    fn swap(&mut self, next: Generation, saved_at: Instant) {
        let (emulator, ui) = (&self.emulator, &self.ui);
        self.generation = next.number;
        let names: Vec<&str> = next.specs.iter().map(|s| s.name.as_str()).collect();
        let before = emulator.functions();
        for old in &before {
            if !names.contains(&old.as_str()) {
                emulator.remove_function(old);
            }
        }
        // A function added by this reload (a new binary) is announced
        // as the first ones were, with where it is served.
        for name in names.iter().filter(|n| !before.iter().any(|b| b == *n)) {
            ui.status("Serving", serving_line(emulator, name));
        }
        self.dashboard.serving(&next.specs, next.number);
        self.durable.serve(&next.configs);
        let extra_env = &self.opts.extra_env;
        for spec in durable_specs(emulator, &next.specs, &next.configs, extra_env) {
            emulator.set_function(spec);
        }
        if let Err(e) = serve_http_routes(emulator, &next.configs, None) {
            ui.warn(format!("HTTP API routes unchanged: {e:#}"));
        }
        // Changed triggers: pollers restarted on the same queues.
        let now = bridge::triggers(&next.configs);
        if now != self.configured {
            match self.local.restart(emulator, &now, *ui) {
                Ok(()) => self.configured = now,
                Err(e) => ui.warn(format!("{e:#}; the triggers were not restarted")),
            }
        }
        prune_snapshots(&self.run_dir.path, next.number);
        let total = saved_at.elapsed();
        ui.status(
            "Reloaded",
            format!(
                "generation {} in {} ms (cargo {} ms)",
                next.number,
                total.as_millis(),
                next.build.as_millis()
            ),
        );
        self.emit(WatchEvent::Reloaded {
            generation: next.number,
            build: next.build,
            total,
        });
        trim_heap_soon();
    }

    /// A reload that failed: the last good build keeps serving; the
    /// dashboard shows cargo's first error when there is one.
    fn failed(&self, e: &anyhow::Error) {
        self.ui
            .warn(format!("{e:#}; still serving the last good build"));
        let first = e.chain().find_map(|c| {
            c.downcast_ref::<crate::toolchain::BuildFailed>()
                .and_then(|b| b.first_error.clone())
        });
        self.dashboard
            .failed(&first.unwrap_or_else(|| format!("{e:#}")));
        self.emit(WatchEvent::BuildFailed);
    }

    /// Stops the triggers and every function process, then removes this
    /// run's snapshots.
    async fn stop(self) {
        self.refresh.abort();
        self.local.stop();
        self.durable.stop();
        self.ui.status("Stopping", "function environments");
        self.emulator.shutdown().await;
        drop(self.run_dir);
    }
}

/// The specs with, for durable functions, what points the durable SDK's
/// Lambda client at this emulator.
fn durable_specs(
    emulator: &Emulator,
    specs: &[FunctionSpec],
    configs: &[FunctionConfig],
    extra_env: &BTreeMap<String, String>,
) -> Vec<FunctionSpec> {
    let endpoint = emulator.endpoint();
    let mut out = specs.to_vec();
    for spec in &mut out {
        if configs
            .iter()
            .any(|c| c.name == spec.name && c.durable.is_some())
        {
            spec.env
                .extend(DurableService::function_env(&endpoint, extra_env));
        }
    }
    out
}

/// `NAME at <its Invoke URL>`, the `Serving` line of one function.
fn serving_line(emulator: &Emulator, name: &str) -> String {
    format!(
        "{name} at {}/2015-03-31/functions/{name}/invocations",
        emulator.endpoint()
    )
}

/// The file a `Changed` line names among those one save touched: editors
/// write a temporary file and rename it over the real one (vim also probes
/// with `4913`), so the first path seen is often gone or a temp file. The
/// first that still exists and does not look temporary wins.
fn shown_change(changed: &[PathBuf]) -> &Path {
    let temporary = |p: &Path| {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        name == "4913"
            || name.starts_with(".#")
            || name.starts_with('#')
            || name.ends_with('~')
            || name.ends_with(".swp")
            || name.ends_with(".swx")
            || name.contains(".tmp")
            || name.contains("___jb_")
    };
    changed
        .iter()
        .find(|p| p.is_file() && !temporary(p))
        .or_else(|| changed.iter().find(|p| !temporary(p)))
        .unwrap_or(&changed[0])
}

/// The binary source files cargo discovers on its own (`src/main.rs`,
/// `src/bin/*.rs`, `src/bin/*/main.rs`) of the project's packages: when
/// this set changes, so may the functions.
fn bin_files(project: &Project) -> std::collections::BTreeSet<PathBuf> {
    let mut out = std::collections::BTreeSet::new();
    let mut dirs: Vec<&Path> = project.functions.iter().map(|f| f.package_dir()).collect();
    dirs.sort();
    dirs.dedup();
    for dir in dirs {
        let main = dir.join("src/main.rs");
        if main.is_file() {
            out.insert(main);
        }
        let Ok(entries) = std::fs::read_dir(dir.join("src/bin")) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "rs") || path.join("main.rs").is_file() {
                out.insert(path);
            }
        }
    }
    out
}

fn describe(project: &Project) -> String {
    project
        .functions
        .iter()
        .map(|f| f.bin.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Builds the selected functions the way `opts.serve` asks.
async fn build(
    opts: &WatchOptions,
    project: &Project,
    configs: &[FunctionConfig],
    ui: Ui,
) -> Result<Vec<Built>> {
    let musl = match &opts.serve {
        Serve::HostBuild => return host_build(opts, project).await,
        Serve::Artifact { musl } | Serve::Image { musl, .. } => *musl,
    };
    let configs = configs.to_vec();
    let build_opts = crate::build::BuildOptions {
        profile: opts.profile.clone(),
        musl,
        cargo_flags: opts.cargo_flags.clone(),
        manifest_path: Some(project.workspace_manifest.clone()),
        ..Default::default()
    };
    let project = project.clone();
    let built = tokio::task::spawn_blocking(move || {
        crate::build::build(&project, &configs, &build_opts, &ui)
    })
    .await
    .context("the build task failed")??;
    Ok(built
        .into_iter()
        .map(|b| Built {
            bin: b.bin,
            path: b.path,
        })
        .collect())
}

/// `cargo build` of the selected functions for the host.
async fn host_build(opts: &WatchOptions, project: &Project) -> Result<Vec<Built>> {
    let mut packages: Vec<String> = project
        .functions
        .iter()
        .map(|f| f.package.clone())
        .collect();
    packages.dedup();
    let req = BuildRequest {
        manifest_path: Some(project.workspace_manifest.clone()),
        packages,
        bins: project.functions.iter().map(|f| f.bin.clone()).collect(),
        profile: opts.profile.clone(),
        target: None,
        target_dir: Some(project.target_dir.clone()),
        cargo_flags: opts.cargo_flags.clone(),
        ..Default::default()
    };
    let built = tokio::task::spawn_blocking(move || cargo_build(&req))
        .await
        .context("the build task failed")??;
    Ok(built
        .into_iter()
        .map(|b| Built {
            bin: b.bin,
            path: b.path,
        })
        .collect())
}

/// Specs for one generation from its configuration, each with a private
/// copy of its binary.
fn specs(
    opts: &WatchOptions,
    project: &Project,
    configs: &[FunctionConfig],
    built: &[Built],
    dir: &Path,
    generation: u64,
) -> Result<Vec<FunctionSpec>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let extensions = extensions(opts, configs, built, dir, generation)?;
    let mut out = Vec::new();
    for cfg in configs {
        if cfg.extension {
            continue;
        }
        let bin = built
            .iter()
            .find(|b| b.bin == cfg.bin)
            .with_context(|| format!("cargo did not report a binary for `{}`", cfg.bin))?;
        let snapshot = dir.join(format!("{}-{generation}", cfg.bin));
        let mut spec = bridge::spec(cfg, snapshot.clone(), &opts.extra_env, project);
        match &opts.serve {
            Serve::HostBuild => copy_atomic(&bin.path, &snapshot)?,
            Serve::Artifact { .. } => {
                copy_atomic(&bin.path, &snapshot)?;
                let root = default_sysroot(cfg.architecture);
                let run = launch::for_arch(cfg.architecture, &snapshot, &[], &root)?;
                spec.command = run.command;
                spec.args = run.args;
            }
            Serve::Image { image, .. } => {
                serve_image(&mut spec, cfg, project, &bin.path, image, &snapshot)?
            }
        }
        spec.http = bridge::http_front(cfg, opts.event_format);
        spec.extensions = extensions.clone();
        out.push(spec);
    }
    Ok(out)
}

/// Builds the function's image, unpacks it to `dest`, and points the spec
/// at its entrypoint: the image's environment under the configured one
/// (as in Lambda, where function variables override the image's `ENV`),
/// its working directory as the task root.
fn serve_image(
    spec: &mut FunctionSpec,
    cfg: &FunctionConfig,
    project: &Project,
    binary: &Path,
    image: &ImageOptions,
    dest: &Path,
) -> Result<()> {
    let target = project
        .functions
        .iter()
        .find(|f| f.bin == cfg.bin)
        .with_context(|| format!("function `{}` is not in the project", cfg.name))?;
    let input = Input {
        name: cfg.name.clone(),
        extension: false,
        architecture: cfg.architecture,
        runtime: cfg.runtime,
        binary: binary.to_path_buf(),
        package_dir: target.package_dir().to_path_buf(),
        include: cfg.include.clone(),
    };
    let packaged = package_image(&input, image, &project.lambda_dir())?;
    let unpacked = crate::image::unpack(&packaged.layout, dest)
        .with_context(|| format!("unpacking the image of {}", cfg.name))?;
    let run = launch::for_arch(
        cfg.architecture,
        &unpacked.command,
        &unpacked.args,
        &unpacked.rootfs,
    )?;
    spec.command = run.command;
    spec.args = run.args;
    let mut env = unpacked.env;
    env.extend(std::mem::take(&mut spec.env));
    spec.env = env;
    spec.working_dir = Some(unpacked.working_dir);
    Ok(())
}

/// The external extensions every function of this generation runs with:
/// the workspace's `extension = true` binaries (built with the functions,
/// pinned under `extensions-<generation>/` with their own file names, which
/// they register under), then the executables of `--extensions-dir`.
fn extensions(
    opts: &WatchOptions,
    configs: &[FunctionConfig],
    built: &[Built],
    dir: &Path,
    generation: u64,
) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let pinned = dir.join(format!("extensions-{generation}"));
    for cfg in configs.iter().filter(|c| c.extension) {
        // Extensions are started as plain executables, never under qemu.
        if !matches!(opts.serve, Serve::HostBuild) && Arch::host() != Some(cfg.architecture) {
            return Err(crate::error::hinted(
                format!(
                    "the extension `{}` is built for {}, which this machine runs only under qemu; watch starts extensions directly",
                    cfg.name, cfg.architecture
                ),
                "serve the host's architecture (--arch) or drop --artifact/--image to run the extension beside the function",
            ));
        }
        let bin = built
            .iter()
            .find(|b| b.bin == cfg.bin)
            .with_context(|| format!("cargo did not report a binary for `{}`", cfg.bin))?;
        std::fs::create_dir_all(&pinned)
            .with_context(|| format!("creating {}", pinned.display()))?;
        let path = pinned.join(&cfg.bin);
        copy_atomic(&bin.path, &path)?;
        out.push(path);
    }
    if let Some(ext_dir) = &opts.extensions_dir {
        for path in executables_in(ext_dir)? {
            // Extensions register under their file name: it must be unique.
            if let Some(twin) = out.iter().find(|p| p.file_name() == path.file_name()) {
                return Err(crate::error::hinted(
                    format!(
                        "--extensions-dir: `{}` has the same name as the workspace extension `{}`",
                        path.display(),
                        twin.display()
                    ),
                    "extensions register under their file name: rename one of them",
                ));
            }
            out.push(path);
        }
    }
    Ok(out)
}

/// The executable files of a directory, by name.
fn executables_in(dir: &Path) -> Result<Vec<PathBuf>> {
    use std::os::unix::fs::PermissionsExt;
    let entries = std::fs::read_dir(dir).map_err(|e| {
        crate::error::hinted(
            format!("--extensions-dir {}: {e}", dir.display()),
            "give a directory of extension executables (like a layer's extensions/ folder)",
        )
    })?;
    let mut out: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .collect();
    out.sort();
    Ok(out)
}

/// Which changed paths matter: not the target dir, not `.git`, nothing
/// matched by the workspace's `.gitignore` or `.fnignore` -- except the
/// functions' env files, which matter even when ignored (`.env` usually is).
struct Filter {
    always: Vec<PathBuf>,
    root: PathBuf,
    target: PathBuf,
    ignore: Gitignore,
}

impl Filter {
    fn new(project: &Project, always: Vec<PathBuf>) -> Filter {
        let mut builder = GitignoreBuilder::new(&project.workspace_root);
        for name in [".gitignore", ".fnignore"] {
            let mut dirs = vec![project.workspace_root.clone()];
            dirs.extend(
                project
                    .functions
                    .iter()
                    .map(|f| f.package_dir().to_path_buf()),
            );
            dirs.dedup();
            for dir in dirs {
                let file = dir.join(name);
                if file.is_file() {
                    let _ = builder.add(file);
                }
            }
        }
        Filter {
            always,
            root: project.workspace_root.clone(),
            target: project.target_dir.clone(),
            ignore: builder.build().unwrap_or_else(|_| Gitignore::empty()),
        }
    }

    fn ignored(&self, path: &Path) -> bool {
        if self.always.iter().any(|f| f == path) {
            return false;
        }
        if path.starts_with(&self.target) {
            return true;
        }
        let Ok(rel) = path.strip_prefix(&self.root) else {
            return true;
        };
        if rel.components().any(|c| c.as_os_str() == ".git") {
            return true;
        }
        // Editors' swap and backup files.
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        if name.ends_with('~') || name.ends_with(".swp") || name.ends_with(".swx") {
            return true;
        }
        let is_dir = path.is_dir();
        self.ignore
            .matched_path_or_any_parents(path, is_dir)
            .is_ignore()
    }
}

/// Serves the HTTP API routes of this generation's configuration; says
/// where each API is served the first time.
fn serve_http_routes(
    emulator: &Emulator,
    configs: &[FunctionConfig],
    ui: Option<&Ui>,
) -> Result<()> {
    let routes = bridge::http_routes(configs);
    if let Some(ui) = ui {
        let mut apis: Vec<(String, String, String)> = routes
            .iter()
            .map(|r| (r.function.clone(), r.api.clone(), r.stage.clone()))
            .collect();
        apis.dedup();
        for (function, api, stage) in apis {
            let base = if stage == "$default" {
                emulator.endpoint()
            } else {
                format!("{}/{stage}", emulator.endpoint())
            };
            ui.status("HTTP API", format!("{function} ({api}) at {base}/"));
        }
    }
    emulator.set_http_routes(routes)
}

/// Says once how Lambda's memory and CPU limits are enforced, or why not.
pub fn limits_notice(emulator: &Emulator, ui: &Ui) {
    match emulator.limits() {
        crate::emulator::LimitsStatus::Off => {}
        crate::emulator::LimitsStatus::Enforced(how) => {
            ui.status("Limits", format!("memory and CPU as in Lambda ({how})"))
        }
        crate::emulator::LimitsStatus::Unavailable(why) => ui.warn(format!(
            "functions run uncapped, without Lambda's memory and CPU limits: {why}. {} (--no-limits silences this)",
            crate::emulator::HOW_TO_ENABLE
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_line_names_the_saved_file_not_the_editors_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("main.rs");
        std::fs::write(&main, "fn main() {}").unwrap();
        // vim: probe file, then a backup, then the file itself.
        let vim = [
            dir.path().join("4913"),
            dir.path().join("main.rs~"),
            main.clone(),
        ];
        assert_eq!(shown_change(&vim), main);
        // An atomic save: a temp file that is renamed over main.rs (gone now).
        let atomic = [dir.path().join(".main.rs.tmp.8123"), main.clone()];
        assert_eq!(shown_change(&atomic), main);
        // A deleted source file is still named.
        let gone = [dir.path().join("old.rs")];
        assert_eq!(shown_change(&gone), dir.path().join("old.rs"));
    }
}
