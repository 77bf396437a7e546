//! The configuration of each function: typed, validated, resolved in layers.
//!
//! Layers, lowest first: built-in defaults < cargo-lambda's
//! `[package.metadata.lambda]` < `[workspace.metadata.fn]` <
//! `[package.metadata.fn]` < `[package.metadata.fn.functions.<bin>]` <
//! `CARGO_FN_*` environment variables < command-line flags.
//!
//! Every value remembers where it came from ([`Source`]) so that errors and
//! `cargo fn config` can name the file and key, variable or flag. Pure: no
//! I/O beyond reading an env file; no network, no cargo invocation.
//!
//! [`resolve`] merges the layers (`layers.rs`) and checks the result
//! (`validate.rs`). Inside, imports run one way: `validate` -> `layers`,
//! `triggers`, `cors`; `triggers` -> `cors`; all -> `value` (the shared
//! readers, which import no sibling).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

use crate::project::Project;

mod cors;
pub mod deployment;
pub mod durable;
mod layers;
pub mod reference;
pub mod triggers;
mod validate;
mod value;

pub use deployment::{Deployment, Strategy};
pub use durable::Durable;

pub use cors::Cors;
pub use layers::KEYS;
pub use triggers::{Trigger, TriggerKind};
pub use validate::{
    ENV_MAX_BYTES, RESERVED_ENV, check_alias_name, check_env_key, check_function_name,
    check_include_path, check_layer_arn, check_repository_name, check_role_arn, check_secret_ref,
    looks_secret,
};
pub use value::InvalidValue;

/// Lambda instruction set architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Default)]
pub enum Arch {
    #[default]
    #[serde(rename = "x86_64")]
    X86_64,
    #[serde(rename = "arm64")]
    Arm64,
}

impl Arch {
    /// The architecture of the machine cargo-fn runs on, when Lambda has it.
    pub fn host() -> Option<Arch> {
        match std::env::consts::ARCH {
            "x86_64" => Some(Arch::X86_64),
            "aarch64" => Some(Arch::Arm64),
            _ => None,
        }
    }

    /// The name Lambda uses (`x86_64`, `arm64`).
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "arm64",
        }
    }

    /// The Rust target triple for a glibc build.
    pub fn gnu_triple(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-unknown-linux-gnu",
            Arch::Arm64 => "aarch64-unknown-linux-gnu",
        }
    }

    /// The Rust target triple for a static musl build.
    pub fn musl_triple(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-unknown-linux-musl",
            Arch::Arm64 => "aarch64-unknown-linux-musl",
        }
    }

    /// The OCI platform architecture (`amd64`, `arm64`).
    pub fn oci_arch(self) -> &'static str {
        match self {
            Arch::X86_64 => "amd64",
            Arch::Arm64 => "arm64",
        }
    }

    pub fn parse(s: &str) -> Option<Arch> {
        match s {
            "x86_64" | "x86-64" | "amd64" => Some(Arch::X86_64),
            "arm64" | "aarch64" => Some(Arch::Arm64),
            _ => None,
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The Lambda OS-only runtimes a Rust binary runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Default)]
pub enum Runtime {
    #[default]
    #[serde(rename = "provided.al2023")]
    ProvidedAl2023,
    #[serde(rename = "provided.al2")]
    ProvidedAl2,
}

impl Runtime {
    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::ProvidedAl2023 => "provided.al2023",
            Runtime::ProvidedAl2 => "provided.al2",
        }
    }

    /// The glibc version (major, minor) of the runtime's operating system:
    /// Amazon Linux 2023 ships glibc 2.34, Amazon Linux 2 ships glibc 2.26.
    /// Source: the distributions' own glibc packages, which never move to a
    /// new upstream version within a release (AL2023: `glibc-2.34-*.amzn2023`,
    /// AL2: `glibc-2.26-*.amzn2`, as listed in the Amazon Linux package
    /// repositories and the `public.ecr.aws/lambda/provided:al2023` / `:al2`
    /// images, whose `ldd --version` prints 2.34 / 2.26).
    pub fn glibc(self) -> (u32, u32) {
        match self {
            Runtime::ProvidedAl2023 => (2, 34),
            Runtime::ProvidedAl2 => (2, 26),
        }
    }

    pub fn parse(s: &str) -> Option<Runtime> {
        match s {
            "provided.al2023" => Some(Runtime::ProvidedAl2023),
            "provided.al2" => Some(Runtime::ProvidedAl2),
            _ => None,
        }
    }
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Overrides from the command line (the top layer).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub architecture: Option<Arch>,
    pub runtime: Option<String>,
    pub memory: Option<i64>,
    pub timeout: Option<i64>,
    pub env: Vec<(String, String)>,
    pub env_file: Option<PathBuf>,
}

