//! The plan: reads what AWS has (function, alias, and only what the
//! configuration touches: the served version, the URL and its policy,
//! provisioned concurrency, the repository) and lists the typed changes
//! that make it match, in the order they must run. Read calls only.
//!
//! Order, and why: role and policy first (the function needs the role);
//! the image push or S3 upload before any call names the code; create or
//! code then configuration updates (each waits for the previous one);
//! publish; the alias last of the function's own steps (invariant 1);
//! then concurrency, URL statements removed, the URL, statements added
//! (never public by accident); tags (records of the above) at the end.

use std::collections::BTreeMap;

use anyhow::Result;
use serde::Serialize;

use super::alias::{AliasMove, Target, alias_target};
use super::change::{Aws, Change, FieldChange, View};
use super::function::{
    CreateFunction, Publish, UpdateCode, UpdateConfiguration, code_text, desired_settings,
    diff_settings,
};
use super::limits::{ProvisionedConcurrency, ReservedConcurrency};
use super::role::{self, CreateRole, POLICY_TAG, PolicySpec, PutRolePolicy, managed_role_name};
use super::tags::{RECORD_PREFIX, Tags};
use super::triggers;
use super::upload::{CleanObjects, Upload};
use super::url::{self, Permission, UrlConfig, our_statements, record_tag, statements_for};
use super::{DeployOptions, EnvMode, MANAGED_BY_KEY, MANAGED_BY_VALUE, Package, image};
use crate::aws::{AliasState, FunctionState, Settings};
use crate::config::FunctionConfig;
use crate::error::hinted;

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

/// The role decision: the configured one, ours from before, or a new one.
enum Role {
    Given(String),
    Reuse {
        name: String,
        arn: String,
        /// The function does not exist (yet): its policy record is unknown.
        unknown_policy: bool,
    },
    Create(String),
}

