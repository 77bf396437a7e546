//! The execution role: the one cargo-fn creates (`cargo-fn-<function>`,
//! tagged `managed-by=cargo-fn`) and its least-privilege inline policy,
//! or a role the user names (never changed; a dry run checks that it can
//! read the configured secrets).
//!
//! The policy grants: this function's logs; X-Ray only with tracing Active;
//! ENI management only in a VPC; `secretsmanager:GetSecretValue` on exactly
//! the configured secrets (a name becomes
//! `arn:<partition>:secretsmanager:<region>:<account>:secret:<name>-??????`,
//! the six characters Secrets Manager appends; an ARN is used as given).
//!
//! Whether the policy must be put again is decided without an IAM read:
//! the function carries the tag `cargo-fn:role-policy` with a fingerprint
//! of the policy it was last given (the document with the account left
//! abstract), read with the function itself. A function without it (new,
//! or deployed by an older cargo-fn) gets the policy put once.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;
use serde::Serialize;

use super::step::{Action, Aws, Ctx, Step, View};
use super::{MANAGED_BY_KEY, MANAGED_BY_VALUE};
use crate::aws::FunctionState;
use crate::config::{FunctionConfig, Tracing};
use crate::error::hinted;

/// The inline policy of a role cargo-fn creates.
pub const ROLE_POLICY_NAME: &str = "cargo-fn-execution";
/// The IAM description of the execution role cargo-fn creates.
pub const EXECUTION_ROLE_DESCRIPTION: &str = "Lambda execution role created by cargo-fn";
/// Function tag holding the fingerprint of the policy last put.
pub const POLICY_TAG: &str = "cargo-fn:role-policy";

pub const TRUST_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

/// `cargo-fn-<function>`, shortened with a hash to IAM's 64 characters.
pub fn managed_role_name(function: &str) -> String {
    let name = format!("cargo-fn-{function}");
    if name.len() <= 64 {
        return name;
    }
    let hash = crate::package::sha256_b64(function.as_bytes())
        .replace(['+', '/', '='], "")
        .chars()
        .take(8)
        .collect::<String>();
    format!("{}-{hash}", &name[..55])
}

/// The ARN partition of a region (`aws`, `aws-cn`, `aws-us-gov`).
pub fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// The account of an ARN (`arn:aws:iam::123456789012:role/x`).
pub fn account_of(arn: &str) -> Option<&str> {
    arn.split(':').nth(4).filter(|a| !a.is_empty())
}

/// The resource a configured secret (name or ARN) grants.
pub fn secret_resource(secret: &str, region: &str, account: &str) -> String {
    if secret.starts_with("arn:") {
        secret.to_string()
    } else {
        format!(
            "arn:{}:secretsmanager:{region}:{account}:secret:{secret}-??????",
            partition(region)
        )
    }
}

/// The resource the durable execution actions are granted on: every
/// execution of every version of the function (`function:NAME:*`).
pub fn durable_resource(function: &str, region: &str, account: &str) -> String {
    format!(
        "arn:{}:lambda:{region}:{account}:function:{function}:*",
        partition(region)
    )
}

/// What the inline policy is made from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicySpec {
    pub function: String,
    /// Where the function logs (`/aws/lambda/<function>` by default).
    pub log_group: String,
    pub tracing: bool,
    pub vpc: bool,
    /// Configured secrets (names or ARNs), sorted, without repeats.
    pub secrets: Vec<String>,
    pub region: String,
    /// A durable function: its SDK checkpoints and reads its state.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub durable: bool,
}

/// Stands for the account in a plan made before the role exists.
pub const ACCOUNT_PLACEHOLDER: &str = "<account>";

impl PolicySpec {
    pub fn new(cfg: &FunctionConfig, region: &str) -> PolicySpec {
        let secrets: BTreeSet<String> = cfg.secrets.values().cloned().collect();
        PolicySpec {
            function: cfg.name.clone(),
            log_group: cfg.log_group_name(),
            tracing: cfg.tracing == Tracing::Active,
            vpc: cfg.vpc.is_some(),
            secrets: secrets.into_iter().collect(),
            region: region.to_string(),
            durable: cfg.durable.is_some(),
        }
    }

