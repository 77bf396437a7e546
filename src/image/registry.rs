//! A small client of the OCI distribution API (Docker Registry HTTP API v2):
//! push an OCI layout (blobs that exist are skipped; small blobs go up in
//! one request, large ones in chunks; the manifest last, by tag and checked
//! by digest) and pull an image into a layout (for base images).
//!
//! Authentication: HTTP Basic with given credentials (what ECR's
//! GetAuthorizationToken yields) or the bearer-token flow a registry asks
//! for in `WWW-Authenticate`. Credentials are never printed: errors name the
//! registry and the status only.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use sha2::{Digest as _, Sha256};

use super::{BaseImage, Descriptor, MEDIA_LAYER_GZIP, MEDIA_MANIFEST, hex, read_layout};
use crate::error::hinted;

/// Blobs up to this size go up in one PUT; larger ones in chunks of it.
pub const CHUNK_SIZE: u64 = 8 * 1024 * 1024;

const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json";

/// `host[:port]/repository[:tag|@digest]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub registry: String,
    pub repository: String,
    /// A tag or a `sha256:` digest.
    pub reference: String,
}

impl Reference {
    pub fn parse(s: &str) -> Result<Reference> {
        let (registry, rest) = s.split_once('/').ok_or_else(|| {
            anyhow::anyhow!(
                "image reference `{s}` needs a registry host: HOST[:PORT]/REPOSITORY[:TAG]"
            )
        })?;
        if !(registry.contains('.') || registry.contains(':') || registry == "localhost") {
            bail!(
                "image reference `{s}` needs a registry host first (e.g. 123456789012.dkr.ecr.us-east-1.amazonaws.com/{s})"
            );
        }
        let (repository, reference) = if let Some((repo, digest)) = rest.split_once('@') {
            (repo.to_string(), digest.to_string())
        } else {
            match rest.rsplit_once(':') {
                Some((repo, tag)) if !tag.contains('/') => (repo.to_string(), tag.to_string()),
                _ => (rest.to_string(), "latest".to_string()),
            }
        };
        let repo_ok = !repository.is_empty()
            && repository.split('/').all(|part| {
                !part.is_empty()
                    && part
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
            });
        if !repo_ok {
            bail!(
                "repository `{repository}` in `{s}`: lower-case letters, digits, `.`, `_`, `-` and `/` only"
            );
        }
        Ok(Reference {
            registry: registry.to_string(),
            repository,
            reference,
        })
    }
}

/// How to authenticate.
#[derive(Clone, Default)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials(<redacted>)")
    }
}

/// What a push did.
#[derive(Debug, Clone, Default)]
pub struct PushReport {
    pub manifest_digest: String,
    pub uploaded: Vec<String>,
    pub skipped: Vec<String>,
    pub bytes_uploaded: u64,
}

pub struct Registry {
    base: String,
    agent: ureq::Agent,
    credentials: Option<Credentials>,
    /// Authorization header value once known.
    auth: Option<String>,
    /// Follows the bytes of a push (set by the caller, which owns the UI).
    progress: Option<indicatif::ProgressBar>,
}

type Response = ureq::http::Response<ureq::Body>;

/// A request body from `reader`, counted on `bar` when there is one.
fn counted(
    bar: &Option<indicatif::ProgressBar>,
    reader: impl Read + Send + 'static,
) -> ureq::SendBody<'static> {
    match bar {
        Some(bar) => ureq::SendBody::from_owned_reader(bar.wrap_read(reader)),
        None => ureq::SendBody::from_owned_reader(reader),
    }
}

impl Registry {
    /// `plain_http` for a local registry without TLS (loopback only by default).
    pub fn new(registry: &str, credentials: Option<Credentials>, plain_http: bool) -> Registry {
        let scheme = if plain_http { "http" } else { "https" };
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(5)
            .build()
            .into();
        let auth = credentials.as_ref().map(basic);
        Registry {
            base: format!("{scheme}://{registry}"),
            agent,
            credentials,
            auth,
            progress: None,
        }
    }

