//! The IAM side of triggers: the execution role's inline policy for the
//! pull sources (least privilege: each source's own actions on its own ARN,
//! and the on-failure send), and the bounded retry while an IAM change made
//! moments ago has not reached Lambda or Scheduler yet.

use std::time::{Duration, Instant};

use anyhow::Result;

use super::{Target, TriggerChange, TriggerPlan, queue_arn, same_json};
use crate::aws::{ApiError, TriggerApi};
use crate::config::{Trigger, TriggerKind};
use crate::ui::Ui;

/// Inline policy of the execution role with the pull sources' permissions.
pub const TRIGGERS_POLICY: &str = "cargo-fn-triggers";

/// Longest wait for a new IAM permission to reach Lambda or Scheduler.
const IAM_WAIT: Duration = Duration::from_secs(90);

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

pub(super) async fn plan_role_policy<A: TriggerApi>(
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

fn is_iam_not_ready(e: &ApiError) -> bool {
    let m = e.message.to_ascii_lowercase();
    (e.is("InvalidParameterValueException") || e.is("ValidationException"))
        && (m.contains("role") || m.contains("permission") || m.contains("assume"))
}

/// Retries `f` while IAM changes made moments ago have not reached the
/// service yet (a bounded wait; any other error is returned at once).
pub(super) async fn iam_retry<T, F, Fut>(ui: &Ui, what: &str, mut f: F) -> Result<T, ApiError>
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
