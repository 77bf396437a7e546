//! Turns the merged layers into a typed [`FunctionConfig`], checking every
//! value against the Lambda rules (../shared/contract/lambda.md, section 5)
//! before any work starts. Each error names the value, where it came from
//! and what is allowed.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde_json::Value;

use super::cors;
use super::layers::Merged;
use super::value::{InvalidValue, Result, is_account, is_name, is_partition, is_region, type_name};
use super::{
    Arch, EventFormat, FunctionConfig, FunctionUrl, ImageConfig, InvokeMode, LogFormat, Runtime,
    Source, Tracing, UrlAuth, Vpc,
};
use crate::project::FunctionTarget;

/// Environment variables Lambda sets itself; a function may not set them.
pub const RESERVED_ENV: &[&str] = &[
    "_HANDLER",
    "_X_AMZN_TRACE_ID",
    "AWS_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_DEFAULT_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_LAMBDA_RUNTIME_API",
    "AWS_REGION",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "LAMBDA_RUNTIME_DIR",
    "LAMBDA_TASK_ROOT",
];

/// Set by Lambda from the logging configuration: use `log-format` and
/// `log-level` instead of setting them by hand.
const LOGGING_ENV: &[&str] = &["AWS_LAMBDA_LOG_FORMAT", "AWS_LAMBDA_LOG_LEVEL"];

/// Total size of all environment variables (keys and values).
pub const ENV_MAX_BYTES: usize = 4096;

