//! `cargo fn promote`: the alias's canary version (or the new version of
//! the rollout recorded on it) takes all traffic.

use anyhow::Result;
use clap::Args;

use super::GlobalArgs;
use super::args::{AwsArgs, function_arg};
use crate::error::UsageError;

#[derive(Debug, Args)]
pub struct PromoteArgs {
    /// The function (Lambda name; default: the only function of the project)
    #[arg(value_name = "FUNCTION")]
    pub function: Option<String>,
    /// The alias whose canary is promoted
    #[arg(long, value_name = "NAME", default_value = crate::deploy::DEFAULT_ALIAS)]
    pub alias: String,
    /// Print the call and change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Confirm for a stage with `confirm = true` (needed without a terminal)
    #[arg(long, short = 'y')]
    pub yes: bool,
    #[command(flatten)]
    pub aws: AwsArgs,
}

pub fn run(global: &GlobalArgs, args: PromoteArgs) -> Result<()> {
    let function = function_arg(global, args.function.as_deref(), "promote")?;
    crate::config::check_function_name(&function)
        .map_err(|e| UsageError(format!("FUNCTION `{function}`: {e}")))?;
    crate::config::check_alias_name(&args.alias)
        .map_err(|e| UsageError(format!("--alias `{}`: {e}", args.alias)))?;
    let ui = global.ui();
    let stage = super::args::selected_stage(global)?;
    super::deploy::runtime()?.block_on(async {
        let api = args.aws.connect(stage.as_ref()).await?;
        let what = format!("promote {function}:{}", args.alias);
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
        let (alias, line) =
            crate::deploy::rollout::promote(&api, &function, &args.alias, args.dry_run)
                .await
                .map_err(crate::aws::with_api_hint)?;
        super::rollback::print_alias(&ui, &function, &alias, &line, args.dry_run)
    })
}
