//! `promote` and `rollback`: alias moves outside a deploy, with their
//! history read from AWS (the alias, the published versions and their
//! descriptions), each guarded by the alias's RevisionId.

use std::collections::BTreeMap;

use anyhow::Result;

use super::alias::routing_text;
use crate::aws::{AliasState, LambdaApi, VersionInfo};
use crate::error::hinted;

/// `promote`: the alias takes its canary version with all traffic.
pub async fn promote<A: LambdaApi>(
    api: &A,
    function: &str,
    alias: &str,
    dry_run: bool,
) -> Result<(AliasState, String)> {
    let a = read_alias(api, function, alias).await?;
    let Some((canary, _)) = a.canary() else {
        return Err(hinted(
            format!(
                "alias {alias} of {function} has no canary: it serves version {} only",
                a.version
            ),
            "deploy with --canary PERCENT first",
        ));
    };
    let canary = canary.to_string();
    let line = format!(
        "lambda:UpdateAlias {alias}: {} -> {canary} (RevisionId guard)",
        routing_text(&a.version, &a.weights)
    );
    if dry_run {
        return Ok((a, line));
    }
    let moved = api
        .update_alias(
            function,
            alias,
            &canary,
            &BTreeMap::new(),
            a.revision_id.as_deref(),
        )
        .await?;
    Ok((moved, line))
}

/// `rollback`: drop a canary, or put the alias back on the previous
/// published version (or `to`). History comes from AWS.
pub async fn rollback<A: LambdaApi>(
    api: &A,
    function: &str,
    alias: &str,
    to: Option<&str>,
    dry_run: bool,
) -> Result<(AliasState, String)> {
    let a = read_alias(api, function, alias).await?;
    let versions = api.list_versions(function).await?;
    let published: Vec<&VersionInfo> = versions
        .iter()
        .filter(|v| v.version.parse::<u64>().is_ok())
        .collect();
    let target = match to {
        Some(t) => {
            let Some(v) = published.iter().find(|v| v.version == t) else {
                let known: Vec<&str> = published.iter().map(|v| v.version.as_str()).collect();
                return Err(hinted(
                    format!("{function} has no published version {t}"),
                    format!("pick one of: {}", known.join(", ")),
                ));
            };
            (*v).clone()
        }
        None if a.canary().is_some() => published
            .iter()
            .find(|v| v.version == a.version)
            .map(|v| (*v).clone())
            .unwrap_or_else(|| VersionInfo {
                version: a.version.clone(),
                ..Default::default()
            }),
        None => {
            let current: u64 = a.version.parse().unwrap_or(u64::MAX);
            let prev = published
                .iter()
                .filter(|v| v.version.parse::<u64>().is_ok_and(|n| n < current))
                .max_by_key(|v| v.version.parse::<u64>().unwrap_or(0));
            match prev {
                Some(v) => (*v).clone(),
                None => {
                    return Err(hinted(
                        format!(
                            "alias {alias} of {function} is on version {}, and there is no earlier published version",
                            a.version
                        ),
                        "nothing to roll back to; deploy a fix instead",
                    ));
                }
            }
        }
    };
    let line = format!(
        "lambda:UpdateAlias {alias}: {} -> {} ({}) (RevisionId guard)",
        routing_text(&a.version, &a.weights),
        target.version,
        if target.description.is_empty() {
            "no description"
        } else {
            &target.description
        }
    );
    if dry_run {
        return Ok((a, line));
    }
    let moved = api
        .update_alias(
            function,
            alias,
            &target.version,
            &BTreeMap::new(),
            a.revision_id.as_deref(),
        )
        .await?;
    Ok((moved, line))
}

async fn read_alias<A: LambdaApi>(api: &A, function: &str, alias: &str) -> Result<AliasState> {
    api.get_alias(function, alias).await?.ok_or_else(|| {
        hinted(
            format!("function {function} has no alias {alias}"),
            "deploy it first with `cargo fn deploy`, or check --alias, --region and --profile",
        )
    })
}
