//! `cargo fn watch`: arguments -> [`crate::watch::WatchOptions`].

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;

use super::{ConfigFlags, GlobalArgs};
use crate::config::EventFormat;
use crate::emulator::{EmulatorOptions, stderr_sink};
use crate::error::UsageError;
use crate::local::durable::clock::ClockMode;
use crate::package::image::ImageOptions;
use crate::watch::{Serve, WatchOptions};

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Port of the Invoke API
    #[arg(long, default_value_t = 9000, value_name = "PORT")]
    pub port: u16,
    /// Address to listen on (a loopback address also gets the other one, ::1 or
    /// 127.0.0.1, so `localhost` works); binding beyond loopback exposes your
    /// functions to the network
    #[arg(long, default_value = "127.0.0.1", value_name = "ADDR")]
    pub bind: IpAddr,
    /// Most invocations running at once across functions (429 beyond)
    #[arg(long, default_value_t = 8, value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub concurrency: u16,
    /// Build with the release profile
    #[arg(long, conflicts_with = "profile")]
    pub release: bool,
    /// Build with this cargo profile
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// AWS region the functions see (AWS_REGION)
    #[arg(long, default_value = "us-east-1", value_name = "REGION")]
    pub region: String,
    /// Give the functions your AWS credentials (from the default chain or --profile)
    #[arg(long)]
    pub aws_credentials: bool,
    /// AWS profile for --aws-credentials
    #[arg(
        long = "aws-profile",
        value_name = "NAME",
        requires = "aws_credentials"
    )]
    pub aws_profile: Option<String>,
    /// Quiet period after a file change before rebuilding, in milliseconds
    #[arg(long, default_value_t = 25, value_name = "MS")]
    pub debounce_ms: u64,
    /// Event the HTTP front (/lambda-url/<function>/...) builds for every function,
    /// over each function's `event-format` setting
    #[arg(long, value_name = "FORMAT", value_parser = ["function-url", "http-api", "rest-api", "alb"])]
    pub event_format: Option<String>,
    /// Serve what ships: the `cargo fn build` bootstrap for the configured
    /// architecture (release profile unless --profile), under qemu-user
    /// when that is not this machine's
    #[arg(long, conflicts_with = "image")]
    pub artifact: bool,
    /// Serve the container image `cargo fn package --image` makes, unpacked,
    /// with its entrypoint and environment (under qemu-user for another architecture)
    #[arg(long)]
    pub image: bool,
    /// With --artifact or --image: static musl binaries
    #[arg(long)]
    pub musl: bool,
    /// With --image: build on this base image (pulled from its registry)
    #[arg(long, value_name = "REF", requires = "image")]
    pub base_image: Option<String>,
    /// Directory of external extension executables started beside every function
    /// (like /opt/extensions); `extension = true` binaries of the workspace always are
    #[arg(long, value_name = "DIR", env = "CARGO_FN_EXTENSIONS_DIR")]
    pub extensions_dir: Option<std::path::PathBuf>,
    /// Function that serves every HTTP path outside /lambda-url/<function>/
    /// (by default only a lone function does)
    #[arg(long, value_name = "NAME")]
    pub default_function: Option<String>,
    /// Run functions without Lambda's memory and CPU limits (cgroups)
    #[arg(long)]
    pub no_limits: bool,
    /// Clock of durable executions: `real`, or `fast` (a wait or retry delay
    /// ends as soon as the execution has nothing else to do)
    #[arg(long, value_name = "CLOCK", default_value = "real", value_parser = parse_clock)]
    pub durable_clock: ClockMode,
    #[command(flatten)]
    pub config: ConfigFlags,
}

pub fn run(global: &GlobalArgs, args: WatchArgs) -> Result<()> {
    let ui = global.ui();
    let ships = args.artifact || args.image;
    if args.musl && !ships {
        return Err(UsageError("--musl needs --artifact or --image".into()).into());
    }
    let profile = match (&args.profile, args.release || ships) {
        (Some(p), _) => p.clone(),
        (None, true) => "release".into(),
        (None, false) => "dev".into(),
    };
    let serve = if args.image {
        Serve::Image {
            musl: args.musl,
            image: ImageOptions {
                base: args.base_image.clone(),
                ..Default::default()
            },
        }
    } else if args.artifact {
        Serve::Artifact { musl: args.musl }
    } else {
        Serve::HostBuild
    };
    if let Some(dir) = &args.extensions_dir
        && !dir.is_dir()
    {
        return Err(crate::error::hinted(
            format!("--extensions-dir {}: not a directory", dir.display()),
            "give a directory of extension executables (like a layer's extensions/ folder)",
        ));
    }
    let bind = SocketAddr::new(args.bind, args.port);
    if !args.bind.is_loopback() {
        ui.warn(format!(
            "listening on {bind}: anyone who can reach this address can invoke your functions"
        ));
    }
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async {
        let extra_env = if args.aws_credentials {
            crate::aws::sdk::developer_credentials(args.aws_profile.as_deref()).await?
        } else {
            BTreeMap::new()
        };
        let opts = WatchOptions {
            selection: global.selection(),
            overrides: args.config.overrides()?,
            profile,
            cargo_flags: global.cargo_flags(),
            emulator: EmulatorOptions {
                bind,
                concurrency: usize::from(args.concurrency),
                region: args.region.clone(),
                log_sink: stderr_sink(),
                limits: !args.no_limits,
                routes: None,
                front: None,
            },
            extra_env,
            debounce: Duration::from_millis(args.debounce_ms),
            event_format: args.event_format.as_deref().and_then(EventFormat::parse),
            serve,
            extensions_dir: args.extensions_dir.clone(),
            default_function: args.default_function.clone(),
            durable_clock: args.durable_clock,
        };
        crate::watch::run(opts, ui, None, stop_signal()?).await
    })
}

fn parse_clock(s: &str) -> std::result::Result<ClockMode, String> {
    ClockMode::parse(s).ok_or_else(|| format!("`{s}`: real or fast"))
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM (`kill`, IDEs, systemd,
/// container runtimes): both stop watch gracefully. The handlers are
/// installed now, so a signal during the first build is not lost.
fn stop_signal() -> Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("handling SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("handling SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}