    /// Reports each pushed blob's bytes to `bar` (blobs already there count
    /// at once); `push_layout` sets its length.
    pub fn set_progress(&mut self, bar: indicatif::ProgressBar) {
        self.progress = Some(bar);
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        }
    }

    /// Sends a request, answering one auth challenge if the registry asks.
    fn send(
        &mut self,
        method: &str,
        url: &str,
        headers: &[(&str, String)],
        body: Option<&mut dyn FnMut() -> Result<ureq::SendBody<'static>>>,
    ) -> Result<Response> {
        let mut body = body;
        for attempt in 0..2 {
            let mut req = ureq::http::Request::builder().method(method).uri(url);
            for (k, v) in headers {
                req = req.header(*k, v.as_str());
            }
            if let Some(a) = &self.auth {
                req = req.header("Authorization", a.as_str());
            }
            let resp = match body.as_mut() {
                Some(make) => {
                    let b = make()?;
                    self.agent.run(req.body(b)?)
                }
                None => self.agent.run(req.body(())?),
            }
            .map_err(|e| anyhow::anyhow!("{method} {} failed: {e}", redact_url(url)))?;
            if resp.status() == 401 && attempt == 0 {
                let challenge = resp
                    .headers()
                    .get("www-authenticate")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                if self.answer_challenge(&challenge)? {
                    continue;
                }
            }
            return Ok(resp);
        }
        unreachable!("the loop returns on its second attempt")
    }

    /// Returns true when new credentials were obtained.
    fn answer_challenge(&mut self, challenge: &str) -> Result<bool> {
        let lower = challenge.to_ascii_lowercase();
        if lower.starts_with("basic") {
            return Ok(false);
        }
        if !lower.starts_with("bearer") {
            return Ok(false);
        }
        let params = parse_challenge(&challenge[6..]);
        let Some(realm) = params
            .iter()
            .find(|(k, _)| k == "realm")
            .map(|(_, v)| v.clone())
        else {
            return Ok(false);
        };
        let mut url = realm;
        let mut sep = if url.contains('?') { '&' } else { '?' };
        for key in ["service", "scope"] {
            if let Some((_, v)) = params.iter().find(|(k, _)| k == key) {
                url.push(sep);
                url.push_str(&format!("{key}={}", urlencode(v)));
                sep = '&';
            }
        }
        let mut req = self.agent.get(&url);
        if let Some(c) = &self.credentials {
            req = req.header("Authorization", &basic(c));
        }
        let mut resp = req
            .call()
            .map_err(|e| anyhow::anyhow!("token request failed: {e}"))?;
        if !resp.status().is_success() {
            return Ok(false);
        }
        let v: serde_json::Value = serde_json::from_str(&resp.body_mut().read_to_string()?)?;
        let token = v["token"]
            .as_str()
            .or_else(|| v["access_token"].as_str())
            .context("token response without a token")?;
        self.auth = Some(format!("Bearer {token}"));
        Ok(true)
    }

    fn fail(&self, what: &str, resp: &mut Response) -> anyhow::Error {
        let status = resp.status();
        let body = resp
            .body_mut()
            .with_config()
            .limit(4096)
            .read_to_string()
            .unwrap_or_default();
        if status == 401 || status == 403 {
            return hinted(
                format!("{what}: {} refused the credentials ({status})", self.base),
                "check the registry login (for ECR, the caller needs ecr:GetAuthorizationToken and push rights on the repository)",
            );
        }
        anyhow::anyhow!("{what}: {} answered {status}: {}", self.base, body.trim())
    }

    /// True if the repository already has the blob.
    pub fn has_blob(&mut self, repo: &str, digest: &str) -> Result<bool> {
        let url = self.url(&format!("/v2/{repo}/blobs/{digest}"));
        let mut resp = self.send("HEAD", &url, &[], None)?;
        match resp.status().as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(self.fail(&format!("checking blob {digest}"), &mut resp)),
        }
    }

    fn location(&self, resp: &Response) -> Result<String> {
        let loc = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .context("the registry gave no upload location")?;
        Ok(self.url(loc))
    }

    /// Uploads one blob from a file, skipping it when present.
    /// Returns true when it was uploaded.
    pub fn push_blob(&mut self, repo: &str, desc: &Descriptor, file: &Path) -> Result<bool> {
        if self.has_blob(repo, &desc.digest)? {
            if let Some(bar) = &self.progress {
                bar.inc(desc.size);
            }
            return Ok(false);
        }
        let start = self.url(&format!("/v2/{repo}/blobs/uploads/"));
        let mut resp = self.send("POST", &start, &[("Content-Length", "0".into())], None)?;
        if resp.status() != 202 {
            return Err(self.fail(
                &format!("starting the upload of {}", desc.digest),
                &mut resp,
            ));
        }
        let mut location = self.location(&resp)?;
        let size = std::fs::metadata(file)?.len();
        if size > CHUNK_SIZE {
            // Chunked: PATCH each range, following the new location each time.
            let mut offset = 0u64;
            while offset < size {
                let len = CHUNK_SIZE.min(size - offset);
                let path = file.to_path_buf();
                let bar = self.progress.clone();
                let mut make = move || -> Result<ureq::SendBody<'static>> {
                    let mut f = File::open(&path)?;
                    std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(offset))?;
                    Ok(counted(&bar, f.take(len)))
                };
                let headers = [
                    ("Content-Type", "application/octet-stream".to_string()),
                    ("Content-Length", len.to_string()),
                    ("Content-Range", format!("{}-{}", offset, offset + len - 1)),
                ];
                let mut resp = self.send("PATCH", &location, &headers, Some(&mut make))?;
                if resp.status() != 202 {
                    return Err(
                        self.fail(&format!("uploading a chunk of {}", desc.digest), &mut resp)
                    );
                }
                location = self.location(&resp)?;
                offset += len;
            }
            let url = with_query(&location, "digest", &desc.digest);
            let mut resp = self.send("PUT", &url, &[("Content-Length", "0".into())], None)?;
            if resp.status() != 201 {
                return Err(self.fail(
                    &format!("finishing the upload of {}", desc.digest),
                    &mut resp,
                ));
            }
        } else {
            let url = with_query(&location, "digest", &desc.digest);
            let path = file.to_path_buf();
            let bar = self.progress.clone();
            let mut make = move || -> Result<ureq::SendBody<'static>> {
                Ok(counted(&bar, File::open(&path)?))
            };
            let headers = [
                ("Content-Type", "application/octet-stream".to_string()),
                ("Content-Length", size.to_string()),
            ];
            let mut resp = self.send("PUT", &url, &headers, Some(&mut make))?;
            if resp.status() != 201 {
                return Err(self.fail(&format!("uploading {}", desc.digest), &mut resp));
            }
        }
        Ok(true)
    }

    /// Pushes every blob of an OCI layout, then its manifest under `tag`.
    pub fn push_layout(&mut self, layout: &Path, repo: &str, tag: &str) -> Result<PushReport> {
        let (manifest_desc, manifest) = read_layout(layout)?;
        let blobs = layout.join("blobs/sha256");
        let mut report = PushReport::default();
        let mut descs: Vec<Descriptor> = Vec::new();
        for layer in manifest["layers"].as_array().into_iter().flatten() {
            descs.push(descriptor(layer)?);
        }
        descs.push(descriptor(&manifest["config"])?);
        if let Some(bar) = &self.progress {
            bar.set_length(descs.iter().map(|d| d.size).sum());
        }
        for d in &descs {
            let file = blobs.join(d.hex());
            if self.push_blob(repo, d, &file)? {
                report.uploaded.push(d.digest.clone());
                report.bytes_uploaded += d.size;
            } else {
                report.skipped.push(d.digest.clone());
            }
        }
        let bytes = std::fs::read(blobs.join(manifest_desc.hex()))?;
        let url = self.url(&format!("/v2/{repo}/manifests/{tag}"));
        let headers = [
            ("Content-Type", manifest_desc.media_type.clone()),
            ("Content-Length", bytes.len().to_string()),
        ];
        let mut make = move || -> Result<ureq::SendBody<'static>> {
            Ok(ureq::SendBody::from_owned_reader(std::io::Cursor::new(
                bytes.clone(),
            )))
        };
        let mut resp = self.send("PUT", &url, &headers, Some(&mut make))?;
        if resp.status() != 201 {
            return Err(self.fail("uploading the manifest", &mut resp));
        }
        if let Some(d) = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            && d != manifest_desc.digest
        {
            bail!(
                "the registry stored the manifest as {d}, not {}: it rewrote the manifest",
                manifest_desc.digest
            );
        }
        report.manifest_digest = manifest_desc.digest;
        Ok(report)
    }

    fn get_manifest(&mut self, repo: &str, reference: &str) -> Result<(String, Vec<u8>)> {
        let url = self.url(&format!("/v2/{repo}/manifests/{reference}"));
        let mut resp = self.send("GET", &url, &[("Accept", ACCEPT_MANIFESTS.into())], None)?;
        if !resp.status().is_success() {
            return Err(self.fail(&format!("fetching manifest {repo}:{reference}"), &mut resp));
        }
        let media = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let bytes = resp
            .body_mut()
            .with_config()
            .limit(4 * 1024 * 1024)
            .read_to_vec()?;
        Ok((media, bytes))
    }

    /// Downloads a blob into `dest`, checking its digest while streaming.
    fn get_blob(&mut self, repo: &str, digest: &str, dest: &Path) -> Result<()> {
        let url = self.url(&format!("/v2/{repo}/blobs/{digest}"));
        let mut resp = self.send("GET", &url, &[], None)?;
        if !resp.status().is_success() {
            return Err(self.fail(&format!("fetching blob {digest}"), &mut resp));
        }
        let tmp = dest.with_extension("partial");
        let mut out = std::io::BufWriter::new(File::create(&tmp)?);
        let mut reader = resp.body_mut().with_config().limit(u64::MAX).reader();
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = reader.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n])?;
        }
        out.flush()?;
        let got = format!("sha256:{}", hex(&hasher.finalize()));
        if got != digest {
            let _ = std::fs::remove_file(&tmp);
            bail!("blob {digest} arrived with digest {got}");
        }
        std::fs::rename(&tmp, dest)?;
        Ok(())
    }

    /// Pulls `repo:reference` for `arch` into an OCI layout at `layout`.
    pub fn pull(
        &mut self,
        image: &Reference,
        arch: super::Platform,
        layout: &Path,
    ) -> Result<BaseImage> {
        let blobs = layout.join("blobs/sha256");
        std::fs::create_dir_all(&blobs)?;
        let (mut media, mut bytes) = self.get_manifest(&image.repository, &image.reference)?;
        let mut manifest: serde_json::Value = serde_json::from_slice(&bytes)?;
        if media.contains("index")
            || media.contains("manifest.list")
            || manifest.get("manifests").is_some()
        {
            let chosen = manifest["manifests"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|m| {
                    m.pointer("/platform/architecture").and_then(|a| a.as_str())
                        == Some(arch.oci_arch())
                        && m.pointer("/platform/os").and_then(|a| a.as_str()) == Some("linux")
                })
                .and_then(|m| m["digest"].as_str().map(String::from))
                .with_context(|| {
                    format!(
                        "{}/{} has no linux/{} image",
                        image.registry,
                        image.repository,
                        arch.oci_arch()
                    )
                })?;
            (media, bytes) = self.get_manifest(&image.repository, &chosen)?;
            manifest = serde_json::from_slice(&bytes)?;
        }
        let _ = media;
        let config_desc = descriptor(&manifest["config"])?;
        let config_path = blobs.join(config_desc.hex());
        self.get_blob(&image.repository, &config_desc.digest, &config_path)?;
        let config: serde_json::Value = serde_json::from_slice(&std::fs::read(&config_path)?)?;
        if let Some(a) = config["architecture"].as_str()
            && a != arch.oci_arch()
        {
            bail!(
                "base image {}/{}:{} is for {a}, but the function is {} ({})",
                image.registry,
                image.repository,
                image.reference,
                arch.lambda_name(),
                arch.oci_arch()
            );
        }
        let mut layers = Vec::new();
        for l in manifest["layers"].as_array().into_iter().flatten() {
            let mut d = descriptor(l)?;
            let path = blobs.join(d.hex());
            if !path.exists() {
                self.get_blob(&image.repository, &d.digest, &path)?;
            }
            // Docker's gzip layer type is byte-for-byte the OCI one.
            if d.media_type == "application/vnd.docker.image.rootfs.diff.tar.gzip" {
                d.media_type = MEDIA_LAYER_GZIP.to_string();
            }
            layers.push(d);
        }
        Ok(BaseImage {
            reference: format!(
                "{}/{}:{}",
                image.registry, image.repository, image.reference
            ),
            layout: layout.to_path_buf(),
            layers,
            config,
        })
    }
}

