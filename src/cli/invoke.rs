//! `cargo fn invoke`: arguments -> [`crate::invoke::InvokeOptions`].

use std::io::Write;

use anyhow::{Context, Result};
use clap::Args;

use super::GlobalArgs;
use super::args::{AwsArgs, EmulatorArgs, PayloadArgs, only_function};
use crate::invoke::{InvokeOptions, Target};

#[derive(Debug, Args)]
// The AWS flags only mean something with --remote.
#[command(
    mut_arg("region", |a| a.requires("remote")),
    mut_arg("endpoint_url", |a| a.requires("remote"))
)]
pub struct InvokeArgs {
    /// Function name (default: the only function of the project)
    pub function: Option<String>,
    #[command(flatten)]
    pub payload: PayloadArgs,
    /// List the built-in example events and exit
    #[arg(long)]
    pub list_examples: bool,
    #[command(flatten)]
    pub emulator: EmulatorArgs,
    /// Invoke the deployed function in AWS instead of the local emulator
    #[arg(long)]
    pub remote: bool,
    /// Version or alias to invoke
    #[arg(long, value_name = "QUALIFIER")]
    pub qualifier: Option<String>,
    /// Print the last 4 KB of the invocation's log to stderr
    #[arg(long)]
    pub log: bool,
    /// Queue the invocation (Event) and return at once
    #[arg(long = "async", conflicts_with = "log")]
    pub asynchronous: bool,
    /// Use InvokeWithResponseStream: print each chunk as the function streams it
    #[arg(long, conflicts_with = "asynchronous")]
    pub stream: bool,
    /// Fire the function's local trigger NAME now (schedule, s3, sqs, ...)
    /// in a running `cargo fn watch`; the payload flags give its event or
    /// record, else the trigger's built-in example
    #[arg(long, value_name = "NAME", conflicts_with_all = ["asynchronous", "stream", "qualifier", "log"])]
    pub trigger: Option<String>,
    // How to reach AWS: only with --remote (region and endpoint-url require it above).
    #[command(flatten)]
    pub aws: AwsArgs,
}

pub fn run(global: &GlobalArgs, args: InvokeArgs) -> Result<()> {
    if args.list_examples {
        let mut out = std::io::stdout().lock();
        for e in crate::invoke::EXAMPLES {
            writeln!(out, "{:<24} {}", e.name, e.description)?;
        }
        return Ok(());
    }
    let function = match &args.function {
        Some(f) => f.clone(),
        None => only_function(global, "invoke")?,
    };
    if let Some(trigger) = &args.trigger {
        return fire(&args, &function, trigger);
    }
    let payload = args.payload.read()?.unwrap_or_else(|| b"{}".to_vec());
    let target = if args.remote {
        Target::Remote {
            profile: args.aws.profile.clone(),
            region: args.aws.region.clone(),
            endpoint_url: args.aws.endpoint_url.clone(),
        }
    } else {
        Target::Local {
            endpoint: args.emulator.url(),
        }
    };
    let opts = InvokeOptions {
        function: function.clone(),
        qualifier: args.qualifier.clone(),
        payload,
        target,
        tail_log: args.log,
        asynchronous: args.asynchronous,
    };
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    if args.stream {
        return stream(&rt, &opts);
    }
    let outcome = rt.block_on(crate::invoke::invoke(&opts))?;
    if let Some(log) = &outcome.log {
        eprint!("{log}");
        if !log.ends_with('\n') {
            eprintln!();
        }
    }
    if let Some(arn) = &outcome.durable_execution_arn {
        eprintln!("Durable execution {arn}");
    }
    if opts.asynchronous {
        eprintln!("{}", crate::invoke::queued_message(&opts, &outcome));
    }
    let mut out = std::io::stdout().lock();
    out.write_all(&outcome.payload)?;
    if !outcome.payload.is_empty() {
        writeln!(out)?;
    }
    out.flush()?;
    if let Some(kind) = outcome.function_error {
        return Err(anyhow::anyhow!(
            "function `{function}` failed ({kind} error); its error is on stdout"
        ));
    }
    Ok(())
}

/// `--trigger NAME`: local only; prints what the trigger reports.
fn fire(args: &InvokeArgs, function: &str, trigger: &str) -> Result<()> {
    if args.remote {
        return Err(crate::error::UsageError(
            "--trigger fires a trigger of the local emulator (`cargo fn watch`) and cannot be used \
             with --remote: in AWS a trigger fires from its source (send to the queue, upload to \
             the bucket); to send a trigger's event to the deployed function, use --remote with \
             --data-file or --example"
                .into(),
        )
        .into());
    }
    let payload = args.payload.read()?;
    let endpoint = args.emulator.url();
    let outcome = crate::invoke::fire_trigger(&endpoint, function, trigger, payload.as_deref())?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{outcome}")?;
    out.flush()?;
    if let Some(kind) = outcome.get("functionError").and_then(|e| e.as_str()) {
        return Err(anyhow::anyhow!(
            "function `{function}` failed ({kind} error) on trigger `{trigger}`; its error is on stdout"
        ));
    }
    Ok(())
}

/// `--stream`: chunks go to stdout as they come; the log tail and a
/// mid-stream error come after the stream.
fn stream(rt: &tokio::runtime::Runtime, opts: &InvokeOptions) -> Result<()> {
    let mut stdout = std::io::stdout();
    let outcome = rt.block_on(crate::invoke::invoke_stream(opts, &mut stdout))?;
    if outcome.bytes > 0 {
        writeln!(stdout)?;
    }
    if let Some(log) = &outcome.log {
        eprint!("{log}");
        if !log.ends_with('\n') {
            eprintln!();
        }
    }
    if let Some((code, details)) = outcome.error {
        return Err(anyhow::anyhow!(
            "function `{}` failed mid-stream ({code}): {details}",
            opts.function
        ));
    }
    Ok(())
}
