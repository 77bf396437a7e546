//! [`CapacityApi`] for the in-memory fake (tests only). It enforces what
//! AWS enforces: a provider name is unique, only the scaling configuration
//! changes, a provider with function versions on it cannot be deleted.
//! A provider can be told to end `Failed` ([`FakeAws::fail_next_provider`]).

use std::collections::BTreeMap;

use super::capacity::{CapacityApi, ProviderScaling, ProviderSpec, ProviderState};
use super::fake::FakeAws;
use super::{ApiError, ApiResult};

#[derive(Debug, Default)]
pub(super) struct CapacityState {
    /// Name -> (provider, tags).
    providers: BTreeMap<String, (ProviderState, BTreeMap<String, String>)>,
    /// Role name -> attached managed policy ARNs.
    attached: BTreeMap<String, Vec<String>>,
    /// The next provider created ends `Failed` instead of `Active`.
    fail_next: bool,
}

impl FakeAws {
    /// Makes the next capacity provider created end in state `Failed`.
    pub fn fail_next_provider(&self) {
        self.lock().capacity.fail_next = true;
    }

    /// The capacity providers, by name, with their tags.
    pub fn providers(&self) -> BTreeMap<String, (ProviderState, BTreeMap<String, String>)> {
        self.lock().capacity.providers.clone()
    }

    /// Adds a provider made outside cargo-fn (no tags), `Active`.
    pub fn add_provider(&self, spec: ProviderSpec) -> String {
        let mut s = self.lock();
        let arn = provider_arn(&spec.name);
        let p = ProviderState {
            arn: arn.clone(),
            state: "Active".into(),
            spec,
        };
        s.capacity
            .providers
            .insert(p.spec.name.clone(), (p, BTreeMap::new()));
        arn
    }

    /// The managed policies attached to a role.
    pub fn attached(&self, role: &str) -> Vec<String> {
        let s = self.lock();
        s.capacity.attached.get(role).cloned().unwrap_or_default()
    }
}

fn provider_arn(name: &str) -> String {
    format!("arn:aws:lambda:us-east-1:123456789012:capacity-provider:{name}")
}

/// A name or ARN as the provider's name.
fn short(name: &str) -> &str {
    name.rsplit(':').next().unwrap_or(name)
}

fn not_found(op: &str, name: &str) -> ApiError {
    ApiError::new(
        op,
        "ResourceNotFoundException",
        format!("capacity provider {name} not found"),
    )
}

impl CapacityApi for FakeAws {
    async fn get_capacity_provider(&self, name: &str) -> ApiResult<Option<ProviderState>> {
        let s = self.enter("lambda:GetCapacityProvider")?;
        Ok(s.capacity
            .providers
            .get(short(name))
            .map(|(p, _)| p.clone()))
    }

    async fn create_capacity_provider(
        &self,
        spec: &ProviderSpec,
        tags: &BTreeMap<String, String>,
    ) -> ApiResult<ProviderState> {
        let op = "lambda:CreateCapacityProvider";
        let mut s = self.enter(op)?;
        if s.capacity.providers.contains_key(&spec.name) {
            return Err(ApiError::new(
                op,
                "ResourceConflictException",
                "capacity provider exists",
            ));
        }
        if s.roles.values().all(|r| r.arn != spec.operator_role_arn) {
            return Err(ApiError::new(
                op,
                "InvalidParameterValueException",
                "the operator role does not exist",
            ));
        }
        let state = if std::mem::take(&mut s.capacity.fail_next) {
            "Failed"
        } else {
            // Pending until the first wait, as AWS answers 202.
            "Pending"
        };
        let p = ProviderState {
            arn: provider_arn(&spec.name),
            state: state.into(),
            spec: spec.clone().normalized(),
        };
        s.capacity
            .providers
            .insert(spec.name.clone(), (p.clone(), tags.clone()));
        Ok(p)
    }

    async fn update_capacity_provider(
        &self,
        name: &str,
        scaling: &ProviderScaling,
    ) -> ApiResult<ProviderState> {
        let op = "lambda:UpdateCapacityProvider";
        let mut s = self.enter(op)?;
        let (p, _) = s
            .capacity
            .providers
            .get_mut(short(name))
            .ok_or_else(|| not_found(op, name))?;
        p.spec.scaling = scaling.clone();
        Ok(p.clone())
    }

    async fn delete_capacity_provider(&self, name: &str) -> ApiResult<()> {
        let op = "lambda:DeleteCapacityProvider";
        let mut s = self.enter(op)?;
        let Some((p, _)) = s.capacity.providers.get(short(name)) else {
            return Ok(());
        };
        if !s.versions_on(&p.arn).is_empty() {
            return Err(ApiError::new(
                op,
                "ResourceConflictException",
                "function versions still run on the capacity provider",
            ));
        }
        s.capacity.providers.remove(short(name));
        Ok(())
    }

    async fn wait_capacity_provider_active(&self, name: &str) -> ApiResult<ProviderState> {
        let op = "lambda:GetCapacityProvider";
        let mut s = self.enter(op)?;
        let (p, _) = s
            .capacity
            .providers
            .get_mut(short(name))
            .ok_or_else(|| not_found(op, name))?;
        if p.state == "Pending" {
            p.state = "Active".into();
        }
        if p.state != "Active" {
            return Err(ApiError::new(
                op,
                "WaiterFailure",
                format!("capacity provider {name} is {}", p.state),
            ));
        }
        Ok(p.clone())
    }

    async fn capacity_provider_versions(&self, name: &str) -> ApiResult<Vec<String>> {
        let s = self.enter("lambda:ListFunctionVersionsByCapacityProvider")?;
        Ok(s.versions_on(&provider_arn(short(name))))
    }

    async fn capacity_provider_tags(&self, arn: &str) -> ApiResult<BTreeMap<String, String>> {
        let op = "lambda:ListTags";
        let s = self.enter(op)?;
        s.capacity
            .providers
            .get(short(arn))
            .map(|(_, t)| t.clone())
            .ok_or_else(|| not_found(op, arn))
    }

    async fn attach_role_policy(&self, role: &str, policy_arn: &str) -> ApiResult<()> {
        let op = "iam:AttachRolePolicy";
        let mut s = self.enter(op)?;
        if !s.roles.contains_key(role) {
            return Err(ApiError::new(op, "NoSuchEntity", "no such role"));
        }
        let list = s.capacity.attached.entry(role.to_string()).or_default();
        if !list.iter().any(|a| a == policy_arn) {
            list.push(policy_arn.to_string());
        }
        Ok(())
    }

    async fn attached_role_policies(&self, role: &str) -> ApiResult<Vec<String>> {
        let s = self.enter("iam:ListAttachedRolePolicies")?;
        Ok(s.capacity.attached.get(role).cloned().unwrap_or_default())
    }
}
