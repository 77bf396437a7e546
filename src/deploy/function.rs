//! The function itself: the settings the configuration asks for, their
//! field-by-field diff with what Lambda has, and the changes that create
//! it, update its code and configuration (each guarded by the RevisionId
//! last seen) and publish a version (guarded by the local CodeSha256 and
//! the RevisionId after our updates). Updates in progress are waited for,
//! never raced.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::Result;

use super::step::{Action, Aws, Ctx, FieldChange, Step, View};
use super::{EnvMode, Package};
use crate::aws::{
    AliasState, ApiError, CapacityConfig, Code, DurableSettings, FunctionState, LambdaApi,
    Settings, VpcSettings,
};
use crate::config::{FunctionConfig, LogFormat, REDACTED, Tracing};
use crate::error::hinted;
use crate::package::human_size;
use crate::ui::Ui;

/// The settings the configuration asks for (`role` filled in by the plan).
pub fn desired_settings(
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
        log_group: cfg.custom_log_group().map(str::to_string),
        // Filled by the plan once the provider's ARN is known.
        capacity: None,
        durable: cfg.durable.map(|d| DurableSettings {
            execution_timeout: d.execution_timeout,
            retention_days: d.retention_days,
        }),
    }
}

fn durable_text(d: &Option<DurableSettings>) -> String {
    match d {
        None => "off".into(),
        Some(d) => format!(
            "execution timeout {} s, retention {} days",
            d.execution_timeout, d.retention_days
        ),
    }
}

