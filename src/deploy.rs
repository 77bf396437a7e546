//! The deploy: a plan (desired configuration and package vs what AWS has,
//! read-only) and its execution, written against [`LambdaApi`]/[`IamApi`]
//! only, so it runs the same against AWS, moto and the in-memory fake.
//! Also `promote` and `rollback`, which read their history from AWS.
//!
//! Invariants: (1) an alias only ever moves to a version this run published
//! and saw Active (or one that already served it); a failure part-way leaves
//! the alias where it was. (2) Every write is guarded: code and configuration
//! updates by the RevisionId read in the plan, the publish by CodeSha256 of
//! the local package and the RevisionId after our updates, alias moves by the
//! alias's RevisionId. (3) A re-run after any failure converges: the plan is
//! always recomputed from AWS, never from local state. (4) Environment
//! values that look like credentials are redacted in everything printed.
//!
//! This module knows the configuration model and the AWS traits; it does not
//! know clap, the SDK or how packages are built.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::aws::{
    AliasState, ApiError, Code, CreateFunction, EcrApi, FunctionState, IamApi, LambdaApi,
    ObjectStore, Settings, UrlSettings, VpcSettings,
};
use crate::config::{FunctionConfig, InvokeMode, LogFormat, REDACTED, Tracing, UrlAuth};
use crate::error::hinted;
use crate::package::human_size;
use crate::ui::Ui;

/// Tag put on every function and role cargo-fn creates.
pub const MANAGED_BY_KEY: &str = "managed-by";
pub const MANAGED_BY_VALUE: &str = "cargo-fn";
/// The inline policy of a role cargo-fn creates.
pub const ROLE_POLICY_NAME: &str = "cargo-fn-execution";
/// The alias deploy moves when neither `--alias` nor `alias` is set.
pub const DEFAULT_ALIAS: &str = "live";
/// Largest zip sent in the request itself (Lambda's direct-upload limit).
pub const DIRECT_UPLOAD_LIMIT: u64 = 50 * 1024 * 1024;

pub mod image;
pub mod rollout;

/// A packaged function (a zip, or an image: see [`image`]) and its
/// Lambda-style hash.
#[derive(Debug, Clone)]
pub struct Package {
    pub path: PathBuf,
    /// The zip bytes (empty for an image).
    pub bytes: Vec<u8>,
    /// Lambda's `CodeSha256`: base64 SHA-256 of the zip bytes, or the hex
    /// manifest digest of an image.
    pub sha256: String,
    /// The code source is an OCI image pushed to ECR.
    pub image: Option<image::ImagePackage>,
}

impl Package {
    pub fn read(path: &Path) -> Result<Package> {
        let bytes = std::fs::read(path).map_err(|e| {
            hinted(
                format!("cannot read the package {}: {e}", path.display()),
                "run `cargo fn package` first, or pass --zip PATH",
            )
        })?;
        let sha256 = crate::aws::fake::sha256_b64(&bytes);
        Ok(Package {
            path: path.to_path_buf(),
            bytes,
            sha256,
            image: None,
        })
    }
}

/// Where `cargo fn package` writes a function's zip.
pub fn default_zip_path(lambda_dir: &Path, function: &str) -> PathBuf {
    lambda_dir.join(function).join("bootstrap.zip")
}

/// The zip to deploy must exist. `cargo fn deploy` packages first unless
/// told `--zip PATH` or `--no-build`; this is the check for those paths.
pub fn package_if_missing_or_stale(zip: &Path) -> Result<()> {
    if zip.is_file() {
        return Ok(());
    }
    Err(hinted(
        format!("no package at {}", zip.display()),
        "run `cargo fn package` first (or pass --zip PATH to a packaged zip)",
    ))
}

/// How a configured map (the environment, the tags) is combined with the
/// remote one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EnvMode {
    /// Remote variables not in the configuration are kept.
    Merge,
    /// The environment becomes exactly the configured one.
    #[default]
    Replace,
}

#[derive(Debug, Clone)]
pub struct DeployOptions {
    pub alias: String,
    /// Weight (0 < w < 1) routed to the new version; the alias stays put.
    pub canary: Option<f64>,
    pub env_mode: EnvMode,
    /// Replace: remote tags missing from the configuration are removed
    /// (never `aws:` ones, which only AWS may change). Merge: they are kept.
    pub tag_mode: EnvMode,
    /// Version description: git commit and dirty flag.
    pub description: String,
    /// Upload the zip through S3 instead of in the request.
    pub s3: Option<S3Target>,
}

/// Where zips go when they travel through S3.
#[derive(Debug, Clone)]
pub struct S3Target {
    pub bucket: String,
    /// Default: `cargo-fn/<function>/<CodeSha256, URL-safe>.zip`.
    pub key: Option<String>,
    /// How many of our objects per function to keep (the newest); older
    /// ones under `cargo-fn/<function>/` are deleted after a deploy.
    pub keep: usize,
}

impl S3Target {
    /// The prefix cargo-fn owns for a function's zips.
    pub fn prefix(function: &str) -> String {
        format!("cargo-fn/{function}/")
    }

    pub fn key_for(&self, function: &str, sha256: &str) -> String {
        self.key.clone().unwrap_or_else(|| {
            let safe: String = sha256
                .chars()
                .filter(|c| *c != '=')
                .map(|c| match c {
                    '/' => '_',
                    '+' => '-',
                    c => c,
                })
                .collect();
            format!("{}{safe}.zip", Self::prefix(function))
        })
    }
}

/// One field that differs: `old -> new`, already redacted.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub field: String,
    pub old: String,
    pub new: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RoleAction {
    /// The configured role ARN.
    Given(String),
    /// Our role from an earlier deploy; `true` when its policy must change.
    Reuse {
        name: String,
        arn: String,
        update_policy: bool,
    },
    Create {
        name: String,
    },
}

