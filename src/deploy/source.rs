//! `deploy --from STAGE`: the exact code another stage's alias runs, as the
//! package this deploy ships. The code comes from the source function
//! itself (GetFunction's pre-signed `Code.Location`), or from a local
//! package only when its CodeSha256 equals the source's; the bytes are
//! checked against the source's CodeSha256 before anything is written.
//! When the code cannot be had, the deploy is refused before any write.
//! An image function's code is its manifest digest: it is copied from a
//! local image layout with the same digest (pushed to the target's
//! repository, so the same digest), never pulled from the source registry.
//!
//! Reads only, through the source stage's own connection (its account,
//! region and profile), so copying across accounts needs read access to
//! the source and write access to the target, nothing shared.

use std::path::PathBuf;

use anyhow::Result;
use serde::Serialize;

use super::Package;
use crate::aws::LambdaApi;
use crate::error::hinted;

/// Where the code of a `--from` deploy came from; shown with the result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Source {
    pub stage: String,
    pub function: String,
    pub alias: String,
    /// The version the source alias runs (its primary version).
    pub version: String,
    /// The source version's CodeSha256, which the deploy must publish.
    pub code_sha256: String,
    /// `function code location` or the local package's path.
    pub code_from: String,
}

/// What to copy: the source stage's function and alias.
#[derive(Debug, Clone)]
pub struct SourceRef<'a> {
    pub stage: &'a str,
    pub function: &'a str,
    pub alias: &'a str,
}

