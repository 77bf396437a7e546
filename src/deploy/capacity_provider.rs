//! Lambda Managed Instances: the capacity provider a function runs on,
//! created, updated and deleted by diff, its operator role, and the
//! function's `CapacityProviderConfig` (which `function.rs` sends with the
//! rest of the settings).
//!
//! Rules, from the API's shapes and the Lambda docs:
//! - A function is put on Managed Instances when it is created; AWS cannot
//!   add or remove `CapacityProviderConfig` later (it can change the
//!   provider's ARN, the concurrency and the memory per vCPU). The plan
//!   refuses both, before any call.
//! - `UpdateCapacityProvider` changes only the scaling configuration; the
//!   VPC, instance requirements, operator role and KMS key are fixed, so a
//!   change to them is refused with the way out (a new provider name).
//! - cargo-fn deletes only providers it created (tag
//!   `managed-by=cargo-fn`, recorded in the function's tag
//!   [`RECORD_TAG`]), once the configuration no longer names them, after
//!   the alias moved, and only when no other function's versions run on
//!   them (this function's versions on it are deleted first: a version on
//!   a deleted provider could never run again).
//! - A provider must be `Active` before a function is attached to it; a
//!   `Failed` one stops the deploy before the function is touched, so no
//!   alias moves.
//! - The operator role, when the configuration names none, is created
//!   (`cargo-fn-cp-<provider>`, trusting `lambda.amazonaws.com`) with the
//!   managed policy `AWSLambdaManagedEC2ResourceOperator` attached. The
//!   function's execution role needs nothing more (the operator role is
//!   the one that manages the instances).

use std::collections::BTreeMap;

use anyhow::Result;

use super::step::{Action, Aws, Ctx, Step, View};
use super::{MANAGED_BY_KEY, MANAGED_BY_VALUE};
use crate::aws::capacity::{
    OPERATOR_POLICY_NAME, ProviderScaling, ProviderSpec, ProviderState, operator_policy_arn,
};
use crate::aws::{CapacityConfig, FunctionState};
use crate::config::{CapacityProviderRef, FunctionConfig};
use crate::error::hinted;

/// Function tag naming the capacity provider cargo-fn created for it.
pub const RECORD_TAG: &str = "cargo-fn:capacity-provider";
/// Provider tag naming the function it was created for.
pub const CREATED_FOR_TAG: &str = "cargo-fn:created-for";
/// The smallest function on Managed Instances (Lambda docs, best
/// practices: "2GB and 1 vCPU").
pub const MIN_MEMORY_MB: u32 = 2048;

/// Where the function's capacity provider comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum ProviderChoice {
    /// An existing provider, never changed by cargo-fn.
    Arn(String),
    /// A provider cargo-fn creates and keeps matching. An empty
    /// `operator_role_arn` means cargo-fn creates the operator role too.
    Create(Box<ProviderSpec>),
}

/// What the configuration asks of Managed Instances, in deploy's terms.
#[derive(Debug, Clone, PartialEq)]
pub struct Wanted {
    pub provider: ProviderChoice,
    pub max_concurrency: Option<u32>,
    pub memory_gib_per_vcpu: Option<f64>,
}

/// The configuration's `managed-instances` table in deploy's terms.
pub fn wanted(cfg: &FunctionConfig) -> Option<Wanted> {
    let m = cfg.managed_instances.as_ref()?;
    let provider = match &m.capacity_provider {
        CapacityProviderRef::Arn(arn) => ProviderChoice::Arn(arn.clone()),
        CapacityProviderRef::Create(p) => ProviderChoice::Create(Box::new(
            ProviderSpec {
                name: p.name.clone(),
                subnets: p.subnets.clone(),
                security_groups: p.security_groups.clone(),
                operator_role_arn: p.operator_role.clone().unwrap_or_default(),
                architecture: p.architectures.first().map(|a| a.as_str().to_string()),
                allowed_instance_types: p.allowed_instance_types.clone(),
                excluded_instance_types: p.excluded_instance_types.clone(),
                scaling: ProviderScaling {
                    max_vcpu: p.max_vcpu_count,
                    mode: p.scaling_mode.map(|m| m.as_str().to_string()),
                    target_cpu: p.scaling_policies.first().map(|p| p.target_value),
                },
                kms_key_arn: p.kms_key_arn.clone(),
            }
            .normalized(),
        )),
    };
    Some(Wanted {
        provider,
        max_concurrency: m.per_execution_environment_max_concurrency,
        memory_gib_per_vcpu: Some(f64::from(m.execution_environment_memory_gib_per_vcpu)),
    })
}

