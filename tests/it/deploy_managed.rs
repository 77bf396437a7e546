//! `cargo fn deploy` of a function on Lambda Managed Instances, end to
//! end: moto behind the Managed Instances double
//! (tests/it/support/managed_instances.rs), which serves the
//! capacity-provider routes and the `CapacityProviderConfig` moto lacks.
//! What moto keeps (function, roles, the operator policy's attachment,
//! versions, alias) is read back with boto3; every recorded Lambda request
//! is checked against the API's shapes from botocore's model
//! (tests/it/support/shapes.rs).

use std::path::Path;

use serde_json::{Value, json};

use crate::support::deploy::{project, zip};
use crate::support::managed_instances::MiDouble;
use crate::support::moto::SECRET_KEY;
use crate::support::shapes::Model;
use crate::support::{cargo_fn, tempdir, tools_dir};

const OPERATOR_POLICY: &str = "arn:aws:iam::aws:policy/AWSLambdaManagedEC2ResourceOperator";

/// `[package.metadata.fn]` of a function on a provider cargo-fn creates.
fn metadata(provider: &str, max_vcpu: u32, concurrency: u32) -> String {
    format!(
        "memory = 4096\n\n\
         [package.metadata.fn.managed-instances]\n\
         per-execution-environment-max-concurrency = {concurrency}\n\n\
         [package.metadata.fn.managed-instances.capacity-provider]\n\
         name = \"{provider}\"\n\
         subnets = [\"subnet-0a\", \"subnet-0b\"]\n\
         security-groups = [\"sg-01\"]\n\
         max-vcpu-count = {max_vcpu}\n"
    )
}

/// The same function on an existing provider, by ARN.
fn metadata_arn(arn: &str) -> String {
    format!(
        "memory = 4096\n\n\
         [package.metadata.fn.managed-instances]\n\
         capacity-provider = \"{arn}\"\n\
         per-execution-environment-max-concurrency = 8\n"
    )
}

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn deploy(aws: &MiDouble, dir: &Path, extra: &[&str]) -> Run {
    let mut cmd = cargo_fn();
    cmd.current_dir(dir)
        .args(["deploy", "--zip", "bootstrap.zip", "--color", "never"])
        .args(extra)
        .env_remove("AWS_PROFILE")
        // Every SDK call with the IAM action it needs, on stderr.
        .env("CARGO_FN_LOG", "warn,cargo_fn::aws_calls=debug")
        .envs(aws.env());
    let out = cmd.output().expect("run cargo-fn");
    let run = Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(!run.stdout.contains(SECRET_KEY) && !run.stderr.contains(SECRET_KEY));
    run
}

fn ok(run: Run) -> String {
    assert!(run.ok, "deploy failed:\n{}\n{}", run.stdout, run.stderr);
    every_call_is_in_the_printed_policy(&run.stderr);
    run.stdout
}

/// Each SDK call the run logged needs an action `--print-policy` prints.
fn every_call_is_in_the_printed_policy(stderr: &str) {
    let out = cargo_fn()
        .args(["deploy", "--print-policy"])
        .output()
        .unwrap();
    let policy: Value = serde_json::from_slice(&out.stdout).expect("policy JSON");
    let printed: Vec<&str> = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["Action"].as_array().unwrap())
        .filter_map(Value::as_str)
        .collect();
    for line in stderr.lines().filter(|l| l.contains("aws call ")) {
        let words: Vec<&str> = line[line.find("aws call ").unwrap()..]
            .split_whitespace()
            .collect();
        let (op, action) = (words[2], words[4..].join(" "));
        assert!(
            printed.contains(&action.as_str()),
            "{op} needs `{action}`, which --print-policy does not list"
        );
    }
}

