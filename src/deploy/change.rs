//! The list of kinds: a [`Change`] is one typed change of the plan, one
//! variant per kind of [`Step`] (the vocabulary lives in `step.rs`). The
//! plan is an ordered list of them; `--dry-run` renders the list (text and
//! JSON, through [`View`]) and `execute` walks it, calling each change's own
//! executor ([`Step::apply`]). Nothing else drives a write.
//!
//! Adding a resource kind is one struct that implements [`Step`] in its
//! concern's module (how it looks, how it is applied, and where the
//! concern plans it) plus one line in the `changes!` list below, which
//! generates the [`Change`] variant, both dispatches and a `From` so the
//! concern's planner can return it without naming this list. A concern
//! with several kinds of its own (triggers: event source mappings,
//! schedules, S3 notifications, HTTP APIs) adds one variant holding its
//! own sub-enum that implements [`Step`] by matching on itself. An executor
//! gets the AWS traits through [`Aws`] (extend that bound when a kind needs
//! a new trait).

use anyhow::Result;

use super::step::{Aws, Ctx, Step, View};

/// Declares the [`Change`] enum and its dispatch from one list.
macro_rules! changes {
    ($($(#[$doc:meta])* $variant:ident($ty:ty),)*) => {
        /// One typed change of the plan; see the module doc.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Change {
            $($(#[$doc])* $variant($ty),)*
        }

        $(impl From<$ty> for Change {
            fn from(c: $ty) -> Change {
                Change::$variant(c)
            }
        })*

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
    /// The operator role of a capacity provider cargo-fn creates
    /// (`iam:CreateRole`, `iam:AttachRolePolicy`).
    OperatorRole(super::capacity_provider::OperatorRole),
    /// `lambda:Create/Update/DeleteCapacityProvider` (Managed Instances).
    CapacityProvider(super::capacity_provider::ProviderChange),
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
    /// A trigger's mapping, schedule, notification, HTTP API, permission
    /// or role policy (`deploy/triggers/` owns the kinds).
    Trigger(Box<super::triggers::TriggerStep>),
}