/// Everything deploy is going to do for one function, computed from reads only.
#[derive(Debug, Clone)]
pub struct Plan {
    pub function: String,
    pub alias: String,
    pub exists: bool,
    pub role: RoleAction,
    pub code_changed: bool,
    /// Configuration changes (without code), field by field.
    pub changes: Vec<Change>,
    pub publish: bool,
    /// The version that already matches, when nothing needs publishing.
    pub existing_version: Option<String>,
    pub env_mode: EnvMode,
    /// Human lines, one per write call, in order.
    pub calls: Vec<String>,
    pub reserved_concurrency: Option<Option<u32>>,
    pub tags: BTreeMap<String, String>,
    /// Remote tag keys to remove.
    pub untag: Vec<String>,
    desired: Settings,
    remote: Option<FunctionState>,
    remote_alias: Option<AliasState>,
    provisioned: Option<u32>,
    url: Option<UrlSettings>,
    policy: String,
    /// Repository and push steps of an image deploy.
    image: Option<image::ImagePlan>,
}

impl Plan {
    pub fn is_noop(&self) -> bool {
        self.calls.is_empty()
    }

    /// The plan as text: the config diff, then each call.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} ({}):",
            self.function,
            if self.exists { "update" } else { "create" }
        );
        if self.exists {
            if self.code_changed {
                let old = self.remote.as_ref().map(|r| r.code_sha256.as_str());
                let _ = writeln!(out, "  code: {} -> (local package)", old.unwrap_or("-"));
            }
            for c in &self.changes {
                let _ = writeln!(out, "  {}: {} -> {}", c.field, c.old, c.new);
            }
            if self.changes.iter().any(|c| c.field.starts_with("env")) {
                let _ = writeln!(
                    out,
                    "  (environment {} the remote one)",
                    match self.env_mode {
                        EnvMode::Merge => "merged into",
                        EnvMode::Replace => "replaces",
                    }
                );
            }
        }
        if self.calls.is_empty() {
            let _ = writeln!(out, "  up to date: no call needed");
        }
        for c in &self.calls {
            let _ = writeln!(out, "  call {c}");
        }
        out
    }
}

/// The result of a deploy, also printed by `--output json`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Outcome {
    pub function: String,
    pub function_arn: String,
    pub version: String,
    pub alias: String,
    pub alias_version: String,
    /// Additional version weights of the alias (the canary).
    pub routing: BTreeMap<String, f64>,
    pub code_sha256: String,
    /// The image the function runs (`<repository uri>@sha256:...`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_uri: Option<String>,
    pub url: Option<String>,
    pub changed: bool,
}

/// `cargo-fn-<function>`, shortened with a hash to IAM's 64 characters.
pub fn managed_role_name(function: &str) -> String {
    let name = format!("cargo-fn-{function}");
    if name.len() <= 64 {
        return name;
    }
    let hash = crate::aws::fake::sha256_b64(function.as_bytes())
        .replace(['+', '/', '='], "")
        .chars()
        .take(8)
        .collect::<String>();
    format!("{}-{hash}", &name[..55])
}

/// The least-privilege inline policy of a role we create: logs of this
/// function only; X-Ray only with tracing Active; ENI management only in a VPC.
pub fn role_policy(function: &str, tracing_active: bool, vpc: bool) -> String {
    let mut statements = vec![serde_json::json!({
        "Effect": "Allow",
        "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
        "Resource": [
            format!("arn:aws:logs:*:*:log-group:/aws/lambda/{function}"),
            format!("arn:aws:logs:*:*:log-group:/aws/lambda/{function}:*"),
        ],
    })];
    if tracing_active {
        statements.push(serde_json::json!({
            "Effect": "Allow",
            "Action": ["xray:PutTraceSegments", "xray:PutTelemetryRecords"],
            "Resource": "*",
        }));
    }
    if vpc {
        statements.push(serde_json::json!({
            "Effect": "Allow",
            "Action": [
                "ec2:CreateNetworkInterface",
                "ec2:DescribeNetworkInterfaces",
                "ec2:DescribeSubnets",
                "ec2:DeleteNetworkInterface",
                "ec2:AssignPrivateIpAddresses",
                "ec2:UnassignPrivateIpAddresses",
            ],
            "Resource": "*",
        }));
    }
    serde_json::json!({"Version": "2012-10-17", "Statement": statements}).to_string()
}

pub const TRUST_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

/// The settings the configuration asks for (role filled in later when ours).
fn desired_settings(
    cfg: &FunctionConfig,
    role: &str,
    remote_env: Option<&BTreeMap<String, String>>,
    mode: EnvMode,
) -> Settings {
    let mut env = match (mode, remote_env) {
        (EnvMode::Merge, Some(r)) => r.clone(),
        _ => BTreeMap::new(),
    };
    env.extend(cfg.env.clone());
    // Secrets travel as names only; the function resolves them at run time.
    env.extend(cfg.secrets.clone());
    Settings {
        runtime: cfg.runtime.as_str().to_string(),
        architecture: cfg.architecture.as_str().to_string(),
        memory: cfg.memory,
        timeout: cfg.timeout,
        ephemeral_storage: cfg.ephemeral_storage,
        env,
        layers: cfg.layers.clone(),
        role: role.to_string(),
        tracing: match cfg.tracing {
            Tracing::Active => "Active",
            Tracing::PassThrough => "PassThrough",
        }
        .to_string(),
        vpc: cfg.vpc.as_ref().and_then(|v| {
            VpcSettings {
                subnets: v.subnets.clone(),
                security_groups: v.security_groups.clone(),
            }
            .normalized()
        }),
        log_format: match cfg.log_format {
            LogFormat::Text => "Text",
            LogFormat::Json => "JSON",
        }
        .to_string(),
        log_level: cfg.log_level.clone(),
    }
}

