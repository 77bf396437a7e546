//! `cargo fn config`.

use clap::Args;

use super::GlobalArgs;

#[derive(Debug, Args)]
pub struct ConfigArgs {}

pub fn run(_global: &GlobalArgs, _args: ConfigArgs) -> anyhow::Result<()> {
    Err(super::not_available("config"))
}
