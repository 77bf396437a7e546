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
//! Knows the configuration model and the AWS traits; not clap, not the SDK.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use crate::aws::triggers::{
    BucketNotifications, Caller, HttpApi, HttpCors, Integration, MappingSpec, MappingState,
    Notification, NotificationKind, Permission, Route, ScheduleSpec,
};
use crate::aws::{ApiError, IamApi, TriggerApi};
use crate::config::triggers::{
    HttpApiTrigger, S3Trigger, ScheduleTrigger, SqsTrigger, StreamTrigger,
};
use crate::config::{Cors, FunctionConfig, Trigger, TriggerKind};
use crate::error::hinted;
use crate::ui::Ui;

use super::change::{Action, Aws, Change, Ctx, FieldChange, Step, View};
use super::{MANAGED_BY_KEY, MANAGED_BY_VALUE};

/// Tag on each event source mapping and HTTP API cargo-fn creates: the trigger name.
pub const TRIGGER_TAG: &str = "cargo-fn:trigger";
/// Tag on each HTTP API cargo-fn creates: the function name.
pub const FUNCTION_TAG: &str = "cargo-fn:function";
/// Inline policy of the execution role with the pull sources' permissions.
pub const TRIGGERS_POLICY: &str = "cargo-fn-triggers";
/// Inline policy of the scheduler role.
pub const SCHEDULER_POLICY: &str = "cargo-fn-invoke";
/// Longest wait for an event source mapping to settle.
const MAPPING_WAIT: Duration = Duration::from_secs(300);
/// Longest wait for a new IAM permission to reach Lambda or Scheduler.
const IAM_WAIT: Duration = Duration::from_secs(90);

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
        }
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

/// Everything to bring one HTTP API in line (the API id of a new API is
/// only known during execution, so its steps travel together).
#[derive(Debug, Clone, PartialEq)]
pub struct HttpApiChange {
    pub trigger: String,
    pub name: String,
    /// The API when it exists.
    pub api: Option<HttpApi>,
    pub tags: BTreeMap<String, String>,
    pub cors: Option<HttpCors>,
    pub update_cors: bool,
    pub integration: Option<Integration>,
    pub update_integration: bool,
    pub payload_format: String,
    pub add_routes: Vec<String>,
    pub delete_routes: Vec<Route>,
    pub create_stage: Option<String>,
    /// The execute-api permission statement is missing or different.
    pub permission: bool,
    pub stage: String,
}

impl HttpApiChange {
    fn is_noop(&self) -> bool {
        self.api.is_some()
            && !self.update_cors
            && self.integration.is_some()
            && !self.update_integration
            && self.add_routes.is_empty()
            && self.delete_routes.is_empty()
            && self.create_stage.is_none()
            && !self.permission
    }
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

fn mapping_text(s: &MappingSpec) -> String {
    let mut parts = Vec::new();
    if let Some(b) = s.batch_size {
        parts.push(format!("batch {b}"));
    }
    if let Some(p) = &s.starting_position {
        parts.push(format!("from {p}"));
    }
    if s.report_batch_item_failures {
        parts.push("partial failures".into());
    }
    if !s.filters.is_empty() {
        parts.push(format!("{} filters", s.filters.len()));
    }
    if !s.enabled {
        parts.push("disabled".into());
    }
    parts.join(", ")
}

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

/// S3 notification id of a trigger (unique per bucket across functions).
fn notification_id(function: &str, trigger: &str) -> String {
    format!("cargo-fn.{function}.{trigger}")
}

fn permission_sid(kind: &str, trigger: &str) -> String {
    format!("cargo-fn-{kind}-{trigger}")
}

fn api_name(function: &str, trigger: &str) -> String {
    format!("{function}-{trigger}")
}

/// The ARN of an SQS queue given by name or ARN.
pub fn queue_arn(t: &Target, queue: &str) -> String {
    if queue.starts_with("arn:") {
        queue.to_string()
    } else {
        t.arn("sqs", queue)
    }
}

/// The mapping settings a trigger asks for, with AWS's defaults filled in
/// so that they compare equal to what AWS reports.
pub fn sqs_spec(t: &Target, s: &SqsTrigger) -> MappingSpec {
    MappingSpec {
        event_source_arn: queue_arn(t, &s.queue),
        batch_size: Some(s.batch_size.unwrap_or(10) as i32),
        // FIFO queues have no batching window: never sent, never compared.
        maximum_batching_window: (!s.is_fifo())
            .then(|| s.maximum_batching_window.unwrap_or(0) as i32),
        maximum_concurrency: s.maximum_concurrency.map(|n| n as i32),
        report_batch_item_failures: s.report_batch_item_failures,
        filters: s.filters.clone(),
        enabled: s.enabled,
        ..Default::default()
    }
}

pub fn stream_spec(s: &StreamTrigger) -> MappingSpec {
    MappingSpec {
        event_source_arn: s.stream.clone(),
        batch_size: Some(s.batch_size.unwrap_or(100) as i32),
        maximum_batching_window: Some(s.maximum_batching_window.unwrap_or(0) as i32),
        parallelization_factor: Some(s.parallelization_factor.unwrap_or(1) as i32),
        starting_position: Some(s.starting_position.as_str().to_string()),
        starting_position_timestamp: s
            .starting_position_timestamp
            .as_deref()
            .and_then(epoch_seconds),
        bisect_batch_on_function_error: Some(s.bisect_batch_on_function_error.unwrap_or(false)),
        maximum_retry_attempts: Some(s.maximum_retry_attempts.unwrap_or(-1)),
        maximum_record_age: Some(s.maximum_record_age.unwrap_or(-1)),
        tumbling_window: Some(s.tumbling_window.unwrap_or(0) as i32),
        on_failure: s.on_failure.clone(),
        maximum_concurrency: None,
        report_batch_item_failures: s.report_batch_item_failures,
        filters: s.filters.clone(),
        enabled: s.enabled,
    }
}

/// `yyyy-mm-ddThh:mm:ssZ` (already validated) as seconds since the epoch.
fn epoch_seconds(ts: &str) -> Option<i64> {
    let n = |r: std::ops::Range<usize>| ts.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (h, mi, s) = (n(11..13)?, n(14..16)?, n(17..19)?);
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + s)
}

