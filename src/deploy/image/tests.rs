//! Image deploys against the in-memory fake: repository and push steps,
//! digest-based change detection, Zip/Image switches refused, a failed
//! push never referenced, versions/aliases/canary as for zips.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{Value, json};

use super::*;
use crate::aws::fake::FakeAws;
use crate::config::check_repository_name;
use crate::deploy::tests::{cfg, opts, pkg as zip};
use crate::deploy::{DeployOptions, Outcome, deploy};
use crate::project::{FunctionTarget, Project};

/// An image package whose digest stands for `code`.
fn img(code: &str, keep: Option<u32>) -> Package {
    let digest = crate::image::sha256_digest(code.as_bytes());
    Package::image(ImagePackage {
        layout: PathBuf::from("/nonexistent/image"),
        digest,
        size: 1234,
        repository: "hello".into(),
        scan_on_push: true,
        keep,
        registry_url: None,
    })
}

async fn run(api: &FakeAws, p: &Package, o: &DeployOptions) -> Result<Outcome> {
    let (_, out) = deploy(api, &cfg(json!({})), p, o, false, &Ui::silent()).await?;
    Ok(out.expect("not a dry run"))
}

/// Calls that change something (or push), in order.
fn writes(api: &FakeAws) -> Vec<String> {
    api.calls()
        .into_iter()
        .filter(|c| !c.contains(":Get") && !c.contains(":List") && !c.contains(":Describe"))
        .filter(|c| c != "ecr:GetAuthorizationToken")
        .collect()
}

#[tokio::test]
async fn first_image_deploy_creates_repository_pushes_and_pins_the_digest() {
    let api = FakeAws::new();
    let p = img("v1", Some(5));
    let out = run(&api, &p, &opts()).await.unwrap();
    assert_eq!(
        writes(&api),
        [
            "iam:CreateRole",
            "iam:PutRolePolicy",
            "ecr:CreateRepository",
            "ecr:PutLifecyclePolicy",
            "registry:Push",
            "lambda:CreateFunction",
            "lambda:PublishVersion",
            "lambda:CreateAlias",
        ]
    );
    let calls = api.calls();
    let auth = calls.iter().position(|c| c == "ecr:GetAuthorizationToken");
    let push = calls.iter().position(|c| c == "registry:Push");
    assert!(auth < push, "{calls:?}");
    let (repo, policy) = api.repository("hello").unwrap();
    assert!(repo.scan_on_push);
    assert!(same_policy(&policy.unwrap(), &keep_newest_policy(5)));
    let digest = p.image.as_ref().unwrap().digest.clone();
    let uri = format!("123456789012.dkr.ecr.us-east-1.amazonaws.com/hello@{digest}");
    assert_eq!(out.image_uri.as_deref(), Some(uri.as_str()));
    assert_eq!(
        (out.version.as_str(), out.alias_version.as_str()),
        ("1", "1")
    );
    let latest = api.latest("hello").unwrap();
    assert!(latest.is_image());
    assert_eq!(latest.image_uri.as_deref(), Some(uri.as_str()));
    assert_eq!(latest.settings.runtime, "");
    assert!(latest.settings.layers.is_empty());
    assert_eq!(out.code_sha256, digest.trim_start_matches("sha256:"));
}

#[tokio::test]
async fn unchanged_image_makes_no_push_and_no_write() {
    let api = FakeAws::new();
    run(&api, &img("v1", Some(5)), &opts()).await.unwrap();
    api.clear_calls();
    let out = run(&api, &img("v1", Some(5)), &opts()).await.unwrap();
    assert!(!out.changed);
    assert_eq!(writes(&api), Vec::<String>::new());
    // Not even the repository is read: nothing is pushed.
    assert!(
        api.calls().iter().all(|c| !c.starts_with("ecr:")),
        "{:?}",
        api.calls()
    );
}

