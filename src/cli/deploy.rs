//! `cargo fn deploy`: arguments -> [`pipeline::DeployRequest`] ->
//! [`pipeline::deploy`] (build, package, plan, execute) -> printed plans
//! and outcomes.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, ValueEnum};

use super::args::AwsArgs;
use super::{ConfigFlags, GlobalArgs};
use crate::aws::sdk::ConnectOptions;
use crate::build::BuildOptions;
use crate::deploy::guard::Confirm;
use crate::deploy::{self, EnvMode};
use crate::pipeline::{self, DeployRequest, Deployed, LayerRequest, S3Request};

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
    /// Print the IAM policy (JSON) a user or CI role needs to deploy, and
    /// nothing else: no build, no AWS call
    #[arg(long)]
    pub print_policy: bool,
    /// Publish the exact code (CodeSha256) this stage's alias runs, with the
    /// selected stage's configuration and no build; across accounts the zip
    /// is copied. A local zip (or image layout) is used only when its
    /// CodeSha256 (digest) matches
    #[arg(long, value_name = "STAGE", conflicts_with_all = ["layer", "s3_key"])]
    pub from: Option<String>,
    /// Confirm a deploy of a stage with `confirm = true` (needed without a terminal)
    #[arg(long, short = 'y')]
    pub yes: bool,
    #[command(flatten)]
    pub rollout: super::rollout::RolloutArgs,
    #[command(flatten)]
    pub aws: AwsArgs,
    #[command(flatten)]
    pub flags: ConfigFlags,
}

pub fn run(global: &GlobalArgs, args: DeployArgs) -> Result<()> {
    if args.print_policy {
        println!("{}", crate::aws::permissions::deploy_policy());
        return Ok(());
    }
    let ui = global.ui();
    let overrides = args.flags.overrides(global)?;
    // The stage's region and profile pins say where to connect.
    let stage = super::args::selected_stage(global)?;
    let connect = ConnectOptions {
        // A byte bar for each large upload.
        upload_progress: Some(ui),
        ..args.aws.options(stage.as_ref())?
    };
    if let Some(layer) = &args.layer {
        let req = LayerRequest {
            layer: layer.clone(),
            zip: args.zip.clone(),
            selection: global.selection(),
            architecture: overrides.architecture.unwrap_or_default(),
            runtime: overrides.runtime.clone(),
            dry_run: args.dry_run,
            connect,
            stage: stage.clone(),
        };
        if !args.dry_run {
            ui.status("Publishing", format!("layer {layer}"));
        }
        let confirm = confirmation(args.yes);
        let (view, published) = runtime()?.block_on(pipeline::publish_layer(&req, &confirm))?;
        match published {
            None => view.calls.iter().for_each(|c| println!("call {c}")),
            Some(v) if ui.is_json() => println!(
                "{}",
                serde_json::json!({"layer": layer, "arn": v.arn, "version": v.version})
            ),
            Some(v) => println!("{}", v.arn),
        }
        return Ok(());
    }
    let req = DeployRequest {
        selection: global.selection(),
        overrides,
        functions: args.functions.clone(),
        alias: args.alias.clone(),
        canary: args.canary,
        dry_run: args.dry_run,
        zip: args.zip.clone(),
        build: (args.zip.is_none() && !args.no_build).then(|| BuildOptions {
            musl: args.musl,
            cargo_flags: global.cargo_flags(),
            manifest_path: global.manifest_path.clone(),
            ..BuildOptions::default()
        }),
        env_mode: args.env_mode.into(),
        tag_mode: args.tag_mode.into(),
        s3: args.s3_bucket.clone().map(|bucket| S3Request {
            bucket,
            key: args.s3_key.clone(),
            keep: args.s3_keep,
        }),
        image: args.image,
        registry_url: args.registry_url.clone(),
        connect,
        rollout: args.rollout.request(args.canary)?,
        from: args.from.clone(),
    };
    if args.rollout.resume {
        let report = runtime()?.block_on(pipeline::resume(&req, &ui))?;
        if ui.is_json() {
            println!("{}", serde_json::json!({ "rollout": report }));
        }
        return report.into_result().map(|_| ());
    }
    let mut print = |d: &Deployed| {
        for w in &d.plan.warnings {
            ui.warn(format!("{}: {w}", d.plan.function));
        }
        if ui.is_json() {
            return;
        }
        if args.dry_run {
            print!("{}", d.plan.render());
        }
        if let Some(o) = &d.outcome {
            print_outcome(o);
        }
    };
    let ask = super::build::ask_install;
    let confirm = confirmation(args.yes);
    let shipped = runtime()?.block_on(pipeline::deploy(
        &req,
        Some(&ask),
        &confirm,
        &ui,
        &mut print,
    ))?;
    let done = &shipped.functions;
    if let Some(s) = shipped.strategy
        && args.dry_run
        && !ui.is_json()
    {
        println!("then roll out {s} (the aliases held above move step by step)");
    }
    if ui.is_json() {
        let value = if args.dry_run {
            let plans: Vec<_> = done.iter().map(|d| d.plan.json()).collect();
            serde_json::json!({ "dry_run": true, "plans": plans, "strategy": shipped.strategy })
        } else {
            let outcomes: Vec<_> = done.iter().filter_map(|d| d.outcome.as_ref()).collect();
            match &shipped.rollout {
                Some(r) => serde_json::json!({ "functions": outcomes, "rollout": r }),
                None => serde_json::json!({ "functions": outcomes }),
            }
        };
        if shipped.rollout.is_some() {
            // After one event per line, the result is one line too.
            println!("{}", serde_json::to_string(&value)?);
        } else {
            println!("{}", serde_json::to_string_pretty(&value)?);
        }
    }
    match shipped.rollout {
        Some(r) => r.into_result().map(|_| ()),
        None => Ok(()),
    }
}

