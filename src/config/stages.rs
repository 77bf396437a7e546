//! Stages: one application in several environments (dev, staging, prod).
//!
//! A stage is a table `stages.<name>` in `[workspace.metadata.fn]`,
//! `[package.metadata.fn]` or `[package.metadata.fn.functions.<bin>]`. It
//! holds any function key (merged by `layers.rs` above the plain tables)
//! and, in the workspace and package tables only, the stage-wide pins read
//! here: `account`, `region`, `profile` and `confirm`.
//!
//! Which stage runs: `--stage` > `CARGO_FN_STAGE` > the package's
//! `default-stage` > the workspace's `default-stage`; none selects no stage.
//! This module reads only the stage tables' names and pins; it imports no
//! sibling but `value`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{Result, bail};
use serde::Serialize;
use serde_json::Value;

use super::value::{is_account, type_name};
use super::{Overrides, Source};
use crate::project::{FunctionTarget, Project};

/// The key of a `[*.metadata.fn]` table holding the stage tables.
pub(super) const STAGES_KEY: &str = "stages";
/// The key naming the stage used when none is selected.
pub(super) const DEFAULT_STAGE_KEY: &str = "default-stage";
/// The variable selecting a stage (below `--stage`).
pub const STAGE_ENV_VAR: &str = "CARGO_FN_STAGE";

/// Keys only a stage table has, with what they mean; stage-wide, so only
/// in the workspace's and packages' stage tables.
pub const STAGE_KEYS: &[(&str, &str)] = &[
    (
        "account",
        "the 12-digit AWS account the stage lives in (deploy refuses any other)",
    ),
    (
        "region",
        "the AWS region of the stage (used unless --region says the same)",
    ),
    (
        "profile",
        "the AWS profile to connect with (used unless --profile says the same)",
    ),
    (
        "confirm",
        "true: deploying this stage needs --yes or an interactive yes",
    ),
];

/// The selected stage and its stage-wide settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StageConfig {
    /// The stage's name, e.g. `prod`.
    pub name: String,
    /// The 12-digit account the stage is pinned to.
    pub account: Option<String>,
    /// The region the stage is pinned to.
    pub region: Option<String>,
    /// The AWS profile the stage connects with.
    pub profile: Option<String>,
    /// Deploys of this stage need `--yes` or an interactive yes.
    pub confirm: bool,
    /// `stage`, `account`, `region`, `profile`, `confirm` -> where it came from.
    pub sources: BTreeMap<String, Source>,
}

impl StageConfig {
    /// Where the stage's name (or one of its pins) came from.
    pub fn source(&self, key: &str) -> Source {
        self.sources.get(key).cloned().unwrap_or(Source::Default)
    }
}

/// A stage name: 1-16 characters of `a-z`, `0-9` and `-`, starting with a
/// letter and not ending with `-`. Stage names end up inside function,
/// role, schedule and API names and tag values, so they keep to the
/// alphabet every one of those accepts, and short enough to leave room.
pub fn check_stage_name(name: &str) -> std::result::Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 16
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(
            "1-16 characters of a-z, 0-9 and `-`, starting with a letter and not ending with `-`"
                .into(),
        )
    }
}

/// A 12-digit AWS account id.
pub fn check_account(account: &str) -> std::result::Result<(), String> {
    if is_account(account) {
        Ok(())
    } else {
        Err("a 12-digit AWS account id".into())
    }
}

/// An AWS region's syntax: lowercase words joined by `-`, ending in a
/// number (`us-east-1`, `us-gov-west-1`, `ap-southeast-7`).
pub fn check_region(region: &str) -> std::result::Result<(), String> {
    let parts: Vec<&str> = region.split('-').collect();
    let ok = parts.len() >= 3
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
        && parts[parts.len() - 1].chars().all(|c| c.is_ascii_digit())
        && !parts[parts.len() - 1].is_empty();
    if ok {
        Ok(())
    } else {
        Err("an AWS region such as us-east-1 or eu-west-2".into())
    }
}

/// The `stages` table of a `[*.metadata.fn]` table (`table` names it), each
/// stage name checked.
pub(super) fn stage_tables<'a>(
    file: &Path,
    table: &str,
    fn_table: &'a Value,
) -> Result<Vec<(&'a str, &'a Value)>> {
    let Some(stages) = fn_table.get(STAGES_KEY) else {
        return Ok(Vec::new());
    };
    let Value::Object(map) = stages else {
        bail!(
            "{}: `{table}.{STAGES_KEY}` must be a table of stage tables, found {}",
            file.display(),
            type_name(stages)
        );
    };
    let mut out = Vec::new();
    for (name, v) in map {
        if let Err(allowed) = check_stage_name(name) {
            bail!(
                "{}: stage name `{table}.{STAGES_KEY}.{name}` is invalid: {allowed}",
                file.display()
            );
        }
        if !v.is_object() {
            bail!(
                "{}: `{table}.{STAGES_KEY}.{name}` must be a table, found {}",
                file.display(),
                type_name(v)
            );
        }
        out.push((name.as_str(), v));
    }
    Ok(out)
}

