//! Layering and every validation rule, without cargo: projects are built in memory.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{Value, json};

use super::*;
use crate::project::{FunctionTarget, Project};

fn project(workspace: Value, package: Value) -> Project {
    Project {
        workspace_root: PathBuf::from("/ws"),
        workspace_manifest: PathBuf::from("/ws/Cargo.toml"),
        target_dir: PathBuf::from("/ws/target"),
        workspace_metadata: workspace,
        functions: vec![FunctionTarget {
            package: "pkg".into(),
            bin: "hello".into(),
            manifest_path: PathBuf::from("/ws/pkg/Cargo.toml"),
            package_metadata: package,
            src_path: PathBuf::from("/ws/pkg/src/main.rs"),
        }],
    }
}

fn resolve_one(workspace: Value, package: Value) -> anyhow::Result<FunctionConfig> {
    resolve_full(workspace, package, &Overrides::default(), &BTreeMap::new())
}

fn resolve_full(
    workspace: Value,
    package: Value,
    overrides: &Overrides,
    env: &BTreeMap<String, String>,
) -> anyhow::Result<FunctionConfig> {
    let p = project(workspace, package);
    Ok(resolve_with_env(&p, overrides, env)?.remove(0))
}

/// Resolves `[package.metadata.fn] <key> = <value>` and returns the error text.
fn rejected(key: &str, value: Value) -> String {
    let package = json!({ "fn": { key: value } });
    match resolve_one(Value::Null, package) {
        Ok(c) => panic!("{key} = {value} was accepted: {c:?}"),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn defaults_when_nothing_is_configured() {
    let c = resolve_one(Value::Null, Value::Null).unwrap();
    assert_eq!(c.name, "hello");
    assert_eq!(c.architecture, Arch::X86_64);
    assert_eq!(c.runtime, Runtime::ProvidedAl2023);
    assert_eq!((c.memory, c.timeout, c.ephemeral_storage), (128, 3, 512));
    assert_eq!(c.tracing, Tracing::PassThrough);
    assert_eq!(c.sources["memory"], Source::Default);
}

#[test]
fn layers_apply_lowest_first() {
    let workspace = json!({ "fn": { "memory": 256, "timeout": 5, "runtime": "provided.al2" } });
    let package = json!({
        "lambda": { "deploy": { "memory": 1, "tracing": "active" } },
        "fn": {
            "memory": 512,
            "timeout": 6,
            "functions": { "hello": { "timeout": 7, "architecture": "arm64" } }
        }
    });
    let mut env = BTreeMap::new();
    env.insert("CARGO_FN_EPHEMERAL_STORAGE".to_string(), "1024".to_string());
    env.insert("CARGO_FN_ARCHITECTURE".to_string(), "x86_64".to_string());
    let overrides = Overrides {
        architecture: Some(Arch::Arm64),
        ..Default::default()
    };
    let c = resolve_full(workspace, package, &overrides, &env).unwrap();
    // The workspace beats cargo-lambda's 1 MB; the package beats the workspace.
    assert_eq!(c.memory, 512);
    assert_eq!(c.timeout, 7);
    assert_eq!(c.runtime, Runtime::ProvidedAl2);
    assert_eq!(c.ephemeral_storage, 1024);
    assert_eq!(c.architecture, Arch::Arm64);
    assert_eq!(c.tracing, Tracing::Active);
    assert_eq!(
        c.sources["timeout"],
        Source::Manifest {
            file: "/ws/pkg/Cargo.toml".into(),
            key: "package.metadata.fn.functions.hello.timeout".into()
        }
    );
    assert_eq!(
        c.sources["runtime"],
        Source::Manifest {
            file: "/ws/Cargo.toml".into(),
            key: "workspace.metadata.fn.runtime".into()
        }
    );
    assert_eq!(
        c.sources["ephemeral-storage"],
        Source::EnvVar {
            name: "CARGO_FN_EPHEMERAL_STORAGE".into()
        }
    );
    assert_eq!(
        c.sources["architecture"],
        Source::Flag {
            name: "--arch".into()
        }
    );
    assert_eq!(
        c.sources["tracing"],
        Source::Manifest {
            file: "/ws/pkg/Cargo.toml".into(),
            key: "package.metadata.lambda.deploy.tracing".into()
        }
    );
}

#[test]
fn env_maps_merge_entry_by_entry() {
    let workspace = json!({ "fn": { "env": { "AA": "ws", "BB": "ws" } } });
    let package = json!({ "fn": { "env": { "BB": "pkg" } } });
    let overrides = Overrides {
        env: vec![("CC".into(), "flag".into())],
        ..Default::default()
    };
    let c = resolve_full(workspace, package, &overrides, &BTreeMap::new()).unwrap();
    assert_eq!(c.env["AA"], "ws");
    assert_eq!(c.env["BB"], "pkg");
    assert_eq!(c.env["CC"], "flag");
    assert_eq!(
        c.sources["env.CC"],
        Source::Flag {
            name: "--env-var".into()
        }
    );
}

#[test]
fn cargo_lambda_keys_are_understood() {
    let package = json!({ "lambda": {
        "env": { "FROM_WATCH": "1" },
        "build": { "target": "aarch64-unknown-linux-gnu" },
        "deploy": {
            "memory": 1024, "timeout": 30, "tracing": "passthrough",
            "role": "arn:aws:iam::123456789012:role/r",
            "subnet_ids": ["subnet-1"], "security_group_ids": ["sg-1"],
            "layers": ["arn:aws:lambda:us-east-1:123456789012:layer:l:1"]
        },
        "bin": { "hello": { "deploy": { "timeout": 60 } } }
    }});
    let c = resolve_one(Value::Null, package).unwrap();
    assert_eq!(c.architecture, Arch::Arm64);
    assert_eq!((c.memory, c.timeout), (1024, 60));
    assert_eq!(c.env["FROM_WATCH"], "1");
    assert_eq!(c.role.as_deref(), Some("arn:aws:iam::123456789012:role/r"));
    assert_eq!(c.vpc.unwrap().subnets, vec!["subnet-1"]);
    assert_eq!(c.layers.len(), 1);
}

#[test]
fn env_file_sits_below_the_env_table() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".env"),
        "# comment\nFROM_FILE=1\nBOTH=file\n",
    )
    .unwrap();
    let mut p = project(
        Value::Null,
        json!({ "fn": { "env-file": ".env", "env": { "BOTH": "table" } } }),
    );
    p.functions[0].manifest_path = dir.path().join("Cargo.toml");
    let c = resolve_with_env(&p, &Overrides::default(), &BTreeMap::new())
        .unwrap()
        .remove(0);
    assert_eq!(c.env["FROM_FILE"], "1");
    assert_eq!(c.env["BOTH"], "table");
    assert!(matches!(c.sources["env.FROM_FILE"], Source::EnvFile { .. }));
}

