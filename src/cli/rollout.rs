//! The gradual-rollout flags of `cargo fn deploy` (`--strategy`,
//! `--canary P --bake D`, `--linear P --every D`, `--poll`, `--resume`):
//! arguments -> a [`RolloutRequest`] checked before any AWS call.

use std::time::Duration;

use anyhow::Result;
use clap::Args;

use crate::config::Strategy;
use crate::config::deployment::{check_step, parse_duration};
use crate::error::UsageError;
use crate::pipeline::RolloutRequest;

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

/// A step duration flag (`--bake`, `--every`): read and range-checked here,
/// so an error names that flag and not the percentage beside it.
fn step_duration(flag: &str, value: &str) -> Result<Duration> {
    parse_duration(value)
        .and_then(|d| check_step(d).map(|()| d))
        .map_err(|e| usage(flag, value, e))
}

impl RolloutArgs {
    /// The strategy the flags ask for, if any (`--canary` alone: none).
    pub fn strategy(&self, canary: Option<f64>) -> Result<Option<Strategy>> {
        if let Some(name) = &self.strategy {
            return Strategy::parse(name)
                .map(Some)
                .map_err(|e| usage("--strategy", name, e));
        }
        if let (Some(p), Some(bake)) = (canary, &self.bake) {
            let d = step_duration("--bake", bake)?;
            return Strategy::canary(p, d)
                .map(Some)
                .map_err(|e| usage("--canary", &p.to_string(), e));
        }
        if let (Some(p), Some(every)) = (self.linear, &self.every) {
            let d = step_duration("--every", every)?;
            return Strategy::linear(p, d)
                .map(Some)
                .map_err(|e| usage("--linear", &p.to_string(), e));
        }
        Ok(None)
    }

    pub fn request(&self, canary: Option<f64>) -> Result<RolloutRequest> {
        let poll = match parse_duration(&self.poll) {
            Ok(d) if !d.is_zero() && d <= Duration::from_secs(3600) => d,
            Ok(_) => {
                return Err(usage(
                    "--poll",
                    &self.poll,
                    "the poll interval is 1 second to 1 hour".into(),
                ));
            }
            Err(e) => return Err(usage("--poll", &self.poll, e)),
        };
        Ok(RolloutRequest {
            strategy: self.strategy(canary)?,
            poll,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(args: RolloutArgs, canary: Option<f64>) -> String {
        args.strategy(canary).unwrap_err().to_string()
    }

    /// Issue 25 item 5: `--every 0s` and `--bake 25h` blamed the percentage.
    #[test]
    fn a_wrong_duration_names_its_own_flag_not_the_percentage() {
        let linear = RolloutArgs {
            linear: Some(10.0),
            every: Some("0s".into()),
            ..Default::default()
        };
        let e = error(linear, None);
        assert!(e.starts_with("--every `0s`: "), "{e}");
        let canary = RolloutArgs {
            bake: Some("25h".into()),
            ..Default::default()
        };
        let e = error(canary, Some(10.0));
        assert!(e.starts_with("--bake `25h`: "), "{e}");
        assert!(e.contains("1 second to 24 hours, got 25h"), "{e}");
        let percent = RolloutArgs {
            bake: Some("5m".into()),
            ..Default::default()
        };
        let e = error(percent, Some(100.0));
        assert!(e.starts_with("--canary `100`: "), "{e}");
    }
}
