//! `promote` and `rollback` of an alias that carries a rollout record: they
//! end the rollout by hand (from any machine), guarded by RevisionId; a
//! process still driving it sees the change at its next poll and stops.

use std::collections::BTreeMap;

use anyhow::Result;

use super::record::{self, Record};
use crate::aws::{AliasState, LambdaApi, TrafficApi};
use crate::deploy::alias::routing_text;

/// `promote` aware of rollouts: an alias carrying a rollout record moves to
/// the rollout's new version with all traffic (remaining steps and the
/// post-traffic hook skipped) and the record ends; otherwise the plain
/// canary promote of [`crate::deploy::promote`].
pub async fn promote<A: LambdaApi + TrafficApi>(
    api: &A,
    function: &str,
    alias: &str,
    dry_run: bool,
) -> Result<(AliasState, String)> {
    by_hand(api, function, alias, dry_run, true).await
}

/// `rollback` aware of rollouts: an alias carrying a rollout record goes
/// back to the rollout's old version with no weights and the record ends;
/// otherwise (or with `to`) [`crate::deploy::rollback`].
pub async fn rollback<A: LambdaApi + TrafficApi>(
    api: &A,
    function: &str,
    alias: &str,
    to: Option<&str>,
    dry_run: bool,
) -> Result<(AliasState, String)> {
    if to.is_some() {
        return crate::deploy::rollback(api, function, alias, to, dry_run).await;
    }
    by_hand(api, function, alias, dry_run, false).await
}

async fn by_hand<A: LambdaApi + TrafficApi>(
    api: &A,
    function: &str,
    alias: &str,
    dry_run: bool,
    promote: bool,
) -> Result<(AliasState, String)> {
    let a = TrafficApi::read_alias(api, function, alias).await?;
    let record = a.as_ref().and_then(|a| Record::parse(&a.description));
    let (Some(a), Some(r)) = (a, record) else {
        return if promote {
            crate::deploy::promote(api, function, alias, dry_run).await
        } else {
            crate::deploy::rollback(api, function, alias, None, dry_run).await
        };
    };
    let (target, what) = if promote {
        (&r.to, format!("promoted by hand: version {}", r.to))
    } else {
        (
            &r.from,
            format!("rolled back by hand to version {}", r.from),
        )
    };
    let others = if r.n > 1 {
        format!(
            "; release {} has {} functions: do the same for the others",
            r.id, r.n
        )
    } else {
        String::new()
    };
    let line = format!(
        "lambda:UpdateAlias {alias}: {} -> {target}, ending rollout {} ({}) (RevisionId guard){others}",
        routing_text(&a.version, &a.weights),
        r.id,
        r.strategy
    );
    if dry_run {
        return Ok((a, line));
    }
    let moved = api
        .write_alias(
            function,
            alias,
            target,
            &BTreeMap::new(),
            &record::ended(&r.id, &what),
            a.revision_id.as_deref(),
        )
        .await?;
    Ok((moved, line))
}