fn url_settings(cfg: &FunctionConfig) -> Option<UrlSettings> {
    cfg.function_url.as_ref().map(|u| UrlSettings {
        auth: match u.auth {
            UrlAuth::None => "NONE",
            UrlAuth::AwsIam => "AWS_IAM",
        }
        .to_string(),
        invoke_mode: match u.invoke_mode {
            InvokeMode::Buffered => "BUFFERED",
            InvokeMode::ResponseStream => "RESPONSE_STREAM",
        }
        .to_string(),
        cors: u.cors.clone(),
    })
}

fn shown_env(key: &str, value: Option<&String>) -> String {
    match value {
        None => "(unset)".into(),
        Some(_) if crate::config::looks_secret(key) => REDACTED.into(),
        Some(v) => format!("{v:?}"),
    }
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "[]".into()
    } else {
        format!("[{}]", v.join(", "))
    }
}

fn vpc_text(v: &Option<VpcSettings>) -> String {
    match v {
        None => "none".into(),
        Some(v) => format!(
            "subnets {} / security groups {}",
            list(&v.subnets),
            list(&v.security_groups)
        ),
    }
}

/// Field-by-field differences between two settings (configuration only:
/// the architecture goes with the code). Env values are redacted when
/// their key looks like a credential.
pub fn diff_settings(old: &Settings, new: &Settings) -> Vec<Change> {
    let mut out = Vec::new();
    let mut field = |name: &str, o: String, n: String| {
        if o != n {
            out.push(Change {
                field: name.to_string(),
                old: o,
                new: n,
            });
        }
    };
    field("runtime", old.runtime.clone(), new.runtime.clone());
    field(
        "memory",
        format!("{} MB", old.memory),
        format!("{} MB", new.memory),
    );
    field(
        "timeout",
        format!("{} s", old.timeout),
        format!("{} s", new.timeout),
    );
    field(
        "ephemeral-storage",
        format!("{} MB", old.ephemeral_storage),
        format!("{} MB", new.ephemeral_storage),
    );
    field("layers", list(&old.layers), list(&new.layers));
    field("role", old.role.clone(), new.role.clone());
    field("tracing", old.tracing.clone(), new.tracing.clone());
    field("vpc", vpc_text(&old.vpc), vpc_text(&new.vpc));
    field("log-format", old.log_format.clone(), new.log_format.clone());
    field(
        "log-level",
        old.log_level.clone().unwrap_or_else(|| "-".into()),
        new.log_level.clone().unwrap_or_else(|| "-".into()),
    );
    let keys: std::collections::BTreeSet<&String> = old.env.keys().chain(new.env.keys()).collect();
    for k in keys {
        let (o, n) = (old.env.get(k), new.env.get(k));
        if o != n {
            out.push(Change {
                field: format!("env.{k}"),
                old: shown_env(k, o),
                new: shown_env(k, n),
            });
        }
    }
    out
}

fn percent(w: f64) -> String {
    format!("{}%", (w * 1000.0).round() / 10.0)
}

fn routing_text(version: &str, weights: &BTreeMap<String, f64>) -> String {
    match weights.iter().find(|(_, w)| **w > 0.0) {
        None => version.to_string(),
        Some((v, w)) => format!("{version} ({}) + {v} ({})", percent(1.0 - w), percent(*w)),
    }
}