#[test]
fn missing_env_file_names_the_file_and_key() {
    let err = rejected("env-file", json!("nope.env"));
    assert!(err.contains("nope.env"), "{err}");
    assert!(err.contains("package.metadata.fn.env-file"), "{err}");
}

#[test]
fn snake_case_keys_are_accepted() {
    let c = resolve_one(Value::Null, json!({ "fn": { "ephemeral_storage": 1024 } })).unwrap();
    assert_eq!(c.ephemeral_storage, 1024);
}

#[test]
fn unknown_key_is_refused_with_the_allowed_list() {
    let err = format!(
        "{:#}",
        resolve_one(Value::Null, json!({ "fn": { "memroy": 256 } })).unwrap_err()
    );
    assert!(
        err.contains("unknown key `package.metadata.fn.memroy`"),
        "{err}"
    );
    assert!(err.contains("memory"), "{err}");
}

#[test]
fn memory_range() {
    for bad in [
        json!(127),
        json!(10241),
        json!(-1),
        json!("lots"),
        json!(1.5),
    ] {
        let err = rejected("memory", bad.clone());
        assert!(err.contains("128-10240"), "{bad}: {err}");
        assert!(err.contains("package.metadata.fn.memory"), "{err}");
    }
    assert_eq!(
        resolve_one(Value::Null, json!({"fn": {"memory": 10240}}))
            .unwrap()
            .memory,
        10240
    );
}

#[test]
fn timeout_range() {
    for bad in [json!(0), json!(901)] {
        assert!(rejected("timeout", bad).contains("1-900"));
    }
}

#[test]
fn ephemeral_storage_range() {
    for bad in [json!(511), json!(10241)] {
        assert!(rejected("ephemeral-storage", bad).contains("512-10240"));
    }
}