/// `cargo-fn-cp-<provider>`, shortened with a hash to IAM's 64 characters.
pub fn operator_role_name(provider: &str) -> String {
    let name = format!("cargo-fn-cp-{provider}");
    if name.len() <= 64 {
        return name;
    }
    let hash = crate::package::sha256_b64(provider.as_bytes())
        .replace(['+', '/', '='], "")
        .chars()
        .take(8)
        .collect::<String>();
    format!("{}-{hash}", &name[..55])
}

/// The name in a provider ARN (or the name itself).
pub fn provider_name(arn_or_name: &str) -> &str {
    arn_or_name.rsplit(':').next().unwrap_or(arn_or_name)
}

/// The contract rules across fields, checked before any call: the
/// function's size, and its architecture against the provider's instance
/// requirements (when the configuration describes the provider).
pub fn check(function: &str, wanted: &Wanted, memory: u32, architecture: &str) -> Result<()> {
    if memory < MIN_MEMORY_MB {
        return Err(hinted(
            format!(
                "{function}: memory = {memory} MB is below the {MIN_MEMORY_MB} MB a function on \
                 Lambda Managed Instances needs"
            ),
            format!("set `memory = {MIN_MEMORY_MB}` (or more) in [package.metadata.fn]"),
        ));
    }
    if let Some(ratio) = wanted.memory_gib_per_vcpu {
        let gib = f64::from(memory) / 1024.0;
        if gib < ratio {
            return Err(hinted(
                format!(
                    "{function}: memory = {memory} MB gives less than one vCPU at \
                     execution-environment-memory-gib-per-vcpu = {ratio}"
                ),
                format!(
                    "raise memory to at least {} MB, or lower the ratio",
                    (ratio * 1024.0).ceil() as u32
                ),
            ));
        }
    }
    if let ProviderChoice::Create(spec) = &wanted.provider {
        check_arch(
            function,
            &spec.name,
            spec.architecture.as_deref(),
            architecture,
        )?;
    }
    Ok(())
}

fn check_arch(function: &str, provider: &str, theirs: Option<&str>, ours: &str) -> Result<()> {
    match theirs {
        Some(a) if a != ours => Err(hinted(
            format!(
                "{function}: architecture = \"{ours}\" but capacity provider {provider} only \
                 runs {a} instances"
            ),
            format!(
                "build for {a} (`architecture = \"{a}\"`) or use a provider with {ours} \
                 instances"
            ),
        )),
        _ => Ok(()),
    }
}

/// What this concern plans: the steps before the function's own (role,
/// provider), the function's `CapacityProviderConfig`, the record to keep
/// in the function's tags, and the clean-up after the alias moved.
pub struct CapacityPlan<C> {
    pub changes: Vec<C>,
    pub config: Option<CapacityConfig>,
    pub records: BTreeMap<String, String>,
    pub cleanup: Vec<C>,
}

