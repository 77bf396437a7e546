//! `cargo fn build`.

use clap::Args;

use super::GlobalArgs;

#[derive(Debug, Args)]
pub struct BuildArgs {}

pub fn run(_global: &GlobalArgs, _args: BuildArgs) -> anyhow::Result<()> {
    Err(super::not_available("build"))
}
