//! The gradual-rollout flags of `cargo fn deploy` (`--strategy`,
//! `--canary P --bake D`, `--linear P --every D`, `--poll`, `--resume`):
//! arguments -> a [`Strategy`] checked before any AWS call -> one call of
//! [`crate::deploy::rollout`].

use std::time::Duration;

use anyhow::Result;
use clap::Args;

use super::GlobalArgs;
use super::deploy::AwsArgs;
use crate::aws::sdk::SdkAws;
use crate::config::deployment::parse_duration;
use crate::config::{self, FunctionConfig, Strategy};
use crate::deploy::rollout::{
    self, Member, Options, Report, ResumeTarget, SignalControl, SystemClock, UiObserver,
};
use crate::error::UsageError;
use crate::ui::Ui;

#[derive(Debug, Args, Clone, Default)]
pub struct RolloutArgs {
    /// Shift traffic gradually, rolling back on alarms, errors or a failed
    /// hook: AllAtOnce, Canary10Percent5Minutes (10/15/30),
    /// Linear10PercentEvery1Minute (2/3/10), or the same forms with other
    /// numbers (default: the `deployment.strategy` key)
    #[arg(long, value_name = "NAME", conflicts_with_all = ["linear", "resume"])]
    pub strategy: Option<String>,
    /// With --canary: keep the canary this long (e.g. 5m), then move all
    /// traffic; rolls back on alarms or errors
    #[arg(
        long,
        value_name = "DURATION",
        requires = "canary",
        conflicts_with = "strategy"
    )]
    pub bake: Option<String>,
    /// Shift PERCENT more traffic every --every until all of it
    #[arg(long, value_name = "PERCENT", requires = "every", conflicts_with_all = ["canary", "resume"])]
    pub linear: Option<f64>,
    /// With --linear: time between two shifts (e.g. 1m)
    #[arg(long, value_name = "DURATION", requires = "linear")]
    pub every: Option<String>,
    /// Time between two health checks of a rollout
    #[arg(long, value_name = "DURATION", default_value = "10s")]
    pub poll: String,
    /// Continue the rollout recorded on the aliases (left by Ctrl-C, a
    /// lost connection, or another machine) instead of deploying
    #[arg(long, conflicts_with_all = ["canary", "dry_run", "zip", "layer", "image"])]
    pub resume: bool,
}

fn usage(flag: &str, value: &str, e: String) -> anyhow::Error {
    UsageError(format!("{flag} `{value}`: {e}")).into()
}

impl RolloutArgs {
    /// The release's strategy: the flags, else the functions' configured
    /// one (which must be the same for all: they shift together). `--canary`
    /// without `--bake` is the manual canary: no rollout.
    pub fn strategy(
        &self,
        canary: Option<f64>,
        functions: &[FunctionConfig],
    ) -> Result<Option<Strategy>> {
        if let Some(name) = &self.strategy {
            return Strategy::parse(name)
                .map(Some)
                .map_err(|e| usage("--strategy", name, e));
        }
        if let (Some(p), Some(bake)) = (canary, &self.bake) {
            let d = parse_duration(bake).map_err(|e| usage("--bake", bake, e))?;
            return Strategy::canary(p, d)
                .map(Some)
                .map_err(|e| usage("--canary", &p.to_string(), e));
        }
        if let (Some(p), Some(every)) = (self.linear, &self.every) {
            let d = parse_duration(every).map_err(|e| usage("--every", every, e))?;
            return Strategy::linear(p, d)
                .map(Some)
                .map_err(|e| usage("--linear", &p.to_string(), e));
        }
        if canary.is_some() {
            return Ok(None);
        }
        let mut configured = functions
            .iter()
            .filter_map(|f| f.deployment.strategy.map(|s| (f, s)));
        let Some((first, s)) = configured.next() else {
            return Ok(None);
        };
        if let Some((other, t)) = configured.find(|(_, t)| *t != s) {
            return Err(UsageError(format!(
                "{} and {} configure different strategies ({s} and {t}), but one deploy is one release that shifts together: pass --strategy NAME, or deploy them separately",
                first.name, other.name
            ))
            .into());
        }
        Ok(Some(s))
    }

    pub fn poll(&self) -> Result<Duration> {
        match parse_duration(&self.poll) {
            Ok(d) if !d.is_zero() && d <= Duration::from_secs(3600) => Ok(d),
            Ok(_) => Err(usage(
                "--poll",
                &self.poll,
                "the poll interval is 1 second to 1 hour".into(),
            )),
            Err(e) => Err(usage("--poll", &self.poll, e)),
        }
    }
}

/// The rollout of a release whose new versions `deploy` just published
/// (aliases held): each `(function config, alias, new version)`. A
/// rolled back or stopped rollout is a report here, an error after
/// [`Report::into_result`].
pub async fn run(
    api: &SdkAws,
    ui: Ui,
    strategy: Strategy,
    poll: Duration,
    members: Vec<(&FunctionConfig, String, String)>,
) -> Result<Report> {
    let members = members
        .into_iter()
        .map(|(f, alias, to)| Member {
            function: f.name.clone(),
            alias,
            to,
            deployment: f.deployment.clone(),
        })
        .collect();
    let opts = Options {
        strategy,
        poll,
        time_scale: rollout::time_scale_from_env(),
    };
    let control = SignalControl::install();
    let mut observer = UiObserver::new(ui);
    rollout::start(api, &SystemClock, &control, &mut observer, members, &opts)
        .await
        .map_err(crate::aws::with_api_hint)
}

/// `cargo fn deploy --resume`: the selected functions' aliases are read
/// for a recorded rollout, which continues where it stands.
pub async fn resume(
    global: &GlobalArgs,
    args: &RolloutArgs,
    functions: &[FunctionConfig],
    alias_flag: Option<&str>,
    aws: &AwsArgs,
) -> Result<()> {
    let ui = global.ui();
    let poll = args.poll()?;
    let mut targets = Vec::new();
    for f in functions {
        let alias = alias_flag
            .map(str::to_string)
            .or_else(|| f.alias.clone())
            .unwrap_or_else(|| crate::deploy::DEFAULT_ALIAS.to_string());
        config::check_alias_name(&alias)
            .map_err(|e| UsageError(format!("--alias `{alias}`: {e}")))?;
        targets.push(ResumeTarget {
            function: f.name.clone(),
            alias,
            deployment: f.deployment.clone(),
        });
    }
    let api = aws.connect().await?;
    let control = SignalControl::install();
    let mut observer = UiObserver::new(ui);
    let report = rollout::resume(
        &api,
        &SystemClock,
        &control,
        &mut observer,
        targets,
        poll,
        rollout::time_scale_from_env(),
    )
    .await
    .map_err(crate::aws::with_api_hint)?;
    if ui.is_json() {
        println!("{}", serde_json::json!({ "rollout": report }));
    }
    report.into_result().map(|_| ())
}