/// Settings that differ between the desired and the remote mapping, as
/// `field old -> new`; `None` fields of the desired spec are not compared
/// except where leaving them out must clear a remote value.
fn mapping_diff(want: &MappingSpec, have: &MappingSpec) -> Vec<String> {
    let mut out = Vec::new();
    let mut cmp = |name: &str, w: String, h: String| {
        if w != h {
            out.push(format!("{name} {h} -> {w}"));
        }
    };
    let o = |v: Option<i32>| v.map(|n| n.to_string()).unwrap_or_else(|| "-".into());
    if want.batch_size.is_some() {
        cmp("batch-size", o(want.batch_size), o(have.batch_size));
    }
    if want.maximum_batching_window.is_some() {
        cmp(
            "maximum-batching-window",
            o(want.maximum_batching_window),
            o(have.maximum_batching_window.or(Some(0))),
        );
    }
    if want.parallelization_factor.is_some() {
        cmp(
            "parallelization-factor",
            o(want.parallelization_factor),
            o(have.parallelization_factor.or(Some(1))),
        );
    }
    if let Some(b) = want.bisect_batch_on_function_error {
        cmp(
            "bisect-batch-on-function-error",
            b.to_string(),
            have.bisect_batch_on_function_error
                .unwrap_or(false)
                .to_string(),
        );
    }
    if want.maximum_retry_attempts.is_some() {
        cmp(
            "maximum-retry-attempts",
            o(want.maximum_retry_attempts),
            o(have.maximum_retry_attempts.or(Some(-1))),
        );
    }
    if want.maximum_record_age.is_some() {
        cmp(
            "maximum-record-age",
            o(want.maximum_record_age),
            o(have.maximum_record_age.or(Some(-1))),
        );
    }
    if want.tumbling_window.is_some() {
        cmp(
            "tumbling-window",
            o(want.tumbling_window),
            o(have.tumbling_window.or(Some(0))),
        );
    }
    cmp(
        "on-failure",
        want.on_failure.clone().unwrap_or_else(|| "-".into()),
        have.on_failure.clone().unwrap_or_else(|| "-".into()),
    );
    cmp(
        "maximum-concurrency",
        o(want.maximum_concurrency),
        o(have.maximum_concurrency),
    );
    cmp(
        "report-batch-item-failures",
        want.report_batch_item_failures.to_string(),
        have.report_batch_item_failures.to_string(),
    );
    cmp(
        "enabled",
        want.enabled.to_string(),
        have.enabled.to_string(),
    );
    let (mut wf, mut hf) = (want.filters.clone(), have.filters.clone());
    wf.sort();
    hf.sort();
    if wf != hf {
        out.push(format!("filters {} -> {} patterns", hf.len(), wf.len()));
    }
    out
}