/// Reads the source alias's code and returns it as a package whose
/// CodeSha256 is the source's, verified. `local` is a package built here
/// (used only when its hash matches; no download then).
pub async fn fetch<A: LambdaApi>(
    api: &A,
    from: &SourceRef<'_>,
    local: Option<&Package>,
) -> Result<(Source, Package)> {
    let SourceRef {
        stage,
        function,
        alias,
    } = *from;
    let Some(code) = api.get_code(function, alias).await? else {
        return Err(hinted(
            format!(
                "--from {stage}: {function}:{alias} does not exist in stage `{stage}`'s account \
                 and region; nothing was changed"
            ),
            format!("deploy stage `{stage}` first (`cargo fn deploy --stage {stage}`)"),
        ));
    };
    let v = &code.version;
    let mut source = Source {
        stage: stage.to_string(),
        function: function.to_string(),
        alias: alias.to_string(),
        version: v.version.clone(),
        code_sha256: v.code_sha256.clone(),
        code_from: String::new(),
    };
    if v.is_image() {
        // An image is pinned by its manifest digest: the source's is in its
        // ImageUri (else its CodeSha256, the same hex).
        let digest = code
            .image_uri
            .as_deref()
            .and_then(|u| u.rsplit_once("@sha256:"))
            .map_or(v.code_sha256.as_str(), |(_, hex)| hex)
            .to_string();
        source.code_sha256 = digest.clone();
        return match local.filter(|p| p.image.is_some() && p.sha256 == digest) {
            Some(pkg) => {
                source.code_from = pkg.path.display().to_string();
                Ok((source, pkg.clone()))
            }
            None => Err(hinted(
                format!(
                    "--from {stage}: {function}:{alias} runs the image sha256:{digest}, and {}; \
                     nothing was changed",
                    match local {
                        Some(p) if p.image.is_some() => format!(
                            "the local image layout {} is sha256:{}",
                            p.path.display(),
                            p.sha256
                        ),
                        _ => "there is no local image layout".to_string(),
                    }
                ),
                "--from copies an image from a local layout of the same digest (pulling it \
                 from the source registry is not supported): run `cargo fn package --image` \
                 at the commit it was built from (reproducible builds give the same digest)",
            )),
        };
    }
    if let Some(pkg) = local.filter(|p| p.image.is_none() && p.sha256 == v.code_sha256) {
        source.code_from = pkg.path.display().to_string();
        return Ok((source, pkg.clone()));
    }
    let unavailable = |why: String| {
        let local = match local {
            Some(p) => format!(
                "the local package {} has CodeSha256 {}",
                p.path.display(),
                p.sha256
            ),
            None => "there is no local package".to_string(),
        };
        hinted(
            format!(
                "--from {stage}: the code of {function}:{alias} (version {}, CodeSha256 {}) \
                 cannot be had: {why}, and {local}; nothing was changed",
                v.version, v.code_sha256
            ),
            "allow lambda:GetFunction on the source function to the source stage's \
             credentials, or package the commit it was built from (`cargo fn package`) and \
             re-run with --zip",
        )
    };
    let Some(location) = &code.location else {
        return Err(unavailable("GetFunction gave no code location".into()));
    };
    let bytes = api
        .download_code(location)
        .await
        .map_err(|e| unavailable(format!("downloading it failed ({})", e.message)))?;
    let got = crate::package::sha256_b64(&bytes);
    if got != v.code_sha256 {
        return Err(unavailable(format!(
            "the downloaded bytes have CodeSha256 {got}"
        )));
    }
    source.code_from = "function code location".to_string();
    let pkg = Package {
        path: PathBuf::from(format!("{function}:{alias} (stage {stage})")),
        bytes,
        sha256: got,
        image: None,
    };
    Ok((source, pkg))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::fake::FakeAws;
    use crate::deploy::tests::{cfg, opts, pkg as zip_pkg};
    use crate::ui::Ui;

    async fn staged(api: &FakeAws, content: &str) -> Package {
        let pkg = zip_pkg(content);
        crate::deploy::deploy(
            api,
            &cfg(serde_json::json!({})),
            &pkg,
            &opts(),
            false,
            &Ui::silent(),
        )
        .await
        .unwrap();
        pkg
    }

    fn from() -> SourceRef<'static> {
        SourceRef {
            stage: "staging",
            function: "hello",
            alias: "live",
        }
    }

    #[tokio::test]
    async fn the_code_comes_from_the_function_and_is_verified() {
        let api = FakeAws::new();
        let shipped = staged(&api, "v1").await;
        let (source, pkg) = fetch(&api, &from(), None).await.unwrap();
        assert_eq!(pkg.bytes, shipped.bytes);
        assert_eq!(pkg.sha256, shipped.sha256);
        assert_eq!(source.code_sha256, shipped.sha256);
        assert_eq!(source.version, "1");
        assert_eq!(source.code_from, "function code location");
    }

    #[tokio::test]
    async fn a_local_package_is_used_only_when_its_hash_matches() {
        let api = FakeAws::new();
        let shipped = staged(&api, "v1").await;
        api.hide_code_location();
        let (_, pkg) = fetch(&api, &from(), Some(&shipped)).await.unwrap();
        assert_eq!(pkg.sha256, shipped.sha256);
        let other = zip_pkg("v2");
        let err = fetch(&api, &from(), Some(&other)).await.unwrap_err();
        let text = format!("{err:?}");
        assert!(text.contains("cannot be had"), "{text}");
        assert!(text.contains(&other.sha256), "{text}");
    }

    #[tokio::test]
    async fn an_image_comes_only_from_a_layout_of_the_same_digest() {
        use crate::deploy::image::ImagePackage;
        let image = |code: &str| {
            Package::image(ImagePackage {
                layout: PathBuf::from("/nonexistent/image"),
                digest: crate::image::sha256_digest(code.as_bytes()),
                size: 1,
                repository: "hello".into(),
                scan_on_push: true,
                keep: None,
                registry_url: None,
            })
        };
        let api = FakeAws::new();
        let shipped = image("v1");
        crate::deploy::deploy(
            &api,
            &cfg(serde_json::json!({})),
            &shipped,
            &opts(),
            false,
            &Ui::silent(),
        )
        .await
        .unwrap();
        let (source, pkg) = fetch(&api, &from(), Some(&shipped)).await.unwrap();
        assert_eq!(pkg.sha256, shipped.sha256);
        assert_eq!(source.code_sha256, shipped.sha256);
        let other = image("v2");
        let err = fetch(&api, &from(), Some(&other)).await.unwrap_err();
        assert!(err.to_string().contains(&other.sha256), "{err}");
        assert!(fetch(&api, &from(), None).await.is_err());
    }

    #[tokio::test]
    async fn a_missing_source_is_refused() {
        let api = FakeAws::new();
        let err = fetch(&api, &from(), None).await.unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
    }
}
