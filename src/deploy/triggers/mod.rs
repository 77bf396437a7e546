//! Triggers in deploy: the configured triggers of a function compared with
//! what AWS has, as typed changes ([`TriggerChange`]), each carried in the
//! deploy plan as one `Change::Trigger` ([`TriggerStep`]) after the alias
//! move: `--dry-run` shows its view, the plan's executor applies it.
//!
//! Invariants: (1) every trigger targets the alias deploy moves (its
//! qualified ARN), never `$LATEST`. (2) cargo-fn only changes what it owns:
//! event source mappings tagged `cargo-fn:trigger`, schedules under the
//! function's name prefix with our description, bucket notifications and
//! permission statements whose id starts with `cargo-fn`, HTTP APIs tagged
//! with the function and trigger; anything else is left alone. (3) The plan
//! reads only; a configuration that matches AWS plans no change, so a
//! redeploy writes nothing. (4) Every step is idempotent and the plan is
//! recomputed from AWS, so a re-run after a failure part-way converges;
//! event source mappings are waited for until they settle.
//!
//! One file per kind, each planning its kind from what AWS holds and
//! carrying its changes out: `mappings` (SQS, Kinesis and DynamoDB event
//! source mappings), `schedules` (EventBridge Scheduler and its role),
//! `s3` (bucket notifications), `http` (API Gateway HTTP APIs), and `iam`
//! (the execution role's policy for the pull sources, and the retry while
//! a fresh IAM change reaches a service). This module holds the vocabulary
//! ([`TriggerChange`]), the permission statements the kinds share, and
//! diffs and sequences the kinds.
//!
//! Knows the configuration model and the AWS traits; not clap, not the SDK.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};

use crate::aws::triggers::{BucketNotifications, Caller, MappingSpec, Permission, ScheduleSpec};
use crate::aws::{IamApi, TriggerApi};
use crate::config::FunctionConfig;
use crate::ui::Ui;

use super::step::{Action, Aws, Ctx, FieldChange, Step, View};

mod http;
mod iam;
mod mappings;
mod s3;
mod schedules;

pub use http::HttpApiChange;
use mappings::mapping_text;

/// Tag on each event source mapping and HTTP API cargo-fn creates: the trigger name.
pub const TRIGGER_TAG: &str = "cargo-fn:trigger";
/// Tag on each HTTP API cargo-fn creates: the function name.
pub const FUNCTION_TAG: &str = "cargo-fn:function";

/// The function and alias the triggers point at.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub function: String,
    pub alias: String,
    pub partition: String,
    pub region: String,
    pub account: String,
    /// The execution role cargo-fn manages (by name); `None` when the
    /// configuration names a role of its own.
    pub own_role: Option<String>,
    /// The selected stage: what the triggers create is tagged with it
    /// (`cargo-fn:stage`) where the service has tags.
    pub stage: Option<String>,
}

impl Target {
    /// From the deployed function's (unqualified) ARN.
    pub fn from_function_arn(arn: &str, alias: &str, own_role: Option<String>) -> Result<Target> {
        let parts: Vec<&str> = arn.split(':').collect();
        if parts.len() < 7 || parts[0] != "arn" || parts[2] != "lambda" {
            bail!("unexpected function ARN {arn}");
        }
        Ok(Target {
            function: parts[6].to_string(),
            alias: alias.to_string(),
            partition: parts[1].to_string(),
            region: parts[3].to_string(),
            account: parts[4].to_string(),
            own_role,
            stage: None,
        })
    }

    /// For a function that does not exist yet: where it will be created.
    pub fn from_caller(
        c: &Caller,
        function: &str,
        alias: &str,
        own_role: Option<String>,
    ) -> Target {
        Target {
            function: function.to_string(),
            alias: alias.to_string(),
            partition: c.partition.clone(),
            region: c.region.clone(),
            account: c.account.clone(),
            own_role,
            stage: None,
        }
    }

