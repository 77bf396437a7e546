//! EventBridge Scheduler schedules: their names under the function's
//! prefix, the spec with Scheduler's defaults sent explicitly, their diff,
//! and the scheduler role (trusted by Scheduler in this account only,
//! allowed to invoke the alias and nothing else) that exists while any
//! schedule does.

use std::collections::BTreeMap;

use anyhow::Result;
use sha2::{Digest, Sha256};

use super::iam::iam_retry;
use super::{Target, TriggerChange, TriggerPlan, same_json};
use crate::aws::triggers::ScheduleSpec;
use crate::aws::{IamApi, TriggerApi};
use crate::config::triggers::ScheduleTrigger;
use crate::config::{Trigger, TriggerKind};
use crate::deploy::{MANAGED_BY_KEY, MANAGED_BY_VALUE};
use crate::error::hinted;
use crate::ui::Ui;

/// Inline policy of the scheduler role.
pub const SCHEDULER_POLICY: &str = "cargo-fn-invoke";

/// Short hash for names that would be too long.
fn short_hash(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The prefix of the function's schedule names (at most 23 characters, so
/// that a 40-character trigger name fits Scheduler's 64).
pub fn schedule_prefix(function: &str) -> String {
    if function.len() <= 22 {
        format!("{function}.")
    } else {
        format!("{}-{}.", &function[..13], short_hash(function))
    }
}

/// The role EventBridge Scheduler assumes for this function (≤ 64 characters).
pub fn scheduler_role_name(function: &str) -> String {
    let name = format!("cargo-fn-{function}-scheduler");
    if name.len() <= 64 {
        name
    } else {
        format!(
            "cargo-fn-{}-{}-scheduler",
            &function[..35],
            short_hash(function)
        )
    }
}

/// The IAM description of the scheduler role (not an execution role: only
/// EventBridge Scheduler assumes it, to invoke the function's alias).
pub fn scheduler_role_description(function: &str) -> String {
    format!("EventBridge Scheduler role created by cargo-fn to invoke {function}")
}

fn schedule_description(function: &str, trigger: &str) -> String {
    format!("cargo-fn trigger {trigger} of {function}")
}

pub(super) fn schedule_spec(t: &Target, name: &str, s: &ScheduleTrigger) -> ScheduleSpec {
    ScheduleSpec {
        name: format!("{}{name}", schedule_prefix(&t.function)),
        description: schedule_description(&t.function, name),
        expression: s.expression.clone(),
        timezone: s.timezone.clone(),
        flexible_window: s.flexible_window.map(|n| n as i32),
        target_arn: t.alias_arn(),
        role_arn: t.role_arn(&scheduler_role_name(&t.function)),
        input: s.input.clone(),
        // Scheduler's defaults, sent explicitly so they read back the same.
        maximum_event_age: Some(s.maximum_event_age.unwrap_or(86_400) as i32),
        maximum_retry_attempts: Some(s.maximum_retry_attempts.unwrap_or(185) as i32),
        enabled: s.enabled,
    }
}

pub(super) fn schedule_diff(want: &ScheduleSpec, have: &ScheduleSpec) -> Vec<String> {
    let mut out = Vec::new();
    let mut cmp = |name: &str, w: String, h: String| {
        if w != h {
            out.push(format!("{name} {h} -> {w}"));
        }
    };
    let o = |v: &Option<i32>| v.map(|n| n.to_string()).unwrap_or_else(|| "-".into());
    cmp(
        "expression",
        want.expression.clone(),
        have.expression.clone(),
    );
    cmp(
        "timezone",
        want.timezone.clone().unwrap_or_else(|| "UTC".into()),
        have.timezone.clone().unwrap_or_else(|| "UTC".into()),
    );
    cmp(
        "flexible-window",
        o(&want.flexible_window),
        o(&have.flexible_window),
    );
    cmp("target", want.target_arn.clone(), have.target_arn.clone());
    cmp("role", want.role_arn.clone(), have.role_arn.clone());
    let input = |i: &Option<String>| {
        i.as_deref()
            .map(|s| {
                serde_json::from_str::<serde_json::Value>(s)
                    .map(|v| v.to_string())
                    .unwrap_or_else(|_| s.to_string())
            })
            .unwrap_or_else(|| "-".into())
    };
    cmp("input", input(&want.input), input(&have.input));
    cmp(
        "maximum-event-age",
        o(&want.maximum_event_age),
        o(&have.maximum_event_age),
    );
    cmp(
        "maximum-retry-attempts",
        o(&want.maximum_retry_attempts),
        o(&have.maximum_retry_attempts),
    );
    cmp(
        "enabled",
        want.enabled.to_string(),
        have.enabled.to_string(),
    );
    cmp(
        "description",
        want.description.clone(),
        have.description.clone(),
    );
    out
}

fn scheduler_trust(t: &Target) -> String {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": { "Service": "scheduler.amazonaws.com" },
            "Action": "sts:AssumeRole",
            "Condition": { "StringEquals": { "aws:SourceAccount": t.account } },
        }],
    })
    .to_string()
}

/// The scheduler role may invoke the alias, and nothing else.
pub fn scheduler_policy(t: &Target) -> serde_json::Value {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Action": "lambda:InvokeFunction",
            "Resource": t.alias_arn(),
        }],
    })
}

