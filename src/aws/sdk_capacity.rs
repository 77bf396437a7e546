//! [`CapacityApi`] on the AWS SDK: Lambda's capacity-provider operations
//! and the two IAM calls of the operator role. The SDK has no waiter for
//! a provider's state, so [`CapacityApi::wait_capacity_provider_active`]
//! polls `GetCapacityProvider` itself (bounded).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_lambda::types as lt;

use super::capacity::{CapacityApi, ProviderScaling, ProviderSpec, ProviderState};
use super::sdk::{SdkAws, api_err, not_found};
use super::{ApiError, ApiResult};

/// Longest wait for a provider to leave `Pending`.
const PROVIDER_WAIT: Duration = Duration::from_secs(600);

/// The only predefined metric a target-tracking policy can name.
const CPU_METRIC: &str = "LambdaCapacityProviderAverageCPUUtilization";

fn provider_state(p: &lt::CapacityProvider) -> ProviderState {
    let vpc = p.vpc_config();
    let req = p.instance_requirements();
    let scaling = p.capacity_provider_scaling_config();
    let name = p
        .capacity_provider_arn()
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .to_string();
    ProviderState {
        arn: p.capacity_provider_arn().to_string(),
        state: p.state().as_str().to_string(),
        spec: ProviderSpec {
            name,
            subnets: vpc.map(|v| v.subnet_ids().to_vec()).unwrap_or_default(),
            security_groups: vpc
                .map(|v| v.security_group_ids().to_vec())
                .unwrap_or_default(),
            operator_role_arn: p
                .permissions_config()
                .map(|c| c.capacity_provider_operator_role_arn().to_string())
                .unwrap_or_default(),
            architecture: req
                .and_then(|r| r.architectures().first())
                .map(|a| a.as_str().to_string()),
            allowed_instance_types: req
                .map(|r| r.allowed_instance_types().to_vec())
                .unwrap_or_default(),
            excluded_instance_types: req
                .map(|r| r.excluded_instance_types().to_vec())
                .unwrap_or_default(),
            scaling: ProviderScaling {
                max_vcpu: scaling.and_then(|s| s.max_v_cpu_count()).map(|n| n as u32),
                mode: scaling
                    .and_then(|s| s.scaling_mode())
                    .map(|m| m.as_str().to_string()),
                target_cpu: scaling
                    .and_then(|s| s.scaling_policies().first())
                    .map(|p| p.target_value()),
            },
            kms_key_arn: p
                .kms_key_arn()
                .filter(|k| !k.is_empty())
                .map(str::to_string),
        }
        .normalized(),
    }
}

fn missing(operation: &str) -> ApiError {
    ApiError::new(
        operation,
        "InvalidResponse",
        "no capacity provider in the answer",
    )
}

/// The scaling configuration as the API takes it (`None`: nothing set).
pub(super) fn scaling_config(s: &ProviderScaling) -> Option<lt::CapacityProviderScalingConfig> {
    if s.is_empty() {
        return None;
    }
    let policy = s.target_cpu.and_then(|t| {
        lt::TargetTrackingScalingPolicy::builder()
            .predefined_metric_type(lt::CapacityProviderPredefinedMetricType::from(CPU_METRIC))
            .target_value(t)
            .build()
            .ok()
    });
    Some(
        lt::CapacityProviderScalingConfig::builder()
            .set_max_v_cpu_count(s.max_vcpu.map(|n| n as i32))
            .set_scaling_mode(s.mode.as_deref().map(lt::CapacityProviderScalingMode::from))
            .set_scaling_policies(policy.map(|p| vec![p]))
            .build(),
    )
}

impl CapacityApi for SdkAws {
    async fn get_capacity_provider(&self, name: &str) -> ApiResult<Option<ProviderState>> {
        let op = "lambda:GetCapacityProvider";
        match self
            .lambda
            .get_capacity_provider()
            .capacity_provider_name(name)
            .send()
            .await
        {
            Ok(o) => Ok(o.capacity_provider().map(provider_state)),
            Err(e) => not_found(api_err(op, e)),
        }
    }