/// Reads what AWS has and works out what to change. Makes read calls only.
pub async fn plan<A: LambdaApi + IamApi + ObjectStore + EcrApi>(
    api: &A,
    cfg: &FunctionConfig,
    pkg: &Package,
    opts: &DeployOptions,
) -> Result<Plan> {
    let name = &cfg.name;
    image::check(name, &cfg.layers, pkg.image.is_some(), None)?;
    let remote = api.get_function(name).await?;
    image::check(name, &cfg.layers, pkg.image.is_some(), remote.as_ref())?;
    let tracing_active = cfg.tracing == Tracing::Active;
    let policy = role_policy(name, tracing_active, cfg.vpc.is_some());
    let mut calls = Vec::new();

    // The role: configured, ours from before, or a new one.
    let role = match &cfg.role {
        Some(arn) => RoleAction::Given(arn.clone()),
        None => {
            let role_name = managed_role_name(name);
            let remote_role = remote.as_ref().map(|r| r.settings.role.as_str());
            match remote_role.filter(|r| r.ends_with(&format!("/{role_name}"))) {
                Some(arn) => {
                    let r = &remote.as_ref().expect("remote").settings;
                    // The policy follows tracing and VPC; without a change
                    // there, no IAM call at all.
                    let update_policy = (r.tracing == "Active") != tracing_active
                        || r.vpc.is_some() != cfg.vpc.is_some();
                    RoleAction::Reuse {
                        name: role_name,
                        arn: arn.to_string(),
                        update_policy,
                    }
                }
                None => match api.get_role(&role_name).await? {
                    Some(r) => {
                        if r.tags.get(MANAGED_BY_KEY).map(String::as_str) != Some(MANAGED_BY_VALUE)
                        {
                            return Err(hinted(
                                format!(
                                    "the IAM role {role_name} exists but was not created by cargo-fn \
                                     (no tag {MANAGED_BY_KEY}={MANAGED_BY_VALUE})"
                                ),
                                format!(
                                    "set `role = \"{}\"` in [package.metadata.fn] to use it, or delete it",
                                    r.arn
                                ),
                            ));
                        }
                        RoleAction::Reuse {
                            name: role_name,
                            arn: r.arn,
                            update_policy: true,
                        }
                    }
                    None => RoleAction::Create { name: role_name },
                },
            }
        }
    };
    let role_arn = match &role {
        RoleAction::Given(a) | RoleAction::Reuse { arn: a, .. } => a.clone(),
        RoleAction::Create { name } => format!("(new role {name})"),
    };
    match &role {
        RoleAction::Create { name } => {
            calls.push(format!(
                "iam:CreateRole {name} (trusts lambda.amazonaws.com, tag {MANAGED_BY_KEY}={MANAGED_BY_VALUE})"
            ));
            calls.push(format!(
                "iam:PutRolePolicy {name} {ROLE_POLICY_NAME} (logs{}{})",
                if tracing_active { ", X-Ray" } else { "" },
                if cfg.vpc.is_some() { ", VPC ENIs" } else { "" }
            ));
        }
        RoleAction::Reuse {
            name,
            update_policy: true,
            ..
        } => calls.push(format!(
            "iam:PutRolePolicy {name} {ROLE_POLICY_NAME} (logs{}{})",
            if tracing_active { ", X-Ray" } else { "" },
            if cfg.vpc.is_some() { ", VPC ENIs" } else { "" }
        )),
        _ => {}
    }

    let mut desired = desired_settings(
        cfg,
        &role_arn,
        remote.as_ref().map(|r| &r.settings.env),
        opts.env_mode,
    );
    if pkg.image.is_some() {
        image::adjust_settings(&mut desired);
    }
    let mut tags = cfg.tags.clone();
    tags.insert(MANAGED_BY_KEY.into(), MANAGED_BY_VALUE.into());

    let mut plan = Plan {
        function: name.clone(),
        alias: opts.alias.clone(),
        exists: remote.is_some(),
        role,
        code_changed: true,
        changes: Vec::new(),
        publish: true,
        existing_version: None,
        env_mode: opts.env_mode,
        calls,
        reserved_concurrency: None,
        tags: BTreeMap::new(),
        untag: Vec::new(),
        desired,
        remote: remote.clone(),
        remote_alias: None,
        provisioned: cfg.provisioned_concurrency.get(&opts.alias).copied(),
        url: url_settings(cfg),
        policy,
        image: None,
    };

    let Some(remote) = remote else {
        plan.tags = tags;
        push_code(api, &mut plan, pkg, opts).await?;
        plan.calls.push(format!(
            "lambda:CreateFunction {name} ({}, {}, {} MB, {} s)",
            code_text(pkg, cfg),
            cfg.architecture,
            cfg.memory,
            cfg.timeout
        ));
        plan.calls.push(format!(
            "lambda:PublishVersion {name} (guarded by CodeSha256 {})",
            pkg.sha256
        ));
        plan.calls.push(format!(
            "lambda:CreateAlias {} -> the new version",
            opts.alias
        ));
        if let Some(n) = cfg.reserved_concurrency {
            plan.reserved_concurrency = Some(Some(n));
            plan.calls
                .push(format!("lambda:PutFunctionConcurrency {name} {n}"));
        }
        push_alias_extras(&mut plan, name);
        return Ok(plan);
    };

    // A function whose last update failed gets our code again: re-running
    // after a failure must converge.
    let failed = remote.last_update_status.as_deref() == Some("Failed")
        || remote.state.as_deref() == Some("Failed");
    let same_code = match &pkg.image {
        Some(img) => image::remote_digest(&remote).as_deref() == Some(img.digest.as_str()),
        None => remote.code_sha256 == pkg.sha256,
    };
    plan.code_changed =
        failed || !same_code || remote.settings.architecture != plan.desired.architecture;
    plan.changes = diff_settings(&remote.settings, &plan.desired);
    if plan.code_changed {
        push_code(api, &mut plan, pkg, opts).await?;
        let mut line = format!(
            "lambda:UpdateFunctionCode {name} ({}, RevisionId guard)",
            code_text(pkg, cfg)
        );
        if remote.settings.architecture != plan.desired.architecture {
            let _ = write!(
                line,
                " architecture {} -> {}",
                remote.settings.architecture, plan.desired.architecture
            );
        }
        plan.calls.push(line);
    }
    if !plan.changes.is_empty() {
        let fields: Vec<&str> = plan.changes.iter().map(|c| c.field.as_str()).collect();
        plan.calls.push(format!(
            "lambda:UpdateFunctionConfiguration {name} ({}; RevisionId guard)",
            fields.join(", ")
        ));
    }

    let alias = api.get_alias(name, &opts.alias).await?;
    plan.publish = plan.code_changed || !plan.changes.is_empty();
    if !plan.publish {
        // $LATEST already matches: is it published as the version the alias
        // serves (its canary first)? One read tells.
        match &alias {
            Some(a) => {
                let candidate = a
                    .canary()
                    .map(|(v, _)| v.to_string())
                    .unwrap_or_else(|| a.version.clone());
                let served = api.get_version(name, &candidate).await?;
                match served {
                    Some(v) if v.code_sha256 == pkg.sha256 && v.settings == remote.settings => {
                        plan.existing_version = Some(v.version);
                    }
                    _ => plan.publish = true,
                }
            }
            None => plan.publish = true,
        }
    }
    if plan.publish {
        plan.calls.push(format!(
            "lambda:PublishVersion {name} (guarded by CodeSha256 {} and RevisionId)",
            pkg.sha256
        ));
    }
    plan.remote_alias = alias.clone();
    match (&alias, &plan.existing_version) {
        (None, _) => plan.calls.push(format!(
            "lambda:CreateAlias {} -> the new version",
            opts.alias
        )),
        (Some(a), Some(v)) => {
            let (pv, w) = alias_target(a, v, opts.canary);
            if pv != a.version || w != a.weights {
                plan.calls.push(format!(
                    "lambda:UpdateAlias {}: {} -> {} (RevisionId guard)",
                    opts.alias,
                    routing_text(&a.version, &a.weights),
                    routing_text(&pv, &w)
                ));
            }
        }
        (Some(a), None) => {
            let next = match opts.canary {
                Some(w) => format!(
                    "{} ({}) + the new version ({})",
                    a.version,
                    percent(1.0 - w),
                    percent(w)
                ),
                None => "the new version".into(),
            };
            plan.calls.push(format!(
                "lambda:UpdateAlias {}: {} -> {next} (RevisionId guard)",
                opts.alias,
                routing_text(&a.version, &a.weights)
            ));
        }
    }

    if remote.reserved_concurrency != cfg.reserved_concurrency {
        plan.reserved_concurrency = Some(cfg.reserved_concurrency);
        match cfg.reserved_concurrency {
            Some(n) => plan
                .calls
                .push(format!("lambda:PutFunctionConcurrency {name} {n}")),
            None => plan
                .calls
                .push(format!("lambda:DeleteFunctionConcurrency {name}")),
        }
    }
    for (k, v) in &tags {
        if remote.tags.get(k) != Some(v) {
            plan.tags.insert(k.clone(), v.clone());
        }
    }
    if !plan.tags.is_empty() {
        let keys: Vec<&str> = plan.tags.keys().map(String::as_str).collect();
        plan.calls
            .push(format!("lambda:TagResource {name} ({})", keys.join(", ")));
    }
    if opts.tag_mode == EnvMode::Replace {
        plan.untag = remote
            .tags
            .keys()
            .filter(|k| !tags.contains_key(*k) && !k.starts_with("aws:"))
            .cloned()
            .collect();
    }
    if !plan.untag.is_empty() {
        plan.calls.push(format!(
            "lambda:UntagResource {name} ({})",
            plan.untag.join(", ")
        ));
    }
    push_alias_extras(&mut plan, name);
    Ok(plan)
}

