//! Stages in deploy (#27) against moto, with real accounts: moto files an
//! IAM user made under `x-moto-account-id` in that account and maps its
//! access keys there (tests/it/support/accounts.rs), so each stage's
//! `profile` reaches its own account.
//!
//! Proven: the account guard refuses before any write; `confirm = true`
//! needs `--yes` without a terminal; two stages in one account keep their
//! own names and tags and never touch each other; a function tagged for
//! another stage is refused; a trigger of one stage exists only there;
//! `--from` publishes the source's exact CodeSha256, in one account and
//! across two.
//!
//! moto 5.2's GetFunction gives a `Code.Location` on a real AWS host that
//! it does not serve, so against moto `--from` takes its code from a local
//! package whose CodeSha256 equals the source's (what a CI job holding the
//! staging build artifact has), and a local package with another hash is
//! refused here with no write. LocalStack serves its pre-signed
//! `Code.Location`: the download path (no local package, nothing built,
//! the bytes' hash checked) is proven against it; the hash mismatch of a
//! download is proven against the in-memory fake (`deploy::source`).

use std::path::Path;

use serde_json::Value;

use crate::support::accounts::{AccountKey, Profiles, account_key};
use crate::support::deploy::{Run, project, zip};
use crate::support::doubles::{Double, Kind};
use crate::support::moto::{SECRET_KEY, client_env, http_with};
use crate::support::{cargo_fn, tempdir};

const ACCOUNT_A: &str = "111111111111";
const ACCOUNT_B: &str = "222222222222";

