//! `cargo fn deploy --image` end to end: moto answers ECR's and Lambda's
//! control planes (through the counting proxy of tests/it/support/moto.rs), and a
//! real `docker-registry` with htpasswd auth receives the push, reached
//! through `--registry-url`. moto is not an OCI registry, so a small shim
//! in front of the registry does what ECR does when a push completes: it
//! registers the manifest in moto's ECR (PutImage, test code only), where
//! moto's Lambda (MOTO_LAMBDA_STUB_ECR=false) looks images up.

use std::io::Write;
use std::path::Path;

use serde_json::{Value, json};

use crate::support::ecr_shim::{MOTO_PASSWORD, Shim, ecr};
use crate::support::fixtures::static_bootstrap;
use crate::support::moto::{Aws, SECRET_KEY};
use crate::support::registry::LocalRegistry;
use crate::support::{cargo_fn, tempdir};

/// A crate `hello` with the given `[package.metadata.fn]` body.
fn project(dir: &Path, metadata: &str) {
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"hello\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n\n[package.metadata.fn]\n{metadata}\n"
        ),
    )
    .unwrap();
    std::fs::write(dir.join("src/main.rs"), "fn main() {}\n").unwrap();
}

/// `cargo fn package --image` of the fixture bootstrap, with `data.txt`
/// holding `content` (a different content is a code change).
fn package(dir: &Path, content: &str) -> String {
    std::fs::write(dir.join("data.txt"), content).unwrap();
    let out = cargo_fn()
        .current_dir(dir)
        .args([
            "package",
            "--image",
            "--output",
            "json",
            "--include",
            "data.txt",
            "--binary",
        ])
        .arg(static_bootstrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "package --image failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v[0]["manifest_digest"].as_str().unwrap().to_string()
}

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn deploy(aws: &Aws, dir: &Path, registry: &str, extra: &[&str]) -> Run {
    let mut cmd = cargo_fn();
    cmd.current_dir(dir)
        .args(["deploy", "--image", "--no-build", "--output", "json"])
        .args(extra)
        .env_remove("AWS_PROFILE")
        .env("CARGO_FN_ECR_REGISTRY", registry);
    for (k, v) in aws.env() {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run cargo-fn");
    let run = Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    };
    for text in [&run.stdout, &run.stderr] {
        assert!(
            !text.contains(SECRET_KEY),
            "the secret key was printed: {text}"
        );
        assert!(
            !text.contains(MOTO_PASSWORD),
            "the registry password was printed: {text}"
        );
    }
    run
}

fn ok(run: Run) -> Value {
    assert!(run.ok, "failed:\n{}\n{}", run.stdout, run.stderr);
    let v: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", run.stdout, run.stderr));
    v["functions"][0].clone()
}

fn moto_with_ecr() -> Aws {
    Aws::start_with_env(&[("MOTO_LAMBDA_STUB_ECR", "false")])
}

#[test]
fn image_deploy_creates_repository_pushes_pins_digest_and_converges() {
    let aws = moto_with_ecr();
    let registry = LocalRegistry::start(Some(("AWS", MOTO_PASSWORD)));
    let shim = Shim::start(&registry.addr, aws.moto.port);
    let dir = tempdir();
    project(dir.path(), "image = { keep = 5 }");
    let d1 = package(dir.path(), "one");

    // First deploy: repository (scan on push, lifecycle), push, function.
    let f = ok(deploy(&aws, dir.path(), &shim.url(), &[]));
    assert_eq!(
        (&f["version"], &f["alias_version"]),
        (&json!("1"), &json!("1"))
    );
    let uri = format!("123456789012.dkr.ecr.us-east-1.amazonaws.com/hello@{d1}");
    assert_eq!(f["image_uri"], uri);
    let repos = ecr(
        aws.moto.port,
        "DescribeRepositories",
        &json!({"repositoryNames": ["hello"]}),
    );
    let repo = &repos["repositories"][0];
    assert_eq!(
        repo["imageScanningConfiguration"]["scanOnPush"], true,
        "{repos}"
    );
    let policy = ecr(
        aws.moto.port,
        "GetLifecyclePolicy",
        &json!({"repositoryName": "hello"}),
    );
    let text: Value =
        serde_json::from_str(policy["lifecyclePolicyText"].as_str().unwrap()).unwrap();
    assert_eq!(text["rules"][0]["selection"]["countNumber"], 5, "{policy}");
    let got = aws.get_json("/2015-03-31/functions/hello");
    assert_eq!(got["Configuration"]["PackageType"], "Image");
    assert_eq!(got["Code"]["ImageUri"], uri);
    // moto resolved the image in its ECR (stubbing off): CodeSha256 is the
    // manifest digest, as Lambda reports it for images.
    assert_eq!(
        got["Configuration"]["CodeSha256"],
        d1.trim_start_matches("sha256:")
    );
    assert!(
        got["Configuration"]
            .get("Runtime")
            .is_none_or(Value::is_null),
        "{got}"
    );
    assert!(
        got["Configuration"]
            .get("Handler")
            .is_none_or(Value::is_null),
        "{got}"
    );
    let alias = aws.get_json("/2015-03-31/functions/hello/aliases/live");
    assert_eq!(alias["FunctionVersion"], "1");
    assert!(shim.blob_uploads() >= 2, "{:?}", shim.calls());
    let calls = aws.proxy.calls();
    let token = calls.iter().position(|c| c == "ecr:GetAuthorizationToken");
    let create = calls.iter().position(|c| c == "POST /2015-03-31/functions");
    assert!(token.is_some() && token < create, "{calls:?}");

    // No change: no registry traffic, no ECR call, Lambda reads only.
    shim.reset();
    aws.proxy.reset_calls();
    let f = ok(deploy(&aws, dir.path(), &shim.url(), &[]));
    assert_eq!(f["changed"], false);
    assert_eq!(f["version"], "1");
    assert_eq!(shim.calls(), Vec::<String>::new());
    assert_eq!(aws.proxy.writes(), Vec::<String>::new());
    // The identity check, then 3 reads.
    assert!(aws.proxy.calls().len() <= 4, "{:?}", aws.proxy.calls());

    // A code change: only the new layer and config go up; version 2.
    shim.reset();
    aws.proxy.reset_calls();
    let d2 = package(dir.path(), "two");
    assert_ne!(d1, d2);
    let f = ok(deploy(&aws, dir.path(), &shim.url(), &[]));
    assert_eq!(
        (&f["version"], &f["alias_version"]),
        (&json!("2"), &json!("2"))
    );
    assert!(f["image_uri"].as_str().unwrap().ends_with(&d2));
    assert_eq!(shim.blob_uploads(), 2, "{:?}", shim.calls());
    let writes = aws.proxy.writes();
    assert!(
        writes.contains(&"PUT /2015-03-31/functions/hello/code".to_string()),
        "{writes:?}"
    );
    assert!(
        !writes.iter().any(|w| w == "ecr:CreateRepository"),
        "{writes:?}"
    );
    let got = aws.get_json("/2015-03-31/functions/hello");
    assert!(got["Code"]["ImageUri"].as_str().unwrap().ends_with(&d2));

    // Canary on images: the alias stays on 2 and sends 10% to 3; promote.
    package(dir.path(), "three");
    let f = ok(deploy(&aws, dir.path(), &shim.url(), &["--canary", "10"]));
    assert_eq!(
        (&f["version"], &f["alias_version"]),
        (&json!("3"), &json!("2"))
    );
    assert_eq!(f["routing"]["3"], 0.1);
    let alias = aws.get_json("/2015-03-31/functions/hello/aliases/live");
    assert_eq!(alias["RoutingConfig"]["AdditionalVersionWeights"]["3"], 0.1);
    let mut cmd = cargo_fn();
    cmd.current_dir(dir.path())
        .args(["promote", "--alias", "live", "hello"])
        .env_remove("AWS_PROFILE");
    for (k, v) in aws.env() {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let alias = aws.get_json("/2015-03-31/functions/hello/aliases/live");
    assert_eq!(alias["FunctionVersion"], "3");
}

#[test]
fn registry_refusing_auth_fails_clearly_and_no_code_update_references_it() {
    let aws = moto_with_ecr();
    let good = LocalRegistry::start(Some(("AWS", MOTO_PASSWORD)));
    let shim = Shim::start(&good.addr, aws.moto.port);
    let refusing = LocalRegistry::start(Some(("AWS", "another-password")));
    let dir = tempdir();
    project(dir.path(), "");

    // A first deploy to a refusing registry creates no function.
    package(dir.path(), "one");
    let run = deploy(&aws, dir.path(), &format!("http://{}", refusing.addr), &[]);
    assert!(!run.ok, "{}", run.stdout);
    assert!(
        run.stderr.contains("refused the credentials"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("ecr:GetAuthorizationToken"),
        "{}",
        run.stderr
    );
    assert!(
        !aws.proxy
            .calls()
            .iter()
            .any(|c| c == "POST /2015-03-31/functions"),
        "{:?}",
        aws.proxy.calls()
    );

    // Deployed through the good registry, then a change the registry refuses.
    ok(deploy(&aws, dir.path(), &shim.url(), &[]));
    let before = aws.get_json("/2015-03-31/functions/hello")["Code"]["ImageUri"].clone();
    package(dir.path(), "two");
    aws.proxy.reset_calls();
    let run = deploy(&aws, dir.path(), &format!("http://{}", refusing.addr), &[]);
    assert!(!run.ok, "{}", run.stdout);
    assert!(
        run.stderr.contains("refused the credentials"),
        "{}",
        run.stderr
    );
    let writes = aws.proxy.writes();
    assert!(
        !writes
            .iter()
            .any(|w| w.ends_with("/code") || w.ends_with("/versions")),
        "{writes:?}"
    );
    let got = aws.get_json("/2015-03-31/functions/hello");
    assert_eq!(got["Code"]["ImageUri"], before);
    let alias = aws.get_json("/2015-03-31/functions/hello/aliases/live");
    assert_eq!(alias["FunctionVersion"], "1");

    // A re-run through a registry that accepts converges.
    let f = ok(deploy(&aws, dir.path(), &shim.url(), &[]));
    assert_eq!(f["alias_version"], "2");
}

#[test]
fn dry_run_prints_repository_and_push_and_changes_nothing() {
    let aws = moto_with_ecr();
    let registry = LocalRegistry::start(Some(("AWS", MOTO_PASSWORD)));
    let shim = Shim::start(&registry.addr, aws.moto.port);
    let dir = tempdir();
    project(
        dir.path(),
        "package-type = \"image\"\nimage = { repository = \"team/hello\", keep = 3 }",
    );
    package(dir.path(), "one");
    let mut cmd = cargo_fn();
    cmd.current_dir(dir.path())
        .args(["deploy", "--no-build", "--dry-run"])
        .env_remove("AWS_PROFILE")
        .env("CARGO_FN_ECR_REGISTRY", shim.url());
    for (k, v) in aws.env() {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("ecr:CreateRepository team/hello (scan on push on"),
        "{stdout}"
    );
    assert!(
        stdout.contains("ecr:PutLifecyclePolicy team/hello (keep the newest 3"),
        "{stdout}"
    );
    assert!(
        stdout.contains("registry push team/hello@sha256:"),
        "{stdout}"
    );
    assert!(
        stdout.contains("lambda:CreateFunction hello (image team/hello@sha256:"),
        "{stdout}"
    );
    assert_eq!(aws.proxy.writes(), Vec::<String>::new());
    assert_eq!(shim.calls(), Vec::<String>::new());
    let repos = ecr(aws.moto.port, "DescribeRepositories", &json!({}));
    assert_eq!(repos["repositories"], json!([]), "{repos}");
}

#[test]
fn missing_image_and_architecture_mismatch_are_refused_before_any_call() {
    let aws = moto_with_ecr();
    let dir = tempdir();
    project(dir.path(), "");
    let run = deploy(&aws, dir.path(), "http://127.0.0.1:9", &[]);
    assert!(!run.ok);
    assert!(
        run.stderr.contains("cargo fn package --image"),
        "{}",
        run.stderr
    );

    package(dir.path(), "one");
    let run = deploy(&aws, dir.path(), "http://127.0.0.1:9", &["--arm64"]);
    assert!(!run.ok);
    assert!(run.stderr.contains("linux/amd64"), "{}", run.stderr);
    assert!(run.stderr.contains("--arch arm64"), "{}", run.stderr);
    assert_eq!(aws.proxy.calls(), Vec::<String>::new());

    // A zip function cannot become an image function.
    let zip = dir.path().join("z.zip");
    {
        let mut z = zip::ZipWriter::new(std::fs::File::create(&zip).unwrap());
        let opts = zip::write::SimpleFileOptions::default().unix_permissions(0o755);
        z.start_file("bootstrap", opts).unwrap();
        z.write_all(b"#!/bin/sh\n").unwrap();
        z.finish().unwrap();
    }
    let mut cmd = cargo_fn();
    cmd.current_dir(dir.path())
        .args(["deploy", "--zip"])
        .arg(&zip)
        .env_remove("AWS_PROFILE");
    for (k, v) in aws.env() {
        cmd.env(k, v);
    }
    assert!(cmd.output().unwrap().status.success());
    aws.proxy.reset_calls();
    let run = deploy(&aws, dir.path(), "http://127.0.0.1:9", &[]);
    assert!(!run.ok);
    assert!(run.stderr.contains("PackageType Zip"), "{}", run.stderr);
    assert_eq!(aws.proxy.writes(), Vec::<String>::new());
}
