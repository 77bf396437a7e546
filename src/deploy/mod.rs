//! The deploy: a typed plan (desired configuration and package vs what
//! AWS has, from reads only) and its execution, written against the AWS
//! traits only, so it runs the same against AWS, moto and the in-memory
//! fake. Also `promote` and `rollback`, which read their history from AWS,
//! and `deploy --layer`.
//!
//! The plan ([`plan::Plan`]) is an ordered list of typed changes to named
//! resources ([`change::Change`]: role, role policy, operator role,
//! capacity provider, repository, image push,
//! S3 upload, function create/code/configuration, publish, alias, reserved
//! and provisioned concurrency, URL, permission statements, tags, object
//! cleanup, layer version, triggers), each with its before and after.
//! `--dry-run` renders that list; [`execute`] walks it, one executor per
//! kind. See `change.rs` for how to add a kind.
//!
//! Invariants, each proven by a test in `tests.rs`:
//! 1. An alias only ever moves to a version this run published and saw
//!    Active (or one that already served it), never `$LATEST`; a failure
//!    part-way leaves the alias where it was.
//! 2. Every write is guarded: code and configuration updates by the
//!    RevisionId last seen, the publish by the local CodeSha256 and the
//!    RevisionId after our updates, alias moves by the alias's RevisionId.
//! 3. A re-run after any failure converges: the plan is always recomputed
//!    from AWS (cargo-fn's records live in the function's `cargo-fn:` tags,
//!    written last), never from local state.
//! 4. Environment values that look like credentials are redacted in
//!    everything printed; secrets travel by name only.
//! 5. Least privilege: the role cargo-fn creates grants this function's
//!    logs, X-Ray and VPC only when configured, and GetSecretValue on
//!    exactly the configured secrets; a public URL gets exactly the two
//!    statements it needs, and loses them when it stops being public.
//!
//! Module map: `step` (the vocabulary every kind is made of: [`Step`],
//! [`View`], `Ctx`, `Action`, [`FieldChange`]), one module per concern with
//! its kinds, their executors and its own planning (`role`, `function`,
//! `alias`, `limits`, `url`, `tags`, `upload`, `image`, `layer`,
//! `capacity_provider` (Lambda Managed Instances), and
//! `triggers/`, one file per trigger kind), `change` (the list of kinds and
//! the dispatch), `plan` (reads once, asks each concern, orders the
//! answers), `promote` (promote and rollback), `rollout` (gradual
//! rollouts). Imports run one way: `plan` uses `change` and the concerns,
//! `change` names the concerns' kinds, the concerns use `step`, and `step`
//! names none of them.
//!
//! This module knows the configuration model and the AWS traits; it does not
//! know clap, the SDK or how packages are built.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::aws::Code;
use crate::config::FunctionConfig;
use crate::error::hinted;
use crate::ui::Ui;

pub mod alias;
pub mod capacity_provider;
pub mod change;
pub mod function;
pub mod guard;
pub mod image;
pub mod layer;
pub mod limits;
pub mod plan;
pub mod promote;
pub mod role;
pub mod rollout;
pub mod source;
pub mod step;
pub mod tags;
pub mod triggers;
pub mod upload;
pub mod url;

pub use change::Change;
pub use function::diff_settings;
pub use layer::publish_layer;
pub use plan::{Plan, plan};
pub use promote::{promote, rollback};
pub use role::{ROLE_POLICY_NAME, TRUST_POLICY, managed_role_name};
pub use step::{Aws, FieldChange, Step, View};

pub use crate::aws::{MANAGED_BY_KEY, MANAGED_BY_VALUE};
/// The alias deploy moves when neither `--alias` nor `alias` is set.
pub const DEFAULT_ALIAS: &str = "live";
/// Largest zip sent in the request itself (Lambda's direct-upload limit).
pub const DIRECT_UPLOAD_LIMIT: u64 = 50 * 1024 * 1024;

