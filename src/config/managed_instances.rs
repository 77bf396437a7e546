//! The `managed-instances` table: a function that runs on Lambda Managed
//! Instances (EC2 capacity Lambda manages), where one execution environment
//! serves several requests at once.
//!
//! Plain data, checked against the Lambda API's ranges
//! (`LambdaManagedInstancesCapacityProviderConfig`, `CreateCapacityProvider`,
//! `InstanceRequirements`, `CapacityProviderScalingConfig`) before any call:
//! max concurrency 1-1600 per environment, 2, 4 or 8 GiB of memory per vCPU,
//! a function of 2-32 GiB whose memory is a whole number of vCPUs (at most
//! 16), a capacity provider of the function's own architecture. Imports only
//! `value` and the shared types of `mod.rs`.

use serde::Serialize;
use serde_json::Value;

use super::value::{Result, Table, arn_rest, is_name};
use super::{Arch, InvalidValue, Source};

/// The key of the table in `[package.metadata.fn]`.
pub const KEY: &str = "managed-instances";

/// Memory of a managed-instances function, MB: Lambda's minimum (2 GiB, one
/// vCPU) and maximum (32 GiB).
pub const MIN_MEMORY_MB: u32 = 2048;
pub const MAX_MEMORY_MB: u32 = 32768;
/// The most vCPUs one execution environment gets.
pub const MAX_VCPUS: u32 = 16;
/// `PerExecutionEnvironmentMaxConcurrency`: 1-1600.
pub const MAX_CONCURRENCY: u32 = 1600;
/// `ExecutionEnvironmentMemoryGiBPerVCpu`: the ratios Lambda offers.
pub const MEMORY_GIB_PER_VCPU: &[u32] = &[2, 4, 8];
/// Lambda's default ratio (2 GiB per vCPU).
pub const DEFAULT_MEMORY_GIB_PER_VCPU: u32 = 2;
/// Concurrent requests per environment when the table leaves
/// `per-execution-environment-max-concurrency` unset. Lambda then chooses a
/// runtime-dependent value it does not document for OS-only runtimes; the
/// emulator uses this one and the guide says to set the key to match.
pub const LOCAL_DEFAULT_MAX_CONCURRENCY: u32 = 16;
/// The one metric a capacity provider's target tracking policy may follow.
pub const CPU_METRIC: &str = "LambdaCapacityProviderAverageCPUUtilization";

/// The resolved `managed-instances` table of a function.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ManagedInstances {
    /// The capacity provider the function runs on.
    pub capacity_provider: CapacityProviderRef,
    /// Requests one execution environment serves at once; `None` leaves it
    /// to Lambda.
    pub per_execution_environment_max_concurrency: Option<u32>,
    /// GiB of memory per vCPU: 2, 4 or 8.
    pub execution_environment_memory_gib_per_vcpu: u32,
}

impl ManagedInstances {
    /// The vCPUs one execution environment gets for `memory_mb`.
    pub fn vcpus(&self, memory_mb: u32) -> u32 {
        (memory_mb / 1024 / self.execution_environment_memory_gib_per_vcpu).max(1)
    }

    /// The concurrency the emulator gives each environment.
    pub fn local_max_concurrency(&self) -> u32 {
        self.per_execution_environment_max_concurrency
            .unwrap_or(LOCAL_DEFAULT_MAX_CONCURRENCY)
    }
}

/// `capacity-provider`: an existing one by ARN, or one cargo-fn creates.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CapacityProviderRef {
    Arn(String),
    Create(Box<CapacityProvider>),
}

impl CapacityProviderRef {
    /// The provider's name (the last part of an ARN).
    pub fn name(&self) -> &str {
        match self {
            CapacityProviderRef::Arn(arn) => arn.rsplit(':').next().unwrap_or(arn),
            CapacityProviderRef::Create(p) => &p.name,
        }
    }
}

/// A capacity provider `deploy` creates and keeps in line with this table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CapacityProvider {
    pub name: String,
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
    /// One architecture (the API takes exactly one): the function's.
    pub architectures: Vec<Arch>,
    pub allowed_instance_types: Vec<String>,
    pub excluded_instance_types: Vec<String>,
    pub max_vcpu_count: Option<u32>,
    pub scaling_mode: Option<ScalingMode>,
    pub scaling_policies: Vec<ScalingPolicy>,
    pub kms_key_arn: Option<String>,
    /// The operator role's ARN; `None`: `deploy` creates one with the
    /// `AWSLambdaManagedEC2ResourceOperator` managed policy.
    pub operator_role: Option<String>,
}

/// `CapacityProviderScalingMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ScalingMode {
    Auto,
    Manual,
}

