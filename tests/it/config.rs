//! `cargo fn config`, configuration layering through a real cargo project,
//! and the CLI shell (help, `cargo fn` form, exit codes).

use std::path::Path;

use predicates::prelude::*;

use crate::support::{cargo_fn, tempdir};

/// A one-binary cargo project with the given metadata appended to Cargo.toml.
fn project(dir: &Path, metadata: &str) {
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"hello\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n{metadata}\n"
        ),
    )
    .unwrap();
    std::fs::write(dir.join("src/main.rs"), "fn main() {}\n").unwrap();
}

#[test]
fn help_lists_every_command() {
    let out = cargo_fn().arg("--help").assert().success();
    let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    for cmd in [
        "new", "init", "config", "build", "package", "watch", "invoke", "deploy",
    ] {
        assert!(text.contains(cmd), "help misses {cmd}:\n{text}");
    }
}

#[test]
fn works_as_cargo_subcommand() {
    // cargo runs `cargo-fn fn <args>` for `cargo fn <args>`.
    cargo_fn()
        .args(["fn", "--version"])
        .assert()
        .success()
        .stdout(predicate::str::contains("cargo-fn"));
}

#[test]
fn usage_errors_exit_2() {
    cargo_fn()
        .args(["config", "--no-such-flag"])
        .assert()
        .code(2);
    cargo_fn()
        .args(["config", "--env-var", "NOEQUALS"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("KEY=VALUE"));
}

#[test]
fn config_shows_values_and_their_sources() {
    let dir = tempdir();
    project(
        dir.path(),
        "[package.metadata.fn]\nmemory = 256\nenv = { GREETING = \"hi\" }\n\n[package.metadata.fn.functions.hello]\ntimeout = 10\n",
    );
    let out = cargo_fn()
        .current_dir(dir.path())
        .env("CARGO_FN_EPHEMERAL_STORAGE", "1024")
        .args(["config", "--arch", "arm64"])
        .assert()
        .success();
    let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    let line = |key: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(key))
            .unwrap_or_else(|| panic!("no {key} line in:\n{text}"))
            .to_string()
    };
    assert!(line("memory").contains("256 MB"));
    assert!(line("memory").contains("package.metadata.fn.memory"));
    assert!(line("timeout").contains("package.metadata.fn.functions.hello.timeout"));
    assert!(line("ephemeral-storage").contains("CARGO_FN_EPHEMERAL_STORAGE"));
    assert!(line("architecture").contains("arm64"));
    assert!(line("architecture").contains("flag --arch"));
    assert!(line("runtime").contains("default"));
    assert!(line("env.GREETING").contains("hi"));
}

#[test]
fn config_json_is_machine_readable_and_redacts_credentials() {
    let dir = tempdir();
    project(
        dir.path(),
        "[package.metadata.fn]\nenv = { DB_PASSWORD = \"hunter2\" }\nsecrets = { API_KEY_NAME = \"prod/api\" }\n",
    );
    let out = cargo_fn()
        .current_dir(dir.path())
        .args(["config", "--output", "json"])
        .assert()
        .success();
    let stdout = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    let stderr = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert!(!stdout.contains("hunter2") && !stderr.contains("hunter2"));
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v[0]["name"], "hello");
    assert_eq!(v[0]["memory"], 128);
    assert_eq!(v[0]["secrets"]["API_KEY_NAME"], "prod/api");
    assert_eq!(v[0]["sources"]["memory"]["kind"], "default");
    assert!(stderr.contains("looks like a secret"));
}

#[test]
fn invalid_value_names_file_key_and_range() {
    let dir = tempdir();
    project(dir.path(), "[package.metadata.fn]\ntimeout = 1000\n");
    cargo_fn()
        .current_dir(dir.path())
        .arg("config")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("Cargo.toml"))
        .stderr(predicate::str::contains("package.metadata.fn.timeout"))
        .stderr(predicate::str::contains("1-900"));
}

#[test]
fn invalid_flag_value_names_the_flag() {
    let dir = tempdir();
    project(dir.path(), "");
    cargo_fn()
        .current_dir(dir.path())
        .args(["config", "--memory", "64"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("flag --memory"))
        .stderr(predicate::str::contains("128-10240"));
}

#[test]
fn invalid_env_var_names_the_variable() {
    let dir = tempdir();
    project(dir.path(), "");
    cargo_fn()
        .current_dir(dir.path())
        .env("CARGO_FN_ARCHITECTURE", "sparc")
        .arg("config")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("CARGO_FN_ARCHITECTURE"))
        .stderr(predicate::str::contains("x86_64, arm64"));
}

