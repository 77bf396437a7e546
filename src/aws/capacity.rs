//! Lambda Managed Instances' capacity providers behind the seam: the
//! provider as plain Rust types ([`ProviderSpec`], [`ProviderState`]), the
//! function's link to one ([`CapacityConfig`], part of
//! [`Settings`](super::Settings)), and the calls deploy makes on them
//! ([`CapacityApi`]), including the two IAM calls the operator role needs.
//!
//! What AWS lets change after creation (the API's shapes,
//! `UpdateCapacityProviderRequest`): only the scaling configuration. The
//! VPC, instance requirements, operator role and KMS key are fixed.

use std::collections::BTreeMap;

use super::ApiResult;

/// The AWS managed policy an operator role needs (Lambda docs, "Lambda
/// operator role for Lambda Managed Instances").
pub const OPERATOR_POLICY_NAME: &str = "AWSLambdaManagedEC2ResourceOperator";

/// The operator policy's ARN in a partition (`aws`, `aws-cn`, ...).
pub fn operator_policy_arn(partition: &str) -> String {
    format!("arn:{partition}:iam::aws:policy/{OPERATOR_POLICY_NAME}")
}

/// `CapacityProviderScalingConfig`: everything `UpdateCapacityProvider`
/// can change.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProviderScaling {
    /// `MaxVCpuCount` (2..=15000).
    pub max_vcpu: Option<u32>,
    /// `ScalingMode`: `Auto` or `Manual`.
    pub mode: Option<String>,
    /// One target-tracking policy on
    /// `LambdaCapacityProviderAverageCPUUtilization` (0..=100).
    pub target_cpu: Option<f64>,
}

impl ProviderScaling {
    pub fn is_empty(&self) -> bool {
        *self == ProviderScaling::default()
    }
}

/// A capacity provider as `CreateCapacityProvider` takes it. Lists are
/// sorted (their order means nothing to AWS), so two specs compare equal
/// when AWS would see the same provider.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProviderSpec {
    pub name: String,
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
    pub operator_role_arn: String,
    /// `InstanceRequirements.Architectures` (one of `x86_64`, `arm64`).
    pub architecture: Option<String>,
    pub allowed_instance_types: Vec<String>,
    pub excluded_instance_types: Vec<String>,
    pub scaling: ProviderScaling,
    pub kms_key_arn: Option<String>,
}

impl ProviderSpec {
    /// The spec with its lists sorted.
    pub fn normalized(mut self) -> ProviderSpec {
        for l in [
            &mut self.subnets,
            &mut self.security_groups,
            &mut self.allowed_instance_types,
            &mut self.excluded_instance_types,
        ] {
            l.sort();
            l.dedup();
        }
        self
    }
}

/// A capacity provider as `GetCapacityProvider` reports it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProviderState {
    pub arn: String,
    /// `Pending`, `Active`, `Failed` or `Deleting`.
    pub state: String,
    pub spec: ProviderSpec,
}

/// A function's `CapacityProviderConfig`
/// (`LambdaManagedInstancesCapacityProviderConfig`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CapacityConfig {
    pub provider_arn: String,
    /// `PerExecutionEnvironmentMaxConcurrency` (1..=1600).
    pub max_concurrency: Option<u32>,
    /// `ExecutionEnvironmentMemoryGiBPerVCpu` (2.0..=8.0).
    pub memory_gib_per_vcpu: Option<f64>,
}

/// The calls on capacity providers (and their operator role) deploy makes.
/// Reads return `Ok(None)` for a provider that does not exist.
#[allow(async_fn_in_trait)] // used from one task; no Send bound needed
pub trait CapacityApi {
    /// `GetCapacityProvider` by name or ARN.
    async fn get_capacity_provider(&self, name: &str) -> ApiResult<Option<ProviderState>>;
    async fn create_capacity_provider(
        &self,
        spec: &ProviderSpec,
        tags: &BTreeMap<String, String>,
    ) -> ApiResult<ProviderState>;
    /// `UpdateCapacityProvider`: the scaling configuration only.
    async fn update_capacity_provider(
        &self,
        name: &str,
        scaling: &ProviderScaling,
    ) -> ApiResult<ProviderState>;
    async fn delete_capacity_provider(&self, name: &str) -> ApiResult<()>;
    /// Polls `GetCapacityProvider` until the provider is `Active` (bounded);
    /// `Failed` is an error.
    async fn wait_capacity_provider_active(&self, name: &str) -> ApiResult<ProviderState>;
    /// `ListFunctionVersionsByCapacityProvider`: the qualified ARNs of the
    /// function versions that run on the provider.
    async fn capacity_provider_versions(&self, name: &str) -> ApiResult<Vec<String>>;
    /// `ListTags` of a provider's ARN.
    async fn capacity_provider_tags(&self, arn: &str) -> ApiResult<BTreeMap<String, String>>;
    /// `iam:AttachRolePolicy`.
    async fn attach_role_policy(&self, role: &str, policy_arn: &str) -> ApiResult<()>;
    /// `iam:ListAttachedRolePolicies`: the ARNs.
    async fn attached_role_policies(&self, role: &str) -> ApiResult<Vec<String>>;
}