    /// The policy document for the role's account.
    pub fn document(&self, account: &str) -> serde_json::Value {
        let group = &self.log_group;
        let mut statements = vec![serde_json::json!({
            "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": [
                format!("arn:aws:logs:*:*:log-group:{group}"),
                format!("arn:aws:logs:*:*:log-group:{group}:*"),
            ],
        })];
        if self.tracing {
            statements.push(serde_json::json!({
                "Effect": "Allow",
                "Action": ["xray:PutTraceSegments", "xray:PutTelemetryRecords"],
                "Resource": "*",
            }));
        }
        if self.vpc {
            statements.push(serde_json::json!({
                "Effect": "Allow",
                "Action": [
                    "ec2:CreateNetworkInterface",
                    "ec2:DescribeNetworkInterfaces",
                    "ec2:DescribeSubnets",
                    "ec2:DeleteNetworkInterface",
                    "ec2:AssignPrivateIpAddresses",
                    "ec2:UnassignPrivateIpAddresses",
                ],
                "Resource": "*",
            }));
        }
        if !self.secrets.is_empty() {
            let resources: Vec<String> = self
                .secrets
                .iter()
                .map(|s| secret_resource(s, &self.region, account))
                .collect();
            statements.push(serde_json::json!({
                "Sid": "ConfiguredSecrets",
                "Effect": "Allow",
                "Action": "secretsmanager:GetSecretValue",
                "Resource": resources,
            }));
        }
        if self.durable {
            // What the SDK calls from inside the function. Lambda authorizes
            // them on the execution's ARN, `function:NAME:QUALIFIER/durable-
            // execution/...`, which only a qualified pattern matches.
            statements.push(serde_json::json!({
                "Sid": "DurableExecution",
                "Effect": "Allow",
                "Action": ["lambda:CheckpointDurableExecution", "lambda:GetDurableExecutionState"],
                "Resource": durable_resource(&self.function, &self.region, account),
            }));
        }
        serde_json::json!({"Version": "2012-10-17", "Statement": statements})
    }

    /// Identifies the policy independently of the account (known only once
    /// the role exists): the value of the [`POLICY_TAG`] tag.
    pub fn fingerprint(&self) -> String {
        let doc = self.document(ACCOUNT_PLACEHOLDER).to_string();
        let hex = crate::image::sha256_digest(doc.as_bytes());
        hex.trim_start_matches("sha256:")[..16].to_string()
    }

    /// Short text: what the policy grants.
    pub fn summary(&self) -> String {
        let mut parts = vec!["logs".to_string()];
        if self.tracing {
            parts.push("X-Ray".into());
        }
        if self.vpc {
            parts.push("VPC ENIs".into());
        }
        if !self.secrets.is_empty() {
            parts.push(format!(
                "secretsmanager:GetSecretValue on {}",
                self.secrets.join(", ")
            ));
        }
        if self.durable {
            parts.push("durable execution checkpoints and state".into());
        }
        parts.join(", ")
    }
}

/// What the role concern plans: the ARN the function runs with, the
/// changes (in the plan's change type) and the policy record to keep in
/// the function's tags.
pub struct RolePlan<C> {
    /// A new role's ARN is only known once created: `(new role <name>)`.
    pub arn: String,
    pub changes: Vec<C>,
    pub records: BTreeMap<String, String>,
}

/// The role decision: the configured one, ours from before, or a new one.
/// Reads the role only when the function does not already run with ours.
pub async fn plan<A: Aws, C: From<CreateRole> + From<PutRolePolicy>>(
    api: &A,
    cfg: &FunctionConfig,
    remote: Option<&FunctionState>,
    spec: &PolicySpec,
    stage: Option<&str>,
) -> Result<RolePlan<C>> {
    let mut out = RolePlan {
        arn: String::new(),
        changes: Vec::new(),
        records: BTreeMap::new(),
    };
    match decide(api, cfg, remote, stage).await? {
        // A role the user supplies is never changed; a dry run checks it
        // (see `deploy`).
        Role::Given(arn) => out.arn = arn,
        Role::Reuse {
            name,
            arn,
            unknown_policy,
        } => {
            let before = remote.and_then(|r| r.tags.get(POLICY_TAG)).cloned();
            if unknown_policy || before.as_deref() != Some(spec.fingerprint().as_str()) {
                out.changes.push(C::from(PutRolePolicy {
                    role: name,
                    spec: spec.clone(),
                    account: account_of(&arn).map(str::to_string),
                    before,
                }));
            }
            out.records
                .insert(POLICY_TAG.to_string(), spec.fingerprint());
            out.arn = arn;
        }
        Role::Create(name) => {
            out.arn = format!("(new role {name})");
            out.changes.push(C::from(CreateRole {
                name: name.clone(),
                stage: stage.map(str::to_string),
            }));
            out.changes.push(C::from(PutRolePolicy {
                role: name,
                spec: spec.clone(),
                account: None,
                before: None,
            }));
            out.records
                .insert(POLICY_TAG.to_string(), spec.fingerprint());
        }
    }
    Ok(out)
}