    /// The tags of a resource created for these triggers: ours, the
    /// stage's, and `extra`.
    fn tags(&self, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut tags = BTreeMap::from([(
            crate::deploy::MANAGED_BY_KEY.to_string(),
            crate::deploy::MANAGED_BY_VALUE.to_string(),
        )]);
        if let Some(s) = &self.stage {
            tags.insert(crate::deploy::guard::STAGE_TAG.to_string(), s.clone());
        }
        tags.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        tags
    }

    /// The qualified ARN every trigger targets.
    pub fn alias_arn(&self) -> String {
        format!(
            "arn:{}:lambda:{}:{}:function:{}:{}",
            self.partition, self.region, self.account, self.function, self.alias
        )
    }

    fn arn(&self, service: &str, rest: &str) -> String {
        format!(
            "arn:{}:{service}:{}:{}:{rest}",
            self.partition, self.region, self.account
        )
    }

    fn role_arn(&self, name: &str) -> String {
        format!("arn:{}:iam::{}:role/{name}", self.partition, self.account)
    }
}

/// One change to AWS for the triggers of a function.
#[derive(Debug, Clone, PartialEq)]
pub enum TriggerChange {
    /// Creates or replaces an inline policy of a role cargo-fn owns.
    PutRolePolicy {
        role: String,
        policy: &'static str,
        document: String,
        summary: String,
    },
    DeleteRolePolicy {
        role: String,
        policy: &'static str,
    },
    /// The role EventBridge Scheduler assumes to invoke the alias.
    CreateSchedulerRole {
        role: String,
        trust: String,
    },
    DeleteSchedulerRole {
        role: String,
    },
    CreateMapping {
        trigger: String,
        spec: MappingSpec,
        /// Our mappings of the same source still being deleted.
        after_deletion_of: Vec<String>,
    },
    UpdateMapping {
        trigger: String,
        uuid: String,
        spec: MappingSpec,
        fields: Vec<String>,
    },
    DeleteMapping {
        trigger: String,
        uuid: String,
        source: String,
    },
    CreateSchedule {
        trigger: String,
        spec: ScheduleSpec,
    },
    UpdateSchedule {
        trigger: String,
        spec: ScheduleSpec,
        fields: Vec<String>,
    },
    DeleteSchedule {
        name: String,
    },
    AddPermission {
        permission: Permission,
    },
    RemovePermission {
        sid: String,
    },
    /// The bucket's whole notification configuration, foreign entries kept.
    PutNotifications {
        bucket: String,
        config: BucketNotifications,
        summary: String,
    },
    HttpApi(Box<HttpApiChange>),
    DeleteHttpApi {
        trigger: String,
        id: String,
        name: String,
    },
}

/// The trigger changes of one function, from reads only.
#[derive(Debug, Clone, Default)]
pub struct TriggerPlan {
    pub function: String,
    pub alias_arn: String,
    pub changes: Vec<TriggerChange>,
    /// The invoke URL of each HTTP API that exists already (trigger -> URL).
    pub urls: BTreeMap<String, String>,
    /// Notes for the user (a configured role needs these statements, ...).
    pub notes: Vec<String>,
    /// What the changes point at (set by [`plan_changes`]).
    pub target: Option<Target>,
}

