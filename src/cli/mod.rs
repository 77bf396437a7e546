//! The command line: clap definitions and dispatch. One file per command;
//! each turns its arguments into the options of one library operation.
//! Nothing outside `cli` depends on clap.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::{Arch, Overrides};
use crate::project::Selection;
use crate::ui::{ColorChoice, OutputFormat, Ui};

mod args;
mod build;
mod config;
mod deploy;
mod durable;
mod invoke;
mod logs;
mod new;
mod package;
mod promote;
mod rollback;
mod rollout;
mod tune;
mod watch;

/// The whole developer toolchain for AWS Lambda functions written in Rust.
#[derive(Debug, Parser)]
#[command(
    name = "cargo-fn",
    bin_name = "cargo fn",
    version,
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a new function crate from a template
    New(new::NewArgs),
    /// Turn the current directory into a function crate from a template
    Init(new::InitArgs),
    /// Print the resolved configuration of each function, with where each value came from
    Config(config::ConfigArgs),
    /// Compile functions for Lambda (x86_64 or arm64) and check the artifacts
    Build(build::BuildArgs),
    /// Package built functions as reproducible zips, layers or images
    Package(package::PackageArgs),
    /// Run the local Lambda emulator, rebuilding and hot-reloading on save
    Watch(watch::WatchArgs),
    /// Invoke a function on the local emulator or in AWS
    Invoke(invoke::InvokeArgs),
    /// Print function logs from the local emulator or CloudWatch Logs (--remote)
    #[command(disable_version_flag = true)]
    Logs(logs::LogsArgs),
    /// Create or update functions in AWS, publish a version and move an alias
    Deploy(Box<deploy::DeployArgs>),
    /// Move an alias fully to its canary version
    Promote(promote::PromoteArgs),
    /// Put an alias back on the previous published version (or drop its canary)
    Rollback(rollback::RollbackArgs),
    /// Power tuning: measure memory sizes (locally under Lambda's limits, or in AWS) and pick one
    Tune(Box<tune::TuneArgs>),
    /// Durable executions: list, history timeline, stop, complete callbacks (local emulator or AWS)
    Durable(durable::DurableArgs),
}

/// Flags every command understands, defined once.
#[derive(Debug, Args, Clone, Default)]
pub struct GlobalArgs {
    /// Path to Cargo.toml
    #[arg(long, global = true, value_name = "PATH")]
    pub manifest_path: Option<PathBuf>,
    /// Package(s) to work on
    #[arg(short = 'p', long = "package", global = true, value_name = "SPEC")]
    pub package: Vec<String>,
    /// Binary target(s) (functions) to work on
    #[arg(long = "bin", global = true, value_name = "NAME")]
    pub bin: Vec<String>,
    /// Directory for all generated artifacts (like cargo's --target-dir)
    #[arg(long, global = true, value_name = "DIR", env = "CARGO_TARGET_DIR")]
    pub target_dir: Option<PathBuf>,
    /// Pass --locked to cargo
    #[arg(long, global = true)]
    pub locked: bool,
    /// Pass --offline to cargo
    #[arg(long, global = true)]
    pub offline: bool,
    /// Pass --frozen to cargo
    #[arg(long, global = true)]
    pub frozen: bool,
    /// More output (repeat for more)
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// No status output
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// When to use colours
    #[arg(long, global = true, value_enum, default_value_t = ColorArg::Auto)]
    pub color: ColorArg,
    /// Output format for results
    #[arg(long, global = true, value_enum, default_value_t = OutputArg::Human)]
    pub output: OutputArg,
    /// Stage to use: a `stages.<STAGE>` table of the configuration
    /// (default: CARGO_FN_STAGE, then `default-stage`)
    #[arg(long, global = true, value_name = "STAGE")]
    pub stage: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum, Default)]
pub enum ColorArg {
    #[default]
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Copy, ValueEnum, Default)]
pub enum OutputArg {
    #[default]
    Human,
    Json,
}

impl GlobalArgs {
    pub fn ui(&self) -> Ui {
        let color = match self.color {
            ColorArg::Auto => ColorChoice::Auto,
            ColorArg::Always => ColorChoice::Always,
            ColorArg::Never => ColorChoice::Never,
        };
        let output = match self.output {
            OutputArg::Human => OutputFormat::Human,
            OutputArg::Json => OutputFormat::Json,
        };
        Ui::new(self.quiet, self.verbose, color, output)
    }

    pub fn selection(&self) -> Selection {
        Selection {
            manifest_path: self.manifest_path.clone(),
            packages: self.package.clone(),
            bins: self.bin.clone(),
            target_dir: self.target_dir.clone(),
        }
    }

    /// The configuration overrides of commands without [`ConfigFlags`]:
    /// the stage only.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            stage: self.stage.clone(),
            ..Overrides::default()
        }
    }

    /// The cargo flags we pass through untouched.
    pub fn cargo_flags(&self) -> Vec<String> {
        let mut flags = Vec::new();
        if self.locked {
            flags.push("--locked".to_string());
        }
        if self.offline {
            flags.push("--offline".to_string());
        }
        if self.frozen {
            flags.push("--frozen".to_string());
        }
        flags
    }
}