enum Role {
    Given(String),
    Reuse {
        name: String,
        arn: String,
        /// The function does not exist (yet): its policy record is unknown.
        unknown_policy: bool,
    },
    Create(String),
}

async fn decide<A: Aws>(
    api: &A,
    cfg: &FunctionConfig,
    remote: Option<&FunctionState>,
    stage: Option<&str>,
) -> Result<Role> {
    if let Some(arn) = &cfg.role {
        return Ok(Role::Given(arn.clone()));
    }
    let role_name = managed_role_name(&cfg.name);
    let remote_role = remote.map(|r| r.settings.role.as_str());
    if let Some(arn) = remote_role.filter(|r| r.ends_with(&format!("/{role_name}"))) {
        return Ok(Role::Reuse {
            name: role_name,
            arn: arn.to_string(),
            unknown_policy: false,
        });
    }
    match api.get_role(&role_name).await? {
        Some(r) => {
            if r.tags.get(MANAGED_BY_KEY).map(String::as_str) != Some(MANAGED_BY_VALUE) {
                return Err(hinted(
                    format!(
                        "the IAM role {role_name} exists but was not created by cargo-fn \
                         (no tag {MANAGED_BY_KEY}={MANAGED_BY_VALUE})"
                    ),
                    format!(
                        "set `role = \"{}\"` in [package.metadata.fn] to use it, or delete it",
                        r.arn
                    ),
                ));
            }
            // Another stage's role (same name: the function name has no
            // `{stage}`) is never taken over.
            super::guard::check_owner("IAM role", &role_name, &r.tags, stage)?;
            Ok(Role::Reuse {
                name: role_name,
                arn: r.arn,
                unknown_policy: true,
            })
        }
        None => Ok(Role::Create(role_name)),
    }
}

/// Creates the managed role; the function gets its ARN.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateRole {
    pub name: String,
    /// Tagged `cargo-fn:stage` with it.
    pub stage: Option<String>,
}

impl CreateRole {
    fn tags(&self) -> BTreeMap<String, String> {
        let mut tags = BTreeMap::from([(MANAGED_BY_KEY.to_string(), MANAGED_BY_VALUE.to_string())]);
        if let Some(s) = &self.stage {
            tags.insert(super::guard::STAGE_TAG.to_string(), s.clone());
        }
        tags
    }
}

impl Step for CreateRole {
    fn view(&self) -> View {
        let tags = self.tags();
        let tag_text: Vec<String> = tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
        View::new("role", &self.name, Action::Create)
            .after(serde_json::json!({
                "trusts": "lambda.amazonaws.com",
                "tags": tags,
            }))
            .call(format!(
                "iam:CreateRole {} (trusts lambda.amazonaws.com, tag {})",
                self.name,
                tag_text.join(", ")
            ))
    }

    async fn apply<A: Aws>(&self, api: &A, cx: &mut Ctx<'_>) -> Result<()> {
        cx.ui.status("Creating", format!("IAM role {}", self.name));
        let tags = self.tags();
        let created = match api
            .create_role(&self.name, TRUST_POLICY, EXECUTION_ROLE_DESCRIPTION, &tags)
            .await
        {
            Ok(r) => r,
            // A dropped response to an earlier attempt created it.
            Err(e) if e.is("EntityAlreadyExists") => api
                .get_role(&self.name)
                .await?
                .ok_or_else(|| anyhow::Error::new(e.clone()))?,
            Err(e) => return Err(e.into()),
        };
        cx.desired.role = created.arn;
        Ok(())
    }
}