pub(super) async fn plan<A: TriggerApi + IamApi>(
    api: &A,
    t: &Target,
    triggers: &[Trigger],
    plan: &mut TriggerPlan,
) -> Result<()> {
    let desired: Vec<ScheduleSpec> = triggers
        .iter()
        .filter_map(|tr| match &tr.kind {
            TriggerKind::Schedule(s) => Some(schedule_spec(t, &tr.name, s)),
            _ => None,
        })
        .collect();
    let prefix = schedule_prefix(&t.function);
    let mut remote = BTreeMap::new();
    for name in api.list_schedules(&prefix).await? {
        if let Some(s) = api.get_schedule(&name).await? {
            remote.insert(name, s);
        }
    }
    let description_prefix = "cargo-fn trigger ";
    let ours = |s: &ScheduleSpec| {
        s.description.starts_with(description_prefix)
            && s.description.ends_with(&format!(" of {}", t.function))
    };

    // The scheduler role exists while any schedule does.
    let role = scheduler_role_name(&t.function);
    let role_state = api.get_role(&role).await?;
    if let Some(r) = &role_state
        && r.tags.get(MANAGED_BY_KEY).map(String::as_str) != Some(MANAGED_BY_VALUE)
        && !desired.is_empty()
    {
        return Err(hinted(
            format!("the IAM role {role} exists but was not created by cargo-fn"),
            "delete or rename it: cargo-fn creates and owns the scheduler role of each function",
        ));
    }
    let mut deletes = Vec::new();
    if !desired.is_empty() {
        if role_state.is_none() {
            plan.changes.push(TriggerChange::CreateSchedulerRole {
                role: role.clone(),
                trust: scheduler_trust(t),
            });
        }
        let doc = scheduler_policy(t);
        let have = match role_state {
            Some(_) => api.get_role_policy(&role, SCHEDULER_POLICY).await?,
            None => None,
        };
        if !have.as_deref().is_some_and(|h| same_json(h, &doc)) {
            plan.changes.push(TriggerChange::PutRolePolicy {
                role: role.clone(),
                policy: SCHEDULER_POLICY,
                document: doc.to_string(),
                summary: format!("lambda:InvokeFunction on {}", t.alias_arn()),
            });
        }
    }
    for want in &desired {
        let trigger = want
            .name
            .strip_prefix(&prefix)
            .unwrap_or(&want.name)
            .to_string();
        match remote.get(&want.name) {
            None => plan.changes.push(TriggerChange::CreateSchedule {
                trigger,
                spec: want.clone(),
            }),
            Some(have) if !ours(have) => {
                return Err(hinted(
                    format!(
                        "trigger {trigger}: a schedule named {} exists but was not created by cargo-fn",
                        want.name
                    ),
                    "rename the trigger or delete that schedule",
                ));
            }
            Some(have) => {
                let fields = schedule_diff(want, have);
                if !fields.is_empty() {
                    plan.changes.push(TriggerChange::UpdateSchedule {
                        trigger,
                        spec: want.clone(),
                        fields,
                    });
                }
            }
        }
    }
    for (name, have) in &remote {
        if ours(have) && !desired.iter().any(|d| &d.name == name) {
            deletes.push(TriggerChange::DeleteSchedule { name: name.clone() });
        }
    }
    plan.changes.extend(deletes);
    if desired.is_empty()
        && let Some(r) = &role_state
        && r.tags.get(MANAGED_BY_KEY).map(String::as_str) == Some(MANAGED_BY_VALUE)
    {
        if api
            .get_role_policy(&role, SCHEDULER_POLICY)
            .await?
            .is_some()
        {
            plan.changes.push(TriggerChange::DeleteRolePolicy {
                role: role.clone(),
                policy: SCHEDULER_POLICY,
            });
        }
        plan.changes
            .push(TriggerChange::DeleteSchedulerRole { role: role.clone() });
    }
    Ok(())
}

/// Creates the scheduler role (tolerating one left by an interrupted run).
pub(super) async fn create_role<A: IamApi>(
    api: &A,
    t: &Target,
    role: &str,
    trust: &str,
    ui: &Ui,
) -> Result<()> {
    ui.status("Creating", format!("IAM role {role}"));
    let tags = t.tags(&[]);
    match api
        .create_role(role, trust, &scheduler_role_description(&t.function), &tags)
        .await
    {
        Ok(_) => Ok(()),
        // Created by an earlier, interrupted run.
        Err(e) if e.is("EntityAlreadyExists") => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Creates a schedule once Scheduler may assume its role; one left by an
/// interrupted run is updated instead.
pub(super) async fn create<A: TriggerApi>(
    api: &A,
    alias_arn: &str,
    trigger: &str,
    spec: &ScheduleSpec,
    ui: &Ui,
) -> Result<()> {
    ui.status(
        "Scheduling",
        format!("trigger {trigger}: {} -> {alias_arn}", spec.expression),
    );
    let r = iam_retry(ui, "EventBridge Scheduler", || api.create_schedule(spec)).await;
    match r {
        Err(e) if e.is("ConflictException") => {
            api.update_schedule(spec).await?;
        }
        other => other?,
    }
    Ok(())
}

/// Updates a schedule (retried while its role's permission propagates).
pub(super) async fn update<A: TriggerApi>(
    api: &A,
    trigger: &str,
    spec: &ScheduleSpec,
    fields: &[String],
    ui: &Ui,
) -> Result<()> {
    ui.status(
        "Updating",
        format!("trigger {trigger} ({})", fields.join(", ")),
    );
    iam_retry(ui, "EventBridge Scheduler", || api.update_schedule(spec)).await?;
    Ok(())
}