pub const LOG_LEVELS: &[&str] = &["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];

/// Env var keys whose values look like credentials: shown redacted, and a
/// warning suggests Secrets Manager.
pub fn looks_secret(key: &str) -> bool {
    let k = key.to_ascii_uppercase();
    [
        "SECRET",
        "PASSWORD",
        "PASSWD",
        "TOKEN",
        "API_KEY",
        "APIKEY",
        "PRIVATE_KEY",
        "CREDENTIAL",
    ]
    .iter()
    .any(|w| k.contains(w))
}

struct Fields {
    merged: Merged,
}

impl Fields {
    fn get(&self, key: &str) -> Option<&(Value, Source)> {
        self.merged.values.get(key)
    }

    fn bad(
        key: &str,
        value: &Value,
        source: &Source,
        allowed: impl Into<String>,
    ) -> Box<InvalidValue> {
        Box::new(InvalidValue {
            key: key.to_string(),
            value: value.to_string(),
            origin: source.clone(),
            allowed: allowed.into(),
        })
    }

    fn string(&self, key: &str) -> Result<Option<(String, Source)>> {
        match self.get(key) {
            None => Ok(None),
            Some((Value::String(s), src)) => Ok(Some((s.clone(), src.clone()))),
            Some((v, src)) => Err(Self::bad(
                key,
                v,
                src,
                format!("expected a string, found {}", type_name(v)),
            )),
        }
    }

    fn integer(&self, key: &str, min: i64, max: i64, unit: &str) -> Result<Option<i64>> {
        match self.get(key) {
            None => Ok(None),
            Some((v, src)) => match v.as_i64() {
                Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
                Some(_) => Err(Self::bad(key, v, src, format!("allowed {min}-{max}{unit}"))),
                None => Err(Self::bad(
                    key,
                    v,
                    src,
                    format!("expected a whole number {min}-{max}{unit}"),
                )),
            },
        }
    }

    fn strings(&self, key: &str) -> Result<Option<(Vec<String>, Source)>> {
        match self.get(key) {
            None => Ok(None),
            Some((v, src)) => Ok(Some((string_list(key, v, src)?, src.clone()))),
        }
    }

    fn map(&self, key: &str) -> Vec<(String, Value, Source)> {
        self.merged
            .maps
            .get(key)
            .map(|m| {
                m.iter()
                    .map(|(k, (v, s))| (k.clone(), v.clone(), s.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn string_list(key: &str, v: &Value, src: &Source) -> Result<Vec<String>> {
    let Value::Array(items) = v else {
        return Err(Fields::bad(
            key,
            v,
            src,
            format!("expected a list of strings, found {}", type_name(v)),
        ));
    };
    items
        .iter()
        .map(|i| match i {
            Value::String(s) => Ok(s.clone()),
            other => Err(Fields::bad(key, other, src, "expected a list of strings")),
        })
        .collect()
}

/// Lambda function names: `[a-zA-Z0-9-_]`, 1-64 characters.
pub fn check_function_name(name: &str) -> std::result::Result<(), String> {
    if is_name(name, 64) {
        Ok(())
    } else {
        Err("1-64 characters from a-z, A-Z, 0-9, `-` and `_`".to_string())
    }
}

/// Alias names: 1-128 of `[a-zA-Z0-9-_]`, and not all digits (those are versions).
pub fn check_alias_name(name: &str) -> std::result::Result<(), String> {
    if !is_name(name, 128) {
        return Err("1-128 characters from a-z, A-Z, 0-9, `-` and `_`".to_string());
    }
    if name.chars().all(|c| c.is_ascii_digit()) {
        return Err("an alias cannot be all digits (that names a version)".to_string());
    }
    Ok(())
}

/// Environment variable keys: a letter, then letters, digits or `_`; 2+ chars.
pub fn check_env_key(key: &str) -> std::result::Result<(), String> {
    let mut chars = key.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    let rest_ok = key.len() >= 2 && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !(first_ok && rest_ok) {
        return Err(
            "a key starts with a letter, then letters, digits or `_`, at least 2 characters"
                .to_string(),
        );
    }
    if RESERVED_ENV.contains(&key) {
        return Err(format!(
            "`{key}` is reserved: Lambda sets it itself (reserved: {})",
            RESERVED_ENV.join(", ")
        ));
    }
    if LOGGING_ENV.contains(&key) {
        return Err(format!(
            "`{key}` is set by Lambda from the logging configuration: use the `log-format` / `log-level` keys"
        ));
    }
    Ok(())
}

/// `arn:<partition>:lambda:<region>:<account>:layer:<name>:<version>`.
pub fn check_layer_arn(arn: &str) -> std::result::Result<(), String> {
    let parts: Vec<&str> = arn.split(':').collect();
    let ok = parts.len() == 8
        && parts[0] == "arn"
        && is_partition(parts[1])
        && parts[2] == "lambda"
        && is_region(parts[3])
        && is_account(parts[4])
        && parts[5] == "layer"
        && is_name(parts[6], 140)
        && !parts[7].is_empty()
        && parts[7].chars().all(|c| c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err("a layer version ARN: arn:aws:lambda:<region>:<12-digit account>:layer:<name>:<version>".into())
    }
}

/// `arn:<partition>:iam::<account>:role/<path/name>`.
pub fn check_role_arn(arn: &str) -> std::result::Result<(), String> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let ok = parts.len() == 6
        && parts[0] == "arn"
        && is_partition(parts[1])
        && parts[2] == "iam"
        && parts[3].is_empty()
        && is_account(parts[4])
        && parts[5].strip_prefix("role/").is_some_and(|n| {
            !n.is_empty()
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+=,.@_-/".contains(c))
        });
    if ok {
        Ok(())
    } else {
        Err("an IAM role ARN: arn:aws:iam::<12-digit account>:role/<name>".into())
    }
}

/// A Secrets Manager secret name (1-512 of `A-Za-z0-9/_+=.@-`) or ARN.
pub fn check_secret_ref(s: &str) -> std::result::Result<(), String> {
    if let Some(rest) = s.strip_prefix("arn:") {
        let parts: Vec<&str> = rest.splitn(6, ':').collect();
        let ok = parts.len() == 6
            && is_partition(parts[0])
            && parts[1] == "secretsmanager"
            && is_region(parts[2])
            && is_account(parts[3])
            && parts[4] == "secret"
            && !parts[5].is_empty();
        return if ok {
            Ok(())
        } else {
            Err("a secret ARN: arn:aws:secretsmanager:<region>:<account>:secret:<name>".into())
        };
    }
    let ok = !s.is_empty()
        && s.len() <= 512
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/_+=.@-".contains(c));
    if ok {
        Ok(())
    } else {
        Err("a secret name (1-512 of A-Z a-z 0-9 / _ + = . @ -) or a secret ARN — the name, never the value".into())
    }
}

/// A path to package: relative, and never leaving the package directory.
pub fn check_include_path(p: &str) -> std::result::Result<(), String> {
    let path = Path::new(p);
    if p.is_empty() || path.is_absolute() {
        return Err("a relative path inside the package directory".into());
    }
    if path
        .components()
        .any(|c| matches!(c, Component::ParentDir | Component::Prefix(_)))
    {
        return Err("a path inside the package directory (no `..`)".into());
    }
    Ok(())
}

fn one_of<T: Copy>(key: &str, v: &Value, src: &Source, choices: &[(&str, T)]) -> Result<T> {
    let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
    let allowed = format!("one of {}", names.join(", "));
    match v {
        Value::String(s) => choices
            .iter()
            .find(|(n, _)| n == s)
            .map(|(_, t)| *t)
            .ok_or_else(|| Fields::bad(key, v, src, allowed)),
        _ => Err(Fields::bad(key, v, src, allowed)),
    }
}

fn with_rule(
    key: &str,
    v: &Value,
    src: &Source,
    rule: std::result::Result<(), String>,
) -> Result<()> {
    rule.map_err(|allowed| Fields::bad(key, v, src, allowed))
}

/// Builds and validates one function's configuration, key group by key
/// group; the groups only meet in the result.
pub(super) fn build(function: &FunctionTarget, merged: Merged) -> anyhow::Result<FunctionConfig> {
    let f = Fields { merged };
    let mut sources: BTreeMap<String, Source> = BTreeMap::new();
    let mut warnings = Vec::new();

    let name = name(&f, function)?;
    let (architecture, runtime) = platform(&f)?;
    let (memory, timeout, ephemeral_storage) = sizes(&f)?;
    let Environment {
        env,
        env_file,
        secrets,
    } = environment(&f, &mut sources, &mut warnings)?;
    let (layers, role, vpc) = access(&f)?;
    let (reserved_concurrency, provisioned_concurrency) = concurrency(&f, &mut sources)?;
    let (tracing, log_format, log_level) = observability(&f)?;
    let log_group = log_group(&f)?;
    let tags = tags(&f, &mut sources)?;
    let (function_url, alias, event_format) = serving(&f)?;
    let (include, extension, image) = packaging(&f)?;
    let triggers = match f.get("triggers") {
        None => Vec::new(),
        Some((v, src)) => super::triggers::build(v, src)?,
    };
    let deployment = match f.get("deployment") {
        None => super::Deployment::default(),
        Some((v, src)) => super::deployment::parse(v, src)?,
    };
    let durable = match f.get("durable") {
        None => None,
        Some((v, src)) => super::durable::parse(v, src)?,
    };
    record_sources(&f, &mut sources);

    Ok(FunctionConfig {
        name,
        package: function.package.clone(),
        bin: function.bin.clone(),
        extension,
        architecture,
        runtime,
        memory,
        timeout,
        ephemeral_storage,
        env,
        env_file,
        secrets,
        layers,
        role,
        tracing,
        vpc,
        reserved_concurrency,
        provisioned_concurrency,
        log_format,
        log_level,
        log_group,
        tags,
        function_url,
        alias,
        include,
        event_format,
        image,
        triggers,
        deployment,
        durable,
        sources,
        warnings,
    })
}

/// `name`, defaulting to the binary's name (checked too: cargo allows
/// characters Lambda does not).
fn name(f: &Fields, function: &FunctionTarget) -> anyhow::Result<String> {
    let name = match f.string("name")? {
        Some((n, src)) => {
            with_rule(
                "name",
                &Value::String(n.clone()),
                &src,
                check_function_name(&n),
            )?;
            n
        }
        None => {
            // The default comes from the binary name, which cargo allows to
            // hold characters Lambda does not.
            check_function_name(&function.bin).map_err(|allowed| {
                anyhow::anyhow!(
                    "binary `{}` of package `{}` is not a valid Lambda function name ({allowed}); set `name` in [package.metadata.fn.functions.{}] of {}",
                    function.bin,
                    function.package,
                    function.bin,
                    function.manifest_path.display()
                )
            })?;
            function.bin.clone()
        }
    };
    Ok(name)
}

/// `architecture` and `runtime`.
fn platform(f: &Fields) -> Result<(Arch, Runtime)> {
    let architecture = match f.get("architecture") {
        None => Arch::default(),
        Some((v, src)) => one_of(
            "architecture",
            v,
            src,
            &[("x86_64", Arch::X86_64), ("arm64", Arch::Arm64)],
        )?,
    };

    let runtime = match f.get("runtime") {
        None => Runtime::default(),
        Some((v, src)) => one_of(
            "runtime",
            v,
            src,
            &[
                ("provided.al2023", Runtime::ProvidedAl2023),
                ("provided.al2", Runtime::ProvidedAl2),
            ],
        )?,
    };
    Ok((architecture, runtime))
}

/// `memory`, `timeout`, `ephemeral-storage`.
fn sizes(f: &Fields) -> Result<(u32, u32, u32)> {
    let memory = f.integer("memory", 128, 10240, " MB")?.unwrap_or(128) as u32;
    let timeout = f.integer("timeout", 1, 900, " seconds")?.unwrap_or(3) as u32;
    let ephemeral_storage = f
        .integer("ephemeral-storage", 512, 10240, " MB")?
        .unwrap_or(512) as u32;
    Ok((memory, timeout, ephemeral_storage))
}

/// What the function's environment holds.
struct Environment {
    env: BTreeMap<String, String>,
    env_file: Option<PathBuf>,
    secrets: BTreeMap<String, String>,
}

/// `env-file`, `env` and `secrets`, and Lambda's 4 KB limit on all of them.
fn environment(
    f: &Fields,
    sources: &mut BTreeMap<String, Source>,
    warnings: &mut Vec<String>,
) -> anyhow::Result<Environment> {
    // The env file sits below the `env` table: explicit entries win.
    let mut env = BTreeMap::new();
    let env_file = match f.string("env-file")? {
        None => None,
        Some((path, src)) => {
            let base = match &src {
                Source::Manifest { file, .. } => file.parent().map(Path::to_path_buf),
                _ => None,
            };
            let full = match base {
                Some(b) => b.join(&path),
                None => PathBuf::from(&path),
            };
            let entries = dotenvy::from_path_iter(&full).map_err(|e| {
                anyhow::anyhow!("cannot read env file {} (from {src}): {e}", full.display())
            })?;
            for entry in entries {
                let (k, v) = entry.map_err(|e| {
                    anyhow::anyhow!("env file {} (from {src}) is malformed: {e}", full.display())
                })?;
                sources.insert(
                    format!("env.{k}"),
                    Source::EnvFile {
                        file: full.clone(),
                        key: k.clone(),
                    },
                );
                env.insert(k, v);
            }
            Some(full)
        }
    };
    for (k, v, src) in f.map("env") {
        let Value::String(s) = &v else {
            return Err(Fields::bad(
                &format!("env.{k}"),
                &v,
                &src,
                format!(
                    "expected a string value, found {} (quote it)",
                    type_name(&v)
                ),
            )
            .into());
        };
        env.insert(k.clone(), s.clone());
        sources.insert(format!("env.{k}"), src);
    }
    for (k, v) in &env {
        let src = sources
            .get(&format!("env.{k}"))
            .cloned()
            .unwrap_or(Source::Default);
        let val = Value::String(v.clone());
        with_rule(&format!("env.{k}"), &val, &src, check_env_key(k))?;
        if k == "TZ" {
            warnings.push(format!(
                "env.TZ (from {src}): Lambda sets TZ itself (UTC); overriding it may not work"
            ));
        }
        if looks_secret(k) {
            warnings.push(format!(
                "env.{k} (from {src}) looks like a secret: keep the value in Secrets Manager and set `secrets.{k} = \"<secret name>\"` instead"
            ));
        }
    }

    let mut secrets = BTreeMap::new();
    for (k, v, src) in f.map("secrets") {
        let key = format!("secrets.{k}");
        let Value::String(s) = &v else {
            return Err(Fields::bad(&key, &v, &src, "a secret name or ARN (a string)").into());
        };
        with_rule(&key, &v, &src, check_env_key(&k))?;
        with_rule(&key, &v, &src, check_secret_ref(s))?;
        if env.contains_key(&k) {
            return Err(Fields::bad(
                &key,
                &v,
                &src,
                format!(
                    "`{k}` is also set in env; a variable is either a plain value or a secret name"
                ),
            )
            .into());
        }
        secrets.insert(k.clone(), s.clone());
        sources.insert(key, src);
    }

    // The 4 KB limit covers everything the function's environment will hold.
    let env_bytes: usize = env
        .iter()
        .chain(secrets.iter())
        .map(|(k, v)| k.len() + v.len())
        .sum();
    if env_bytes > ENV_MAX_BYTES {
        let (largest, _) = env
            .iter()
            .chain(secrets.iter())
            .max_by_key(|(k, v)| k.len() + v.len())
            .expect("non-empty");
        let src = sources
            .get(&format!("env.{largest}"))
            .or_else(|| sources.get(&format!("secrets.{largest}")))
            .cloned()
            .unwrap_or(Source::Default);
        return Err(InvalidValue {
            key: "env".into(),
            value: format!("{env_bytes} bytes in total (largest: {largest})"),
            origin: src,
            allowed: format!("at most {ENV_MAX_BYTES} bytes of keys and values in total"),
        }
        .into());
    }
    Ok(Environment {
        env,
        env_file,
        secrets,
    })
}

/// `layers`, `role`, `vpc`: what the function may reach.
fn access(f: &Fields) -> Result<(Vec<String>, Option<String>, Option<Vpc>)> {
    let layers = match f.strings("layers")? {
        None => Vec::new(),
        Some((list, src)) => {
            let v = f.get("layers").map(|(v, _)| v.clone()).unwrap_or_default();
            if list.len() > 5 {
                return Err(Fields::bad(
                    "layers",
                    &v,
                    &src,
                    format!("at most 5 layers, found {}", list.len()),
                ));
            }
            for arn in &list {
                with_rule(
                    "layers",
                    &Value::String(arn.clone()),
                    &src,
                    check_layer_arn(arn),
                )?;
            }
            list
        }
    };
    let role = match f.string("role")? {
        None => None,
        Some((arn, src)) => {
            with_rule(
                "role",
                &Value::String(arn.clone()),
                &src,
                check_role_arn(&arn),
            )?;
            Some(arn)
        }
    };
    let vpc = match f.get("vpc") {
        None => None,
        Some((v, src)) => Some(vpc_config(v, src)?),
    };
    Ok((layers, role, vpc))
}

/// `reserved-concurrency` and `provisioned-concurrency` (per alias, within
/// the reservation).
fn concurrency(
    f: &Fields,
    sources: &mut BTreeMap<String, Source>,
) -> Result<(Option<u32>, BTreeMap<String, u32>)> {
    let reserved_concurrency = f
        .integer("reserved-concurrency", 0, 1_000_000, "")?
        .map(|n| n as u32);

    let mut provisioned_concurrency = BTreeMap::new();
    for (alias, v, src) in f.map("provisioned-concurrency") {
        let key = format!("provisioned-concurrency.{alias}");
        with_rule(&key, &v, &src, check_alias_name(&alias))?;
        let n = v.as_i64().filter(|n| *n >= 1 && *n <= 1_000_000);
        let Some(n) = n else {
            return Err(Fields::bad(
                &key,
                &v,
                &src,
                "a whole number of environments, 1 or more",
            ));
        };
        if let Some(reserved) = reserved_concurrency
            && n as u32 > reserved
        {
            return Err(Fields::bad(
                &key,
                &v,
                &src,
                format!(
                    "at most the reserved concurrency ({reserved}): provisioned environments count toward it"
                ),
            ));
        }
        provisioned_concurrency.insert(alias, n as u32);
        sources.insert(key, src);
    }
    Ok((reserved_concurrency, provisioned_concurrency))
}

/// `tracing`, `log-format`, `log-level`.
fn observability(f: &Fields) -> Result<(Tracing, LogFormat, Option<String>)> {
    let tracing = match f.get("tracing") {
        None => Tracing::default(),
        Some((v, src)) => one_of(
            "tracing",
            v,
            src,
            &[
                ("Active", Tracing::Active),
                ("PassThrough", Tracing::PassThrough),
            ],
        )?,
    };
    let log_format = match f.get("log-format") {
        None => LogFormat::default(),
        Some((v, src)) => one_of(
            "log-format",
            v,
            src,
            &[("Text", LogFormat::Text), ("JSON", LogFormat::Json)],
        )?,
    };

    let log_level = match f.string("log-level")? {
        None => None,
        Some((level, src)) => {
            let v = Value::String(level.clone());
            if !LOG_LEVELS.contains(&level.as_str()) {
                return Err(Fields::bad(
                    "log-level",
                    &v,
                    &src,
                    format!("one of {}", LOG_LEVELS.join(", ")),
                ));
            }
            if log_format != LogFormat::Json {
                return Err(Fields::bad(
                    "log-level",
                    &v,
                    &src,
                    "a log level needs `log-format = \"JSON\"` (Lambda filters levels only for JSON logs)",
                ));
            }
            Some(level)
        }
    };
    Ok((tracing, log_format, log_level))
}

/// `log-group`: a CloudWatch Logs group name.
fn log_group(f: &Fields) -> Result<Option<String>> {
    Ok(match f.string("log-group")? {
        Some((g, src)) => Some(
            super::check_log_group(&g)
                .map(|()| g.clone())
                .map_err(|rule| Fields::bad("log-group", &Value::String(g), &src, rule))?,
        ),
        None => None,
    })
}

/// `tags`: at most 50, keys 1-128 characters not starting with `aws:`.
fn tags(f: &Fields, sources: &mut BTreeMap<String, Source>) -> Result<BTreeMap<String, String>> {
    let mut tags = BTreeMap::new();
    let tag_entries = f.map("tags");
    for (k, v, src) in tag_entries.iter().cloned() {
        let key = format!("tags.{k}");
        let Value::String(s) = &v else {
            return Err(Fields::bad(&key, &v, &src, "a string value"));
        };
        if k.is_empty() || k.len() > 128 || k.starts_with("aws:") {
            return Err(Fields::bad(
                &key,
                &v,
                &src,
                "tag keys are 1-128 characters and may not start with `aws:`",
            ));
        }
        if s.len() > 256 {
            return Err(Fields::bad(
                &key,
                &v,
                &src,
                "tag values are at most 256 characters",
            ));
        }
        tags.insert(k, s.clone());
        sources.insert(key, src);
    }
    if tags.len() > 50 {
        let src = tag_entries
            .last()
            .map(|(_, _, s)| s.clone())
            .unwrap_or(Source::Default);
        return Err(InvalidValue {
            key: "tags".into(),
            value: format!("{} tags", tags.len()),
            origin: src,
            allowed: "at most 50 tags".into(),
        }
        .into());
    }
    Ok(tags)
}

/// `function-url`, `alias`, `event-format`: how the function is reached.
fn serving(f: &Fields) -> Result<(Option<FunctionUrl>, Option<String>, EventFormat)> {
    let function_url = match f.get("function-url") {
        None => None,
        Some((v, src)) => Some(function_url_config(v, src)?),
    };

    let alias = match f.string("alias")? {
        None => None,
        Some((a, src)) => {
            with_rule(
                "alias",
                &Value::String(a.clone()),
                &src,
                check_alias_name(&a),
            )?;
            Some(a)
        }
    };
    let event_format = match f.get("event-format") {
        None => EventFormat::default(),
        Some((v, src)) => one_of(
            "event-format",
            v,
            src,
            &[
                ("function-url", EventFormat::FunctionUrl),
                ("http-api", EventFormat::HttpApi),
                ("rest-api", EventFormat::RestApi),
                ("alb", EventFormat::Alb),
            ],
        )?,
    };
    Ok((function_url, alias, event_format))
}

/// `include`, `extension`, `image` and `package-type`: what ships.
fn packaging(f: &Fields) -> Result<(Vec<PathBuf>, bool, ImageConfig)> {
    let include = match f.strings("include")? {
        None => Vec::new(),
        Some((list, src)) => {
            for p in &list {
                with_rule(
                    "include",
                    &Value::String(p.clone()),
                    &src,
                    check_include_path(p),
                )?;
            }
            list.into_iter().map(PathBuf::from).collect()
        }
    };

    let extension = match f.get("extension") {
        None => false,
        Some((Value::Bool(b), _)) => *b,
        Some((v, src)) => return Err(Fields::bad("extension", v, src, "true or false")),
    };
    let mut image = match f.get("image") {
        None => ImageConfig::default(),
        Some((v, src)) => image_config(v, src)?,
    };
    image.enabled = match f.get("package-type") {
        None => false,
        Some((v, src)) => one_of("package-type", v, src, &[("zip", false), ("image", true)])?,
    };
    Ok((include, extension, image))
}

/// Where each scalar key's value came from (maps record theirs per entry).
fn record_sources(f: &Fields, sources: &mut BTreeMap<String, Source>) {
    for (key, _) in super::KEYS {
        if !f.merged.maps.contains_key(*key)
            && !matches!(*key, "env" | "secrets" | "tags" | "provisioned-concurrency")
        {
            let src = f
                .get(key)
                .map(|(_, s)| s.clone())
                .unwrap_or(Source::Default);
            sources.insert(key.to_string(), src);
        }
    }
}

fn image_config(v: &Value, src: &Source) -> Result<ImageConfig> {
    let map = table("image", v, src, &["repository", "scan-on-push", "keep"])?;
    let repository = match field(map, "repository") {
        None => None,
        Some(Value::String(r)) => {
            with_rule(
                "image.repository",
                &Value::String(r.clone()),
                src,
                check_repository_name(r),
            )?;
            Some(r.clone())
        }
        Some(other) => {
            return Err(Fields::bad(
                "image.repository",
                other,
                src,
                "an ECR repository name (a string)",
            ));
        }
    };
    let scan_on_push = match field(map, "scan-on-push") {
        None => true,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(Fields::bad(
                "image.scan-on-push",
                other,
                src,
                "true or false",
            ));
        }
    };
    let keep = match field(map, "keep") {
        None => None,
        Some(k) => match k.as_u64() {
            Some(n @ 1..=1000) => Some(n as u32),
            _ => {
                return Err(Fields::bad(
                    "image.keep",
                    k,
                    src,
                    "how many images to keep, 1-1000",
                ));
            }
        },
    };
    Ok(ImageConfig {
        enabled: false,
        repository,
        scan_on_push,
        keep,
    })
}

fn table<'a>(
    key: &str,
    v: &'a Value,
    src: &Source,
    allowed_keys: &[&str],
) -> Result<&'a serde_json::Map<String, Value>> {
    let Value::Object(map) = v else {
        return Err(Fields::bad(
            key,
            v,
            src,
            format!("expected a table with keys {}", allowed_keys.join(", ")),
        ));
    };
    for k in map.keys() {
        if !allowed_keys.contains(&k.replace('_', "-").as_str()) {
            return Err(Fields::bad(
                &format!("{key}.{k}"),
                &map[k],
                src,
                format!("unknown key; allowed: {}", allowed_keys.join(", ")),
            ));
        }
    }
    Ok(map)
}

fn field<'a>(map: &'a serde_json::Map<String, Value>, key: &str) -> Option<&'a Value> {
    map.get(key).or_else(|| map.get(&key.replace('-', "_")))
}

fn vpc_config(v: &Value, src: &Source) -> Result<Vpc> {
    let map = table("vpc", v, src, &["subnets", "security-groups"])?;
    let subnets = match field(map, "subnets") {
        Some(v) => string_list("vpc.subnets", v, src)?,
        None => Vec::new(),
    };
    let security_groups = match field(map, "security-groups") {
        Some(v) => string_list("vpc.security-groups", v, src)?,
        None => Vec::new(),
    };
    if subnets.is_empty() || subnets.len() > 16 {
        return Err(Fields::bad(
            "vpc.subnets",
            v,
            src,
            "1-16 subnet IDs (subnet-...)",
        ));
    }
    if security_groups.is_empty() || security_groups.len() > 5 {
        return Err(Fields::bad(
            "vpc.security-groups",
            v,
            src,
            "1-5 security group IDs (sg-...)",
        ));
    }
    for s in &subnets {
        if !s.starts_with("subnet-") {
            return Err(Fields::bad(
                "vpc.subnets",
                &Value::String(s.clone()),
                src,
                "subnet IDs look like subnet-0123abcd",
            ));
        }
    }
    for s in &security_groups {
        if !s.starts_with("sg-") {
            return Err(Fields::bad(
                "vpc.security-groups",
                &Value::String(s.clone()),
                src,
                "security group IDs look like sg-0123abcd",
            ));
        }
    }
    Ok(Vpc {
        subnets,
        security_groups,
    })
}

fn function_url_config(v: &Value, src: &Source) -> Result<FunctionUrl> {
    let map = table("function-url", v, src, &["auth", "invoke-mode", "cors"])?;
    let auth = match field(map, "auth") {
        None => UrlAuth::None,
        Some(a) => one_of(
            "function-url.auth",
            a,
            src,
            &[("NONE", UrlAuth::None), ("AWS_IAM", UrlAuth::AwsIam)],
        )?,
    };
    let invoke_mode = match field(map, "invoke-mode") {
        None => InvokeMode::Buffered,
        Some(m) => one_of(
            "function-url.invoke-mode",
            m,
            src,
            &[
                ("BUFFERED", InvokeMode::Buffered),
                ("RESPONSE_STREAM", InvokeMode::ResponseStream),
            ],
        )?,
    };
    let cors = match field(map, "cors") {
        None => None,
        Some(c) => Some(cors::read(
            "function-url.cors".into(),
            c,
            src,
            &cors::FUNCTION_URL,
        )?),
    };
    Ok(FunctionUrl {
        auth,
        invoke_mode,
        cors,
    })
}

/// Checks an ECR repository name: 2-256 characters, lower-case letters and
/// digits in parts separated by `.`, `_`, `-` or `/`.
pub fn check_repository_name(name: &str) -> std::result::Result<(), String> {
    let parts_ok = name.split('/').all(|part| {
        !part.is_empty()
            && part
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
            && part.starts_with(|c: char| c.is_ascii_alphanumeric())
            && part.ends_with(|c: char| c.is_ascii_alphanumeric())
    });
    if (2..=256).contains(&name.len()) && parts_ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not an ECR repository name: 2-256 lower-case letters, digits, and `.`, `_`, `-`, `/` between them"
        ))
    }
}