/// Puts the inline policy of the managed role.
#[derive(Debug, Clone, PartialEq)]
pub struct PutRolePolicy {
    pub role: String,
    pub spec: PolicySpec,
    /// The account, when the role's ARN is known at plan time.
    pub account: Option<String>,
    /// The fingerprint the function carries (`None`: never put by this
    /// version of cargo-fn).
    pub before: Option<String>,
}

impl PutRolePolicy {
    pub fn document(&self) -> serde_json::Value {
        self.spec
            .document(self.account.as_deref().unwrap_or(ACCOUNT_PLACEHOLDER))
    }
}

impl Step for PutRolePolicy {
    fn view(&self) -> View {
        let mut v = View::new(
            "role-policy",
            format!("{}/{ROLE_POLICY_NAME}", self.role),
            if self.before.is_some() {
                Action::Update
            } else {
                Action::Create
            },
        )
        .after(self.document())
        .call(format!(
            "iam:PutRolePolicy {} {ROLE_POLICY_NAME} ({})",
            self.role,
            self.spec.summary()
        ));
        if let Some(b) = &self.before {
            v = v.before(format!("policy {b}"));
        }
        v
    }

    async fn apply<A: Aws>(&self, api: &A, cx: &mut Ctx<'_>) -> Result<()> {
        let account = account_of(&cx.desired.role)
            .map(str::to_string)
            .or_else(|| self.account.clone())
            .ok_or_else(|| anyhow::anyhow!("no account in the role ARN {}", cx.desired.role))?;
        let doc = self.spec.document(&account).to_string();
        api.put_role_policy(&self.role, ROLE_POLICY_NAME, &doc)
            .await?;
        Ok(())
    }
}

/// For a role the user names: the configured secrets its policies do not
/// appear to grant, or why they could not be read. Reads only.
pub async fn check_given_role<A: Aws>(
    api: &A,
    role_arn: &str,
    spec: &PolicySpec,
) -> Option<String> {
    if spec.secrets.is_empty() {
        return None;
    }
    let role_name = role_arn.rsplit('/').next().unwrap_or(role_arn);
    let account = account_of(role_arn).unwrap_or("*");
    let docs = match api.role_policies(role_name).await {
        Ok(d) => d,
        Err(e) => {
            return Some(format!(
                "could not read the policies of the role {role_name} ({}: {}); make sure it allows secretsmanager:GetSecretValue on {}",
                e.operation,
                e.code,
                spec.secrets.join(", ")
            ));
        }
    };
    let missing: Vec<&str> = spec
        .secrets
        .iter()
        .filter(|s| {
            // A concrete ARN the secret could have: the pattern's `??????`
            // filled in.
            let example = secret_resource(s, &spec.region, account).replace("??????", "AbCdEf");
            !docs
                .iter()
                .any(|d| grants(d, "secretsmanager:GetSecretValue", &example))
        })
        .map(String::as_str)
        .collect();
    (!missing.is_empty()).then(|| {
        format!(
            "the role {role_name} does not appear to allow secretsmanager:GetSecretValue on {}: the function will be denied reading them (deploy changes nothing on a role you supply)",
            missing.join(", ")
        )
    })
}

/// Whether a policy document has an Allow statement for `action` on
/// `resource` (wildcards `*` and `?`; conditions are not evaluated).
pub fn grants(document: &str, action: &str, resource: &str) -> bool {
    let Ok(doc) = serde_json::from_str::<serde_json::Value>(document) else {
        return false;
    };
    let statements = match &doc["Statement"] {
        serde_json::Value::Array(a) => a.clone(),
        s @ serde_json::Value::Object(_) => vec![s.clone()],
        _ => return false,
    };
    let strings = |v: &serde_json::Value| -> Vec<String> {
        match v {
            serde_json::Value::String(s) => vec![s.clone()],
            serde_json::Value::Array(a) => a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        }
    };
    statements.iter().any(|s| {
        s["Effect"] == "Allow"
            && strings(&s["Action"])
                .iter()
                .any(|a| wildcard(&a.to_ascii_lowercase(), &action.to_ascii_lowercase()))
            && strings(&s["Resource"])
                .iter()
                .any(|r| wildcard(r, resource))
    })
}