/// The function's own table, `[package.metadata.fn.functions.<bin>]`.
pub(super) fn function_table(function: &FunctionTarget) -> Option<&Value> {
    function
        .package_metadata
        .get("fn")?
        .get("functions")?
        .get(&function.bin)
}

/// Every stage some table of the project defines, each name and pin
/// checked.
pub fn known_stages(project: &Project) -> Result<BTreeSet<String>> {
    let mut known = BTreeSet::new();
    if let Some(t) = project.workspace_metadata.get("fn") {
        for (name, _) in all_pins(&project.workspace_manifest, "workspace.metadata.fn", t)? {
            known.insert(name);
        }
    }
    for function in &project.functions {
        let file = &function.manifest_path;
        if let Some(t) = function.package_metadata.get("fn") {
            for (name, _) in all_pins(file, "package.metadata.fn", t)? {
                known.insert(name);
            }
        }
        if let Some(t) = function_table(function) {
            let table = format!("package.metadata.fn.functions.{}", function.bin);
            for (name, _) in stage_tables(file, &table, t)? {
                known.insert(name.to_string());
            }
        }
    }
    Ok(known)
}

/// The selected stage's name for one function and where the choice came
/// from: `--stage` > `CARGO_FN_STAGE` > package `default-stage` >
/// workspace `default-stage`.
fn selected_name(
    project: &Project,
    function: Option<&FunctionTarget>,
    overrides: &Overrides,
    env: &BTreeMap<String, String>,
) -> Result<Option<(String, Source)>> {
    if let Some(s) = &overrides.stage {
        return Ok(Some((
            s.clone(),
            Source::Flag {
                name: "--stage".into(),
            },
        )));
    }
    if let Some(s) = env.get(STAGE_ENV_VAR).filter(|s| !s.is_empty()) {
        return Ok(Some((
            s.clone(),
            Source::EnvVar {
                name: STAGE_ENV_VAR.into(),
            },
        )));
    }
    let package = function.and_then(|f| {
        f.package_metadata
            .get("fn")
            .map(|t| (t, f.manifest_path.as_path(), "package.metadata.fn"))
    });
    let workspace = project.workspace_metadata.get("fn").map(|t| {
        (
            t,
            project.workspace_manifest.as_path(),
            "workspace.metadata.fn",
        )
    });
    for (t, file, table) in package.into_iter().chain(workspace) {
        match t.get(DEFAULT_STAGE_KEY) {
            None => {}
            Some(Value::String(s)) => {
                return Ok(Some((
                    s.clone(),
                    Source::Manifest {
                        file: file.to_path_buf(),
                        key: format!("{table}.{DEFAULT_STAGE_KEY}"),
                    },
                )));
            }
            Some(other) => bail!(
                "{}: `{table}.{DEFAULT_STAGE_KEY}` must be a stage name (a string), found {}",
                file.display(),
                type_name(other)
            ),
        }
    }
    Ok(None)
}

/// The stage one function runs under, with its pins: the workspace's stage
/// table below the package's. An unknown or misspelt stage is an error
/// listing the known ones.
pub(super) fn for_function(
    project: &Project,
    function: Option<&FunctionTarget>,
    overrides: &Overrides,
    env: &BTreeMap<String, String>,
) -> Result<Option<StageConfig>> {
    // Every stage table is checked, selected or not.
    let known = known_stages(project)?;
    let Some((name, source)) = selected_name(project, function, overrides, env)? else {
        return Ok(None);
    };
    if let Err(allowed) = check_stage_name(&name) {
        bail!("invalid stage `{name}` (from {source}): {allowed}");
    }
    if !known.contains(&name) {
        let list = if known.is_empty() {
            "none: define one as [package.metadata.fn.stages.<name>] or [workspace.metadata.fn.stages.<name>]".to_string()
        } else {
            known.iter().cloned().collect::<Vec<_>>().join(", ")
        };
        bail!("unknown stage `{name}` (from {source}); known stages: {list}");
    }
    let mut stage = StageConfig {
        name: name.clone(),
        account: None,
        region: None,
        profile: None,
        confirm: false,
        sources: BTreeMap::from([("stage".to_string(), source)]),
    };
    if let Some(t) = project.workspace_metadata.get("fn") {
        apply_pins(
            &mut stage,
            &project.workspace_manifest,
            "workspace.metadata.fn",
            t,
        )?;
    }
    if let Some(function) = function
        && let Some(t) = function.package_metadata.get("fn")
    {
        apply_pins(
            &mut stage,
            &function.manifest_path,
            "package.metadata.fn",
            t,
        )?;
    }
    Ok(Some(stage))
}

/// The pins one stage table sets, each with its source.
#[derive(Default)]
struct Pins {
    account: Option<(String, Source)>,
    region: Option<(String, Source)>,
    profile: Option<(String, Source)>,
    confirm: Option<(bool, Source)>,
}