/// Decides the provider's and the operator role's changes. Reads: the
/// caller (for ARNs), the provider, its tags, the operator role; nothing
/// when the function is not on Managed Instances and never was.
/// Long: one decision per case (ARN or table; new, ours, someone else's;
/// what changed), each with its refusal.
pub async fn plan<A: Aws, C>(
    api: &A,
    function: &str,
    wanted: Option<&Wanted>,
    remote: Option<&FunctionState>,
    architecture: &str,
) -> Result<CapacityPlan<C>>
where
    C: From<OperatorRole> + From<ProviderChange>,
{
    let mut out = CapacityPlan {
        changes: Vec::new(),
        config: None,
        records: BTreeMap::new(),
        cleanup: Vec::new(),
    };
    let remote_config = remote.and_then(|r| r.settings.capacity.as_ref());
    match (remote, remote_config, wanted) {
        (Some(_), Some(c), None) => {
            return Err(hinted(
                format!(
                    "{function} runs on Lambda Managed Instances (capacity provider {}) and AWS \
                     cannot take a function off them",
                    c.provider_arn
                ),
                "keep the [managed-instances] table, or deploy it under a new function name \
                 (and delete the old function)",
            ));
        }
        (Some(_), None, Some(_)) => {
            return Err(hinted(
                format!(
                    "{function} already exists on Lambda's default compute and AWS cannot move \
                     an existing function onto Managed Instances"
                ),
                "deploy it under a new function name (and delete the old function), or remove \
                 the [managed-instances] table",
            ));
        }
        _ => {}
    }
    let recorded = remote.and_then(|r| r.tags.get(RECORD_TAG)).cloned();
    let Some(wanted) = wanted else {
        return Ok(out);
    };
    let caller = api.caller().await?;
    let (provider_arn, created_name) = match &wanted.provider {
        ProviderChoice::Arn(arn) => {
            let p = api.get_capacity_provider(arn).await?.ok_or_else(|| {
                hinted(
                    format!("{function}: capacity provider {arn} does not exist"),
                    "check the ARN, --region and --profile, or describe the provider as a \
                     table for cargo-fn to create",
                )
            })?;
            refuse_failed(&p)?;
            check_arch(
                function,
                &p.spec.name,
                p.spec.architecture.as_deref(),
                architecture,
            )?;
            if p.state != "Active" {
                out.changes.push(C::from(ProviderChange::Wait {
                    name: p.spec.name.clone(),
                }));
            }
            (p.arn, None)
        }
        ProviderChoice::Create(spec) => {
            let mut spec = (**spec).clone().normalized();
            // The instances must run the function's architecture.
            spec.architecture
                .get_or_insert_with(|| architecture.to_string());
            let arn = format!(
                "arn:{}:lambda:{}:{}:capacity-provider:{}",
                caller.partition, caller.region, caller.account, spec.name
            );
            if spec.operator_role_arn.is_empty() {
                let role = operator_role_name(&spec.name);
                spec.operator_role_arn = format!(
                    "arn:{}:iam::{}:role/{role}",
                    caller.partition, caller.account
                );
                if let Some(step) =
                    plan_operator_role(api, &role, &spec.name, &caller.partition).await?
                {
                    out.changes.push(C::from(step));
                }
            }
            match api.get_capacity_provider(&spec.name).await? {
                None => out.changes.push(C::from(ProviderChange::Create {
                    spec: spec.clone(),
                    function: function.to_string(),
                })),
                Some(p) => {
                    let tags = api.capacity_provider_tags(&p.arn).await?;
                    if tags.get(MANAGED_BY_KEY).map(String::as_str) != Some(MANAGED_BY_VALUE) {
                        return Err(hinted(
                            format!(
                                "capacity provider {} exists but was not created by cargo-fn \
                                 (no tag {MANAGED_BY_KEY}={MANAGED_BY_VALUE})",
                                spec.name
                            ),
                            format!(
                                "set `capacity-provider = \"{}\"` to run on it as it is, or \
                                 pick another name",
                                p.arn
                            ),
                        ));
                    }
                    refuse_failed(&p)?;
                    refuse_fixed(&p.spec, &spec)?;
                    if p.spec.scaling != spec.scaling {
                        out.changes.push(C::from(ProviderChange::Update {
                            name: spec.name.clone(),
                            before: p.spec.scaling.clone(),
                            after: spec.scaling.clone(),
                        }));
                    } else if p.state != "Active" {
                        out.changes.push(C::from(ProviderChange::Wait {
                            name: spec.name.clone(),
                        }));
                    }
                }
            }
            out.records.insert(RECORD_TAG.into(), spec.name.clone());
            (arn, Some(spec.name))
        }
    };
    if let Some(old) = recorded.filter(|old| Some(old) != created_name.as_ref()) {
        out.cleanup.push(C::from(ProviderChange::Delete {
            name: old,
            function: function.to_string(),
        }));
    }
    out.config = Some(CapacityConfig {
        provider_arn,
        max_concurrency: wanted.max_concurrency,
        memory_gib_per_vcpu: wanted.memory_gib_per_vcpu,
    });
    Ok(out)
}

fn refuse_failed(p: &ProviderState) -> Result<()> {
    if p.state == "Failed" || p.state == "Deleting" {
        return Err(hinted(
            format!("capacity provider {} is {}", p.spec.name, p.state),
            "nothing was changed; look at the provider in the Lambda console (its VPC, \
             subnets and operator role), delete it, and re-run",
        ));
    }
    Ok(())
}

