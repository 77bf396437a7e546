//! The alias move: the last step of a deploy, to a version this run saw
//! Active (published and waited for) or one that already served it; never
//! to `$LATEST`. An update is guarded by the alias's RevisionId. With a
//! canary the alias stays on its version and routes a weight to the new one.

use std::collections::BTreeMap;

use anyhow::Result;

use super::DeployOptions;
use super::step::{Action, Aws, Ctx, Step, View};
use crate::aws::AliasState;

pub fn percent(w: f64) -> String {
    format!("{}%", (w * 1000.0).round() / 10.0)
}

/// `1` or `1 (90%) + 2 (10%)`.
pub fn routing_text(version: &str, weights: &BTreeMap<String, f64>) -> String {
    match weights.iter().find(|(_, w)| **w > 0.0) {
        None => version.to_string(),
        Some((v, w)) => format!("{version} ({}) + {v} ({})", percent(1.0 - w), percent(*w)),
    }
}

/// Where the alias should point once `target` is the deployed version.
pub fn alias_target(
    alias: &AliasState,
    target: &str,
    canary: Option<f64>,
) -> (String, BTreeMap<String, f64>) {
    match canary {
        Some(w) if alias.version != target => (
            alias.version.clone(),
            BTreeMap::from([(target.to_string(), w)]),
        ),
        _ => (target.to_string(), BTreeMap::new()),
    }
}

/// The version an alias change points at.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// The version this run publishes.
    New,
    /// A version that already matches.
    Existing(String),
}

impl Target {
    fn text(&self) -> String {
        match self {
            Target::New => "the new version".into(),
            Target::Existing(v) => v.clone(),
        }
    }
}

/// The alias move, if any: to the version that already matches, or to the
/// one this run publishes. An alias already where it should be stays; a
/// gradual rollout (`hold_alias`) moves an existing alias itself, step by
/// step. No reads.
pub fn plan(
    function: &str,
    opts: &DeployOptions,
    alias: Option<&AliasState>,
    existing_version: Option<&str>,
) -> Option<AliasMove> {
    let target = match existing_version {
        Some(v) => Target::Existing(v.to_string()),
        None => Target::New,
    };
    let moves = match (alias, &target) {
        (Some(a), Target::Existing(v)) => {
            let (pv, w) = alias_target(a, v, opts.canary);
            pv != a.version || w != a.weights
        }
        _ => true,
    };
    let held = opts.hold_alias && alias.is_some();
    (moves && !held).then(|| AliasMove {
        function: function.to_string(),
        alias: opts.alias.clone(),
        before: alias.cloned(),
        target,
        canary: opts.canary,
    })
}

/// Creates the alias, or moves it (RevisionId guard).
#[derive(Debug, Clone, PartialEq)]
pub struct AliasMove {
    pub function: String,
    pub alias: String,
    /// The alias as it is (`None`: created).
    pub before: Option<AliasState>,
    pub target: Target,
    /// Weight routed to the target while the alias stays put.
    pub canary: Option<f64>,
}

impl AliasMove {
    /// The routing after the move, as text.
    fn after_text(&self) -> String {
        match (&self.before, &self.target) {
            (None, t) => t.text(),
            (Some(a), Target::Existing(v)) => {
                let (pv, w) = alias_target(a, v, self.canary);
                routing_text(&pv, &w)
            }
            (Some(a), Target::New) => match self.canary {
                Some(w) => format!(
                    "{} ({}) + the new version ({})",
                    a.version,
                    percent(1.0 - w),
                    percent(w)
                ),
                None => "the new version".into(),
            },
        }
    }
}

impl Step for AliasMove {
    fn view(&self) -> View {
        let resource = format!("{}:{}", self.function, self.alias);
        match &self.before {
            None => View::new("alias", resource, Action::Create)
                .after(self.target.text())
                .call(format!(
                    "lambda:CreateAlias {} -> {}",
                    self.alias,
                    self.target.text()
                )),
            Some(a) => {
                let before = routing_text(&a.version, &a.weights);
                View::new("alias", resource, Action::Update)
                    .before(&before)
                    .after(self.after_text())
                    .call(format!(
                        "lambda:UpdateAlias {}: {before} -> {} (RevisionId guard)",
                        self.alias,
                        self.after_text()
                    ))
            }
        }
    }

    async fn apply<A: Aws>(&self, api: &A, cx: &mut Ctx<'_>) -> Result<()> {
        let (name, alias) = (&self.function, &self.alias);
        let version = match &self.target {
            Target::Existing(v) => v.clone(),
            Target::New => cx
                .version
                .clone()
                .ok_or_else(|| anyhow::anyhow!("no version was published for alias {alias}"))?,
        };
        let moved = match &self.before {
            None => {
                if self.canary.is_some() {
                    cx.ui.warn(format!(
                        "alias {alias} does not exist yet: it is created on version {version} with all traffic (nothing to canary against)"
                    ));
                }
                match api
                    .create_alias(name, alias, &version, &BTreeMap::new())
                    .await
                {
                    Ok(a) => a,
                    Err(e) if e.is("ResourceConflictException") => {
                        // Created by a dropped earlier attempt or
                        // concurrently: move it with its own RevisionId guard.
                        let a = api.get_alias(name, alias).await?.ok_or(e)?;
                        api.update_alias(
                            name,
                            alias,
                            &version,
                            &BTreeMap::new(),
                            a.revision_id.as_deref(),
                        )
                        .await?
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Some(a) => {
                let (primary, weights) = alias_target(a, &version, self.canary);
                cx.ui.status(
                    "Moving",
                    format!("alias {alias} to {}", routing_text(&primary, &weights)),
                );
                api.update_alias(name, alias, &primary, &weights, a.revision_id.as_deref())
                    .await?
            }
        };
        cx.version = Some(version);
        cx.alias = Some(moved);
        Ok(())
    }
}
