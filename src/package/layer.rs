//! Lambda layer layout and the manifest recorded for publishing.
//!
//! A layer zip is extracted to `/opt`: executables go to `bin/` (on PATH),
//! shared libraries the user includes under `lib/` (on LD_LIBRARY_PATH),
//! extensions to `extensions/<name>` (started by Lambda). The manifest
//! (`<name>.json` next to the zip) records the compatible architectures and
//! runtimes that `PublishLayerVersion` takes. Knows nothing about cargo.

use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::config::{Arch, Runtime};

/// Path inside a layer for a built executable.
pub fn layer_path(name: &str, extension: bool) -> String {
    if extension {
        format!("extensions/{name}")
    } else {
        format!("bin/{name}")
    }
}

/// Layer names: `[a-zA-Z0-9-_]+`, at most 140 characters (PublishLayerVersion).
pub fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 140
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !ok {
        return Err(crate::error::UsageError(format!(
            "--layer `{name}` is not a valid layer name: use 1-140 characters from a-z, A-Z, 0-9, `-` and `_`"
        ))
        .into());
    }
    Ok(())
}

/// The runtimes whose glibc satisfies the newest glibc a binary needs
/// (`None`: static, or no versioned glibc symbol: every runtime).
pub fn compatible_runtimes(max_glibc: Option<(u32, u32)>) -> Vec<Runtime> {
    [Runtime::ProvidedAl2023, Runtime::ProvidedAl2]
        .into_iter()
        .filter(|r| max_glibc.is_none_or(|need| need <= r.glibc()))
        .collect()
}

/// The manifest written next to a layer zip.
#[derive(Debug, Clone, Serialize)]
pub struct LayerManifest {
    pub name: String,
    pub zip: String,
    pub code_sha256: String,
    pub compatible_architectures: Vec<Arch>,
    pub compatible_runtimes: Vec<Runtime>,
    pub contents: Vec<String>,
}

impl LayerManifest {
    /// Writes the manifest as JSON, atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        let dir = path.parent().context("manifest path has no parent")?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".cargo-fn-layer.")
            .tempfile_in(dir)
            .with_context(|| format!("creating a temp file in {}", dir.display()))?;
        serde_json::to_writer_pretty(tmp.as_file_mut(), self)?;
        std::io::Write::write_all(tmp.as_file_mut(), b"\n")?;
        tmp.persist(path)
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtimes_follow_the_needed_glibc() {
        assert_eq!(
            compatible_runtimes(Some((2, 28))),
            vec![Runtime::ProvidedAl2023]
        );
        assert_eq!(compatible_runtimes(Some((2, 17))).len(), 2);
        assert_eq!(compatible_runtimes(None).len(), 2);
        assert!(compatible_runtimes(Some((2, 36))).is_empty());
    }

    #[test]
    fn layer_names() {
        assert!(validate_name("my-layer_1").is_ok());
        assert!(validate_name("bad/name").is_err());
        assert!(validate_name("").is_err());
        assert_eq!(layer_path("x", true), "extensions/x");
        assert_eq!(layer_path("x", false), "bin/x");
    }
}
