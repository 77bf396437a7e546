//! `cargo fn rollback`: drop the alias's canary, or put the alias back on
//! the previous published version (or `--to VERSION`).

use anyhow::Result;
use clap::Args;

use super::GlobalArgs;
use super::args::{AwsArgs, function_arg};
use crate::aws::AliasState;
use crate::error::UsageError;
use crate::ui::Ui;

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The function (Lambda name; default: the only function of the project)
    #[arg(value_name = "FUNCTION")]
    pub function: Option<String>,
    /// The alias to move back
    #[arg(long, value_name = "NAME", default_value = crate::deploy::DEFAULT_ALIAS)]
    pub alias: String,
    /// The published version to go back to (default: the previous one)
    #[arg(long, value_name = "VERSION")]
    pub to: Option<String>,
    /// Print the call and change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Confirm for a stage with `confirm = true` (needed without a terminal)
    #[arg(long, short = 'y')]
    pub yes: bool,
    #[command(flatten)]
    pub aws: AwsArgs,
}

pub fn run(global: &GlobalArgs, args: RollbackArgs) -> Result<()> {
    let function = function_arg(global, args.function.as_deref(), "rollback")?;
    crate::config::check_function_name(&function)
        .map_err(|e| UsageError(format!("FUNCTION `{function}`: {e}")))?;
    crate::config::check_alias_name(&args.alias)
        .map_err(|e| UsageError(format!("--alias `{}`: {e}", args.alias)))?;
    if let Some(v) = &args.to
        && (v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(UsageError(format!(
            "--to `{v}`: expected a published version number (not $LATEST)"
        ))
        .into());
    }
    let ui = global.ui();
    let stage = super::args::selected_stage(global)?;
    super::deploy::runtime()?.block_on(async {
        let api = args.aws.connect(stage.as_ref()).await?;
        let what = format!("roll back {function}:{}", args.alias);
        let confirm = super::deploy::confirmation(args.yes);
        crate::pipeline::guard_function(
            &api,
            stage.as_ref(),
            &function,
            &what,
            &confirm,
            args.dry_run,
        )
        .await?;
        let (alias, line) = crate::deploy::rollout::rollback(
            &api,
            &function,
            &args.alias,
            args.to.as_deref(),
            args.dry_run,
        )
        .await
        .map_err(crate::aws::with_api_hint)?;
        print_alias(&ui, &function, &alias, &line, args.dry_run)
    })
}

/// Shared by promote and rollback: the call (dry run) or the alias now.
pub(super) fn print_alias(
    ui: &Ui,
    function: &str,
    alias: &AliasState,
    line: &str,
    dry_run: bool,
) -> Result<()> {
    if ui.is_json() {
        let v = serde_json::json!({
            "function": function,
            "alias": alias.name,
            "alias_arn": alias.arn,
            "version": alias.version,
            "routing": alias.weights,
            "dry_run": dry_run,
            "call": line,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else if dry_run {
        println!("call {line}");
    } else {
        println!(
            "{function}: alias {} -> version {}",
            alias.name, alias.version
        );
    }
    Ok(())
}
