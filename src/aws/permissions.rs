//! The IAM actions cargo-fn's AWS calls need: one table, [`ACTIONS`], that
//! the documentation, `cargo fn deploy --print-policy` and the
//! AccessDenied hint read.
//!
//! Each entry names the SDK operations (`Service.Operation`, as the SDK
//! reports them) that need the action. The adapters in this module name
//! their failures by the same action (`api_err("lambda:GetPolicy", ..)`);
//! a unit test checks every action they name is here, and an integration
//! test replays deploys against moto with the [`CallLog`] interceptor on
//! and checks every operation made is listed.

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

/// What an action is needed for (one statement of the printed policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Purpose {
    /// Every deploy: the function, its versions, alias, URL and role.
    Functions,
    /// `[[triggers]]`: mappings, schedules, HTTP APIs, S3 notifications.
    Triggers,
    /// `--s3-bucket`: zips over the direct-upload limit.
    S3Upload,
    /// `--image` / `package-type = "image"`: ECR.
    Images,
    /// Gradual rollouts: alarms and metrics.
    Rollouts,
    /// `managed-instances`: capacity providers and their operator role.
    ManagedInstances,
    /// `cargo fn logs` (not deploy).
    Logs,
    /// `cargo fn durable --remote` (not deploy).
    Durable,
}

impl Purpose {
    /// The statement id in the printed policy.
    pub fn sid(self) -> &'static str {
        match self {
            Purpose::Functions => "CargoFnFunctions",
            Purpose::Triggers => "CargoFnTriggers",
            Purpose::S3Upload => "CargoFnS3Upload",
            Purpose::Images => "CargoFnImages",
            Purpose::Rollouts => "CargoFnRollouts",
            Purpose::ManagedInstances => "CargoFnManagedInstances",
            Purpose::Logs => "CargoFnLogs",
            Purpose::Durable => "CargoFnDurable",
        }
    }
}

/// One IAM action and the SDK operations that need it. An empty `sdk`
/// list is an action checked by AWS without a call of its own
/// (`iam:PassRole`) or made outside the SDK (the registry push).
#[derive(Debug, Clone, Copy)]
pub struct Action {
    pub name: &'static str,
    pub sdk: &'static [&'static str],
    pub purpose: Purpose,
}