/// A packaged function (a zip, or an image: see [`image`]) and its
/// Lambda-style hash.
#[derive(Debug, Clone, PartialEq)]
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
        let sha256 = crate::package::sha256_b64(&bytes);
        Ok(Package {
            path: path.to_path_buf(),
            bytes,
            sha256,
            image: None,
        })
    }
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
    /// Publish but leave an existing alias where it is: a gradual rollout
    /// ([`rollout`]) moves it afterwards. A missing alias is still created.
    pub hold_alias: bool,
    /// The selected stage: what deploy creates is tagged `cargo-fn:stage`
    /// with it, and a function or role of another stage is refused
    /// ([`guard::check_owner`]).
    pub stage: Option<String>,
}

/// Where zips go when they travel through S3.
#[derive(Debug, Clone, PartialEq)]
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
    /// The URL's auth type: `NONE` (anyone may call it) or `AWS_IAM`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url_auth: Option<String>,
    /// Trigger name -> invoke URL of its HTTP API (public: its routes have
    /// no authorizer).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub triggers: BTreeMap<String, String>,
    pub changed: bool,
    /// This run published `version` (a change to triggers, tags or the
    /// URL alone publishes nothing).
    pub published: bool,
    /// `deploy --from`: the stage, function and version copied, with its
    /// CodeSha256 (equal to `code_sha256`, or the deploy failed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<source::Source>,
}

/// Carries out a plan: walks its changes in order, each with its own
/// executor. Each step re-checks what it needs, so a re-run after a
/// failure at any point converges.
pub async fn execute<A: Aws>(
    api: &A,
    plan: &Plan,
    pkg: &Package,
    opts: &DeployOptions,
    ui: &Ui,
) -> Result<Outcome> {
    let start = &plan.start;
    let code = match &pkg.image {
        // Unchanged code: no code call names it; the outcome reports it.
        Some(_) => Code::Image {
            uri: start
                .remote
                .as_ref()
                .and_then(|r| r.image_uri.clone())
                .unwrap_or_default(),
        },
        None => Code::Zip(pkg.bytes.clone()),
    };
    let mut cx = step::Ctx {
        function: &plan.function,
        pkg,
        opts,
        ui,
        desired: start.desired.clone(),
        code,
        latest: start.remote.clone(),
        version: start.existing_version.clone(),
        alias: start.remote_alias.clone(),
        url: start.url.clone(),
        repository_uri: None,
        trigger_urls: start.trigger_urls.clone(),
    };
    for change in &plan.changes {
        change.apply(api, &mut cx).await?;
    }
    let latest = cx
        .latest
        .ok_or_else(|| anyhow::anyhow!("{} was not created", plan.function))?;
    let alias = cx
        .alias
        .ok_or_else(|| anyhow::anyhow!("alias {} was not created", plan.alias))?;
    let version = cx
        .version
        .ok_or_else(|| anyhow::anyhow!("no version of {} to serve", plan.function))?;
    Ok(Outcome {
        function: plan.function.clone(),
        function_arn: latest.arn.clone(),
        version,
        alias: plan.alias.clone(),
        alias_version: alias.version.clone(),
        routing: alias.weights.clone(),
        code_sha256: pkg.sha256.clone(),
        image_uri: match &cx.code {
            Code::Image { uri } if !uri.is_empty() => Some(uri.clone()),
            _ => None,
        },
        url_auth: cx.url.as_ref().and(start.url_auth.clone()),
        url: cx.url,
        triggers: cx.trigger_urls,
        changed: !plan.changes.is_empty(),
        published: plan.publishes(),
        source: None,
    })
}

/// Plans and, unless `dry_run`, executes the deploy of one function. A
/// dry run also checks that a role the user supplies grants the
/// configured secrets (reads only; a warning, never a change).
pub async fn deploy<A: Aws>(
    api: &A,
    cfg: &FunctionConfig,
    pkg: &Package,
    opts: &DeployOptions,
    dry_run: bool,
    ui: &Ui,
) -> Result<(Plan, Option<Outcome>)> {
    let mut plan = plan(api, cfg, pkg, opts).await?;
    if dry_run {
        if let Some(arn) = &cfg.role {
            let spec = role::PolicySpec::new(cfg, &api.region());
            plan.warnings
                .extend(role::check_given_role(api, arn, &spec).await);
        }
        return Ok((plan, None));
    }
    let outcome = execute(api, &plan, pkg, opts, ui)
        .await
        .with_context(|| format!("deploying {}", cfg.name))?;
    Ok((plan, Some(outcome)))
}

#[cfg(test)]
pub(crate) mod tests;