/// Lambda turns durable execution on only when a function is created, and
/// never off: an existing function keeps what it was created with (its
/// `DurableConfig` values may change). Checked in the plan, before any
/// write.
pub fn check_durable_change(name: &str, remote: &Settings, desired: &Settings) -> Result<()> {
    match (remote.durable.is_some(), desired.durable.is_some()) {
        (false, true) => Err(hinted(
            format!(
                "function `{name}` exists in AWS as an ordinary function, and the configuration \
                 makes it durable (`durable = {{ ... }}`): Lambda enables durable execution \
                 only when it creates a function"
            ),
            format!(
                "deploy it under a new name (`name = \"...\"` under \
                 [package.metadata.fn.functions.<binary>]), or delete `{name}` \
                 (aws lambda delete-function --function-name {name}) and deploy again"
            ),
        )),
        (true, false) => Err(hinted(
            format!(
                "function `{name}` is a durable function in AWS, and the configuration has no \
                 `durable` table: Lambda cannot turn durable execution off"
            ),
            format!(
                "keep `durable = {{ ... }}` for `{name}`, or deploy the ordinary function \
                 under a new name"
            ),
        )),
        _ => Ok(()),
    }
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
pub fn diff_settings(old: &Settings, new: &Settings) -> Vec<FieldChange> {
    let mut out = Vec::new();
    let mut field = |name: &str, o: String, n: String| {
        if o != n {
            out.push(FieldChange {
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
    field(
        "durable",
        durable_text(&old.durable),
        durable_text(&new.durable),
    );
    field("log-format", old.log_format.clone(), new.log_format.clone());
    field(
        "log-level",
        old.log_level.clone().unwrap_or_else(|| "-".into()),
        new.log_level.clone().unwrap_or_else(|| "-".into()),
    );
    field(
        "log-group",
        old.log_group.clone().unwrap_or_else(|| "(default)".into()),
        new.log_group.clone().unwrap_or_else(|| "(default)".into()),
    );
    capacity_fields(old.capacity.as_ref(), new.capacity.as_ref(), &mut field);
    let keys: BTreeSet<&String> = old.env.keys().chain(new.env.keys()).collect();
    for k in keys {
        let (o, n) = (old.env.get(k), new.env.get(k));
        if o != n {
            out.push(FieldChange {
                field: format!("env.{k}"),
                old: shown_env(k, o),
                new: shown_env(k, n),
            });
        }
    }
    out
}

/// The `CapacityProviderConfig` fields that differ. A value the
/// configuration leaves unset is Lambda's to choose, so it is not a change.
fn capacity_fields(
    old: Option<&CapacityConfig>,
    new: Option<&CapacityConfig>,
    field: &mut impl FnMut(&str, String, String),
) {
    let arn = |c: Option<&CapacityConfig>| {
        c.map(|c| c.provider_arn.clone())
            .unwrap_or_else(|| "none".into())
    };
    field("capacity-provider", arn(old), arn(new));
    let Some(new) = new else { return };
    let shown = |v: Option<String>| v.unwrap_or_else(|| "(default)".into());
    if let Some(n) = new.max_concurrency {
        field(
            "per-execution-environment-max-concurrency",
            shown(old.and_then(|o| o.max_concurrency).map(|v| v.to_string())),
            n.to_string(),
        );
    }
    if let Some(r) = new.memory_gib_per_vcpu {
        field(
            "execution-environment-memory-gib-per-vcpu",
            shown(
                old.and_then(|o| o.memory_gib_per_vcpu)
                    .map(|v| v.to_string()),
            ),
            r.to_string(),
        );
    }
}

/// The code's description in plan lines.
pub fn code_text(pkg: &Package, runtime: &str) -> String {
    match &pkg.image {
        Some(img) => super::image::code_text(img),
        None => format!("{} zip, {runtime}", human_size(pkg.bytes.len() as u64)),
    }
}

/// The settings to give Lambda: the configured ones with the role the
/// role concern decided, merged with the remote environment in merge mode,
/// adjusted for an image.
pub fn desired(
    cfg: &FunctionConfig,
    role_arn: &str,
    remote: Option<&FunctionState>,
    pkg: &Package,
    mode: EnvMode,
) -> Settings {
    let mut desired = desired_settings(cfg, role_arn, remote.map(|r| &r.settings.env), mode);
    if pkg.image.is_some() {
        super::image::adjust_settings(&mut desired);
    }
    desired
}

/// The function's own changes: created with its tags, or its code and
/// configuration updated.
pub struct FunctionPlan<C> {
    pub changes: Vec<C>,
    /// The code must first reach where Lambda reads it (an image push or an
    /// S3 upload, planned before these changes).
    pub needs_code: bool,
    /// `$LATEST` changes, so a version must be published.
    pub changed: bool,
}

/// Compares the function Lambda has (if any) with the desired settings and
/// code. A function whose last update failed gets our code again:
/// re-running after a failure must converge. No reads.
pub fn plan<C: From<CreateFunction> + From<UpdateCode> + From<UpdateConfiguration>>(
    name: &str,
    remote: Option<&FunctionState>,
    pkg: &Package,
    desired: &Settings,
    tags: &BTreeMap<String, String>,
) -> FunctionPlan<C> {
    let code = code_text(pkg, &desired.runtime);
    let Some(remote) = remote else {
        return FunctionPlan {
            changes: vec![C::from(CreateFunction {
                name: name.to_string(),
                settings: desired.clone(),
                tags: tags.clone(),
                code,
                code_sha256: pkg.sha256.clone(),
            })],
            needs_code: true,
            changed: true,
        };
    };
    let failed = remote.last_update_status.as_deref() == Some("Failed")
        || remote.state.as_deref() == Some("Failed");
    let remote_code = match &pkg.image {
        Some(_) => super::image::remote_digest(remote).unwrap_or_default(),
        None => remote.code_sha256.clone(),
    };
    let ours = match &pkg.image {
        Some(img) => img.digest.clone(),
        None => pkg.sha256.clone(),
    };
    let code_changed =
        failed || remote_code != ours || remote.settings.architecture != desired.architecture;
    let fields = diff_settings(&remote.settings, desired);
    let config_changed = !fields.is_empty();
    let mut changes = Vec::new();
    if code_changed {
        changes.push(C::from(UpdateCode {
            name: name.to_string(),
            before: remote_code,
            after: ours,
            code,
            architecture: (
                remote.settings.architecture.clone(),
                desired.architecture.clone(),
            ),
        }));
    }
    if config_changed {
        changes.push(C::from(UpdateConfiguration {
            name: name.to_string(),
            fields,
        }));
    }
    FunctionPlan {
        changes,
        needs_code: code_changed,
        changed: code_changed || config_changed,
    }
}

/// Whether this run publishes a version, or which one already matches:
/// when `$LATEST` is unchanged, the version the alias serves (its canary
/// first) may be it, and one read tells. Returns the publish and the
/// matching version.
pub async fn plan_publish<A: LambdaApi>(
    api: &A,
    name: &str,
    remote: Option<&FunctionState>,
    alias: Option<&AliasState>,
    pkg: &Package,
    changed: bool,
) -> Result<(Option<Publish>, Option<String>)> {
    let publish = |revision_guard| Publish {
        name: name.to_string(),
        code_sha256: pkg.sha256.clone(),
        revision_guard,
    };
    let Some(remote) = remote else {
        return Ok((Some(publish(false)), None));
    };
    if changed {
        return Ok((Some(publish(true)), None));
    }
    let Some(a) = alias else {
        return Ok((Some(publish(true)), None));
    };
    let candidate = a
        .canary()
        .map(|(v, _)| v.to_string())
        .unwrap_or_else(|| a.version.clone());
    match api.get_version(name, &candidate).await? {
        Some(v) if v.code_sha256 == pkg.sha256 && v.settings == remote.settings => {
            Ok((None, Some(v.version)))
        }
        _ => Ok((Some(publish(true)), None)),
    }
}

/// The settings as shown in a plan: environment values redacted when
/// their key looks like a credential.
fn settings_view(s: &Settings) -> serde_json::Value {
    let env: BTreeMap<&String, String> = s
        .env
        .iter()
        .map(|(k, v)| {
            let shown = if crate::config::looks_secret(k) {
                REDACTED.to_string()
            } else {
                v.clone()
            };
            (k, shown)
        })
        .collect();
    let mut view = serde_json::json!({
        "runtime": s.runtime, "architecture": s.architecture, "memory": s.memory,
        "timeout": s.timeout, "ephemeral_storage": s.ephemeral_storage, "env": env,
        "layers": s.layers, "role": s.role, "tracing": s.tracing,
        "vpc": s.vpc.as_ref().map(|v| serde_json::json!({"subnets": v.subnets, "security_groups": v.security_groups})),
        "log_format": s.log_format, "log_level": s.log_level, "log_group": s.log_group,
    });
    // Shown only for a function on Managed Instances.
    if let Some(c) = &s.capacity {
        view["capacity_provider"] = serde_json::json!({
            "arn": c.provider_arn,
            "per_execution_environment_max_concurrency": c.max_concurrency,
            "execution_environment_memory_gib_per_vcpu": c.memory_gib_per_vcpu,
        });
    }
    // Only durable functions show it, so other plans stay as they were.
    if let Some(d) = s.durable {
        view["durable"] = serde_json::json!({
            "ExecutionTimeout": d.execution_timeout,
            "RetentionPeriodInDays": d.retention_days,
        });
    }
    view
}

/// `lambda:CreateFunction` with the desired settings and tags.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateFunction {
    pub name: String,
    pub settings: Settings,
    pub tags: BTreeMap<String, String>,
    /// The code, as the plan line shows it.
    pub code: String,
    pub code_sha256: String,
}

impl Step for CreateFunction {
    fn view(&self) -> View {
        let s = &self.settings;
        View::new("function", &self.name, Action::Create)
            .after(serde_json::json!({
                "code_sha256": self.code_sha256,
                "settings": settings_view(s),
                "tags": self.tags,
            }))
            .call(format!(
                "lambda:CreateFunction {} ({}, {}, {} MB, {} s{}{})",
                self.name,
                self.code,
                s.architecture,
                s.memory,
                s.timeout,
                match &s.capacity {
                    // Its versions run only once published and Active.
                    Some(c) => format!(
                        ", on capacity provider {}",
                        super::capacity_provider::provider_name(&c.provider_arn)
                    ),
                    None => String::new(),
                },
                s.durable
                    .map(|d| format!(
                        ", durable: ExecutionTimeout {} s, RetentionPeriodInDays {}",
                        d.execution_timeout, d.retention_days
                    ))
                    .unwrap_or_default()
            ))
    }

    async fn apply<A: Aws>(&self, api: &A, cx: &mut Ctx<'_>) -> Result<()> {
        let name = &self.name;
        cx.ui.status("Creating", format!("function {name}"));
        let input = crate::aws::CreateFunction {
            name: name.clone(),
            settings: cx.desired.clone(),
            code: cx.code.clone(),
            description: cx.opts.description.clone(),
            tags: self.tags.clone(),
        };
        let created = create_with_role_wait(api, &input, cx.ui).await?;
        // A function on Managed Instances reports `ActiveNonInvocable`:
        // its $LATEST never runs, only published versions do.
        let latest = if matches!(
            created.state.as_deref(),
            Some("Active" | "ActiveNonInvocable")
        ) {
            created
        } else {
            let _s = cx.ui.step(format!("waiting for {name} to become Active"));
            api.wait_active(name).await?
        };
        cx.latest = Some(latest);
        Ok(())
    }
}

/// `lambda:UpdateFunctionCode`, guarded by the RevisionId last seen.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateCode {
    pub name: String,
    /// CodeSha256 (or image digest) Lambda has, and ours.
    pub before: String,
    pub after: String,
    /// The code, as the plan line shows it.
    pub code: String,
    pub architecture: (String, String),
}

impl Step for UpdateCode {
    fn view(&self) -> View {
        let (old_arch, new_arch) = &self.architecture;
        let mut line = format!(
            "lambda:UpdateFunctionCode {} ({}, RevisionId guard)",
            self.name, self.code
        );
        if old_arch != new_arch {
            line.push_str(&format!(" architecture {old_arch} -> {new_arch}"));
        }
        View::new("function-code", &self.name, Action::Update)
            .before(&self.before)
            .after(&self.after)
            .call(line)
    }

    async fn apply<A: Aws>(&self, api: &A, cx: &mut Ctx<'_>) -> Result<()> {
        let name = &self.name;
        match &cx.code {
            Code::Image { uri } => cx.ui.status("Updating", format!("{name} code to {uri}")),
            _ => cx.ui.status(
                "Uploading",
                format!("{name} code ({})", human_size(cx.pkg.bytes.len() as u64)),
            ),
        }
        let rev = cx.latest.as_ref().and_then(|l| l.revision_id.clone());
        let (code, arch) = (cx.code.clone(), cx.desired.architecture.clone());
        let latest = after_conflict_wait(api, name, cx.ui, || {
            api.update_code(name, &code, &arch, rev.as_deref())
        })
        .await?;
        cx.latest = Some(settle(api, name, latest, cx.ui).await?);
        Ok(())
    }
}

/// `lambda:UpdateFunctionConfiguration`, guarded by the RevisionId.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateConfiguration {
    pub name: String,
    pub fields: Vec<FieldChange>,
}

impl Step for UpdateConfiguration {
    fn view(&self) -> View {
        let names: Vec<&str> = self.fields.iter().map(|c| c.field.as_str()).collect();
        let mut v = View::new("function-configuration", &self.name, Action::Update).call(format!(
            "lambda:UpdateFunctionConfiguration {} ({}; RevisionId guard)",
            self.name,
            names.join(", ")
        ));
        v.fields = self.fields.clone();
        v
    }

    async fn apply<A: Aws>(&self, api: &A, cx: &mut Ctx<'_>) -> Result<()> {
        let name = &self.name;
        cx.ui.status("Updating", format!("{name} configuration"));
        let rev = cx.latest.as_ref().and_then(|l| l.revision_id.clone());
        let desired = cx.desired.clone();
        let latest = after_conflict_wait(api, name, cx.ui, || {
            api.update_configuration(name, &desired, rev.as_deref())
        })
        .await?;
        cx.latest = Some(settle(api, name, latest, cx.ui).await?);
        Ok(())
    }
}

/// `lambda:PublishVersion`, guarded by our CodeSha256 and the RevisionId
/// after our updates; waits for the version to be Active.
#[derive(Debug, Clone, PartialEq)]
pub struct Publish {
    pub name: String,
    pub code_sha256: String,
    /// Guarded by RevisionId too (an existing function).
    pub revision_guard: bool,
}

impl Step for Publish {
    fn view(&self) -> View {
        View::new("version", format!("{}:(new)", self.name), Action::Publish)
            .after(serde_json::json!({"code_sha256": self.code_sha256}))
            .call(format!(
                "lambda:PublishVersion {} (guarded by CodeSha256 {}{})",
                self.name,
                self.code_sha256,
                if self.revision_guard {
                    " and RevisionId"
                } else {
                    ""
                }
            ))
    }

    async fn apply<A: Aws>(&self, api: &A, cx: &mut Ctx<'_>) -> Result<()> {
        let name = &self.name;
        let latest = cx
            .latest
            .clone()
            .ok_or_else(|| anyhow::anyhow!("{name} does not exist; nothing to publish"))?;
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
        cx.ui
            .status("Publishing", format!("{name} ({})", cx.opts.description));
        let rev = latest.revision_id.clone();
        let description = cx.opts.description.clone();
        let v = after_conflict_wait(api, name, cx.ui, || {
            api.publish_version(name, &self.code_sha256, rev.as_deref(), &description)
        })
        .await?;
        let v = if v.state.as_deref().is_none_or(|s| s == "Active") {
            v
        } else {
            let _s = cx.ui.step(format!(
                "waiting for version {} to become Active",
                v.version
            ));
            api.wait_version_active(name, &v.version).await?
        };
        if v.version == "$LATEST" {
            anyhow::bail!("PublishVersion returned $LATEST; refusing to point an alias at it");
        }
        // The guard above is AWS's; a service that ignores it (or a race it
        // missed) must not reach the alias with other code. (Zips only:
        // doubles report an image's CodeSha256 each their own way.)
        if cx.pkg.image.is_none() && !v.code_sha256.is_empty() && v.code_sha256 != self.code_sha256
        {
            return Err(hinted(
                format!(
                    "version {} of {name} has CodeSha256 {}, not the {} this deploy ships",
                    v.version, v.code_sha256, self.code_sha256
                ),
                "the alias was not moved; re-run the deploy (the function's code was changed \
                 by someone else meanwhile)",
            ));
        }
        cx.version = Some(v.version);
        Ok(())
    }
}

/// Runs a guarded write; on ResourceConflictException (an update still in
/// progress, ours or someone else's) waits for it to finish and tries once
/// more with the same guards, so a change made meanwhile is refused (412)
/// rather than overwritten.
pub async fn after_conflict_wait<A, T, F, Fut>(
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

/// How long a new role may take to become assumable by Lambda.
const ROLE_WAIT: Duration = Duration::from_secs(40);

fn is_role_not_ready(e: &ApiError) -> bool {
    e.is("InvalidParameterValueException") && e.message.contains("cannot be assumed")
}

/// CreateFunction, retried while a new role is not assumable yet (bounded).
async fn create_with_role_wait<A: LambdaApi>(
    api: &A,
    input: &crate::aws::CreateFunction,
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
                    Code::Zip(b) => crate::package::sha256_b64(b) == f.code_sha256,
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
