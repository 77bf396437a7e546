//! The plan: reads what AWS has (function, alias, and only what the
//! configuration touches: the served version, the URL and its policy,
//! provisioned concurrency, the repository) and lists the typed changes
//! that make it match, in the order they must run. Read calls only.
//!
//! Deciding belongs to the concerns: each module's `plan` takes what AWS
//! holds (the function when it exists, the alias) and the configuration
//! and returns its own steps, for a new function and an existing one
//! alike. This module reads the function and the alias once, hands them to
//! the concerns and sequences what they return.
//!
//! Order, and why: role and policy first (the function needs the role);
//! the operator role and capacity provider (Managed Instances) next, Active
//! before the function names it;
//! the image push or S3 upload before any call names the code; create or
//! code then configuration updates (each waits for the previous one);
//! publish; the alias last of the function's own steps (invariant 1);
//! then concurrency, URL statements removed, the URL, statements added
//! (never public by accident); a capacity provider no longer configured;
//! tags (records of the above) at the end.

use std::collections::BTreeMap;

use anyhow::Result;
use serde::Serialize;

use super::change::Change;
use super::role::PolicySpec;
use super::step::{Aws, FieldChange, View};
use super::tags::Tags;
use super::{
    DeployOptions, EnvMode, Package, alias, capacity_provider, function, guard, image, limits,
    role, tags, triggers, upload, url,
};
use crate::aws::{AliasState, FunctionState, Settings};
use crate::config::FunctionConfig;

/// Everything deploy is going to do for one function, computed from reads.
#[derive(Debug, Clone)]
pub struct Plan {
    pub function: String,
    pub alias: String,
    pub exists: bool,
    pub env_mode: EnvMode,
    /// The typed changes, in execution order.
    pub changes: Vec<Change>,
    /// Things the user should know that change nothing (e.g. a supplied
    /// role that does not grant the configured secrets).
    pub warnings: Vec<String>,
    /// What the executors start from.
    pub(super) start: Start,
}

/// The state the plan read, which execution starts from.
#[derive(Debug, Clone)]
pub(super) struct Start {
    pub desired: Settings,
    pub remote: Option<FunctionState>,
    pub remote_alias: Option<AliasState>,
    /// The version that already matches, when nothing needs publishing.
    pub existing_version: Option<String>,
    pub url: Option<String>,
    /// The URL's `AuthType` the configuration asks for (`NONE`: public).
    pub url_auth: Option<String>,
    /// Invoke URLs of HTTP API triggers that need no change.
    pub trigger_urls: BTreeMap<String, String>,
}

/// The plan as `--output json` prints it in a dry run.
#[derive(Debug, Serialize)]
pub struct PlanJson<'a> {
    pub function: &'a str,
    pub alias: &'a str,
    pub exists: bool,
    pub env_mode: EnvMode,
    /// The typed changes, in execution order.
    pub steps: Vec<View>,
    pub warnings: &'a [String],
    /// Summaries of `steps`: code changed, the configuration diff, tag
    /// changes, whether a version is published, every call.
    pub code_changed: bool,
    pub changes: Vec<FieldChange>,
    pub tags: BTreeMap<String, String>,
    pub untag: Vec<String>,
    pub publish: bool,
    pub calls: Vec<String>,
}

impl Plan {
    pub fn is_noop(&self) -> bool {
        self.changes.is_empty()
    }

    pub fn views(&self) -> Vec<View> {
        self.changes.iter().map(Change::view).collect()
    }

    /// Every call line, in order.
    pub fn calls(&self) -> Vec<String> {
        self.views().into_iter().flat_map(|v| v.calls).collect()
    }

    pub fn code_changed(&self) -> bool {
        self.changes.iter().any(|c| matches!(c, Change::Code(_)))
    }

    pub fn publishes(&self) -> bool {
        self.changes.iter().any(|c| matches!(c, Change::Publish(_)))
    }

    /// The configuration diff, field by field (redacted).
    pub fn config_changes(&self) -> Vec<FieldChange> {
        self.changes
            .iter()
            .find_map(|c| match c {
                Change::Configuration(u) => Some(u.fields.clone()),
                _ => None,
            })
            .unwrap_or_default()
    }