/// Refuses a change AWS cannot make to an existing provider.
fn refuse_fixed(remote: &ProviderSpec, wanted: &ProviderSpec) -> Result<()> {
    let fixed = [
        ("subnets", remote.subnets != wanted.subnets),
        (
            "security-groups",
            remote.security_groups != wanted.security_groups,
        ),
        (
            "operator-role",
            remote.operator_role_arn != wanted.operator_role_arn,
        ),
        ("architecture", remote.architecture != wanted.architecture),
        (
            "allowed-instance-types",
            remote.allowed_instance_types != wanted.allowed_instance_types,
        ),
        (
            "excluded-instance-types",
            remote.excluded_instance_types != wanted.excluded_instance_types,
        ),
        ("kms-key", remote.kms_key_arn != wanted.kms_key_arn),
    ];
    let changed: Vec<&str> = fixed.iter().filter(|(_, c)| *c).map(|(f, _)| *f).collect();
    if changed.is_empty() {
        return Ok(());
    }
    Err(hinted(
        format!(
            "capacity provider {}: {} cannot change after creation (AWS updates only the \
             scaling of a capacity provider)",
            wanted.name,
            changed.join(", ")
        ),
        "give the provider a new `name`: cargo-fn creates it, moves the function onto it and \
         deletes the old one",
    ))
}

async fn plan_operator_role<A: Aws>(
    api: &A,
    role: &str,
    provider: &str,
    partition: &str,
) -> Result<Option<OperatorRole>> {
    let policy = operator_policy_arn(partition);
    let create = match api.get_role(role).await? {
        None => true,
        Some(r) => {
            if r.tags.get(MANAGED_BY_KEY).map(String::as_str) != Some(MANAGED_BY_VALUE) {
                return Err(hinted(
                    format!(
                        "the IAM role {role} exists but was not created by cargo-fn (no tag \
                         {MANAGED_BY_KEY}={MANAGED_BY_VALUE})"
                    ),
                    format!(
                        "set `operator-role = \"{}\"` to use it, or delete it",
                        r.arn
                    ),
                ));
            }
            if api.attached_role_policies(role).await?.contains(&policy) {
                return Ok(None);
            }
            false
        }
    };
    Ok(Some(OperatorRole {
        role: role.to_string(),
        provider: provider.to_string(),
        policy_arn: policy,
        create,
    }))
}

/// The operator role cargo-fn creates for a provider, and its policy.
#[derive(Debug, Clone, PartialEq)]
pub struct OperatorRole {
    pub role: String,
    pub provider: String,
    pub policy_arn: String,
    /// The role does not exist yet (otherwise only the policy is attached).
    pub create: bool,
}

impl Step for OperatorRole {
    fn view(&self) -> View {
        let mut v = View::new(
            "operator-role",
            &self.role,
            if self.create {
                Action::Create
            } else {
                Action::Update
            },
        )
        .after(serde_json::json!({
            "trusts": "lambda.amazonaws.com",
            "policy": OPERATOR_POLICY_NAME,
            "capacity_provider": self.provider,
        }));
        if self.create {
            v = v.call(format!(
                "iam:CreateRole {} (trusts lambda.amazonaws.com, tag {MANAGED_BY_KEY}={MANAGED_BY_VALUE})",
                self.role
            ));
        }
        v.call(format!(
            "iam:AttachRolePolicy {} {}",
            self.role, self.policy_arn
        ))
    }

    async fn apply<A: Aws>(&self, api: &A, cx: &mut Ctx<'_>) -> Result<()> {
        if self.create {
            cx.ui
                .status("Creating", format!("operator role {}", self.role));
            let tags = BTreeMap::from([
                (MANAGED_BY_KEY.to_string(), MANAGED_BY_VALUE.to_string()),
                (RECORD_TAG.to_string(), self.provider.clone()),
            ]);
            let description = format!(
                "Lambda Managed Instances operator role of capacity provider {} (cargo-fn)",
                self.provider
            );
            match api
                .create_role(&self.role, super::TRUST_POLICY, &description, &tags)
                .await
            {
                Ok(_) => {}
                // A dropped response to an earlier attempt created it.
                Err(e) if e.is("EntityAlreadyExists") => {}
                Err(e) => return Err(e.into()),
            }
        }
        api.attach_role_policy(&self.role, &self.policy_arn).await?;
        Ok(())
    }
}

/// A capacity provider's change.
#[derive(Debug, Clone, PartialEq)]
pub enum ProviderChange {
    /// `CreateCapacityProvider`, then wait until it is Active.
    Create {
        spec: ProviderSpec,
        function: String,
    },
    /// `UpdateCapacityProvider` (scaling only), then wait until Active.
    Update {
        name: String,
        before: ProviderScaling,
        after: ProviderScaling,
    },
    /// Only wait until it is Active (a provider still being created).
    Wait { name: String },
    /// `DeleteCapacityProvider` of one cargo-fn created and the
    /// configuration no longer names.
    Delete { name: String, function: String },
}