/// What cannot be updated in place: a different source or starting point.
fn needs_replacement(want: &MappingSpec, have: &MappingSpec) -> bool {
    want.event_source_arn != have.event_source_arn
        || (want.starting_position.is_some() && want.starting_position != have.starting_position)
        || (want.starting_position_timestamp.is_some()
            && want.starting_position_timestamp != have.starting_position_timestamp)
}

/// The update request for a changed mapping: clears what the configuration
/// no longer sets.
fn update_spec(want: &MappingSpec, have: &MappingSpec) -> MappingSpec {
    let mut s = want.clone();
    if s.on_failure.is_none() && have.on_failure.is_some() {
        s.on_failure = Some(String::new());
    }
    if s.maximum_concurrency.is_none() && have.maximum_concurrency.is_some() {
        s.maximum_concurrency = Some(0);
    }
    // Fixed at creation; never part of an update.
    s.starting_position = None;
    s.starting_position_timestamp = None;
    s
}

/// The execution role's statements for the pull sources (least privilege:
/// each source's own actions on its own ARN, and the on-failure send).
pub fn pull_policy(t: &Target, triggers: &[Trigger]) -> Option<serde_json::Value> {
    let mut statements = Vec::new();
    for tr in triggers {
        match &tr.kind {
            TriggerKind::Sqs(s) => statements.push(serde_json::json!({
                "Sid": sid_safe(&format!("sqs{}", tr.name)),
                "Effect": "Allow",
                "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"],
                "Resource": queue_arn(t, &s.queue),
            })),
            TriggerKind::Kinesis(s) => statements.push(serde_json::json!({
                "Sid": sid_safe(&format!("kinesis{}", tr.name)),
                "Effect": "Allow",
                "Action": [
                    "kinesis:DescribeStream",
                    "kinesis:DescribeStreamSummary",
                    "kinesis:GetRecords",
                    "kinesis:GetShardIterator",
                    "kinesis:ListShards",
                    "kinesis:SubscribeToShard",
                ],
                "Resource": s.stream,
            })),
            TriggerKind::DynamoDb(s) => statements.push(serde_json::json!({
                "Sid": sid_safe(&format!("dynamodb{}", tr.name)),
                "Effect": "Allow",
                "Action": [
                    "dynamodb:DescribeStream",
                    "dynamodb:GetRecords",
                    "dynamodb:GetShardIterator",
                    "dynamodb:ListStreams",
                ],
                "Resource": s.stream,
            })),
            _ => continue,
        }
        if let TriggerKind::Kinesis(s) | TriggerKind::DynamoDb(s) = &tr.kind
            && let Some(dest) = &s.on_failure
        {
            let action = if dest.split(':').nth(2) == Some("sns") {
                "sns:Publish"
            } else {
                "sqs:SendMessage"
            };
            statements.push(serde_json::json!({
                "Sid": sid_safe(&format!("onfailure{}", tr.name)),
                "Effect": "Allow",
                "Action": action,
                "Resource": dest,
            }));
        }
    }
    (!statements.is_empty())
        .then(|| serde_json::json!({ "Version": "2012-10-17", "Statement": statements }))
}

/// IAM statement ids are alphanumeric.
fn sid_safe(s: &str) -> String {
    s.chars().filter(|c| c.is_ascii_alphanumeric()).collect()
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
    let creates = plan_mappings(api, t, triggers, exists, &mut plan).await?;
    plan_role_policy(api, t, triggers, &mut plan).await?;
    plan.changes.extend(creates);
    plan_schedules(api, t, triggers, &mut plan).await?;
    plan_s3(api, t, triggers, &permissions, &mut plan).await?;
    plan_http(api, t, triggers, &permissions, &mut plan).await?;
    Ok(plan)
}

async fn plan_role_policy<A: TriggerApi>(
    api: &A,
    t: &Target,
    triggers: &[Trigger],
    plan: &mut TriggerPlan,
) -> Result<()> {
    let want = pull_policy(t, triggers);
    let Some(role) = &t.own_role else {
        if let Some(doc) = want {
            plan.notes.push(format!(
                "the configured execution role must allow the sources' reads: {doc}"
            ));
        }
        return Ok(());
    };
    let have = api.get_role_policy(role, TRIGGERS_POLICY).await?;
    match (want, have) {
        (Some(doc), have) if !have.as_deref().is_some_and(|h| same_json(h, &doc)) => {
            let n = doc["Statement"].as_array().map(Vec::len).unwrap_or(0);
            plan.changes.push(TriggerChange::PutRolePolicy {
                role: role.clone(),
                policy: TRIGGERS_POLICY,
                document: doc.to_string(),
                summary: format!("{n} statements for the pull sources"),
            });
        }
        (None, Some(_)) => plan.changes.push(TriggerChange::DeleteRolePolicy {
            role: role.clone(),
            policy: TRIGGERS_POLICY,
        }),
        _ => {}
    }
    Ok(())
}

