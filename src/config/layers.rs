//! Reading the configuration layers and merging them, key by key, with the
//! source of every value kept for error messages and `cargo fn config`.
//!
//! Scalars, lists and nested tables (vpc, function-url) are replaced whole
//! by a higher layer; the map keys (env, secrets, tags,
//! provisioned-concurrency) merge entry by entry.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use serde_json::{Map, Value};

use super::value::type_name;
use super::{Overrides, Source};
use crate::project::{FunctionTarget, Project};

/// Every key a `[package.metadata.fn]` table accepts, with what it means.
/// Keys are kebab-case; snake_case spellings are accepted too.
pub const KEYS: &[(&str, &str)] = &[
    ("name", "Lambda function name (default: the binary name)"),
    ("architecture", "x86_64 or arm64"),
    ("runtime", "provided.al2023 or provided.al2"),
    ("memory", "memory in MB, 128-10240"),
    ("timeout", "timeout in seconds, 1-900"),
    ("ephemeral-storage", "/tmp size in MB, 512-10240"),
    ("env", "environment variables, a table of strings"),
    ("env-file", "a dotenv file with more environment variables"),
    (
        "secrets",
        "env var name -> Secrets Manager secret name or ARN",
    ),
    ("layers", "layer version ARNs, at most 5"),
    ("role", "execution role ARN"),
    ("tracing", "X-Ray tracing: Active or PassThrough"),
    ("vpc", "{ subnets = [...], security-groups = [...] }"),
    ("reserved-concurrency", "reserved concurrency, 0 or more"),
    (
        "provisioned-concurrency",
        "alias -> provisioned environments",
    ),
    ("log-format", "Text or JSON"),
    ("log-level", "application log level (JSON format only)"),
    (
        "log-group",
        "CloudWatch log group `cargo fn logs` reads (default /aws/lambda/<name>)",
    ),
    ("tags", "resource tags, a table of strings"),
    (
        "function-url",
        "{ auth = \"NONE\"|\"AWS_IAM\", invoke-mode, cors = {...} }",
    ),
    ("alias", "the alias deploy moves by default"),
    ("include", "extra files or directories to package"),
    ("extension", "true for a Lambda extension"),
    (
        "event-format",
        "function-url, http-api, rest-api or alb (local HTTP front)",
    ),
    ("package-type", "zip or image (what deploy ships)"),
    (
        "image",
        "{ repository = \"name\", scan-on-push = true, keep = N } (ECR, deploy --image)",
    ),
    (
        "triggers",
        "[[triggers]]: sqs, kinesis, dynamodb, schedule, s3 or http-api, each with a name",
    ),
    (
        "deployment",
        "{ strategy, alarms, pre-traffic, post-traffic, error-threshold } (gradual deploys)",
    ),
    (
        "durable",
        "{ execution-timeout = \"1d\", retention-days = 14 } (a durable function)",
    ),
];

/// Keys whose values are tables merged entry by entry.
const MAP_KEYS: &[&str] = &["env", "secrets", "tags", "provisioned-concurrency"];

/// One layer: canonical keys to JSON values, and how to name their source.
struct Layer {
    entries: Map<String, Value>,
    origin: Origin,
}

enum Origin {
    /// A table of a Cargo.toml, e.g. `package.metadata.fn`.
    Manifest {
        file: PathBuf,
        table: String,
    },
    /// cargo-lambda's tables: each key remembers its own original path.
    CargoLambda {
        file: PathBuf,
        paths: BTreeMap<String, String>,
    },
    EnvVars,
    Flags,
}

impl Layer {
    fn source(&self, key: &str, entry: Option<&str>) -> Source {
        let suffix = entry.map(|e| format!(".{e}")).unwrap_or_default();
        match &self.origin {
            Origin::Manifest { file, table } => Source::Manifest {
                file: file.clone(),
                key: format!("{table}.{key}{suffix}"),
            },
            Origin::CargoLambda { file, paths } => Source::Manifest {
                file: file.clone(),
                key: format!(
                    "{}{suffix}",
                    paths.get(key).cloned().unwrap_or_else(|| key.to_string())
                ),
            },
            Origin::EnvVars => Source::EnvVar {
                name: env_var_name(key),
            },
            Origin::Flags => Source::Flag {
                name: flag_name(key),
            },
        }
    }
}

