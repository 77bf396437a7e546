//! Flag groups several commands share, defined once and `#[command(flatten)]`ed
//! where used: how to reach AWS ([`AwsArgs`]), how to reach the local
//! emulator ([`EmulatorArgs`]) and where a payload comes from
//! ([`PayloadArgs`]); plus [`only_function`], the default FUNCTION.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use super::GlobalArgs;
use crate::aws::sdk::{ConnectOptions, SdkAws, connect};
use crate::config::StageConfig;
use crate::error::{UsageError, hinted};

/// How to reach AWS; shared by deploy, promote, rollback, invoke, logs and
/// tune. A selected stage's `profile` and `region` pins sit between these
/// flags and the environment (AWS_PROFILE, AWS_REGION).
#[derive(Debug, Args, Clone, Default)]
pub struct AwsArgs {
    /// AWS profile (shared config/credentials files); default: the stage's
    /// `profile`, then AWS_PROFILE
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// AWS region; default: the stage's `region`, then AWS_REGION
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// AWS endpoint URL (LocalStack, moto); AWS_ENDPOINT_URL and
    /// AWS_ENDPOINT_URL_LAMBDA are honoured too
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
}

impl AwsArgs {
    /// The connection: `--profile`/`--region`, else the stage's pins, else
    /// the environment. A flag that contradicts a pin is an error naming
    /// both (the pin says which account and region the stage lives in).
    pub fn options(&self, stage: Option<&StageConfig>) -> Result<ConnectOptions> {
        let pinned = |flag: &Option<String>,
                      pin: Option<&String>,
                      name: &str|
         -> Result<Option<String>> {
            match (flag, pin, stage) {
                (Some(f), Some(p), Some(s)) if f != p => Err(UsageError(format!(
                    "--{name} {f} contradicts stage `{}`'s {name} `{p}` (from {}); drop --{name} or select another stage",
                    s.name,
                    s.source(name)
                ))
                .into()),
                (Some(f), _, _) => Ok(Some(f.clone())),
                (None, p, _) => Ok(p.cloned()),
            }
        };
        let stage_profile = stage.and_then(|s| s.profile.as_ref());
        let stage_region = stage.and_then(|s| s.region.as_ref());
        let profile = pinned(&self.profile, stage_profile, "profile")?
            .or_else(|| std::env::var("AWS_PROFILE").ok().filter(|p| !p.is_empty()));
        let region = pinned(&self.region, stage_region, "region")?;
        Ok(ConnectOptions {
            profile,
            region,
            endpoint_url: self.endpoint_url.clone(),
            upload_progress: None,
        })
    }

    pub async fn connect(&self, stage: Option<&StageConfig>) -> Result<SdkAws> {
        connect(&self.options(stage)?).await
    }
}

/// The stage the command line selects (`--stage`, `CARGO_FN_STAGE`,
/// `default-stage`) with its pins, for commands that need only the stage.
/// Outside a project there is no stage, unless one was asked for.
pub fn selected_stage(global: &GlobalArgs) -> Result<Option<StageConfig>> {
    let asked = stage_asked(global);
    match crate::project::Project::load(&global.selection()) {
        Ok(project) => crate::config::selected_stage(&project, &global.overrides()),
        Err(_) if !asked => Ok(None),
        Err(e) => Err(e.context("a stage was selected, so the project that defines it is needed")),
    }
}

/// How to reach a running `cargo fn watch`; shared by invoke and logs (both
/// have a `--remote` these conflict with).
#[derive(Debug, Args, Clone)]
pub struct EmulatorArgs {
    /// Port of the local emulator (`cargo fn watch`)
    #[arg(long, default_value_t = 9000, value_name = "PORT", conflicts_with_all = ["endpoint", "remote"])]
    pub port: u16,
    /// Endpoint of the local emulator, e.g. http://127.0.0.1:9000
    #[arg(long, value_name = "URL", conflicts_with = "remote")]
    pub endpoint: Option<String>,
}

impl EmulatorArgs {
    /// `--endpoint`, else `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.endpoint
            .clone()
            .unwrap_or_else(|| format!("http://127.0.0.1:{}", self.port))
    }
}

/// One JSON payload; shared by invoke and tune. At most one of the three.
#[derive(Debug, Args, Clone, Default)]
#[group(id = "payload", multiple = false)]
pub struct PayloadArgs {
    /// Payload as JSON text
    #[arg(long, value_name = "JSON")]
    pub data: Option<String>,
    /// Payload from a JSON file (`-` for stdin)
    #[arg(long, value_name = "PATH")]
    pub data_file: Option<PathBuf>,
    /// Payload from the built-in example events (`cargo fn invoke --list-examples`)
    #[arg(long, value_name = "NAME")]
    pub example: Option<String>,
}

impl PayloadArgs {
    /// The payload, checked to be JSON; `None` when no flag was given.
    pub fn read(&self) -> Result<Option<Vec<u8>>> {
        if let Some(data) = &self.data {
            crate::invoke::check_json(data.as_bytes(), "--data")?;
            return Ok(Some(data.clone().into_bytes()));
        }
        if let Some(path) = &self.data_file {
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
            return Ok(Some(bytes));
        }
        if let Some(name) = &self.example {
            return Ok(Some(crate::invoke::example(name)?.json.as_bytes().to_vec()));
        }
        Ok(None)
    }
}