#[test]
fn architecture_and_runtime_choices() {
    assert!(rejected("architecture", json!("i386")).contains("x86_64, arm64"));
    assert!(rejected("runtime", json!("provided")).contains("provided.al2023"));
    assert!(rejected("runtime", json!("nodejs20.x")).contains("provided.al2"));
}

#[test]
fn function_name_rules() {
    assert!(rejected("name", json!("has space")).contains("1-64"));
    assert!(rejected("name", json!("a".repeat(65))).contains("1-64"));
    assert!(rejected("name", json!("")).contains("1-64"));
    assert!(rejected("name", json!("dot.name")).contains("1-64"));
}

#[test]
fn binary_names_lambda_cannot_use_need_a_name() {
    let mut p = project(Value::Null, Value::Null);
    p.functions[0].bin = "x".repeat(70);
    let err = format!(
        "{:#}",
        resolve_with_env(&p, &Overrides::default(), &BTreeMap::new()).unwrap_err()
    );
    assert!(err.contains("not a valid Lambda function name"), "{err}");
}

#[test]
fn alias_rules() {
    assert!(rejected("alias", json!("123")).contains("all digits"));
    assert!(rejected("alias", json!("a b")).contains("1-128"));
    assert!(rejected("alias", json!("x".repeat(129))).contains("1-128"));
    assert!(check_alias_name("v2").is_ok());
    assert!(check_alias_name("live").is_ok());
}

#[test]
fn env_key_pattern() {
    for key in ["1ABC", "A", "_X", "A-B", "A.B"] {
        let err = rejected("env", json!({ key: "v" }));
        assert!(err.contains("starts with a letter"), "{key}: {err}");
    }
}

#[test]
fn env_values_must_be_strings() {
    assert!(rejected("env", json!({ "PORT": 8080 })).contains("quote it"));
}

#[test]
fn reserved_env_names() {
    for key in RESERVED_ENV.iter().filter(|k| !k.starts_with('_')) {
        let err = rejected("env", json!({ *key: "v" }));
        assert!(err.contains("reserved"), "{key}: {err}");
    }
    assert!(rejected("env", json!({ "AWS_LAMBDA_LOG_LEVEL": "DEBUG" })).contains("log-level"));
}

#[test]
fn tz_is_a_warning_not_an_error() {
    let c = resolve_one(Value::Null, json!({"fn": {"env": {"TZ": "Europe/Paris"}}})).unwrap();
    assert!(c.warnings.iter().any(|w| w.contains("TZ")));
}

#[test]
fn environment_size_limit() {
    let big = "x".repeat(2100);
    let err = rejected("env", json!({ "A1": big, "B1": big }));
    assert!(err.contains("4096"), "{err}");
    // Exactly at the limit is fine: keys (2 bytes each) plus values.
    let fits = "x".repeat(2046);
    assert!(
        resolve_one(
            Value::Null,
            json!({"fn": {"env": {"A1": fits, "B1": fits}}})
        )
        .is_ok()
    );
}

#[test]
fn secrets_are_names_or_arns() {
    assert!(rejected("secrets", json!({ "DB": "has space" })).contains("never the value"));
    assert!(rejected("secrets", json!({ "DB": "arn:aws:s3:::bucket" })).contains("secret ARN"));
    assert!(rejected("secrets", json!({ "1DB": "name" })).contains("starts with a letter"));
    let c = resolve_one(
        Value::Null,
        json!({"fn": {"secrets": {
            "DB": "prod/db",
            "API": "arn:aws:secretsmanager:us-east-1:123456789012:secret:api-AbCdEf"
        }}}),
    )
    .unwrap();
    assert_eq!(c.secrets.len(), 2);
}

#[test]
fn secret_and_env_cannot_share_a_name() {
    let err = format!(
        "{:#}",
        resolve_one(
            Value::Null,
            json!({"fn": {"env": {"DB": "x"}, "secrets": {"DB": "prod/db"}}})
        )
        .unwrap_err()
    );
    assert!(err.contains("also set in env"), "{err}");
}

#[test]
fn credential_looking_env_values_warn_and_are_redacted() {
    let c = resolve_one(Value::Null, json!({"fn": {"env": {"API_TOKEN": "s3cr3t"}}})).unwrap();
    assert!(c.warnings.iter().any(|w| w.contains("Secrets Manager")));
    assert!(!c.warnings.iter().any(|w| w.contains("s3cr3t")));
    let json = redacted_json(&c).to_string();
    assert!(!json.contains("s3cr3t"));
    let rows = display_rows(&c);
    assert!(rows.iter().all(|(_, v, _)| !v.contains("s3cr3t")));
}

