//! `cargo fn deploy`.

use clap::Args;

use super::GlobalArgs;

#[derive(Debug, Args)]
pub struct DeployArgs {}

pub fn run(_global: &GlobalArgs, _args: DeployArgs) -> anyhow::Result<()> {
    Err(super::not_available("deploy"))
}