fn descriptor(v: &serde_json::Value) -> Result<Descriptor> {
    Ok(Descriptor {
        media_type: v["mediaType"]
            .as_str()
            .unwrap_or(MEDIA_MANIFEST)
            .to_string(),
        digest: v["digest"]
            .as_str()
            .context("descriptor without digest")?
            .to_string(),
        size: v["size"].as_u64().context("descriptor without size")?,
    })
}

fn basic(c: &Credentials) -> String {
    let raw = format!("{}:{}", c.username, c.password);
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

fn with_query(url: &str, key: &str, value: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{key}={}", urlencode(value))
}

fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Upload URLs can carry state tokens; keep only scheme, host and path.
fn redact_url(url: &str) -> String {
    url.split('?').next().unwrap_or(url).to_string()
}

/// `key="value", key2="value2"` pairs of a WWW-Authenticate challenge.
fn parse_challenge(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let after = after.trim_start();
        let (value, remaining) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.split_once('"') {
                Some((v, r)) => (v.to_string(), r),
                None => (quoted.to_string(), ""),
            }
        } else {
            match after.split_once(',') {
                Some((v, r)) => (v.trim().to_string(), r),
                None => (after.trim().to_string(), ""),
            }
        };
        out.push((key, value));
        rest = remaining.trim_start_matches(',').trim();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        let r = Reference::parse("127.0.0.1:5000/fn/hello:v1").unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "fn/hello");
        assert_eq!(r.reference, "v1");
        let r = Reference::parse("123456789012.dkr.ecr.us-east-1.amazonaws.com/hello").unwrap();
        assert_eq!(r.reference, "latest");
        let r = Reference::parse("localhost/x@sha256:abc").unwrap();
        assert_eq!(r.reference, "sha256:abc");
        assert!(Reference::parse("hello").is_err());
        assert!(Reference::parse("hello/world").is_err());
        assert!(Reference::parse("localhost/Upper").is_err());
    }

    #[test]
    fn challenges() {
        let p = parse_challenge(
            r#" realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(p[0], ("realm".into(), "https://auth.example/token".into()));
        assert_eq!(p[1], ("service".into(), "registry.example".into()));
        assert_eq!(p[2], ("scope".into(), "repository:a/b:pull,push".into()));
    }

    #[test]
    fn credentials_never_print() {
        let c = Credentials {
            username: "AWS".into(),
            password: "s3cr3t".into(),
        };
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }
}