impl ScalingMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ScalingMode::Auto => "Auto",
            ScalingMode::Manual => "Manual",
        }
    }
}

/// A `TargetTrackingScalingPolicy`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScalingPolicy {
    /// `LambdaCapacityProviderAverageCPUUtilization` (the only one).
    pub predefined_metric_type: String,
    /// Percent of CPU the provider keeps its instances at.
    pub target_value: f64,
}

const TABLE_KEYS: &[&str] = &[
    "capacity-provider",
    "per-execution-environment-max-concurrency",
    "execution-environment-memory-gib-per-vcpu",
];

const PROVIDER_KEYS: &[&str] = &[
    "name",
    "subnets",
    "security-groups",
    "architectures",
    "allowed-instance-types",
    "excluded-instance-types",
    "max-vcpu-count",
    "scaling-mode",
    "scaling-policies",
    "kms-key-arn",
    "operator-role",
];

/// Reads and checks the table against the function's architecture and
/// memory (MB, as resolved: `memory` must be given in 2048-32768 for such a
/// function, see [`memory_range`]).
pub(super) fn parse(
    v: &Value,
    src: &Source,
    architecture: Arch,
    memory: u32,
) -> Result<ManagedInstances> {
    let t = Table::nested(KEY.into(), v, src, TABLE_KEYS)?;
    let provider = match t.get("capacity-provider") {
        None => {
            return Err(Box::new(InvalidValue {
                key: format!("{KEY}.capacity-provider"),
                value: "(missing)".into(),
                origin: src.clone(),
                allowed: "required: a capacity provider ARN (arn:aws:lambda:<region>:<account>:capacity-provider:<name>) or a table { name, subnets, security-groups, ... } describing one to create".into(),
            }));
        }
        Some(Value::String(arn)) => {
            check_provider_arn(arn)
                .map_err(|e| t.bad("capacity-provider", &Value::String(arn.clone()), e))?;
            CapacityProviderRef::Arn(arn.clone())
        }
        Some(p) => CapacityProviderRef::Create(Box::new(provider(p, src, architecture)?)),
    };
    let max = t.int(
        "per-execution-environment-max-concurrency",
        1,
        MAX_CONCURRENCY.into(),
        " concurrent requests per execution environment",
    )?;
    let ratio = match t.get("execution-environment-memory-gib-per-vcpu") {
        None => DEFAULT_MEMORY_GIB_PER_VCPU,
        Some(r) => match r.as_f64() {
            Some(x) if MEMORY_GIB_PER_VCPU.iter().any(|m| f64::from(*m) == x) => x as u32,
            _ => {
                return Err(t.bad(
                    "execution-environment-memory-gib-per-vcpu",
                    r,
                    "2, 4 or 8 (GiB of memory per vCPU)",
                ));
            }
        },
    };
    check_memory(memory, ratio).map_err(|allowed| {
        Box::new(InvalidValue {
            key: "memory".into(),
            value: memory.to_string(),
            origin: src.clone(),
            allowed,
        })
    })?;
    Ok(ManagedInstances {
        capacity_provider: provider,
        per_execution_environment_max_concurrency: max.map(|n| n as u32),
        execution_environment_memory_gib_per_vcpu: ratio,
    })
}

/// The `memory` range (MB) of a function with or without managed instances.
pub fn memory_range(managed: bool) -> (i64, i64) {
    if managed {
        (MIN_MEMORY_MB.into(), MAX_MEMORY_MB.into())
    } else {
        (128, 10240)
    }
}

/// A managed-instances function's memory is 2-32 GiB and a whole number of
/// vCPUs (`memory / ratio`), at most 16.
pub fn check_memory(memory_mb: u32, ratio: u32) -> std::result::Result<(), String> {
    let step = ratio * 1024;
    if !(MIN_MEMORY_MB..=MAX_MEMORY_MB).contains(&memory_mb)
        || !memory_mb.is_multiple_of(step)
        || memory_mb / step > MAX_VCPUS
    {
        return Err(format!(
            "with managed instances, memory is {MIN_MEMORY_MB}-{MAX_MEMORY_MB} MB and a multiple of {step} MB ({ratio} GiB per vCPU, 1-{MAX_VCPUS} vCPUs)"
        ));
    }
    Ok(())
}

/// `arn:<partition>:lambda:<region>:<account>:capacity-provider:<name>`, at
/// most 140 characters.
pub fn check_provider_arn(arn: &str) -> std::result::Result<(), String> {
    let ok = arn.len() <= 140
        && arn_rest(arn, "lambda")
            .and_then(|r| r.strip_prefix("capacity-provider:"))
            .is_some_and(|n| is_name(n, 140));
    if ok {
        Ok(())
    } else {
        Err("a capacity provider ARN: arn:aws:lambda:<region>:<12-digit account>:capacity-provider:<name>, at most 140 characters".into())
    }
}

