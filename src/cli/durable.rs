//! `cargo fn durable list|history|stop|callback`: arguments -> one call
//! of [`crate::durable`], against the local durable execution service of
//! `cargo fn watch` (default) or AWS (`--remote`), then the result printed
//! (human or `--output json`).

use std::io::Write;

use anyhow::Result;
use clap::{Args, Subcommand};

use super::GlobalArgs;
use super::args::{AwsArgs, EmulatorArgs, function_arg, only_function};
use crate::aws::durable::{CallbackAnswer, ErrorInfo, ListFilter};
use crate::aws::invoke::Endpoint;

#[derive(Debug, Args)]
pub struct DurableArgs {
    #[command(subcommand)]
    pub command: DurableCommand,
}

#[derive(Debug, Subcommand)]
pub enum DurableCommand {
    /// List a function's durable executions (newest first), with their ARNs
    List(ListArgs),
    /// Show one execution and its history as a timeline (steps, waits, callbacks, invokes, retries, replays)
    History(HistoryArgs),
    /// Stop a running execution
    Stop(StopArgs),
    /// Complete a callback an execution waits for (succeed, fail) or keep it alive (heartbeat)
    Callback(CallbackArgs),
}

/// Where the durable execution API is: the local emulator or AWS.
#[derive(Debug, Args)]
pub struct Where {
    #[command(flatten)]
    pub emulator: EmulatorArgs,
    /// Call AWS instead of the local emulator (`cargo fn watch`)
    #[arg(long)]
    pub remote: bool,
    // How to reach AWS: only with --remote.
    #[command(flatten)]
    pub aws: AwsArgs,
}

impl Where {
    /// With `--remote`, the selected stage's region and profile pin the
    /// connection as for every other AWS command.
    fn endpoint(&self, global: &GlobalArgs) -> Result<Endpoint> {
        Ok(if self.remote {
            let stage = super::args::selected_stage(global)?;
            Endpoint::Remote(self.aws.options(stage.as_ref())?)
        } else {
            Endpoint::Local(self.emulator.url())
        })
    }
}

#[derive(Debug, Args)]
#[command(
    mut_arg("region", |a| a.requires("remote")),
    mut_arg("endpoint_url", |a| a.requires("remote"))
)]
pub struct ListArgs {
    /// Function name (default: the only function of the project)
    pub function: Option<String>,
    /// Only executions in this status (repeatable): running, succeeded, failed, timed-out, stopped
    #[arg(long, value_name = "STATUS")]
    pub status: Vec<String>,
    /// Only executions of this version or alias
    #[arg(long, value_name = "QUALIFIER")]
    pub qualifier: Option<String>,
    /// Only executions with this name
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// At most this many executions
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10000))]
    pub max: Option<u32>,
    #[command(flatten)]
    pub target: Where,
}

#[derive(Debug, Args)]
#[command(
    mut_arg("region", |a| a.requires("remote")),
    mut_arg("endpoint_url", |a| a.requires("remote"))
)]
pub struct HistoryArgs {
    /// The execution's ARN (`cargo fn durable list` prints it)
    pub execution_arn: String,
    #[command(flatten)]
    pub target: Where,
}

#[derive(Debug, Args)]
#[command(
    mut_arg("region", |a| a.requires("remote")),
    mut_arg("endpoint_url", |a| a.requires("remote"))
)]
pub struct StopArgs {
    /// The execution's ARN (`cargo fn durable list` prints it)
    pub execution_arn: String,
    #[command(flatten)]
    pub error: ErrorArgs,
    #[command(flatten)]
    pub target: Where,
}

/// An error object for `stop` and `callback fail`.
#[derive(Debug, Args, Clone, Default)]
pub struct ErrorArgs {
    /// Error type recorded with it
    #[arg(long, value_name = "TYPE")]
    pub error_type: Option<String>,
    /// Error message recorded with it
    #[arg(long, value_name = "TEXT")]
    pub error_message: Option<String>,
    /// Error data (JSON) recorded with it
    #[arg(long, value_name = "JSON")]
    pub error_data: Option<String>,
}

impl ErrorArgs {
    fn info(&self) -> Result<Option<ErrorInfo>> {
        if let Some(d) = &self.error_data {
            crate::invoke::check_json(d.as_bytes(), "--error-data")?;
        }
        if self.error_type.is_none() && self.error_message.is_none() && self.error_data.is_none() {
            return Ok(None);
        }
        Ok(Some(ErrorInfo {
            error_type: self.error_type.clone(),
            message: self.error_message.clone(),
            data: self.error_data.clone(),
        }))
    }
}