#[test]
fn layer_rules() {
    let arn = "arn:aws:lambda:us-east-1:123456789012:layer:my-layer:3";
    assert!(rejected("layers", json!(vec![arn; 6])).contains("at most 5"));
    for bad in [
        "arn:aws:lambda:us-east-1:123456789012:layer:my-layer",
        "arn:aws:lambda:us-east-1:12345:layer:my-layer:1",
        "arn:aws:s3:us-east-1:123456789012:layer:my-layer:1",
        "my-layer",
    ] {
        assert!(
            rejected("layers", json!([bad])).contains("layer version ARN"),
            "{bad}"
        );
    }
    assert!(rejected("layers", json!(arn)).contains("list of strings"));
    assert_eq!(
        resolve_one(Value::Null, json!({"fn": {"layers": vec![arn; 5]}}))
            .unwrap()
            .layers
            .len(),
        5
    );
}

#[test]
fn role_arn_shape() {
    for bad in [
        "arn:aws:iam::123:role/x",
        "arn:aws:iam::123456789012:user/x",
        "role/x",
    ] {
        assert!(
            rejected("role", json!(bad)).contains("IAM role ARN"),
            "{bad}"
        );
    }
    assert!(check_role_arn("arn:aws:iam::123456789012:role/service-role/my-role").is_ok());
}

#[test]
fn tracing_log_format_and_level() {
    assert!(rejected("tracing", json!("active")).contains("Active, PassThrough"));
    assert!(rejected("log-format", json!("json")).contains("Text, JSON"));
    assert!(rejected("log-level", json!("INFO")).contains("log-format"));
    let err = format!(
        "{:#}",
        resolve_one(
            Value::Null,
            json!({"fn": {"log-format": "JSON", "log-level": "LOUD"}})
        )
        .unwrap_err()
    );
    assert!(err.contains("TRACE"), "{err}");
}

#[test]
fn log_group_is_a_cloudwatch_name() {
    let err = rejected("log-group", json!("my group"));
    assert!(err.contains("log-group") && err.contains("1-512"), "{err}");
    let c = resolve_one(Value::Null, json!({"fn": {"log-group": "/shared/app#1"}})).unwrap();
    assert_eq!(c.log_group.as_deref(), Some("/shared/app#1"));
}

#[test]
fn concurrency_rules() {
    assert!(rejected("reserved-concurrency", json!(-1)).contains("0-"));
    assert!(rejected("provisioned-concurrency", json!({"live": 0})).contains("1 or more"));
    assert!(rejected("provisioned-concurrency", json!({"7": 1})).contains("all digits"));
    let err = format!(
        "{:#}",
        resolve_one(
            Value::Null,
            json!({"fn": {"reserved-concurrency": 2, "provisioned-concurrency": {"live": 3}}})
        )
        .unwrap_err()
    );
    assert!(err.contains("reserved concurrency (2)"), "{err}");
}

#[test]
fn tag_rules() {
    assert!(rejected("tags", json!({"aws:x": "v"})).contains("aws:"));
    assert!(rejected("tags", json!({"k": "v".repeat(257)})).contains("256"));
    let many: serde_json::Map<String, Value> =
        (0..51).map(|i| (format!("k{i}"), json!("v"))).collect();
    assert!(rejected("tags", Value::Object(many)).contains("at most 50"));
}

#[test]
fn vpc_rules() {
    assert!(rejected("vpc", json!({"subnets": [], "security-groups": ["sg-1"]})).contains("1-16"));
    assert!(
        rejected(
            "vpc",
            json!({"subnets": ["subnet-1"], "security-groups": []})
        )
        .contains("1-5")
    );
    assert!(
        rejected(
            "vpc",
            json!({"subnets": ["x"], "security-groups": ["sg-1"]})
        )
        .contains("subnet-0123abcd")
    );
    assert!(rejected("vpc", json!({"subnet": ["subnet-1"]})).contains("unknown key"));
}