/// The merged view: each key's winning value and its source.
#[derive(Debug, Default)]
pub(super) struct Merged {
    pub values: BTreeMap<String, (Value, Source)>,
    /// For map keys: entry -> (value, source).
    pub maps: BTreeMap<String, BTreeMap<String, (Value, Source)>>,
}

impl Merged {
    fn apply(&mut self, layer: &Layer) {
        for (key, value) in &layer.entries {
            if MAP_KEYS.contains(&key.as_str())
                && let Value::Object(map) = value
            {
                let slot = self.maps.entry(key.clone()).or_default();
                for (entry, v) in map {
                    slot.insert(entry.clone(), (v.clone(), layer.source(key, Some(entry))));
                }
                continue;
            }
            self.values
                .insert(key.clone(), (value.clone(), layer.source(key, None)));
        }
    }
}

/// `CARGO_FN_EPHEMERAL_STORAGE` for `ephemeral-storage`.
fn env_var_name(key: &str) -> String {
    format!("CARGO_FN_{}", key.to_uppercase().replace('-', "_"))
}

fn flag_name(key: &str) -> String {
    match key {
        "architecture" => "--arch".to_string(),
        "env" => "--env-var".to_string(),
        other => format!("--{other}"),
    }
}

fn canonical_key(key: &str) -> String {
    key.replace('_', "-")
}

/// Checks a `[*.metadata.fn]` table and turns it into a layer.
fn fn_table(file: &Path, table: &str, value: &Value, allow_functions: bool) -> Result<Layer> {
    let Value::Object(map) = value else {
        bail!(
            "{}: `{table}` must be a table, found {}",
            file.display(),
            type_name(value)
        );
    };
    let mut entries = Map::new();
    for (key, v) in map {
        let canonical = canonical_key(key);
        if canonical == "functions" && allow_functions {
            continue;
        }
        if !KEYS.iter().any(|(k, _)| *k == canonical) {
            let allowed: Vec<&str> = KEYS.iter().map(|(k, _)| *k).collect();
            bail!(
                "{}: unknown key `{table}.{key}`; allowed keys: {}{}",
                file.display(),
                allowed.join(", "),
                if allow_functions {
                    ", functions.<bin>"
                } else {
                    ""
                }
            );
        }
        entries.insert(canonical, v.clone());
    }
    Ok(Layer {
        entries,
        origin: Origin::Manifest {
            file: file.to_path_buf(),
            table: table.to_string(),
        },
    })
}

/// cargo-lambda's `[package.metadata.lambda]` (and `bin.<name>`) tables as
/// two layers, so a cargo-lambda project works unchanged: its runtime
/// `env` and `build` keys, then its `deploy` table (whose `env` entries win
/// entry by entry, as in cargo-lambda). A `deploy` key with no equivalent
/// is refused with what to write instead, never dropped.
fn cargo_lambda_layers(file: &Path, prefix: &str, table: &Value) -> Result<Vec<Layer>> {
    let mut base = CargoLambdaLayer::new(file);
    if let Some(Value::Object(env)) = table.get("env") {
        base.put("env", format!("{prefix}.env"), Value::Object(env.clone()));
    }
    if let Some(Value::Object(build)) = table.get("build") {
        if let Some(Value::String(target)) = build.get("target") {
            let arch = if target.starts_with("aarch64") {
                "arm64"
            } else {
                "x86_64"
            };
            let path = format!("{prefix}.build.target");
            base.put("architecture", path, Value::String(arch.into()));
        }
        if let Some(Value::Bool(true)) = build.get("arm64") {
            let path = format!("{prefix}.build.arm64");
            base.put("architecture", path, Value::String("arm64".into()));
        }
        if let Some(v @ Value::Array(_)) = build.get("include") {
            base.put("include", format!("{prefix}.build.include"), v.clone());
        }
    }
    let mut layers = vec![base.layer];
    if let Some(Value::Object(deploy)) = table.get("deploy") {
        layers.push(cargo_lambda_deploy(
            file,
            &format!("{prefix}.deploy"),
            deploy,
        )?);
    }
    Ok(layers)
}