#[tokio::test]
async fn changed_image_is_pushed_then_updated_published_and_the_alias_moves() {
    let api = FakeAws::new();
    run(&api, &img("v1", None), &opts()).await.unwrap();
    api.clear_calls();
    let out = run(&api, &img("v2", None), &opts()).await.unwrap();
    assert_eq!(
        writes(&api),
        [
            "registry:Push",
            "lambda:UpdateFunctionCode",
            "lambda:PublishVersion",
            "lambda:UpdateAlias"
        ]
    );
    assert_eq!(
        (out.version.as_str(), out.alias_version.as_str()),
        ("2", "2")
    );
    assert_eq!(api.images().len(), 2);

    // Canary, promote and rollback are the zip ones.
    let canary = DeployOptions {
        canary: Some(0.1),
        ..opts()
    };
    let out = run(&api, &img("v3", None), &canary).await.unwrap();
    assert_eq!(out.alias_version, "2");
    assert_eq!(out.routing, BTreeMap::from([("3".to_string(), 0.1)]));
    let (a, _) = crate::deploy::promote(&api, "hello", "live", false)
        .await
        .unwrap();
    assert_eq!(a.version, "3");
    let (a, _) = crate::deploy::rollback(&api, "hello", "live", None, false)
        .await
        .unwrap();
    assert_eq!(a.version, "2");
}

#[tokio::test]
async fn failed_push_is_never_referenced_and_a_rerun_converges() {
    let api = FakeAws::new();
    run(&api, &img("v1", None), &opts()).await.unwrap();
    api.clear_calls();
    api.fail_next(
        "registry:Push",
        "Unauthorized",
        "refused the credentials (401)",
    );
    let err = run(&api, &img("v2", None), &opts()).await.unwrap_err();
    let text = format!("{err:#}");
    assert!(text.contains("refused the credentials"), "{text}");
    assert!(
        err.chain()
            .find_map(|e| e.downcast_ref::<crate::error::Hinted>())
            .is_some_and(|h| h.hint.contains("ecr:GetAuthorizationToken")),
        "{text}"
    );
    assert!(
        !api.calls()
            .iter()
            .any(|c| c.starts_with("lambda:Update") || c == "lambda:PublishVersion"),
        "{:?}",
        api.calls()
    );
    assert_eq!(api.alias("hello", "live").unwrap().version, "1");

    let out = run(&api, &img("v2", None), &opts()).await.unwrap();
    assert_eq!(out.alias_version, "2");
}

#[tokio::test]
async fn switching_between_zip_and_image_is_refused_before_any_write() {
    let api = FakeAws::new();
    run(&api, &zip("z1"), &opts()).await.unwrap();
    api.clear_calls();
    let err = run(&api, &img("v1", None), &opts()).await.unwrap_err();
    let text = format!("{err:#}");
    assert!(text.contains("PackageType Zip"), "{text}");
    assert_eq!(writes(&api), Vec::<String>::new());

    let api = FakeAws::new();
    run(&api, &img("v1", None), &opts()).await.unwrap();
    api.clear_calls();
    let err = run(&api, &zip("z1"), &opts()).await.unwrap_err();
    assert!(format!("{err:#}").contains("PackageType Image"), "{err:#}");
    assert_eq!(writes(&api), Vec::<String>::new());
}

#[tokio::test]
async fn layers_on_an_image_function_are_refused_before_any_call() {
    let api = FakeAws::new();
    let c = cfg(json!({"layers": ["arn:aws:lambda:us-east-1:123456789012:layer:x:1"]}));
    let err = deploy(&api, &c, &img("v1", None), &opts(), false, &Ui::silent())
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("cannot have layers"), "{err:#}");
    assert!(api.calls().is_empty());
}