/// cargo-fn in `dir` with exactly `env` for AWS (no inherited AWS_*).
fn run(dir: &Path, env: &[(&'static str, String)], args: &[&str]) -> Run {
    let mut cmd = cargo_fn();
    cmd.current_dir(dir).args(args);
    for k in [
        "AWS_PROFILE",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
    ] {
        cmd.env_remove(k);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run cargo-fn");
    let run = Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    };
    for text in [&run.stdout, &run.stderr] {
        assert!(!text.contains(SECRET_KEY), "the secret key was printed");
    }
    run
}

fn ok(run: Run) -> Value {
    assert!(run.ok, "failed:\n{}\n{}", run.stdout, run.stderr);
    run.json()
}

/// A Lambda REST GET in `account` straight to moto (None on 404).
/// Deploys stage `staging` from `zip` (JSON output) and returns the
/// CodeSha256 it shipped.
fn deploy_staging(dir: &Path, env: &[(&'static str, String)], zip: &Path) -> String {
    let staged = ok(run(
        dir,
        env,
        &[
            "deploy",
            "--stage",
            "staging",
            "--zip",
            zip.to_str().unwrap(),
            "--output",
            "json",
        ],
    ));
    staged["functions"][0]["code_sha256"]
        .as_str()
        .unwrap()
        .to_string()
}

fn lambda_get(aws: &Double, account: &str, path: &str) -> Option<Value> {
    let (status, body) = http_with(
        aws.port,
        "lambda",
        "GET",
        path,
        &[("x-moto-account-id", account)],
        b"",
    );
    match status {
        200..=299 => Some(serde_json::from_slice(&body).expect("JSON")),
        404 => None,
        s => panic!("GET {path}: HTTP {s} {}", String::from_utf8_lossy(&body)),
    }
}

fn function(aws: &Double, account: &str, name: &str) -> Option<Value> {
    lambda_get(aws, account, &format!("/2015-03-31/functions/{name}"))
}

fn alias_version(aws: &Double, account: &str, name: &str) -> String {
    let a = lambda_get(
        aws,
        account,
        &format!("/2015-03-31/functions/{name}/aliases/live"),
    )
    .expect("alias");
    a["FunctionVersion"].as_str().unwrap().to_string()
}

fn version_sha(aws: &Double, account: &str, name: &str, version: &str) -> String {
    let c = lambda_get(
        aws,
        account,
        &format!("/2015-03-31/functions/{name}/configuration?Qualifier={version}"),
    )
    .expect("version");
    c["CodeSha256"].as_str().unwrap().to_string()
}

/// The tags of an IAM role (None when it does not exist), in `account`.
fn role_tags(aws: &Double, account: &str, role: &str) -> Option<Vec<(String, String)>> {
    let (status, body) = http_with(
        aws.port,
        "iam",
        "POST",
        "/",
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("x-moto-account-id", account),
        ],
        format!("Action=ListRoleTags&RoleName={role}&Version=2010-05-08").as_bytes(),
    );
    let xml = String::from_utf8_lossy(&body).into_owned();
    if status == 404 || xml.contains("NoSuchEntity") {
        return None;
    }
    assert_eq!(status, 200, "{xml}");
    let mut out = Vec::new();
    for member in xml.split("<member>").skip(1) {
        let field = |tag: &str| {
            let open = format!("<{tag}>");
            let s = member.find(&open).unwrap() + open.len();
            member[s..s + member[s..].find('<').unwrap()].to_string()
        };
        out.push((field("Key"), field("Value")));
    }
    Some(out)
}

/// Two accounts in one moto, a profile for each (`acct-a`, `acct-b`).
fn two_accounts(aws: &Double) -> (AccountKey, AccountKey, Profiles) {
    let a = account_key(aws.port, ACCOUNT_A, "deployer-a");
    let b = account_key(aws.port, ACCOUNT_B, "deployer-b");
    let profiles = Profiles::write("us-east-1", &[("acct-a", &a), ("acct-b", &b)]);
    (a, b, profiles)
}

#[test]
fn moto_maps_each_users_keys_to_its_account() {
    let aws = Double::start(Kind::Moto);
    let (_, _, profiles) = two_accounts(&aws);
    let dir = tempdir();
    let name = aws.name("probe");
    project(dir.path(), &name, "memory = 128");
    let v1 = zip(dir.path(), "v1.zip", "one");
    let env = profiles.env(aws.proxy.url());
    let zip = v1.to_str().unwrap();
    let args = [
        "deploy",
        "--zip",
        zip,
        "--output",
        "json",
        "--profile",
        "acct-b",
    ];
    let out = ok(run(dir.path(), &env, &args));
    let arn = out["functions"][0]["function_arn"].as_str().unwrap();
    assert!(arn.contains(&format!(":{ACCOUNT_B}:")), "{arn}");
    assert!(function(&aws, ACCOUNT_B, &name).is_some());
    assert!(function(&aws, ACCOUNT_A, &name).is_none());
}

#[test]
fn the_guard_refuses_a_deploy_into_the_wrong_account_with_no_write() {
    let aws = Double::start(Kind::Moto);
    let (_, _, profiles) = two_accounts(&aws);
    let dir = tempdir();
    let name = aws.name("guarded");
    // prod lives in account A, but its profile holds account B's keys.
    project(
        dir.path(),
        &name,
        &format!(
            "memory = 128\n\n[package.metadata.fn.stages.prod]\naccount = \"{ACCOUNT_A}\"\nprofile = \"acct-b\"\n"
        ),
    );
    let v1 = zip(dir.path(), "v1.zip", "one");
    let env = profiles.env(aws.proxy.url());
    let zip = v1.to_str().unwrap();
    aws.proxy.reset_calls();
    let r = run(
        dir.path(),
        &env,
        &[
            "deploy", "--stage", "prod", "--zip", zip, "--output", "json",
        ],
    );
    assert!(!r.ok, "deployed into the wrong account:\n{}", r.stdout);
    assert!(
        r.stderr.contains(ACCOUNT_A) && r.stderr.contains(ACCOUNT_B),
        "the refusal names both accounts: {}",
        r.stderr
    );
    let calls = aws.proxy.calls();
    assert!(aws.proxy.writes().is_empty(), "{calls:?}");
    // The identity check is the only call.
    assert!(
        calls.iter().all(|c| c == "iam:GetCallerIdentity"),
        "{calls:?}"
    );
    let fname = format!("{name}-prod");
    for account in [ACCOUNT_A, ACCOUNT_B] {
        assert!(function(&aws, account, &fname).is_none());
        assert!(role_tags(&aws, account, &format!("cargo-fn-{fname}")).is_none());
    }

    // With the right profile the same deploy goes into account A.
    let fixed = std::fs::read_to_string(dir.path().join("Cargo.toml"))
        .unwrap()
        .replace("acct-b", "acct-a");
    std::fs::write(dir.path().join("Cargo.toml"), fixed).unwrap();
    let out = ok(run(
        dir.path(),
        &env,
        &[
            "deploy", "--stage", "prod", "--zip", zip, "--output", "json",
        ],
    ));
    let arn = out["functions"][0]["function_arn"].as_str().unwrap();
    assert!(
        arn.contains(&format!(":{ACCOUNT_A}:function:{fname}")),
        "{arn}"
    );
}

#[test]
fn confirm_needs_yes_without_a_terminal() {
    let aws = Double::start(Kind::Moto);
    let dir = tempdir();
    let name = aws.name("careful");
    project(
        dir.path(),
        &name,
        "memory = 128\n\n[package.metadata.fn.stages.prod]\nconfirm = true\n",
    );
    let v1 = zip(dir.path(), "v1.zip", "one");
    let zip = v1.to_str().unwrap();
    let env = client_env(aws.proxy.url());
    aws.proxy.reset_calls();
    let r = run(
        dir.path(),
        &env,
        &[
            "deploy", "--stage", "prod", "--zip", zip, "--output", "json",
        ],
    );
    assert!(!r.ok, "deployed without confirmation:\n{}", r.stdout);
    assert!(r.stderr.contains("--yes"), "{}", r.stderr);
    let calls = aws.proxy.calls();
    assert!(aws.proxy.writes().is_empty(), "{calls:?}");
    assert!(function(&aws, "123456789012", &format!("{name}-prod")).is_none());

    let out = ok(run(
        dir.path(),
        &env,
        &[
            "deploy", "--stage", "prod", "--zip", zip, "--output", "json", "--yes",
        ],
    ));
    assert_eq!(out["functions"][0]["version"], "1");
    // A dry run writes nothing and needs no confirmation.
    ok(run(
        dir.path(),
        &env,
        &[
            "deploy",
            "--stage",
            "prod",
            "--zip",
            zip,
            "--output",
            "json",
            "--dry-run",
        ],
    ));
}

const DEFAULT_ACCOUNT: &str = "123456789012";

#[test]
fn two_stages_in_one_account_keep_their_names_tags_and_code_apart() {
    let aws = Double::start(Kind::Moto);
    let dir = tempdir();
    let name = aws.name("orders");
    project(
        dir.path(),
        &name,
        "memory = 128\n\n[package.metadata.fn.stages.dev]\nmemory = 256\n\n[package.metadata.fn.stages.prod]\n",
    );
    let env = client_env(aws.proxy.url());
    let v1 = zip(dir.path(), "v1.zip", "one");
    let v2 = zip(dir.path(), "v2.zip", "two");
    let deploy = |stage: &str, zip: &Path| {
        ok(run(
            dir.path(),
            &env,
            &[
                "deploy",
                "--stage",
                stage,
                "--zip",
                zip.to_str().unwrap(),
                "--output",
                "json",
            ],
        ))
    };
    deploy("prod", &v1);
    let prod = format!("{name}-prod");
    let dev = format!("{name}-dev");
    let prod_before = function(&aws, DEFAULT_ACCOUNT, &prod).expect("prod");
    assert_eq!(
        prod_before["Tags"]["cargo-fn:stage"], "prod",
        "{prod_before}"
    );

    aws.proxy.reset_calls();
    deploy("dev", &v2);
    // Nothing named for prod was written by dev's deploy.
    let writes = aws.proxy.writes();
    assert!(
        writes.iter().all(|w| !w.contains(&prod)),
        "dev's deploy wrote to prod: {writes:?}"
    );
    let dev_fn = function(&aws, DEFAULT_ACCOUNT, &dev).expect("dev");
    assert_eq!(dev_fn["Tags"]["cargo-fn:stage"], "dev");
    assert_eq!(dev_fn["Configuration"]["MemorySize"], 256);
    let prod_after = function(&aws, DEFAULT_ACCOUNT, &prod).expect("prod");
    assert_eq!(
        prod_after["Configuration"]["CodeSha256"], prod_before["Configuration"]["CodeSha256"],
        "dev's deploy changed prod's code"
    );
    assert_eq!(
        prod_after["Configuration"]["RevisionId"],
        prod_before["Configuration"]["RevisionId"]
    );
    assert_eq!(prod_after["Configuration"]["MemorySize"], 128);
    assert_eq!(alias_version(&aws, DEFAULT_ACCOUNT, &prod), "1");
    // Each stage has its own role, tagged with its stage.
    for (stage, f) in [("prod", &prod), ("dev", &dev)] {
        let role = format!("cargo-fn-{f}");
        assert!(
            dev_fn["Configuration"]["Role"]
                .as_str()
                .unwrap()
                .ends_with("-dev")
        );
        let tags = role_tags(&aws, DEFAULT_ACCOUNT, &role).expect("role");
        assert!(
            tags.contains(&("cargo-fn:stage".to_string(), stage.to_string())),
            "{role}: {tags:?}"
        );
    }
}

#[test]
fn a_function_tagged_for_another_stage_is_refused_with_no_write() {
    let aws = Double::start(Kind::Moto);
    let dir = tempdir();
    let name = aws.name("shared");
    // One name for every stage: the stages collide, the tag tells.
    project(
        dir.path(),
        &name,
        &format!(
            "name = \"{name}\"\n\n[package.metadata.fn.stages.dev]\n\n[package.metadata.fn.stages.prod]\n"
        ),
    );
    let env = client_env(aws.proxy.url());
    let v1 = zip(dir.path(), "v1.zip", "one");
    let v2 = zip(dir.path(), "v2.zip", "two");
    let deploy = |stage: &str, zip: &Path| {
        run(
            dir.path(),
            &env,
            &[
                "deploy",
                "--stage",
                stage,
                "--zip",
                zip.to_str().unwrap(),
                "--output",
                "json",
            ],
        )
    };
    ok(deploy("prod", &v1));
    aws.proxy.reset_calls();
    let r = deploy("dev", &v2);
    assert!(!r.ok, "dev changed prod's function:\n{}", r.stdout);
    assert!(r.stderr.contains("stage `prod`"), "{}", r.stderr);
    let calls = aws.proxy.calls();
    assert!(aws.proxy.writes().is_empty(), "{calls:?}");
    let f = function(&aws, DEFAULT_ACCOUNT, &name).unwrap();
    assert_eq!(f["Tags"]["cargo-fn:stage"], "prod");
    assert_eq!(alias_version(&aws, DEFAULT_ACCOUNT, &name), "1");
}

#[test]
fn a_trigger_configured_for_one_stage_exists_only_there() {
    let aws = Double::start(Kind::Moto);
    let dir = tempdir();
    let name = aws.name("ticker");
    project(
        dir.path(),
        &name,
        "memory = 128\n\n[package.metadata.fn.stages.dev]\n\n[[package.metadata.fn.stages.prod.triggers]]\ntype = \"schedule\"\nname = \"tick\"\nexpression = \"rate(5 minutes)\"\n\n[[package.metadata.fn.stages.prod.triggers]]\ntype = \"http-api\"\nname = \"api\"\nroutes = [\"GET /items\"]\n",
    );
    let env = client_env(aws.proxy.url());
    let v1 = zip(dir.path(), "v1.zip", "one");
    for stage in ["prod", "dev"] {
        ok(run(
            dir.path(),
            &env,
            &[
                "deploy",
                "--stage",
                stage,
                "--zip",
                v1.to_str().unwrap(),
                "--output",
                "json",
            ],
        ));
    }
    let schedule = |f: &str| {
        let (status, _) = http_with(
            aws.port,
            "scheduler",
            "GET",
            &format!("/schedules/{f}.tick"),
            &[],
            b"",
        );
        status == 200
    };
    assert!(
        schedule(&format!("{name}-prod")),
        "prod's schedule is missing"
    );
    assert!(!schedule(&format!("{name}-dev")), "dev got prod's schedule");
    // The scheduler's role is prod's only, tagged for prod.
    let role = role_tags(
        &aws,
        DEFAULT_ACCOUNT,
        &format!("cargo-fn-{name}-prod-scheduler"),
    )
    .expect("prod's scheduler role");
    assert!(
        role.contains(&("cargo-fn:stage".into(), "prod".into())),
        "{role:?}"
    );
    assert!(
        role_tags(
            &aws,
            DEFAULT_ACCOUNT,
            &format!("cargo-fn-{name}-dev-scheduler")
        )
        .is_none()
    );
    // One HTTP API, prod's, tagged with its function and stage.
    let (status, body) = http_with(aws.port, "apigateway", "GET", "/v2/apis", &[], b"");
    assert_eq!(status, 200);
    let apis: Value = serde_json::from_slice(&body).unwrap();
    let items = apis["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{apis}");
    assert_eq!(items[0]["tags"]["cargo-fn:stage"], "prod", "{apis}");
    assert_eq!(
        items[0]["tags"]["cargo-fn:function"],
        format!("{name}-prod").as_str()
    );
}

#[test]
fn from_publishes_the_sources_code_sha256_in_one_account() {
    let aws = Double::start(Kind::Moto);
    let dir = tempdir();
    let name = aws.name("promoted");
    project(
        dir.path(),
        &name,
        "memory = 128\n\n[package.metadata.fn.stages.staging]\n\n[package.metadata.fn.stages.prod]\nmemory = 512\n",
    );
    let env = client_env(aws.proxy.url());
    let v1 = zip(dir.path(), "v1.zip", "one");
    let other = zip(dir.path(), "other.zip", "other");
    let staging_sha = deploy_staging(dir.path(), &env, &v1);

    // A local package with another hash is never shipped in its place.
    aws.proxy.reset_calls();
    let r = run(
        dir.path(),
        &env,
        &[
            "deploy",
            "--stage",
            "prod",
            "--from",
            "staging",
            "--zip",
            other.to_str().unwrap(),
            "--output",
            "json",
        ],
    );
    assert!(!r.ok, "shipped other code:\n{}", r.stdout);
    assert!(r.stderr.contains("cannot be had"), "{}", r.stderr);
    assert!(r.stderr.contains(&staging_sha), "{}", r.stderr);
    let calls = aws.proxy.calls();
    assert!(aws.proxy.writes().is_empty(), "{calls:?}");
    let prod = format!("{name}-prod");
    assert!(function(&aws, DEFAULT_ACCOUNT, &prod).is_none());

    let out = ok(run(
        dir.path(),
        &env,
        &[
            "deploy",
            "--stage",
            "prod",
            "--from",
            "staging",
            "--zip",
            v1.to_str().unwrap(),
            "--output",
            "json",
        ],
    ));
    let f = &out["functions"][0];
    assert_eq!(f["code_sha256"], staging_sha.as_str(), "{out}");
    assert_eq!(f["source"]["code_sha256"], staging_sha.as_str(), "{out}");
    assert_eq!(f["source"]["stage"], "staging");
    assert_eq!(f["source"]["function"], format!("{name}-staging"));
    let version = alias_version(&aws, DEFAULT_ACCOUNT, &prod);
    assert_eq!(
        version_sha(&aws, DEFAULT_ACCOUNT, &prod, &version),
        staging_sha
    );
    // With prod's configuration.
    let conf = function(&aws, DEFAULT_ACCOUNT, &prod).unwrap();
    assert_eq!(conf["Configuration"]["MemorySize"], 512);
}

/// LocalStack serves GetFunction's `Code.Location` (moto does not), so
/// here the code must come from it: prod is deployed from a fresh copy of
/// the project with no package and no target dir, and nothing is built.
#[test]
fn from_downloads_the_sources_code_from_its_code_location_localstack() {
    let aws = Double::start(Kind::LocalStack);
    let name = aws.name("downloaded");
    let metadata = "memory = 128\n\n[package.metadata.fn.stages.staging]\n\n[package.metadata.fn.stages.prod]\nmemory = 512\n";
    let env = aws.env();
    let built = tempdir();
    project(built.path(), &name, metadata);
    let v1 = zip(built.path(), "v1.zip", "one");
    let staging_sha = deploy_staging(built.path(), &env, &v1);
    drop(built);

    let fresh = tempdir();
    project(fresh.path(), &name, metadata);
    let r = run(
        fresh.path(),
        &env,
        &[
            "deploy", "--stage", "prod", "--from", "staging", "--output", "json",
        ],
    );
    assert!(
        !r.stderr.contains("Compiling") && !r.stderr.contains("Finished"),
        "it built:\n{}",
        r.stderr
    );
    let out = ok(r);
    assert!(
        !fresh.path().join("target").exists(),
        "a target dir was made"
    );
    let f = &out["functions"][0];
    assert_eq!(f["source"]["code_from"], "function code location", "{out}");
    assert_eq!(f["source"]["code_sha256"], staging_sha.as_str(), "{out}");
    assert_eq!(f["code_sha256"], staging_sha.as_str(), "{out}");
    assert_eq!(f["source"]["function"], format!("{name}-staging"));
    // Read back from LocalStack: prod's alias runs staging's code, with
    // prod's configuration.
    let prod = format!("{name}-prod");
    let live = aws.get_json(&format!("/2015-03-31/functions/{prod}/aliases/live"));
    let version = live["FunctionVersion"].as_str().unwrap();
    let conf = aws.get_json(&format!(
        "/2015-03-31/functions/{prod}/configuration?Qualifier={version}"
    ));
    assert_eq!(conf["CodeSha256"], staging_sha.as_str(), "{conf}");
    assert_eq!(conf["MemorySize"], 512);
    let staging = aws.get_json(&format!("/2015-03-31/functions/{name}-staging"));
    assert_eq!(
        staging["Configuration"]["CodeSha256"],
        staging_sha.as_str(),
        "{staging}"
    );
}

#[test]
fn from_copies_the_code_across_accounts() {
    let aws = Double::start(Kind::Moto);
    let (_, _, profiles) = two_accounts(&aws);
    let dir = tempdir();
    let name = aws.name("crossing");
    project(
        dir.path(),
        &name,
        &format!(
            "memory = 128\n\n[package.metadata.fn.stages.staging]\naccount = \"{ACCOUNT_A}\"\nprofile = \"acct-a\"\n\n[package.metadata.fn.stages.prod]\naccount = \"{ACCOUNT_B}\"\nprofile = \"acct-b\"\n"
        ),
    );
    let env = profiles.env(aws.proxy.url());
    let v1 = zip(dir.path(), "v1.zip", "one");
    let zip = v1.to_str().unwrap();
    let sha = deploy_staging(dir.path(), &env, &v1);
    let out = ok(run(
        dir.path(),
        &env,
        &[
            "deploy", "--stage", "prod", "--from", "staging", "--zip", zip, "--output", "json",
        ],
    ));
    let f = &out["functions"][0];
    assert!(
        f["function_arn"]
            .as_str()
            .unwrap()
            .contains(&format!(":{ACCOUNT_B}:function:{name}-prod")),
        "{out}"
    );
    assert_eq!(f["source"]["code_sha256"], sha.as_str());
    let prod = format!("{name}-prod");
    let version = alias_version(&aws, ACCOUNT_B, &prod);
    assert_eq!(version_sha(&aws, ACCOUNT_B, &prod, &version), sha);
    // Staging's account got nothing of prod's.
    assert!(function(&aws, ACCOUNT_A, &prod).is_none());
}

#[test]
fn promote_and_rollback_are_guarded_like_deploy() {
    let aws = Double::start(Kind::Moto);
    let (_, _, profiles) = two_accounts(&aws);
    let dir = tempdir();
    let name = aws.name("moved");
    let manifest = |profile: &str| {
        project(
            dir.path(),
            &name,
            &format!(
                "memory = 128\n\n[package.metadata.fn.stages.prod]\naccount = \"{ACCOUNT_A}\"\nprofile = \"{profile}\"\nconfirm = true\n"
            ),
        )
    };
    manifest("acct-a");
    let env = profiles.env(aws.proxy.url());
    let prod = format!("{name}-prod");
    for (i, content) in ["one", "two"].iter().enumerate() {
        let z = zip(dir.path(), &format!("v{i}.zip"), content);
        ok(run(
            dir.path(),
            &env,
            &[
                "deploy",
                "--stage",
                "prod",
                "--zip",
                z.to_str().unwrap(),
                "--output",
                "json",
                "--yes",
            ],
        ));
    }
    assert_eq!(alias_version(&aws, ACCOUNT_A, &prod), "2");

    // Without --yes and no terminal: refused, nothing written.
    aws.proxy.reset_calls();
    let r = run(dir.path(), &env, &["rollback", "--stage", "prod"]);
    assert!(!r.ok, "rolled back unconfirmed:\n{}", r.stdout);
    assert!(r.stderr.contains("--yes"), "{}", r.stderr);
    assert!(aws.proxy.writes().is_empty(), "{:?}", aws.proxy.calls());

    // The wrong account's credentials: refused naming both, nothing written.
    manifest("acct-b");
    let r = run(dir.path(), &env, &["rollback", "--stage", "prod", "--yes"]);
    assert!(!r.ok, "rolled back in the wrong account:\n{}", r.stdout);
    assert!(
        r.stderr.contains(ACCOUNT_A) && r.stderr.contains(ACCOUNT_B),
        "{}",
        r.stderr
    );
    let r = run(dir.path(), &env, &["promote", "--stage", "prod", "--yes"]);
    assert!(!r.ok, "promoted in the wrong account:\n{}", r.stdout);
    assert!(aws.proxy.writes().is_empty(), "{:?}", aws.proxy.calls());
    assert_eq!(alias_version(&aws, ACCOUNT_A, &prod), "2");

    // Confirmed, in the right account: the alias goes back.
    manifest("acct-a");
    ok(run(
        dir.path(),
        &env,
        &["rollback", "--stage", "prod", "--yes", "--output", "json"],
    ));
    assert_eq!(alias_version(&aws, ACCOUNT_A, &prod), "1");
}
