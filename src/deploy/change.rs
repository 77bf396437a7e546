//! The typed plan's vocabulary: a [`Change`] is one write to one named
//! resource, with what it is now (`before`) and what it becomes (`after`).
//! The plan is an ordered list of them; `--dry-run` renders the list (text
//! and JSON, through [`View`]) and `execute` walks it, calling each change's
//! own executor ([`Step::apply`]). Nothing else drives a write.
//!
//! Adding a resource kind is one struct that implements [`Step`] (how it
//! looks, how it is applied) plus one line in the `changes!` list below,
//! which generates the [`Change`] variant and both dispatches. A concern
//! with several kinds of its own (triggers: event source mappings,
//! schedules, S3 notifications) adds one variant holding its own sub-enum
//! that implements [`Step`] by matching on itself, so the concern's module
//! owns its kinds and this list grows by one line. An executor gets the
//! AWS traits through [`Aws`] (extend that bound when a kind needs a new
//! trait) and the run's shared state through [`Ctx`]: the role ARN once
//! known, the code to give Lambda, `$LATEST` after each update, the
//! published version, the alias, the URL.

use std::fmt::Write as _;

use anyhow::Result;
use serde::Serialize;
use serde_json::Value;

use super::{DeployOptions, Package};
use crate::aws::{AliasState, Code, EcrApi, FunctionState, IamApi, LambdaApi, ObjectStore};
use crate::ui::Ui;

/// Every AWS trait an executor may use.
pub trait Aws: LambdaApi + IamApi + ObjectStore + EcrApi {}
impl<T: LambdaApi + IamApi + ObjectStore + EcrApi> Aws for T {}

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
}

/// One kind of change: how it looks and how it is carried out.
#[allow(async_fn_in_trait)] // driven from one task; no Send bound needed
pub trait Step {
    fn view(&self) -> View;
    /// Carries the change out. Re-checks what it needs, so a re-run after
    /// a failure anywhere converges.
    async fn apply<A: Aws>(&self, api: &A, cx: &mut Ctx<'_>) -> Result<()>;
}

/// Declares the [`Change`] enum and its dispatch from one list.
macro_rules! changes {
    ($($(#[$doc:meta])* $variant:ident($ty:ty),)*) => {
        /// One typed change of the plan; see the module doc.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Change {
            $($(#[$doc])* $variant($ty),)*
        }

        impl Change {
            pub fn view(&self) -> View {
                match self {
                    $(Change::$variant(c) => c.view(),)*
                }
            }

            pub async fn apply<A: Aws>(&self, api: &A, cx: &mut Ctx<'_>) -> Result<()> {
                match self {
                    $(Change::$variant(c) => c.apply(api, cx).await,)*
                }
            }
        }
    };
}

changes! {
    /// `iam:CreateRole`: the execution role cargo-fn creates.
    CreateRole(super::role::CreateRole),
    /// `iam:PutRolePolicy`: its least-privilege inline policy.
    RolePolicy(super::role::PutRolePolicy),
    /// `ecr:CreateRepository` / `ecr:PutLifecyclePolicy`.
    Repository(super::image::RepositoryChange),
    /// The image's blobs and manifest, pushed to the registry.
    ImagePush(super::image::ImagePush),
    /// `s3:PutObject`: a zip too large to send in the request.
    Upload(super::upload::Upload),
    /// `lambda:CreateFunction`.
    CreateFunction(super::function::CreateFunction),
    /// `lambda:UpdateFunctionCode`.
    Code(super::function::UpdateCode),
    /// `lambda:UpdateFunctionConfiguration`.
    Configuration(super::function::UpdateConfiguration),
    /// `lambda:PublishVersion`.
    Publish(super::function::Publish),
    /// `lambda:CreateAlias` / `lambda:UpdateAlias`.
    Alias(super::alias::AliasMove),
    /// `lambda:PutFunctionConcurrency` / `DeleteFunctionConcurrency`.
    Concurrency(super::limits::ReservedConcurrency),
    /// `lambda:PutProvisionedConcurrencyConfig` on the alias.
    Provisioned(super::limits::ProvisionedConcurrency),
    /// A statement of the alias's resource policy (`AddPermission` /
    /// `RemovePermission`).
    Permission(super::url::Permission),
    /// The alias's function URL configuration.
    Url(super::url::UrlConfig),
    /// `lambda:TagResource` / `lambda:UntagResource`.
    Tags(super::tags::Tags),
    /// Our older zips in the bucket, beyond the newest N.
    CleanObjects(super::upload::CleanObjects),
    /// `lambda:PublishLayerVersion`.
    LayerVersion(super::layer::PublishLayer),
}