fn provider(v: &Value, src: &Source, architecture: Arch) -> Result<CapacityProvider> {
    let t = Table::nested(format!("{KEY}.capacity-provider"), v, src, PROVIDER_KEYS)?;
    let name = t.required("name", "the capacity provider's name")?;
    if !is_name(&name, 64) {
        return Err(t.bad(
            "name",
            &Value::String(name),
            "1-64 characters of letters, digits, - and _",
        ));
    }
    let subnets = t.strings("subnets")?.unwrap_or_default();
    if subnets.is_empty() || subnets.len() > 16 || subnets.iter().any(|s| !s.starts_with("subnet-"))
    {
        return Err(t.bad(
            "subnets",
            &Value::from(subnets),
            "1-16 subnet IDs (subnet-...), best in several Availability Zones",
        ));
    }
    let security_groups = t.strings("security-groups")?.unwrap_or_default();
    if security_groups.len() > 5 || security_groups.iter().any(|s| !s.starts_with("sg-")) {
        return Err(t.bad(
            "security-groups",
            &Value::from(security_groups),
            "at most 5 security group IDs (sg-...)",
        ));
    }
    let architectures = match t.strings("architectures")? {
        None => vec![architecture],
        Some(list) => {
            let parsed: Vec<Option<Arch>> = list
                .iter()
                .map(|a| match a.as_str() {
                    "x86_64" => Some(Arch::X86_64),
                    "arm64" => Some(Arch::Arm64),
                    _ => None,
                })
                .collect();
            if parsed != [Some(architecture)] {
                return Err(t.bad(
                    "architectures",
                    &Value::from(list),
                    format!(
                        "exactly one architecture, the function's own: [\"{architecture}\"] (x86_64 or arm64)"
                    ),
                ));
            }
            vec![architecture]
        }
    };
    let allowed_instance_types = instance_types(&t, "allowed-instance-types")?;
    let excluded_instance_types = instance_types(&t, "excluded-instance-types")?;
    if !allowed_instance_types.is_empty() && !excluded_instance_types.is_empty() {
        return Err(t.bad(
            "excluded-instance-types",
            &Value::from(excluded_instance_types),
            "either allowed-instance-types or excluded-instance-types, not both",
        ));
    }
    let max_vcpu_count = t
        .int("max-vcpu-count", 2, 15000, " vCPUs")?
        .map(|n| n as u32);
    let scaling_mode = match t.get("scaling-mode") {
        None => None,
        Some(Value::String(s)) if s == "Auto" => Some(ScalingMode::Auto),
        Some(Value::String(s)) if s == "Manual" => Some(ScalingMode::Manual),
        Some(other) => return Err(t.bad("scaling-mode", other, "Auto or Manual")),
    };
    let scaling_policies = policies(&t, src)?;
    if !scaling_policies.is_empty() && scaling_mode == Some(ScalingMode::Auto) {
        return Err(t.bad(
            "scaling-mode",
            &Value::from("Auto"),
            "scaling-policies apply in Manual mode: set scaling-mode = \"Manual\" or drop the policies",
        ));
    }
    let kms_key_arn = t.string("kms-key-arn")?;
    if let Some(k) = &kms_key_arn
        && arn_rest(k, "kms").is_none()
    {
        return Err(t.bad(
            "kms-key-arn",
            &Value::String(k.clone()),
            "a KMS key ARN: arn:aws:kms:<region>:<account>:key/<id> or alias/<name>",
        ));
    }
    let operator_role = t.string("operator-role")?;
    if let Some(r) = &operator_role {
        super::check_role_arn(r)
            .map_err(|e| t.bad("operator-role", &Value::String(r.clone()), e))?;
    }
    Ok(CapacityProvider {
        name,
        subnets,
        security_groups,
        architectures,
        allowed_instance_types,
        excluded_instance_types,
        max_vcpu_count,
        scaling_mode,
        scaling_policies,
        kms_key_arn,
        operator_role,
    })
}

/// At most 400 EC2 instance types of 1-30 characters `[a-zA-Z0-9.-]`.
fn instance_types(t: &Table, field: &str) -> Result<Vec<String>> {
    let list = t.strings(field)?.unwrap_or_default();
    let ok = |s: &String| {
        !s.is_empty()
            && s.len() <= 30
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
    };
    if list.len() > 400 || !list.iter().all(ok) {
        return Err(t.bad(
            field,
            &Value::from(list),
            "at most 400 EC2 instance types (e.g. m7g.large), each 1-30 characters of letters, digits, . and -",
        ));
    }
    Ok(list)
}