/// Pushes the deletions and updates of event source mappings; returns the
/// creations, which must follow the role policy.
async fn plan_mappings<A: TriggerApi>(
    api: &A,
    t: &Target,
    triggers: &[Trigger],
    exists: bool,
    plan: &mut TriggerPlan,
) -> Result<Vec<TriggerChange>> {
    let desired: Vec<(&str, MappingSpec)> = triggers
        .iter()
        .filter_map(|tr| match &tr.kind {
            TriggerKind::Sqs(s) => Some((tr.name.as_str(), sqs_spec(t, s))),
            TriggerKind::Kinesis(s) | TriggerKind::DynamoDb(s) => {
                Some((tr.name.as_str(), stream_spec(s)))
            }
            _ => None,
        })
        .collect();
    let remote = if exists {
        api.list_mappings(&t.alias_arn()).await?
    } else {
        Vec::new()
    };
    let ours = |m: &MappingState| {
        m.tags.get(MANAGED_BY_KEY).map(String::as_str) == Some(MANAGED_BY_VALUE)
            && m.tags.contains_key(TRIGGER_TAG)
    };
    let deleting: Vec<&MappingState> = remote
        .iter()
        .filter(|m| ours(m) && m.state == "Deleting")
        .collect();
    let live: Vec<&MappingState> = remote.iter().filter(|m| m.state != "Deleting").collect();
    let mut creates = Vec::new();
    for (name, want) in &desired {
        let mine = live
            .iter()
            .find(|m| ours(m) && m.tags.get(TRIGGER_TAG).map(String::as_str) == Some(*name));
        let replace = mine.is_some_and(|m| needs_replacement(want, &m.spec));
        match mine {
            Some(m) if !replace => {
                let fields = mapping_diff(want, &m.spec);
                if !fields.is_empty() {
                    plan.changes.push(TriggerChange::UpdateMapping {
                        trigger: name.to_string(),
                        uuid: m.uuid.clone(),
                        spec: update_spec(want, &m.spec),
                        fields,
                    });
                }
            }
            _ => {
                if let Some(m) = mine {
                    plan.changes.push(TriggerChange::DeleteMapping {
                        trigger: name.to_string(),
                        uuid: m.uuid.clone(),
                        source: m.spec.event_source_arn.clone(),
                    });
                }
                if let Some(foreign) = live
                    .iter()
                    .find(|m| !ours(m) && m.spec.event_source_arn == want.event_source_arn)
                {
                    return Err(hinted(
                        format!(
                            "trigger {name}: {} already has an event source mapping to {} \
                             ({}) that cargo-fn did not create",
                            want.event_source_arn,
                            t.alias_arn(),
                            foreign.uuid
                        ),
                        "delete that mapping (or remove the trigger from the configuration); \
                         cargo-fn never changes mappings it does not own",
                    ));
                }
                let mut after: Vec<String> = deleting
                    .iter()
                    .filter(|d| d.spec.event_source_arn == want.event_source_arn)
                    .map(|d| d.uuid.clone())
                    .collect();
                if let Some(m) = mine
                    && m.spec.event_source_arn == want.event_source_arn
                {
                    after.push(m.uuid.clone());
                }
                creates.push(TriggerChange::CreateMapping {
                    trigger: name.to_string(),
                    spec: want.clone(),
                    after_deletion_of: after,
                });
            }
        }
    }
    let wanted: BTreeSet<&str> = desired.iter().map(|(n, _)| *n).collect();
    let mut seen = BTreeSet::new();
    for m in live.iter().filter(|m| ours(m)) {
        let name = m.tags.get(TRIGGER_TAG).cloned().unwrap_or_default();
        // A second mapping of one trigger (a create retried after its answer
        // was lost) goes too: the first one found is the trigger's.
        let extra = !seen.insert(name.clone());
        if !wanted.contains(name.as_str()) || extra {
            plan.changes.push(TriggerChange::DeleteMapping {
                trigger: name,
                uuid: m.uuid.clone(),
                source: m.spec.event_source_arn.clone(),
            });
        }
    }
    Ok(creates)
}

