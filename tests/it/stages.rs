//! Stages (#27) through the real CLI: `--stage` and `CARGO_FN_STAGE` on
//! every command that reads configuration, `cargo fn config --stage`,
//! a stage's name, memory and pins in a deploy plan against moto, a stage's
//! architecture in `package`, and `watch --stage` serving the stage's
//! environment and its own triggers.

use std::path::Path;

use serde_json::Value;

use crate::support::deploy::{cargo_fn_in, project, zip};
use crate::support::doubles::{Double, Kind};
use crate::support::fixtures::static_bootstrap;
use crate::support::watch::{CliWatch, function_crate};
use crate::support::{cargo_fn, tempdir};

/// The stage tables the tests share: dev and prod differ in memory, env,
/// architecture and triggers.
const STAGES: &str = r#"
[package.metadata.fn.stages.dev]
env = { GREETING = "hello from dev" }
secrets = { PAYMENT_KEY = "dev/payment-key" }
triggers = [{ type = "schedule", name = "tick", expression = "rate(1 day)" }]

[package.metadata.fn.stages.prod]
memory = 1024
env = { GREETING = "hello from prod" }
region = "eu-west-1"
account = "123456789012"
"#;

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The line of `cargo fn config` output whose key is `key`.
fn line<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find(|l| l.split_whitespace().next() == Some(key))
        .unwrap_or_else(|| panic!("no `{key}` line in:\n{text}"))
}

#[test]
fn config_shows_the_stage_its_pins_and_each_value_s_stage_table() {
    let dir = tempdir();
    project(
        dir.path(),
        "orders",
        &format!("memory = 256\nname = \"orders-{{stage}}\"\n{STAGES}"),
    );
    let out = cargo_fn()
        .current_dir(dir.path())
        .args(["config", "--stage", "prod"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with("orders-prod (package orders, binary orders)"),
        "{text}"
    );
    assert!(line(&text, "stage").contains("prod"), "{text}");
    assert!(line(&text, "stage").contains("flag --stage"), "{text}");
    assert!(
        line(&text, "stage.account").contains("123456789012"),
        "{text}"
    );
    assert!(
        line(&text, "stage.region").contains("`package.metadata.fn.stages.prod.region`"),
        "{text}"
    );
    assert!(line(&text, "stage.confirm").contains("false"), "{text}");
    assert!(line(&text, "name").contains("orders-prod"), "{text}");
    let memory = line(&text, "memory");
    assert!(memory.contains("1024 MB"), "{text}");
    assert!(
        memory.contains("`package.metadata.fn.stages.prod.memory`"),
        "{text}"
    );
    assert!(
        line(&text, "env.GREETING").contains("hello from prod"),
        "{text}"
    );

    // CARGO_FN_STAGE selects too; the flag wins over it.
    let out = cargo_fn()
        .current_dir(dir.path())
        .env("CARGO_FN_STAGE", "dev")
        .args(["config", "--output", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let json: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(json[0]["name"], "orders-dev");
    assert_eq!(json[0]["stage"]["name"], "dev");
    assert_eq!(
        json[0]["stage"]["sources"]["stage"]["name"],
        "CARGO_FN_STAGE"
    );
    assert_eq!(json[0]["memory"], 256);
    assert_eq!(json[0]["triggers"][0]["name"], "tick");
    let out = cargo_fn()
        .current_dir(dir.path())
        .env("CARGO_FN_STAGE", "dev")
        .args(["config", "--stage", "prod", "--output", "json"])
        .output()
        .unwrap();
    let json: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(json[0]["stage"]["name"], "prod");

    // No stage: the plain tables, and `{stage}` cannot be filled.
    let out = cargo_fn()
        .current_dir(dir.path())
        .arg("config")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("`{stage}` needs a stage"),
        "{}",
        stderr(&out)
    );
}

/// Each command that reads configuration takes `--stage` and refuses a
/// stage no table defines, naming the ones that exist, before doing
/// anything else (no build, no AWS call, no emulator).
#[test]
fn every_configuration_command_takes_stage_and_refuses_an_unknown_one() {
    let dir = tempdir();
    project(dir.path(), "orders", STAGES);
    let commands: &[&[&str]] = &[
        &["config"],
        &["build"],
        &["package"],
        &["watch"],
        &["invoke"],
        &["invoke", "orders", "--remote"],
        &["deploy", "--dry-run"],
        &["promote"],
        &["rollback"],
        &["logs", "--remote"],
        &["tune"],
        &["tune", "orders", "--remote"],
    ];
    for args in commands {
        for how in ["flag", "env"] {
            let mut cmd = cargo_fn();
            cmd.current_dir(dir.path()).args(*args);
            match how {
                "flag" => cmd.args(["--stage", "qa"]),
                _ => cmd.env("CARGO_FN_STAGE", "qa"),
            };
            let out = cmd.output().unwrap();
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(1), "{args:?} ({how}): {err}");
            assert!(
                err.contains("unknown stage `qa`"),
                "{args:?} ({how}): {err}"
            );
            assert!(
                err.contains("known stages: dev, prod"),
                "{args:?} ({how}): {err}"
            );
        }
    }
}

#[test]
fn package_builds_the_stage_s_function_with_the_stage_s_architecture() {
    let dir = tempdir();
    project(
        dir.path(),
        "orders",
        &format!("{STAGES}architecture = \"arm64\"\n"),
    );
    let binary = static_bootstrap().to_str().unwrap().to_string();
    let out = cargo_fn()
        .current_dir(dir.path())
        .args([
            "package", "--stage", "dev", "--binary", &binary, "--output", "json",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let json: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let path = json[0]["path"].as_str().unwrap();
    assert!(
        path.ends_with("target/lambda/orders-dev/bootstrap.zip"),
        "{json}"
    );

    // prod builds for arm64 (its table's last key): an x86_64 binary is refused.
    let out = cargo_fn()
        .current_dir(dir.path())
        .args(["package", "--stage", "prod", "--binary", &binary])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("arm64") || err.contains("aarch64"), "{err}");
}

#[test]
fn deploy_dry_run_shows_the_stage_s_name_and_memory_against_moto() {
    let aws = Double::start(Kind::Moto);
    let dir = tempdir();
    let base = aws.name("orders");
    project(
        dir.path(),
        &base,
        &format!(
            "memory = 256\n{}",
            STAGES.replace("region = \"eu-west-1\"\naccount = \"123456789012\"\n", "")
        ),
    );
    let v1 = zip(dir.path(), "v1.zip", "one");
    let zip = v1.to_str().unwrap();
    for (stage, memory) in [("dev", 256), ("prod", 1024)] {
        let run = cargo_fn_in(
            &aws,
            dir.path(),
            &[
                "deploy",
                "--zip",
                zip,
                "--dry-run",
                "--stage",
                stage,
                "--output",
                "json",
            ],
        );
        assert!(run.ok, "{}", run.stderr);
        let plan = run.json();
        let text = plan.to_string();
        let name = format!("{base}-{stage}");
        assert!(
            text.contains(&format!("lambda:CreateFunction {name}")),
            "{text}"
        );
        assert!(
            text.contains(&format!("\"MemorySize\":{memory}"))
                || text.contains(&format!("\"memory\":{memory}")),
            "{text}"
        );
        assert!(aws.proxy.writes().is_empty(), "{:?}", aws.proxy.calls());
    }

    // A region flag contradicting the stage's pin is refused before any call.
    let dir = tempdir();
    project(dir.path(), &base, STAGES);
    let before = aws.proxy.calls().len();
    let run = cargo_fn_in(
        &aws,
        dir.path(),
        &[
            "deploy",
            "--zip",
            zip,
            "--dry-run",
            "--stage",
            "prod",
            "--region",
            "us-east-1",
        ],
    );
    assert!(!run.ok);
    assert!(
        run.stderr
            .contains("--region us-east-1 contradicts stage `prod`'s region `eu-west-1`"),
        "{}",
        run.stderr
    );
    assert_eq!(aws.proxy.calls().len(), before, "{:?}", aws.proxy.calls());
}

/// A crate whose function answers with its environment and the event's
/// `source` (a schedule's event says `aws.scheduler`).
fn echo_crate(dir: &Path) {
    function_crate(dir, "orders", 1);
    let mut manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    manifest.push_str(STAGES);
    std::fs::write(dir.join("Cargo.toml"), manifest).unwrap();
    std::fs::write(
        dir.join("src/main.rs"),
        r#"use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        let var = |k: &str| std::env::var(k).ok();
        Ok::<Value, Error>(json!({
            "greeting": var("GREETING"),
            "payment_key": var("PAYMENT_KEY"),
            "function": var("AWS_LAMBDA_FUNCTION_NAME"),
            "source": event.payload.get("source"),
        }))
    }))
    .await
}
"#,
    )
    .unwrap();
}