/// A layer of cargo-lambda keys, each remembering its original path.
struct CargoLambdaLayer {
    layer: Layer,
}

impl CargoLambdaLayer {
    fn new(file: &Path) -> CargoLambdaLayer {
        CargoLambdaLayer {
            layer: Layer {
                entries: Map::new(),
                origin: Origin::CargoLambda {
                    file: file.to_path_buf(),
                    paths: BTreeMap::new(),
                },
            },
        }
    }

    fn put(&mut self, key: &str, path: String, v: Value) {
        if let Origin::CargoLambda { paths, .. } = &mut self.layer.origin {
            paths.entry(key.to_string()).or_insert(path);
        }
        // Two spellings of one map key (env + env_var, tags + tag) merge.
        if let (Some(Value::Object(old)), Value::Object(new)) =
            (self.layer.entries.get_mut(key), &v)
        {
            old.extend(new.clone());
            return;
        }
        self.layer.entries.insert(key.to_string(), v);
    }
}

/// cargo-lambda's `["K=V", ...]` lists (its `env_var` and `tag` flags) as
/// a table; a table stays as it is.
fn key_value_table(file: &Path, path: &str, v: &Value) -> Result<Value> {
    let Value::Array(items) = v else {
        return Ok(v.clone());
    };
    let mut map = Map::new();
    for item in items {
        match item.as_str().and_then(|s| s.split_once('=')) {
            Some((k, v)) => map.insert(k.to_string(), Value::String(v.to_string())),
            None => bail!(
                "{}: `{path}` entries are \"KEY=VALUE\" strings, found {item}",
                file.display()
            ),
        };
    }
    Ok(Value::Object(map))
}

/// cargo-lambda deploy keys cargo-fn has no key for, with what to do
/// instead.
const CARGO_LAMBDA_REFUSED: &[(&str, &str)] = &[
    (
        "s3_bucket",
        "pass `--s3-bucket BUCKET` to `cargo fn deploy`",
    ),
    (
        "s3_key",
        "pass `--s3-key KEY` (with --s3-bucket) to `cargo fn deploy`",
    ),
    (
        "log_retention",
        "cargo-fn does not manage log retention: run `aws logs put-retention-policy \
         --log-group-name /aws/lambda/<function> --retention-in-days N` once",
    ),
    (
        "description",
        "cargo-fn describes each published version with the git commit",
    ),
    (
        "ipv6_allowed_for_dual_stack",
        "cargo-fn does not set Ipv6AllowedForDualStack; set it with `aws lambda \
         update-function-configuration`",
    ),
    (
        "internal",
        "publish an extension with `cargo fn deploy --layer NAME` and set `extension = true`",
    ),
    (
        "compatible_runtimes",
        "pass `--runtime provided.al2023` (or provided.al2) to `cargo fn deploy --layer NAME`",
    ),
    ("profile", "pass `--profile NAME` or set AWS_PROFILE"),
    ("region", "pass `--region REGION` or set AWS_REGION"),
    (
        "endpoint_url",
        "pass `--endpoint-url URL` or set AWS_ENDPOINT_URL",
    ),
    (
        "retry_attempts",
        "cargo-fn retries throttled and failed calls itself (6 attempts)",
    ),
    (
        "binary_name",
        "set `name` in [package.metadata.fn.functions.<bin>]",
    ),
    ("binary_path", "pass `--zip PATH` to `cargo fn deploy`"),
    ("lambda_dir", "cargo-fn packages into target/lambda"),
    (
        "manifest_path",
        "pass `--manifest-path PATH` to `cargo fn deploy`",
    ),
    ("output_format", "pass `--output json` to `cargo fn deploy`"),
    ("dry", "pass `--dry-run` to `cargo fn deploy`"),
];