#[test]
fn function_url_rules() {
    assert!(rejected("function-url", json!({"auth": "OPEN"})).contains("NONE, AWS_IAM"));
    assert!(rejected("function-url", json!({"invoke-mode": "STREAM"})).contains("RESPONSE_STREAM"));
    assert!(rejected("function-url", json!({"cors": {"max-age": 86401}})).contains("0-86400"));
    assert!(
        rejected(
            "function-url",
            json!({"cors": {"allow-methods": ["GET","PUT","HEAD","POST","PATCH","DELETE","*"]}})
        )
        .contains("at most 6")
    );
    assert!(
        rejected(
            "function-url",
            json!({"cors": {"allow-methods": ["FETCH"]}})
        )
        .contains("one of GET")
    );
    let c = resolve_one(
        Value::Null,
        json!({"fn": {"function-url": {"auth": "AWS_IAM", "cors": {"allow-origins": ["*"], "max-age": 60}}}}),
    )
    .unwrap();
    let url = c.function_url.unwrap();
    assert_eq!(url.auth, UrlAuth::AwsIam);
    assert_eq!(url.cors.unwrap().max_age, Some(60));
}

#[test]
fn include_paths_stay_inside_the_package() {
    assert!(rejected("include", json!(["/etc/passwd"])).contains("relative path"));
    assert!(rejected("include", json!(["../secrets"])).contains("no `..`"));
    assert!(rejected("include", json!(["static/../../x"])).contains("no `..`"));
}

#[test]
fn extension_and_event_format() {
    assert!(rejected("extension", json!("yes")).contains("true or false"));
    assert!(rejected("event-format", json!("websocket")).contains("rest-api"));
}

#[test]
fn env_var_layer_reports_its_variable() {
    let mut env = BTreeMap::new();
    env.insert("CARGO_FN_MEMORY".to_string(), "big".to_string());
    let err = format!(
        "{:#}",
        resolve_full(Value::Null, Value::Null, &Overrides::default(), &env).unwrap_err()
    );
    assert!(
        err.contains("environment variable CARGO_FN_MEMORY"),
        "{err}"
    );
}

#[test]
fn duplicate_function_names_are_refused() {
    let mut p = project(Value::Null, json!({"fn": {"name": "same"}}));
    let mut second = p.functions[0].clone();
    second.bin = "other".into();
    p.functions.push(second);
    let err = format!(
        "{:#}",
        resolve_with_env(&p, &Overrides::default(), &BTreeMap::new()).unwrap_err()
    );
    assert!(
        err.contains("two functions resolve to the Lambda name `same`"),
        "{err}"
    );
}

#[test]
fn the_deployment_table_is_resolved_and_its_errors_name_file_key_and_allowed() {
    let package = json!({ "fn": {
        "deployment": { "strategy": "Canary10Percent5Minutes", "alarms": ["a"] },
        "functions": { "hello": { "deployment": { "strategy": "AllAtOnce" } } }
    }});
    let c = resolve_one(Value::Null, package).unwrap();
    // A nested table is replaced whole by a higher layer.
    assert_eq!(
        c.deployment.strategy,
        Some(crate::config::Strategy::AllAtOnce)
    );
    assert!(c.deployment.alarms.is_empty());
    let e = rejected("deployment", json!({ "strategy": "Fast" }));
    assert!(e.contains("deployment.strategy"), "{e}");
    assert!(e.contains("Cargo.toml"), "{e}");
    assert!(e.contains("Linear10PercentEvery1Minute"), "{e}");
    let e = rejected("deployment", json!({ "error-threshold": -1 }));
    assert!(e.contains("0-100"), "{e}");
}

fn stage(name: &str) -> Overrides {
    Overrides {
        stage: Some(name.into()),
        ..Default::default()
    }
}

fn manifest(file: &str, key: &str) -> Source {
    Source::Manifest {
        file: file.into(),
        key: key.into(),
    }
}