fn describe(c: &TriggerChange) -> String {
    match c {
        TriggerChange::PutRolePolicy {
            role,
            policy,
            summary,
            ..
        } => format!("iam:PutRolePolicy {role} {policy} ({summary})"),
        TriggerChange::DeleteRolePolicy { role, policy } => {
            format!("iam:DeleteRolePolicy {role} {policy}")
        }
        TriggerChange::CreateSchedulerRole { role, .. } => {
            format!("iam:CreateRole {role} (trusts scheduler.amazonaws.com, this account only)")
        }
        TriggerChange::DeleteSchedulerRole { role } => format!("iam:DeleteRole {role}"),
        TriggerChange::CreateMapping { trigger, spec, .. } => format!(
            "trigger {trigger}: lambda:CreateEventSourceMapping {} ({})",
            spec.event_source_arn,
            mapping_text(spec)
        ),
        TriggerChange::UpdateMapping {
            trigger,
            uuid,
            fields,
            ..
        } => format!(
            "trigger {trigger}: lambda:UpdateEventSourceMapping {uuid} ({})",
            fields.join(", ")
        ),
        TriggerChange::DeleteMapping {
            trigger,
            uuid,
            source,
        } => format!("trigger {trigger}: lambda:DeleteEventSourceMapping {uuid} ({source})"),
        TriggerChange::CreateSchedule { trigger, spec } => format!(
            "trigger {trigger}: scheduler:CreateSchedule {} {}",
            spec.name, spec.expression
        ),
        TriggerChange::UpdateSchedule {
            trigger,
            spec,
            fields,
        } => format!(
            "trigger {trigger}: scheduler:UpdateSchedule {} ({})",
            spec.name,
            fields.join(", ")
        ),
        TriggerChange::DeleteSchedule { name } => format!("scheduler:DeleteSchedule {name}"),
        TriggerChange::AddPermission { permission: p } => format!(
            "lambda:AddPermission {} ({} from {})",
            p.sid,
            p.principal,
            p.source_arn.as_deref().unwrap_or("-")
        ),
        TriggerChange::RemovePermission { sid } => format!("lambda:RemovePermission {sid}"),
        TriggerChange::PutNotifications {
            bucket, summary, ..
        } => format!("s3:PutBucketNotificationConfiguration {bucket} ({summary})"),
        TriggerChange::HttpApi(h) => {
            let mut steps = Vec::new();
            if h.api.is_none() {
                steps.push(format!("create API {}", h.name));
            }
            if h.update_cors {
                steps.push("set CORS".to_string());
            }
            if h.integration.is_none() {
                steps.push(format!("create integration (payload {})", h.payload_format));
            } else if h.update_integration {
                steps.push(format!("update integration (payload {})", h.payload_format));
            }
            for r in &h.add_routes {
                steps.push(format!("route {r}"));
            }
            for r in &h.delete_routes {
                steps.push(format!("delete route {}", r.key));
            }
            if let Some(s) = &h.create_stage {
                steps.push(format!("stage {s}"));
            }
            if h.permission {
                steps.push("permission for apigateway.amazonaws.com".to_string());
            }
            format!("trigger {}: apigateway {}", h.trigger, steps.join(", "))
        }
        TriggerChange::DeleteHttpApi { trigger, id, name } => {
            format!("trigger {trigger}: apigateway:DELETE API {name} ({id})")
        }
    }
}

/// The id of a trigger's permission statement (`s3`, `http`): ours by prefix.
fn permission_sid(kind: &str, trigger: &str) -> String {
    format!("cargo-fn-{kind}-{trigger}")
}

/// The ARN of an SQS queue given by name or ARN.
pub fn queue_arn(t: &Target, queue: &str) -> String {
    if queue.starts_with("arn:") {
        queue.to_string()
    } else {
        t.arn("sqs", queue)
    }
}

/// A policy document as IAM returns it equals ours (key order aside).
fn same_json(a: &str, b: &serde_json::Value) -> bool {
    serde_json::from_str::<serde_json::Value>(a).is_ok_and(|a| &a == b)
}

