//! `cargo fn new` and `cargo fn init`.

use clap::Args;

use super::GlobalArgs;

#[derive(Debug, Args)]
pub struct NewArgs {}

#[derive(Debug, Args)]
pub struct InitArgs {}

pub fn run_new(_global: &GlobalArgs, _args: NewArgs) -> anyhow::Result<()> {
    Err(super::not_available("new"))
}

pub fn run_init(_global: &GlobalArgs, _args: InitArgs) -> anyhow::Result<()> {
    Err(super::not_available("init"))
}