/// The code's description in plan lines.
fn code_text(pkg: &Package, cfg: &FunctionConfig) -> String {
    match &pkg.image {
        Some(img) => image::code_text(img),
        None => format!(
            "{} zip, {}",
            human_size(pkg.bytes.len() as u64),
            cfg.runtime
        ),
    }
}

/// The steps that get the code where Lambda reads it: the image push, or
/// the S3 upload of a zip.
async fn push_code<A: EcrApi>(
    api: &A,
    plan: &mut Plan,
    pkg: &Package,
    opts: &DeployOptions,
) -> Result<()> {
    match &pkg.image {
        Some(img) => image::plan_push(api, plan, img).await,
        None => {
            push_upload(plan, pkg, opts);
            Ok(())
        }
    }
}

fn push_upload(plan: &mut Plan, pkg: &Package, opts: &DeployOptions) {
    if let Some(t) = &opts.s3 {
        plan.calls.push(format!(
            "s3:PutObject s3://{}/{} ({})",
            t.bucket,
            t.key_for(&plan.function, &pkg.sha256),
            human_size(pkg.bytes.len() as u64)
        ));
        plan.calls.push(format!(
            "s3:ListBucket + s3:DeleteObject: our objects under s3://{}/{} beyond the newest {}",
            t.bucket,
            S3Target::prefix(&plan.function),
            t.keep
        ));
    }
}

/// Provisioned concurrency and the URL are checked at execution (they hang
/// off the alias); the plan lists them when configured.
fn push_alias_extras(plan: &mut Plan, name: &str) {
    if let Some(n) = plan.provisioned {
        plan.calls.push(format!(
            "lambda:PutProvisionedConcurrencyConfig {name}:{} {n} (when it differs)",
            plan.alias
        ));
    }
    if let Some(u) = &plan.url {
        plan.calls.push(format!(
            "lambda:CreateFunctionUrlConfig/UpdateFunctionUrlConfig {name}:{} auth {} (when it differs){}",
            plan.alias,
            u.auth,
            if u.auth == "NONE" {
                " + lambda:AddPermission lambda:InvokeFunctionUrl for *"
            } else {
                ""
            }
        ));
    }
}

/// Where the alias should point once `target` is the deployed version.
fn alias_target(
    alias: &AliasState,
    target: &str,
    canary: Option<f64>,
) -> (String, BTreeMap<String, f64>) {
    match canary {
        Some(w) if alias.version != target => (
            alias.version.clone(),
            BTreeMap::from([(target.to_string(), w)]),
        ),
        _ => (target.to_string(), BTreeMap::new()),
    }
}

/// How long a new role may take to become assumable by Lambda.
const ROLE_WAIT: Duration = Duration::from_secs(40);

fn is_role_not_ready(e: &ApiError) -> bool {
    e.is("InvalidParameterValueException") && e.message.contains("cannot be assumed")
}

