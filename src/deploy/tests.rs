//! The deploy logic against the in-memory fake: plans, guards, waits,
//! failures part-way, canary/promote/rollback, role, concurrency, URL.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{Value, json};

use super::*;
use crate::aws::fake::FakeAws;
use crate::aws::{ApiError, IamApi, LambdaApi};
use crate::project::{FunctionTarget, Project};

/// A function configuration resolved by the real config model from
/// `[package.metadata.fn]` = `meta`.
pub(crate) fn cfg(meta: Value) -> FunctionConfig {
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
    crate::config::resolve_with_env(&project, &Default::default(), &BTreeMap::new())
        .expect("valid config")
        .remove(0)
}

pub(crate) fn pkg(code: &str) -> Package {
    let bytes = code.as_bytes().to_vec();
    Package {
        path: PathBuf::from("bootstrap.zip"),
        sha256: crate::aws::fake::sha256_b64(&bytes),
        bytes,
        image: None,
    }
}

pub(crate) fn opts() -> DeployOptions {
    DeployOptions {
        alias: "live".into(),
        canary: None,
        env_mode: EnvMode::Replace,
        tag_mode: EnvMode::Replace,
        description: "cargo-fn: commit abc".into(),
        s3: None,
        hold_alias: false,
        stage: None,
    }
}

async fn run(api: &FakeAws, c: &FunctionConfig, p: &Package, o: &DeployOptions) -> Result<Outcome> {
    let (_, out) = deploy(api, c, p, o, false, &Ui::silent()).await?;
    Ok(out.expect("not a dry run"))
}

fn writes(api: &FakeAws) -> Vec<String> {
    api.calls()
        .into_iter()
        .filter(|c| {
            !c.contains(":Get") && !c.contains(":List") // reads
        })
        .collect()
}

#[tokio::test]
async fn first_deploy_creates_role_function_version_and_alias() {
    let api = FakeAws::new();
    let out = run(&api, &cfg(json!({})), &pkg("v1"), &opts())
        .await
        .unwrap();
    assert_eq!(out.version, "1");
    assert_eq!(out.alias_version, "1");
    assert!(out.changed);
    assert_eq!(
        writes(&api),
        [
            "iam:CreateRole",
            "iam:PutRolePolicy",
            "lambda:CreateFunction",
            "lambda:PublishVersion",
            "lambda:CreateAlias"
        ]
    );
    let latest = api.latest("hello").unwrap();
    assert!(latest.settings.role.ends_with(":role/cargo-fn-hello"));
    assert_eq!(latest.tags["managed-by"], "cargo-fn");
    // Least privilege: this function's logs only, no X-Ray, no VPC.
    let policy = api.role_policy("cargo-fn-hello", ROLE_POLICY_NAME).unwrap();
    assert!(policy.contains("/aws/lambda/hello"));
    assert!(!policy.contains("xray") && !policy.contains("ec2:"));
}

#[tokio::test]
async fn unchanged_redeploy_only_reads_at_most_three_times() {
    let api = FakeAws::new();
    let c = cfg(json!({"memory": 256, "env": {"AA": "1"}}));
    run(&api, &c, &pkg("v1"), &opts()).await.unwrap();
    api.clear_calls();
    let (plan, out) = deploy(&api, &c, &pkg("v1"), &opts(), false, &Ui::silent())
        .await
        .unwrap();
    assert!(plan.is_noop(), "{}", plan.render());
    let out = out.unwrap();
    assert!(!out.changed);
    assert_eq!(out.version, "1");
    let calls = api.calls();
    assert!(writes(&api).is_empty(), "{calls:?}");
    assert!(calls.len() <= 3, "{calls:?}");
    assert_eq!(api.version_count("hello"), 1);
}

#[tokio::test]
async fn code_change_publishes_version_2_and_moves_the_alias() {
    let api = FakeAws::new();
    let c = cfg(json!({}));
    run(&api, &c, &pkg("v1"), &opts()).await.unwrap();
    api.clear_calls();
    let out = run(&api, &c, &pkg("v2"), &opts()).await.unwrap();
    assert_eq!(
        (out.version.as_str(), out.alias_version.as_str()),
        ("2", "2")
    );
    assert_eq!(
        writes(&api),
        [
            "lambda:UpdateFunctionCode",
            "lambda:PublishVersion",
            "lambda:UpdateAlias"
        ]
    );
}

#[tokio::test]
async fn waits_between_code_and_configuration_updates() {
    // The fake leaves every update InProgress and answers the next change
    // with ResourceConflictException, like Lambda: only waiting passes.
    let api = FakeAws::new();
    run(&api, &cfg(json!({})), &pkg("v1"), &opts())
        .await
        .unwrap();
    api.clear_calls();
    let out = run(&api, &cfg(json!({"memory": 512})), &pkg("v2"), &opts())
        .await
        .unwrap();
    assert_eq!(out.version, "2");
    let calls = api.calls();
    let code = calls
        .iter()
        .position(|c| c == "lambda:UpdateFunctionCode")
        .unwrap();
    assert_eq!(calls[code + 1], "lambda:GetFunction", "{calls:?}");
    assert_eq!(calls[code + 2], "lambda:UpdateFunctionConfiguration");
    assert_eq!(calls[code + 3], "lambda:GetFunction", "{calls:?}");
}