    async fn create_capacity_provider(
        &self,
        spec: &ProviderSpec,
        tags: &BTreeMap<String, String>,
    ) -> ApiResult<ProviderState> {
        let op = "lambda:CreateCapacityProvider";
        let bad = |e: aws_smithy_types::error::operation::BuildError| {
            ApiError::new(op, "InvalidParameterValueException", e.to_string())
        };
        let vpc = lt::CapacityProviderVpcConfig::builder()
            .set_subnet_ids(Some(spec.subnets.clone()))
            .set_security_group_ids(Some(spec.security_groups.clone()))
            .build()
            .map_err(bad)?;
        let permissions = lt::CapacityProviderPermissionsConfig::builder()
            .capacity_provider_operator_role_arn(&spec.operator_role_arn)
            .build()
            .map_err(bad)?;
        let wants_requirements = spec.architecture.is_some()
            || !spec.allowed_instance_types.is_empty()
            || !spec.excluded_instance_types.is_empty();
        let requirements = wants_requirements.then(|| {
            lt::InstanceRequirements::builder()
                .set_architectures(
                    spec.architecture
                        .as_deref()
                        .map(|a| vec![lt::Architecture::from(a)]),
                )
                .set_allowed_instance_types(
                    (!spec.allowed_instance_types.is_empty())
                        .then(|| spec.allowed_instance_types.clone()),
                )
                .set_excluded_instance_types(
                    (!spec.excluded_instance_types.is_empty())
                        .then(|| spec.excluded_instance_types.clone()),
                )
                .build()
        });
        let out = self
            .lambda
            .create_capacity_provider()
            .capacity_provider_name(&spec.name)
            .vpc_config(vpc)
            .permissions_config(permissions)
            .set_instance_requirements(requirements)
            .set_capacity_provider_scaling_config(scaling_config(&spec.scaling))
            .set_kms_key_arn(spec.kms_key_arn.clone())
            .set_tags(Some(tags.clone().into_iter().collect()))
            .send()
            .await
            .map_err(|e| api_err(op, e))?;
        out.capacity_provider()
            .map(provider_state)
            .ok_or_else(|| missing(op))
    }

    async fn update_capacity_provider(
        &self,
        name: &str,
        scaling: &ProviderScaling,
    ) -> ApiResult<ProviderState> {
        let op = "lambda:UpdateCapacityProvider";
        let out = self
            .lambda
            .update_capacity_provider()
            .capacity_provider_name(name)
            .set_capacity_provider_scaling_config(scaling_config(scaling))
            .send()
            .await
            .map_err(|e| api_err(op, e))?;
        out.capacity_provider()
            .map(provider_state)
            .ok_or_else(|| missing(op))
    }

    async fn delete_capacity_provider(&self, name: &str) -> ApiResult<()> {
        let op = "lambda:DeleteCapacityProvider";
        match self
            .lambda
            .delete_capacity_provider()
            .capacity_provider_name(name)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => not_found::<()>(api_err(op, e)).map(|_| ()),
        }
    }

    async fn wait_capacity_provider_active(&self, name: &str) -> ApiResult<ProviderState> {
        let op = "lambda:GetCapacityProvider";
        let started = Instant::now();
        let mut delay = Duration::from_secs(1);
        loop {
            let p = self
                .get_capacity_provider(name)
                .await?
                .ok_or_else(|| ApiError::new(op, "ResourceNotFoundException", name))?;
            match p.state.as_str() {
                "Active" => return Ok(p),
                "Failed" | "Deleting" => {
                    return Err(ApiError::new(
                        op,
                        "WaiterFailure",
                        format!("capacity provider {name} is {}", p.state),
                    ));
                }
                _ if started.elapsed() > PROVIDER_WAIT => {
                    return Err(ApiError::new(
                        op,
                        "Timeout",
                        format!(
                            "capacity provider {name} was still {} after {} s",
                            p.state,
                            PROVIDER_WAIT.as_secs()
                        ),
                    ));
                }
                _ => {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
            }
        }
    }

    async fn capacity_provider_versions(&self, name: &str) -> ApiResult<Vec<String>> {
        let op = "lambda:ListFunctionVersionsByCapacityProvider";
        let mut arns = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let out = match self
                .lambda
                .list_function_versions_by_capacity_provider()
                .capacity_provider_name(name)
                .set_marker(marker.clone())
                .send()
                .await
            {
                Ok(o) => o,
                Err(e) => {
                    let e = api_err(op, e);
                    if e.is_not_found() {
                        return Ok(arns);
                    }
                    return Err(e);
                }
            };
            arns.extend(
                out.function_versions()
                    .iter()
                    .map(|v| v.function_arn().to_string()),
            );
            match out.next_marker() {
                Some(m) if !m.is_empty() => marker = Some(m.to_string()),
                _ => return Ok(arns),
            }
        }
    }

    async fn capacity_provider_tags(&self, arn: &str) -> ApiResult<BTreeMap<String, String>> {
        let out = self
            .lambda
            .list_tags()
            .resource(arn)
            .send()
            .await
            .map_err(|e| api_err("lambda:ListTags", e))?;
        Ok(out
            .tags()
            .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default())
    }

    async fn attach_role_policy(&self, role: &str, policy_arn: &str) -> ApiResult<()> {
        self.iam
            .attach_role_policy()
            .role_name(role)
            .policy_arn(policy_arn)
            .send()
            .await
            .map_err(|e| api_err("iam:AttachRolePolicy", e))?;
        Ok(())
    }

    async fn attached_role_policies(&self, role: &str) -> ApiResult<Vec<String>> {
        let out = self
            .iam
            .list_attached_role_policies()
            .role_name(role)
            .send()
            .await
            .map_err(|e| api_err("iam:ListAttachedRolePolicies", e))?;
        Ok(out
            .attached_policies()
            .iter()
            .filter_map(|p| p.policy_arn().map(str::to_string))
            .collect())
    }
}