/// Carries out a plan. Each step re-checks what it needs, so a re-run after
/// a failure at any point converges.
pub async fn execute<A: LambdaApi + IamApi + ObjectStore + EcrApi>(
    api: &A,
    plan: &Plan,
    pkg: &Package,
    opts: &DeployOptions,
    ui: &Ui,
) -> Result<Outcome> {
    let name = &plan.function;
    let mut desired = plan.desired.clone();
    let mut changed = false;
    match &plan.role {
        RoleAction::Given(_) => {}
        RoleAction::Reuse {
            name: role,
            update_policy,
            arn,
        } => {
            if *update_policy {
                api.put_role_policy(role, ROLE_POLICY_NAME, &plan.policy)
                    .await?;
                changed = true;
            }
            desired.role = arn.clone();
        }
        RoleAction::Create { name: role } => {
            ui.status("Creating", format!("IAM role {role}"));
            let tags = BTreeMap::from([(MANAGED_BY_KEY.to_string(), MANAGED_BY_VALUE.to_string())]);
            let created = match api.create_role(role, TRUST_POLICY, &tags).await {
                Ok(r) => r,
                // A dropped response to an earlier attempt created it.
                Err(e) if e.is("EntityAlreadyExists") => api
                    .get_role(role)
                    .await?
                    .ok_or_else(|| anyhow::Error::new(e.clone()))?,
                Err(e) => return Err(e.into()),
            };
            api.put_role_policy(role, ROLE_POLICY_NAME, &plan.policy)
                .await?;
            desired.role = created.arn;
            changed = true;
        }
    }

    let uploading = plan.remote.is_none() || plan.code_changed;
    let code = match (&pkg.image, &plan.image, &opts.s3) {
        // The push completes before any call names the image.
        (Some(img), Some(ip), _) if uploading => image::push(api, ip, img, ui).await?,
        (Some(_), None, _) if uploading => {
            anyhow::bail!("the plan has no push step for the image of {name}; re-run the deploy")
        }
        // Unchanged code: no code call names it; the outcome reports it.
        (Some(_), _, _) => Code::Image {
            uri: plan
                .remote
                .as_ref()
                .and_then(|r| r.image_uri.clone())
                .unwrap_or_default(),
        },
        (None, _, Some(t)) if uploading => {
            let key = t.key_for(name, &pkg.sha256);
            ui.status(
                "Uploading",
                format!(
                    "s3://{}/{key} ({})",
                    t.bucket,
                    human_size(pkg.bytes.len() as u64)
                ),
            );
            api.put_object(&t.bucket, &key, pkg.bytes.clone()).await?;
            Code::S3 {
                bucket: t.bucket.clone(),
                key,
            }
        }
        (None, _, _) => Code::Zip(pkg.bytes.clone()),
    };
    let mut latest = match &plan.remote {
        None => {
            ui.status("Creating", format!("function {name}"));
            changed = true;
            let tags = plan.tags.clone();
            let input = CreateFunction {
                name: name.clone(),
                settings: desired.clone(),
                code: code.clone(),
                description: opts.description.clone(),
                tags,
            };
            let created = create_with_role_wait(api, &input, ui).await?;
            if created.state.as_deref() == Some("Active") {
                created
            } else {
                let _s = ui.step(format!("waiting for {name} to become Active"));
                api.wait_active(name).await?
            }
        }
        Some(remote) => {
            let mut latest = remote.clone();
            if plan.code_changed {
                match &code {
                    Code::Image { uri } => ui.status("Updating", format!("{name} code to {uri}")),
                    _ => ui.status(
                        "Uploading",
                        format!("{name} code ({})", human_size(pkg.bytes.len() as u64)),
                    ),
                }
                let rev = latest.revision_id.clone();
                latest = after_conflict_wait(api, name, ui, || {
                    api.update_code(name, &code, &desired.architecture, rev.as_deref())
                })
                .await?;
                latest = settle(api, name, latest, ui).await?;
                changed = true;
            }
            if !plan.changes.is_empty() {
                ui.status("Updating", format!("{name} configuration"));
                let rev = latest.revision_id.clone();
                latest = after_conflict_wait(api, name, ui, || {
                    api.update_configuration(name, &desired, rev.as_deref())
                })
                .await?;
                latest = settle(api, name, latest, ui).await?;
                changed = true;
            }
            latest
        }
    };
    if latest.last_update_status.as_deref() == Some("Failed")
        || latest.state.as_deref() == Some("Failed")
    {
        return Err(hinted(
            format!(
                "the last update of {name} failed: {}",
                latest.last_update_reason.clone().unwrap_or_default()
            ),
            "nothing was published and the alias was not moved; fix the cause and re-run",
        ));
    }
    if latest.code_sha256.is_empty() {
        latest.code_sha256 = pkg.sha256.clone();
    }

    let version = if plan.publish {
        ui.status("Publishing", format!("{name} ({})", opts.description));
        let rev = latest.revision_id.clone();
        let v = after_conflict_wait(api, name, ui, || {
            api.publish_version(name, &pkg.sha256, rev.as_deref(), &opts.description)
        })
        .await?;
        let v = if v.state.as_deref().is_none_or(|s| s == "Active") {
            v
        } else {
            let _s = ui.step(format!(
                "waiting for version {} to become Active",
                v.version
            ));
            api.wait_version_active(name, &v.version).await?
        };
        changed = true;
        v.version
    } else {
        plan.existing_version
            .clone()
            .expect("a plan without publish names the existing version")
    };
    if version == "$LATEST" {
        anyhow::bail!("PublishVersion returned $LATEST; refusing to point an alias at it");
    }

    // The alias moves last, to a version that exists and is Active.
    let alias = match &plan.remote_alias {
        None => {
            if opts.canary.is_some() {
                ui.warn(format!(
                    "alias {} does not exist yet: it is created on version {version} with all traffic (nothing to canary against)",
                    opts.alias
                ));
            }
            changed = true;
            match api
                .create_alias(name, &opts.alias, &version, &BTreeMap::new())
                .await
            {
                Ok(a) => a,
                Err(e) if e.is("ResourceConflictException") => {
                    // Created by a dropped earlier attempt or concurrently:
                    // move it with its own RevisionId guard.
                    let a = api.get_alias(name, &opts.alias).await?.ok_or(e)?;
                    api.update_alias(
                        name,
                        &opts.alias,
                        &version,
                        &BTreeMap::new(),
                        a.revision_id.as_deref(),
                    )
                    .await?
                }
                Err(e) => return Err(e.into()),
            }
        }
        Some(a) => {
            let (primary, weights) = alias_target(a, &version, opts.canary);
            if primary != a.version || weights != a.weights {
                ui.status(
                    "Moving",
                    format!(
                        "alias {} to {}",
                        opts.alias,
                        routing_text(&primary, &weights)
                    ),
                );
                changed = true;
                api.update_alias(
                    name,
                    &opts.alias,
                    &primary,
                    &weights,
                    a.revision_id.as_deref(),
                )
                .await?
            } else {
                a.clone()
            }
        }
    };

    if let Some(reserved) = plan.reserved_concurrency {
        changed = true;
        match reserved {
            Some(n) => api.put_reserved_concurrency(name, n).await?,
            None => api.delete_reserved_concurrency(name).await?,
        }
    }
    if plan.remote.is_some() && !plan.tags.is_empty() {
        changed = true;
        api.tag(&latest.arn, &plan.tags).await?;
    }
    if plan.remote.is_some() && !plan.untag.is_empty() {
        changed = true;
        api.untag(&latest.arn, &plan.untag).await?;
    }
    if let Some(n) = plan.provisioned
        && api.get_provisioned_concurrency(name, &opts.alias).await? != Some(n)
    {
        ui.status(
            "Provisioning",
            format!("{n} environments for {name}:{}", opts.alias),
        );
        api.put_provisioned_concurrency(name, &opts.alias, n)
            .await?;
        changed = true;
    }
    let mut url = None;
    if let Some(want) = &plan.url {
        let (state, grant) = match api.get_url(name, &opts.alias).await? {
            None => (api.create_url(name, &opts.alias, want).await?, true),
            Some(u) if &u.settings != want => {
                let grant = want.auth == "NONE" && u.settings.auth != "NONE";
                (api.update_url(name, &opts.alias, want).await?, grant)
            }
            Some(u) => (u, false),
        };
        if grant {
            api.allow_public_url(name, &opts.alias).await?;
            changed = true;
        }
        url = Some(state.url);
    }

    if let (Some(t), Code::S3 { key, .. }) = (&opts.s3, &code) {
        clean_stale_objects(api, t, name, key).await?;
    }

    Ok(Outcome {
        function: name.clone(),
        function_arn: latest.arn.clone(),
        version,
        alias: opts.alias.clone(),
        alias_version: alias.version.clone(),
        routing: alias.weights.clone(),
        code_sha256: pkg.sha256.clone(),
        image_uri: match &code {
            Code::Image { uri } if !uri.is_empty() => Some(uri.clone()),
            _ => None,
        },
        url,
        changed,
    })
}