/// What moto keeps, read with unmodified boto3: the function, its
/// versions and alias, and each named role with its attached policies.
fn boto3(aws: &MiDouble, function: &str, roles: &[&str]) -> Value {
    let script = r#"
import json, sys, boto3
url, fn, roles = sys.argv[1], sys.argv[2], sys.argv[3:]
kw = dict(endpoint_url=url, region_name="us-east-1",
          aws_access_key_id="AKIATESTINGKEYID0000", aws_secret_access_key="x")
lam, iam = boto3.client("lambda", **kw), boto3.client("iam", **kw)
f = lam.get_function(FunctionName=fn)["Configuration"]
out = {
    "function": {"MemorySize": f["MemorySize"], "Role": f["Role"]},
    "versions": [v["Version"] for v in lam.list_versions_by_function(FunctionName=fn)["Versions"]],
    "alias": lam.get_alias(FunctionName=fn, Name="live")["FunctionVersion"],
    "roles": {},
}
for r in roles:
    role = iam.get_role(RoleName=r)["Role"]
    out["roles"][r] = {
        "trust": role["AssumeRolePolicyDocument"],
        "attached": [p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=r)["AttachedPolicies"]],
        "tags": {t["Key"]: t["Value"] for t in iam.list_role_tags(RoleName=r)["Tags"]},
    }
print(json.dumps(out, default=str))
"#;
    let python = tools_dir().join("venv/bin/python");
    let out = std::process::Command::new(python)
        .arg("-c")
        .arg(script)
        .arg(aws.moto.url())
        .arg(function)
        .args(roles)
        .output()
        .expect("run boto3");
    assert!(
        out.status.success(),
        "boto3: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("boto3 JSON")
}

/// Every recorded Lambda request matches the API's shapes; returns the
/// operations.
fn shapes_hold(aws: &MiDouble, model: &Model) -> Vec<String> {
    let report = model.check(&aws.recorded());
    assert!(
        report.errors.is_empty(),
        "requests that break the API's shapes:\n{}",
        report.errors.join("\n")
    );
    eprintln!(
        "shape check: {} Lambda requests, {} patterns left unchecked (look-arounds)",
        report.operations.len(),
        report.unchecked_patterns
    );
    report.operations
}

