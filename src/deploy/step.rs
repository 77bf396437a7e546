//! The step vocabulary: what every kind of change is made of. A [`Step`]
//! is one write to one named resource; it shows itself as a [`View`] (what
//! it is now, what it becomes, field by field in [`FieldChange`]s, and the
//! calls) and carries itself out against the AWS traits ([`Aws`]) with the
//! run's shared state ([`Ctx`]): the role ARN once known, the code to give
//! Lambda, `$LATEST` after each update, the published version, the alias,
//! the URL. Values in a view are already redacted.
//!
//! The concern modules implement [`Step`] and plan their own steps; the
//! list of kinds (`change.rs`) names them. This module names neither, so
//! the vocabulary, the kinds and the list import one way only.

use std::fmt::Write as _;

use anyhow::Result;
use serde::Serialize;
use serde_json::Value;

use super::{DeployOptions, Package};
use crate::aws::{
    AliasState, CapacityApi, Code, EcrApi, FunctionState, IamApi, LambdaApi, ObjectStore,
    TriggerApi,
};
use crate::ui::Ui;

/// Every AWS trait an executor may use.
pub trait Aws: LambdaApi + IamApi + ObjectStore + EcrApi + TriggerApi + CapacityApi {}
impl<T: LambdaApi + IamApi + ObjectStore + EcrApi + TriggerApi + CapacityApi> Aws for T {}

/// What a change does to its resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    Delete,
    /// A new immutable thing (a version, an image, an object).
    Publish,
}

impl Action {
    fn sign(self) -> char {
        match self {
            Action::Create | Action::Publish => '+',
            Action::Update => '~',
            Action::Delete => '-',
        }
    }
}

/// One field of a resource that differs: `old -> new`, already redacted.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldChange {
    pub field: String,
    pub old: String,
    pub new: String,
}

/// How a change shows in `--dry-run` (text and JSON). Values are already
/// redacted: a view never holds a credential-looking environment value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct View {
    /// The resource kind, e.g. `function-configuration`, `alias`.
    pub kind: &'static str,
    /// The resource's name, e.g. `hello:live`.
    pub resource: String,
    pub action: Action,
    /// What it is now (`null` when it does not exist or is not shown).
    pub before: Value,
    /// What it becomes (`null` for a delete).
    pub after: Value,
    /// Field by field, for resources with many fields.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldChange>,
    /// The API calls, one line each: `lambda:UpdateAlias live: 1 -> 2 ...`.
    pub calls: Vec<String>,
}

impl View {
    pub fn new(kind: &'static str, resource: impl Into<String>, action: Action) -> View {
        View {
            kind,
            resource: resource.into(),
            action,
            before: Value::Null,
            after: Value::Null,
            fields: Vec::new(),
            calls: Vec::new(),
        }
    }

    pub fn before(mut self, v: impl Serialize) -> View {
        self.before = serde_json::to_value(v).unwrap_or(Value::Null);
        self
    }

    pub fn after(mut self, v: impl Serialize) -> View {
        self.after = serde_json::to_value(v).unwrap_or(Value::Null);
        self
    }

    pub fn call(mut self, line: impl Into<String>) -> View {
        self.calls.push(line.into());
        self
    }

    /// The text form: a header line, the fields, then each call.
    pub fn render(&self, out: &mut String) {
        let _ = write!(
            out,
            "  {} {} {}",
            self.action.sign(),
            self.kind,
            self.resource
        );
        match (&self.before, &self.after) {
            (Value::Null, Value::Null) => {}
            (Value::Null, a) => {
                let _ = write!(out, ": {}", text(a));
            }
            (b, Value::Null) => {
                let _ = write!(out, ": {} -> (none)", text(b));
            }
            (b, a) => {
                let _ = write!(out, ": {} -> {}", text(b), text(a));
            }
        }
        out.push('\n');
        for f in &self.fields {
            let _ = writeln!(out, "      {}: {} -> {}", f.field, f.old, f.new);
        }
        for c in &self.calls {
            let _ = writeln!(out, "      call {c}");
        }
    }
}

/// A JSON value as short text: strings bare, the rest compact JSON.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The state a run shares between executors, in plan order.
pub struct Ctx<'a> {
    pub function: &'a str,
    pub pkg: &'a Package,
    pub opts: &'a DeployOptions,
    pub ui: &'a Ui,
    /// The configuration to give Lambda; its role is filled once known.
    pub desired: crate::aws::Settings,
    /// The code source for create and update (set by an upload or push).
    pub code: Code,
    /// `$LATEST` as last seen (the plan's read, then each update's answer).
    pub latest: Option<FunctionState>,
    /// The version the alias should serve: published by this run or the
    /// one that already matched.
    pub version: Option<String>,
    pub alias: Option<AliasState>,
    pub url: Option<String>,
    /// The ECR repository URI once known (an image push needs it).
    pub repository_uri: Option<String>,
    /// Trigger name -> invoke URL of its HTTP API.
    pub trigger_urls: std::collections::BTreeMap<String, String>,
}

/// One kind of change: how it looks and how it is carried out.
#[allow(async_fn_in_trait)] // driven from one task; no Send bound needed
pub trait Step {
    fn view(&self) -> View;
    /// Carries the change out. Re-checks what it needs, so a re-run after
    /// a failure anywhere converges.
    async fn apply<A: Aws>(&self, api: &A, cx: &mut Ctx<'_>) -> Result<()>;
}