    fn tags_change(&self) -> Option<&Tags> {
        self.changes.iter().find_map(|c| match c {
            Change::Tags(t) => Some(t),
            _ => None,
        })
    }

    /// Tag keys to remove.
    pub fn untag(&self) -> Vec<String> {
        self.tags_change()
            .map(|t| t.remove.clone())
            .unwrap_or_default()
    }

    pub fn json(&self) -> PlanJson<'_> {
        let (tags, untag) = match self.tags_change() {
            Some(t) => (
                t.set
                    .iter()
                    .map(|(k, (_, v))| (k.clone(), v.clone()))
                    .collect(),
                t.remove.clone(),
            ),
            None => (BTreeMap::new(), Vec::new()),
        };
        PlanJson {
            function: &self.function,
            alias: &self.alias,
            exists: self.exists,
            env_mode: self.env_mode,
            steps: self.views(),
            warnings: &self.warnings,
            code_changed: self.exists && self.code_changed(),
            changes: self.config_changes(),
            tags,
            untag,
            publish: self.publishes(),
            calls: self.calls(),
        }
    }

    /// The plan as text: each change with its before/after and calls.
    pub fn render(&self) -> String {
        let mut out = format!(
            "{} ({}):\n",
            self.function,
            if self.exists { "update" } else { "create" }
        );
        for w in &self.warnings {
            out.push_str(&format!("  warning: {w}\n"));
        }
        if self.changes.is_empty() {
            out.push_str("  up to date: no call needed\n");
        }
        for v in self.views() {
            v.render(&mut out);
        }
        if self
            .config_changes()
            .iter()
            .any(|c| c.field.starts_with("env"))
        {
            out.push_str(&format!(
                "  (environment {} the remote one)\n",
                match self.env_mode {
                    EnvMode::Merge => "merged into",
                    EnvMode::Replace => "replaces",
                }
            ));
        }
        out
    }
}

