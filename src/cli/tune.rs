//! `cargo fn tune`: arguments -> [`crate::tune::TuneOptions`], then the
//! local estimate or the remote measurement, the outputs, and `--apply`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use super::GlobalArgs;
use super::args::{AwsArgs, PayloadArgs};
use crate::config::{Arch, Source};
use crate::error::{UsageError, hinted};
use crate::tune::{LocalTarget, Payload, Strategy, TuneOptions, TuneReport};

#[derive(Debug, Args)]
pub struct TuneArgs {
    /// Function (Lambda name or binary; default: the only function of the project)
    pub function: Option<String>,
    /// Memory sizes to try, MB, comma-separated
    #[arg(long, value_name = "MB,...", value_delimiter = ',', default_values_t = crate::tune::DEFAULT_MEMORIES)]
    pub memory: Vec<u32>,
    /// Measured invocations per memory size (and architecture)
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub invocations: u32,
    #[command(flatten)]
    pub payload: PayloadArgs,
    /// Weighted payloads: a JSON file `[{"payload": {...}, "weight": 3}, ...]`
    #[arg(long, value_name = "PATH", conflicts_with = "payload")]
    pub payloads: Option<PathBuf>,
    /// Send each size's invocations all at once instead of one after another
    #[arg(long)]
    pub parallel: bool,
    /// What the pick optimises: cost, speed, or a balance of both
    #[arg(long, default_value = "balanced", value_parser = ["cost", "speed", "balanced"])]
    pub strategy: String,
    /// Weight of cost in the balanced strategy (0 = speed only, 1 = cost only)
    #[arg(long, default_value_t = 0.5, value_name = "0..1")]
    pub weight: f64,
    /// Architectures to compare, comma-separated (default: the configured one)
    #[arg(long, value_name = "ARCH,...", value_delimiter = ',', value_parser = ["x86_64", "arm64"])]
    pub arch: Vec<String>,
    /// Measure cold starts too (locally: a fresh environment per invocation)
    #[arg(long)]
    pub cold_starts: bool,
    /// Estimate locally under the emulator with Lambda's limits (the default)
    #[arg(long, conflicts_with = "remote")]
    pub local: bool,
    /// Measure the deployed function in AWS (temporary versions and alias, removed after)
    #[arg(long)]
    pub remote: bool,
    /// Write the chosen memory (and architecture) into [package.metadata.fn]
    #[arg(long)]
    pub apply: bool,
    #[command(flatten)]
    pub aws: AwsArgs,
}

pub fn run(global: &GlobalArgs, args: TuneArgs) -> Result<()> {
    let ui = global.ui();
    let opts = TuneOptions {
        memories: args.memory.clone(),
        invocations: args.invocations,
        payloads: payloads(&args)?,
        parallel: args.parallel,
        weight: args.weight,
        archs: args.arch.iter().filter_map(|a| Arch::parse(a)).collect(),
        cold_starts: args.cold_starts,
    };
    opts.validate().map_err(|e| UsageError(format!("{e:#}")))?;
    let strategy = Strategy::parse(&args.strategy).expect("clap checked the strategy");
    let remote = args.remote || args.aws.endpoint_url.is_some() || args.aws.region.is_some();
    let target = LocalTarget {
        selection: global.selection(),
        overrides: global.overrides(),
        cargo_flags: global.cargo_flags(),
        function: args.function.clone(),
    };
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let report = rt.block_on(async {
        if remote {
            let local = crate::tune::local_function(&target);
            if let Ok((_, cfg)) = &local {
                crate::tune::refuse_managed(cfg)?;
            }
            let function = match &args.function {
                Some(f) => super::args::function_arg(global, Some(f), "tune")?,
                None => local?.1.name,
            };
            crate::config::check_function_name(&function)
                .map_err(|e| UsageError(format!("FUNCTION `{function}`: {e}")))?;
            let stage = super::args::selected_stage(global)?;
            let api = args.aws.connect(stage.as_ref()).await?;
            // Remote tuning publishes temporary versions: the account guard
            // applies; `confirm` is for releases, so it is not asked.
            crate::pipeline::guard_function(
                &api,
                stage.as_ref(),
                &function,
                "tune",
                &crate::deploy::guard::Confirm::Given,
                false,
            )
            .await?;
            let interrupt = async {
                let _ = tokio::signal::ctrl_c().await;
            };
            crate::tune::remote(&api, &function, &opts, interrupt, &ui)
                .await
                .map_err(crate::aws::with_api_hint)
        } else {
            crate::tune::local(&opts, &target, &ui).await
        }
    })?;
    let lambda_dir = crate::project::Project::load(&global.selection())
        .map(|p| p.lambda_dir())
        .unwrap_or_else(|_| PathBuf::from("target/lambda"));
    let html = crate::tune::write_report(&report, &lambda_dir)?;
    let applied = if args.apply {
        apply(&target, &report, strategy, &opts)?
    } else {
        None
    };
    print(&ui, &report, strategy, &html, applied.as_ref())
}