#[test]
fn create_redeploy_update_and_move_off_a_provider_hold_the_api_shapes() {
    let model = Model::lambda();
    assert!(
        model.has("CreateCapacityProvider"),
        "botocore's Lambda model predates capacity providers: update the venv"
    );
    let aws = MiDouble::start();
    let dir = tempdir();
    zip(dir.path(), "bootstrap.zip", "v1");
    project(dir.path(), "mi-fn", &metadata("cp-mi", 40, 8));

    // Create: operator role, provider (Active first), function on it,
    // version, alias.
    ok(deploy(&aws, dir.path(), &[]));
    let writes = aws.writes();
    for w in [
        "iam:AttachRolePolicy",
        "POST /2025-11-30/capacity-providers",
        "POST /2015-03-31/functions",
        "POST /2015-03-31/functions/mi-fn/versions",
        "POST /2015-03-31/functions/mi-fn/aliases",
    ] {
        assert!(writes.iter().any(|x| x == w), "{w} missing from {writes:?}");
    }
    let at = |w: &str| writes.iter().position(|x| x == w).unwrap();
    assert!(at("POST /2025-11-30/capacity-providers") < at("POST /2015-03-31/functions"));
    let ops = shapes_hold(&aws, &model);
    assert!(ops.contains(&"GetCapacityProvider".to_string()), "{ops:?}");
    let create = aws
        .recorded()
        .into_iter()
        .find(|r| r.method == "POST" && r.path == "/2015-03-31/functions")
        .unwrap();
    let cpc = &create.body.unwrap()["CapacityProviderConfig"]["LambdaManagedInstancesCapacityProviderConfig"];
    assert_eq!(
        cpc["CapacityProviderArn"],
        "arn:aws:lambda:us-east-1:123456789012:capacity-provider:cp-mi"
    );
    assert_eq!(cpc["PerExecutionEnvironmentMaxConcurrency"], 8);

    let (provider, tags) = aws.provider("cp-mi").expect("provider created");
    assert_eq!(provider["State"], "Active");
    assert_eq!(
        provider["CapacityProviderScalingConfig"]["MaxVCpuCount"],
        40
    );
    assert_eq!(
        provider["InstanceRequirements"]["Architectures"],
        json!(["x86_64"])
    );
    assert_eq!(tags["managed-by"], "cargo-fn");
    assert_eq!(tags["cargo-fn:created-for"], "mi-fn");
    assert_eq!(
        aws.version_config("mi-fn", "1").unwrap()["LambdaManagedInstancesCapacityProviderConfig"]["CapacityProviderArn"],
        cpc["CapacityProviderArn"]
    );

    let kept = boto3(&aws, "mi-fn", &["cargo-fn-cp-cp-mi"]);
    assert_eq!(kept["function"]["MemorySize"], 4096);
    assert_eq!(kept["alias"], "1");
    let role = &kept["roles"]["cargo-fn-cp-cp-mi"];
    assert_eq!(role["attached"], json!([OPERATOR_POLICY]));
    assert_eq!(role["tags"]["managed-by"], "cargo-fn");
    assert_eq!(
        role["trust"]["Statement"][0]["Principal"]["Service"],
        "lambda.amazonaws.com"
    );
    assert_eq!(
        provider["PermissionsConfig"]["CapacityProviderOperatorRoleArn"],
        "arn:aws:iam::123456789012:role/cargo-fn-cp-cp-mi"
    );

    // No change: reads only.
    aws.clear();
    ok(deploy(&aws, dir.path(), &[]));
    assert!(aws.writes().is_empty(), "{:?}", aws.writes());
    shapes_hold(&aws, &model);

    // Update: the provider's scaling and the function's concurrency.
    aws.clear();
    project(dir.path(), "mi-fn", &metadata("cp-mi", 96, 32));
    ok(deploy(&aws, dir.path(), &[]));
    let writes = aws.writes();
    for w in [
        "PUT /2025-11-30/capacity-providers/cp-mi",
        "PUT /2015-03-31/functions/mi-fn/configuration",
        "POST /2015-03-31/functions/mi-fn/versions",
    ] {
        assert!(writes.iter().any(|x| x == w), "{w} missing from {writes:?}");
    }
    assert!(
        !writes
            .iter()
            .any(|w| w == "POST /2025-11-30/capacity-providers"),
        "{writes:?}"
    );
    shapes_hold(&aws, &model);
    assert_eq!(
        aws.provider("cp-mi").unwrap().0["CapacityProviderScalingConfig"]["MaxVCpuCount"],
        96
    );
    assert_eq!(
        aws.version_config("mi-fn", "2").unwrap()["LambdaManagedInstancesCapacityProviderConfig"]["PerExecutionEnvironmentMaxConcurrency"],
        32
    );
    assert_eq!(boto3(&aws, "mi-fn", &[])["alias"], "2");

    // The table gives way to an existing provider: the function moves,
    // the alias follows, then the provider cargo-fn made is deleted (with
    // the versions that ran on it).
    let shared = aws.add_provider("shared", "x86_64");
    aws.clear();
    project(dir.path(), "mi-fn", &metadata_arn(&shared));
    ok(deploy(&aws, dir.path(), &[]));
    let writes = aws.writes();
    let at = |w: &str| {
        writes
            .iter()
            .position(|x| x == w)
            .unwrap_or_else(|| panic!("{w} missing from {writes:?}"))
    };
    assert!(
        at("PUT /2015-03-31/functions/mi-fn/aliases/live")
            < at("DELETE /2025-11-30/capacity-providers/cp-mi")
    );
    shapes_hold(&aws, &model);
    assert!(aws.provider("cp-mi").is_none());
    assert!(aws.provider("shared").is_some());
    let kept = boto3(&aws, "mi-fn", &[]);
    assert_eq!(kept["alias"], "3");
    assert_eq!(kept["versions"], json!(["$LATEST", "3"]));
}

