//! `cargo fn invoke`: arguments -> [`crate::invoke::InvokeOptions`].

use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{ArgGroup, Args};

use super::GlobalArgs;
use crate::error::hinted;
use crate::invoke::{InvokeOptions, Target};

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("payload").args(["data", "data_file", "example"])))]
pub struct InvokeArgs {
    /// Function name (default: the only function of the project)
    pub function: Option<String>,
    /// Payload as JSON text
    #[arg(long, value_name = "JSON")]
    pub data: Option<String>,
    /// Payload from a file (`-` for stdin)
    #[arg(long, value_name = "PATH")]
    pub data_file: Option<PathBuf>,
    /// Payload from the built-in example events (see --list-examples)
    #[arg(long, value_name = "NAME")]
    pub example: Option<String>,
    /// List the built-in example events and exit
    #[arg(long)]
    pub list_examples: bool,
    /// Port of the local emulator (`cargo fn watch`)
    #[arg(long, default_value_t = 9000, value_name = "PORT", conflicts_with_all = ["endpoint", "remote"])]
    pub port: u16,
    /// Endpoint of the local emulator, e.g. http://127.0.0.1:9000
    #[arg(long, value_name = "URL", conflicts_with = "remote")]
    pub endpoint: Option<String>,
    /// Invoke the deployed function in AWS instead of the local emulator
    #[arg(long)]
    pub remote: bool,
    /// Version or alias to invoke
    #[arg(long, value_name = "QUALIFIER")]
    pub qualifier: Option<String>,
    /// AWS profile (with --remote)
    #[arg(long, value_name = "NAME", requires = "remote")]
    pub profile: Option<String>,
    /// AWS region (with --remote)
    #[arg(long, value_name = "REGION", requires = "remote")]
    pub region: Option<String>,
    /// Lambda API endpoint URL (with --remote), e.g. for a test double
    #[arg(long, value_name = "URL", requires = "remote")]
    pub endpoint_url: Option<String>,
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
    let payload = payload(&args)?;
    let target = if args.remote {
        Target::Remote {
            profile: args.profile.clone(),
            region: args.region.clone(),
            endpoint_url: args.endpoint_url.clone(),
        }
    } else {
        Target::Local {
            endpoint: args
                .endpoint
                .clone()
                .unwrap_or_else(|| format!("http://127.0.0.1:{}", args.port)),
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
    let given = args.data.is_some() || args.data_file.is_some() || args.example.is_some();
    let payload = if given { Some(payload(args)?) } else { None };
    let endpoint = args
        .endpoint
        .clone()
        .unwrap_or_else(|| format!("http://127.0.0.1:{}", args.port));
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

fn payload(args: &InvokeArgs) -> Result<Vec<u8>> {
    if let Some(data) = &args.data {
        crate::invoke::check_json(data.as_bytes(), "--data")?;
        return Ok(data.clone().into_bytes());
    }
    if let Some(path) = &args.data_file {
        let bytes = if path.as_os_str() == "-" {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .context("reading the payload from stdin")?;
            buf
        } else {
            std::fs::read(path).map_err(|e| {
                hinted(
                    format!("cannot read --data-file `{}`: {e}", path.display()),
                    "pass a path to a JSON file, or - for stdin",
                )
            })?
        };
        crate::invoke::check_json(&bytes, &format!("--data-file `{}`", path.display()))?;
        return Ok(bytes);
    }
    if let Some(name) = &args.example {
        return Ok(crate::invoke::example(name)?.json.as_bytes().to_vec());
    }
    Ok(b"{}".to_vec())
}

/// The function name when the project has exactly one function (its
/// extensions aside), for commands whose FUNCTION is optional (`command`
/// names the command in the hint).
pub(super) fn only_function(global: &GlobalArgs, command: &str) -> Result<String> {
    let project = crate::project::Project::load(&global.selection())?;
    let configs = crate::config::resolve(&project, &Default::default())?;
    let functions: Vec<_> = configs.iter().filter(|c| !c.extension).collect();
    match functions.as_slice() {
        [one] => Ok(one.name.clone()),
        [] => Err(hinted(
            "no function in this project",
            format!("name it: cargo fn {command} FUNCTION"),
        )),
        many => Err(hinted(
            "this project has several functions; which one?",
            format!(
                "name it: cargo fn {command} FUNCTION (one of {})",
                many.iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}
