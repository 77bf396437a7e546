//! Snapshots of what users read: the `--dry-run` plans of representative
//! deploys against moto, and the tree and rendered Cargo.toml of every
//! `cargo fn new` template. Paths, ports, account ids, request ids and
//! timings are redacted, so a snapshot changes only when what a user sees
//! does. The snapshots live in tests/it/snapshots/; under CI (`CI=true`)
//! a changed one fails the test (README: "Working on cargo-fn").

use std::path::Path;

use crate::support::moto::{Aws, SECRET_KEY};
use crate::support::{cargo_fn, tempdir};

/// insta's settings with the redactions every snapshot here needs, plus
/// `dir` (the project) shown as `[PROJECT]`.
fn redacted(dir: &Path) -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.set_prepend_module_to_snapshot(false);
    settings.add_filter(&regex::escape(&dir.display().to_string()), "[PROJECT]");
    settings.add_filter(r"/tmp/[^\s\x22']+", "[TMP]");
    settings.add_filter(r"127\.0\.0\.1:\d+", "127.0.0.1:[PORT]");
    settings.add_filter(r"\b\d{12}\b", "[ACCOUNT]");
    settings.add_filter(
        r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b",
        "[UUID]",
    );
    // Elapsed times ("in 1.2 s"), not configured ones ("timeout 10 s").
    settings.add_filter(r"\bin \d+(\.\d+)? ?(ms|s)\b", "in [DURATION]");
    settings
}

/// A one-function project, `hello`, with a code zip, and a moto to deploy
/// it to.
struct Project {
    aws: Aws,
    dir: tempfile::TempDir,
}

impl Project {
    fn new() -> Project {
        let dir = tempdir();
        std::fs::create_dir_all(dir.path().join("src")).unwrap();
        std::fs::write(dir.path().join("src/main.rs"), "fn main() {}\n").unwrap();
        crate::support::deploy::zip(dir.path(), "bootstrap.zip", "v1");
        Project {
            aws: Aws::start(),
            dir,
        }
    }

    /// Sets `[package.metadata.fn]`.
    fn metadata(&self, body: &str) {
        crate::support::deploy::project(self.dir.path(), "hello", body);
    }

    /// `cargo fn deploy --zip bootstrap.zip [extra]`: the plan or report
    /// on stdout; panics unless it succeeded. (Its stderr here holds only
    /// the SDK's warnings about the test's missing config files.)
    fn deploy(&self, extra: &[&str]) -> String {
        let mut cmd = cargo_fn();
        cmd.current_dir(self.dir.path())
            .args(["deploy", "--zip", "bootstrap.zip", "--color", "never"])
            .args(extra)
            .env_remove("AWS_PROFILE")
            .envs(self.aws.env());
        let out = cmd.output().expect("run cargo-fn");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "deploy failed:\n{stdout}\n{stderr}");
        assert!(!stdout.contains(SECRET_KEY) && !stderr.contains(SECRET_KEY));
        stdout
    }
}

#[test]
fn dry_run_plan_of_a_first_deploy() {
    let p = Project::new();
    p.metadata("memory = 256\ntimeout = 10");
    let plan = p.deploy(&["--dry-run"]);
    redacted(p.dir.path()).bind(|| insta::assert_snapshot!("plan_first_deploy", plan));
}

#[test]
fn dry_run_plan_with_no_change() {
    let p = Project::new();
    p.metadata("memory = 256\ntimeout = 10");
    p.deploy(&[]);
    let plan = p.deploy(&["--dry-run"]);
    redacted(p.dir.path()).bind(|| insta::assert_snapshot!("plan_no_change", plan));
}

#[test]
fn dry_run_plan_of_a_trigger_added() {
    let p = Project::new();
    p.metadata("memory = 256\ntimeout = 10");
    p.deploy(&[]);
    p.metadata(
        "memory = 256\ntimeout = 10\n\n[[package.metadata.fn.triggers]]\n\
         type = \"schedule\"\nname = \"nightly\"\nexpression = \"cron(0 3 * * ? *)\"",
    );
    let plan = p.deploy(&["--dry-run"]);
    redacted(p.dir.path()).bind(|| insta::assert_snapshot!("plan_trigger_added", plan));
}

/// Every file and directory under `dir`, relative and sorted, one a line.
fn tree(dir: &Path) -> String {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            if path.is_dir() {
                out.push(format!("{rel}/"));
                walk(root, &path, out);
            } else {
                out.push(rel);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out.join("\n")
}

#[test]
fn new_trees_and_manifests_of_every_template() {
    let tmp = tempdir();
    for template in cargo_fn::templates::builtin_names() {
        let name = format!("fn-{template}");
        cargo_fn()
            .current_dir(tmp.path())
            .args(["new", &name, "--template", template, "--yes"])
            .assert()
            .success();
        let dir = tmp.path().join(&name);
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        let shown = format!("--- files\n{}\n--- Cargo.toml\n{manifest}", tree(&dir));
        redacted(&dir).bind(|| insta::assert_snapshot!(format!("new_{template}"), shown));
    }
}
