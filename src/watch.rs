//! `cargo fn watch`: builds the selected functions for the host, serves them
//! with the emulator, and on every saved change rebuilds and swaps the
//! environments (in-flight invocations finish on the old code, new ones get
//! the new code; a failed build keeps the last good one serving).
//!
//! This module turns cargo and configuration into plain
//! [`FunctionSpec`]s; the emulator never sees either. Each generation's
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

use crate::config::{Arch, EventFormat, FunctionConfig, Overrides};
use crate::emulator::{
    Architecture, CorsPolicy, Emulator, EmulatorOptions, FunctionSpec, HttpEventFormat, HttpFront,
    HttpRoute, InvokeMode, PayloadFormat,
};
use crate::launch;
use crate::package::Input;
use crate::package::image::{ImageOptions, default_sysroot, package_image};
use crate::project::{Project, Selection};
use crate::toolchain::{BuildRequest, cargo_build};
use crate::ui::Ui;

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
    let emit = |e: WatchEvent| {
        if let Some(tx) = &events {
            let _ = tx.send(e);
        }
    };
    let project = Project::load(&opts.selection)?;
    if project.functions.is_empty() {
        return Err(crate::error::hinted(
            "no functions (binary targets) in the selected packages",
            "add a binary target, or select packages with -p",
        ));
    }
    ui.status("Building", describe(&project));
    let built = build(&opts, &project, ui).await?;
    let mut generation = 0u64;
    let run_dir = SnapshotDir::create(&project)?;
    let snapshots = run_dir.path.clone();
    let (first_specs, env_files) = specs(&opts, &project, &built, &snapshots, generation)?;
    let dashboard = crate::dashboard::Dashboard::default();
    let local = crate::local::LocalTriggers::new();
    let emulator_options = EmulatorOptions {
        routes: Some(dashboard.router().merge(local.router())),
        front: Some(local.front()),
        ..opts.emulator.clone()
    };
    let emulator = Emulator::start(emulator_options, first_specs.clone()).await?;
    let mut configured = triggers(&opts, &project)?;
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
    dashboard.serving(&first_specs, generation);
    // The last `cargo fn tune` report of each function, when there is one.
    dashboard.follow_reports("tune", project.lambda_dir(), crate::tune::JSON_FILE);
    limits_notice(&emulator, &ui);
    serve_http_routes(&emulator, &project, &opts, Some(&ui))?;
    if let Some(name) = &opts.default_function {
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
    for s in &first_specs {
        ui.status("Serving", serving_line(&emulator, &s.name));
    }
    if let Some(first) = first_specs.first()
        && !first.extensions.is_empty()
    {
        let names: Vec<String> = first
            .extensions
            .iter()
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        ui.status("Extensions", names.join(", "));
    }
    let page = format!("{}{}", emulator.endpoint(), crate::dashboard::PATH);
    ui.status("Dashboard", page);
    let (fs_tx, mut fs_rx) = mpsc::unbounded_channel::<PathBuf>();
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
    let mut filter = Filter::new(&project, env_files);
    let mut bins = bin_files(&project);
    ui.status("Watching", project.workspace_root.display());
    // Ready only once saves are seen: a change made right after Ready
    // (a test, an editor's first save) must not be lost.
    emit(WatchEvent::Ready {
        endpoint: emulator.endpoint(),
    });

    tokio::pin!(shutdown);
    let mut project = project;
    let result: Result<()> = loop {
        // Wait for a relevant change (or shutdown).
        let first = tokio::select! {
            _ = &mut shutdown => break Ok(()),
            p = fs_rx.recv() => match p { Some(p) => p, None => break Ok(()) },
        };
        if filter.ignored(&first) {
            continue;
        }
        let saved_at = Instant::now();
        // Debounce: wait for a quiet period, collecting what changed.
        let mut changed = vec![first];
        loop {
            tokio::select! {
                p = fs_rx.recv() => match p {
                    Some(p) if !filter.ignored(&p) => changed.push(p),
                    Some(_) => {}
                    None => break,
                },
                _ = tokio::time::sleep(opts.debounce) => break,
            }
        }
        let trigger = shown_change(&changed).to_path_buf();
        let shown = trigger
            .strip_prefix(&project.workspace_root)
            .unwrap_or(&trigger)
            .display()
            .to_string();
        ui.status("Changed", &shown);
        emit(WatchEvent::Rebuilding {
            trigger: trigger.clone(),
        });
        dashboard.building();
        // A manifest or ignore file may change the functions or the filter;
        // a binary source file added or removed changes the functions.
        let now_bins = bin_files(&project);
        if now_bins != bins
            || changed.iter().any(|p| {
                p.file_name()
                    .is_some_and(|n| n == "Cargo.toml" || n == ".gitignore" || n == ".fnignore")
            })
        {
            match Project::load(&opts.selection) {
                Ok(p) => {
                    project = p;
                    filter = Filter::new(&project, filter.always.clone());
                    bins = bin_files(&project);
                }
                Err(e) => {
                    ui.warn(format!("{e:#}; still serving the last good build"));
                    dashboard.failed(&format!("{e:#}"));
                    emit(WatchEvent::BuildFailed);
                    continue;
                }
            }
        }
        let build_started = Instant::now();
        let built = tokio::select! {
            _ = &mut shutdown => break Ok(()),
            b = build(&opts, &project, ui) => b,
        };
        let build_time = build_started.elapsed();
        let next = built.and_then(|b| specs(&opts, &project, &b, &snapshots, generation + 1));
        match next {
            Ok((new_specs, env_files)) => {
                generation += 1;
                filter.always = env_files;
                let names: Vec<&str> = new_specs.iter().map(|s| s.name.as_str()).collect();
                let before = emulator.functions();
                for old in &before {
                    if !names.contains(&old.as_str()) {
                        emulator.remove_function(old);
                    }
                }
                // A function added by this reload (a new binary) is announced
                // as the first ones were, with where it is served.
                for name in names.iter().filter(|n| !before.iter().any(|b| b == *n)) {
                    ui.status("Serving", serving_line(&emulator, name));
                }
                dashboard.serving(&new_specs, generation);
                for spec in new_specs {
                    emulator.set_function(spec);
                }
                if let Err(e) = serve_http_routes(&emulator, &project, &opts, None) {
                    ui.warn(format!("HTTP API routes unchanged: {e:#}"));
                }
                // Changed triggers: pollers restarted on the same queues.
                if let Ok(now) = triggers(&opts, &project)
                    && now != configured
                {
                    match local.restart(&emulator, &now, ui) {
                        Ok(()) => configured = now,
                        Err(e) => ui.warn(format!("{e:#}; the triggers were not restarted")),
                    }
                }
                prune_snapshots(&snapshots, generation);
                let total = saved_at.elapsed();
                ui.status(
                    "Reloaded",
                    format!(
                        "generation {generation} in {} ms (cargo {} ms)",
                        total.as_millis(),
                        build_time.as_millis()
                    ),
                );
                emit(WatchEvent::Reloaded {
                    generation,
                    build: build_time,
                    total,
                });
                trim_heap_soon();
            }
            Err(e) => {
                ui.warn(format!("{e:#}; still serving the last good build"));
                let first = e.chain().find_map(|c| {
                    c.downcast_ref::<crate::toolchain::BuildFailed>()
                        .and_then(|b| b.first_error.clone())
                });
                dashboard.failed(&first.unwrap_or_else(|| format!("{e:#}")));
                emit(WatchEvent::BuildFailed);
            }
        }
    };
    drop(watcher);
    refresh.abort();
    local.stop();
    ui.status("Stopping", "function environments");
    emulator.shutdown().await;
    drop(run_dir);
    result
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
async fn build(opts: &WatchOptions, project: &Project, ui: Ui) -> Result<Vec<Built>> {
    let musl = match &opts.serve {
        Serve::HostBuild => return host_build(opts, project).await,
        Serve::Artifact { musl } | Serve::Image { musl, .. } => *musl,
    };
    let configs = crate::config::resolve(project, &opts.overrides)?;
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

/// Specs for one generation: configuration (re-read each time, so edits to
/// it apply on the next environment) plus a private copy of each binary.
fn specs(
    opts: &WatchOptions,
    project: &Project,
    built: &[Built],
    dir: &Path,
    generation: u64,
) -> Result<(Vec<FunctionSpec>, Vec<PathBuf>)> {
    let configs = crate::config::resolve(project, &opts.overrides)?;
    let env_files = configs
        .iter()
        .filter_map(|c| c.env_file.as_ref())
        .map(|f| project.workspace_root.join(f))
        .collect();
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let extensions = extensions(opts, &configs, built, dir, generation)?;
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
        let mut spec = spec_from_config(&cfg, snapshot.clone(), &opts.extra_env, project);
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
                serve_image(&mut spec, &cfg, project, &bin.path, image, &snapshot)?
            }
        }
        spec.http = http_front(&cfg, opts.event_format);
        spec.extensions = extensions.clone();
        out.push(spec);
    }
    Ok((out, env_files))
}