#[test]
fn stage_tables_sit_above_the_function_table_and_below_env_and_flags() {
    let workspace = json!({ "fn": {
        "memory": 256,
        "stages": { "prod": { "memory": 1024, "timeout": 20, "runtime": "provided.al2", "env": { "AA": "ws-prod" } } }
    } });
    let package = json!({ "fn": {
        "timeout": 6,
        "env": { "AA": "pkg", "BB": "pkg" },
        "stages": { "prod": { "timeout": 30, "env": { "BB": "pkg-prod" }, "tags": { "team": "orders" } }, "dev": {} },
        "functions": { "hello": {
            "timeout": 7,
            "architecture": "arm64",
            "stages": { "prod": { "architecture": "x86_64", "secrets": { "DB": "prod/db" } } }
        } }
    } });
    let mut env = BTreeMap::new();
    env.insert("CARGO_FN_EPHEMERAL_STORAGE".to_string(), "1024".to_string());
    let overrides = Overrides {
        stage: Some("prod".into()),
        memory: Some(2048),
        ..Default::default()
    };
    let c = resolve_full(workspace.clone(), package.clone(), &overrides, &env).unwrap();
    // The workspace's stage table beats the function's plain table.
    assert_eq!(c.runtime, Runtime::ProvidedAl2);
    assert_eq!(c.timeout, 30);
    assert_eq!(c.architecture, Arch::X86_64);
    assert_eq!(c.memory, 2048);
    assert_eq!(c.ephemeral_storage, 1024);
    assert_eq!(c.env["AA"], "ws-prod");
    assert_eq!(c.env["BB"], "pkg-prod");
    assert_eq!(c.secrets["DB"], "prod/db");
    assert_eq!(c.tags["team"], "orders");
    let pkg = "/ws/pkg/Cargo.toml";
    assert_eq!(
        c.sources["runtime"],
        manifest(
            "/ws/Cargo.toml",
            "workspace.metadata.fn.stages.prod.runtime"
        )
    );
    assert_eq!(
        c.sources["timeout"],
        manifest(pkg, "package.metadata.fn.stages.prod.timeout")
    );
    assert_eq!(
        c.sources["architecture"],
        manifest(
            pkg,
            "package.metadata.fn.functions.hello.stages.prod.architecture"
        )
    );
    assert_eq!(
        c.sources["env.BB"],
        manifest(pkg, "package.metadata.fn.stages.prod.env.BB")
    );
    assert_eq!(
        c.sources["secrets.DB"],
        manifest(
            pkg,
            "package.metadata.fn.functions.hello.stages.prod.secrets.DB"
        )
    );
    assert_eq!(
        c.sources["memory"],
        Source::Flag {
            name: "--memory".into()
        }
    );
    let s = c.stage.as_ref().unwrap();
    assert_eq!(s.name, "prod");
    assert_eq!(
        s.source("stage"),
        Source::Flag {
            name: "--stage".into()
        }
    );

    // Another stage sees none of prod's values; no stage sees none either.
    let dev = resolve_full(
        workspace.clone(),
        package.clone(),
        &stage("dev"),
        &BTreeMap::new(),
    )
    .unwrap();
    assert_eq!((dev.timeout, dev.memory), (7, 256));
    assert_eq!(dev.architecture, Arch::Arm64);
    assert!(dev.secrets.is_empty());
    let none = resolve_full(workspace, package, &Overrides::default(), &BTreeMap::new()).unwrap();
    assert_eq!((none.timeout, none.memory), (7, 256));
    assert!(none.stage.is_none());
    assert_eq!(none.name, "hello");
}

#[test]
fn stage_selection_flag_beats_env_beats_package_default_beats_workspace_default() {
    let workspace = json!({ "fn": { "default-stage": "staging", "stages": { "staging": {}, "dev": {}, "prod": {} } } });
    let package = json!({ "fn": { "default-stage": "dev" } });
    let mut env = BTreeMap::new();
    let pick = |ws: &Value, pkg: &Value, o: &Overrides, env: &BTreeMap<String, String>| {
        let c = resolve_full(ws.clone(), pkg.clone(), o, env).unwrap();
        let s = c.stage.unwrap();
        (s.name.clone(), s.source("stage"))
    };
    assert_eq!(
        pick(&workspace, &Value::Null, &Overrides::default(), &env),
        (
            "staging".into(),
            manifest("/ws/Cargo.toml", "workspace.metadata.fn.default-stage")
        )
    );
    assert_eq!(
        pick(&workspace, &package, &Overrides::default(), &env),
        (
            "dev".into(),
            manifest("/ws/pkg/Cargo.toml", "package.metadata.fn.default-stage")
        )
    );
    env.insert(STAGE_ENV_VAR.to_string(), "prod".to_string());
    assert_eq!(
        pick(&workspace, &package, &Overrides::default(), &env).1,
        Source::EnvVar {
            name: "CARGO_FN_STAGE".into()
        }
    );
    assert_eq!(pick(&workspace, &package, &stage("dev"), &env).0, "dev");
}

