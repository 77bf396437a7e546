//! `cargo fn deploy`, `promote` and `rollback` end to end against moto,
//! through the counting, fault-injecting proxy (tests/it/moto.rs).

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::moto::{Aws, FaultAction, SECRET_KEY};
use super::support::{cargo_fn, tempdir};

/// A crate with one binary `hello` and the given `[package.metadata.fn]` body.
pub(crate) fn project(dir: &Path, metadata: &str) {
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

/// A small zip holding an executable `bootstrap` with `content`.
pub(crate) fn zip(dir: &Path, name: &str, content: &str) -> PathBuf {
    let path = dir.join(name);
    let file = std::fs::File::create(&path).unwrap();
    let mut z = zip::ZipWriter::new(file);
    let opts = zip::write::SimpleFileOptions::default()
        .unix_permissions(0o755)
        .last_modified_time(zip::DateTime::default());
    z.start_file("bootstrap", opts).unwrap();
    z.write_all(format!("#!/bin/sh\n# {content}\n").as_bytes())
        .unwrap();
    z.finish().unwrap();
    path
}

pub(crate) struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!("stdout is not JSON ({e}): {}\n{}", self.stdout, self.stderr)
        })
    }
}

fn cargo_fn_in(aws: &Aws, dir: &Path, args: &[&str]) -> Run {
    let mut cmd = cargo_fn();
    cmd.current_dir(dir).args(args).env_remove("AWS_PROFILE");
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
    }
    run
}

pub(crate) fn deploy(aws: &Aws, dir: &Path, zip: &Path, extra: &[&str]) -> Run {
    let zip = zip.to_str().unwrap();
    let mut args = vec!["deploy", "--zip", zip, "--output", "json"];
    args.extend_from_slice(extra);
    cargo_fn_in(aws, dir, &args)
}

pub(crate) fn ok(run: Run) -> Value {
    assert!(run.ok, "failed:\n{}\n{}", run.stdout, run.stderr);
    run.json()
}

fn function(out: &Value) -> &Value {
    &out["functions"][0]
}

fn alias(aws: &Aws, name: &str) -> Value {
    aws.get_json(&format!("/2015-03-31/functions/hello/aliases/{name}"))
}

