//! The image variant of the deploy's code source: an OCI layout written by
//! `cargo fn package --image`, pushed to an ECR repository (created if
//! missing, with scan-on-push and the configured lifecycle policy), then
//! given to Lambda as `<repository uri>@sha256:<digest>`.
//!
//! Everything else (versions, aliases, canary, guards, waits) is the zip
//! deploy's: this module only plans and carries out the repository and push
//! steps, and tells whether the remote function already runs this image
//! (its ImageUri digest, not a CodeSha256 of bytes).
//!
//! Invariant: the push finishes (every blob and the manifest, checked by
//! digest) before any Lambda call references the image, so a failed push
//! never reaches UpdateFunctionCode or CreateFunction. Knows the AWS traits
//! and the configuration; not clap, not the SDK, not how images are built.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Result;

use super::Package;
use super::step::{Action, Aws, Ctx, Step, View};
use crate::aws::ecr::{EcrApi, PushTarget, keep_newest_policy, same_policy};
use crate::aws::{Code, FunctionState, Settings};
use crate::error::hinted;
use crate::ui::Ui;

/// Environment variable that overrides where images are pushed (an
/// `http://` or `https://` URL; LocalStack-like setups and tests).
pub const REGISTRY_ENV: &str = "CARGO_FN_ECR_REGISTRY";

/// An image to deploy: the layout and where it goes.
#[derive(Debug, Clone, PartialEq)]
pub struct ImagePackage {
    /// The OCI image layout directory.
    pub layout: PathBuf,
    /// `sha256:<hex>` of the manifest.
    pub digest: String,
    /// Compressed size of the layers and config.
    pub size: u64,
    /// The ECR repository name.
    pub repository: String,
    pub scan_on_push: bool,
    /// Lifecycle policy: keep the newest N images.
    pub keep: Option<u32>,
    /// Push here instead of the repository's own registry host.
    pub registry_url: Option<String>,
}

impl Package {
    /// The package of an image function: its CodeSha256 is the manifest
    /// digest's hex, which is what Lambda reports for image functions.
    pub fn image(image: ImagePackage) -> Package {
        Package {
            path: image.layout.clone(),
            bytes: Vec::new(),
            sha256: image.digest.trim_start_matches("sha256:").to_string(),
            image: Some(image),
        }
    }
}