fn schedule_spec(t: &Target, name: &str, s: &ScheduleTrigger) -> ScheduleSpec {
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

fn schedule_diff(want: &ScheduleSpec, have: &ScheduleSpec) -> Vec<String> {
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

async fn plan_schedules<A: TriggerApi + IamApi>(
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

fn same_permission(a: &Permission, b: &Permission) -> bool {
    a.principal == b.principal
        && a.source_arn == b.source_arn
        && a.source_account == b.source_account
}

async fn plan_s3<A: TriggerApi>(
    api: &A,
    t: &Target,
    triggers: &[Trigger],
    permissions: &[Permission],
    plan: &mut TriggerPlan,
) -> Result<()> {
    let desired: Vec<(&str, &S3Trigger)> = triggers
        .iter()
        .filter_map(|tr| match &tr.kind {
            TriggerKind::S3(s) => Some((tr.name.as_str(), s)),
            _ => None,
        })
        .collect();
    let sid_prefix = "cargo-fn-s3-";
    // Buckets we configured before are named by our permission statements.
    let mut buckets: BTreeSet<String> = desired.iter().map(|(_, s)| s.bucket.clone()).collect();
    for p in permissions.iter().filter(|p| p.sid.starts_with(sid_prefix)) {
        if let Some(b) = p
            .source_arn
            .as_deref()
            .and_then(|a| a.strip_prefix("arn:aws:s3:::"))
        {
            buckets.insert(b.to_string());
        }
    }
    let alias_arn = t.alias_arn();
    let id_prefix = format!("cargo-fn.{}.", t.function);
    let mut adds = Vec::new();
    let mut removes = Vec::new();
    for (name, s) in &desired {
        let p = Permission {
            sid: permission_sid("s3", name),
            principal: "s3.amazonaws.com".into(),
            source_arn: Some(format!("arn:aws:s3:::{}", s.bucket)),
            source_account: Some(t.account.clone()),
        };
        match permissions.iter().find(|x| x.sid == p.sid) {
            Some(have) if same_permission(have, &p) => {}
            Some(_) => {
                removes.push(TriggerChange::RemovePermission { sid: p.sid.clone() });
                adds.push(TriggerChange::AddPermission { permission: p });
            }
            None => adds.push(TriggerChange::AddPermission { permission: p }),
        }
    }
    // Statements of triggers that left.
    for p in permissions.iter().filter(|p| p.sid.starts_with(sid_prefix)) {
        let name = &p.sid[sid_prefix.len()..];
        if !desired.iter().any(|(n, _)| *n == name) {
            removes.push(TriggerChange::RemovePermission { sid: p.sid.clone() });
        }
    }
    // Permissions first: S3 checks it may invoke the function.
    plan.changes.extend(adds);
    for bucket in &buckets {
        let have = api
            .get_notifications(bucket)
            .await
            .with_context(|| format!("reading the notifications of bucket {bucket}"))?;
        let mine = |n: &Notification| {
            n.kind == NotificationKind::Lambda
                && n.arn == alias_arn
                && n.id.as_deref().is_some_and(|i| i.starts_with(&id_prefix))
        };
        let mut want: Vec<Notification> =
            have.entries.iter().filter(|n| !mine(n)).cloned().collect();
        let mut ours_want: Vec<Notification> = desired
            .iter()
            .filter(|(_, s)| &s.bucket == bucket)
            .map(|(name, s)| Notification {
                id: Some(notification_id(&t.function, name)),
                kind: NotificationKind::Lambda,
                arn: alias_arn.clone(),
                events: s.events.clone(),
                prefix: s.prefix.clone(),
                suffix: s.suffix.clone(),
            })
            .collect();
        let mut ours_have: Vec<Notification> =
            have.entries.iter().filter(|n| mine(n)).cloned().collect();
        ours_want.sort_by(|a, b| a.id.cmp(&b.id));
        ours_have.sort_by(|a, b| a.id.cmp(&b.id));
        let norm = |v: &[Notification]| {
            v.iter()
                .map(|n| {
                    let mut e = n.events.clone();
                    e.sort();
                    (n.id.clone(), e, n.prefix.clone(), n.suffix.clone())
                })
                .collect::<Vec<_>>()
        };
        if norm(&ours_want) == norm(&ours_have) {
            continue;
        }
        let summary = format!(
            "{} of ours, {} other entries kept",
            ours_want.len(),
            want.len()
        );
        want.extend(ours_want);
        plan.changes.push(TriggerChange::PutNotifications {
            bucket: bucket.clone(),
            config: BucketNotifications {
                entries: want,
                eventbridge: have.eventbridge,
            },
            summary,
        });
    }
    plan.changes.extend(removes);
    Ok(())
}

fn http_cors(c: &Cors) -> HttpCors {
    HttpCors {
        allow_origins: c.allow_origins.clone(),
        allow_methods: c.allow_methods.clone(),
        allow_headers: c.allow_headers.clone(),
        expose_headers: c.expose_headers.clone(),
        allow_credentials: c.allow_credentials,
        max_age: c.max_age,
    }
}

fn execute_api_arn(t: &Target, api_id: &str) -> String {
    format!(
        "arn:{}:execute-api:{}:{}:{api_id}/*",
        t.partition, t.region, t.account
    )
}

fn invoke_url(api: &HttpApi, stage: &str) -> String {
    if stage == "$default" {
        format!("{}/", api.endpoint.trim_end_matches('/'))
    } else {
        format!("{}/{stage}", api.endpoint.trim_end_matches('/'))
    }
}

async fn plan_http<A: TriggerApi>(
    api: &A,
    t: &Target,
    triggers: &[Trigger],
    permissions: &[Permission],
    plan: &mut TriggerPlan,
) -> Result<()> {
    let desired: Vec<(&str, &HttpApiTrigger)> = triggers
        .iter()
        .filter_map(|tr| match &tr.kind {
            TriggerKind::HttpApi(h) => Some((tr.name.as_str(), h)),
            _ => None,
        })
        .collect();
    let sid_prefix = "cargo-fn-http-";
    let has_http_statements = permissions.iter().any(|p| p.sid.starts_with(sid_prefix));
    if desired.is_empty() && !has_http_statements {
        // Nothing configured now or before (an API is deleted before its
        // statement, so a leftover API always has one): no listing at all.
        return Ok(());
    }
    let apis = api.list_http_apis().await?;
    let ours: Vec<&HttpApi> = apis
        .iter()
        .filter(|a| {
            a.tags.get(MANAGED_BY_KEY).map(String::as_str) == Some(MANAGED_BY_VALUE)
                && a.tags.get(FUNCTION_TAG) == Some(&t.function)
        })
        .collect();
    let alias_arn = t.alias_arn();
    for (name, h) in &desired {
        let existing = ours
            .iter()
            .find(|a| a.tags.get(TRIGGER_TAG).map(String::as_str) == Some(*name))
            .map(|a| (*a).clone());
        let mut tags = BTreeMap::new();
        tags.insert(MANAGED_BY_KEY.to_string(), MANAGED_BY_VALUE.to_string());
        tags.insert(FUNCTION_TAG.to_string(), t.function.clone());
        tags.insert(TRIGGER_TAG.to_string(), name.to_string());
        let mut change = HttpApiChange {
            trigger: name.to_string(),
            name: api_name(&t.function, name),
            api: existing.clone(),
            tags,
            cors: h.cors.as_ref().map(http_cors),
            update_cors: false,
            integration: None,
            update_integration: false,
            payload_format: h.payload_format.clone(),
            add_routes: Vec::new(),
            delete_routes: Vec::new(),
            create_stage: None,
            permission: true,
            stage: h.stage.clone(),
        };
        match &existing {
            None => {
                change.add_routes = h.routes.clone();
                change.create_stage = Some(h.stage.clone());
            }
            Some(a) => {
                change.update_cors = a.cors != change.cors;
                let integrations = api.list_integrations(&a.id).await?;
                let integ = integrations.iter().find(|i| i.uri == alias_arn).cloned();
                change.update_integration = integ
                    .as_ref()
                    .is_some_and(|i| i.payload_format != h.payload_format);
                change.integration = integ.clone();
                let target = integ.as_ref().map(|i| format!("integrations/{}", i.id));
                let routes = api.list_routes(&a.id).await?;
                for r in &routes {
                    let wanted = h.routes.contains(&r.key);
                    if !wanted || r.target != target {
                        change.delete_routes.push(r.clone());
                    }
                }
                for key in &h.routes {
                    if !routes.iter().any(|r| &r.key == key && r.target == target) {
                        change.add_routes.push(key.clone());
                    }
                }
                if !api.list_stages(&a.id).await?.contains(&h.stage) {
                    change.create_stage = Some(h.stage.clone());
                }
                let want = Permission {
                    sid: permission_sid("http", name),
                    principal: "apigateway.amazonaws.com".into(),
                    source_arn: Some(execute_api_arn(t, &a.id)),
                    source_account: Some(t.account.clone()),
                };
                change.permission = !permissions
                    .iter()
                    .any(|p| p.sid == want.sid && same_permission(p, &want));
                plan.urls.insert(name.to_string(), invoke_url(a, &h.stage));
            }
        }
        if !change.is_noop() {
            plan.changes.push(TriggerChange::HttpApi(Box::new(change)));
        }
    }
    for a in &ours {
        let name = a.tags.get(TRIGGER_TAG).cloned().unwrap_or_default();
        if !desired.iter().any(|(n, _)| *n == name) {
            plan.changes.push(TriggerChange::DeleteHttpApi {
                trigger: name.clone(),
                id: a.id.clone(),
                name: a.name.clone(),
            });
        }
    }
    for p in permissions.iter().filter(|p| p.sid.starts_with(sid_prefix)) {
        let name = &p.sid[sid_prefix.len()..];
        if !desired.iter().any(|(n, _)| *n == name) {
            plan.changes
                .push(TriggerChange::RemovePermission { sid: p.sid.clone() });
        }
    }
    Ok(())
}

fn is_iam_not_ready(e: &ApiError) -> bool {
    let m = e.message.to_ascii_lowercase();
    (e.is("InvalidParameterValueException") || e.is("ValidationException"))
        && (m.contains("role") || m.contains("permission") || m.contains("assume"))
}

/// Retries `f` while IAM changes made moments ago have not reached the
/// service yet (a bounded wait; any other error is returned at once).
async fn iam_retry<T, F, Fut>(ui: &Ui, what: &str, mut f: F) -> Result<T, ApiError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ApiError>>,
{
    let started = Instant::now();
    let mut delay = Duration::from_secs(1);
    loop {
        match f().await {
            Err(e) if is_iam_not_ready(&e) && started.elapsed() < IAM_WAIT => {
                let _s = ui.step(format!("waiting for IAM to reach {what}"));
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(8));
            }
            other => return other,
        }
    }
}

/// Polls a mapping until it leaves its transitional state (or is gone).
async fn settle_mapping<A: TriggerApi>(
    api: &A,
    uuid: &str,
    ui: &Ui,
) -> Result<Option<MappingState>> {
    let started = Instant::now();
    let mut delay = Duration::from_millis(500);
    let _s = ui.step(format!("waiting for event source mapping {uuid} to settle"));
    loop {
        let m = api.get_mapping(uuid).await?;
        match &m {
            Some(s) if s.is_transitional() => {}
            _ => return Ok(m),
        }
        if started.elapsed() > MAPPING_WAIT {
            return Err(hinted(
                format!(
                    "event source mapping {uuid} is still {} after {} s",
                    m.map(|s| s.state).unwrap_or_default(),
                    MAPPING_WAIT.as_secs()
                ),
                "re-run the deploy later: it picks up where it stopped",
            ));
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// Waits until a mapping being deleted is gone.
async fn wait_gone<A: TriggerApi>(api: &A, uuid: &str, ui: &Ui) -> Result<()> {
    let started = Instant::now();
    let _s = ui.step(format!(
        "waiting for event source mapping {uuid} to be deleted"
    ));
    while api.get_mapping(uuid).await?.is_some() {
        if started.elapsed() > MAPPING_WAIT {
            bail!("event source mapping {uuid} is still being deleted; re-run the deploy later");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Ok(())
}

fn mapping_tags(trigger: &str) -> BTreeMap<String, String> {
    let mut tags = BTreeMap::new();
    tags.insert(MANAGED_BY_KEY.to_string(), MANAGED_BY_VALUE.to_string());
    tags.insert(TRIGGER_TAG.to_string(), trigger.to_string());
    tags
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
            ui.status("Creating", format!("IAM role {role}"));
            let mut tags = BTreeMap::new();
            tags.insert(MANAGED_BY_KEY.to_string(), MANAGED_BY_VALUE.to_string());
            match api
                .create_role(role, trust, &scheduler_role_description(&t.function), &tags)
                .await
            {
                Ok(_) => {}
                // Created by an earlier, interrupted run.
                Err(e) if e.is("EntityAlreadyExists") => {}
                Err(e) => return Err(e.into()),
            }
        }
        TriggerChange::DeleteSchedulerRole { role } => {
            ui.status("Removing", format!("IAM role {role}"));
            api.delete_role(role).await?;
        }
        TriggerChange::CreateMapping {
            trigger,
            spec,
            after_deletion_of,
        } => {
            for uuid in after_deletion_of {
                wait_gone(api, uuid, ui).await?;
            }
            ui.status(
                "Connecting",
                format!(
                    "{} -> {alias_arn} (trigger {trigger})",
                    spec.event_source_arn
                ),
            );
            let tags = mapping_tags(trigger);
            let m = iam_retry(ui, "Lambda", || api.create_mapping(&alias_arn, spec, &tags)).await?;
            settle_mapping(api, &m.uuid, ui).await?;
        }
        TriggerChange::UpdateMapping {
            trigger,
            uuid,
            spec,
            fields,
        } => {
            settle_mapping(api, uuid, ui).await?;
            ui.status(
                "Updating",
                format!("trigger {trigger} ({})", fields.join(", ")),
            );
            iam_retry(ui, "Lambda", || api.update_mapping(uuid, spec)).await?;
            settle_mapping(api, uuid, ui).await?;
        }
        TriggerChange::DeleteMapping { trigger, uuid, .. } => {
            settle_mapping(api, uuid, ui).await?;
            ui.status("Removing", format!("trigger {trigger} (mapping {uuid})"));
            api.delete_mapping(uuid).await?;
        }
        TriggerChange::CreateSchedule { trigger, spec } => {
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
        }
        TriggerChange::UpdateSchedule {
            trigger,
            spec,
            fields,
        } => {
            ui.status(
                "Updating",
                format!("trigger {trigger} ({})", fields.join(", ")),
            );
            iam_retry(ui, "EventBridge Scheduler", || api.update_schedule(spec)).await?;
        }
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
            let url = apply_http(api, t, h, ui).await?;
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

async fn apply_http<A: TriggerApi>(
    api: &A,
    t: &Target,
    h: &HttpApiChange,
    ui: &Ui,
) -> Result<String> {
    let alias_arn = t.alias_arn();
    let a = match &h.api {
        Some(a) => {
            if h.update_cors {
                ui.status("Updating", format!("CORS of HTTP API {}", a.name));
                api.update_http_api_cors(&a.id, h.cors.as_ref()).await?;
            }
            a.clone()
        }
        None => {
            ui.status(
                "Creating",
                format!("HTTP API {} (trigger {})", h.name, h.trigger),
            );
            api.create_http_api(&h.name, h.cors.as_ref(), &h.tags)
                .await?
        }
    };
    let integration = match &h.integration {
        Some(i) => {
            if h.update_integration {
                api.update_integration(&a.id, &i.id, &alias_arn, &h.payload_format)
                    .await?;
            }
            i.clone()
        }
        None => {
            api.create_integration(&a.id, &alias_arn, &h.payload_format)
                .await?
        }
    };
    for r in &h.delete_routes {
        api.delete_route(&a.id, &r.id).await?;
    }
    let target = format!("integrations/{}", integration.id);
    for key in &h.add_routes {
        ui.status("Routing", format!("{key} -> {alias_arn}"));
        api.create_route(&a.id, key, &target).await?;
    }
    if let Some(stage) = &h.create_stage {
        api.create_stage(&a.id, stage).await?;
    }
    if h.permission || h.api.is_none() {
        let p = Permission {
            sid: permission_sid("http", &h.trigger),
            principal: "apigateway.amazonaws.com".into(),
            source_arn: Some(execute_api_arn(t, &a.id)),
            source_account: Some(t.account.clone()),
        };
        add_permission(api, &alias_arn, &p).await?;
    }
    Ok(invoke_url(&a, &h.stage))
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
    format!("{}triggers:{alias}", super::tags::RECORD_PREFIX)
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
    alias: &str,
    remote: Option<&crate::aws::FunctionState>,
    alias_exists: bool,
) -> Result<Option<TriggerPlan>> {
    if !configured(cfg, alias, remote.map(|r| &r.tags)) {
        return Ok(None);
    }
    let function_arn = remote.map(|r| r.arn.as_str());
    let target = match function_arn {
        Some(arn) => Target::from_function_arn(arn, alias, own_role(cfg))?,
        None => {
            let caller = api.caller().await?;
            Target::from_caller(&caller, &cfg.name, alias, own_role(cfg))
        }
    };
    let mut p = plan(api, cfg, &target, function_arn.is_some() && alias_exists).await?;
    p.target = Some(target);
    Ok(Some(p))
}

impl TriggerPlan {
    /// The changes as steps of the deploy plan.
    pub fn into_changes(self) -> Vec<Change> {
        let Some(target) = self.target else {
            return Vec::new();
        };
        self.changes
            .into_iter()
            .map(|change| {
                Change::Trigger(Box::new(TriggerStep {
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