/// `scaling-policies = [{ target-value = 60 }]`: 1-10 target tracking
/// policies on average CPU utilisation (percent, more than 0, at most 100).
fn policies(t: &Table, src: &Source) -> Result<Vec<ScalingPolicy>> {
    let Some(v) = t.get("scaling-policies") else {
        return Ok(Vec::new());
    };
    let Value::Array(items) = v else {
        return Err(t.bad(
            "scaling-policies",
            v,
            "a list of tables { target-value = <percent> }",
        ));
    };
    if items.is_empty() || items.len() > 10 {
        return Err(t.bad("scaling-policies", v, "1-10 scaling policies"));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let p = Table::nested(
                format!("{}.scaling-policies[{i}]", t.key),
                item,
                src,
                &["predefined-metric-type", "target-value"],
            )?;
            let metric = p
                .string("predefined-metric-type")?
                .unwrap_or_else(|| CPU_METRIC.to_string());
            if metric != CPU_METRIC {
                return Err(p.bad("predefined-metric-type", &Value::String(metric), CPU_METRIC));
            }
            let target = match p.get("target-value") {
                Some(x) => x
                    .as_f64()
                    .filter(|f| *f > 0.0 && *f <= 100.0)
                    .ok_or_else(|| {
                        p.bad(
                            "target-value",
                            x,
                            "a percentage of CPU, more than 0 and at most 100",
                        )
                    })?,
                None => {
                    return Err(p.bad(
                        "target-value",
                        &Value::Null,
                        "required: a percentage of CPU, more than 0 and at most 100",
                    ));
                }
            };
            Ok(ScalingPolicy {
                predefined_metric_type: metric,
                target_value: target,
            })
        })
        .collect()
}

