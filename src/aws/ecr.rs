//! The ECR side of image deploys behind the same kind of seam as Lambda:
//! [`EcrApi`] has the few control-plane operations `deploy --image` uses
//! (find or create the repository with scan-on-push, its lifecycle policy,
//! GetAuthorizationToken) plus the one data-plane step, pushing an OCI
//! layout to the registry, so the deploy logic can be tested on the fake
//! without a registry. The SDK adapter pushes with
//! [`crate::image::registry`].
//!
//! Never prints or formats the registry password: [`RegistryAuth`] redacts
//! it in `Debug`, and errors name the registry and the status only.

use std::path::PathBuf;

use super::ApiResult;
use crate::image::registry::Credentials;

/// An ECR repository as deploy needs it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Repository {
    pub name: String,
    /// `<account>.dkr.ecr.<region>.amazonaws.com/<name>`: what an ImageUri starts with.
    pub uri: String,
    pub scan_on_push: bool,
}

/// What GetAuthorizationToken yields, decoded (`AWS:<password>`).
#[derive(Clone, Default)]
pub struct RegistryAuth {
    pub credentials: Credentials,
    /// `https://<account>.dkr.ecr.<region>.amazonaws.com`.
    pub endpoint: String,
}

impl std::fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RegistryAuth({}, <redacted>)", self.endpoint)
    }
}

/// Where a push goes.
#[derive(Debug, Clone)]
pub struct PushTarget {
    /// The registry base URL (`https://host` or `http://127.0.0.1:PORT`).
    pub registry_url: String,
    pub repository: String,
    /// The tag the manifest is also stored under (the digest is what Lambda gets).
    pub tag: String,
    pub auth: RegistryAuth,
    pub layout: PathBuf,
    /// The manifest digest the layout holds (checked against what the push reports).
    pub digest: String,
    /// Advanced by the bytes of each blob sent or found already there.
    pub progress: Option<indicatif::ProgressBar>,
}

/// What a push did (digests uploaded or skipped because the registry had them).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pushed {
    pub manifest_digest: String,
    pub uploaded: usize,
    pub skipped: usize,
    pub bytes_uploaded: u64,
}

/// The ECR operations `deploy --image` uses. Reads return `Ok(None)` for a
/// resource that does not exist.
#[allow(async_fn_in_trait)]
pub trait EcrApi {
    /// `DescribeRepositories` for one name.
    async fn get_repository(&self, name: &str) -> ApiResult<Option<Repository>>;
    /// `CreateRepository` (scan on push as asked) with these tags.
    async fn create_repository(
        &self,
        name: &str,
        scan_on_push: bool,
        tags: &std::collections::BTreeMap<String, String>,
    ) -> ApiResult<Repository>;
    async fn get_lifecycle_policy(&self, name: &str) -> ApiResult<Option<String>>;
    async fn put_lifecycle_policy(&self, name: &str, policy: &str) -> ApiResult<()>;
    /// `GetAuthorizationToken`, decoded.
    async fn authorization(&self) -> ApiResult<RegistryAuth>;
    /// Pushes the OCI layout (blobs the registry has are skipped, the
    /// manifest last). The data plane: errors are plain, already hinted.
    async fn push_layout(&self, target: &PushTarget) -> anyhow::Result<Pushed>;
}

/// The lifecycle policy for "keep the newest `keep` images": older ones
/// (tagged or not) expire. Compact JSON, so a re-read compares equal.
pub fn keep_newest_policy(keep: u32) -> String {
    serde_json::json!({
        "rules": [{
            "rulePriority": 1,
            "description": format!("cargo-fn: keep the newest {keep} images"),
            "selection": {
                "tagStatus": "any",
                "countType": "imageCountMoreThan",
                "countNumber": keep,
            },
            "action": {"type": "expire"},
        }]
    })
    .to_string()
}

/// True when two policy texts mean the same JSON (ECR may reformat it).
pub fn same_policy(a: &str, b: &str) -> bool {
    match (
        serde_json::from_str::<serde_json::Value>(a),
        serde_json::from_str::<serde_json::Value>(b),
    ) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// Decodes an ECR authorization token: base64 of `user:password`.
pub fn decode_token(token: &str) -> Option<Credentials> {
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (user, password) = text.split_once(':')?;
    Some(Credentials {
        username: user.to_string(),
        password: password.to_string(),
    })
}

/// The blocking registry push behind [`EcrApi::push_layout`] of the adapter.
pub fn push_blocking(target: &PushTarget) -> anyhow::Result<Pushed> {
    use anyhow::Context as _;
    let (plain, host) = match target.registry_url.split_once("://") {
        Some(("http", h)) => (true, h),
        Some(("https", h)) => (false, h),
        Some((other, _)) => anyhow::bail!(
            "registry URL `{}`: scheme `{other}` is not http or https",
            target.registry_url
        ),
        None => (false, target.registry_url.as_str()),
    };
    let host = host.trim_end_matches('/');
    let creds = Some(target.auth.credentials.clone()).filter(|c| !c.username.is_empty());
    let mut registry = crate::image::registry::Registry::new(host, creds, plain);
    if let Some(bar) = &target.progress {
        registry.set_progress(bar.clone());
    }
    let report = registry
        .push_layout(&target.layout, &target.repository, &target.tag)
        .with_context(|| format!("pushing the image to {host}/{}", target.repository))?;
    if report.manifest_digest != target.digest {
        anyhow::bail!(
            "the layout {} holds manifest {}, not the {} that was packaged; re-run the deploy",
            target.layout.display(),
            report.manifest_digest,
            target.digest
        );
    }
    Ok(Pushed {
        manifest_digest: report.manifest_digest,
        uploaded: report.uploaded.len(),
        skipped: report.skipped.len(),
        bytes_uploaded: report.bytes_uploaded,
    })
}

/// `sha256:<hex>` from an image reference pinned by digest (`…@sha256:…`).
pub fn digest_of(uri: &str) -> Option<&str> {
    uri.rsplit_once('@')
        .map(|(_, d)| d)
        .filter(|d| d.starts_with("sha256:"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_decode_and_never_print() {
        use base64::Engine as _;
        let token = base64::engine::general_purpose::STANDARD.encode("AWS:pa:ss");
        let c = decode_token(&token).unwrap();
        assert_eq!(c.username, "AWS");
        assert_eq!(c.password, "pa:ss");
        let auth = RegistryAuth {
            credentials: c,
            endpoint: "https://x".into(),
        };
        assert!(!format!("{auth:?}").contains("pa:ss"));
        assert!(decode_token("not base64!").is_none());
    }

    #[test]
    fn digests_and_policies() {
        assert_eq!(digest_of("h/r@sha256:abc"), Some("sha256:abc"));
        assert_eq!(digest_of("h/r:tag"), None);
        let p = keep_newest_policy(5);
        assert!(p.contains("\"countNumber\":5"));
        assert!(same_policy(&p, &format!(" {p} ")));
        assert!(!same_policy(&p, &keep_newest_policy(6)));
    }
}