#[test]
fn reserved_env_var_is_refused() {
    let dir = tempdir();
    project(
        dir.path(),
        "[package.metadata.fn]\nenv = { AWS_REGION = \"eu-west-1\" }\n",
    );
    cargo_fn()
        .current_dir(dir.path())
        .arg("config")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("AWS_REGION"))
        .stderr(predicate::str::contains("reserved"));
}

#[test]
fn outside_a_cargo_project_gives_a_hint() {
    let dir = tempdir();
    cargo_fn()
        .current_dir(dir.path())
        .arg("config")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("hint:"))
        .stderr(predicate::str::contains("cargo fn new"));
}

#[test]
fn unknown_bin_lists_the_available_ones() {
    let dir = tempdir();
    project(dir.path(), "");
    cargo_fn()
        .current_dir(dir.path())
        .args(["config", "--bin", "nope"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("available: hello"));
}

/// `cargo fn config --output json` of the project's one function.
fn config_json(dir: &Path) -> serde_json::Value {
    let out = cargo_fn()
        .current_dir(dir)
        .args(["config", "--output", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v[0].clone()
}

#[test]
fn cargo_lambda_env_and_deploy_env_both_reach_the_function() {
    let dir = tempdir();
    project(
        dir.path(),
        "[package.metadata.lambda.env]\nRUNTIME_ONLY = \"a\"\nBOTH = \"runtime\"\n\n[package.metadata.lambda.deploy]\nenv = { DEPLOY_ONLY = \"b\", BOTH = \"deploy\" }\n",
    );
    let f = config_json(dir.path());
    assert_eq!(f["env"]["RUNTIME_ONLY"], "a", "{f}");
    assert_eq!(f["env"]["DEPLOY_ONLY"], "b", "{f}");
    assert_eq!(f["env"]["BOTH"], "deploy", "{f}");
}

#[test]
fn cargo_lambda_deploy_keys_are_mapped() {
    let dir = tempdir();
    project(
        dir.path(),
        r#"[package.metadata.lambda.deploy]
enable_function_url = true
iam_role = "arn:aws:iam::123456789012:role/legacy"
layer = ["arn:aws:lambda:us-east-1:123456789012:layer:one:1"]
tag = ["team=core"]
env_var = ["FROM_LIST=1"]
alias = "prod"
"#,
    );
    let f = config_json(dir.path());
    assert_eq!(f["role"], "arn:aws:iam::123456789012:role/legacy", "{f}");
    assert_eq!(
        f["layers"][0], "arn:aws:lambda:us-east-1:123456789012:layer:one:1",
        "{f}"
    );
    assert_eq!(f["tags"]["team"], "core", "{f}");
    assert_eq!(f["env"]["FROM_LIST"], "1", "{f}");
    assert_eq!(f["alias"], "prod", "{f}");
    let url = f.get("function_url").or_else(|| f.get("function-url"));
    assert_eq!(url.map(|u| u["auth"].clone()), Some("NONE".into()), "{f}");
}

#[test]
fn cargo_lambda_deploy_keys_without_an_equivalent_are_refused_with_what_to_write() {
    for (key, value, instead) in [
        ("s3_bucket", "\"artifacts\"", "--s3-bucket"),
        ("s3_key", "\"k.zip\"", "--s3-key"),
        ("log_retention", "14", "put-retention-policy"),
        ("description", "\"x\"", "git commit"),
        ("region", "\"eu-west-1\"", "--region"),
        ("profile", "\"prod\"", "--profile"),
        ("no_such_key", "1", "not a cargo-lambda deploy key"),
    ] {
        let dir = tempdir();
        project(
            dir.path(),
            &format!("[package.metadata.lambda.deploy]\n{key} = {value}\n"),
        );
        let out = cargo_fn()
            .current_dir(dir.path())
            .arg("config")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{key} was accepted");
        assert!(
            stderr.contains(&format!("`package.metadata.lambda.deploy.{key}`"))
                && stderr.contains("Cargo.toml")
                && stderr.contains(instead),
            "{key}: {stderr}"
        );
    }
}

#[test]
fn build_release_is_accepted_as_cargo_lambda_spells_it() {
    // A configuration error (exit 1, after the flags parsed) rather than
    // a usage error (exit 2) for `--release`; no build is started.
    let dir = tempdir();
    project(dir.path(), "[package.metadata.fn]\nmemory = 1\n");
    for flag in ["--release", "-r"] {
        cargo_fn()
            .current_dir(dir.path())
            .args(["build", flag])
            .assert()
            .code(1)
            .stderr(predicate::str::contains("memory"));
    }
    cargo_fn()
        .current_dir(dir.path())
        .args(["build", "--release", "--profile", "dev"])
        .assert()
        .code(2);
}