#[derive(Debug, Args)]
#[command(
    mut_arg("region", |a| a.requires("remote")),
    mut_arg("endpoint_url", |a| a.requires("remote"))
)]
pub struct CallbackArgs {
    /// What to send: succeed, fail or heartbeat
    #[arg(value_enum)]
    pub answer: Answer,
    /// The callback id (`cargo fn durable history` shows it on the callback's line)
    pub callback_id: String,
    /// The result to complete the callback with (JSON; succeed only)
    #[arg(long, value_name = "JSON")]
    pub result: Option<String>,
    #[command(flatten)]
    pub error: ErrorArgs,
    #[command(flatten)]
    pub target: Where,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Answer {
    Succeed,
    Fail,
    Heartbeat,
}

pub fn run(global: &GlobalArgs, args: DurableArgs) -> Result<()> {
    let json = global.ui().is_json();
    let rt = super::deploy::runtime()?;
    let mut out = std::io::stdout().lock();
    match args.command {
        DurableCommand::List(a) => {
            let function = match &a.function {
                Some(f) => function_arg(global, Some(f), "durable list")?,
                None => only_function(global, "durable list")?,
            };
            let statuses = crate::durable::check_statuses(&a.status)?;
            let filter = ListFilter {
                qualifier: a.qualifier.as_deref(),
                name: a.name.as_deref(),
                statuses: &statuses,
                max: a.max.map(|m| m as usize),
            };
            let list = rt.block_on(crate::durable::list(
                &a.target.endpoint(global)?,
                &function,
                &filter,
            ))?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&list)?)?;
            } else {
                write!(out, "{}", crate::durable::render_list(&list))?;
            }
        }
        DurableCommand::History(a) => {
            let h = rt.block_on(crate::durable::history(
                &a.target.endpoint(global)?,
                &a.execution_arn,
            ))?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&h)?)?;
            } else {
                write!(out, "{}", crate::durable::render_history(&h))?;
            }
        }
        DurableCommand::Stop(a) => {
            let error = a.error.info()?;
            let at = rt.block_on(crate::durable::stop(
                &a.target.endpoint(global)?,
                &a.execution_arn,
                error.as_ref(),
            ))?;
            if json {
                let v = serde_json::json!({ "arn": a.execution_arn, "stopped": at });
                writeln!(out, "{v}")?;
            } else {
                writeln!(out, "{}\n  stopped at {at}", a.execution_arn)?;
            }
        }
        DurableCommand::Callback(a) => {
            let answer = callback_answer(&a)?;
            rt.block_on(crate::durable::callback(
                &a.target.endpoint(global)?,
                &a.callback_id,
                &answer,
            ))?;
            let sent = match a.answer {
                Answer::Succeed => "success",
                Answer::Fail => "failure",
                Answer::Heartbeat => "heartbeat",
            };
            if json {
                let v = serde_json::json!({ "callback_id": a.callback_id, "sent": sent });
                writeln!(out, "{v}")?;
            } else {
                writeln!(out, "sent {sent} to callback {}", a.callback_id)?;
            }
        }
    }
    out.flush()?;
    Ok(())
}

/// The flags each answer allows, checked before any call.
fn callback_answer(a: &CallbackArgs) -> Result<CallbackAnswer> {
    let has_error = a.error.info()?.is_some();
    let refuse = |what: &str| -> anyhow::Error {
        crate::error::UsageError(format!(
            "callback {}: {what}",
            match a.answer {
                Answer::Succeed => "succeed",
                Answer::Fail => "fail",
                Answer::Heartbeat => "heartbeat",
            }
        ))
        .into()
    };
    match a.answer {
        Answer::Succeed => {
            if has_error {
                return Err(refuse("--error-* flags belong to `callback fail`"));
            }
            if let Some(r) = &a.result {
                crate::invoke::check_json(r.as_bytes(), "--result")?;
            }
            Ok(CallbackAnswer::Success(
                a.result.as_ref().map(|r| r.clone().into_bytes()),
            ))
        }
        Answer::Fail => {
            if a.result.is_some() {
                return Err(refuse("--result belongs to `callback succeed`"));
            }
            Ok(CallbackAnswer::Failure(a.error.info()?.unwrap_or_default()))
        }
        Answer::Heartbeat => {
            if a.result.is_some() || has_error {
                return Err(refuse("a heartbeat takes no --result or --error-* flags"));
            }
            Ok(CallbackAnswer::Heartbeat)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::super::{Cli, Command};
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("cargo-fn").chain(args.iter().copied()))
    }

    #[test]
    fn durable_commands_parse_and_aws_flags_need_remote() {
        assert!(parse(&["durable", "list", "f", "--region", "eu-west-1"]).is_err());
        assert!(parse(&["durable", "history", "arn", "--remote", "--port", "9001"]).is_err());
        let cli = parse(&["durable", "list", "f", "--remote", "--region", "eu-west-1"]).unwrap();
        let global = cli.global;
        let Command::Durable(d) = cli.command else {
            panic!("not durable")
        };
        let DurableCommand::List(l) = d.command else {
            panic!("not list")
        };
        assert!(matches!(
            l.target.endpoint(&global).unwrap(),
            Endpoint::Remote(_)
        ));
        let cli = parse(&[
            "durable",
            "callback",
            "succeed",
            "cb",
            "--result",
            "{\"ok\":true}",
        ])
        .unwrap();
        let Command::Durable(d) = cli.command else {
            panic!("not durable")
        };
        let DurableCommand::Callback(c) = d.command else {
            panic!("not callback")
        };
        assert!(matches!(
            callback_answer(&c).unwrap(),
            CallbackAnswer::Success(Some(_))
        ));
        assert!(
            matches!(c.target.endpoint(&global).unwrap(), Endpoint::Local(u) if u == "http://127.0.0.1:9000")
        );
    }

    #[test]
    fn callback_flags_are_checked_before_any_call() {
        let check = |args: &[&str]| -> String {
            let Command::Durable(d) = parse(args).unwrap().command else {
                panic!("not durable")
            };
            let DurableCommand::Callback(c) = d.command else {
                panic!("not callback")
            };
            callback_answer(&c).unwrap_err().to_string()
        };
        assert!(
            check(&["durable", "callback", "succeed", "cb", "--result", "{nope"])
                .contains("--result")
        );
        assert!(
            check(&["durable", "callback", "heartbeat", "cb", "--result", "1"])
                .contains("heartbeat")
        );
        assert!(check(&["durable", "callback", "fail", "cb", "--result", "1"]).contains("succeed"));
    }
}