#[test]
fn first_deploy_then_no_change_then_code_change() {
    let aws = Aws::start();
    let dir = tempdir();
    project(dir.path(), "memory = 256\nenv = { MODE = \"a\" }");
    let v1 = zip(dir.path(), "v1.zip", "one");

    let out = ok(deploy(&aws, dir.path(), &v1, &[]));
    let f = function(&out);
    assert_eq!(f["version"], "1");
    assert_eq!(f["alias"], "live");
    assert_eq!(f["alias_version"], "1");
    assert!(
        f["function_arn"]
            .as_str()
            .unwrap()
            .ends_with(":function:hello")
    );
    let writes = aws.proxy.writes();
    assert!(writes.contains(&"iam:CreateRole".to_string()), "{writes:?}");
    assert!(
        writes.contains(&"POST /2015-03-31/functions".to_string()),
        "{writes:?}"
    );
    let role = aws.get_json("/2015-03-31/functions/hello")["Configuration"]["Role"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(role.ends_with(":role/cargo-fn-hello"), "{role}");
    assert_eq!(alias(&aws, "live")["FunctionVersion"], "1");

    // No change: read calls only, at most 3, nothing published.
    aws.proxy.reset_calls();
    let out = ok(deploy(&aws, dir.path(), &v1, &[]));
    assert_eq!(function(&out)["version"], "1");
    assert_eq!(function(&out)["changed"], false);
    let calls = aws.proxy.calls();
    assert!(aws.proxy.writes().is_empty(), "{calls:?}");
    assert!(calls.len() <= 3, "{calls:?}");

    // Code change: version 2, alias moved; no configuration update.
    aws.proxy.reset_calls();
    let v2 = zip(dir.path(), "v2.zip", "two");
    let out = ok(deploy(&aws, dir.path(), &v2, &[]));
    assert_eq!(function(&out)["version"], "2");
    assert_eq!(alias(&aws, "live")["FunctionVersion"], "2");
    let writes = aws.proxy.writes();
    assert_eq!(
        writes,
        [
            "PUT /2015-03-31/functions/hello/code",
            "POST /2015-03-31/functions/hello/versions",
            "PUT /2015-03-31/functions/hello/aliases/live",
        ],
        "{writes:?}"
    );
}

#[test]
fn canary_promote_and_rollback() {
    let aws = Aws::start();
    let dir = tempdir();
    project(dir.path(), "");
    let v1 = zip(dir.path(), "v1.zip", "one");
    let v2 = zip(dir.path(), "v2.zip", "two");
    ok(deploy(&aws, dir.path(), &v1, &[]));
    let out = ok(deploy(&aws, dir.path(), &v2, &["--canary", "10"]));
    assert_eq!(function(&out)["version"], "2");
    assert_eq!(function(&out)["alias_version"], "1");
    let a = alias(&aws, "live");
    assert_eq!(a["FunctionVersion"], "1");
    assert_eq!(a["RoutingConfig"]["AdditionalVersionWeights"]["2"], 0.1);

    let promoted = ok(cargo_fn_in(
        &aws,
        dir.path(),
        &["promote", "hello", "--output", "json"],
    ));
    assert_eq!(promoted["version"], "2");
    let a = alias(&aws, "live");
    assert_eq!(a["FunctionVersion"], "2");
    let weights = &a["RoutingConfig"]["AdditionalVersionWeights"];
    assert!(
        weights.is_null() || weights.as_object().unwrap().is_empty(),
        "{a}"
    );

    let back = ok(cargo_fn_in(
        &aws,
        dir.path(),
        &["rollback", "hello", "--output", "json"],
    ));
    assert_eq!(back["version"], "1");
    assert_eq!(alias(&aws, "live")["FunctionVersion"], "1");
    // The history came from AWS: the version description names the commit
    // state (this temp dir is not a git checkout).
    assert!(
        back["call"].as_str().unwrap().contains("cargo-fn:"),
        "{back}"
    );

    let to = ok(cargo_fn_in(
        &aws,
        dir.path(),
        &["rollback", "hello", "--to", "2", "--output", "json"],
    ));
    assert_eq!(to["version"], "2");
    let bad = cargo_fn_in(&aws, dir.path(), &["rollback", "hello", "--to", "7"]);
    assert!(!bad.ok);
    assert!(
        bad.stderr.contains("no published version 7"),
        "{}",
        bad.stderr
    );
}

#[test]
fn configuration_changes_are_detected_field_by_field() {
    let aws = Aws::start();
    let dir = tempdir();
    project(
        dir.path(),
        "memory = 256\ntimeout = 10\nenv = { MODE = \"a\", API_TOKEN = \"hunter2-secret\" }",
    );
    let v1 = zip(dir.path(), "v1.zip", "one");
    ok(deploy(&aws, dir.path(), &v1, &[]));
    project(
        dir.path(),
        "memory = 512\ntimeout = 10\nephemeral-storage = 1024\nenv = { MODE = \"b\", API_TOKEN = \"hunter3-secret\" }",
    );
    let plan = ok(deploy(&aws, dir.path(), &v1, &["--dry-run"]));
    let changes: Vec<&str> = plan["plans"][0]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        changes,
        ["memory", "ephemeral-storage", "env.API_TOKEN", "env.MODE"]
    );
    assert_eq!(plan["plans"][0]["code_changed"], false);
    let text = plan.to_string();
    assert!(!text.contains("hunter"), "secret value printed: {text}");

    // Human dry run too.
    let human = cargo_fn_in(
        &aws,
        dir.path(),
        &["deploy", "--zip", v1.to_str().unwrap(), "--dry-run"],
    );
    assert!(human.ok, "{}", human.stderr);
    assert!(
        human.stdout.contains("memory: 256 MB -> 512 MB"),
        "{}",
        human.stdout
    );
    assert!(!human.stdout.contains("hunter"), "{}", human.stdout);

    aws.proxy.reset_calls();
    let out = ok(deploy(&aws, dir.path(), &v1, &[]));
    assert_eq!(function(&out)["version"], "2");
    let writes = aws.proxy.writes();
    assert_eq!(
        writes,
        [
            "PUT /2015-03-31/functions/hello/configuration",
            "POST /2015-03-31/functions/hello/versions",
            "PUT /2015-03-31/functions/hello/aliases/live",
        ]
    );
    let conf = aws.get_json("/2015-03-31/functions/hello/configuration");
    assert_eq!(conf["MemorySize"], 512);
    // moto 5.2 reads EphemeralStorage only on create (measured), so its
    // update is asserted through the in-memory fake (src/deploy/tests.rs).
    assert_eq!(conf["Environment"]["Variables"]["MODE"], "b");
}

