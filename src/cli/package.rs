//! `cargo fn package`.

use clap::Args;

use super::GlobalArgs;

#[derive(Debug, Args)]
pub struct PackageArgs {}

pub fn run(_global: &GlobalArgs, _args: PackageArgs) -> anyhow::Result<()> {
    Err(super::not_available("package"))
}