#[test]
fn unknown_stage_lists_the_known_ones() {
    let package = json!({ "fn": { "stages": { "dev": {}, "prod": {} } } });
    let err = resolve_full(Value::Null, package, &stage("prd"), &BTreeMap::new()).unwrap_err();
    let text = format!("{err:#}");
    assert!(
        text.contains("unknown stage `prd` (from flag --stage)"),
        "{text}"
    );
    assert!(text.contains("known stages: dev, prod"), "{text}");

    let package = json!({ "fn": { "default-stage": "qa" } });
    let text = format!("{:#}", resolve_one(Value::Null, package).unwrap_err());
    assert!(text.contains("unknown stage `qa`"), "{text}");
    assert!(text.contains("package.metadata.fn.default-stage"), "{text}");
    assert!(text.contains("known stages: none"), "{text}");
}

#[test]
fn bad_stage_names_and_pins_are_refused_with_their_key() {
    for bad in ["Prod", "1st", "dev_1", "a-", "", "abcdefghijklmnopq"] {
        assert!(check_stage_name(bad).is_err(), "{bad}");
    }
    for good in ["dev", "prod-eu-1", "qa2", "abcdefghijklmnop"] {
        assert!(check_stage_name(good).is_ok(), "{good}");
    }
    let package = json!({ "fn": { "stages": { "Prod": {} } } });
    let text = format!("{:#}", resolve_one(Value::Null, package).unwrap_err());
    assert!(text.contains("`package.metadata.fn.stages.Prod`"), "{text}");
    assert!(text.contains("1-16 characters of a-z"), "{text}");

    let text = format!(
        "{:#}",
        resolve_full(
            Value::Null,
            json!({ "fn": { "stages": { "dev": {} } } }),
            &stage("DEV"),
            &BTreeMap::new()
        )
        .unwrap_err()
    );
    assert!(
        text.contains("invalid stage `DEV` (from flag --stage)"),
        "{text}"
    );

    let cases = [
        (json!({ "account": "1234" }), "12-digit"),
        (json!({ "region": "Europe" }), "us-east-1"),
        (json!({ "confirm": "yes" }), "true or false"),
        (json!({ "profile": "" }), "profile name"),
    ];
    for (table, expect) in cases {
        let package = json!({ "fn": { "stages": { "prod": table } } });
        let text = format!(
            "{:#}",
            resolve_full(Value::Null, package, &stage("prod"), &BTreeMap::new()).unwrap_err()
        );
        assert!(text.contains("package.metadata.fn.stages.prod."), "{text}");
        assert!(text.contains(expect), "{text}");
    }
    // Stage-wide keys stay out of function tables and plain tables.
    let package = json!({ "fn": { "functions": { "hello": { "stages": { "prod": { "account": "123456789012" } } } } } });
    let text = format!("{:#}", resolve_one(Value::Null, package).unwrap_err());
    assert!(text.contains("`account` is stage-wide"), "{text}");
    let package = json!({ "fn": { "region": "eu-west-1" } });
    let text = format!("{:#}", resolve_one(Value::Null, package).unwrap_err());
    assert!(
        text.contains("package.metadata.fn.stages.<stage>.region"),
        "{text}"
    );
}

#[test]
fn stage_pins_come_from_workspace_and_package_stage_tables() {
    let workspace = json!({ "fn": { "stages": { "prod": { "account": "111111111111", "region": "eu-west-1", "confirm": true } } } });
    let package = json!({ "fn": { "stages": { "prod": { "region": "eu-central-1", "profile": "prod-admin" } } } });
    let c = resolve_full(workspace, package, &stage("prod"), &BTreeMap::new()).unwrap();
    let s = c.stage.unwrap();
    assert_eq!(s.account.as_deref(), Some("111111111111"));
    assert_eq!(s.region.as_deref(), Some("eu-central-1"));
    assert_eq!(s.profile.as_deref(), Some("prod-admin"));
    assert!(s.confirm);
    assert_eq!(
        s.source("region"),
        manifest(
            "/ws/pkg/Cargo.toml",
            "package.metadata.fn.stages.prod.region"
        )
    );
    assert_eq!(
        s.source("account"),
        manifest(
            "/ws/Cargo.toml",
            "workspace.metadata.fn.stages.prod.account"
        )
    );
}