/// Deletes our zips of `function` beyond the newest `keep` (never `current`).
async fn clean_stale_objects<A: ObjectStore>(
    api: &A,
    target: &S3Target,
    function: &str,
    current: &str,
) -> Result<()> {
    let mut objects = api
        .list_objects(&target.bucket, &S3Target::prefix(function))
        .await?;
    objects.sort_by(|a, b| {
        b.last_modified
            .cmp(&a.last_modified)
            .then_with(|| a.key.cmp(&b.key))
    });
    let mut kept = usize::from(objects.iter().any(|o| o.key == current));
    let mut stale = Vec::new();
    for o in objects {
        if o.key == current {
            continue;
        }
        if kept < target.keep {
            kept += 1;
        } else {
            stale.push(o.key);
        }
    }
    if !stale.is_empty() {
        api.delete_objects(&target.bucket, &stale).await?;
    }
    Ok(())
}

/// Runs a guarded write; on ResourceConflictException (an update still in
/// progress, ours or someone else's) waits for it to finish and tries once
/// more with the same guards, so a change made meanwhile is refused (412)
/// rather than overwritten.
async fn after_conflict_wait<A, T, F, Fut>(
    api: &A,
    name: &str,
    ui: &Ui,
    call: F,
) -> std::result::Result<T, ApiError>
where
    A: LambdaApi,
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, ApiError>>,
{
    match call().await {
        Err(e) if e.is("ResourceConflictException") => {
            let _s = ui.step(format!("{name} is being updated; waiting to retry"));
            api.wait_updated(name).await?;
            call().await
        }
        other => other,
    }
}

/// Waits for an update to finish unless the response already says so.
async fn settle<A: LambdaApi>(
    api: &A,
    name: &str,
    latest: FunctionState,
    ui: &Ui,
) -> Result<FunctionState> {
    if latest.last_update_status.as_deref() == Some("Successful") {
        return Ok(latest);
    }
    let _s = ui.step(format!("waiting for the update of {name} to finish"));
    Ok(api.wait_updated(name).await?)
}