/// Reads and checks `account`, `region`, `profile`, `confirm` of the stage
/// table `t`, found at `prefix` in `file`.
fn read_pins(file: &Path, prefix: &str, t: &Value) -> Result<Pins> {
    let mut pins = Pins::default();
    let Value::Object(map) = t else {
        return Ok(pins);
    };
    for (key, v) in map {
        let key = key.replace('_', "-");
        if !STAGE_KEYS.iter().any(|(k, _)| *k == key) {
            continue;
        }
        let source = Source::Manifest {
            file: file.to_path_buf(),
            key: format!("{prefix}.{key}"),
        };
        let bad = |allowed: String| {
            anyhow::Error::new(super::InvalidValue {
                key: key.clone(),
                value: v.to_string(),
                origin: source.clone(),
                allowed,
            })
        };
        if key == "confirm" {
            let b = v
                .as_bool()
                .ok_or_else(|| bad(format!("true or false, found {}", type_name(v))))?;
            pins.confirm = Some((b, source));
            continue;
        }
        let s = v
            .as_str()
            .ok_or_else(|| bad(format!("a string, found {}", type_name(v))))?;
        let rule = match key.as_str() {
            "account" => check_account(s),
            "region" => check_region(s),
            _ if s.trim().is_empty() || s.chars().any(char::is_whitespace) => {
                Err("a profile name (no spaces)".to_string())
            }
            _ => Ok(()),
        };
        rule.map_err(bad)?;
        let slot = match key.as_str() {
            "account" => &mut pins.account,
            "region" => &mut pins.region,
            _ => &mut pins.profile,
        };
        *slot = Some((s.to_string(), source));
    }
    Ok(pins)
}

/// Every stage table of a workspace or package `[*.metadata.fn]` table with
/// its pins (all checked, selected or not).
fn all_pins(file: &Path, table: &str, fn_table: &Value) -> Result<Vec<(String, Pins)>> {
    stage_tables(file, table, fn_table)?
        .into_iter()
        .map(|(name, t)| {
            let prefix = format!("{table}.{STAGES_KEY}.{name}");
            Ok((name.to_string(), read_pins(file, &prefix, t)?))
        })
        .collect()
}

/// Sets the pins of the selected stage's table under `table` on `stage`.
fn apply_pins(stage: &mut StageConfig, file: &Path, table: &str, fn_table: &Value) -> Result<()> {
    let Some((_, pins)) = all_pins(file, table, fn_table)?
        .into_iter()
        .find(|(name, _)| *name == stage.name)
    else {
        return Ok(());
    };
    let mut record = |key: &str, source: Source| {
        stage.sources.insert(key.to_string(), source);
    };
    let mut account = None;
    let mut region = None;
    let mut profile = None;
    let mut confirm = None;
    if let Some((v, src)) = pins.account {
        account = Some(v);
        record("account", src);
    }
    if let Some((v, src)) = pins.region {
        region = Some(v);
        record("region", src);
    }
    if let Some((v, src)) = pins.profile {
        profile = Some(v);
        record("profile", src);
    }
    if let Some((v, src)) = pins.confirm {
        confirm = Some(v);
        record("confirm", src);
    }
    stage.account = account.or(stage.account.take());
    stage.region = region.or(stage.region.take());
    stage.profile = profile.or(stage.profile.take());
    stage.confirm = confirm.unwrap_or(stage.confirm);
    Ok(())
}

/// The stage of the whole run: every selected function's stage, which must
/// agree (one stage, one account, one region per run). `None` when no stage
/// is selected.
pub fn project_stage(
    project: &Project,
    overrides: &Overrides,
    env: &BTreeMap<String, String>,
) -> Result<Option<StageConfig>> {
    if project.functions.is_empty() {
        return for_function(project, None, overrides, env);
    }
    let mut first: Option<(Option<StageConfig>, &FunctionTarget)> = None;
    for function in &project.functions {
        let stage = for_function(project, Some(function), overrides, env)?;
        match &first {
            None => first = Some((stage, function)),
            Some((s, by)) if !same_settings(s.as_ref(), stage.as_ref()) => bail!(
                "packages `{}` and `{}` disagree on the stage (`{}` vs `{}`): one run deploys one stage with one account, region and profile; put `default-stage` and the stage's `account`, `region`, `profile` and `confirm` in [workspace.metadata.fn] instead",
                by.package,
                function.package,
                describe(s.as_ref()),
                describe(stage.as_ref())
            ),
            Some(_) => {}
        }
    }
    Ok(first.and_then(|(s, _)| s))
}

fn same_settings(a: Option<&StageConfig>, b: Option<&StageConfig>) -> bool {
    let key = |s: Option<&StageConfig>| {
        s.map(|s| {
            (
                s.name.clone(),
                s.account.clone(),
                s.region.clone(),
                s.profile.clone(),
                s.confirm,
            )
        })
    };
    key(a) == key(b)
}

fn describe(s: Option<&StageConfig>) -> String {
    let Some(s) = s else {
        return "no stage".into();
    };
    format!(
        "{} account {} region {} profile {} confirm {}",
        s.name,
        s.account.as_deref().unwrap_or("-"),
        s.region.as_deref().unwrap_or("-"),
        s.profile.as_deref().unwrap_or("-"),
        s.confirm
    )
}