/// Reads what AWS has and works out what to change. Makes read calls only:
/// the function once, then what each concern needs (the role only when
/// the function does not run with ours, the alias and the version it
/// serves, the URL and provisioned concurrency only when configured or
/// recorded, the triggers only when configured or recorded). Each concern
/// decides its own changes, for a new function and an existing one alike;
/// this function only orders them.
pub async fn plan<A: Aws>(
    api: &A,
    cfg: &FunctionConfig,
    pkg: &Package,
    opts: &DeployOptions,
) -> Result<Plan> {
    let name = &cfg.name;
    image::check(name, &cfg.layers, pkg.image.is_some(), None)?;
    let managed = capacity_provider::wanted(cfg);
    if let Some(w) = &managed {
        capacity_provider::check(name, w, cfg.memory, cfg.architecture.as_str())?;
    }
    let remote = api.get_function(name).await?;
    image::check(name, &cfg.layers, pkg.image.is_some(), remote.as_ref())?;
    // A function another stage owns is never changed (nor its role and
    // triggers): refused before any write.
    if let Some(r) = &remote {
        guard::check_owner("function", name, &r.tags, opts.stage.as_deref())?;
    }

    // The role first: the function needs it; then the capacity provider
    // it runs on (Managed Instances), Active before the function names it.
    let spec = PolicySpec::new(cfg, &api.region());
    let role = role::plan(api, cfg, remote.as_ref(), &spec, opts.stage.as_deref()).await?;
    let mut changes: Vec<Change> = role.changes;
    let capacity = capacity_provider::plan::<_, Change>(
        api,
        name,
        managed.as_ref(),
        remote.as_ref(),
        cfg.architecture.as_str(),
    )
    .await?;
    changes.extend(capacity.changes);
    let mut desired = function::desired(cfg, &role.arn, remote.as_ref(), pkg, opts.env_mode);
    desired.capacity = capacity.config;
    let mut role_records = role.records;
    role_records.extend(capacity.records);
    let want_url = url::url_settings(cfg);
    let url_auth = want_url.as_ref().map(|u| u.auth.clone());
    let tags = tags::desired(
        cfg,
        records(role_records, cfg, &opts.alias, want_url.as_ref()),
        opts.stage.as_deref(),
    );

    // The code where Lambda reads it, then the function's own changes.
    if let Some(r) = &remote {
        function::check_durable_change(name, &r.settings, &desired)?;
    }
    let function = function::plan(name, remote.as_ref(), pkg, &desired, &tags);
    if function.needs_code {
        changes.extend(push_code(api, name, pkg, opts).await?);
    }
    changes.extend(function.changes);

    // Publish, then the alias: the last of the function's own steps
    // (invariant 1). A rollout recorded on the alias owns it until it ends.
    let alias = match &remote {
        Some(_) => api.get_alias(name, &opts.alias).await?,
        None => None,
    };
    if let Some(a) = &alias {
        super::rollout::refuse_if_recorded(name, a)?;
    }
    let (publish, existing_version) = function::plan_publish(
        api,
        name,
        remote.as_ref(),
        alias.as_ref(),
        pkg,
        function.changed,
    )
    .await?;
    changes.extend(publish.map(Change::from));
    let alias_move = alias::plan(name, opts, alias.as_ref(), existing_version.as_deref());
    changes.extend(alias_move.map(Change::from));

    changes.extend(limits::plan(api, cfg, &opts.alias, remote.as_ref(), alias.is_some()).await?);
    // A new function's URL is ours to make; an existing one's only when
    // recorded.
    let managed_url = remote
        .as_ref()
        .is_none_or(|r| r.tags.contains_key(&url::record_tag(&opts.alias)));
    let (url_changes, url) = url::plan(
        api,
        name,
        &opts.alias,
        alias.is_some(),
        want_url,
        managed_url,
    )
    .await?;
    changes.extend(url_changes);

    // Triggers point at the alias: after it moved, before the records.
    let mut warnings = Vec::new();
    let mut trigger_urls = BTreeMap::new();
    if let Some(t) =
        triggers::plan_changes(api, cfg, opts, remote.as_ref(), alias.is_some()).await?
    {
        warnings.extend(t.notes.clone());
        trigger_urls = t.urls.clone();
        changes.extend(t.into_changes());
    }

    // A capacity provider cargo-fn made that the configuration no longer
    // names goes once the alias serves a version off it.
    changes.extend(capacity.cleanup);

    // Tags (records of the above) last; a new function got them with its
    // creation.
    if let Some(r) = &remote {
        let tag_change = tags::plan(name, &r.tags, &tags, &opts.alias, opts.tag_mode);
        if !tag_change.is_empty() {
            changes.push(tag_change.into());
        }
    }
    let uploaded = changes.iter().find_map(|c| match c {
        Change::Upload(u) => Some(u),
        _ => None,
    });
    let clean = upload::clean(name, opts.s3.as_ref(), uploaded);
    changes.extend(clean.map(Change::from));
    Ok(Plan {
        function: name.clone(),
        alias: opts.alias.clone(),
        exists: remote.is_some(),
        env_mode: opts.env_mode,
        changes,
        warnings,
        start: Start {
            desired,
            remote,
            remote_alias: alias,
            existing_version,
            url,
            url_auth,
            trigger_urls,
        },
    })
}

/// cargo-fn's records to keep in the function's tags: the role's, and
/// which of this alias's triggers and URL cargo-fn manages.
fn records(
    mut records: BTreeMap<String, String>,
    cfg: &FunctionConfig,
    alias: &str,
    url: Option<&crate::aws::UrlSettings>,
) -> BTreeMap<String, String> {
    if !cfg.triggers.is_empty() {
        records.insert(triggers::record_tag(alias), cfg.triggers.len().to_string());
    }
    if let Some(u) = url {
        records.insert(url::record_tag(alias), u.auth.clone());
    }
    records
}

/// The steps that get the code where Lambda reads it: the image's
/// repository and push, or the S3 upload of a zip.
async fn push_code<A: Aws>(
    api: &A,
    function: &str,
    pkg: &Package,
    opts: &DeployOptions,
) -> Result<Vec<Change>> {
    match &pkg.image {
        Some(img) => image::plan_push(api, img).await,
        None => Ok(upload::plan(function, pkg, opts.s3.as_ref())
            .into_iter()
            .map(Change::from)
            .collect()),
    }
}