fn scaling_view(s: &ProviderScaling) -> serde_json::Value {
    serde_json::json!({
        "max_vcpu": s.max_vcpu, "mode": s.mode, "target_cpu": s.target_cpu,
    })
}

impl Step for ProviderChange {
    fn view(&self) -> View {
        match self {
            ProviderChange::Create { spec, .. } => {
                View::new("capacity-provider", &spec.name, Action::Create)
                    .after(serde_json::json!({
                        "subnets": spec.subnets,
                        "security_groups": spec.security_groups,
                        "operator_role": spec.operator_role_arn,
                        "architecture": spec.architecture,
                        "allowed_instance_types": spec.allowed_instance_types,
                        "excluded_instance_types": spec.excluded_instance_types,
                        "scaling": scaling_view(&spec.scaling),
                        "kms_key": spec.kms_key_arn,
                    }))
                    .call(format!(
                        "lambda:CreateCapacityProvider {} ({} subnets, tag {MANAGED_BY_KEY}={MANAGED_BY_VALUE})",
                        spec.name,
                        spec.subnets.len()
                    ))
                    .call(format!(
                        "lambda:GetCapacityProvider {} (until Active)",
                        spec.name
                    ))
            }
            ProviderChange::Update {
                name,
                before,
                after,
            } => View::new("capacity-provider", name, Action::Update)
                .before(scaling_view(before))
                .after(scaling_view(after))
                .call(format!(
                    "lambda:UpdateCapacityProvider {name} (scaling)"
                ))
                .call(format!("lambda:GetCapacityProvider {name} (until Active)")),
            ProviderChange::Wait { name } => {
                View::new("capacity-provider", name, Action::Update)
                    .call(format!("lambda:GetCapacityProvider {name} (until Active)"))
            }
            ProviderChange::Delete { name, .. } => {
                View::new("capacity-provider", name, Action::Delete)
                    .before(name)
                    .call(format!(
                        "lambda:DeleteCapacityProvider {name} (created by cargo-fn; once no \
                         other function's version runs on it)"
                    ))
            }
        }
    }

    async fn apply<A: Aws>(&self, api: &A, cx: &mut Ctx<'_>) -> Result<()> {
        match self {
            ProviderChange::Create { spec, function } => {
                cx.ui
                    .status("Creating", format!("capacity provider {}", spec.name));
                let tags = BTreeMap::from([
                    (MANAGED_BY_KEY.to_string(), MANAGED_BY_VALUE.to_string()),
                    (CREATED_FOR_TAG.to_string(), function.clone()),
                ]);
                create_with_role_wait(api, spec, &tags, cx).await?;
                wait_active(api, &spec.name, cx).await
            }
            ProviderChange::Update { name, after, .. } => {
                cx.ui
                    .status("Updating", format!("capacity provider {name} scaling"));
                api.update_capacity_provider(name, after).await?;
                wait_active(api, name, cx).await
            }
            ProviderChange::Wait { name } => wait_active(api, name, cx).await,
            ProviderChange::Delete { name, function } => delete(api, name, function, cx).await,
        }
    }
}

/// How long a new operator role may take to become assumable by Lambda.
const ROLE_WAIT: std::time::Duration = std::time::Duration::from_secs(40);