/// cargo-lambda's `[*.metadata.lambda.deploy]` table as a layer.
fn cargo_lambda_deploy(file: &Path, prefix: &str, deploy: &Map<String, Value>) -> Result<Layer> {
    let mut out = CargoLambdaLayer::new(file);
    let enable_url = deploy.get("enable_function_url") == Some(&Value::Bool(true));
    if enable_url && deploy.get("disable_function_url") == Some(&Value::Bool(true)) {
        bail!(
            "{}: `{prefix}.enable_function_url` and `{prefix}.disable_function_url` are both true; keep one",
            file.display()
        );
    }
    for (key, v) in deploy {
        let path = format!("{prefix}.{key}");
        let ours = match key.as_str() {
            "memory" | "timeout" | "runtime" | "include" | "alias" | "extension" => key.as_str(),
            "role" | "iam_role" => "role",
            "layers" | "layer" => "layers",
            "env_file" => "env-file",
            "function_name" | "name" => "name",
            "env" | "env_var" | "env_vars" => {
                out.put("env", path.clone(), key_value_table(file, &path, v)?);
                continue;
            }
            "tags" | "tag" => {
                out.put("tags", path.clone(), key_value_table(file, &path, v)?);
                continue;
            }
            "tracing" => {
                // cargo-lambda spells these in lower case.
                let t = v.as_str().unwrap_or_default();
                let mode = match t.to_ascii_lowercase().as_str() {
                    "active" => "Active".to_string(),
                    "passthrough" => "PassThrough".to_string(),
                    _ => t.to_string(),
                };
                out.put("tracing", path, Value::String(mode));
                continue;
            }
            // cargo-lambda's function URL has no authentication: the same here.
            "enable_function_url" => {
                if enable_url {
                    let url = serde_json::json!({ "auth": "NONE" });
                    out.put("function-url", path, url);
                }
                continue;
            }
            // No `function-url` key already means no URL (deploy removes one).
            "disable_function_url" | "subnet_ids" | "security_group_ids" => continue,
            other => {
                let instead = CARGO_LAMBDA_REFUSED
                    .iter()
                    .find(|(k, _)| *k == other)
                    .map(|(_, i)| i.to_string())
                    .unwrap_or_else(|| "it is not a cargo-lambda deploy key".to_string());
                bail!(
                    "{}: `{path}` (cargo-lambda) has no cargo-fn equivalent and would be ignored: {instead}; remove the key",
                    file.display()
                );
            }
        };
        out.put(ours, path, v.clone());
    }
    let subnets = deploy.get("subnet_ids").cloned();
    let groups = deploy.get("security_group_ids").cloned();
    if subnets.is_some() || groups.is_some() {
        let mut vpc = Map::new();
        vpc.insert("subnets".into(), subnets.unwrap_or(Value::Array(vec![])));
        vpc.insert(
            "security-groups".into(),
            groups.unwrap_or(Value::Array(vec![])),
        );
        out.put("vpc", format!("{prefix}.subnet_ids"), Value::Object(vpc));
    }
    Ok(out.layer)
}

