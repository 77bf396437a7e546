//! The function's tags: the configured ones, `managed-by=cargo-fn`, and
//! cargo-fn's own records (`cargo-fn:` keys: the role policy fingerprint,
//! which aliases have a URL cargo-fn manages). Replace mode removes remote
//! tags that left the configuration; merge mode keeps them. Either way
//! `aws:` tags are never touched, and a `cargo-fn:` record is removed when
//! cargo-fn no longer manages what it records. With a stage selected the
//! function carries `cargo-fn:stage = <stage>` (see `guard`).
//!
//! Tags are written after every other change of the function, so a record
//! never claims something a failed run did not do.

use std::collections::BTreeMap;

use anyhow::Result;

use super::step::{Action, Aws, Ctx, Step, View};
use super::{EnvMode, MANAGED_BY_KEY, MANAGED_BY_VALUE};
use crate::config::FunctionConfig;

/// Prefix of the tags cargo-fn keeps for itself.
pub const RECORD_PREFIX: &str = "cargo-fn:";

/// The record of what cargo-fn manages for `alias` (`url`, `triggers`).
pub fn record_tag(kind: &str, alias: &str) -> String {
    format!("{RECORD_PREFIX}{kind}:{alias}")
}

/// The tags the function should carry: the configured ones,
/// `managed-by=cargo-fn`, and the concerns' records.
pub fn desired(
    cfg: &FunctionConfig,
    records: BTreeMap<String, String>,
    stage: Option<&str>,
) -> BTreeMap<String, String> {
    let mut tags = cfg.tags.clone();
    tags.insert(MANAGED_BY_KEY.into(), MANAGED_BY_VALUE.into());
    if let Some(stage) = stage {
        tags.insert(super::guard::STAGE_TAG.into(), stage.into());
    }
    tags.extend(records);
    tags
}

/// Tags to set and remove. Replace mode removes remote tags that left the
/// configuration; `aws:` tags are never touched; our records are removed
/// when no longer kept, except URL records of other aliases.
pub fn plan(
    function: &str,
    remote: &BTreeMap<String, String>,
    desired: &BTreeMap<String, String>,
    alias: &str,
    mode: EnvMode,
) -> Tags {
    let set = desired
        .iter()
        .filter(|(k, v)| remote.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), (remote.get(k).cloned(), v.clone())))
        .collect();
    let other_alias_url =
        |k: &str| k.starts_with(&format!("{RECORD_PREFIX}url:")) && k != record_tag("url", alias);
    let remove = remote
        .keys()
        .filter(|k| !desired.contains_key(*k) && !k.starts_with("aws:"))
        .filter(|k| {
            if k.starts_with(RECORD_PREFIX) {
                !other_alias_url(k)
            } else {
                mode == EnvMode::Replace
            }
        })
        .cloned()
        .collect();
    Tags {
        function: function.to_string(),
        set,
        remove,
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tags {
    pub function: String,
    /// Tags to add or change: key -> (old, new).
    pub set: BTreeMap<String, (Option<String>, String)>,
    /// Keys to remove.
    pub remove: Vec<String>,
}

impl Tags {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.remove.is_empty()
    }
}

impl Step for Tags {
    fn view(&self) -> View {
        let before: BTreeMap<&String, Option<&String>> = self
            .set
            .iter()
            .map(|(k, (o, _))| (k, o.as_ref()))
            .chain(self.remove.iter().map(|k| (k, None)))
            .collect();
        let after: BTreeMap<&String, &String> = self.set.iter().map(|(k, (_, n))| (k, n)).collect();
        let mut v = View::new("tags", &self.function, Action::Update)
            .before(serde_json::json!({"set": before}))
            .after(serde_json::json!({"set": after, "remove": self.remove}));
        if !self.set.is_empty() {
            let keys: Vec<&str> = self.set.keys().map(String::as_str).collect();
            v = v.call(format!(
                "lambda:TagResource {} ({})",
                self.function,
                keys.join(", ")
            ));
        }
        if !self.remove.is_empty() {
            v = v.call(format!(
                "lambda:UntagResource {} ({})",
                self.function,
                self.remove.join(", ")
            ));
        }
        v
    }

    async fn apply<A: Aws>(&self, api: &A, cx: &mut Ctx<'_>) -> Result<()> {
        let arn =
            cx.latest.as_ref().map(|l| l.arn.clone()).ok_or_else(|| {
                anyhow::anyhow!("{} does not exist; nothing to tag", self.function)
            })?;
        if !self.set.is_empty() {
            let tags: BTreeMap<String, String> = self
                .set
                .iter()
                .map(|(k, (_, v))| (k.clone(), v.clone()))
                .collect();
            api.tag(&arn, &tags).await?;
        }
        if !self.remove.is_empty() {
            api.untag(&arn, &self.remove).await?;
        }
        Ok(())
    }
}
