//! Event source mappings (SQS, Kinesis, DynamoDB streams): the settings a
//! trigger asks for with AWS's defaults filled in, their diff with what
//! Lambda reports, what forces a replacement, and the waits until a
//! mapping settles or is gone.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use super::iam::iam_retry;
use super::{TRIGGER_TAG, Target, TriggerChange, TriggerPlan, queue_arn};
use crate::aws::TriggerApi;
use crate::aws::triggers::{MappingSpec, MappingState};
use crate::config::triggers::{SqsTrigger, StreamTrigger};
use crate::config::{Trigger, TriggerKind};
use crate::deploy::{MANAGED_BY_KEY, MANAGED_BY_VALUE};
use crate::error::hinted;
use crate::ui::Ui;

/// Longest wait for an event source mapping to settle.
const MAPPING_WAIT: Duration = Duration::from_secs(300);

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
pub(super) fn epoch_seconds(ts: &str) -> Option<i64> {
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

pub(super) fn mapping_text(s: &MappingSpec) -> String {
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

/// Settings that differ between the desired and the remote mapping, as
/// `field old -> new`; `None` fields of the desired spec are not compared
/// except where leaving them out must clear a remote value.
pub(super) fn mapping_diff(want: &MappingSpec, have: &MappingSpec) -> Vec<String> {
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
pub(super) fn needs_replacement(want: &MappingSpec, have: &MappingSpec) -> bool {
    want.event_source_arn != have.event_source_arn
        || (want.starting_position.is_some() && want.starting_position != have.starting_position)
        || (want.starting_position_timestamp.is_some()
            && want.starting_position_timestamp != have.starting_position_timestamp)
}

/// The update request for a changed mapping: clears what the configuration
/// no longer sets.
pub(super) fn update_spec(want: &MappingSpec, have: &MappingSpec) -> MappingSpec {
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

/// Pushes the deletions and updates of event source mappings; returns the
/// creations, which must follow the role policy.
pub(super) async fn plan<A: TriggerApi>(
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

/// Polls a mapping until it leaves its transitional state (or is gone).
pub(super) async fn settle_mapping<A: TriggerApi>(
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
pub(super) async fn wait_gone<A: TriggerApi>(api: &A, uuid: &str, ui: &Ui) -> Result<()> {
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

/// Creates a mapping once our older mappings of its source are gone, then
/// waits for it to settle.
pub(super) async fn create<A: TriggerApi>(
    api: &A,
    t: &Target,
    trigger: &str,
    spec: &MappingSpec,
    after_deletion_of: &[String],
    ui: &Ui,
) -> Result<()> {
    for uuid in after_deletion_of {
        wait_gone(api, uuid, ui).await?;
    }
    let alias_arn = &t.alias_arn();
    ui.status(
        "Connecting",
        format!(
            "{} -> {alias_arn} (trigger {trigger})",
            spec.event_source_arn
        ),
    );
    let tags = t.tags(&[(TRIGGER_TAG, trigger)]);
    let m = iam_retry(ui, "Lambda", || api.create_mapping(alias_arn, spec, &tags)).await?;
    settle_mapping(api, &m.uuid, ui).await?;
    Ok(())
}

/// Updates a settled mapping and waits for it to settle again.
pub(super) async fn update<A: TriggerApi>(
    api: &A,
    trigger: &str,
    uuid: &str,
    spec: &MappingSpec,
    fields: &[String],
    ui: &Ui,
) -> Result<()> {
    settle_mapping(api, uuid, ui).await?;
    ui.status(
        "Updating",
        format!("trigger {trigger} ({})", fields.join(", ")),
    );
    iam_retry(ui, "Lambda", || api.update_mapping(uuid, spec)).await?;
    settle_mapping(api, uuid, ui).await?;
    Ok(())
}

/// Deletes a mapping once it has settled.
pub(super) async fn delete<A: TriggerApi>(
    api: &A,
    trigger: &str,
    uuid: &str,
    ui: &Ui,
) -> Result<()> {
    settle_mapping(api, uuid, ui).await?;
    ui.status("Removing", format!("trigger {trigger} (mapping {uuid})"));
    api.delete_mapping(uuid).await?;
    Ok(())
}
