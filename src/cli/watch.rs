//! `cargo fn watch`.

use clap::Args;

use super::GlobalArgs;

#[derive(Debug, Args)]
pub struct WatchArgs {}

pub fn run(_global: &GlobalArgs, _args: WatchArgs) -> anyhow::Result<()> {
    Err(super::not_available("watch"))
}