/// Reads the layout `cargo fn package --image` wrote and checks that it is
/// an image for `arch`.
pub fn read_layout(
    layout: &Path,
    arch: crate::config::Arch,
    repository: String,
    scan_on_push: bool,
    keep: Option<u32>,
    registry_url: Option<String>,
) -> Result<ImagePackage> {
    let (desc, manifest) = crate::image::read_layout(layout).map_err(|e| {
        hinted(
            format!("cannot read the image at {}: {e:#}", layout.display()),
            "run `cargo fn package --image` first (or drop --no-build so deploy packages it)",
        )
    })?;
    let config_hex = manifest["config"]["digest"]
        .as_str()
        .unwrap_or_default()
        .trim_start_matches("sha256:");
    let config: serde_json::Value = std::fs::read(layout.join("blobs/sha256").join(config_hex))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let image_arch = config["architecture"].as_str().unwrap_or("(none)");
    if image_arch != arch.oci_arch() {
        return Err(hinted(
            format!(
                "the image at {} is for linux/{image_arch}, but the function is {arch} (linux/{})",
                layout.display(),
                arch.oci_arch()
            ),
            format!(
                "package it again for {arch}: `cargo fn package --image --arch {arch}` (or drop --no-build), or set `architecture` to match the image"
            ),
        ));
    }
    let size = manifest["layers"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(std::iter::once(&manifest["config"]))
        .filter_map(|d| d["size"].as_u64())
        .sum();
    Ok(ImagePackage {
        layout: layout.to_path_buf(),
        digest: desc.digest,
        size,
        repository,
        scan_on_push,
        keep,
        registry_url,
    })
}

/// Image functions have no runtime, handler or layers.
pub fn adjust_settings(desired: &mut Settings) {
    desired.runtime.clear();
    desired.layers.clear();
}

/// Refuses what Lambda refuses, before any write: layers on an image
/// function, and switching a function between Zip and Image.
pub fn check(
    function: &str,
    layers: &[String],
    image: bool,
    remote: Option<&FunctionState>,
) -> Result<()> {
    if image && !layers.is_empty() {
        return Err(hinted(
            format!(
                "{function}: an image function cannot have layers (Lambda refuses Layers with PackageType Image)"
            ),
            "remove `layers` from [package.metadata.fn], or put what the layers hold into the image",
        ));
    }
    if let Some(r) = remote
        && r.is_image() != image
    {
        let (has, wants) = if image {
            ("Zip", "Image")
        } else {
            ("Image", "Zip")
        };
        return Err(hinted(
            format!(
                "{function} exists in AWS with PackageType {has}; Lambda cannot change it to {wants}"
            ),
            format!(
                "deploy it as {} (drop or add --image / `package-type`), or deploy under another `name`; deleting the function and deploying again also works but loses its versions and aliases",
                has.to_lowercase()
            ),
        ));
    }
    Ok(())
}

/// `sha256:<hex>` the remote function runs, from its ImageUri.
pub fn remote_digest(remote: &FunctionState) -> Option<String> {
    remote
        .image_uri
        .as_deref()
        .and_then(crate::aws::ecr::digest_of)
        .map(str::to_string)
        .or_else(|| {
            (!remote.code_sha256.is_empty()).then(|| format!("sha256:{}", remote.code_sha256))
        })
}

/// Reads the repository (and its lifecycle policy when one is configured)
/// and returns the repository and push changes (as the plan's change type).
pub async fn plan_push<A: EcrApi, C: From<RepositoryChange> + From<ImagePush>>(
    api: &A,
    image: &ImagePackage,
) -> Result<Vec<C>> {
    let repository = api.get_repository(&image.repository).await?;
    let want = image.keep.map(keep_newest_policy);
    let lifecycle = match (&want, &repository) {
        (None, _) => None,
        (Some(w), None) => Some(w.clone()),
        (Some(w), Some(_)) => match api.get_lifecycle_policy(&image.repository).await? {
            Some(have) if same_policy(&have, w) => None,
            _ => Some(w.clone()),
        },
    };
    let mut changes = Vec::new();
    if repository.is_none() || lifecycle.is_some() {
        changes.push(C::from(RepositoryChange {
            image: image.clone(),
            exists: repository.is_some(),
            lifecycle,
        }));
    }
    changes.push(C::from(ImagePush {
        image: image.clone(),
        repository_uri: repository.map(|r| r.uri),
    }));
    Ok(changes)
}

/// Creates the repository (scan on push, tagged) and/or puts its
/// lifecycle policy.
#[derive(Debug, Clone, PartialEq)]
pub struct RepositoryChange {
    pub image: ImagePackage,
    pub exists: bool,
    /// The lifecycle policy to put (missing or different).
    pub lifecycle: Option<String>,
}

impl Step for RepositoryChange {
    fn view(&self) -> View {
        let image = &self.image;
        let mut v = View::new(
            "ecr-repository",
            &image.repository,
            if self.exists {
                Action::Update
            } else {
                Action::Create
            },
        )
        .after(serde_json::json!({
            "scan_on_push": image.scan_on_push,
            "keep": image.keep,
        }));
        if !self.exists {
            v = v.call(format!(
                "ecr:CreateRepository {} (scan on push {}, tag {}={})",
                image.repository,
                if image.scan_on_push { "on" } else { "off" },
                super::MANAGED_BY_KEY,
                super::MANAGED_BY_VALUE
            ));
        }
        if self.lifecycle.is_some() {
            v = v.call(format!(
                "ecr:PutLifecyclePolicy {} (keep the newest {} images)",
                image.repository,
                image.keep.unwrap_or_default()
            ));
        }
        v
    }

    async fn apply<A: Aws>(&self, api: &A, cx: &mut Ctx<'_>) -> Result<()> {
        let image = &self.image;
        if !self.exists {
            cx.ui.status(
                "Creating",
                format!("ECR repository {} (scan on push)", image.repository),
            );
            let mut tags = std::collections::BTreeMap::from([(
                super::MANAGED_BY_KEY.to_string(),
                super::MANAGED_BY_VALUE.to_string(),
            )]);
            if let Some(stage) = &cx.opts.stage {
                tags.insert(super::guard::STAGE_TAG.to_string(), stage.clone());
            }
            let repository = match api
                .create_repository(&image.repository, image.scan_on_push, &tags)
                .await
            {
                Ok(r) => r,
                // Created meanwhile (or by a dropped earlier attempt).
                Err(e) if e.is("RepositoryAlreadyExistsException") => api
                    .get_repository(&image.repository)
                    .await?
                    .ok_or_else(|| anyhow::Error::new(e.clone()))?,
                Err(e) => return Err(e.into()),
            };
            cx.repository_uri = Some(repository.uri);
        }
        if let Some(policy) = &self.lifecycle {
            api.put_lifecycle_policy(&image.repository, policy).await?;
        }
        Ok(())
    }
}

/// Pushes the image's blobs and manifest; the function's code then names
/// it by digest. Nothing references the image before this succeeds.
#[derive(Debug, Clone, PartialEq)]
pub struct ImagePush {
    pub image: ImagePackage,
    /// The repository's URI when it exists at plan time.
    pub repository_uri: Option<String>,
}

impl Step for ImagePush {
    fn view(&self) -> View {
        let image = &self.image;
        let mut line = format!(
            "registry push {}@{} ({}; blobs the registry has are skipped)",
            image.repository,
            image.digest,
            crate::package::human_size(image.size)
        );
        if let Some(url) = &image.registry_url {
            let _ = write!(line, " to {url}");
        }
        View::new(
            "image",
            format!("{}@{}", image.repository, short(&image.digest)),
            Action::Publish,
        )
        .after(serde_json::json!({"digest": image.digest, "size": image.size}))
        .call("ecr:GetAuthorizationToken")
        .call(line)
    }

    async fn apply<A: Aws>(&self, api: &A, cx: &mut Ctx<'_>) -> Result<()> {
        let image = &self.image;
        let uri = match (&self.repository_uri, &cx.repository_uri) {
            (Some(u), _) | (None, Some(u)) => u.clone(),
            (None, None) => api
                .get_repository(&image.repository)
                .await?
                .map(|r| r.uri)
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "the ECR repository {} does not exist; re-run the deploy",
                        image.repository
                    )
                })?,
        };
        cx.code = push(api, &uri, image, cx.ui).await?;
        Ok(())
    }
}