/// The configured triggers of each served function (by Lambda function name).
fn triggers(
    opts: &WatchOptions,
    project: &Project,
) -> Result<Vec<(String, Vec<crate::config::Trigger>)>> {
    Ok(crate::config::resolve(project, &opts.overrides)?
        .into_iter()
        .filter(|c| !c.extension)
        .map(|c| (c.name, c.triggers))
        .collect())
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

pub(crate) fn spec_from_config(
    cfg: &FunctionConfig,
    command: PathBuf,
    extra_env: &BTreeMap<String, String>,
    project: &Project,
) -> FunctionSpec {
    let mut env = cfg.env.clone();
    env.extend(extra_env.iter().map(|(k, v)| (k.clone(), v.clone())));
    if let Some(level) = &cfg.log_level {
        env.insert("AWS_LAMBDA_LOG_LEVEL".into(), level.clone());
    }
    let format = match cfg.log_format {
        crate::config::LogFormat::Text => "Text",
        crate::config::LogFormat::Json => "JSON",
    };
    env.insert("AWS_LAMBDA_LOG_FORMAT".into(), format.into());
    let working_dir = project
        .functions
        .iter()
        .find(|f| f.bin == cfg.bin)
        .map(|f| f.package_dir().to_path_buf());
    FunctionSpec {
        name: cfg.name.clone(),
        command,
        args: Vec::new(),
        working_dir,
        env,
        memory_mb: cfg.memory,
        timeout: Duration::from_secs(u64::from(cfg.timeout)),
        reserved_concurrency: cfg.reserved_concurrency,
        architecture: match cfg.architecture {
            Arch::X86_64 => Architecture::X86_64,
            Arch::Arm64 => Architecture::Arm64,
        },
        http: Default::default(),
        extensions: Vec::new(),
        // Invocations through the configured alias run this code too.
        aliases: cfg.alias.iter().cloned().collect(),
    }
}

/// One directory per watcher (process id and a counter), so watchers
/// sharing a target dir never touch each other's snapshots. Beside it a
/// `.lock` file, locked while the run lives; dropping it removes both.
struct SnapshotDir {
    path: PathBuf,
    lock_path: PathBuf,
    _lock: std::fs::File,
}

impl SnapshotDir {
    fn create(project: &Project) -> Result<SnapshotDir> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let parent = project.lambda_dir().join("watch");
        std::fs::create_dir_all(&parent)
            .with_context(|| format!("creating {}", parent.display()))?;
        remove_stale_snapshots(&parent);
        let name = format!("{}-{n}", std::process::id());
        let path = parent.join(&name);
        let lock_path = parent.join(format!("{name}.lock"));
        // Locked before the directory exists, so no other run ever sees
        // this directory unlocked.
        let lock = std::fs::File::create(&lock_path)
            .with_context(|| format!("creating {}", lock_path.display()))?;
        try_lock(&lock).with_context(|| format!("locking {}", lock_path.display()))?;
        Ok(SnapshotDir {
            path,
            lock_path,
            _lock: lock,
        })
    }
}

