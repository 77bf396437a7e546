//! `cargo fn invoke`.

use clap::Args;

use super::GlobalArgs;

#[derive(Debug, Args)]
pub struct InvokeArgs {}

pub fn run(_global: &GlobalArgs, _args: InvokeArgs) -> anyhow::Result<()> {
    Err(super::not_available("invoke"))
}
