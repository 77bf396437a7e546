//! `cargo fn config`: the resolved configuration of each function and where
//! each value came from.

use clap::Args;

use super::{ConfigFlags, GlobalArgs};
use crate::config::{self, FunctionConfig, Source};
use crate::project::Project;

#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(flatten)]
    pub flags: ConfigFlags,
}

pub fn run(global: &GlobalArgs, args: ConfigArgs) -> anyhow::Result<()> {
    let ui = global.ui();
    let overrides = args.flags.overrides(global)?;
    let project = Project::load(&global.selection())?;
    let functions = config::resolve(&project, &overrides)?;
    for f in &functions {
        for w in &f.warnings {
            ui.warn(format!("{}: {w}", f.name));
        }
    }
    if ui.is_json() {
        let shown: Vec<serde_json::Value> = functions.iter().map(config::redacted_json).collect();
        println!("{}", serde_json::to_string_pretty(&shown)?);
        return Ok(());
    }
    for (i, f) in functions.iter().enumerate() {
        if i > 0 {
            println!();
        }
        print_human(f);
    }
    Ok(())
}

fn print_human(f: &FunctionConfig) {
    println!("{} (package {}, binary {})", f.name, f.package, f.bin);
    let rows = config::display_rows(f);
    let width = rows.iter().map(|(k, _, _)| k.len()).max().unwrap_or(0);
    let vwidth = rows
        .iter()
        .map(|(_, v, _)| v.len())
        .max()
        .unwrap_or(0)
        .min(48);
    for (key, value, source) in rows {
        let source = match source {
            Source::Default => "default".to_string(),
            other => other.to_string(),
        };
        println!("  {key:<width$}  {value:<vwidth$}  {source}");
    }
}