impl Drop for SnapshotDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
        let _ = std::fs::remove_file(&self.lock_path);
    }
}

/// Removes the snapshot directories of runs that are gone: their lock is
/// free (or, for a directory without one, its process id is not running).
fn remove_stale_snapshots(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let lock_path = parent.join(format!("{name}.lock"));
        let stale = match std::fs::File::open(&lock_path) {
            Ok(lock) => try_lock(&lock).is_ok(),
            Err(_) => name
                .split_once('-')
                .and_then(|(pid, _)| pid.parse::<u32>().ok())
                .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists()),
        };
        if stale {
            let _ = std::fs::remove_dir_all(&path);
            let _ = std::fs::remove_file(&lock_path);
        }
    }
}

/// An exclusive lock on a file, held until it is closed (`flock`, so a
/// run killed with SIGKILL releases it).
fn try_lock(file: &std::fs::File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: plain syscall on a descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Pins this build's binary under a new name. A hard link is instant and
/// safe: linkers write a new file (unlink or rename) rather than rewrite the
/// old inode, and a running executable cannot be written anyway (ETXTBSY).
/// Falls back to a copy through a temp file and a rename (other file
/// system), so a reader never sees half a binary.
fn copy_atomic(from: &Path, to: &Path) -> Result<()> {
    let _ = std::fs::remove_file(to);
    if std::fs::hard_link(from, to).is_ok() {
        return Ok(());
    }
    let tmp = to.with_extension("tmp");
    std::fs::copy(from, &tmp)
        .with_context(|| format!("copying {} to {}", from.display(), tmp.display()))?;
    std::fs::rename(&tmp, to).with_context(|| format!("renaming to {}", to.display()))?;
    Ok(())
}

/// Removes snapshots two generations old or more (running processes keep
/// their inode; nothing new starts from them).
fn prune_snapshots(dir: &Path, generation: u64) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some((_, g)) = name.rsplit_once('-')
            && let Ok(g) = g.parse::<u64>()
            && g + 1 < generation
        {
            // Binaries are files; unpacked images are directories.
            let _ = std::fs::remove_file(entry.path());
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
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

/// The `http-api` triggers of every served function as the emulator's
/// route table (each trigger is one API: its routes, stage, payload
/// format and CORS).
fn http_routes(configs: &[FunctionConfig]) -> Vec<HttpRoute> {
    let mut out = Vec::new();
    for cfg in configs.iter().filter(|c| !c.extension) {
        for t in &cfg.triggers {
            let crate::config::triggers::TriggerKind::HttpApi(api) = &t.kind else {
                continue;
            };
            for key in &api.routes {
                out.push(HttpRoute {
                    function: cfg.name.clone(),
                    route_key: key.clone(),
                    stage: api.stage.clone(),
                    payload: if api.payload_format == "1.0" {
                        PayloadFormat::V1
                    } else {
                        PayloadFormat::V2
                    },
                    cors: api.cors.as_ref().map(cors_policy),
                    api: t.name.clone(),
                });
            }
        }
    }
    out
}

/// Reads the configuration again and serves its HTTP API routes; says
/// where each API is served the first time.
fn serve_http_routes(
    emulator: &Emulator,
    project: &Project,
    opts: &WatchOptions,
    ui: Option<&Ui>,
) -> Result<()> {
    let configs = crate::config::resolve(project, &opts.overrides)?;
    let routes = http_routes(&configs);
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

fn cors_policy(c: &crate::config::Cors) -> CorsPolicy {
    CorsPolicy {
        allow_origins: c.allow_origins.clone(),
        allow_methods: c.allow_methods.clone(),
        allow_headers: c.allow_headers.clone(),
        expose_headers: c.expose_headers.clone(),
        allow_credentials: c.allow_credentials,
        max_age: c.max_age,
    }
}

/// How the HTTP front serves a function: `--event-format` over the
/// configured `event-format`; CORS from `function-url.cors` when set;
/// streaming with `function-url.invoke-mode = "RESPONSE_STREAM"`.
fn http_front(cfg: &FunctionConfig, flag: Option<EventFormat>) -> HttpFront {
    let format = match flag.unwrap_or(cfg.event_format) {
        EventFormat::FunctionUrl => HttpEventFormat::FunctionUrl,
        EventFormat::HttpApi => HttpEventFormat::HttpApi,
        EventFormat::RestApi => HttpEventFormat::RestApi,
        EventFormat::Alb => HttpEventFormat::Alb,
    };
    let cors = cfg
        .function_url
        .as_ref()
        .and_then(|u| u.cors.as_ref())
        .map(cors_policy);
    let invoke_mode = match cfg.function_url.as_ref().map(|u| u.invoke_mode) {
        Some(crate::config::InvokeMode::ResponseStream) => InvokeMode::ResponseStream,
        _ => InvokeMode::Buffered,
    };
    HttpFront {
        format,
        cors,
        invoke_mode,
    }
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