/// Pushes the layout; returns the code to give Lambda (pinned by digest).
async fn push<A: EcrApi>(
    api: &A,
    repository_uri: &str,
    image: &ImagePackage,
    ui: &Ui,
) -> Result<Code> {
    let auth = api.authorization().await?;
    let host = repository_uri
        .split_once('/')
        .map(|(h, _)| h)
        .unwrap_or(repository_uri);
    let registry_url = image
        .registry_url
        .clone()
        .unwrap_or_else(|| format!("https://{host}"));
    let hex = image.digest.trim_start_matches("sha256:");
    let target = PushTarget {
        registry_url: registry_url.clone(),
        repository: image.repository.clone(),
        tag: format!("cargo-fn-{}", &hex[..hex.len().min(12)]),
        auth,
        layout: image.layout.clone(),
        digest: image.digest.clone(),
        progress: Some(ui.bytes_bar(image.size, "     Pushing")),
    };
    ui.status(
        "Pushing",
        format!(
            "{} ({}) to {registry_url}",
            image.repository,
            crate::package::human_size(image.size)
        ),
    );
    let pushed = api.push_layout(&target).await.map_err(|e| {
        hinted(
            format!("{e:#}"),
            "nothing references the image: the function was not updated and the alias was not moved; fix the registry access (ecr:GetAuthorizationToken, ecr:InitiateLayerUpload, ecr:UploadLayerPart, ecr:CompleteLayerUpload, ecr:PutImage on the repository) and re-run",
        )
    })?;
    if let Some(bar) = &target.progress {
        bar.finish_and_clear();
    }
    ui.status(
        "Pushed",
        format!(
            "{}@{} ({} blob(s) uploaded, {} already there)",
            image.repository, pushed.manifest_digest, pushed.uploaded, pushed.skipped
        ),
    );
    Ok(Code::Image {
        uri: format!("{repository_uri}@{}", image.digest),
    })
}

/// Short text for the code in plan lines.
pub fn code_text(image: &ImagePackage) -> String {
    format!(
        "image {}@{}, {}",
        image.repository,
        short(&image.digest),
        crate::package::human_size(image.size)
    )
}

fn short(digest: &str) -> String {
    let hex = digest.trim_start_matches("sha256:");
    format!("sha256:{}", &hex[..hex.len().min(12)])
}

#[cfg(test)]
mod tests;