async fn decide_role<A: Aws>(
    api: &A,
    cfg: &FunctionConfig,
    remote: Option<&FunctionState>,
) -> Result<Role> {
    if let Some(arn) = &cfg.role {
        return Ok(Role::Given(arn.clone()));
    }
    let role_name = managed_role_name(&cfg.name);
    let remote_role = remote.map(|r| r.settings.role.as_str());
    if let Some(arn) = remote_role.filter(|r| r.ends_with(&format!("/{role_name}"))) {
        return Ok(Role::Reuse {
            name: role_name,
            arn: arn.to_string(),
            unknown_policy: false,
        });
    }
    match api.get_role(&role_name).await? {
        Some(r) => {
            if r.tags.get(MANAGED_BY_KEY).map(String::as_str) != Some(MANAGED_BY_VALUE) {
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
            Ok(Role::Reuse {
                name: role_name,
                arn: r.arn,
                unknown_policy: true,
            })
        }
        None => Ok(Role::Create(role_name)),
    }
}

/// Reads what AWS has and works out what to change. Makes read calls only.
pub async fn plan<A: Aws>(
    api: &A,
    cfg: &FunctionConfig,
    pkg: &Package,
    opts: &DeployOptions,
) -> Result<Plan> {
    let name = &cfg.name;
    image::check(name, &cfg.layers, pkg.image.is_some(), None)?;
    let remote = api.get_function(name).await?;
    image::check(name, &cfg.layers, pkg.image.is_some(), remote.as_ref())?;
    let mut changes = Vec::new();
    let spec = PolicySpec::new(cfg, &api.region());

    // The role, and our records to keep in the function's tags.
    let mut records = BTreeMap::new();
    let role = decide_role(api, cfg, remote.as_ref()).await?;
    let role_arn = match &role {
        Role::Given(a) | Role::Reuse { arn: a, .. } => a.clone(),
        Role::Create(n) => format!("(new role {n})"),
    };
    match &role {
        // A role the user supplies is never changed; a dry run checks it
        // (see `deploy`).
        Role::Given(_) => {}
        Role::Reuse {
            name: role_name,
            arn,
            unknown_policy,
        } => {
            let before = remote
                .as_ref()
                .and_then(|r| r.tags.get(POLICY_TAG))
                .cloned();
            if *unknown_policy || before.as_deref() != Some(spec.fingerprint().as_str()) {
                changes.push(Change::RolePolicy(PutRolePolicy {
                    role: role_name.clone(),
                    spec: spec.clone(),
                    account: role::account_of(arn).map(str::to_string),
                    before,
                }));
            }
            records.insert(POLICY_TAG.to_string(), spec.fingerprint());
        }
        Role::Create(role_name) => {
            changes.push(Change::CreateRole(CreateRole {
                name: role_name.clone(),
            }));
            changes.push(Change::RolePolicy(PutRolePolicy {
                role: role_name.clone(),
                spec: spec.clone(),
                account: None,
                before: None,
            }));
            records.insert(POLICY_TAG.to_string(), spec.fingerprint());
        }
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
    if !cfg.triggers.is_empty() {
        records.insert(
            triggers::record_tag(&opts.alias),
            cfg.triggers.len().to_string(),
        );
    }
    let want_url = url::url_settings(cfg);
    let url_auth = want_url.as_ref().map(|u| u.auth.clone());
    if let Some(u) = &want_url {
        records.insert(record_tag(&opts.alias), u.auth.clone());
    }
    let mut tags = cfg.tags.clone();
    tags.insert(MANAGED_BY_KEY.into(), MANAGED_BY_VALUE.into());
    tags.extend(records);
    let code = code_text(pkg, &desired.runtime);

    let Some(remote) = remote else {
        changes.extend(push_code(api, name, pkg, opts).await?);
        changes.push(Change::CreateFunction(CreateFunction {
            name: name.clone(),
            settings: desired.clone(),
            tags,
            code,
            code_sha256: pkg.sha256.clone(),
        }));
        changes.push(Change::Publish(Publish {
            name: name.clone(),
            code_sha256: pkg.sha256.clone(),
            revision_guard: false,
        }));
        changes.push(Change::Alias(AliasMove {
            function: name.clone(),
            alias: opts.alias.clone(),
            before: None,
            target: Target::New,
            canary: opts.canary,
        }));
        if let Some(n) = cfg.reserved_concurrency {
            changes.push(Change::Concurrency(ReservedConcurrency {
                function: name.clone(),
                before: None,
                after: Some(n),
            }));
        }
        if let Some(&n) = cfg.provisioned_concurrency.get(&opts.alias) {
            changes.push(Change::Provisioned(ProvisionedConcurrency {
                function: name.clone(),
                alias: opts.alias.clone(),
                before: None,
                after: n,
            }));
        }
        let (url_changes, _) = plan_url(api, name, &opts.alias, false, want_url, true).await?;
        changes.extend(url_changes);
        let mut warnings = Vec::new();
        if let Some(t) = triggers::plan_changes(api, cfg, &opts.alias, None, false).await? {
            warnings.extend(t.notes.clone());
            changes.extend(t.into_changes());
        }
        changes.extend(clean_after_upload(name, opts, &changes));
        return Ok(Plan {
            function: name.clone(),
            alias: opts.alias.clone(),
            exists: false,
            env_mode: opts.env_mode,
            changes,
            warnings,
            start: Start {
                desired,
                remote: None,
                remote_alias: None,
                existing_version: None,
                url: None,
                url_auth,
                trigger_urls: BTreeMap::new(),
            },
        });
    };

    // A function whose last update failed gets our code again: re-running
    // after a failure must converge.
    let failed = remote.last_update_status.as_deref() == Some("Failed")
        || remote.state.as_deref() == Some("Failed");
    let remote_code = match &pkg.image {
        Some(_) => image::remote_digest(&remote).unwrap_or_default(),
        None => remote.code_sha256.clone(),
    };
    let ours = match &pkg.image {
        Some(img) => img.digest.clone(),
        None => pkg.sha256.clone(),
    };
    let code_changed =
        failed || remote_code != ours || remote.settings.architecture != desired.architecture;
    let fields = diff_settings(&remote.settings, &desired);
    if code_changed {
        changes.extend(push_code(api, name, pkg, opts).await?);
        changes.push(Change::Code(UpdateCode {
            name: name.clone(),
            before: remote_code,
            after: ours,
            code,
            architecture: (
                remote.settings.architecture.clone(),
                desired.architecture.clone(),
            ),
        }));
    }
    let config_changed = !fields.is_empty();
    if config_changed {
        changes.push(Change::Configuration(UpdateConfiguration {
            name: name.clone(),
            fields,
        }));
    }

    let alias = api.get_alias(name, &opts.alias).await?;
    // A rollout recorded on the alias owns it until it ends.
    if let Some(a) = &alias {
        super::rollout::refuse_if_recorded(name, a)?;
    }
    let mut publish = code_changed || config_changed;
    let mut existing_version = None;
    if !publish {
        // $LATEST already matches: is it published as the version the alias
        // serves (its canary first)? One read tells.
        match &alias {
            Some(a) => {
                let candidate = a
                    .canary()
                    .map(|(v, _)| v.to_string())
                    .unwrap_or_else(|| a.version.clone());
                match api.get_version(name, &candidate).await? {
                    Some(v) if v.code_sha256 == pkg.sha256 && v.settings == remote.settings => {
                        existing_version = Some(v.version);
                    }
                    _ => publish = true,
                }
            }
            None => publish = true,
        }
    }
    if publish {
        changes.push(Change::Publish(Publish {
            name: name.clone(),
            code_sha256: pkg.sha256.clone(),
            revision_guard: true,
        }));
    }
    let target = match &existing_version {
        Some(v) => Target::Existing(v.clone()),
        None => Target::New,
    };
    let moves = match (&alias, &target) {
        (Some(a), Target::Existing(v)) => {
            let (pv, w) = alias_target(a, v, opts.canary);
            pv != a.version || w != a.weights
        }
        _ => true,
    };
    // A gradual rollout moves an existing alias itself, step by step.
    let held = opts.hold_alias && alias.is_some();
    if moves && !held {
        changes.push(Change::Alias(AliasMove {
            function: name.clone(),
            alias: opts.alias.clone(),
            before: alias.clone(),
            target,
            canary: opts.canary,
        }));
    }

    if remote.reserved_concurrency != cfg.reserved_concurrency {
        changes.push(Change::Concurrency(ReservedConcurrency {
            function: name.clone(),
            before: remote.reserved_concurrency,
            after: cfg.reserved_concurrency,
        }));
    }
    if let Some(&n) = cfg.provisioned_concurrency.get(&opts.alias) {
        let before = match &alias {
            Some(_) => api.get_provisioned_concurrency(name, &opts.alias).await?,
            None => None,
        };
        if before != Some(n) {
            changes.push(Change::Provisioned(ProvisionedConcurrency {
                function: name.clone(),
                alias: opts.alias.clone(),
                before,
                after: n,
            }));
        }
    }
    let managed_url = remote.tags.contains_key(&record_tag(&opts.alias));
    let (url_changes, url) = plan_url(
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
        triggers::plan_changes(api, cfg, &opts.alias, Some(&remote), alias.is_some()).await?
    {
        warnings.extend(t.notes.clone());
        trigger_urls = t.urls.clone();
        changes.extend(t.into_changes());
    }

    let tag_change = plan_tags(name, &remote.tags, &tags, &opts.alias, opts.tag_mode);
    if !tag_change.is_empty() {
        changes.push(Change::Tags(tag_change));
    }
    changes.extend(clean_after_upload(name, opts, &changes));
    Ok(Plan {
        function: name.clone(),
        alias: opts.alias.clone(),
        exists: true,
        env_mode: opts.env_mode,
        changes,
        warnings,
        start: Start {
            desired,
            remote: Some(remote),
            remote_alias: alias,
            existing_version,
            url,
            url_auth,
            trigger_urls,
        },
    })
}

/// The steps that get the code where Lambda reads it: the image's
/// repository and push, or the S3 upload of a zip.
async fn push_code<A: Aws>(
    api: &A,
    function: &str,
    pkg: &Package,
    opts: &DeployOptions,
) -> Result<Vec<Change>> {
    match (&pkg.image, &opts.s3) {
        (Some(img), _) => image::plan_push(api, img).await,
        (None, Some(t)) => Ok(vec![Change::Upload(Upload {
            bucket: t.bucket.clone(),
            key: t.key_for(function, &pkg.sha256),
            size: pkg.bytes.len() as u64,
        })]),
        (None, None) => Ok(Vec::new()),
    }
}

/// After an S3 upload: our older objects beyond the newest N go.
fn clean_after_upload(function: &str, opts: &DeployOptions, changes: &[Change]) -> Option<Change> {
    let target = opts.s3.as_ref()?;
    let current = changes.iter().find_map(|c| match c {
        Change::Upload(u) => Some(u.key.clone()),
        _ => None,
    })?;
    Some(Change::CleanObjects(CleanObjects {
        function: function.to_string(),
        target: target.clone(),
        current,
    }))
}

/// The URL and its statements. Reads them only when the configuration asks
/// for a URL or the function records one on this alias (`managed`);
/// returns the changes and the URL as it is.
async fn plan_url<A: Aws>(
    api: &A,
    function: &str,
    alias: &str,
    alias_exists: bool,
    want: Option<crate::aws::UrlSettings>,
    managed: bool,
) -> Result<(Vec<Change>, Option<String>)> {
    if want.is_none() && !managed {
        return Ok((Vec::new(), None));
    }
    let (current, policy) = if alias_exists {
        (
            api.get_url(function, alias).await?,
            api.get_policy(function, alias).await?,
        )
    } else {
        (None, None)
    };
    let present = our_statements(policy.as_deref());
    let needed = statements_for(want.as_ref().map(|u| u.auth.as_str()));
    let permission = |statement: crate::aws::Permission, add: bool| {
        Change::Permission(Permission {
            function: function.to_string(),
            alias: alias.to_string(),
            statement,
            add,
        })
    };
    let mut changes = Vec::new();
    // Removed first: a URL is never public by accident.
    for sid in &present {
        if !needed.iter().any(|s| &s.sid == sid) {
            let statement = statements_for(Some("NONE"))
                .into_iter()
                .find(|s| &s.sid == sid)
                .expect("one of ours");
            changes.push(permission(statement, false));
        }
    }
    let url = current.as_ref().map(|u| u.url.clone());
    match (&current, &want) {
        (None, None) => {}
        (Some(c), Some(w)) if &c.settings == w => {}
        _ => changes.push(Change::Url(UrlConfig {
            function: function.to_string(),
            alias: alias.to_string(),
            before: current.clone(),
            after: want.clone(),
        })),
    }
    for s in needed {
        if !present.contains(&s.sid) {
            changes.push(permission(s, true));
        }
    }
    Ok((changes, url))
}

/// Tags to set and remove. Replace mode removes remote tags that left the
/// configuration; `aws:` tags are never touched; our records are removed
/// when no longer kept, except URL records of other aliases.
fn plan_tags(
    function: &str,
    remote: &BTreeMap<String, String>,
    desired: &BTreeMap<String, String>,
    alias: &str,
    mode: EnvMode,
) -> Tags {
    let set = desired
        .iter()
        .filter(|(k, v)| remote.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), (remote.get(k).cloned(), v.clone())))
        .collect();
    let other_alias_url =
        |k: &str| k.starts_with(&format!("{RECORD_PREFIX}url:")) && k != record_tag(alias);
    let remove = remote
        .keys()
        .filter(|k| !desired.contains_key(*k) && !k.starts_with("aws:"))
        .filter(|k| {
            if k.starts_with(RECORD_PREFIX) {
                !other_alias_url(k)
            } else {
                mode == EnvMode::Replace
            }
        })
        .cloned()
        .collect();
    Tags {
        function: function.to_string(),
        set,
        remove,
    }
}
