//! `cargo fn build`: arguments -> [`pipeline::build`] -> the built
//! artifacts printed; and the build flags `cargo fn package` shares.

use std::io::{IsTerminal, Write};

use clap::{Args, ValueEnum};

use super::{ConfigFlags, GlobalArgs};
use crate::build::BuildOptions;
use crate::pipeline;
use crate::project::Project;
use crate::toolchain::Driver;

#[derive(Debug, Args)]
#[command(after_long_help = "\
Output layout (stable):
  target/lambda/<function>/bootstrap     a function's executable
  target/lambda/extensions/<name>        an extension's executable

Builds for x86_64-unknown-linux-gnu or aarch64-unknown-linux-gnu (--musl:
-musl), pinned to the runtime's glibc (provided.al2023: 2.34, provided.al2:
2.26). Plain cargo is used when the host already links such a binary;
otherwise cargo-zigbuild with the glibc suffix (<triple>.2.34). Every
artifact is checked: ELF machine, glibc symbol versions, interpreter and
shared libraries.")]
pub struct BuildArgs {
    #[command(flatten)]
    pub flags: ConfigFlags,
    #[command(flatten)]
    pub build: BuildFlags,
}

/// How to compile; shared by `build` and `package`.
#[derive(Debug, Args, Clone)]
pub struct BuildFlags {
    /// Cargo profile to build with
    #[arg(long, value_name = "NAME", default_value = "release")]
    pub profile: String,
    /// Accepted for cargo-lambda's `cargo lambda build --release`: cargo-fn
    /// builds with the release profile by default
    #[arg(long, short = 'r', conflicts_with = "profile")]
    pub release: bool,
    /// Build static musl binaries instead of glibc ones
    #[arg(long)]
    pub musl: bool,
    /// Install missing zig, cargo-zigbuild and rustup targets instead of failing
    #[arg(long)]
    pub install_missing: bool,
    /// Which build driver to use: auto picks plain cargo when the host links a
    /// binary the runtime can run, cargo-zigbuild otherwise
    #[arg(long, value_enum, default_value_t = CompilerArg::Auto, value_name = "DRIVER")]
    pub compiler: CompilerArg,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CompilerArg {
    Auto,
    Cargo,
    #[value(name = "zig", alias = "zigbuild")]
    Zig,
}

impl BuildFlags {
    pub fn options(&self, global: &GlobalArgs) -> BuildOptions {
        BuildOptions {
            profile: self.profile.clone(),
            musl: self.musl,
            install_missing: self.install_missing,
            driver: match self.compiler {
                CompilerArg::Auto => None,
                CompilerArg::Cargo => Some(Driver::Cargo),
                CompilerArg::Zig => Some(Driver::Zigbuild),
            },
            cargo_flags: global.cargo_flags(),
            manifest_path: global.manifest_path.clone(),
        }
    }
}

pub fn run(global: &GlobalArgs, args: BuildArgs) -> anyhow::Result<()> {
    let ui = global.ui();
    crate::toolchain::prefetch();
    let project = Project::load(&global.selection())?;
    let functions = pipeline::resolve(&project, &args.flags.overrides(global)?, &ui)?;
    let built = pipeline::build(
        &project,
        &functions,
        &args.build.options(global),
        Some(&ask_install),
        &ui,
    )?;
    if ui.is_json() {
        println!("{}", serde_json::to_string_pretty(&built)?);
        return Ok(());
    }
    for b in &built {
        let cwd = std::env::current_dir().unwrap_or_default();
        let shown = b.path.strip_prefix(&cwd).unwrap_or(&b.path);
        let glibc = match &b.check.max_glibc {
            Some(v) => format!(
                "needs {v}, {} has {}.{}",
                b.runtime,
                b.runtime.glibc().0,
                b.runtime.glibc().1
            ),
            None if b.check.static_binary => "static".to_string(),
            None => "no versioned glibc symbols".to_string(),
        };
        ui.status(
            "Built",
            format!(
                "{} -> {} ({}, {glibc})",
                b.name,
                shown.display(),
                b.architecture
            ),
        );
    }
    Ok(())
}

/// Offers to install missing build tools when at a terminal: the
/// interactive answer to `--install-missing`.
pub(super) fn ask_install(e: &anyhow::Error) -> bool {
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        return false;
    }
    eprintln!("{e}");
    eprint!("Install them now? [y/N] ");
    std::io::stderr().flush().ok();
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer).is_ok() && matches!(answer.trim(), "y" | "Y" | "yes")
}