#[tokio::test]
async fn configuration_diff_is_field_by_field_and_redacts_secrets() {
    let api = FakeAws::new();
    let o = opts();
    let c1 = cfg(json!({"env": {"API_TOKEN": "s3cr3t-one", "MODE": "a"}}));
    run(&api, &c1, &pkg("v1"), &o).await.unwrap();
    let c2 = cfg(json!({
        "memory": 1024, "timeout": 30, "ephemeral-storage": 1024,
        "tracing": "Active", "log-format": "JSON", "log-level": "DEBUG",
        "log-group": "/custom/hello",
        "env": {"API_TOKEN": "s3cr3t-two", "MODE": "b"},
    }));
    let p = plan(&api, &c2, &pkg("v1"), &o).await.unwrap();
    let diff = p.config_changes();
    let fields: Vec<&str> = diff.iter().map(|c| c.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "memory",
            "timeout",
            "ephemeral-storage",
            "tracing",
            "log-format",
            "log-level",
            "log-group",
            "env.API_TOKEN",
            "env.MODE"
        ]
    );
    assert!(!p.code_changed());
    let text = p.render();
    assert!(!text.contains("s3cr3t"), "{text}");
    assert!(text.contains("env.MODE: \"a\" -> \"b\""), "{text}");
    assert!(text.contains("memory: 128 MB -> 1024 MB"), "{text}");
    assert!(
        text.contains("log-group: (default) -> /custom/hello"),
        "{text}"
    );
    // Tracing turned Active: the managed role gains X-Ray, nothing else.
    assert!(
        p.calls()[0].starts_with("iam:PutRolePolicy"),
        "{:?}",
        p.calls()
    );
    run(&api, &c2, &pkg("v1"), &o).await.unwrap();
    let s = api.latest("hello").unwrap().settings;
    assert_eq!((s.memory, s.timeout, s.ephemeral_storage), (1024, 30, 1024));
    assert_eq!(
        (s.tracing.as_str(), s.log_format.as_str()),
        ("Active", "JSON")
    );
    let policy = api.role_policy("cargo-fn-hello", ROLE_POLICY_NAME).unwrap();
    assert!(policy.contains("xray:PutTraceSegments"));
    assert!(policy.contains("log-group:/custom/hello:*"), "{policy}");
    assert!(!policy.contains("ec2:"));
    assert_eq!(s.log_group.as_deref(), Some("/custom/hello"));
}

#[tokio::test]
async fn env_merge_keeps_remote_variables_replace_drops_them() {
    let api = FakeAws::new();
    run(
        &api,
        &cfg(json!({"env": {"AA": "1", "BB": "2"}})),
        &pkg("v1"),
        &opts(),
    )
    .await
    .unwrap();
    let only_a = cfg(json!({"env": {"AA": "1"}}));
    let merge = DeployOptions {
        env_mode: EnvMode::Merge,
        ..opts()
    };
    assert!(
        plan(&api, &only_a, &pkg("v1"), &merge)
            .await
            .unwrap()
            .is_noop()
    );
    let p = plan(&api, &only_a, &pkg("v1"), &opts()).await.unwrap();
    let diff = p.config_changes();
    assert_eq!(diff.len(), 1);
    assert_eq!(diff[0].field, "env.BB");
    assert_eq!(diff[0].new, "(unset)");
}