/// Where a configuration value came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Source {
    Default,
    /// A key in a Cargo.toml table, e.g. `[package.metadata.fn] memory`.
    Manifest {
        file: PathBuf,
        key: String,
    },
    /// A line of an env file.
    EnvFile {
        file: PathBuf,
        key: String,
    },
    /// A `CARGO_FN_*` environment variable.
    EnvVar {
        name: String,
    },
    /// A command-line flag.
    Flag {
        name: String,
    },
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::Manifest { file, key } => write!(f, "{} `{key}`", file.display()),
            Source::EnvFile { file, key } => write!(f, "env file {} `{key}`", file.display()),
            Source::EnvVar { name } => write!(f, "environment variable {name}"),
            Source::Flag { name } => write!(f, "flag {name}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub enum Tracing {
    Active,
    #[default]
    PassThrough,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub enum LogFormat {
    #[default]
    Text,
    #[serde(rename = "JSON")]
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum UrlAuth {
    #[default]
    None,
    AwsIam,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InvokeMode {
    #[default]
    Buffered,
    ResponseStream,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Vpc {
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct FunctionUrl {
    pub auth: UrlAuth,
    pub invoke_mode: InvokeMode,
    pub cors: Option<Cors>,
}

/// How the function ships when deployed as a container image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageConfig {
    /// `package-type = "image"`: deploy as an image without `--image`.
    pub enabled: bool,
    /// ECR repository (default: the function name, lower-cased).
    pub repository: Option<String>,
    /// Scan images on push in a repository deploy creates (default true).
    pub scan_on_push: bool,
    /// Lifecycle policy: keep the newest N images (none: no policy).
    pub keep: Option<u32>,
}

impl Default for ImageConfig {
    fn default() -> Self {
        ImageConfig {
            enabled: false,
            repository: None,
            scan_on_push: true,
            keep: None,
        }
    }
}

/// The resolved, validated configuration of one function (a binary target).
#[derive(Debug, Clone, Serialize)]
pub struct FunctionConfig {
    /// The Lambda function name.
    pub name: String,
    /// The cargo package and binary target it is built from.
    pub package: String,
    pub bin: String,
    /// True for a Lambda extension (packaged under `extensions/`).
    pub extension: bool,
    pub architecture: Arch,
    pub runtime: Runtime,
    /// MB.
    pub memory: u32,
    /// Seconds.
    pub timeout: u32,
    /// MB of /tmp.
    pub ephemeral_storage: u32,
    /// The function's environment: the env file's entries overlaid by `env`.
    pub env: BTreeMap<String, String>,
    pub env_file: Option<PathBuf>,
    /// Env var name -> Secrets Manager secret name or ARN (never a value).
    pub secrets: BTreeMap<String, String>,
    pub layers: Vec<String>,
    pub role: Option<String>,
    pub tracing: Tracing,
    pub vpc: Option<Vpc>,
    pub reserved_concurrency: Option<u32>,
    /// Alias -> provisioned environments.
    pub provisioned_concurrency: BTreeMap<String, u32>,
    pub log_format: LogFormat,
    /// Application log level (TRACE..FATAL); requires the JSON log format.
    pub log_level: Option<String>,
    /// The CloudWatch log group the function logs to, when not Lambda's
    /// default `/aws/lambda/<name>`.
    pub log_group: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub function_url: Option<FunctionUrl>,
    /// The alias `deploy` moves when none is given.
    pub alias: Option<String>,
    /// Extra files and directories for the package, relative to the package.
    pub include: Vec<PathBuf>,
    /// The event the emulator's HTTP front builds for this function.
    pub event_format: EventFormat,
    /// `package-type` and the `image` table.
    pub image: ImageConfig,
    /// What invokes the function once deployed (`triggers`).
    pub triggers: Vec<Trigger>,
    /// The `deployment` table: strategy, alarms, hooks, error threshold.
    pub deployment: Deployment,
    /// The `durable` table: a Lambda durable function (`DurableConfig`).
    pub durable: Option<Durable>,
    /// Field (or `env.KEY`, `tags.KEY`, ...) -> where its value came from.
    pub sources: BTreeMap<String, Source>,
    /// Things that are allowed but probably a mistake (shown, never fatal).
    #[serde(skip)]
    pub warnings: Vec<String>,
}

/// Event payload the emulator's HTTP front builds for a function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum EventFormat {
    /// Function URL (payload format 2.0).
    #[default]
    FunctionUrl,
    /// API Gateway HTTP API (payload format 2.0).
    HttpApi,
    /// API Gateway REST API (payload format 1.0).
    RestApi,
    /// Application Load Balancer target.
    Alb,
}

impl EventFormat {
    pub fn parse(s: &str) -> Option<EventFormat> {
        match s {
            "function-url" => Some(EventFormat::FunctionUrl),
            "http-api" => Some(EventFormat::HttpApi),
            "rest-api" => Some(EventFormat::RestApi),
            "alb" => Some(EventFormat::Alb),
            _ => None,
        }
    }
}

/// Shown instead of env values that look like credentials.
pub const REDACTED: &str = "<redacted>";

fn shown_env_value(key: &str, value: &str) -> String {
    if validate::looks_secret(key) {
        REDACTED.to_string()
    } else {
        value.to_string()
    }
}

/// `(key, value, source)` rows for display, one per field or map entry,
/// with credential-looking env values redacted.
pub fn display_rows(f: &FunctionConfig) -> Vec<(String, String, Source)> {
    let src = |k: &str| row_source(f, k);
    let mut rows = vec![
        ("name".to_string(), f.name.clone(), src("name")),
        (
            "architecture".into(),
            f.architecture.to_string(),
            src("architecture"),
        ),
        ("runtime".into(), f.runtime.to_string(), src("runtime")),
        ("memory".into(), format!("{} MB", f.memory), src("memory")),
        ("timeout".into(), format!("{} s", f.timeout), src("timeout")),
        (
            "ephemeral-storage".into(),
            format!("{} MB", f.ephemeral_storage),
            src("ephemeral-storage"),
        ),
        (
            "env-file".into(),
            opt(f.env_file.as_ref().map(|p| p.display().to_string())),
            src("env-file"),
        ),
    ];
    for (k, v) in &f.env {
        rows.push((
            format!("env.{k}"),
            shown_env_value(k, v),
            src(&format!("env.{k}")),
        ));
    }
    for (k, v) in &f.secrets {
        rows.push((
            format!("secrets.{k}"),
            format!("secret name {v}"),
            src(&format!("secrets.{k}")),
        ));
    }
    rows.push(("layers".into(), list(&f.layers), src("layers")));
    rows.push(("role".into(), opt(f.role.clone()), src("role")));
    rows.push(("tracing".into(), format!("{:?}", f.tracing), src("tracing")));
    rows.push((
        "vpc".into(),
        opt(f.vpc.as_ref().map(|v| {
            format!(
                "subnets {} / security groups {}",
                list(&v.subnets),
                list(&v.security_groups)
            )
        })),
        src("vpc"),
    ));
    rows.push((
        "reserved-concurrency".into(),
        opt(f.reserved_concurrency.map(|n| n.to_string())),
        src("reserved-concurrency"),
    ));
    for (alias, n) in &f.provisioned_concurrency {
        rows.push((
            format!("provisioned-concurrency.{alias}"),
            n.to_string(),
            src(&format!("provisioned-concurrency.{alias}")),
        ));
    }
    rows.push((
        "log-format".into(),
        match f.log_format {
            LogFormat::Text => "Text".into(),
            LogFormat::Json => "JSON".into(),
        },
        src("log-format"),
    ));
    rows.push((
        "log-level".into(),
        opt(f.log_level.clone()),
        src("log-level"),
    ));
    rows.push((
        "log-group".into(),
        opt(f.log_group.clone()),
        src("log-group"),
    ));
    for (k, v) in &f.tags {
        rows.push((format!("tags.{k}"), v.clone(), src(&format!("tags.{k}"))));
    }
    serving_rows(f, &mut rows);
    rows
}

/// Where a row's value came from (built-in default when no layer set it).
fn row_source(f: &FunctionConfig, key: &str) -> Source {
    f.sources.get(key).cloned().unwrap_or(Source::Default)
}

fn opt(o: Option<String>) -> String {
    o.unwrap_or_else(|| "-".to_string())
}

/// The rows of how the function is reached, what ships, its triggers and
/// its deployment.
fn serving_rows(f: &FunctionConfig, rows: &mut Vec<(String, String, Source)>) {
    let src = |k: &str| row_source(f, k);
    rows.push((
        "function-url".into(),
        opt(f.function_url.as_ref().map(|u| {
            format!(
                "auth {}, {}{}",
                serde_json::to_value(u.auth)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default(),
                serde_json::to_value(u.invoke_mode)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default(),
                if u.cors.is_some() { ", CORS" } else { "" }
            )
        })),
        src("function-url"),
    ));
    rows.push(("alias".into(), opt(f.alias.clone()), src("alias")));
    rows.push((
        "include".into(),
        list(
            &f.include
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>(),
        ),
        src("include"),
    ));
    rows.push((
        "extension".into(),
        f.extension.to_string(),
        src("extension"),
    ));
    rows.push((
        "event-format".into(),
        serde_json::to_value(f.event_format)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default(),
        src("event-format"),
    ));
    rows.push((
        "package-type".into(),
        if f.image.enabled { "image" } else { "zip" }.into(),
        src("package-type"),
    ));
    rows.push((
        "image".into(),
        format!(
            "repository {}, scan on push {}, keep {}",
            f.image
                .repository
                .clone()
                .unwrap_or_else(|| "(function name)".into()),
            f.image.scan_on_push,
            opt(f.image.keep.map(|k| k.to_string()))
        ),
        src("image"),
    ));
    for t in &f.triggers {
        rows.push((
            format!("triggers.{}", t.name),
            triggers::summary(t),
            src("triggers"),
        ));
    }
    let d = &f.deployment;
    rows.push((
        "deployment".into(),
        format!(
            "strategy {}, alarms {}, pre-traffic {}, post-traffic {}, error-threshold {}%",
            opt(d.strategy.map(|s| s.name())),
            list(&d.alarms),
            opt(d.pre_traffic.clone()),
            opt(d.post_traffic.clone()),
            d.error_threshold
        ),
        src("deployment"),
    ));
    rows.push((
        "durable".into(),
        opt(f.durable.map(|d| {
            format!(
                "execution timeout {} s, retention {} days",
                d.execution_timeout, d.retention_days
            )
        })),
        src("durable"),
    ));
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "-".to_string()
    } else {
        items.join(", ")
    }
}

/// The configuration as JSON for `--output json`, credential-looking env
/// values redacted.
pub fn redacted_json(f: &FunctionConfig) -> serde_json::Value {
    let mut v = serde_json::to_value(f).expect("config serialises");
    if let Some(serde_json::Value::Object(env)) = v.get_mut("env") {
        for (k, val) in env.iter_mut() {
            *val = serde_json::Value::String(shown_env_value(k, val.as_str().unwrap_or_default()));
        }
    }
    v
}

/// Resolves and validates every selected function, reading `CARGO_FN_*`
/// from the process environment.
pub fn resolve(project: &Project, overrides: &Overrides) -> anyhow::Result<Vec<FunctionConfig>> {
    let env: BTreeMap<String, String> = std::env::vars()
        .filter(|(k, _)| k.starts_with("CARGO_FN_"))
        .collect();
    resolve_with_env(project, overrides, &env)
}

/// [`resolve`] with the `CARGO_FN_*` variables given explicitly.
pub fn resolve_with_env(
    project: &Project,
    overrides: &Overrides,
    env: &BTreeMap<String, String>,
) -> anyhow::Result<Vec<FunctionConfig>> {
    let mut out: Vec<FunctionConfig> = Vec::new();
    for function in &project.functions {
        let merged = layers::merge(project, function, overrides, env)?;
        let config = validate::build(function, merged)?;
        if let Some(other) = out.iter().find(|c| c.name == config.name) {
            anyhow::bail!(
                "two functions resolve to the Lambda name `{}`: binary `{}` of package `{}` and binary `{}` of package `{}`; set a distinct `name` in [package.metadata.fn.functions.<bin>]",
                config.name,
                other.bin,
                other.package,
                config.bin,
                config.package
            );
        }
        out.push(config);
    }
    Ok(out)
}

/// The log group Lambda writes a function's logs to unless told otherwise.
pub fn default_log_group(function: &str) -> String {
    format!("/aws/lambda/{function}")
}

#[cfg(test)]
mod tests;

/// A CloudWatch log group name: 1-512 characters of `A-Za-z0-9_-./#`.
impl FunctionConfig {
    /// The configured log group when it is not Lambda's default.
    pub fn custom_log_group(&self) -> Option<&str> {
        self.log_group
            .as_deref()
            .filter(|g| *g != default_log_group(&self.name))
    }

    /// The log group the function writes to.
    pub fn log_group_name(&self) -> String {
        self.log_group
            .clone()
            .unwrap_or_else(|| default_log_group(&self.name))
    }
}

pub fn check_log_group(name: &str) -> std::result::Result<(), String> {
    let ok = |c: char| c.is_ascii_alphanumeric() || "_-./#".contains(c);
    if name.is_empty() || name.len() > 512 || !name.chars().all(ok) {
        return Err("1-512 characters of letters, digits and _ - . / #".into());
    }
    Ok(())
}
