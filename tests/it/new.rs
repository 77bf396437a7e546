//! `cargo fn new` / `cargo fn init`: every template generates a crate that
//! builds and passes its own tests; every refusal writes nothing.

use std::path::{Path, PathBuf};
use std::process::Command;

use predicates::prelude::*;

use crate::support::{cargo_fn, shared_target_dir, tempdir};

/// Every file and directory under `dir`, relative and sorted.
fn tree(dir: &Path) -> Vec<PathBuf> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            out.push(path.strip_prefix(root).unwrap().to_path_buf());
            if path.is_dir() {
                walk(root, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Plain `cargo <args>` in a generated crate, with the shared target dir and
/// none of the variables the outer `cargo test` sets for this crate.
fn cargo_in(dir: &Path, args: &[&str]) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut cmd = Command::new(cargo);
    cmd.args(args).current_dir(dir);
    for (key, _) in std::env::vars() {
        if key.starts_with("CARGO_") && key != "CARGO_HOME" {
            cmd.env_remove(key);
        }
    }
    cmd.env_remove("RUSTFLAGS");
    cmd.env("CARGO_TARGET_DIR", shared_target_dir());
    let output = cmd.output().expect("run cargo");
    assert!(
        output.status.success(),
        "`cargo {}` failed in {}:\n{}\n{}",
        args.join(" "),
        dir.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Generates `name` with `flags`, checks the common shape of every template,
/// then builds it and runs its tests with plain cargo. Returns the manifest.
fn generate_build_and_test(name: &str, flags: &[&str], expected_files: &[&str]) -> toml::Table {
    let tmp = tempdir();
    cargo_fn()
        .current_dir(tmp.path())
        .arg("new")
        .arg(name)
        .args(flags)
        .assert()
        .success()
        .stderr(predicate::str::contains(format!(
            "Created `{name}` from template"
        )))
        .stderr(predicate::str::contains(format!("cd {name}")));
    let dir = tmp.path().join(name);
    for file in [".gitignore", "Cargo.toml", "src/main.rs"]
        .iter()
        .chain(expected_files)
    {
        assert!(dir.join(file).is_file(), "{name}: {file} missing");
    }
    assert!(!dir.join("template.toml").exists());
    let manifest: toml::Table =
        toml::from_str(&std::fs::read_to_string(dir.join("Cargo.toml")).unwrap()).unwrap();
    assert_eq!(manifest["package"]["name"].as_str(), Some(name));
    let meta = manifest["package"]["metadata"]["fn"]
        .as_table()
        .expect("[package.metadata.fn]");
    assert!(meta.contains_key("architecture"), "{name}: {meta:?}");
    let release = manifest["profile"]["release"].as_table().unwrap();
    assert_eq!(release["codegen-units"].as_integer(), Some(1));
    let main = std::fs::read_to_string(dir.join("src/main.rs")).unwrap();
    assert!(
        main.contains("init_default_subscriber()"),
        "{name}: tracing"
    );
    assert!(main.contains("std::env::var("), "{name}: settings from env");

    cargo_in(&dir, &["build"]);
    cargo_in(&dir, &["test"]);

    // The metadata passes cargo-fn's own configuration validation.
    let out = cargo_fn()
        .args(["config", "--output", "json", "--manifest-path"])
        .arg(dir.join("Cargo.toml"))
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let configs: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(configs[0]["name"], name, "{configs}");
    assert_eq!(
        configs[0]["extension"],
        meta.get("extension")
            .and_then(|e| e.as_bool())
            .unwrap_or(false)
    );
    manifest
}

#[test]
fn basic_template_builds_and_passes_its_tests() {
    let manifest = generate_build_and_test("fn-basic", &[], &["events/example.json"]);
    let meta = &manifest["package"]["metadata"]["fn"];
    assert_eq!(meta["name"].as_str(), Some("fn-basic"));
    assert_eq!(meta["log-format"].as_str(), Some("JSON"));
}

#[test]
fn http_template_builds_and_passes_its_tests() {
    let manifest = generate_build_and_test("fn-http", &["--http"], &["events/function-url.json"]);
    let meta = &manifest["package"]["metadata"]["fn"];
    assert_eq!(meta["event-format"].as_str(), Some("function-url"));
    assert_eq!(meta["function-url"]["auth"].as_str(), Some("AWS_IAM"));
    assert!(manifest["dependencies"].get("lambda_http").is_some());
}

#[test]
fn sqs_template_builds_and_passes_its_tests() {
    generate_build_and_test("fn-sqs", &["--event", "sqs"], &["events/sqs.json"]);
}

#[test]
fn s3_template_builds_and_passes_its_tests() {
    generate_build_and_test("fn-s3", &["--event", "s3"], &["events/s3.json"]);
}

#[test]
fn scheduled_template_builds_and_passes_its_tests() {
    generate_build_and_test(
        "fn-scheduled",
        &["--event", "scheduled"],
        &["events/scheduled.json"],
    );
}

#[test]
fn kinesis_stream_template_builds_and_passes_its_tests() {
    generate_build_and_test(
        "fn-kinesis",
        &["--event", "kinesis"],
        &["events/kinesis.json"],
    );
}

#[test]
fn dynamodb_stream_template_builds_and_passes_its_tests() {
    generate_build_and_test(
        "fn-dynamodb",
        &["--template", "stream", "--var", "source=dynamodb"],
        &["events/dynamodb.json"],
    );
}

#[test]
fn extension_template_builds_and_passes_its_tests() {
    let manifest = generate_build_and_test(
        "fn-extension",
        &["--template", "extension"],
        &["events/invoke.json", "events/shutdown.json"],
    );
    let meta = &manifest["package"]["metadata"]["fn"];
    assert_eq!(meta["extension"].as_bool(), Some(true));
    assert!(manifest["dependencies"].get("lambda-extension").is_some());
}

#[test]
fn without_a_terminal_or_flag_the_template_is_basic() {
    let tmp = tempdir();
    cargo_fn()
        .current_dir(tmp.path())
        .args(["new", "plain"])
        .write_stdin("")
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "Created `plain` from template basic",
        ))
        .stderr(predicate::str::contains(
            "cargo fn invoke --data-file events/example.json",
        ));
    assert!(tmp.path().join("plain/events/example.json").is_file());
}

#[test]
fn json_output_lists_the_files() {
    let tmp = tempdir();
    let out = cargo_fn()
        .current_dir(tmp.path())
        .args(["new", "listed", "--event", "dynamodb", "--output", "json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let result: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(result["template"], "stream");
    assert_eq!(result["example_event"], "events/dynamodb.json");
    let files: Vec<&str> = result["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert!(files.contains(&"Cargo.toml") && files.contains(&"src/main.rs"));
    assert!(!files.contains(&"events/kinesis.json"));
}

#[test]
fn new_accepts_a_path_and_a_user_template_directory() {
    let tmp = tempdir();
    let template = tmp.path().join("my-template");
    std::fs::create_dir_all(template.join("src")).unwrap();
    std::fs::write(
        template.join("template.toml"),
        "description = \"mine\"\n[variables.greeting]\ndefault = \"hi\"\n",
    )
    .unwrap();
    std::fs::write(
        template.join("Cargo.toml.jinja"),
        "[package]\nname = \"{{ name }}\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n\
         [dependencies]\nlambda_runtime = \"{{ versions.lambda_runtime }}\"\n",
    )
    .unwrap();
    std::fs::write(
        template.join("src/main.rs.jinja"),
        "fn main() { println!(\"{{ greeting }} from {{ crate_name }}\"); }\n",
    )
    .unwrap();
    cargo_fn()
        .current_dir(tmp.path())
        .args(["new", "nested/dir/custom", "--template", "./my-template"])
        .args(["--var", "greeting=hello"])
        .assert()
        .success();
    let dir = tmp.path().join("nested/dir/custom");
    let main = std::fs::read_to_string(dir.join("src/main.rs")).unwrap();
    assert_eq!(main, "fn main() { println!(\"hello from custom\"); }\n");
    let cargo = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    assert!(cargo.contains("lambda_runtime = \"1."), "{cargo}");
    assert!(!dir.join("template.toml").exists());
}

/// Runs `cargo fn <args>` in a fresh temp dir prepared by `setup`, expects
/// failure with `code` and `message`, and checks the dir is unchanged.
fn refused(setup: impl FnOnce(&Path), args: &[&str], code: i32, message: &str) {
    let tmp = tempdir();
    setup(tmp.path());
    let before = tree(tmp.path());
    let contents: Vec<_> = before
        .iter()
        .filter(|p| tmp.path().join(p).is_file())
        .map(|p| std::fs::read(tmp.path().join(p)).unwrap())
        .collect();
    cargo_fn()
        .current_dir(tmp.path())
        .args(args)
        .assert()
        .code(code)
        .stderr(predicate::str::contains(message));
    assert_eq!(
        tree(tmp.path()),
        before,
        "`cargo fn {}` wrote files",
        args.join(" ")
    );
    let after: Vec<_> = before
        .iter()
        .filter(|p| tmp.path().join(p).is_file())
        .map(|p| std::fs::read(tmp.path().join(p)).unwrap())
        .collect();
    assert_eq!(
        after,
        contents,
        "`cargo fn {}` changed files",
        args.join(" ")
    );
}

#[test]
fn refuses_names_that_are_not_crate_or_function_names() {
    let long = "a".repeat(65);
    for (name, why) in [
        ("1st", "it does not start with a letter"),
        ("my.fn", "`.` is not allowed"),
        ("fn", "it is a Rust keyword"),
        ("test", "cargo reserves it"),
        (long.as_str(), "it is 65 characters long"),
    ] {
        refused(
            |_| {},
            &["new", name],
            2,
            &format!("invalid function name `{name}`: {why}"),
        );
    }
    // The name given with --name is checked too, and for init.
    refused(
        |_| {},
        &["new", "ok", "--name", "bad name"],
        2,
        "` ` is not allowed",
    );
    refused(|_| {}, &["init", "--name", "bad!"], 2, "`!` is not allowed");
}

#[test]
fn init_refuses_a_directory_name_that_is_not_valid_and_hints_at_name() {
    refused(
        |dir| std::fs::create_dir(dir.join("1bad")).unwrap(),
        &["init", "1bad"],
        2,
        "pass --name NAME",
    );
}

#[test]
fn new_refuses_a_non_empty_directory() {
    refused(
        |dir| {
            std::fs::create_dir(dir.join("taken")).unwrap();
            std::fs::write(dir.join("taken/notes.txt"), "mine").unwrap();
        },
        &["new", "taken"],
        1,
        "destination `taken` already exists and is not empty",
    );
}

#[test]
fn refuses_an_unknown_template_and_lists_the_known_ones() {
    refused(
        |_| {},
        &["new", "hello", "--template", "graphql"],
        2,
        "unknown template `graphql`; the built-in templates are: basic, extension, http, s3, \
         scheduled, sqs, stream",
    );
}

#[test]
fn refuses_a_template_directory_without_manifest() {
    refused(
        |dir| {
            std::fs::create_dir(dir.join("not-a-template")).unwrap();
            std::fs::write(dir.join("not-a-template/Cargo.toml"), "[package]\n").unwrap();
        },
        &["new", "hello", "--template", "./not-a-template"],
        1,
        "is not a template: it has no template.toml",
    );
}

#[test]
fn refuses_a_template_that_renders_a_bad_cargo_toml() {
    refused(
        |dir| {
            std::fs::create_dir(dir.join("broken")).unwrap();
            std::fs::write(dir.join("broken/template.toml"), "description = \"x\"\n").unwrap();
            std::fs::write(dir.join("broken/Cargo.toml.jinja"), "name = {{ name }}\n").unwrap();
        },
        &["new", "hello", "--template", "./broken"],
        1,
        "renders an invalid Cargo.toml",
    );
}

#[test]
fn refuses_an_unknown_variable_value() {
    refused(
        |_| {},
        &[
            "new",
            "hello",
            "--template",
            "stream",
            "--var",
            "source=kafka",
        ],
        2,
        "choose one of: kinesis, dynamodb",
    );
}

#[test]
fn init_refuses_an_existing_cargo_toml() {
    refused(
        |dir| std::fs::write(dir.join("Cargo.toml"), "[package]\nname = \"mine\"\n").unwrap(),
        &["init", "--name", "hello"],
        1,
        "will not overwrite it",
    );
}

#[test]
fn init_works_in_a_non_empty_directory_and_keeps_existing_files() {
    let tmp = tempdir();
    let dir = tmp.path().join("existing");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("README.md"), "# mine\n").unwrap();
    std::fs::write(dir.join(".gitignore"), "/secrets\n").unwrap();
    cargo_fn()
        .current_dir(&dir)
        .args(["init", "--event", "sqs"])
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "Created `existing` from template sqs",
        ))
        .stderr(predicate::str::contains("kept the existing .gitignore"));
    assert_eq!(
        std::fs::read_to_string(dir.join("README.md")).unwrap(),
        "# mine\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join(".gitignore")).unwrap(),
        "/secrets\n"
    );
    let cargo = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    assert!(cargo.contains("name = \"existing\""));
    assert!(dir.join("src/main.rs").is_file() && dir.join("events/sqs.json").is_file());
}

#[test]
fn new_warns_when_a_workspace_does_not_list_the_crate() {
    let tmp = tempdir();
    std::fs::write(
        tmp.path().join("Cargo.toml"),
        "[workspace]\nmembers = [\"fns/*\"]\n",
    )
    .unwrap();
    cargo_fn()
        .current_dir(tmp.path())
        .args(["new", "outside"])
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "add \"outside\" to its `workspace.members`",
        ));
    cargo_fn()
        .current_dir(tmp.path())
        .args(["new", "fns/inside"])
        .assert()
        .success()
        .stderr(predicate::str::contains("workspace.members").not());
}

#[test]
fn list_shows_every_builtin_template() {
    let out = cargo_fn()
        .args(["new", "--list"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let out = String::from_utf8(out).unwrap();
    let names: Vec<&str> = out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(
        names,
        [
            "basic",
            "http",
            "sqs",
            "s3",
            "scheduled",
            "stream",
            "extension"
        ]
    );
    assert!(out.contains("partial batch failures"), "{out}");
    cargo_fn().args(["new", "--list", "x"]).assert().code(2);
}