#[test]
fn names_take_the_stage() {
    let package = json!({ "fn": { "name": "orders-{stage}", "stages": { "prod": {} } } });
    let c = resolve_full(
        Value::Null,
        package.clone(),
        &stage("prod"),
        &BTreeMap::new(),
    )
    .unwrap();
    assert_eq!(c.name, "orders-prod");
    assert_eq!(c.log_group_name(), "/aws/lambda/orders-prod");
    let text = format!("{:#}", resolve_one(Value::Null, package).unwrap_err());
    assert!(text.contains("invalid name = \"orders-{stage}\""), "{text}");
    assert!(text.contains("`{stage}` needs a stage"), "{text}");

    // No name under a stage: <bin>-<stage>, so two stages never share one.
    let package = json!({ "fn": { "stages": { "dev": {} } } });
    let c = resolve_full(Value::Null, package, &stage("dev"), &BTreeMap::new()).unwrap();
    assert_eq!(c.name, "hello-dev");

    // A fixed name stays fixed (the stage pins its own account).
    let package =
        json!({ "fn": { "name": "orders", "stages": { "prod": { "account": "123456789012" } } } });
    let c = resolve_full(Value::Null, package, &stage("prod"), &BTreeMap::new()).unwrap();
    assert_eq!(c.name, "orders");
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    // Without its own account, two stages would share it: said, not refused.
    let package = json!({ "fn": { "name": "orders", "stages": { "prod": {} } } });
    let c = resolve_full(Value::Null, package, &stage("prod"), &BTreeMap::new()).unwrap();
    assert_eq!(c.name, "orders");
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("is the same in every stage")),
        "{:?}",
        c.warnings
    );

    let package = json!({ "fn": { "name": "orders-{env}", "stages": { "prod": {} } } });
    let text = format!(
        "{:#}",
        resolve_full(Value::Null, package, &stage("prod"), &BTreeMap::new()).unwrap_err()
    );
    assert!(text.contains("the only placeholder is {stage}"), "{text}");
}

#[test]
fn triggers_in_a_stage_table_replace_the_plain_list() {
    let package = json!({ "fn": {
        "triggers": [{ "name": "tick", "type": "schedule", "expression": "rate(5 minutes)" }],
        "stages": { "dev": { "triggers": [{ "name": "jobs", "type": "sqs", "queue": "jobs-dev" }] }, "prod": {} }
    } });
    let dev = resolve_full(
        Value::Null,
        package.clone(),
        &stage("dev"),
        &BTreeMap::new(),
    )
    .unwrap();
    assert_eq!(dev.triggers.len(), 1);
    assert_eq!(dev.triggers[0].name, "jobs");
    assert_eq!(
        dev.sources["triggers"],
        manifest(
            "/ws/pkg/Cargo.toml",
            "package.metadata.fn.stages.dev.triggers"
        )
    );
    let prod = resolve_full(Value::Null, package, &stage("prod"), &BTreeMap::new()).unwrap();
    assert_eq!(prod.triggers[0].name, "tick");
}

#[test]
fn packages_of_one_run_agree_on_the_stage() {
    let mut p = project(
        json!({ "fn": { "stages": { "prod": {} } } }),
        json!({ "fn": { "stages": { "prod": { "account": "111111111111" } } } }),
    );
    let mut other = p.functions[0].clone();
    other.package = "other".into();
    other.bin = "other".into();
    other.manifest_path = "/ws/other/Cargo.toml".into();
    other.package_metadata =
        json!({ "fn": { "stages": { "prod": { "account": "222222222222" } } } });
    p.functions.push(other);
    let text = format!(
        "{:#}",
        resolve_with_env(&p, &stage("prod"), &BTreeMap::new()).unwrap_err()
    );
    assert!(
        text.contains("packages `pkg` and `other` disagree"),
        "{text}"
    );
    assert!(
        text.contains("111111111111") && text.contains("222222222222"),
        "{text}"
    );
}

#[test]
fn a_misspelt_key_in_any_stage_table_fails_in_every_stage() {
    let package = json!({ "fn": { "stages": { "dev": {}, "prod": { "memroy": 1024 } } } });
    for o in [stage("dev"), Overrides::default()] {
        let text = format!(
            "{:#}",
            resolve_full(Value::Null, package.clone(), &o, &BTreeMap::new()).unwrap_err()
        );
        assert!(
            text.contains("unknown key `package.metadata.fn.stages.prod.memroy`"),
            "{text}"
        );
    }
}