/// `CARGO_FN_*` variables, typed where the key is numeric or a list.
fn env_layer(env: &BTreeMap<String, String>) -> Layer {
    let mut entries = Map::new();
    for (key, _) in KEYS {
        if MAP_KEYS.contains(key)
            || matches!(
                *key,
                "vpc" | "function-url" | "name" | "image" | "triggers" | "deployment" | "durable"
            )
        {
            continue;
        }
        let Some(raw) = env.get(&env_var_name(key)) else {
            continue;
        };
        let value = match *key {
            "memory" | "timeout" | "ephemeral-storage" | "reserved-concurrency" => raw
                .trim()
                .parse::<i64>()
                .map(Value::from)
                .unwrap_or_else(|_| Value::String(raw.clone())),
            "extension" => match raw.trim() {
                "true" | "1" => Value::Bool(true),
                "false" | "0" => Value::Bool(false),
                _ => Value::String(raw.clone()),
            },
            "layers" | "include" => Value::Array(
                raw.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| Value::String(s.to_string()))
                    .collect(),
            ),
            _ => Value::String(raw.clone()),
        };
        entries.insert(key.to_string(), value);
    }
    Layer {
        entries,
        origin: Origin::EnvVars,
    }
}

fn flag_layer(o: &Overrides) -> Layer {
    let mut entries = Map::new();
    if let Some(a) = o.architecture {
        entries.insert("architecture".into(), Value::String(a.as_str().into()));
    }
    if let Some(r) = &o.runtime {
        entries.insert("runtime".into(), Value::String(r.clone()));
    }
    if let Some(m) = o.memory {
        entries.insert("memory".into(), Value::from(m));
    }
    if let Some(t) = o.timeout {
        entries.insert("timeout".into(), Value::from(t));
    }
    if let Some(f) = &o.env_file {
        entries.insert(
            "env-file".into(),
            Value::String(f.to_string_lossy().into_owned()),
        );
    }
    if !o.env.is_empty() {
        let map: Map<String, Value> = o
            .env
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        entries.insert("env".into(), Value::Object(map));
    }
    Layer {
        entries,
        origin: Origin::Flags,
    }
}

/// The layers for one function, lowest first.
fn layers_for(
    project: &Project,
    function: &FunctionTarget,
    overrides: &Overrides,
    env: &BTreeMap<String, String>,
) -> Result<Vec<Layer>> {
    let mut layers = Vec::new();
    let ws_file = &project.workspace_manifest;
    let pkg_file = &function.manifest_path;

    // cargo-lambda compatibility, lowest: workspace, package, then per bin.
    if let Some(t) = project.workspace_metadata.get("lambda") {
        layers.extend(cargo_lambda_layers(
            ws_file,
            "workspace.metadata.lambda",
            t,
        )?);
    }
    if let Some(t) = function.package_metadata.get("lambda") {
        layers.extend(cargo_lambda_layers(pkg_file, "package.metadata.lambda", t)?);
        if let Some(bin) = t.get("bin").and_then(|b| b.get(&function.bin)) {
            let prefix = format!("package.metadata.lambda.bin.{}", function.bin);
            layers.extend(cargo_lambda_layers(pkg_file, &prefix, bin)?);
        }
    }

    if let Some(t) = project.workspace_metadata.get("fn") {
        layers.push(fn_table(ws_file, "workspace.metadata.fn", t, false)?);
    }
    if let Some(t) = function.package_metadata.get("fn") {
        layers.push(fn_table(pkg_file, "package.metadata.fn", t, true)?);
        match t.get("functions") {
            None => {}
            Some(Value::Object(per_bin)) => {
                if let Some(bin_table) = per_bin.get(&function.bin) {
                    let table = format!("package.metadata.fn.functions.{}", function.bin);
                    layers.push(fn_table(pkg_file, &table, bin_table, false)?);
                }
            }
            Some(other) => bail!(
                "{}: `package.metadata.fn.functions` must be a table of binary names, found {}",
                pkg_file.display(),
                type_name(other)
            ),
        }
    }
    layers.push(env_layer(env));
    layers.push(flag_layer(overrides));
    Ok(layers)
}

/// One function's layers merged, lowest first: each key's winning value.
pub(super) fn merge(
    project: &Project,
    function: &FunctionTarget,
    overrides: &Overrides,
    env: &BTreeMap<String, String>,
) -> Result<Merged> {
    let mut merged = Merged::default();
    for layer in layers_for(project, function, overrides, env)? {
        merged.apply(&layer);
    }
    Ok(merged)
}