/// The `cargo fn config` row's value.
pub fn summary(m: &ManagedInstances, memory_mb: u32) -> String {
    let provider = match &m.capacity_provider {
        CapacityProviderRef::Arn(arn) => arn.clone(),
        CapacityProviderRef::Create(p) => format!(
            "{} (created: subnets {}, {})",
            p.name,
            p.subnets.join(", "),
            p.architectures
                .iter()
                .map(|a| a.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    format!(
        "capacity provider {provider}; max concurrency {} per environment; {} GiB per vCPU ({} vCPU)",
        m.per_execution_environment_max_concurrency
            .map(|n| n.to_string())
            .unwrap_or_else(|| format!(
                "Lambda's default ({} locally)",
                LOCAL_DEFAULT_MAX_CONCURRENCY
            )),
        m.execution_environment_memory_gib_per_vcpu,
        m.vcpus(memory_mb)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn src() -> Source {
        Source::Manifest {
            file: "/ws/Cargo.toml".into(),
            key: "package.metadata.fn.managed-instances".into(),
        }
    }

    fn parse_ok(v: Value, memory: u32) -> ManagedInstances {
        parse(&v, &src(), Arch::X86_64, memory).unwrap()
    }

    fn parse_err(v: Value, memory: u32) -> String {
        parse(&v, &src(), Arch::X86_64, memory)
            .unwrap_err()
            .to_string()
    }

    const ARN: &str = "arn:aws:lambda:us-east-1:123456789012:capacity-provider:shared";

    #[test]
    fn an_arn_and_the_defaults() {
        let m = parse_ok(json!({ "capacity-provider": ARN }), 2048);
        assert_eq!(m.capacity_provider, CapacityProviderRef::Arn(ARN.into()));
        assert_eq!(m.capacity_provider.name(), "shared");
        assert_eq!(m.execution_environment_memory_gib_per_vcpu, 2);
        assert_eq!(m.per_execution_environment_max_concurrency, None);
        assert_eq!(m.local_max_concurrency(), LOCAL_DEFAULT_MAX_CONCURRENCY);
        assert_eq!(m.vcpus(2048), 1);
    }

    #[test]
    fn ratios_and_vcpus() {
        let m = parse_ok(
            json!({ "capacity-provider": ARN, "execution-environment-memory-gib-per-vcpu": 4,
                    "per-execution-environment-max-concurrency": 1600 }),
            16384,
        );
        assert_eq!(m.vcpus(16384), 4);
        assert_eq!(m.per_execution_environment_max_concurrency, Some(1600));
        for bad in [json!(3), json!(1), json!(16), json!("2")] {
            let e = parse_err(
                json!({ "capacity-provider": ARN, "execution-environment-memory-gib-per-vcpu": bad }),
                8192,
            );
            assert!(e.contains("2, 4 or 8"), "{e}");
        }
        for bad in [0, 1601] {
            let e = parse_err(
                json!({ "capacity-provider": ARN, "per-execution-environment-max-concurrency": bad }),
                2048,
            );
            assert!(e.contains("1-1600"), "{e}");
        }
    }

    #[test]
    fn memory_is_whole_vcpus_within_2_to_32_gib() {
        assert!(check_memory(2048, 2).is_ok());
        assert!(check_memory(32768, 2).is_ok());
        assert!(check_memory(32768, 8).is_ok());
        assert!(check_memory(1024, 2).is_err());
        assert!(check_memory(3072, 2).is_err(), "1.5 vCPU");
        assert!(check_memory(4096, 8).is_err(), "half a vCPU");
        assert!(check_memory(33792, 2).is_err());
        let e = parse_err(json!({ "capacity-provider": ARN }), 3000);
        assert!(
            e.contains("invalid memory") && e.contains("multiple of 2048 MB"),
            "{e}"
        );
    }

    #[test]
    fn a_provider_to_create() {
        let m = parse_ok(
            json!({ "capacity-provider": {
                "name": "orders", "subnets": ["subnet-1", "subnet-2"], "security-groups": ["sg-1"],
                "allowed-instance-types": ["m7i.large"], "max-vcpu-count": 64,
                "scaling-mode": "Manual", "scaling-policies": [{ "target-value": 60 }],
                "kms-key-arn": "arn:aws:kms:us-east-1:123456789012:key/abc",
                "operator-role": "arn:aws:iam::123456789012:role/op",
            }}),
            2048,
        );
        let CapacityProviderRef::Create(p) = m.capacity_provider else {
            panic!("a provider to create")
        };
        assert_eq!(p.architectures, vec![Arch::X86_64]);
        assert_eq!(p.scaling_policies[0].predefined_metric_type, CPU_METRIC);
        assert_eq!(p.scaling_policies[0].target_value, 60.0);
        assert_eq!(p.max_vcpu_count, Some(64));
    }

    #[test]
    fn provider_errors_name_the_key_and_range() {
        let base = || json!({ "name": "p", "subnets": ["subnet-1"] });
        let with = |k: &str, v: Value| {
            let mut p = base();
            p[k] = v;
            parse_err(json!({ "capacity-provider": p }), 2048)
        };
        let cases = [
            ("architectures", json!(["arm64"]), "the function's own"),
            ("architectures", json!(["x86_64", "arm64"]), "exactly one"),
            ("subnets", json!([]), "1-16 subnet IDs"),
            ("security-groups", json!(["x"]), "at most 5 security group"),
            ("max-vcpu-count", json!(1), "2-15000"),
            ("scaling-mode", json!("Sometimes"), "Auto or Manual"),
            (
                "scaling-policies",
                json!([{ "target-value": 0 }]),
                "more than 0",
            ),
            ("scaling-policies", json!([]), "1-10"),
            ("kms-key-arn", json!("key"), "KMS key ARN"),
            ("operator-role", json!("role"), "IAM role ARN"),
            ("name", json!("a b"), "1-64 characters"),
            (
                "allowed-instance-types",
                json!(["m7i large"]),
                "at most 400",
            ),
            ("unknown", json!(1), "unknown key"),
        ];
        for (k, v, want) in cases {
            let e = with(k, v);
            assert!(e.contains("managed-instances.capacity-provider."), "{e}");
            assert!(e.contains(want), "{k}: {e}");
            assert!(e.contains("Cargo.toml"), "{e}");
        }
        let mut both = base();
        both["allowed-instance-types"] = json!(["m7i.large"]);
        both["excluded-instance-types"] = json!(["c7i.large"]);
        assert!(parse_err(json!({ "capacity-provider": both }), 2048).contains("not both"));
        let mut auto = base();
        auto["scaling-mode"] = json!("Auto");
        auto["scaling-policies"] = json!([{ "target-value": 50 }]);
        assert!(parse_err(json!({ "capacity-provider": auto }), 2048).contains("Manual mode"));
    }

    #[test]
    fn the_provider_is_required_and_arns_are_checked() {
        assert!(parse_err(json!({}), 2048).contains("required"));
        let e = parse_err(
            json!({ "capacity-provider": "arn:aws:lambda:us-east-1:123456789012:function:f" }),
            2048,
        );
        assert!(e.contains("capacity provider ARN"), "{e}");
        assert!(check_provider_arn(ARN).is_ok());
    }
}