/// The function name when the project has exactly one function (its
/// extensions aside), for commands whose FUNCTION is optional (`command`
/// names the command in the hint). Under a stage, its name in that stage.
pub fn only_function(global: &GlobalArgs, command: &str) -> Result<String> {
    let project = crate::project::Project::load(&global.selection())?;
    let configs = crate::config::resolve(&project, &global.overrides())?;
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

/// Whether the command line or the environment names a stage (a
/// `default-stage` needs the project to be known).
fn stage_asked(global: &GlobalArgs) -> bool {
    global.stage.is_some()
        || std::env::var(crate::config::STAGE_ENV_VAR).is_ok_and(|s| !s.is_empty())
}

/// FUNCTION as given, or the only function (see [`only_function`]). Under a
/// stage, a binary's name stands for its function in that stage
/// (`orders` -> `orders-dev`), so the same command line works in every
/// stage; a name some function has is kept as it is.
pub fn function_arg(global: &GlobalArgs, given: Option<&str>, command: &str) -> Result<String> {
    let Some(given) = given else {
        return only_function(global, command);
    };
    Ok(stage_names(global, &[given.to_string()])?.remove(0))
}

/// [`function_arg`] for several names.
pub fn stage_names(global: &GlobalArgs, given: &[String]) -> Result<Vec<String>> {
    let asked = stage_asked(global);
    let configs = crate::project::Project::load(&global.selection())
        .and_then(|p| crate::config::resolve(&p, &global.overrides()));
    let configs = match configs {
        Ok(c) => c,
        // Outside a project (or with a broken one) names are AWS's names,
        // unless a stage was asked for: that needs the configuration.
        Err(_) if !asked => return Ok(given.to_vec()),
        Err(e) => return Err(e),
    };
    Ok(given
        .iter()
        .map(|g| {
            if configs.iter().any(|c| &c.name == g) {
                return g.clone();
            }
            configs
                .iter()
                .find(|c| &c.bin == g && c.stage.is_some())
                .map_or_else(|| g.clone(), |c| c.name.clone())
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::super::{Cli, Command};

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("cargo-fn").chain(args.iter().copied()))
    }

    #[test]
    fn invoke_takes_region_and_endpoint_url_only_with_remote() {
        assert!(parse(&["invoke", "f", "--region", "eu-west-1"]).is_err());
        assert!(parse(&["invoke", "f", "--endpoint-url", "http://127.0.0.1:1"]).is_err());
        let cli = parse(&["invoke", "f", "--remote", "--region", "eu-west-1"]).unwrap();
        let Command::Invoke(args) = cli.command else {
            panic!("not invoke")
        };
        assert_eq!(args.aws.region.as_deref(), Some("eu-west-1"));
    }

    #[test]
    fn payload_flags_exclude_each_other_and_tune_payloads() {
        assert!(parse(&["invoke", "f", "--data", "{}", "--example", "sqs"]).is_err());
        assert!(parse(&["tune", "f", "--data", "{}", "--data-file", "x.json"]).is_err());
        assert!(parse(&["tune", "f", "--example", "sqs", "--payloads", "p.json"]).is_err());
        assert!(parse(&["tune", "f", "--payloads", "p.json"]).is_ok());
    }

    #[test]
    fn every_configuration_command_parses_stage() {
        for cmd in [
            &["config"][..],
            &["build"],
            &["package"],
            &["watch"],
            &["invoke", "f"],
            &["deploy"],
            &["promote", "f"],
            &["rollback", "f"],
            &["logs"],
            &["tune", "f"],
        ] {
            let mut args = cmd.to_vec();
            args.extend(["--stage", "prod"]);
            let cli = parse(&args).unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
            assert_eq!(cli.global.stage.as_deref(), Some("prod"), "{cmd:?}");
        }
    }

    #[test]
    fn a_stage_s_pins_connect_unless_a_flag_contradicts_them() {
        use std::collections::BTreeMap;

        use crate::config::{Source, StageConfig};
        let at = |key: &str| Source::Manifest {
            file: "/p/Cargo.toml".into(),
            key: format!("package.metadata.fn.stages.prod.{key}"),
        };
        let stage = StageConfig {
            name: "prod".into(),
            account: None,
            region: Some("eu-west-1".into()),
            profile: Some("prod-admin".into()),
            confirm: false,
            sources: BTreeMap::from([
                ("region".into(), at("region")),
                ("profile".into(), at("profile")),
            ]),
        };
        let aws = super::AwsArgs::default();
        let o = aws.options(Some(&stage)).unwrap();
        assert_eq!(o.region.as_deref(), Some("eu-west-1"));
        assert_eq!(o.profile.as_deref(), Some("prod-admin"));
        // Repeating the pin is fine; contradicting it is not.
        let same = super::AwsArgs {
            region: Some("eu-west-1".into()),
            ..Default::default()
        };
        assert!(same.options(Some(&stage)).is_ok());
        let other = super::AwsArgs {
            region: Some("us-east-1".into()),
            ..Default::default()
        };
        let err = other.options(Some(&stage)).unwrap_err().to_string();
        assert!(
            err.contains("--region us-east-1 contradicts stage `prod`'s region `eu-west-1`"),
            "{err}"
        );
        assert!(
            err.contains("package.metadata.fn.stages.prod.region"),
            "{err}"
        );
        let other = super::AwsArgs {
            profile: Some("dev".into()),
            ..Default::default()
        };
        assert!(other.options(Some(&stage)).is_err());
        // No stage: the flags as given.
        assert_eq!(other.options(None).unwrap().profile.as_deref(), Some("dev"));
    }

    #[test]
    fn the_emulator_flags_conflict_with_remote() {
        assert!(parse(&["logs", "--remote", "--port", "9001"]).is_err());
        assert!(parse(&["invoke", "f", "--remote", "--endpoint", "http://x"]).is_err());
        let cli = parse(&["logs", "--port", "9001"]).unwrap();
        let Command::Logs(args) = cli.command else {
            panic!("not logs")
        };
        assert_eq!(args.emulator.url(), "http://127.0.0.1:9001");
    }
}