/// The payload list: one payload, the weighted file, or `{}`.
fn payloads(args: &TuneArgs) -> Result<Vec<Payload>> {
    let one = |body: Vec<u8>| Ok(vec![Payload { body, weight: 1 }]);
    if let Some(body) = args.payload.read()? {
        return one(body);
    }
    if let Some(path) = &args.payloads {
        let text = std::fs::read_to_string(path).map_err(|e| {
            hinted(
                format!("cannot read --payloads `{}`: {e}", path.display()),
                "pass a path to a JSON file",
            )
        })?;
        let shape = "expected a JSON array of {\"payload\": <JSON>, \"weight\": <1..1000>}";
        let list: Vec<serde_json::Value> = serde_json::from_str(&text)
            .map_err(|e| UsageError(format!("--payloads `{}`: {e}; {shape}", path.display())))?;
        let mut out = Vec::new();
        for (i, item) in list.iter().enumerate() {
            let payload = item.get("payload").ok_or_else(|| {
                UsageError(format!(
                    "--payloads `{}`: item {i} has no `payload`; {shape}",
                    path.display()
                ))
            })?;
            let weight = match item.get("weight") {
                None => 1,
                Some(w) => w
                    .as_u64()
                    .filter(|w| (1..=1000).contains(w))
                    .ok_or_else(|| {
                        UsageError(format!(
                            "--payloads `{}`: item {i} has weight {w}; allowed 1 to 1000",
                            path.display()
                        ))
                    })? as u32,
            };
            out.push(Payload {
                body: serde_json::to_vec(payload)?,
                weight,
            });
        }
        if out.is_empty() {
            return Err(UsageError(format!(
                "--payloads `{}`: the list is empty; {shape}",
                path.display()
            ))
            .into());
        }
        return Ok(out);
    }
    one(b"{}".to_vec())
}

/// Writes the pick into the function's manifest: what changed, where.
fn apply(
    target: &LocalTarget,
    report: &TuneReport,
    strategy: Strategy,
    opts: &TuneOptions,
) -> Result<Option<Applied>> {
    let pick = report.pick(strategy).ok_or_else(|| {
        hinted(
            "--apply: no size ran without errors; nothing to apply",
            "look at the failures in the table",
        )
    })?;
    let mut target = target.clone();
    target.function = Some(report.function.clone());
    let (project, cfg) = crate::tune::local_function(&target).context(
        "--apply writes into the function's Cargo.toml: run it in the function's workspace",
    )?;
    let manifest = project
        .functions
        .iter()
        .find(|f| f.bin == cfg.bin)
        .map(|f| f.manifest_path.clone())
        .context("the function's package is not in the workspace")?;
    let bins = project
        .functions
        .iter()
        .filter(|f| f.manifest_path == manifest)
        .count();
    // The architecture is written only when the run compared it.
    let arch = (!opts.archs.is_empty() && pick.arch != cfg.architecture).then_some(pick.arch);
    let applied = crate::tune::apply::apply(&manifest, &cfg, bins, pick.memory_mb, arch)?;
    Ok(applied.map(|applied| Applied {
        file: manifest,
        // A variable or flag in force still wins over the file.
        overridden: ["memory", "architecture"]
            .iter()
            .filter_map(|k| match cfg.sources.get(*k) {
                Some(s @ (Source::EnvVar { .. } | Source::Flag { .. })) => {
                    Some(format!("{k} comes from {s} while it is set"))
                }
                _ => None,
            })
            .collect(),
        applied,
    }))
}

/// `--apply`'s outcome: the manifest, its changes, what still overrides them.
struct Applied {
    file: PathBuf,
    applied: crate::tune::apply::Applied,
    overridden: Vec<String>,
}

fn print(
    ui: &crate::ui::Ui,
    report: &TuneReport,
    strategy: Strategy,
    html: &std::path::Path,
    applied: Option<&Applied>,
) -> Result<()> {
    if ui.is_json() {
        let v = serde_json::json!({
            "report": report,
            "strategy": strategy,
            "pick": report.pick(strategy),
            "html": html,
            "applied": applied.map(|a| serde_json::json!({
                "file": a.file,
                "changes": a.applied.changes.iter().map(|c| serde_json::json!({
                    "table": c.table,
                    "key": c.key,
                    "value": c.value,
                    "old": c.old,
                })).collect::<Vec<_>>(),
                "diff": a.applied.diff,
                "overridden": a.overridden,
            })),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!("{}\n", report.label);
    print!("{}", crate::tune::table(report));
    println!();
    print!("{}", crate::tune::chart(report));
    println!();
    match report.pick(strategy) {
        Some(p) => println!(
            "pick ({}): {} MB {} - {:.2} ms, ${:.4} per million invocations",
            args_strategy(strategy),
            p.memory_mb,
            p.arch.as_str(),
            p.trimmed_mean_ms,
            p.cost_per_million_usd
        ),
        None => println!("no pick: every size had errors"),
    }
    println!("report: {}", html.display());
    if let Some(a) = applied {
        for c in &a.applied.changes {
            let was = c
                .old
                .as_deref()
                .map_or("not set".to_string(), |o| format!("was {o}"));
            println!(
                "applied: {} `{}.{}` = {} ({was})",
                a.file.display(),
                c.table,
                c.key,
                c.value
            );
        }
        for o in &a.overridden {
            println!("note: {o}; the file's new value applies once it is not");
        }
        print!("{}", a.applied.diff);
    }
    Ok(())
}

fn args_strategy(s: Strategy) -> &'static str {
    match s {
        Strategy::Cost => "cost",
        Strategy::Speed => "speed",
        Strategy::Balanced => "balanced",
    }
}
