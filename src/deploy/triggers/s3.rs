//! S3 bucket notifications: the permission S3 needs first, then each
//! bucket's whole notification configuration with foreign entries kept;
//! buckets configured before are found through our permission statements.

use std::collections::BTreeSet;

use anyhow::{Context, Result};

use super::{Target, TriggerChange, TriggerPlan, permission_sid, same_permission};
use crate::aws::TriggerApi;
use crate::aws::triggers::{BucketNotifications, Notification, NotificationKind, Permission};
use crate::config::triggers::S3Trigger;
use crate::config::{Trigger, TriggerKind};

/// S3 notification id of a trigger (unique per bucket across functions).
fn notification_id(function: &str, trigger: &str) -> String {
    format!("cargo-fn.{function}.{trigger}")
}

pub(super) async fn plan<A: TriggerApi>(
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