const fn a(name: &'static str, sdk: &'static [&'static str], purpose: Purpose) -> Action {
    Action { name, sdk, purpose }
}

use Purpose::*;

/// Every IAM action cargo-fn needs.
pub const ACTIONS: &[Action] = &[
    a(
        "sts:GetCallerIdentity",
        &["Sts.GetCallerIdentity"],
        Functions,
    ),
    a("lambda:GetFunction", &["Lambda.GetFunction"], Functions),
    a(
        "lambda:GetFunctionConfiguration",
        &["Lambda.GetFunctionConfiguration"],
        Functions,
    ),
    a(
        "lambda:CreateFunction",
        &["Lambda.CreateFunction"],
        Functions,
    ),
    a(
        "lambda:UpdateFunctionCode",
        &["Lambda.UpdateFunctionCode"],
        Functions,
    ),
    a(
        "lambda:UpdateFunctionConfiguration",
        &["Lambda.UpdateFunctionConfiguration"],
        Functions,
    ),
    a(
        "lambda:PublishVersion",
        &["Lambda.PublishVersion"],
        Functions,
    ),
    a(
        "lambda:ListVersionsByFunction",
        &["Lambda.ListVersionsByFunction"],
        Functions,
    ),
    a(
        "lambda:DeleteFunction",
        &["Lambda.DeleteFunction"],
        Functions,
    ),
    a("lambda:GetAlias", &["Lambda.GetAlias"], Functions),
    a("lambda:CreateAlias", &["Lambda.CreateAlias"], Functions),
    a("lambda:UpdateAlias", &["Lambda.UpdateAlias"], Functions),
    a("lambda:DeleteAlias", &["Lambda.DeleteAlias"], Functions),
    a("lambda:InvokeFunction", &["Lambda.Invoke"], Functions),
    a("lambda:ListTags", &["Lambda.ListTags"], Functions),
    a("lambda:TagResource", &["Lambda.TagResource"], Functions),
    a("lambda:UntagResource", &["Lambda.UntagResource"], Functions),
    a(
        "lambda:PutFunctionConcurrency",
        &["Lambda.PutFunctionConcurrency"],
        Functions,
    ),
    a(
        "lambda:DeleteFunctionConcurrency",
        &["Lambda.DeleteFunctionConcurrency"],
        Functions,
    ),
    a(
        "lambda:GetProvisionedConcurrencyConfig",
        &["Lambda.GetProvisionedConcurrencyConfig"],
        Functions,
    ),
    a(
        "lambda:PutProvisionedConcurrencyConfig",
        &["Lambda.PutProvisionedConcurrencyConfig"],
        Functions,
    ),
    a(
        "lambda:GetFunctionUrlConfig",
        &["Lambda.GetFunctionUrlConfig"],
        Functions,
    ),
    a(
        "lambda:CreateFunctionUrlConfig",
        &["Lambda.CreateFunctionUrlConfig"],
        Functions,
    ),
    a(
        "lambda:UpdateFunctionUrlConfig",
        &["Lambda.UpdateFunctionUrlConfig"],
        Functions,
    ),
    a(
        "lambda:DeleteFunctionUrlConfig",
        &["Lambda.DeleteFunctionUrlConfig"],
        Functions,
    ),
    a("lambda:GetPolicy", &["Lambda.GetPolicy"], Functions),
    a("lambda:AddPermission", &["Lambda.AddPermission"], Functions),
    a(
        "lambda:RemovePermission",
        &["Lambda.RemovePermission"],
        Functions,
    ),
    a(
        "lambda:PublishLayerVersion",
        &["Lambda.PublishLayerVersion"],
        Functions,
    ),
    a("iam:GetRole", &["Iam.GetRole"], Functions),
    a("iam:CreateRole", &["Iam.CreateRole"], Functions),
    a("iam:PutRolePolicy", &["Iam.PutRolePolicy"], Functions),
    a("iam:GetRolePolicy", &["Iam.GetRolePolicy"], Functions),
    a("iam:ListRolePolicies", &["Iam.ListRolePolicies"], Functions),
    a(
        "iam:ListAttachedRolePolicies",
        &["Iam.ListAttachedRolePolicies"],
        Functions,
    ),
    a("iam:GetPolicy", &["Iam.GetPolicy"], Functions),
    a("iam:GetPolicyVersion", &["Iam.GetPolicyVersion"], Functions),
    // Checked by CreateFunction, UpdateFunctionConfiguration and
    // CreateSchedule when they hand a role to Lambda or the scheduler.
    a("iam:PassRole", &[], Functions),
    // Checked by CreateRole, which tags the roles cargo-fn creates
    // (`managed-by`, and `cargo-fn:stage` with a stage selected).
    a("iam:TagRole", &[], Functions),
    a(
        "lambda:ListEventSourceMappings",
        &["Lambda.ListEventSourceMappings"],
        Triggers,
    ),
    a(
        "lambda:GetEventSourceMapping",
        &["Lambda.GetEventSourceMapping"],
        Triggers,
    ),
    a(
        "lambda:CreateEventSourceMapping",
        &["Lambda.CreateEventSourceMapping"],
        Triggers,
    ),
    a(
        "lambda:UpdateEventSourceMapping",
        &["Lambda.UpdateEventSourceMapping"],
        Triggers,
    ),
    a(
        "lambda:DeleteEventSourceMapping",
        &["Lambda.DeleteEventSourceMapping"],
        Triggers,
    ),
    a(
        "scheduler:ListSchedules",
        &["Scheduler.ListSchedules"],
        Triggers,
    ),
    a(
        "scheduler:GetSchedule",
        &["Scheduler.GetSchedule"],
        Triggers,
    ),
    a(
        "scheduler:CreateSchedule",
        &["Scheduler.CreateSchedule"],
        Triggers,
    ),
    a(
        "scheduler:UpdateSchedule",
        &["Scheduler.UpdateSchedule"],
        Triggers,
    ),
    a(
        "scheduler:DeleteSchedule",
        &["Scheduler.DeleteSchedule"],
        Triggers,
    ),
    // API Gateway authorizes by HTTP method on the resource path.
    a(
        "apigateway:GET",
        &[
            "ApiGatewayV2.GetApis",
            "ApiGatewayV2.GetRoutes",
            "ApiGatewayV2.GetIntegrations",
            "ApiGatewayV2.GetStages",
        ],
        Triggers,
    ),
    a(
        "apigateway:POST",
        &[
            "ApiGatewayV2.CreateApi",
            "ApiGatewayV2.CreateRoute",
            "ApiGatewayV2.CreateIntegration",
            "ApiGatewayV2.CreateStage",
        ],
        Triggers,
    ),
    a(
        "apigateway:PATCH",
        &["ApiGatewayV2.UpdateApi", "ApiGatewayV2.UpdateIntegration"],
        Triggers,
    ),
    a(
        "apigateway:DELETE",
        &[
            "ApiGatewayV2.DeleteApi",
            "ApiGatewayV2.DeleteRoute",
            "ApiGatewayV2.DeleteCorsConfiguration",
        ],
        Triggers,
    ),
    a(
        "s3:GetBucketNotification",
        &["S3.GetBucketNotificationConfiguration"],
        Triggers,
    ),
    // The *Configuration operations are authorized as these actions.
    a(
        "s3:PutBucketNotification",
        &["S3.PutBucketNotificationConfiguration"],
        Triggers,
    ),
    a("iam:DeleteRole", &["Iam.DeleteRole"], Triggers),
    a("iam:DeleteRolePolicy", &["Iam.DeleteRolePolicy"], Triggers),
    a("s3:PutObject", &["S3.PutObject"], S3Upload),
    a("s3:ListBucket", &["S3.ListObjectsV2"], S3Upload),
    a("s3:DeleteObject", &["S3.DeleteObjects"], S3Upload),
    // Lambda reads the uploaded zip with the caller's permissions.
    a("s3:GetObject", &[], S3Upload),
    a(
        "ecr:DescribeRepositories",
        &["Ecr.DescribeRepositories"],
        Images,
    ),
    a("ecr:CreateRepository", &["Ecr.CreateRepository"], Images),
    a(
        "ecr:GetLifecyclePolicy",
        &["Ecr.GetLifecyclePolicy"],
        Images,
    ),
    a(
        "ecr:PutLifecyclePolicy",
        &["Ecr.PutLifecyclePolicy"],
        Images,
    ),
    a(
        "ecr:GetAuthorizationToken",
        &["Ecr.GetAuthorizationToken"],
        Images,
    ),
    // The image push speaks the registry protocol, not the SDK.
    a("ecr:BatchCheckLayerAvailability", &[], Images),
    a("ecr:InitiateLayerUpload", &[], Images),
    a("ecr:UploadLayerPart", &[], Images),
    a("ecr:CompleteLayerUpload", &[], Images),
    a("ecr:PutImage", &[], Images),
    a("ecr:BatchGetImage", &[], Images),
    a(
        "cloudwatch:DescribeAlarms",
        &["CloudWatch.DescribeAlarms"],
        Rollouts,
    ),
    a(
        "cloudwatch:GetMetricData",
        &["CloudWatch.GetMetricData"],
        Rollouts,
    ),
    a(
        "logs:DescribeLogGroups",
        &["CloudWatchLogs.DescribeLogGroups"],
        Logs,
    ),
    a(
        "lambda:GetCapacityProvider",
        &["Lambda.GetCapacityProvider"],
        ManagedInstances,
    ),
    a(
        "lambda:CreateCapacityProvider",
        &["Lambda.CreateCapacityProvider"],
        ManagedInstances,
    ),
    a(
        "lambda:UpdateCapacityProvider",
        &["Lambda.UpdateCapacityProvider"],
        ManagedInstances,
    ),
    a(
        "lambda:DeleteCapacityProvider",
        &["Lambda.DeleteCapacityProvider"],
        ManagedInstances,
    ),
    a(
        "lambda:ListFunctionVersionsByCapacityProvider",
        &["Lambda.ListFunctionVersionsByCapacityProvider"],
        ManagedInstances,
    ),
    // Checked by AWS when a function names a capacity provider (Lambda
    // docs, Managed Instances core concepts), without a call of its own.
    a("lambda:PassCapacityProvider", &[], ManagedInstances),
    a(
        "iam:AttachRolePolicy",
        &["Iam.AttachRolePolicy"],
        ManagedInstances,
    ),
    a(
        "logs:FilterLogEvents",
        &["CloudWatchLogs.FilterLogEvents"],
        Logs,
    ),
    a(
        "logs:StartLiveTail",
        &["CloudWatchLogs.StartLiveTail"],
        Logs,
    ),
    a(
        "lambda:ListDurableExecutionsByFunction",
        &["Lambda.ListDurableExecutionsByFunction"],
        Durable,
    ),
    a(
        "lambda:GetDurableExecution",
        &["Lambda.GetDurableExecution"],
        Durable,
    ),
    a(
        "lambda:GetDurableExecutionHistory",
        &["Lambda.GetDurableExecutionHistory"],
        Durable,
    ),
    a(
        "lambda:StopDurableExecution",
        &["Lambda.StopDurableExecution"],
        Durable,
    ),
    a(
        "lambda:SendDurableExecutionCallbackSuccess",
        &["Lambda.SendDurableExecutionCallbackSuccess"],
        Durable,
    ),
    a(
        "lambda:SendDurableExecutionCallbackFailure",
        &["Lambda.SendDurableExecutionCallbackFailure"],
        Durable,
    ),
    a(
        "lambda:SendDurableExecutionCallbackHeartbeat",
        &["Lambda.SendDurableExecutionCallbackHeartbeat"],
        Durable,
    ),
];

/// The IAM action an SDK operation (`Service.Operation`) needs.
pub fn action_of(service: &str, operation: &str) -> Option<&'static str> {
    ACTIONS
        .iter()
        .find(|a| {
            a.sdk.iter().any(|s| {
                s.split_once('.')
                    .is_some_and(|(sv, op)| sv.eq_ignore_ascii_case(service) && op == operation)
            })
        })
        .map(|a| a.name)
}