/// IAM's `*` / `?` matching.
fn wildcard(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_arn_patterns_and_arns_stay() {
        assert_eq!(
            secret_resource("prod/db", "eu-west-1", "123456789012"),
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-??????"
        );
        let arn = "arn:aws:secretsmanager:eu-west-1:1:secret:x-AbCdEf";
        assert_eq!(secret_resource(arn, "us-east-1", "2"), arn);
        assert!(secret_resource("a", "cn-north-1", "1").starts_with("arn:aws-cn:"));
    }

    #[test]
    fn grants_matches_wildcards_and_ignores_deny() {
        let doc = r#"{"Statement":[{"Effect":"Allow","Action":"secretsmanager:Get*","Resource":"arn:aws:secretsmanager:*:*:secret:prod/*"},{"Effect":"Deny","Action":"*","Resource":"*"}]}"#;
        let arn = "arn:aws:secretsmanager:us-east-1:1:secret:prod/db-AbCdEf";
        assert!(grants(doc, "secretsmanager:GetSecretValue", arn));
        assert!(!grants(
            doc,
            "secretsmanager:GetSecretValue",
            "arn:aws:secretsmanager:us-east-1:1:secret:dev/db-AbCdEf"
        ));
        assert!(!grants(doc, "s3:GetObject", arn));
        assert!(wildcard("a?c*", "abcdef") && !wildcard("a?c", "abcd"));
    }

    #[test]
    fn a_custom_log_group_is_where_the_role_may_log() {
        let spec = PolicySpec {
            function: "hello".into(),
            log_group: "/custom/hello".into(),
            tracing: false,
            vpc: false,
            secrets: vec![],
            region: "us-east-1".into(),
            durable: false,
        };
        let doc = spec.document("123456789012");
        assert_eq!(
            doc["Statement"][0]["Resource"],
            serde_json::json!([
                "arn:aws:logs:*:*:log-group:/custom/hello",
                "arn:aws:logs:*:*:log-group:/custom/hello:*"
            ])
        );
    }

    #[test]
    fn a_durable_function_may_checkpoint_its_own_executions_only() {
        let spec = PolicySpec {
            function: "orders".into(),
            log_group: "/aws/lambda/orders".into(),
            tracing: false,
            vpc: false,
            secrets: vec![],
            region: "eu-west-1".into(),
            durable: true,
        };
        let doc = spec.document("123456789012");
        let st = &doc["Statement"][1];
        assert_eq!(
            st["Action"],
            serde_json::json!([
                "lambda:CheckpointDurableExecution",
                "lambda:GetDurableExecutionState"
            ])
        );
        let resource = st["Resource"].as_str().unwrap();
        assert_eq!(
            resource,
            "arn:aws:lambda:eu-west-1:123456789012:function:orders:*"
        );
        // It matches an execution of any version, never another function's.
        let exec =
            "arn:aws:lambda:eu-west-1:123456789012:function:orders:$LATEST/durable-execution/n/id";
        assert!(wildcard(resource, exec));
        assert!(!wildcard(
            resource,
            "arn:aws:lambda:eu-west-1:123456789012:function:orders-2:1/durable-execution/n/id"
        ));
        // Ordinary functions keep the fingerprint they had.
        let plain = PolicySpec {
            durable: false,
            ..spec.clone()
        };
        assert_ne!(plain.fingerprint(), spec.fingerprint());
        assert_eq!(
            plain.document("1")["Statement"].as_array().unwrap().len(),
            1
        );
    }

    #[test]
    fn fingerprint_follows_the_grants_not_the_account() {
        let spec = PolicySpec {
            function: "hello".into(),
            log_group: "/aws/lambda/hello".into(),
            tracing: false,
            vpc: false,
            secrets: vec!["prod/db".into()],
            region: "us-east-1".into(),
            durable: false,
        };
        let other = PolicySpec {
            secrets: vec![],
            ..spec.clone()
        };
        assert_ne!(spec.fingerprint(), other.fingerprint());
        assert_eq!(spec.fingerprint().len(), 16);
        let doc = spec.document("123456789012").to_string();
        assert!(
            doc.contains("arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-??????"),
            "{doc}"
        );
        assert!(!other.document("1").to_string().contains("secretsmanager"));
    }
}