/// How a stage's `confirm = true` is answered: `--yes`, else a question
/// when stdin and stderr are terminals, else not at all (the guard refuses).
pub(super) fn confirmation(yes: bool) -> Confirm<'static> {
    use std::io::IsTerminal;
    if yes {
        Confirm::Given
    } else if std::io::stdin().is_terminal() && std::io::stderr().is_terminal() {
        Confirm::Ask(&ask_yes)
    } else {
        Confirm::Impossible
    }
}

/// Asks on stderr, reads one line: only `yes` (any case) is a yes.
fn ask_yes(question: &str) -> bool {
    use std::io::{BufRead, Write};
    let mut err = std::io::stderr();
    let _ = write!(err, "{question}: ");
    let _ = err.flush();
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line).is_err() {
        return false;
    }
    line.trim().eq_ignore_ascii_case("yes")
}

pub(super) fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

fn print_outcome(o: &deploy::Outcome) {
    for line in outcome_lines(o) {
        println!("{line}");
    }
}

/// What deploy prints for one function. Whatever anyone on the internet
/// may call is said so, on a line of its own.
fn outcome_lines(o: &deploy::Outcome) -> Vec<String> {
    let routing = match o.routing.iter().next() {
        Some((v, w)) => format!(" (canary: {}% on version {v})", (w * 1000.0).round() / 10.0),
        None => String::new(),
    };
    let what = match (o.changed, o.published) {
        (_, true) => format!("deployed, version {}", o.version),
        (true, false) => format!("updated, no new version (still {})", o.version),
        (false, false) => format!("up to date, version {}", o.version),
    };
    let mut lines = vec![
        format!(
            "{}: {what}, alias {} -> {}{routing}",
            o.function, o.alias, o.alias_version
        ),
        format!("  {}", o.function_arn),
        format!("  CodeSha256 {}", o.code_sha256),
    ];
    if let Some(s) = &o.source {
        lines.push(format!(
            "  from stage {}: {}:{} version {}, CodeSha256 {} (code from {})",
            s.stage, s.function, s.alias, s.version, s.code_sha256, s.code_from
        ));
    }
    if let Some(uri) = &o.image_uri {
        lines.push(format!("  image {uri}"));
    }
    match (&o.url, o.url_auth.as_deref()) {
        (Some(u), Some("NONE")) => lines.push(format!(
            "  Public URL {u} (function URL, auth NONE: anyone may call it)"
        )),
        (Some(u), Some(auth)) => lines.push(format!("  URL {u} ({auth}: signed requests only)")),
        (Some(u), None) => lines.push(format!("  URL {u}")),
        (None, _) => {}
    }
    // HTTP API routes have no authorizer (cargo-fn configures none).
    for (trigger, url) in &o.triggers {
        lines.push(format!(
            "  Public trigger {trigger}: {url} (HTTP API, routes without an authorizer: anyone may call them)"
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(url_auth: Option<&str>, api: bool) -> deploy::Outcome {
        deploy::Outcome {
            function: "hello".into(),
            function_arn: "arn:aws:lambda:us-east-1:123456789012:function:hello".into(),
            version: "1".into(),
            alias: "prod".into(),
            alias_version: "1".into(),
            routing: Default::default(),
            code_sha256: "abc".into(),
            image_uri: None,
            url: url_auth.map(|_| "https://x.lambda-url.us-east-1.on.aws".into()),
            url_auth: url_auth.map(str::to_string),
            triggers: api
                .then(|| {
                    (
                        "api".into(),
                        "https://a1.execute-api.us-east-1.amazonaws.com".into(),
                    )
                })
                .into_iter()
                .collect(),
            changed: true,
            published: true,
            source: None,
        }
    }

    #[test]
    fn a_deploy_from_another_stage_shows_both_hashes() {
        let mut o = outcome(None, false);
        o.code_sha256 = "published=".into();
        o.source = Some(deploy::source::Source {
            stage: "staging".into(),
            function: "hello-staging".into(),
            alias: "live".into(),
            version: "7".into(),
            code_sha256: "source=".into(),
            code_from: "function code location".into(),
        });
        let text = outcome_lines(&o).join("\n");
        assert!(text.contains("  CodeSha256 published="), "{text}");
        assert!(
            text.contains("  from stage staging: hello-staging:live version 7, CodeSha256 source= (code from function code location)"),
            "{text}"
        );
        let json = serde_json::to_value(&o).unwrap();
        assert_eq!(json["source"]["code_sha256"], "source=");
        assert_eq!(json["code_sha256"], "published=");
    }

    #[test]
    fn deploy_output_names_every_public_endpoint() {
        let signed = outcome_lines(&outcome(Some("AWS_IAM"), false)).join("\n");
        assert!(
            signed.contains(
                "  URL https://x.lambda-url.us-east-1.on.aws (AWS_IAM: signed requests only)"
            ),
            "{signed}"
        );
        assert!(!signed.contains("Public"), "{signed}");
        let public = outcome_lines(&outcome(Some("NONE"), true)).join("\n");
        assert!(
            public.contains("  Public URL https://x.lambda-url.us-east-1.on.aws (function URL, auth NONE: anyone may call it)"),
            "{public}"
        );
        assert!(
            public.contains("  Public trigger api: https://a1.execute-api.us-east-1.amazonaws.com (HTTP API, routes without an authorizer: anyone may call them)"),
            "{public}"
        );
    }
}