/// CreateCapacityProvider, retried while a new operator role is not
/// assumable yet (bounded), as CreateFunction is for the execution role.
async fn create_with_role_wait<A: Aws>(
    api: &A,
    spec: &ProviderSpec,
    tags: &BTreeMap<String, String>,
    cx: &Ctx<'_>,
) -> Result<()> {
    let started = std::time::Instant::now();
    let mut delay = std::time::Duration::from_millis(500);
    loop {
        match api.create_capacity_provider(spec, tags).await {
            Ok(_) => return Ok(()),
            // A dropped response to an earlier attempt created it.
            Err(e) if e.is("ResourceConflictException") => {
                let ours = api
                    .get_capacity_provider(&spec.name)
                    .await?
                    .is_some_and(|p| p.spec == *spec);
                return if ours { Ok(()) } else { Err(e.into()) };
            }
            Err(e)
                if e.is("InvalidParameterValueException")
                    && e.message.contains("assume")
                    && started.elapsed() < ROLE_WAIT =>
            {
                let _s = cx.ui.step(format!(
                    "waiting for the operator role {} to become assumable",
                    spec.operator_role_arn
                ));
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(5));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

async fn wait_active<A: Aws>(api: &A, name: &str, cx: &Ctx<'_>) -> Result<()> {
    let _s = cx.ui.step(format!(
        "waiting for capacity provider {name} to become Active"
    ));
    match api.wait_capacity_provider_active(name).await {
        Ok(_) => Ok(()),
        Err(e) => Err(hinted(
            format!("{e}"),
            "the function was not changed and no alias moved; look at the provider in the \
             Lambda console (its subnets, security groups and operator role), fix or delete \
             it, and re-run",
        )),
    }
}

/// Deletes a provider cargo-fn created once the configuration no longer
/// names it: this function's versions on it first (no alias serves them
/// any more: the alias moved before this step), then the provider. Kept,
/// with a warning, while another function's versions run on it.
async fn delete<A: Aws>(api: &A, name: &str, function: &str, cx: &mut Ctx<'_>) -> Result<()> {
    let Some(p) = api.get_capacity_provider(name).await? else {
        return Ok(());
    };
    let tags = api.capacity_provider_tags(&p.arn).await?;
    if tags.get(MANAGED_BY_KEY).map(String::as_str) != Some(MANAGED_BY_VALUE) {
        cx.ui.warn(format!(
            "capacity provider {name} was not created by cargo-fn; it is kept"
        ));
        return Ok(());
    }
    let prefix = cx
        .latest
        .as_ref()
        .map(|l| format!("{}:", l.arn))
        .unwrap_or_default();
    let on_it = api.capacity_provider_versions(name).await?;
    let (ours, others): (Vec<&String>, Vec<&String>) = on_it
        .iter()
        .partition(|arn| !prefix.is_empty() && arn.starts_with(&prefix));
    if !others.is_empty() {
        cx.ui.warn(format!(
            "capacity provider {name} is kept: versions of other functions run on it ({})",
            others
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        return Ok(());
    }
    let served: Vec<String> = cx
        .alias
        .iter()
        .flat_map(|a| std::iter::once(a.version.clone()).chain(a.weights.keys().cloned()))
        .collect();
    for arn in ours {
        let version = &arn[prefix.len()..];
        if served.iter().any(|v| v == version) {
            anyhow::bail!(
                "version {version} of {function} runs on capacity provider {name} and is still \
                 served by alias {}; not deleting it",
                cx.opts.alias
            );
        }
        cx.ui.status(
            "Deleting",
            format!("{function} version {version} (on {name})"),
        );
        api.delete_version(function, version).await?;
    }
    cx.ui
        .status("Deleting", format!("capacity provider {name}"));
    api.delete_capacity_provider(name).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::super::tests::{cfg, opts, pkg};
    use super::super::{Outcome, deploy};
    use super::*;
    use crate::aws::fake::FakeAws;
    use crate::ui::Ui;

    /// A function on a provider cargo-fn creates, with `extra` merged into
    /// the provider table.
    fn managed(provider: Value, top: Value) -> FunctionConfig {
        let mut mi = json!({
            "capacity-provider": provider,
            "per-execution-environment-max-concurrency": 8,
        });
        if let (Some(m), Some(t)) = (mi.as_object_mut(), top.as_object()) {
            m.extend(t.clone());
        }
        cfg(json!({"memory": 4096, "managed-instances": mi}))
    }

    fn table(extra: Value) -> Value {
        let mut t = json!({
            "name": "cp-one",
            "subnets": ["subnet-b", "subnet-a"],
            "security-groups": ["sg-1"],
            "max-vcpu-count": 40,
        });
        if let (Some(m), Some(e)) = (t.as_object_mut(), extra.as_object()) {
            m.extend(e.clone());
        }
        t
    }

    async fn run(api: &FakeAws, c: &FunctionConfig) -> anyhow::Result<Outcome> {
        let (_, out) = deploy(api, c, &pkg("v1"), &opts(), false, &Ui::silent()).await?;
        Ok(out.expect("not a dry run"))
    }

    fn writes(api: &FakeAws) -> Vec<String> {
        api.calls()
            .into_iter()
            .filter(|c| !c.contains(":Get") && !c.contains(":List"))
            .collect()
    }

    #[tokio::test]
    async fn first_deploy_creates_operator_role_provider_then_the_function_on_it() {
        let api = FakeAws::new();
        let out = run(&api, &managed(table(json!({})), json!({})))
            .await
            .unwrap();
        assert_eq!(out.alias_version, "1");
        assert_eq!(
            writes(&api),
            [
                "iam:CreateRole",
                "iam:PutRolePolicy",
                "iam:CreateRole",
                "iam:AttachRolePolicy",
                "lambda:CreateCapacityProvider",
                "lambda:CreateFunction",
                "lambda:PublishVersion",
                "lambda:CreateAlias",
            ]
        );
        let providers = api.providers();
        let (p, tags) = &providers["cp-one"];
        assert_eq!(p.state, "Active");
        assert_eq!(p.spec.subnets, ["subnet-a", "subnet-b"]);
        assert_eq!(p.spec.architecture.as_deref(), Some("x86_64"));
        assert_eq!(p.spec.scaling.max_vcpu, Some(40));
        assert!(
            p.spec
                .operator_role_arn
                .ends_with(":role/cargo-fn-cp-cp-one")
        );
        assert_eq!(tags[MANAGED_BY_KEY], MANAGED_BY_VALUE);
        assert_eq!(tags[CREATED_FOR_TAG], "hello");
        assert_eq!(
            api.attached("cargo-fn-cp-cp-one"),
            ["arn:aws:iam::aws:policy/AWSLambdaManagedEC2ResourceOperator"]
        );
        let latest = api.latest("hello").unwrap();
        let c = latest.settings.capacity.clone().unwrap();
        assert_eq!(c.provider_arn, p.arn);
        assert_eq!(c.max_concurrency, Some(8));
        assert_eq!(latest.tags[RECORD_TAG], "cp-one");
    }

    #[tokio::test]
    async fn unchanged_redeploy_makes_no_write() {
        let api = FakeAws::new();
        let c = managed(table(json!({})), json!({}));
        run(&api, &c).await.unwrap();
        api.clear_calls();
        let (plan, _) = deploy(&api, &c, &pkg("v1"), &opts(), false, &Ui::silent())
            .await
            .unwrap();
        assert!(plan.is_noop(), "{}", plan.render());
        assert!(writes(&api).is_empty(), "{:?}", api.calls());
    }

    #[tokio::test]
    async fn scaling_change_updates_the_provider_and_publishes_nothing() {
        let api = FakeAws::new();
        run(&api, &managed(table(json!({})), json!({})))
            .await
            .unwrap();
        api.clear_calls();
        let c = managed(table(json!({"max-vcpu-count": 80})), json!({}));
        let out = run(&api, &c).await.unwrap();
        assert_eq!(writes(&api), ["lambda:UpdateCapacityProvider"]);
        assert!(!out.published);
        assert_eq!(api.providers()["cp-one"].0.spec.scaling.max_vcpu, Some(80));
    }

    #[tokio::test]
    async fn concurrency_change_updates_the_function_publishes_and_moves_the_alias() {
        let api = FakeAws::new();
        run(&api, &managed(table(json!({})), json!({})))
            .await
            .unwrap();
        api.clear_calls();
        let c = managed(
            table(json!({})),
            json!({"per-execution-environment-max-concurrency": 32}),
        );
        let (plan, out) = deploy(&api, &c, &pkg("v1"), &opts(), false, &Ui::silent())
            .await
            .unwrap();
        assert!(
            plan.render()
                .contains("per-execution-environment-max-concurrency: 8 -> 32"),
            "{}",
            plan.render()
        );
        assert_eq!(
            writes(&api),
            [
                "lambda:UpdateFunctionConfiguration",
                "lambda:PublishVersion",
                "lambda:UpdateAlias"
            ]
        );
        assert_eq!(out.unwrap().alias_version, "2");
    }

    #[tokio::test]
    async fn a_fixed_field_change_is_refused_before_any_write() {
        let api = FakeAws::new();
        run(&api, &managed(table(json!({})), json!({})))
            .await
            .unwrap();
        api.clear_calls();
        let c = managed(table(json!({"subnets": ["subnet-c"]})), json!({}));
        let err = run(&api, &c).await.unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("subnets cannot change"), "{text}");
        assert!(writes(&api).is_empty(), "{:?}", api.calls());
    }

    #[tokio::test]
    async fn a_failed_provider_stops_before_the_function_and_leaves_the_alias() {
        let api = FakeAws::new();
        api.fail_next_provider();
        let err = run(&api, &managed(table(json!({})), json!({})))
            .await
            .unwrap_err();
        assert!(format!("{err:#}").contains("Failed"), "{err:#}");
        assert!(api.latest("hello").is_none());

        // An existing function moving to a new provider that fails: the
        // alias stays on version 1.
        let api = FakeAws::new();
        run(&api, &managed(table(json!({})), json!({})))
            .await
            .unwrap();
        api.fail_next_provider();
        let c = managed(table(json!({"name": "cp-two"})), json!({}));
        assert!(run(&api, &c).await.is_err());
        assert_eq!(api.alias("hello", "live").unwrap().version, "1");
        assert_eq!(api.version_count("hello"), 1);
    }

    #[tokio::test]
    async fn moving_to_a_provider_by_arn_deletes_the_one_cargo_fn_made() {
        let api = FakeAws::new();
        run(&api, &managed(table(json!({})), json!({})))
            .await
            .unwrap();
        let theirs = api.add_provider(ProviderSpec {
            name: "shared".into(),
            subnets: vec!["subnet-z".into()],
            operator_role_arn: "arn:aws:iam::123456789012:role/ops".into(),
            architecture: Some("x86_64".into()),
            ..Default::default()
        });
        api.clear_calls();
        let out = run(&api, &managed(json!(theirs), json!({}))).await.unwrap();
        assert_eq!(out.alias_version, "2");
        let w = writes(&api);
        let alias_at = w.iter().position(|c| c == "lambda:UpdateAlias").unwrap();
        let delete_at = w
            .iter()
            .position(|c| c == "lambda:DeleteCapacityProvider")
            .unwrap();
        assert!(alias_at < delete_at, "{w:?}");
        assert!(w.contains(&"lambda:DeleteFunction".to_string()), "{w:?}");
        let providers = api.providers();
        assert!(!providers.contains_key("cp-one"));
        assert!(providers.contains_key("shared"));
        assert!(!api.latest("hello").unwrap().tags.contains_key(RECORD_TAG));
    }

    #[tokio::test]
    async fn managed_instances_cannot_be_added_to_or_removed_from_a_function() {
        let api = FakeAws::new();
        run(&api, &cfg(json!({"memory": 4096}))).await.unwrap();
        api.clear_calls();
        let err = run(&api, &managed(table(json!({})), json!({})))
            .await
            .unwrap_err();
        assert!(format!("{err:#}").contains("cannot move"), "{err:#}");
        assert!(writes(&api).is_empty());

        let api = FakeAws::new();
        run(&api, &managed(table(json!({})), json!({})))
            .await
            .unwrap();
        api.clear_calls();
        let err = run(&api, &cfg(json!({"memory": 4096}))).await.unwrap_err();
        assert!(format!("{err:#}").contains("cannot take"), "{err:#}");
        assert!(writes(&api).is_empty());
    }

    #[tokio::test]
    async fn a_provider_by_arn_of_another_architecture_is_refused() {
        let api = FakeAws::new();
        let arn = api.add_provider(ProviderSpec {
            name: "graviton".into(),
            subnets: vec!["subnet-z".into()],
            operator_role_arn: "arn:aws:iam::123456789012:role/ops".into(),
            architecture: Some("arm64".into()),
            ..Default::default()
        });
        let err = run(&api, &managed(json!(arn), json!({})))
            .await
            .unwrap_err();
        assert!(format!("{err:#}").contains("only runs arm64"), "{err:#}");
        assert!(writes(&api).is_empty());
    }

    #[tokio::test]
    async fn someone_elses_provider_of_the_same_name_is_refused() {
        let api = FakeAws::new();
        api.add_provider(ProviderSpec {
            name: "cp-one".into(),
            subnets: vec!["subnet-a".into()],
            operator_role_arn: "arn:aws:iam::123456789012:role/ops".into(),
            ..Default::default()
        });
        let err = run(&api, &managed(table(json!({})), json!({})))
            .await
            .unwrap_err();
        assert!(
            format!("{err:#}").contains("not created by cargo-fn"),
            "{err:#}"
        );
    }

    #[test]
    fn operator_role_names_fit_iam() {
        assert_eq!(operator_role_name("cp"), "cargo-fn-cp-cp");
        let long = operator_role_name(&"x".repeat(100));
        assert_eq!(long.len(), 64);
        assert_ne!(long, operator_role_name(&"x".repeat(99)));
    }
}