/// The identity policy (JSON) a user or CI role needs to run
/// `cargo fn deploy` (every purpose but `logs` and `durable`), one statement
/// per purpose.
pub fn deploy_policy() -> String {
    let mut statements = Vec::new();
    for purpose in [
        Functions,
        Triggers,
        S3Upload,
        Images,
        Rollouts,
        ManagedInstances,
    ] {
        let mut actions: Vec<&str> = ACTIONS
            .iter()
            .filter(|a| a.purpose == purpose)
            .map(|a| a.name)
            .collect();
        actions.sort_unstable();
        statements.push(serde_json::json!({
            "Sid": purpose.sid(),
            "Effect": "Allow",
            "Action": actions,
            "Resource": "*",
        }));
    }
    let policy = serde_json::json!({ "Version": "2012-10-17", "Statement": statements });
    serde_json::to_string_pretty(&policy).unwrap_or_default()
}

/// Logs every SDK call with its IAM action at debug level (target
/// `cargo_fn::aws_calls`, e.g. `CARGO_FN_LOG=cargo_fn::aws_calls=debug`):
/// what a restricted role must allow, seen from a real run.
#[derive(Debug, Clone, Copy)]
pub struct CallLog;

impl Intercept for CallLog {
    fn name(&self) -> &'static str {
        "CallLog"
    }

    fn read_before_serialization(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(m) = cfg.load::<Metadata>() {
            let action =
                action_of(m.service(), m.name()).unwrap_or("(not in the permissions list)");
            tracing::debug!(target: "cargo_fn::aws_calls", "aws call {}.{} needs {action}", m.service(), m.name());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The adapters' sources, where every SDK call names its action.
    const SOURCES: &[(&str, &str)] = &[
        ("sdk.rs", include_str!("sdk.rs")),
        ("sdk_triggers.rs", include_str!("sdk_triggers.rs")),
        ("sdk_ecr.rs", include_str!("sdk_ecr.rs")),
        ("sdk_capacity.rs", include_str!("sdk_capacity.rs")),
        ("logs.rs", include_str!("logs.rs")),
        ("invoke.rs", include_str!("invoke.rs")),
        ("durable.rs", include_str!("durable.rs")),
        ("cloudwatch.rs", include_str!("cloudwatch.rs")),
        ("traffic.rs", include_str!("traffic.rs")),
    ];

    /// `"service:Action"` string literals in a source.
    fn named_actions(src: &str) -> Vec<String> {
        let mut out = Vec::new();
        for piece in src.split('"').skip(1).step_by(2) {
            let Some((service, action)) = piece.split_once(':') else {
                continue;
            };
            let service_ok = !service.is_empty()
                && service
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
            let action_ok = action
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_uppercase())
                && action.chars().all(|c| c.is_ascii_alphanumeric());
            if service_ok && action_ok {
                out.push(piece.to_string());
            }
        }
        out
    }

    #[test]
    fn every_action_the_adapters_name_is_in_the_permissions_list() {
        let listed: Vec<&str> = ACTIONS.iter().map(|a| a.name).collect();
        let mut named = Vec::new();
        for (file, src) in SOURCES {
            for action in named_actions(src) {
                assert!(
                    listed.contains(&action.as_str()),
                    "src/aws/{file} names `{action}`, missing from permissions::ACTIONS"
                );
                named.push(action);
            }
        }
        // And nothing listed with an SDK call is stale.
        for a in ACTIONS.iter().filter(|a| !a.sdk.is_empty()) {
            assert!(
                named.iter().any(|n| n == a.name),
                "permissions::ACTIONS lists `{}` but no adapter names it",
                a.name
            );
        }
    }

    #[test]
    fn sdk_operations_map_to_their_iam_action() {
        assert_eq!(action_of("Lambda", "Invoke"), Some("lambda:InvokeFunction"));
        assert_eq!(action_of("S3", "ListObjectsV2"), Some("s3:ListBucket"));
        assert_eq!(
            action_of("ApiGatewayV2", "GetRoutes"),
            Some("apigateway:GET")
        );
        assert_eq!(action_of("Lambda", "DeleteLayerVersion"), None);
    }

    #[test]
    fn the_deploy_policy_lists_every_deploy_action_once() {
        let policy: serde_json::Value = serde_json::from_str(&deploy_policy()).unwrap();
        let mut printed: Vec<String> = policy["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s["Action"].as_array().unwrap().clone())
            .map(|a| a.as_str().unwrap().to_string())
            .collect();
        let n = printed.len();
        printed.sort();
        printed.dedup();
        assert_eq!(printed.len(), n, "an action is printed twice");
        for a in ACTIONS
            .iter()
            .filter(|a| a.purpose != Logs && a.purpose != Durable)
        {
            assert!(printed.iter().any(|p| p == a.name), "{} missing", a.name);
        }
        assert!(printed.iter().any(|p| p == "iam:GetRolePolicy"));
        assert!(printed.iter().any(|p| p == "scheduler:ListSchedules"));
    }
}