#[test]
fn dry_run_changes_nothing() {
    let aws = Aws::start();
    let dir = tempdir();
    project(dir.path(), "");
    let v1 = zip(dir.path(), "v1.zip", "one");
    let run = cargo_fn_in(
        &aws,
        dir.path(),
        &["deploy", "--zip", v1.to_str().unwrap(), "--dry-run"],
    );
    assert!(run.ok, "{}", run.stderr);
    assert!(
        run.stdout.contains("call lambda:CreateFunction hello"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("call iam:CreateRole cargo-fn-hello"),
        "{}",
        run.stdout
    );
    assert!(aws.proxy.writes().is_empty(), "{:?}", aws.proxy.calls());
    let (status, _) = super::moto::http(aws.moto.port, "GET", "/2015-03-31/functions/hello", b"");
    assert_eq!(status, 404);
}

#[test]
fn bad_configuration_is_rejected_before_any_call() {
    let aws = Aws::start();
    let dir = tempdir();
    project(dir.path(), "memory = 64");
    let v1 = zip(dir.path(), "v1.zip", "one");
    let run = deploy(&aws, dir.path(), &v1, &[]);
    assert!(!run.ok);
    assert!(run.stderr.contains("memory"), "{}", run.stderr);
    let run = cargo_fn_in(
        &aws,
        dir.path(),
        &["deploy", "--zip", v1.to_str().unwrap(), "--canary", "150"],
    );
    assert!(!run.ok);
    project(dir.path(), "");
    let run = deploy(&aws, dir.path(), &v1, &["--alias", "123"]);
    assert!(!run.ok);
    assert!(run.stderr.contains("--alias"), "{}", run.stderr);
    assert_eq!(aws.proxy.calls(), Vec::<String>::new());
}

#[test]
fn layer_publish_and_function_url() {
    let aws = Aws::start();
    let dir = tempdir();
    project(dir.path(), "function-url = { auth = \"NONE\" }");
    let layer = zip(dir.path(), "layer.zip", "layer");
    let out = ok(cargo_fn_in(
        &aws,
        dir.path(),
        &[
            "deploy",
            "--layer",
            "tools",
            "--zip",
            layer.to_str().unwrap(),
            "--arm64",
            "--output",
            "json",
        ],
    ));
    assert!(
        out["arn"].as_str().unwrap().contains(":layer:tools:1"),
        "{out}"
    );
    assert!(
        aws.proxy
            .writes()
            .iter()
            .any(|w| w == "POST /2018-10-31/layers/tools/versions")
    );

    let v1 = zip(dir.path(), "v1.zip", "one");
    let out = ok(deploy(&aws, dir.path(), &v1, &[]));
    let url = function(&out)["url"].as_str().expect("a URL").to_string();
    assert!(url.starts_with("http"), "{url}");
    let writes = aws.proxy.writes();
    assert!(
        writes.iter().any(|w| w.ends_with("/hello/url")),
        "{writes:?}"
    );
    assert!(
        writes.iter().any(|w| w.ends_with("/hello/policy")),
        "{writes:?}"
    );
    // A second deploy leaves the URL alone.
    aws.proxy.reset_calls();
    ok(deploy(&aws, dir.path(), &v1, &[]));
    assert!(aws.proxy.writes().is_empty(), "{:?}", aws.proxy.calls());
}

#[test]
fn throttling_and_server_errors_are_retried() {
    let aws = Aws::start();
    let dir = tempdir();
    project(dir.path(), "");
    let v1 = zip(dir.path(), "v1.zip", "one");
    aws.proxy.inject(
        "POST /2015-03-31/functions/hello/versions",
        FaultAction::Error(429, "TooManyRequestsException"),
        2,
    );
    aws.proxy.inject(
        "GET /2015-03-31/functions/hello",
        FaultAction::Error(500, "ServiceException"),
        1,
    );
    aws.proxy.inject("/aliases", FaultAction::Drop, 1);
    let out = ok(deploy(&aws, dir.path(), &v1, &[]));
    assert_eq!(function(&out)["alias_version"], "1");
    assert_eq!(alias(&aws, "live")["FunctionVersion"], "1");
}

#[test]
fn persistent_failure_leaves_the_alias_and_a_rerun_converges() {
    let aws = Aws::start();
    let dir = tempdir();
    project(dir.path(), "");
    let v1 = zip(dir.path(), "v1.zip", "one");
    let v2 = zip(dir.path(), "v2.zip", "two");
    ok(deploy(&aws, dir.path(), &v1, &[]));

    // Publishing keeps failing: clear error naming the operation and code.
    aws.proxy.inject(
        "/hello/versions",
        FaultAction::Error(500, "ServiceException"),
        100,
    );
    let run = deploy(&aws, dir.path(), &v2, &[]);
    assert!(!run.ok);
    assert!(
        run.stderr
            .contains("lambda:PublishVersion failed with ServiceException"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("hint:"), "{}", run.stderr);
    assert_eq!(alias(&aws, "live")["FunctionVersion"], "1");
    aws.proxy.clear_faults();

    // A precondition failure on the alias move (someone else moved it).
    aws.proxy.inject(
        "PUT /2015-03-31/functions/hello/aliases/live",
        FaultAction::Error(412, "PreconditionFailedException"),
        1,
    );
    let run = deploy(&aws, dir.path(), &v2, &[]);
    assert!(!run.ok);
    assert!(
        run.stderr
            .contains("lambda:UpdateAlias failed with PreconditionFailedException"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("changed by someone else"),
        "{}",
        run.stderr
    );
    assert_eq!(alias(&aws, "live")["FunctionVersion"], "1");

    // A conflict on the code update (an update in progress) once: deploy
    // waits for the update to finish and retries with the same guards.
    aws.proxy.inject(
        "/hello/code",
        FaultAction::Error(409, "ResourceConflictException"),
        1,
    );
    let v3 = zip(dir.path(), "v3.zip", "three");
    let out = ok(deploy(&aws, dir.path(), &v3, &[]));
    let v = function(&out)["version"].as_str().unwrap().to_string();
    assert_eq!(alias(&aws, "live")["FunctionVersion"], v.as_str());
    let conf = aws.get_json(&format!(
        "/2015-03-31/functions/hello/configuration?Qualifier={v}"
    ));
    assert_eq!(function(&out)["code_sha256"], conf["CodeSha256"]);

    // Conflicts that persist reach the user with the operation and code.
    aws.proxy.inject(
        "/hello/code",
        FaultAction::Error(409, "ResourceConflictException"),
        2,
    );
    let v4 = zip(dir.path(), "v4.zip", "four");
    let run = deploy(&aws, dir.path(), &v4, &[]);
    assert!(!run.ok);
    assert!(
        run.stderr
            .contains("lambda:UpdateFunctionCode failed with ResourceConflictException"),
        "{}",
        run.stderr
    );
    assert_eq!(alias(&aws, "live")["FunctionVersion"], v.as_str());

    // The re-run converges on v4, and then there is nothing more to do.
    let out = ok(deploy(&aws, dir.path(), &v4, &[]));
    let v = function(&out)["version"].as_str().unwrap().to_string();
    assert_eq!(alias(&aws, "live")["FunctionVersion"], v.as_str());
    aws.proxy.reset_calls();
    ok(deploy(&aws, dir.path(), &v4, &[]));
    assert!(aws.proxy.writes().is_empty(), "{:?}", aws.proxy.calls());
}

#[test]
fn dropped_create_function_response_converges() {
    let aws = Aws::start();
    let dir = tempdir();
    project(dir.path(), "");
    let v1 = zip(dir.path(), "v1.zip", "one");
    // moto creates the function, the answer is lost; the SDK retries and
    // gets a conflict, which deploy resolves by checking it is our code.
    aws.proxy.inject(
        "=POST /2015-03-31/functions",
        FaultAction::DropAfterForward,
        1,
    );
    let run = deploy(&aws, dir.path(), &v1, &[]);
    if !run.ok {
        // If it stopped, it says why, and the re-run converges.
        assert!(run.stderr.contains("lambda:"), "{}", run.stderr);
        ok(deploy(&aws, dir.path(), &v1, &[]));
    }
    assert_eq!(alias(&aws, "live")["FunctionVersion"], "1");
}

#[test]
fn zips_travel_through_s3_and_stale_ones_are_deleted() {
    use base64::Engine;
    use sha2::Digest;
    let aws = Aws::start();
    let (status, body) = super::moto::http_as(aws.moto.port, "s3", "PUT", "/artifacts", b"");
    assert!(
        (200..300).contains(&status),
        "{}",
        String::from_utf8_lossy(&body)
    );
    let dir = tempdir();
    project(dir.path(), "");
    let mut last = PathBuf::new();
    for i in 1..=3 {
        last = zip(dir.path(), &format!("v{i}.zip"), &format!("code {i}"));
        let out = ok(deploy(
            &aws,
            dir.path(),
            &last,
            &["--s3-bucket", "artifacts", "--s3-keep", "2"],
        ));
        assert_eq!(function(&out)["version"], i.to_string());
    }
    let writes = aws.proxy.writes();
    assert!(
        writes
            .iter()
            .any(|w| w.starts_with("PUT /artifacts/cargo-fn/hello/")),
        "{writes:?}"
    );
    let (_, listing) = super::moto::http_as(
        aws.moto.port,
        "s3",
        "GET",
        "/artifacts?list-type=2&prefix=cargo-fn/hello/",
        b"",
    );
    let listing = String::from_utf8_lossy(&listing);
    assert_eq!(listing.matches("<Key>").count(), 2, "{listing}");
    let sha = base64::engine::general_purpose::STANDARD
        .encode(sha2::Sha256::digest(std::fs::read(&last).unwrap()));
    let conf = aws.get_json("/2015-03-31/functions/hello/configuration");
    assert_eq!(conf["CodeSha256"], sha.as_str());
    // An unchanged redeploy touches S3 not at all.
    aws.proxy.reset_calls();
    ok(deploy(
        &aws,
        dir.path(),
        &last,
        &["--s3-bucket", "artifacts", "--s3-keep", "2"],
    ));
    assert!(aws.proxy.writes().is_empty(), "{:?}", aws.proxy.calls());
}

/// A zip whose `bootstrap` is `size` bytes that do not compress, stored as is.
fn incompressible_zip(dir: &Path, name: &str, size: usize) -> PathBuf {
    let path = dir.join(name);
    let mut z = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .unix_permissions(0o755)
        .last_modified_time(zip::DateTime::default());
    z.start_file("bootstrap", opts).unwrap();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let bytes: Vec<u8> = (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    z.write_all(&bytes).unwrap();
    z.finish().unwrap();
    path
}

#[test]
fn large_upload_arrives_whole_and_removed_tags_are_untagged() {
    let aws = Aws::start();
    let dir = tempdir();
    project(dir.path(), "tags = { team = \"core\", cost = \"c1\" }");
    // Over the size at which the upload is sliced for the byte bar.
    let big = incompressible_zip(dir.path(), "big.zip", 600 * 1024);
    let out = ok(deploy(&aws, dir.path(), &big, &[]));
    let conf = aws.get_json("/2015-03-31/functions/hello/configuration");
    assert_eq!(
        conf["CodeSha256"],
        function(&out)["code_sha256"],
        "moto hashed exactly the bytes of the local zip"
    );
    assert_eq!(
        conf["CodeSize"].as_u64(),
        Some(std::fs::metadata(&big).unwrap().len())
    );
    let arn = conf["FunctionArn"].as_str().unwrap().to_string();
    let tags = aws.get_json(&format!("/2017-03-31/tags/{arn}"));
    assert_eq!(tags["Tags"]["cost"], "c1", "{tags}");

    // `cost` leaves the configuration: merge keeps it, replace removes it.
    project(dir.path(), "tags = { team = \"core\" }");
    aws.proxy.reset_calls();
    ok(deploy(&aws, dir.path(), &big, &["--tag-mode", "merge"]));
    assert!(aws.proxy.writes().is_empty(), "{:?}", aws.proxy.writes());
    let plan = ok(deploy(&aws, dir.path(), &big, &["--dry-run"]));
    assert_eq!(plan["plans"][0]["untag"], serde_json::json!(["cost"]));
    aws.proxy.reset_calls();
    ok(deploy(&aws, dir.path(), &big, &[]));
    let writes = aws.proxy.writes();
    assert_eq!(writes.len(), 1, "only the untag call: {writes:?}");
    assert!(
        writes[0].starts_with("DELETE /2017-03-31/tags/"),
        "{writes:?}"
    );
    let tags = aws.get_json(&format!("/2017-03-31/tags/{arn}"));
    assert!(tags["Tags"].get("cost").is_none(), "{tags}");
    assert_eq!(tags["Tags"]["team"], "core");
    assert_eq!(tags["Tags"]["managed-by"], "cargo-fn");
}