#[tokio::test]
async fn canary_then_promote_then_rollback() {
    let api = FakeAws::new();
    let c = cfg(json!({}));
    run(&api, &c, &pkg("v1"), &opts()).await.unwrap();
    let canary = DeployOptions {
        canary: Some(0.1),
        ..opts()
    };
    let out = run(&api, &c, &pkg("v2"), &canary).await.unwrap();
    assert_eq!(out.version, "2");
    assert_eq!(out.alias_version, "1");
    assert_eq!(out.routing, BTreeMap::from([("2".to_string(), 0.1)]));
    // Re-running the same canary changes nothing.
    api.clear_calls();
    let again = run(&api, &c, &pkg("v2"), &canary).await.unwrap();
    assert!(!again.changed, "{:?}", api.calls());

    let (a, _) = promote(&api, "hello", "live", false).await.unwrap();
    assert_eq!((a.version.as_str(), a.weights.len()), ("2", 0));
    let err = promote(&api, "hello", "live", false).await.unwrap_err();
    assert!(format!("{err:#}").contains("no canary"));

    let (a, line) = rollback(&api, "hello", "live", None, false).await.unwrap();
    assert_eq!(a.version, "1");
    assert!(line.contains("cargo-fn: commit abc"), "{line}");
    let err = rollback(&api, "hello", "live", None, false)
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("no earlier published version"));
    let (a, _) = rollback(&api, "hello", "live", Some("2"), false)
        .await
        .unwrap();
    assert_eq!(a.version, "2");
    assert!(
        rollback(&api, "hello", "live", Some("9"), false)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn rollback_of_a_canary_drops_the_routing() {
    let api = FakeAws::new();
    let c = cfg(json!({}));
    run(&api, &c, &pkg("v1"), &opts()).await.unwrap();
    let canary = DeployOptions {
        canary: Some(0.25),
        ..opts()
    };
    run(&api, &c, &pkg("v2"), &canary).await.unwrap();
    let (a, _) = rollback(&api, "hello", "live", None, false).await.unwrap();
    assert_eq!(a.version, "1");
    assert!(a.weights.is_empty());
}

#[tokio::test]
async fn concurrent_change_is_refused_by_revision_guard_and_rerun_converges() {
    let api = FakeAws::new();
    let c = cfg(json!({}));
    run(&api, &c, &pkg("v1"), &opts()).await.unwrap();
    let new = cfg(json!({"memory": 512}));
    let p = plan(&api, &new, &pkg("v1"), &opts()).await.unwrap();
    // Someone else uploads other code between our plan and our update.
    api.external_change("hello", Some(b"someone else's code"));
    let err = execute(&api, &p, &pkg("v1"), &opts(), &Ui::silent())
        .await
        .unwrap_err();
    let api_err = err.downcast_ref::<ApiError>().expect("an ApiError");
    assert_eq!(api_err.code, "PreconditionFailedException");
    assert_eq!(api_err.operation, "lambda:UpdateFunctionConfiguration");
    assert_eq!(api.version_count("hello"), 1, "nothing published");
    assert_eq!(api.alias("hello", "live").unwrap().version, "1");
    // The re-run plans afresh: re-uploads our code, publishes, moves.
    let out = run(&api, &new, &pkg("v1"), &opts()).await.unwrap();
    assert_eq!(out.alias_version, "2");
    assert_eq!(api.latest("hello").unwrap().code_sha256, pkg("v1").sha256);
}

#[tokio::test]
async fn publish_is_guarded_by_code_sha256() {
    let api = FakeAws::new();
    let c = cfg(json!({}));
    run(&api, &c, &pkg("v1"), &opts()).await.unwrap();
    // The plan expects v1 on $LATEST but publishes the v2 package's hash:
    // Lambda refuses, so code we did not upload is never published.
    let p = plan(&api, &c, &pkg("v2"), &opts()).await.unwrap();
    let mut p_no_upload = p.clone();
    p_no_upload
        .changes
        .retain(|c| !matches!(c, Change::Code(_)));
    let err = execute(&api, &p_no_upload, &pkg("v2"), &opts(), &Ui::silent())
        .await
        .unwrap_err();
    let e = err.downcast_ref::<ApiError>().unwrap();
    assert_eq!(
        (e.operation.as_str(), e.code.as_str()),
        ("lambda:PublishVersion", "PreconditionFailedException")
    );
    assert_eq!(api.alias("hello", "live").unwrap().version, "1");
}

#[tokio::test]
async fn alias_moves_only_after_a_successful_update_and_publish() {
    let api = FakeAws::new();
    let c = cfg(json!({}));
    run(&api, &c, &pkg("v1"), &opts()).await.unwrap();
    // The update itself fails (LastUpdateStatus=Failed).
    api.fail_next_update();
    let err = run(&api, &c, &pkg("v2"), &opts()).await.unwrap_err();
    assert!(format!("{err:#}").contains("failed"), "{err:#}");
    assert_eq!(api.version_count("hello"), 1);
    assert_eq!(api.alias("hello", "live").unwrap().version, "1");
    // Publishing fails after retries.
    api.fail_next("lambda:PublishVersion", "ServiceException", "boom");
    assert!(run(&api, &c, &pkg("v2"), &opts()).await.is_err());
    assert_eq!(api.alias("hello", "live").unwrap().version, "1");
    // The alias move itself fails: the new version exists, the alias stays.
    api.fail_next(
        "lambda:UpdateAlias",
        "TooManyRequestsException",
        "Rate exceeded",
    );
    assert!(run(&api, &c, &pkg("v2"), &opts()).await.is_err());
    assert_eq!(api.alias("hello", "live").unwrap().version, "1");
    // And a re-run converges.
    let out = run(&api, &c, &pkg("v2"), &opts()).await.unwrap();
    assert_eq!(out.alias_version, "2");
    assert_eq!(api.version_count("hello"), 2);
}

#[tokio::test]
async fn alias_conflict_on_create_is_resolved_with_a_guarded_update() {
    let api = FakeAws::new();
    let c = cfg(json!({}));
    api.fail_next("lambda:CreateAlias", "ResourceConflictException", "exists");
    // The fake refuses the create but has no alias: the fallback read fails
    // with the original conflict, reported with its operation.
    let err = run(&api, &c, &pkg("v1"), &opts()).await.unwrap_err();
    let e = err.downcast_ref::<ApiError>().unwrap();
    assert_eq!(e.operation, "lambda:CreateAlias");
    // Re-run converges.
    let out = run(&api, &c, &pkg("v1"), &opts()).await.unwrap();
    assert_eq!(out.alias_version, "1");
}

#[tokio::test]
async fn dry_run_reads_only() {
    let api = FakeAws::new();
    let (p, out) = deploy(
        &api,
        &cfg(json!({})),
        &pkg("v1"),
        &opts(),
        true,
        &Ui::silent(),
    )
    .await
    .unwrap();
    assert!(out.is_none());
    assert!(writes(&api).is_empty(), "{:?}", api.calls());
    assert!(
        p.calls()
            .iter()
            .any(|c| c.starts_with("lambda:CreateFunction"))
    );
    assert!(p.calls().iter().any(|c| c.starts_with("iam:CreateRole")));
}

#[tokio::test]
async fn configured_role_is_used_and_no_iam_call_made() {
    let api = FakeAws::new();
    let c = cfg(json!({"role": "arn:aws:iam::123456789012:role/mine"}));
    run(&api, &c, &pkg("v1"), &opts()).await.unwrap();
    assert!(api.calls().iter().all(|c| !c.starts_with("iam:")));
    assert_eq!(
        api.latest("hello").unwrap().settings.role,
        "arn:aws:iam::123456789012:role/mine"
    );
}

#[tokio::test]
async fn a_foreign_role_with_our_name_is_not_taken_over() {
    let api = FakeAws::new();
    api.create_role("cargo-fn-hello", TRUST_POLICY, "", &BTreeMap::new())
        .await
        .unwrap();
    let err = plan(&api, &cfg(json!({})), &pkg("v1"), &opts())
        .await
        .unwrap_err();
    assert!(format!("{err}").contains("not created by cargo-fn"));
}

#[tokio::test]
async fn vpc_role_gets_eni_permissions_only_with_a_vpc() {
    let api = FakeAws::new();
    let c = cfg(json!({"vpc": {"subnets": ["subnet-1"], "security-groups": ["sg-1"]}}));
    run(&api, &c, &pkg("v1"), &opts()).await.unwrap();
    let policy = api.role_policy("cargo-fn-hello", ROLE_POLICY_NAME).unwrap();
    assert!(policy.contains("ec2:CreateNetworkInterface"));
    assert!(!policy.contains("xray"));
}

#[tokio::test]
async fn reserved_and_provisioned_concurrency() {
    let api = FakeAws::new();
    let c = cfg(json!({"reserved-concurrency": 10, "provisioned-concurrency": {"live": 2}}));
    run(&api, &c, &pkg("v1"), &opts()).await.unwrap();
    assert_eq!(api.latest("hello").unwrap().reserved_concurrency, Some(10));
    assert_eq!(api.provisioned("hello", "live"), Some(2));
    api.clear_calls();
    run(&api, &c, &pkg("v1"), &opts()).await.unwrap();
    assert!(writes(&api).is_empty(), "{:?}", api.calls());
    // Removing the reservation deletes it.
    let c2 = cfg(json!({"provisioned-concurrency": {"live": 3}}));
    run(&api, &c2, &pkg("v1"), &opts()).await.unwrap();
    assert_eq!(api.latest("hello").unwrap().reserved_concurrency, None);
    assert_eq!(api.provisioned("hello", "live"), Some(3));
}

#[tokio::test]
async fn function_url_with_public_permission() {
    let api = FakeAws::new();
    let c = cfg(json!({"function-url": {"auth": "NONE"}}));
    let out = run(&api, &c, &pkg("v1"), &opts()).await.unwrap();
    let url = api.url("hello", "live").unwrap();
    assert_eq!(out.url.as_deref(), Some(url.url.as_str()));
    let sids: Vec<String> = api
        .statements("hello", "live")
        .into_iter()
        .map(|s| s.sid)
        .collect();
    assert_eq!(sids, [url::PUBLIC_URL_SID, url::INVOKE_VIA_URL_SID]);
    assert_eq!(url.settings.auth, "NONE");
    api.clear_calls();
    run(&api, &c, &pkg("v1"), &opts()).await.unwrap();
    assert!(writes(&api).is_empty(), "{:?}", api.calls());
}

#[tokio::test]
async fn tags_include_managed_by_and_are_added_on_update() {
    let api = FakeAws::new();
    run(&api, &cfg(json!({})), &pkg("v1"), &opts())
        .await
        .unwrap();
    run(
        &api,
        &cfg(json!({"tags": {"team": "core"}})),
        &pkg("v1"),
        &opts(),
    )
    .await
    .unwrap();
    let t = api.latest("hello").unwrap().tags;
    assert_eq!(t["team"], "core");
    assert_eq!(t["managed-by"], "cargo-fn");
}

#[test]
fn managed_role_names_fit_iam_limit() {
    assert_eq!(managed_role_name("hello"), "cargo-fn-hello");
    let long = "f".repeat(64);
    let n = managed_role_name(&long);
    assert!(n.len() <= 64, "{n}");
    assert_ne!(n, managed_role_name(&"g".repeat(64)));
}

#[tokio::test]
async fn an_update_in_progress_is_waited_for_then_retried_once() {
    let api = FakeAws::new();
    let c = cfg(json!({}));
    run(&api, &c, &pkg("v1"), &opts()).await.unwrap();
    // Someone's update is still running: the first write gets a conflict.
    api.set_in_progress("hello");
    api.clear_calls();
    let out = run(&api, &c, &pkg("v2"), &opts()).await.unwrap();
    assert_eq!(out.alias_version, "2");
    let calls = api.calls();
    let first = calls
        .iter()
        .position(|c| c == "lambda:UpdateFunctionCode")
        .unwrap();
    assert_eq!(calls[first + 1], "lambda:GetFunction", "{calls:?}");
    assert_eq!(calls[first + 2], "lambda:UpdateFunctionCode", "{calls:?}");
    // A second conflict in a row reaches the user, with the operation.
    api.fail_next("lambda:PublishVersion", "ResourceConflictException", "busy");
    api.fail_next("lambda:PublishVersion", "ResourceConflictException", "busy");
    let err = run(&api, &c, &pkg("v3"), &opts()).await.unwrap_err();
    let e = err.downcast_ref::<ApiError>().unwrap();
    assert_eq!(
        (e.operation.as_str(), e.code.as_str()),
        ("lambda:PublishVersion", "ResourceConflictException")
    );
    assert!(e.hint().contains("re-run"));
    assert_eq!(api.alias("hello", "live").unwrap().version, "2");
}

#[test]
fn access_denied_names_the_missing_iam_action() {
    let e = ApiError::new(
        "lambda:PublishVersion",
        "AccessDeniedException",
        "User: arn:aws:iam::1:user/x is not authorized",
    );
    assert!(e.hint().contains("`lambda:PublishVersion`"), "{}", e.hint());
    assert!(
        e.to_string()
            .starts_with("lambda:PublishVersion failed with AccessDeniedException")
    );
}

#[tokio::test]
async fn zips_through_s3_and_stale_objects_are_cleaned() {
    let api = FakeAws::new();
    let c = cfg(json!({}));
    let o = DeployOptions {
        s3: Some(S3Target {
            bucket: "artifacts".into(),
            key: None,
            keep: 2,
        }),
        ..opts()
    };
    for (i, code) in ["v1", "v2", "v3", "v4"].iter().enumerate() {
        let out = run(&api, &c, &pkg(code), &o).await.unwrap();
        assert_eq!(out.version, (i + 1).to_string());
        assert_eq!(api.latest("hello").unwrap().code_sha256, pkg(code).sha256);
    }
    let keys = api.object_keys("artifacts");
    assert_eq!(keys.len(), 2, "{keys:?}");
    let newest = S3Target {
        bucket: "artifacts".into(),
        key: None,
        keep: 2,
    }
    .key_for("hello", &pkg("v4").sha256);
    assert!(keys.contains(&newest), "{keys:?}");
    assert!(keys.iter().all(|k| k.starts_with("cargo-fn/hello/")));
    // No change: no upload, no S3 call at all.
    api.clear_calls();
    run(&api, &c, &pkg("v4"), &o).await.unwrap();
    assert!(
        api.calls().iter().all(|c| !c.starts_with("s3:")),
        "{:?}",
        api.calls()
    );
}

#[tokio::test]
async fn tags_removed_from_config_are_untagged_unless_merging() {
    let api = FakeAws::new();
    run(
        &api,
        &cfg(json!({"tags": {"team": "a", "cost": "b"}})),
        &pkg("v1"),
        &opts(),
    )
    .await
    .unwrap();
    let only_team = cfg(json!({"tags": {"team": "a"}}));
    let merge = DeployOptions {
        tag_mode: EnvMode::Merge,
        ..opts()
    };
    assert!(
        plan(&api, &only_team, &pkg("v1"), &merge)
            .await
            .unwrap()
            .is_noop(),
        "merge keeps the remote tag"
    );
    let p = plan(&api, &only_team, &pkg("v1"), &opts()).await.unwrap();
    assert_eq!(p.untag(), vec!["cost".to_string()]);
    assert!(!p.publishes(), "a tag change publishes no version");
    run(&api, &only_team, &pkg("v1"), &opts()).await.unwrap();
    let tags = api.latest("hello").unwrap().tags;
    assert!(!tags.contains_key("cost"), "{tags:?}");
    assert_eq!(tags.get("team").map(String::as_str), Some("a"));
    assert_eq!(
        tags.get(MANAGED_BY_KEY).map(String::as_str),
        Some(MANAGED_BY_VALUE),
        "the managed-by tag is never removed"
    );
    assert!(
        plan(&api, &only_team, &pkg("v1"), &opts())
            .await
            .unwrap()
            .is_noop()
    );
}

fn sids(api: &FakeAws) -> Vec<String> {
    api.statements("hello", "live")
        .into_iter()
        .map(|s| s.sid)
        .collect()
}

fn public_url() -> FunctionConfig {
    cfg(json!({"function-url": {"auth": "NONE"}}))
}

#[tokio::test]
async fn public_url_gets_both_statements_with_their_conditions() {
    let api = FakeAws::new();
    run(&api, &public_url(), &pkg("v1"), &opts()).await.unwrap();
    let policy: Value =
        serde_json::from_str(&api.get_policy("hello", "live").await.unwrap().unwrap()).unwrap();
    let statements = policy["Statement"].as_array().unwrap();
    let by_sid = |sid: &str| statements.iter().find(|s| s["Sid"] == sid).unwrap().clone();
    let url_stmt = by_sid(url::PUBLIC_URL_SID);
    assert_eq!(url_stmt["Action"], "lambda:InvokeFunctionUrl");
    assert_eq!(url_stmt["Principal"], "*");
    assert_eq!(
        url_stmt["Condition"]["StringEquals"]["lambda:FunctionUrlAuthType"],
        "NONE"
    );
    let invoke = by_sid(url::INVOKE_VIA_URL_SID);
    assert_eq!(invoke["Action"], "lambda:InvokeFunction");
    assert_eq!(
        invoke["Condition"]["Bool"]["lambda:InvokedViaFunctionUrl"],
        "true"
    );
    assert_eq!(statements.len(), 2);
}

#[tokio::test]
async fn a_url_from_an_older_cargo_fn_gains_the_missing_statement_once() {
    let api = FakeAws::new();
    run(&api, &public_url(), &pkg("v1"), &opts()).await.unwrap();
    // What an older cargo-fn left: the URL statement only, no URL record.
    api.remove_permission("hello", "live", url::INVOKE_VIA_URL_SID)
        .await
        .unwrap();
    let arn = api.latest("hello").unwrap().arn;
    api.untag(&arn, &[url::record_tag("live")]).await.unwrap();
    api.clear_calls();
    run(&api, &public_url(), &pkg("v1"), &opts()).await.unwrap();
    assert_eq!(writes(&api), ["lambda:AddPermission", "lambda:TagResource"]);
    assert_eq!(sids(&api), [url::PUBLIC_URL_SID, url::INVOKE_VIA_URL_SID]);
    api.clear_calls();
    run(&api, &public_url(), &pkg("v1"), &opts()).await.unwrap();
    assert!(writes(&api).is_empty(), "{:?}", api.calls());
}

#[tokio::test]
async fn url_leaving_the_configuration_takes_both_statements_and_the_url() {
    let api = FakeAws::new();
    run(&api, &public_url(), &pkg("v1"), &opts()).await.unwrap();
    let p = plan(&api, &cfg(json!({})), &pkg("v1"), &opts())
        .await
        .unwrap();
    let text = p.render();
    assert!(
        text.contains("lambda:RemovePermission hello:live cargo-fn-function-url-public"),
        "{text}"
    );
    assert!(
        text.contains("lambda:DeleteFunctionUrlConfig hello:live"),
        "{text}"
    );
    api.clear_calls();
    run(&api, &cfg(json!({})), &pkg("v1"), &opts())
        .await
        .unwrap();
    assert_eq!(
        writes(&api),
        [
            "lambda:RemovePermission",
            "lambda:RemovePermission",
            "lambda:DeleteFunctionUrlConfig",
            "lambda:UntagResource"
        ]
    );
    assert!(api.url("hello", "live").is_none());
    assert!(sids(&api).is_empty());
    // Nothing recorded any more: no URL read on the next deploy.
    api.clear_calls();
    run(&api, &cfg(json!({})), &pkg("v1"), &opts())
        .await
        .unwrap();
    assert!(api.calls().len() <= 3, "{:?}", api.calls());
}

#[tokio::test]
async fn a_url_turning_iam_loses_the_public_statements_before_it_changes() {
    let api = FakeAws::new();
    run(&api, &public_url(), &pkg("v1"), &opts()).await.unwrap();
    api.clear_calls();
    let iam = cfg(json!({"function-url": {"auth": "AWS_IAM"}}));
    run(&api, &iam, &pkg("v1"), &opts()).await.unwrap();
    assert_eq!(
        writes(&api),
        [
            "lambda:RemovePermission",
            "lambda:RemovePermission",
            "lambda:UpdateFunctionUrlConfig",
            "lambda:TagResource"
        ]
    );
    assert!(sids(&api).is_empty());
    assert_eq!(api.url("hello", "live").unwrap().settings.auth, "AWS_IAM");
}

#[tokio::test]
async fn removing_the_url_of_one_alias_leaves_the_other_aliases_alone() {
    let api = FakeAws::new();
    run(&api, &public_url(), &pkg("v1"), &opts()).await.unwrap();
    // Deploying alias `staging` without a URL touches nothing of `live`.
    let staging = DeployOptions {
        alias: "staging".into(),
        ..opts()
    };
    run(&api, &public_url(), &pkg("v1"), &staging)
        .await
        .unwrap();
    run(&api, &cfg(json!({})), &pkg("v1"), &staging)
        .await
        .unwrap();
    assert!(api.url("hello", "live").is_some());
    assert_eq!(sids(&api).len(), 2);
    assert!(api.url("hello", "staging").is_none());
    assert!(api.statements("hello", "staging").is_empty());
    let tags = api.latest("hello").unwrap().tags;
    assert!(tags.contains_key(&url::record_tag("live")), "{tags:?}");
}

#[tokio::test]
async fn dry_run_shows_both_url_statements() {
    let api = FakeAws::new();
    let (p, _) = deploy(
        &api,
        &public_url(),
        &pkg("v1"),
        &opts(),
        true,
        &Ui::silent(),
    )
    .await
    .unwrap();
    let text = p.render();
    assert!(
        text.contains(r#"lambda:AddPermission hello:live lambda:InvokeFunctionUrl for * if {"StringEquals":{"lambda:FunctionUrlAuthType":"NONE"}}"#),
        "{text}"
    );
    assert!(
        text.contains(r#"lambda:AddPermission hello:live lambda:InvokeFunction for * if {"Bool":{"lambda:InvokedViaFunctionUrl":"true"}}"#),
        "{text}"
    );
}

fn with_secrets(secrets: Value) -> FunctionConfig {
    cfg(json!({ "secrets": secrets }))
}

fn granted_secrets(api: &FakeAws) -> Vec<String> {
    let doc: Value =
        serde_json::from_str(&api.role_policy("cargo-fn-hello", ROLE_POLICY_NAME).unwrap())
            .unwrap();
    doc["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["Action"] == "secretsmanager:GetSecretValue")
        .flat_map(|s| s["Resource"].as_array().unwrap().clone())
        .map(|r| r.as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn created_role_grants_exactly_the_configured_secrets() {
    let api = FakeAws::new();
    let arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:api-key-AbCdEf";
    let c = with_secrets(json!({"DB_SECRET": "prod/db", "API_KEY": arn}));
    run(&api, &c, &pkg("v1"), &opts()).await.unwrap();
    assert_eq!(
        granted_secrets(&api),
        [
            arn,
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-??????"
        ]
    );
    // Names travel in the environment, never values.
    assert_eq!(
        api.latest("hello").unwrap().settings.env["DB_SECRET"],
        "prod/db"
    );
    // No change: no IAM call at all (the policy record is a tag).
    api.clear_calls();
    run(&api, &c, &pkg("v1"), &opts()).await.unwrap();
    assert!(
        api.calls().iter().all(|c| !c.starts_with("iam:")),
        "{:?}",
        api.calls()
    );
    // A secret leaves the configuration: it leaves the policy.
    let p = plan(
        &api,
        &with_secrets(json!({"API_KEY": arn})),
        &pkg("v1"),
        &opts(),
    )
    .await
    .unwrap();
    assert!(p.calls()[0].starts_with("iam:PutRolePolicy cargo-fn-hello cargo-fn-execution (logs, secretsmanager:GetSecretValue on arn:"), "{:?}", p.calls());
    run(
        &api,
        &with_secrets(json!({"API_KEY": arn})),
        &pkg("v1"),
        &opts(),
    )
    .await
    .unwrap();
    assert_eq!(granted_secrets(&api), [arn]);
    run(&api, &cfg(json!({})), &pkg("v1"), &opts())
        .await
        .unwrap();
    assert!(granted_secrets(&api).is_empty());
    let doc = api.role_policy("cargo-fn-hello", ROLE_POLICY_NAME).unwrap();
    assert!(!doc.contains("secretsmanager"), "{doc}");
}

#[tokio::test]
async fn a_function_from_an_older_cargo_fn_gets_its_policy_put_once() {
    let api = FakeAws::new();
    let c = with_secrets(json!({"DB_SECRET": "prod/db"}));
    run(&api, &c, &pkg("v1"), &opts()).await.unwrap();
    let arn = api.latest("hello").unwrap().arn;
    api.untag(&arn, &[role::POLICY_TAG.to_string()])
        .await
        .unwrap();
    api.clear_calls();
    run(&api, &c, &pkg("v1"), &opts()).await.unwrap();
    assert_eq!(writes(&api), ["iam:PutRolePolicy", "lambda:TagResource"]);
    api.clear_calls();
    run(&api, &c, &pkg("v1"), &opts()).await.unwrap();
    assert!(writes(&api).is_empty(), "{:?}", api.calls());
}

#[tokio::test]
async fn a_supplied_role_is_never_changed_and_a_dry_run_warns_when_it_lacks_a_secret() {
    let api = FakeAws::new();
    let role = "arn:aws:iam::123456789012:role/mine";
    let c = cfg(json!({"role": role, "secrets": {"DB_SECRET": "prod/db"}}));
    api.attach_policy(
        "mine",
        r#"{"Statement":[{"Effect":"Allow","Action":"logs:*","Resource":"*"}]}"#,
    );
    let (p, _) = deploy(&api, &c, &pkg("v1"), &opts(), true, &Ui::silent())
        .await
        .unwrap();
    assert_eq!(p.warnings.len(), 1, "{:?}", p.warnings);
    assert!(p.warnings[0].contains("prod/db"), "{:?}", p.warnings);
    assert!(
        p.render()
            .contains("warning: the role mine does not appear to allow")
    );
    api.attach_policy(
        "mine",
        r#"{"Statement":[{"Effect":"Allow","Action":["secretsmanager:GetSecretValue"],"Resource":"arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/*"}]}"#,
    );
    let (p, _) = deploy(&api, &c, &pkg("v1"), &opts(), true, &Ui::silent())
        .await
        .unwrap();
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    // Unreadable: said so, still no change.
    api.fail_next("iam:ListRolePolicies", "AccessDenied", "no");
    let (p, _) = deploy(&api, &c, &pkg("v1"), &opts(), true, &Ui::silent())
        .await
        .unwrap();
    assert!(p.warnings[0].contains("could not read"), "{:?}", p.warnings);
    api.clear_calls();
    run(&api, &c, &pkg("v1"), &opts()).await.unwrap();
    assert!(
        api.calls().iter().all(|c| !c.starts_with("iam:")),
        "{:?}",
        api.calls()
    );
}

#[tokio::test]
async fn dry_run_json_lists_typed_changes_in_order() {
    let api = FakeAws::new();
    let c = cfg(json!({"secrets": {"DB_SECRET": "prod/db"}, "function-url": {"auth": "NONE"}}));
    let p = plan(&api, &c, &pkg("v1"), &opts()).await.unwrap();
    let json = serde_json::to_value(p.json()).unwrap();
    let kinds: Vec<&str> = json["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "role",
            "role-policy",
            "function",
            "version",
            "alias",
            "function-url",
            "permission",
            "permission"
        ]
    );
    let policy = &json["steps"][1]["after"]["Statement"];
    let secrets = policy
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Action"] == "secretsmanager:GetSecretValue")
        .unwrap();
    assert_eq!(
        secrets["Resource"],
        json!(["arn:aws:secretsmanager:us-east-1:<account>:secret:prod/db-??????"])
    );
    assert_eq!(json["steps"][4]["action"], "create");
    assert_eq!(
        json["steps"][7]["after"]["Condition"]["Bool"]["lambda:InvokedViaFunctionUrl"],
        "true"
    );
    // The environment in a create step shows names, and redacts values
    // whose key looks like a credential.
    let c = cfg(json!({"env": {"API_TOKEN": "s3cr3t"}}));
    let text =
        serde_json::to_string(&plan(&api, &c, &pkg("v1"), &opts()).await.unwrap().json()).unwrap();
    assert!(!text.contains("s3cr3t"), "{text}");
}

#[tokio::test]
async fn durable_config_is_created_updated_by_diff_and_never_switched() {
    let api = FakeAws::new();
    let o = opts();
    let c1 = cfg(json!({"durable": {"execution-timeout": "1h", "retention-days": 7}}));
    let p = plan(&api, &c1, &pkg("v1"), &o).await.unwrap();
    let text = p.render();
    assert!(
        text.contains("durable: ExecutionTimeout 3600 s, RetentionPeriodInDays 7"),
        "{text}"
    );
    run(&api, &c1, &pkg("v1"), &o).await.unwrap();
    let durable = api.latest("hello").unwrap().settings.durable;
    assert_eq!(
        durable,
        Some(crate::aws::DurableSettings {
            execution_timeout: 3600,
            retention_days: 7
        })
    );
    let policy = api.role_policy("cargo-fn-hello", ROLE_POLICY_NAME).unwrap();
    assert!(
        policy.contains("lambda:CheckpointDurableExecution")
            && policy.contains(":function:hello:*"),
        "{policy}"
    );

    // A changed retention is a configuration diff.
    let c2 = cfg(json!({"durable": {"execution-timeout": "1h", "retention-days": 30}}));
    let p = plan(&api, &c2, &pkg("v1"), &o).await.unwrap();
    let fields: Vec<String> = p
        .config_changes()
        .iter()
        .map(|c| format!("{}: {} -> {}", c.field, c.old, c.new))
        .collect();
    assert_eq!(
        fields,
        [
            "durable: execution timeout 3600 s, retention 7 days -> execution timeout 3600 s, retention 30 days"
        ]
    );
    run(&api, &c2, &pkg("v1"), &o).await.unwrap();
    assert_eq!(
        api.latest("hello")
            .unwrap()
            .settings
            .durable
            .map(|d| d.retention_days),
        Some(30)
    );

    // Lambda cannot turn it off: refused in the plan, nothing written.
    let before = api.calls().len();
    let err = plan(&api, &cfg(json!({})), &pkg("v1"), &o)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("cannot turn durable execution off"), "{err}");
    assert!(writes(&api).len() <= before);

    // Nor on, for a function that exists as an ordinary one.
    let api = FakeAws::new();
    run(&api, &cfg(json!({})), &pkg("v1"), &o).await.unwrap();
    let n = writes(&api).len();
    let err = plan(&api, &c1, &pkg("v1"), &o)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("Lambda enables durable execution only when it creates a function"),
        "{err}"
    );
    assert_eq!(writes(&api).len(), n);
}
