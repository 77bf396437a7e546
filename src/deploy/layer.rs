//! `deploy --layer`: publishing a packaged layer (or extension) zip as a
//! new layer version, as a one-change plan.

use std::path::{Path, PathBuf};

use anyhow::Result;

use super::step::{Action, Aws, Ctx, Step, View};
use crate::aws::{LambdaApi, LayerVersion};
use crate::error::hinted;

/// `lambda:PublishLayerVersion` of a zip.
#[derive(Debug, Clone, PartialEq)]
pub struct PublishLayer {
    pub layer: String,
    pub zip: PathBuf,
    pub architectures: Vec<String>,
    pub runtimes: Vec<String>,
    pub description: String,
}

impl PublishLayer {
    /// Reads the zip and publishes it; returns the version's ARN.
    pub async fn publish<A: LambdaApi>(&self, api: &A) -> Result<LayerVersion> {
        let bytes = std::fs::read(&self.zip).map_err(|e| {
            hinted(
                format!("cannot read the layer zip {}: {e}", self.zip.display()),
                "run `cargo fn package --layer` first, or pass --zip PATH",
            )
        })?;
        Ok(api
            .publish_layer(
                &self.layer,
                bytes,
                &self.architectures,
                &self.runtimes,
                &self.description,
            )
            .await?)
    }
}

impl Step for PublishLayer {
    fn view(&self) -> View {
        View::new(
            "layer-version",
            format!("{}:(new)", self.layer),
            Action::Publish,
        )
        .after(serde_json::json!({
            "zip": self.zip, "architectures": self.architectures, "runtimes": self.runtimes,
        }))
        .call(format!(
            "lambda:PublishLayerVersion {} ({}, {}, {})",
            self.layer,
            self.zip.display(),
            self.architectures.join(", "),
            self.runtimes.join(", ")
        ))
    }

    async fn apply<A: Aws>(&self, api: &A, _cx: &mut Ctx<'_>) -> Result<()> {
        self.publish(api).await.map(|_| ())
    }
}

/// Publishes a packaged layer zip; returns its version.
pub async fn publish_layer<A: LambdaApi>(
    api: &A,
    layer: &str,
    zip: &Path,
    architectures: &[String],
    runtimes: &[String],
    description: &str,
) -> Result<LayerVersion> {
    PublishLayer {
        layer: layer.to_string(),
        zip: zip.to_path_buf(),
        architectures: architectures.to_vec(),
        runtimes: runtimes.to_vec(),
        description: description.to_string(),
    }
    .publish(api)
    .await
}