fn invoke(dir: &Path, port: u16, args: &[&str]) -> std::process::Output {
    cargo_fn()
        .current_dir(dir)
        .arg("invoke")
        .args(args)
        .args(["--port", &port.to_string()])
        .output()
        .unwrap()
}

#[test]
fn watch_stage_runs_the_stage_s_environment_secrets_and_triggers() {
    let dir = tempdir();
    echo_crate(dir.path());

    let watch = CliWatch::start_until(dir.path(), &["--stage", "dev"], "Watching");
    assert!(
        watch
            .seen
            .iter()
            .any(|l| l.contains("Watching") && l.contains("(stage dev)")),
        "{:?}",
        watch.seen
    );
    let out = invoke(dir.path(), watch.port, &["--stage", "dev"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let answer: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(answer["greeting"], "hello from dev");
    // Secrets reach the function as their names, as deploy sets them.
    assert_eq!(answer["payment_key"], "dev/payment-key");
    assert_eq!(answer["function"], "orders-dev");
    // The binary's name stands for the stage's function.
    let out = invoke(dir.path(), watch.port, &["orders", "--stage", "dev"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // dev's own schedule is served.
    let out = invoke(
        dir.path(),
        watch.port,
        &["--stage", "dev", "--trigger", "tick"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let fired: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(fired["response"]["source"], "aws.scheduler", "{fired}");
    watch.stop();

    let watch = CliWatch::start_until(dir.path(), &["--stage", "prod"], "Watching");
    let out = invoke(dir.path(), watch.port, &["--stage", "prod"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let answer: Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(answer["greeting"], "hello from prod");
    assert_eq!(answer["payment_key"], Value::Null);
    assert_eq!(answer["function"], "orders-prod");
    // prod has no `tick`: the schedule exists only in dev.
    let out = invoke(
        dir.path(),
        watch.port,
        &["--stage", "prod", "--trigger", "tick"],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no local trigger `tick`"),
        "{}",
        stderr(&out)
    );
    watch.stop();
}

#[test]
fn new_and_init_refuse_a_stage_flag_instead_of_ignoring_it() {
    let dir = tempdir();
    for args in [&["new", "orders", "--yes"][..], &["init", "--yes"]] {
        let out = cargo_fn()
            .current_dir(dir.path())
            .args(args)
            .args(["--stage", "dev"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("read no configuration"),
            "{}",
            stderr(&out)
        );
    }
    assert!(!dir.path().join("orders").exists());
}