/// CreateFunction, retried while a new role is not assumable yet (bounded).
async fn create_with_role_wait<A: LambdaApi>(
    api: &A,
    input: &CreateFunction,
    ui: &Ui,
) -> Result<FunctionState> {
    let started = std::time::Instant::now();
    let mut delay = Duration::from_millis(500);
    loop {
        match api.create_function(input).await {
            Ok(f) => return Ok(f),
            Err(e) if is_role_not_ready(&e) && started.elapsed() < ROLE_WAIT => {
                let _s = ui.step(format!(
                    "waiting for the role {} to become assumable",
                    input.settings.role
                ));
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(e) if is_role_not_ready(&e) => {
                return Err(hinted(
                    format!("{e}"),
                    format!(
                        "the role was still not assumable after {} s; re-run in a minute",
                        ROLE_WAIT.as_secs()
                    ),
                ));
            }
            Err(e) if e.is("ResourceConflictException") => {
                // A retried request whose first attempt did create it: use
                // it only if it holds exactly our code.
                let f = api.get_function(&input.name).await?.ok_or(e.clone())?;
                let ours = match &input.code {
                    Code::Zip(b) => crate::aws::fake::sha256_b64(b) == f.code_sha256,
                    Code::S3 { .. } => false,
                    Code::Image { uri } => f.image_uri.as_deref() == Some(uri.as_str()),
                };
                if !ours {
                    return Err(e.into());
                }
                return Ok(f);
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Plans and, unless `dry_run`, executes the deploy of one function.
pub async fn deploy<A: LambdaApi + IamApi + ObjectStore + EcrApi>(
    api: &A,
    cfg: &FunctionConfig,
    pkg: &Package,
    opts: &DeployOptions,
    dry_run: bool,
    ui: &Ui,
) -> Result<(Plan, Option<Outcome>)> {
    let plan = plan(api, cfg, pkg, opts).await?;
    if dry_run {
        return Ok((plan, None));
    }
    let outcome = execute(api, &plan, pkg, opts, ui)
        .await
        .with_context(|| format!("deploying {}", cfg.name))?;
    Ok((plan, Some(outcome)))
}

/// `promote`: the alias takes its canary version with all traffic.
pub async fn promote<A: LambdaApi>(
    api: &A,
    function: &str,
    alias: &str,
    dry_run: bool,
) -> Result<(AliasState, String)> {
    let a = read_alias(api, function, alias).await?;
    let Some((canary, _)) = a.canary() else {
        return Err(hinted(
            format!(
                "alias {alias} of {function} has no canary: it serves version {} only",
                a.version
            ),
            "deploy with --canary PERCENT first",
        ));
    };
    let canary = canary.to_string();
    let line = format!(
        "lambda:UpdateAlias {alias}: {} -> {canary} (RevisionId guard)",
        routing_text(&a.version, &a.weights)
    );
    if dry_run {
        return Ok((a, line));
    }
    let moved = api
        .update_alias(
            function,
            alias,
            &canary,
            &BTreeMap::new(),
            a.revision_id.as_deref(),
        )
        .await?;
    Ok((moved, line))
}

/// `rollback`: drop a canary, or put the alias back on the previous
/// published version (or `to`). History comes from AWS.
pub async fn rollback<A: LambdaApi>(
    api: &A,
    function: &str,
    alias: &str,
    to: Option<&str>,
    dry_run: bool,
) -> Result<(AliasState, String)> {
    let a = read_alias(api, function, alias).await?;
    let versions = api.list_versions(function).await?;
    let published: Vec<&crate::aws::VersionInfo> = versions
        .iter()
        .filter(|v| v.version.parse::<u64>().is_ok())
        .collect();
    let target = match to {
        Some(t) => {
            let Some(v) = published.iter().find(|v| v.version == t) else {
                let known: Vec<&str> = published.iter().map(|v| v.version.as_str()).collect();
                return Err(hinted(
                    format!("{function} has no published version {t}"),
                    format!("pick one of: {}", known.join(", ")),
                ));
            };
            (*v).clone()
        }
        None if a.canary().is_some() => published
            .iter()
            .find(|v| v.version == a.version)
            .map(|v| (*v).clone())
            .unwrap_or_else(|| crate::aws::VersionInfo {
                version: a.version.clone(),
                ..Default::default()
            }),
        None => {
            let current: u64 = a.version.parse().unwrap_or(u64::MAX);
            let prev = published
                .iter()
                .filter(|v| v.version.parse::<u64>().is_ok_and(|n| n < current))
                .max_by_key(|v| v.version.parse::<u64>().unwrap_or(0));
            match prev {
                Some(v) => (*v).clone(),
                None => {
                    return Err(hinted(
                        format!(
                            "alias {alias} of {function} is on version {}, and there is no earlier published version",
                            a.version
                        ),
                        "nothing to roll back to; deploy a fix instead",
                    ));
                }
            }
        }
    };
    let line = format!(
        "lambda:UpdateAlias {alias}: {} -> {} ({}) (RevisionId guard)",
        routing_text(&a.version, &a.weights),
        target.version,
        if target.description.is_empty() {
            "no description"
        } else {
            &target.description
        }
    );
    if dry_run {
        return Ok((a, line));
    }
    let moved = api
        .update_alias(
            function,
            alias,
            &target.version,
            &BTreeMap::new(),
            a.revision_id.as_deref(),
        )
        .await?;
    Ok((moved, line))
}

async fn read_alias<A: LambdaApi>(api: &A, function: &str, alias: &str) -> Result<AliasState> {
    api.get_alias(function, alias).await?.ok_or_else(|| {
        hinted(
            format!("function {function} has no alias {alias}"),
            "deploy it first with `cargo fn deploy`, or check --alias, --region and --profile",
        )
    })
}

/// The version description: the git commit and whether the tree was dirty.
pub fn git_description(dir: &Path) -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match git(&["rev-parse", "HEAD"]) {
        Some(commit) if !commit.is_empty() => {
            let dirty = git(&["status", "--porcelain"]).is_some_and(|s| !s.is_empty());
            format!(
                "cargo-fn: commit {commit}{}",
                if dirty { " (dirty)" } else { "" }
            )
        }
        _ => "cargo-fn: not a git checkout".to_string(),
    }
}

/// Publishes a packaged layer zip; returns its version ARN.
pub async fn publish_layer<A: LambdaApi>(
    api: &A,
    layer: &str,
    zip: &Path,
    architectures: &[String],
    runtimes: &[String],
    description: &str,
) -> Result<crate::aws::LayerVersion> {
    let bytes = std::fs::read(zip).map_err(|e| {
        hinted(
            format!("cannot read the layer zip {}: {e}", zip.display()),
            "run `cargo fn package --layer` first, or pass --zip PATH",
        )
    })?;
    Ok(api
        .publish_layer(layer, bytes, architectures, runtimes, description)
        .await?)
}

#[cfg(test)]
mod tests;
