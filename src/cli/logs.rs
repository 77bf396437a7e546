//! `cargo fn logs`: arguments -> [`crate::logs::LogsOptions`], then the
//! local history (`cargo fn watch`) or CloudWatch Logs (`--remote`).

use std::io::IsTerminal;

use anyhow::Result;
use clap::Args;

use super::args::{AwsArgs, EmulatorArgs};
use super::{ColorArg, GlobalArgs};
use crate::error::UsageError;
use crate::logs::{LogsOptions, Style};

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Functions (Lambda names; default: every function of the project)
    #[arg(value_name = "FUNCTION")]
    pub functions: Vec<String>,
    /// Oldest line: a duration back from now (30s, 10m, 2h, 1d) or an RFC 3339 time
    #[arg(long, value_name = "WHEN", default_value = "10m")]
    pub since: String,
    /// Only matching lines (remote: CloudWatch filter pattern syntax;
    /// local: every space-separated term must appear, `-term` must not)
    #[arg(long, value_name = "PATTERN")]
    pub filter: Option<String>,
    /// Keep printing new lines as they arrive
    #[arg(long, short = 'f', visible_alias = "follow")]
    pub tail: bool,
    /// Only the log streams of the versions this alias routes to (with --remote)
    #[arg(
        long,
        value_name = "NAME",
        requires = "remote",
        conflicts_with = "version"
    )]
    pub alias: Option<String>,
    /// Only the log streams of this published version (with --remote)
    #[arg(long, value_name = "N", requires = "remote")]
    pub version: Option<String>,
    /// Pretty-print JSON log lines
    #[arg(long)]
    pub pretty: bool,
    /// Read CloudWatch Logs of the deployed functions instead of the local emulator
    #[arg(long)]
    pub remote: bool,
    #[command(flatten)]
    pub emulator: EmulatorArgs,
    #[command(flatten)]
    pub aws: AwsArgs,
}

pub fn run(global: &GlobalArgs, args: LogsArgs) -> Result<()> {
    for f in &args.functions {
        crate::config::check_function_name(f)
            .map_err(|e| UsageError(format!("FUNCTION `{f}`: {e}")))?;
    }
    // Under a stage, a binary's name stands for its function there.
    let functions = if args.functions.is_empty() {
        Vec::new()
    } else {
        super::args::stage_names(global, &args.functions)?
    };
    let since_ms = crate::logs::parse_since(&args.since, crate::logs::now_ms())
        .map_err(|e| UsageError(format!("--since {e}")))?;
    if let Some(v) = &args.version
        && v != "$LATEST"
        && (v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(UsageError(format!(
            "--version `{v}`: expected a published version number or $LATEST"
        ))
        .into());
    }
    if let Some(a) = &args.alias {
        crate::config::check_alias_name(a)
            .map_err(|e| UsageError(format!("--alias `{a}`: {e}")))?;
    }
    let color = match global.color {
        ColorArg::Always => true,
        ColorArg::Never => false,
        ColorArg::Auto => std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    };
    let opts = LogsOptions {
        since_ms,
        filter: args.filter.clone(),
        follow: args.tail,
        versions: args.version.clone().map(|v| vec![v]),
        style: Style {
            color,
            pretty: args.pretty,
            json: global.ui().is_json(),
        },
    };
    let mut out = std::io::stdout().lock();
    let result = if args.remote {
        let stage = super::args::selected_stage(global)?;
        let configs = match crate::project::Project::load(&global.selection()) {
            Ok(project) => crate::config::resolve(&project, &global.overrides())?,
            // Outside a project, named functions still have default groups.
            Err(_) if !functions.is_empty() => Vec::new(),
            Err(e) => return Err(e),
        };
        super::deploy::runtime()?.block_on(crate::logs::remote_functions(
            &args.aws.options(stage.as_ref())?,
            &configs,
            &functions,
            args.alias.as_deref(),
            opts,
            &mut out,
        ))
    } else {
        crate::logs::local(&args.emulator.url(), &functions, &opts, &mut out)
    };
    match result {
        // `cargo fn logs | head`: the reader is done, so are we.
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            Ok(())
        }
        r => r,
    }
}