/// Configuration overrides from the command line: the top layer of the
/// configuration model. Shared by every command that resolves configuration.
#[derive(Debug, Args, Clone, Default)]
pub struct ConfigFlags {
    /// Target architecture
    #[arg(long, value_enum, value_name = "ARCH")]
    pub arch: Option<ArchArg>,
    /// Shorthand for --arch arm64
    #[arg(long, conflicts_with_all = ["arch", "x86_64"])]
    pub arm64: bool,
    /// Shorthand for --arch x86_64
    #[arg(long = "x86-64", conflicts_with = "arch")]
    pub x86_64: bool,
    /// Lambda runtime (provided.al2023 or provided.al2)
    #[arg(long, value_name = "RUNTIME")]
    pub runtime: Option<String>,
    /// Memory in MB (128-10240)
    #[arg(long, value_name = "MB")]
    pub memory: Option<i64>,
    /// Timeout in seconds (1-900)
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<i64>,
    /// Environment variable for the function (repeatable)
    #[arg(long = "env-var", value_name = "KEY=VALUE")]
    pub env_var: Vec<String>,
    /// Environment file for the function
    #[arg(long, value_name = "PATH")]
    pub env_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ArchArg {
    #[value(name = "x86_64", alias = "x86-64", alias = "amd64")]
    X86_64,
    #[value(name = "arm64", alias = "aarch64")]
    Arm64,
}

impl ConfigFlags {
    /// The flags as the configuration's top layer, with the stage `global`
    /// selects.
    pub fn overrides(&self, global: &GlobalArgs) -> anyhow::Result<Overrides> {
        let arch = if self.arm64 {
            Some(Arch::Arm64)
        } else if self.x86_64 {
            Some(Arch::X86_64)
        } else {
            self.arch.map(|a| match a {
                ArchArg::X86_64 => Arch::X86_64,
                ArchArg::Arm64 => Arch::Arm64,
            })
        };
        let mut env = Vec::new();
        for pair in &self.env_var {
            let (k, v) = pair.split_once('=').ok_or_else(|| {
                crate::error::UsageError(format!(
                    "--env-var expects KEY=VALUE, got `{pair}` (no `=`)"
                ))
            })?;
            env.push((k.to_string(), v.to_string()));
        }
        Ok(Overrides {
            architecture: arch,
            runtime: self.runtime.clone(),
            memory: self.memory,
            timeout: self.timeout,
            env,
            env_file: self.env_file.clone(),
            stage: global.stage.clone(),
        })
    }
}

/// Parses the process arguments, accepting both `cargo fn <cmd>` (cargo
/// passes `fn` as the first argument) and `cargo-fn <cmd>`.
pub fn parse_from_env() -> Cli {
    Cli::parse_from(normalize_args(std::env::args_os()))
}

/// Drops the `fn` that cargo inserts when run as `cargo fn`.
pub fn normalize_args(
    args: impl IntoIterator<Item = std::ffi::OsString>,
) -> Vec<std::ffi::OsString> {
    let mut args: Vec<_> = args.into_iter().collect();
    if args.get(1).is_some_and(|a| a == "fn") {
        args.remove(1);
    }
    args
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    init_tracing(&cli.global);
    let g = &cli.global;
    if matches!(cli.command, Command::New(_) | Command::Init(_))
        && let Some(stage) = &g.stage
    {
        // A template has no stages yet; a quiet no-op would mislead.
        return Err(crate::error::UsageError(format!(
            "--stage {stage}: `new` and `init` read no configuration; add [package.metadata.fn.stages.{stage}] to the new crate instead"
        ))
        .into());
    }
    match cli.command {
        Command::New(args) => new::run_new(g, args),
        Command::Init(args) => new::run_init(g, args),
        Command::Config(args) => config::run(g, args),
        Command::Build(args) => build::run(g, args),
        Command::Package(args) => package::run(g, args),
        Command::Watch(args) => watch::run(g, args),
        Command::Invoke(args) => invoke::run(g, args),
        Command::Logs(args) => logs::run(g, args),
        Command::Deploy(args) => deploy::run(g, *args),
        Command::Promote(args) => promote::run(g, args),
        Command::Rollback(args) => rollback::run(g, args),
        Command::Tune(args) => tune::run(g, *args),
        Command::Durable(args) => durable::run(g, args),
    }
}

fn init_tracing(g: &GlobalArgs) {
    let default = match (g.quiet, g.verbose) {
        (true, _) => "error",
        // aws-config warns once per provider it tries (IMDS, ...) with the
        // whole response; a missing region or key is reported by cargo-fn
        // in one line instead (aws::sdk::load_config).
        (_, 0) => "warn,aws_config=error",
        (_, 1) => "info",
        (_, 2) => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("CARGO_FN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .try_init();
}