/// Computes the trigger changes of one function. Reads only.
/// `exists`: whether the function (and so its alias) exists already; when
/// not, nothing bound to it is read.
pub async fn plan<A: TriggerApi + IamApi>(
    api: &A,
    cfg: &FunctionConfig,
    t: &Target,
    exists: bool,
) -> Result<TriggerPlan> {
    let mut plan = TriggerPlan {
        function: t.function.clone(),
        alias_arn: t.alias_arn(),
        ..Default::default()
    };
    let alias_arn = t.alias_arn();
    let triggers = &cfg.triggers;
    let permissions = if exists {
        api.list_trigger_permissions(&alias_arn).await?
    } else {
        Vec::new()
    };

    // Mapping deletions and updates, then the execution role's policy,
    // then new mappings: a mapping never runs without the permission it
    // reads its source with (a removed trigger's mapping goes before its
    // permission; a new one comes after it).
    let creates = mappings::plan(api, t, triggers, exists, &mut plan).await?;
    iam::plan_role_policy(api, t, triggers, &mut plan).await?;
    plan.changes.extend(creates);
    schedules::plan(api, t, triggers, &mut plan).await?;
    s3::plan(api, t, triggers, &permissions, &mut plan).await?;
    http::plan(api, t, triggers, &permissions, &mut plan).await?;
    Ok(plan)
}

/// Two statements grant the same principal from the same source.
fn same_permission(a: &Permission, b: &Permission) -> bool {
    a.principal == b.principal
        && a.source_arn == b.source_arn
        && a.source_account == b.source_account
}

/// Applies one trigger change. Each is idempotent: a re-run after a failure
/// re-plans from AWS and finishes the job.
pub async fn apply<A: Aws>(
    api: &A,
    t: &Target,
    change: &TriggerChange,
    urls: &mut BTreeMap<String, String>,
    ui: &Ui,
) -> Result<()> {
    let alias_arn = t.alias_arn();
    match change {
        TriggerChange::PutRolePolicy {
            role,
            policy,
            document,
            ..
        } => {
            ui.status("Updating", format!("IAM policy {policy} of {role}"));
            api.put_role_policy(role, policy, document).await?;
        }
        TriggerChange::DeleteRolePolicy { role, policy } => {
            ui.status("Removing", format!("IAM policy {policy} of {role}"));
            api.delete_role_policy(role, policy).await?;
        }
        TriggerChange::CreateSchedulerRole { role, trust } => {
            schedules::create_role(api, t, role, trust, ui).await?;
        }
        TriggerChange::DeleteSchedulerRole { role } => {
            ui.status("Removing", format!("IAM role {role}"));
            api.delete_role(role).await?;
        }
        TriggerChange::CreateMapping {
            trigger,
            spec,
            after_deletion_of,
        } => mappings::create(api, t, trigger, spec, after_deletion_of, ui).await?,
        TriggerChange::UpdateMapping {
            trigger,
            uuid,
            spec,
            fields,
        } => mappings::update(api, trigger, uuid, spec, fields, ui).await?,
        TriggerChange::DeleteMapping { trigger, uuid, .. } => {
            mappings::delete(api, trigger, uuid, ui).await?;
        }
        TriggerChange::CreateSchedule { trigger, spec } => {
            schedules::create(api, &alias_arn, trigger, spec, ui).await?;
        }
        TriggerChange::UpdateSchedule {
            trigger,
            spec,
            fields,
        } => schedules::update(api, trigger, spec, fields, ui).await?,
        TriggerChange::DeleteSchedule { name } => {
            ui.status("Removing", format!("schedule {name}"));
            api.delete_schedule(name).await?;
        }
        TriggerChange::AddPermission { permission } => {
            ui.status(
                "Allowing",
                format!("{} to invoke {alias_arn}", permission.principal),
            );
            add_permission(api, &alias_arn, permission).await?;
        }
        TriggerChange::RemovePermission { sid } => {
            ui.status("Removing", format!("permission {sid}"));
            api.remove_trigger_permission(&alias_arn, sid).await?;
        }
        TriggerChange::PutNotifications {
            bucket,
            config,
            summary,
        } => {
            ui.status(
                "Updating",
                format!("notifications of bucket {bucket} ({summary})"),
            );
            api.put_notifications(bucket, config).await?;
        }
        TriggerChange::HttpApi(h) => {
            let url = http::apply(api, t, h, ui).await?;
            urls.insert(h.trigger.clone(), url);
        }
        TriggerChange::DeleteHttpApi { trigger, id, name } => {
            ui.status("Removing", format!("HTTP API {name} (trigger {trigger})"));
            api.delete_http_api(id).await?;
        }
    }
    Ok(())
}