#[tokio::test]
async fn dry_run_lists_repository_and_push_and_changes_nothing() {
    let api = FakeAws::new();
    let (plan, out) = deploy(
        &api,
        &cfg(json!({})),
        &img("v1", Some(3)),
        &opts(),
        true,
        &Ui::silent(),
    )
    .await
    .unwrap();
    assert!(out.is_none());
    let text = plan.render();
    assert!(
        text.contains("ecr:CreateRepository hello (scan on push on"),
        "{text}"
    );
    assert!(
        text.contains("ecr:PutLifecyclePolicy hello (keep the newest 3"),
        "{text}"
    );
    assert!(text.contains("registry push hello@sha256:"), "{text}");
    assert!(
        text.contains("lambda:CreateFunction hello (image hello@sha256:"),
        "{text}"
    );
    assert_eq!(writes(&api), Vec::<String>::new());
    assert!(api.repository("hello").is_none());
}

#[tokio::test]
async fn existing_repository_with_the_same_policy_is_left_alone() {
    let api = FakeAws::new();
    run(&api, &img("v1", Some(5)), &opts()).await.unwrap();
    api.clear_calls();
    run(&api, &img("v2", Some(5)), &opts()).await.unwrap();
    let w = writes(&api);
    assert!(!w.iter().any(|c| c.starts_with("ecr:")), "{w:?}");
    // A changed policy is put again on the next push.
    api.clear_calls();
    run(&api, &img("v3", Some(9)), &opts()).await.unwrap();
    assert!(writes(&api).contains(&"ecr:PutLifecyclePolicy".to_string()));
    let (_, policy) = api.repository("hello").unwrap();
    assert!(same_policy(&policy.unwrap(), &keep_newest_policy(9)));
}

#[test]
fn image_configuration_is_validated() {
    let c =
        cfg(json!({"package-type": "image", "image": {"repository": "team/hello", "keep": 10}}));
    assert!(c.image.enabled);
    assert_eq!(c.image.repository.as_deref(), Some("team/hello"));
    assert_eq!(c.image.keep, Some(10));
    assert!(c.image.scan_on_push);
    let bad = |meta: Value| {
        let project = Project {
            workspace_root: PathBuf::from("/ws"),
            workspace_manifest: PathBuf::from("/ws/Cargo.toml"),
            target_dir: PathBuf::from("/ws/target"),
            workspace_metadata: Value::Null,
            functions: vec![FunctionTarget {
                package: "pkg".into(),
                bin: "hello".into(),
                manifest_path: PathBuf::from("/ws/pkg/Cargo.toml"),
                package_metadata: json!({ "fn": meta }),
                src_path: PathBuf::from("/ws/pkg/src/main.rs"),
            }],
        };
        format!(
            "{:#}",
            crate::config::resolve_with_env(&project, &Default::default(), &BTreeMap::new())
                .unwrap_err()
        )
    };
    assert!(bad(json!({"package-type": "docker"})).contains("zip, image"));
    assert!(bad(json!({"image": {"repository": "Hello"}})).contains("image.repository"));
    assert!(bad(json!({"image": {"keep": 0}})).contains("1-1000"));
    assert!(bad(json!({"image": {"tag": "x"}})).contains("image"));
}

#[test]
fn repository_names() {
    assert!(check_repository_name("hello").is_ok());
    assert!(check_repository_name("team/hello-fn_2").is_ok());
    assert!(check_repository_name("Hello").is_err());
    assert!(check_repository_name("a").is_err());
    assert!(check_repository_name("-a").is_err());
    assert!(check_repository_name("a//b").is_err());
}

#[tokio::test]
async fn failed_image_update_publishes_nothing_and_leaves_the_alias() {
    let api = FakeAws::new();
    run(&api, &img("v1", None), &opts()).await.unwrap();
    api.fail_next_update();
    let err = run(&api, &img("v2", None), &opts()).await.unwrap_err();
    assert!(format!("{err:#}").contains("failed"), "{err:#}");
    assert_eq!(api.alias("hello", "live").unwrap().version, "1");
    assert_eq!(api.version_count("hello"), 1);
    // The re-run sends the image again and converges.
    let out = run(&api, &img("v2", None), &opts()).await.unwrap();
    assert_eq!(
        (out.version.as_str(), out.alias_version.as_str()),
        ("2", "2")
    );
}