#[test]
fn a_failed_provider_moves_no_alias() {
    let aws = MiDouble::start();
    let dir = tempdir();
    zip(dir.path(), "bootstrap.zip", "v1");

    // A new function: stopped before the function is created.
    project(dir.path(), "mi-bad", &metadata("cp-bad", 40, 8));
    aws.fail_next_provider();
    let run = deploy(&aws, dir.path(), &[]);
    assert!(!run.ok, "{}", run.stdout);
    assert!(run.stderr.contains("Failed"), "{}", run.stderr);
    assert!(
        !aws.writes()
            .iter()
            .any(|w| w == "POST /2015-03-31/functions"),
        "{:?}",
        aws.writes()
    );

    // An existing function moving to a provider that fails: nothing
    // published, the alias stays.
    aws.clear();
    project(dir.path(), "mi-bad", &metadata("cp-good", 40, 8));
    ok(deploy(&aws, dir.path(), &[]));
    project(dir.path(), "mi-bad", &metadata("cp-next", 40, 16));
    aws.fail_next_provider();
    aws.clear();
    let run = deploy(&aws, dir.path(), &[]);
    assert!(!run.ok, "{}", run.stdout);
    let writes = aws.writes();
    assert!(
        !writes.iter().any(
            |w| w.starts_with("POST /2015-03-31/functions/mi-bad/versions")
                || w.starts_with("PUT /2015-03-31/functions/mi-bad/aliases")
        ),
        "{writes:?}"
    );
    assert_eq!(boto3(&aws, "mi-bad", &[])["alias"], "1");
}

#[test]
fn dry_run_plan_of_a_managed_instances_function() {
    let aws = MiDouble::start();
    let dir = tempdir();
    zip(dir.path(), "bootstrap.zip", "v1");
    project(dir.path(), "hello", &metadata("cp-hello", 40, 8));
    let plan = ok(deploy(&aws, dir.path(), &["--dry-run"]));
    assert!(aws.writes().is_empty(), "{:?}", aws.writes());
    let mut settings = insta::Settings::clone_current();
    settings.set_prepend_module_to_snapshot(false);
    settings.add_filter(
        &regex::escape(&dir.path().display().to_string()),
        "[PROJECT]",
    );
    settings.add_filter(r"127\.0\.0\.1:\d+", "127.0.0.1:[PORT]");
    settings.add_filter(r"\b\d{12}\b", "[ACCOUNT]");
    settings.bind(|| insta::assert_snapshot!("plan_managed_instances", plan));
}

/// The checker itself: a plain deploy's requests pass it, and a request
/// that breaks the model (unknown member, out-of-range value, bad enum,
/// missing required member) is caught, so a clean report means something.
#[test]
fn the_shape_checker_passes_real_requests_and_catches_bad_ones() {
    use crate::support::managed_instances::Recorded;
    let model = Model::lambda();
    let aws = MiDouble::start();
    let dir = tempdir();
    zip(dir.path(), "bootstrap.zip", "v1");
    project(dir.path(), "plain", "memory = 256");
    ok(deploy(&aws, dir.path(), &[]));
    let ops = shapes_hold(&aws, &model);
    for op in ["CreateFunction", "PublishVersion", "CreateAlias"] {
        assert!(ops.iter().any(|o| o == op), "{op} not seen: {ops:?}");
    }

    let bad = Recorded {
        method: "POST".into(),
        path: "/2025-11-30/capacity-providers".into(),
        query: String::new(),
        body: Some(json!({
            "CapacityProviderName": "bad name!",
            "VpcConfig": {"SubnetIds": []},
            "PermissionsConfig": {"CapacityProviderOperatorRoleArn": "arn:aws:iam::123456789012:role/r"},
            "CapacityProviderScalingConfig": {"MaxVCpuCount": 1, "ScalingMode": "Sometimes"},
            "Colour": "blue",
        })),
        form: None,
    };
    let report = model.check(&[bad]);
    let text = report.errors.join("\n");
    for expected in [
        "CapacityProviderName: \"bad name!\" does not match",
        "SubnetIds: length 0 below min 1",
        "SecurityGroupIds: required, missing",
        "MaxVCpuCount: value 1 below min 2",
        "\"Sometimes\" is not one of",
        "body.Colour: not a member",
    ] {
        assert!(text.contains(expected), "{expected:?} not in:\n{text}");
    }
}