/// AddPermission that tolerates the statement left by an interrupted run.
async fn add_permission<A: TriggerApi>(api: &A, alias_arn: &str, p: &Permission) -> Result<()> {
    match api.add_trigger_permission(alias_arn, p).await {
        Ok(()) => Ok(()),
        Err(e) if e.is("ResourceConflictException") => {
            api.remove_trigger_permission(alias_arn, &p.sid).await?;
            api.add_trigger_permission(alias_arn, p).await?;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// The execution role cargo-fn manages for this function, if any.
fn own_role(cfg: &FunctionConfig) -> Option<String> {
    cfg.role
        .is_none()
        .then(|| super::role::managed_role_name(&cfg.name))
}

/// The function tag recording that cargo-fn made triggers for `alias`
/// (written last, with the plan's other records).
pub fn record_tag(alias: &str) -> String {
    super::tags::record_tag("triggers", alias)
}

/// Whether deploy looks at triggers at all: when the configuration sets
/// `triggers`, or the function's records say cargo-fn made some for this
/// alias (so removing the key removes them). A function that never had any
/// costs no call.
pub fn configured(
    cfg: &FunctionConfig,
    alias: &str,
    remote_tags: Option<&BTreeMap<String, String>>,
) -> bool {
    !cfg.triggers.is_empty()
        || cfg
            .sources
            .get("triggers")
            .is_some_and(|s| *s != crate::config::Source::Default)
        || remote_tags.is_some_and(|t| t.contains_key(&record_tag(alias)))
}

/// The trigger changes of a deploy, in the plan's vocabulary, with the
/// notes to show and the invoke URLs of HTTP APIs that need no change.
/// `remote`: the function when it exists (else the account comes from
/// `sts:GetCallerIdentity`); `alias_exists`: whether anything can be bound
/// to the alias yet. `None` when neither the configuration nor the
/// function's records mention triggers: no call at all.
pub async fn plan_changes<A: Aws>(
    api: &A,
    cfg: &FunctionConfig,
    opts: &crate::deploy::DeployOptions,
    remote: Option<&crate::aws::FunctionState>,
    alias_exists: bool,
) -> Result<Option<TriggerPlan>> {
    let alias = opts.alias.as_str();
    if !configured(cfg, alias, remote.map(|r| &r.tags)) {
        return Ok(None);
    }
    let function_arn = remote.map(|r| r.arn.as_str());
    let mut target = match function_arn {
        Some(arn) => Target::from_function_arn(arn, alias, own_role(cfg))?,
        None => {
            let caller = api.caller().await?;
            Target::from_caller(&caller, &cfg.name, alias, own_role(cfg))
        }
    };
    target.stage = opts.stage.clone();
    let mut p = plan(api, cfg, &target, function_arn.is_some() && alias_exists).await?;
    p.target = Some(target);
    Ok(Some(p))
}

impl TriggerPlan {
    /// The changes as steps of the deploy plan (as the plan's change type).
    pub fn into_changes<C: From<Box<TriggerStep>>>(self) -> Vec<C> {
        let Some(target) = self.target else {
            return Vec::new();
        };
        self.changes
            .into_iter()
            .map(|change| {
                C::from(Box::new(TriggerStep {
                    target: target.clone(),
                    change,
                }))
            })
            .collect()
    }
}

/// One trigger change as a step of the deploy plan.
#[derive(Debug, Clone, PartialEq)]
pub struct TriggerStep {
    pub target: Target,
    pub change: TriggerChange,
}

impl TriggerStep {
    fn kind_resource_action(&self) -> (&'static str, String, Action) {
        match &self.change {
            TriggerChange::PutRolePolicy { role, policy, .. } => {
                ("role-policy", format!("{role}/{policy}"), Action::Update)
            }
            TriggerChange::DeleteRolePolicy { role, policy } => {
                ("role-policy", format!("{role}/{policy}"), Action::Delete)
            }
            TriggerChange::CreateSchedulerRole { role, .. } => {
                ("scheduler-role", role.clone(), Action::Create)
            }
            TriggerChange::DeleteSchedulerRole { role } => {
                ("scheduler-role", role.clone(), Action::Delete)
            }
            TriggerChange::CreateMapping { trigger, .. } => {
                ("event-source-mapping", trigger.clone(), Action::Create)
            }
            TriggerChange::UpdateMapping { trigger, .. } => {
                ("event-source-mapping", trigger.clone(), Action::Update)
            }
            TriggerChange::DeleteMapping { trigger, .. } => {
                ("event-source-mapping", trigger.clone(), Action::Delete)
            }
            TriggerChange::CreateSchedule { spec, .. } => {
                ("schedule", spec.name.clone(), Action::Create)
            }
            TriggerChange::UpdateSchedule { spec, .. } => {
                ("schedule", spec.name.clone(), Action::Update)
            }
            TriggerChange::DeleteSchedule { name } => ("schedule", name.clone(), Action::Delete),
            TriggerChange::AddPermission { permission } => {
                ("trigger-permission", permission.sid.clone(), Action::Create)
            }
            TriggerChange::RemovePermission { sid } => {
                ("trigger-permission", sid.clone(), Action::Delete)
            }
            TriggerChange::PutNotifications { bucket, .. } => {
                ("bucket-notifications", bucket.clone(), Action::Update)
            }
            TriggerChange::HttpApi(h) => (
                "http-api",
                h.name.clone(),
                if h.api.is_none() {
                    Action::Create
                } else {
                    Action::Update
                },
            ),
            TriggerChange::DeleteHttpApi { name, .. } => ("http-api", name.clone(), Action::Delete),
        }
    }
}

impl Step for TriggerStep {
    fn view(&self) -> View {
        let (kind, resource, action) = self.kind_resource_action();
        let mut v = View::new(kind, resource, action).call(describe(&self.change));
        match &self.change {
            TriggerChange::CreateMapping { spec, .. } => {
                v = v.after(format!(
                    "{} -> {} ({})",
                    spec.event_source_arn,
                    self.target.alias_arn(),
                    mapping_text(spec)
                ));
            }
            TriggerChange::CreateSchedule { spec, .. } => {
                v = v.after(format!("{} -> {}", spec.expression, spec.target_arn));
            }
            TriggerChange::UpdateMapping { fields, .. }
            | TriggerChange::UpdateSchedule { fields, .. } => {
                // `field old -> new`, as the diff wrote them.
                v.fields = fields
                    .iter()
                    .filter_map(|f| {
                        let (field, rest) = f.split_once(' ')?;
                        let (old, new) = rest.split_once(" -> ")?;
                        Some(FieldChange {
                            field: field.to_string(),
                            old: old.to_string(),
                            new: new.to_string(),
                        })
                    })
                    .collect();
                v.calls = vec![match &self.change {
                    TriggerChange::UpdateMapping { trigger, uuid, .. } => {
                        format!("trigger {trigger}: lambda:UpdateEventSourceMapping {uuid}")
                    }
                    _ => format!("scheduler:UpdateSchedule {}", v.resource),
                }];
            }
            _ => {}
        }
        v
    }

    async fn apply<A: Aws>(&self, api: &A, cx: &mut Ctx<'_>) -> Result<()> {
        apply(api, &self.target, &self.change, &mut cx.trigger_urls, cx.ui)
            .await
            .with_context(|| format!("applying: {}", describe(&self.change)))
    }
}

#[cfg(test)]
mod tests;
