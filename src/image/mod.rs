//! OCI container images for Lambda, built without Docker.
//!
//! Owns the image layout: one reproducible layer holding the bootstrap (and,
//! for a dynamically linked bootstrap on `scratch`, the loader and libraries
//! it needs), an image config whose entrypoint is the bootstrap's absolute
//! path, a single-platform manifest, written as an OCI image layout
//! directory and as an `oci-archive` tar. Knows nothing of cargo or AWS;
//! pushing and pulling live in [`registry`].
//!
//! Reproducible: every timestamp is the Unix epoch, owners are root, entries
//! are sorted, gzip runs at a fixed level with no name or time in its
//! header, so the same inputs give the same digests.

pub mod registry;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::json;
use sha2::{Digest as _, Sha256};

pub const MEDIA_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MEDIA_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const MEDIA_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// Where the bootstrap lives in the image: the path Lambda's own base
/// images use for a custom runtime (`$LAMBDA_RUNTIME_DIR/bootstrap`).
pub const BOOTSTRAP_PATH: &str = "/var/runtime/bootstrap";
/// Function files (`include`) go to the task root, as in a zip function.
pub const TASK_ROOT: &str = "/var/task";
/// Bundled shared libraries, on the image's LD_LIBRARY_PATH.
pub const LIB_DIR: &str = "/var/runtime/lib";

/// A content-addressed blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    pub media_type: String,
    /// `sha256:<hex>`.
    pub digest: String,
    pub size: u64,
}

impl Descriptor {
    pub fn to_json(&self) -> serde_json::Value {
        json!({ "mediaType": self.media_type, "digest": self.digest, "size": self.size })
    }

    pub fn hex(&self) -> &str {
        self.digest.trim_start_matches("sha256:")
    }
}

/// A base image already in a local OCI layout (pulled by [`registry`]).
#[derive(Debug, Clone)]
pub struct BaseImage {
    /// How the base was named (for the generated Dockerfile's FROM).
    pub reference: String,
    /// The layout directory holding the base's blobs.
    pub layout: PathBuf,
    pub layers: Vec<Descriptor>,
    /// The base's image config (its `config`, `rootfs.diff_ids`, `history`).
    pub config: serde_json::Value,
}

/// The machine an image is for. The image module speaks OCI's names; the
/// bridge in `package/image.rs` maps Lambda's architecture onto it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    Amd64,
    Arm64,
}

impl Platform {
    /// OCI's `architecture` (`amd64`, `arm64`).
    pub fn oci_arch(self) -> &'static str {
        match self {
            Platform::Amd64 => "amd64",
            Platform::Arm64 => "arm64",
        }
    }

    /// Lambda's name for it (`x86_64`, `arm64`), for messages.
    pub fn lambda_name(self) -> &'static str {
        match self {
            Platform::Amd64 => "x86_64",
            Platform::Arm64 => "arm64",
        }
    }

    /// The OCI platform object of the index and config (`variant` for arm64).
    fn json(self) -> serde_json::Value {
        let mut platform = json!({ "architecture": self.oci_arch(), "os": "linux" });
        if self == Platform::Arm64 {
            platform["variant"] = json!("v8");
        }
        platform
    }
}

/// What goes into the image.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    pub arch: Platform,
    /// The function's bootstrap executable on disk.
    pub bootstrap: PathBuf,
    /// Extra files: (file on disk, absolute path in the image).
    pub files: Vec<(PathBuf, String)>,
    /// Environment for the image config.
    pub env: BTreeMap<String, String>,
    /// Copy the host's CA bundle to /etc/ssl/certs/ca-certificates.crt.
    pub ca_certificates: bool,
    /// Copy the host's /usr/share/zoneinfo.
    pub tzdata: bool,
    /// For a dynamically linked bootstrap on scratch: where its loader and
    /// libraries are found (e.g. `/` for the host's own architecture,
    /// `/usr/aarch64-linux-gnu` for arm64 cross libraries). `None` with a
    /// dynamic binary and no base image is an error.
    pub sysroot: Option<PathBuf>,
    /// Build on top of this image instead of scratch.
    pub base: Option<BaseImage>,
}

/// The result of [`build`].
#[derive(Debug, Clone)]
pub struct BuiltImage {
    pub layout: PathBuf,
    pub archive: PathBuf,
    pub dockerfile: PathBuf,
    pub manifest: Descriptor,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

/// A writer that hashes and counts what passes through it.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> Hashing<W> {
    fn new(inner: W) -> Self {
        Hashing {
            inner,
            hasher: Sha256::new(),
            written: 0,
        }
    }

    fn finish(self) -> (W, String, u64) {
        let hex = hex(&self.hasher.finalize());
        (self.inner, format!("sha256:{hex}"), self.written)
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(bytes)))
}

/// One file of the layer.
struct LayerFile {
    source: PathBuf,
    mode: u32,
}

/// Everything the layer holds, keyed by path without the leading `/`, so a
/// BTreeMap gives the sorted order reproducibility needs.
#[derive(Default)]
struct LayerTree {
    files: BTreeMap<String, LayerFile>,
}

impl LayerTree {
    fn add(&mut self, image_path: &str, source: &Path, mode: u32) -> Result<()> {
        let rel = check_image_path(image_path)?;
        if !source.is_file() {
            bail!(
                "{} (for {image_path} in the image) is not a file",
                source.display()
            );
        }
        self.files.insert(
            rel,
            LayerFile {
                source: source.to_path_buf(),
                mode,
            },
        );
        Ok(())
    }

    /// Every parent directory of every file, sorted.
    fn directories(&self) -> Vec<String> {
        let mut dirs = std::collections::BTreeSet::new();
        for path in self.files.keys() {
            let mut acc = String::new();
            let parts: Vec<&str> = path.split('/').collect();
            for part in &parts[..parts.len() - 1] {
                if !acc.is_empty() {
                    acc.push('/');
                }
                acc.push_str(part);
                dirs.insert(acc.clone());
            }
        }
        dirs.into_iter().collect()
    }
}

/// An absolute image path with no `.`/`..` parts, returned without its `/`.
fn check_image_path(p: &str) -> Result<String> {
    let Some(rel) = p.strip_prefix('/') else {
        bail!("image path `{p}` must be absolute");
    };
    if rel.is_empty()
        || rel
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
    {
        bail!("image path `{p}` must not contain empty, `.` or `..` parts");
    }
    Ok(rel.to_string())
}

fn tar_header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h
}

/// Writes the layer blob (tar+gzip) into `blobs`, streaming: memory does not
/// grow with file sizes. Returns (layer descriptor, diff id).
fn write_layer(tree: &LayerTree, blobs: &Path) -> Result<(Descriptor, String)> {
    let tmp =
        tempfile::NamedTempFile::new_in(blobs).context("creating a temp file for the layer")?;
    let file = io::BufWriter::new(tmp.reopen()?);
    let compressed = Hashing::new(file);
    let gz = flate2::GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(compressed, flate2::Compression::new(6));
    let uncompressed = Hashing::new(gz);
    let mut builder = tar::Builder::new(uncompressed);
    builder.mode(tar::HeaderMode::Deterministic);

    for dir in tree.directories() {
        let mut h = tar_header(tar::EntryType::Directory, 0o755, 0);
        builder.append_data(&mut h, format!("{dir}/"), io::empty())?;
    }
    for (path, file) in &tree.files {
        let f = File::open(&file.source)
            .with_context(|| format!("opening {}", file.source.display()))?;
        let size = f.metadata()?.len();
        let mut h = tar_header(tar::EntryType::Regular, file.mode, size);
        builder.append_data(&mut h, path, BufReader::new(f))?;
    }
    let uncompressed = builder.into_inner()?;
    let (gz, diff_id, _) = uncompressed.finish();
    let compressed = gz.finish()?;
    let (mut file, digest, size) = compressed.finish();
    file.flush()?;
    drop(file);
    let desc = Descriptor {
        media_type: MEDIA_LAYER_GZIP.to_string(),
        digest,
        size,
    };
    tmp.persist(blobs.join(desc.hex()))
        .context("storing the layer blob")?;
    Ok((desc, diff_id))
}

fn write_blob(blobs: &Path, bytes: &[u8], media_type: &str) -> Result<Descriptor> {
    let digest = sha256_digest(bytes);
    let desc = Descriptor {
        media_type: media_type.to_string(),
        digest,
        size: bytes.len() as u64,
    };
    std::fs::write(blobs.join(desc.hex()), bytes)?;
    Ok(desc)
}

/// The loader and shared libraries a dynamically linked ELF needs, found
/// under `sysroot`. Returns (file on disk, path in the image) pairs.
fn bundled_libraries(bootstrap: &Path, sysroot: &Path) -> Result<Vec<(PathBuf, String)>> {
    let mut out: Vec<(PathBuf, String)> = Vec::new();
    let mut queue = vec![bootstrap.to_path_buf()];
    let mut seen = std::collections::BTreeSet::new();
    while let Some(elf) = queue.pop() {
        let info = elf_dynamic_info(&elf)?;
        if let Some(interp) = info.interpreter
            && seen.insert(interp.clone())
        {
            let host = resolve_in_sysroot(sysroot, &interp, &[]).with_context(|| {
                format!("finding the loader {interp} under {}", sysroot.display())
            })?;
            out.push((host, interp));
        }
        for lib in info.needed {
            if !seen.insert(lib.clone()) {
                continue;
            }
            let host = resolve_in_sysroot(sysroot, &lib, LIB_SEARCH).with_context(|| {
                format!(
                    "{} needs {lib}, which is not under {}",
                    elf.display(),
                    sysroot.display()
                )
            })?;
            out.push((host.clone(), format!("{LIB_DIR}/{lib}")));
            queue.push(host);
        }
    }
    Ok(out)
}

/// Library directories searched inside a sysroot (Debian multiarch first).
const LIB_SEARCH: &[&str] = &[
    "lib/x86_64-linux-gnu",
    "usr/lib/x86_64-linux-gnu",
    "lib/aarch64-linux-gnu",
    "usr/lib/aarch64-linux-gnu",
    "lib64",
    "usr/lib64",
    "lib",
    "usr/lib",
];

fn resolve_in_sysroot(sysroot: &Path, name: &str, dirs: &[&str]) -> Result<PathBuf> {
    let candidates: Vec<PathBuf> = if name.starts_with('/') {
        let rel = name.trim_start_matches('/');
        let file = Path::new(rel)
            .file_name()
            .map(PathBuf::from)
            .unwrap_or_default();
        // A cross sysroot keeps the loader in lib/, not at its absolute path.
        vec![sysroot.join(rel), sysroot.join("lib").join(&file)]
    } else {
        dirs.iter().map(|d| sysroot.join(d).join(name)).collect()
    };
    for c in &candidates {
        if c.is_file() {
            // Copy the real file, not the symlink.
            return Ok(std::fs::canonicalize(c)?);
        }
    }
    bail!(
        "not found (looked at {})",
        candidates
            .iter()
            .map(|c| c.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

struct DynamicInfo {
    interpreter: Option<String>,
    needed: Vec<String>,
}

fn elf_dynamic_info(path: &Path) -> Result<DynamicInfo> {
    use object::elf;
    use object::read::elf::{Dyn as _, ElfFile64, FileHeader as _, ProgramHeader as _};

    let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let file = ElfFile64::<object::Endianness>::parse(&*data)
        .with_context(|| format!("{} is not a 64-bit ELF file", path.display()))?;
    let endian = file.endian();
    let mut interpreter = None;
    for ph in file.elf_program_headers() {
        if ph.p_type(endian) == elf::PT_INTERP
            && let Ok(bytes) = ph.data(endian, &*data)
        {
            let s = String::from_utf8_lossy(bytes)
                .trim_end_matches('\0')
                .to_string();
            interpreter = Some(s);
        }
    }
    let mut needed = Vec::new();
    let header = file.elf_header();
    let sections = header.sections(endian, &*data)?;
    if let Some((dynamic, index)) = sections.dynamic(endian, &*data)? {
        let strings = sections.strings(endian, &*data, index)?;
        for d in dynamic {
            if d.d_tag(endian) == elf::DT_NEEDED {
                let off = d.d_val(endian) as u32;
                let name = strings
                    .get(off)
                    .map_err(|_| anyhow::anyhow!("bad DT_NEEDED entry in {}", path.display()))?;
                needed.push(String::from_utf8_lossy(name).into_owned());
            }
        }
    }
    Ok(DynamicInfo {
        interpreter,
        needed,
    })
}

fn check_architecture(bootstrap: &Path, arch: Platform) -> Result<()> {
    use object::{Architecture, Object};
    let data = std::fs::read(bootstrap)
        .with_context(|| format!("reading the bootstrap {}", bootstrap.display()))?;
    let file = object::File::parse(&*data).with_context(|| {
        format!(
            "{} is not an executable this tool can read",
            bootstrap.display()
        )
    })?;
    let found = match file.architecture() {
        Architecture::X86_64 => Some(Platform::Amd64),
        Architecture::Aarch64 => Some(Platform::Arm64),
        _ => None,
    };
    if found != Some(arch) || file.format() != object::BinaryFormat::Elf {
        bail!(
            "{} is {:?} {:?}, but the image is for {name} (linux/{}): build for {name} (`cargo fn build --arch {name}`) or change the image architecture",
            bootstrap.display(),
            file.format(),
            file.architecture(),
            arch.oci_arch(),
            name = arch.lambda_name(),
        );
    }
    Ok(())
}

/// Builds the image into `out_dir` (`image/` layout, `image.tar` archive,
/// `Dockerfile`). The previous image is replaced only once the new one is
/// complete.
pub fn build(spec: &ImageSpec, out_dir: &Path) -> Result<BuiltImage> {
    check_architecture(&spec.bootstrap, spec.arch)?;
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let staging = tempfile::Builder::new()
        .prefix(".image-")
        .tempdir_in(out_dir)
        .context("creating a staging directory")?;
    let layout = staging.path().join("image");
    let blobs = layout.join("blobs/sha256");
    std::fs::create_dir_all(&blobs)?;

    let (tree, bundled) = function_layer(spec)?;
    let (layer, diff_id) = write_layer(&tree, &blobs)?;
    let env = image_env(spec, bundled);
    let written = write_layout(spec, &layout, &blobs, layer, diff_id, &env)?;

    let archive_tmp = staging.path().join("image.tar");
    write_archive(&layout, &archive_tmp)?;
    let dockerfile_tmp = staging.path().join("Dockerfile");
    std::fs::write(&dockerfile_tmp, dockerfile(spec, bundled, &env))?;

    // Swap the finished image in; a failure above left the old one alone.
    let final_layout = out_dir.join("image");
    let final_archive = out_dir.join("image.tar");
    let final_dockerfile = out_dir.join("Dockerfile");
    if final_layout.exists() {
        std::fs::remove_dir_all(&final_layout)?;
    }
    std::fs::rename(&layout, &final_layout)?;
    std::fs::rename(&archive_tmp, &final_archive)?;
    std::fs::rename(&dockerfile_tmp, &final_dockerfile)?;
    Ok(BuiltImage {
        layout: final_layout,
        archive: final_archive,
        dockerfile: final_dockerfile,
        manifest: written.manifest,
        config: written.config,
        layers: written.layers,
    })
}

/// The files of the function's own layer: the bootstrap, its libraries when
/// it is dynamic on scratch (then `true`), extra files, CA bundle, tzdata.
fn function_layer(spec: &ImageSpec) -> Result<(LayerTree, bool)> {
    let mut tree = LayerTree::default();
    tree.add(BOOTSTRAP_PATH, &spec.bootstrap, 0o755)?;
    let dynamic = elf_dynamic_info(&spec.bootstrap)?;
    let is_dynamic = dynamic.interpreter.is_some() || !dynamic.needed.is_empty();
    let mut bundled = false;
    if is_dynamic && spec.base.is_none() {
        let Some(sysroot) = &spec.sysroot else {
            bail!(
                "{} is dynamically linked and the image has no base image: build it with `--musl` for a static binary, configure a base image, or give a sysroot to bundle its libraries from",
                spec.bootstrap.display()
            );
        };
        for (host, image_path) in bundled_libraries(&spec.bootstrap, sysroot)? {
            tree.add(&image_path, &host, 0o755)?;
        }
        bundled = true;
    }
    for (source, dest) in &spec.files {
        tree.add(dest, source, file_mode(source))?;
    }
    if spec.ca_certificates {
        let bundle = Path::new("/etc/ssl/certs/ca-certificates.crt");
        if !bundle.is_file() {
            bail!(
                "CA certificates asked for, but {} is missing: install the ca-certificates package",
                bundle.display()
            );
        }
        tree.add("/etc/ssl/certs/ca-certificates.crt", bundle, 0o644)?;
    }
    if spec.tzdata {
        let zoneinfo = Path::new("/usr/share/zoneinfo");
        if !zoneinfo.is_dir() {
            bail!(
                "tzdata asked for, but {} is missing: install the tzdata package",
                zoneinfo.display()
            );
        }
        for entry in walk_files(zoneinfo)? {
            let rel = entry
                .strip_prefix("/")
                .unwrap_or(&entry)
                .to_string_lossy()
                .into_owned();
            tree.add(&format!("/{rel}"), &entry, 0o644)?;
        }
    }
    Ok((tree, bundled))
}

/// The image config's environment: the base's, then Lambda's defaults, then
/// the function's own values.
fn image_env(spec: &ImageSpec, bundled: bool) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    if let Some(base_env) = spec
        .base
        .as_ref()
        .and_then(|b| b.config.pointer("/config/Env"))
        .and_then(|e| e.as_array())
    {
        for kv in base_env.iter().filter_map(|v| v.as_str()) {
            if let Some((k, v)) = kv.split_once('=') {
                env.insert(k.to_string(), v.to_string());
            }
        }
    }
    env.entry("PATH".into())
        .or_insert_with(|| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    env.insert("LAMBDA_TASK_ROOT".into(), TASK_ROOT.into());
    env.insert("LAMBDA_RUNTIME_DIR".into(), "/var/runtime".into());
    if bundled {
        env.insert(
            "LD_LIBRARY_PATH".into(),
            format!("{LIB_DIR}:{TASK_ROOT}/lib:/opt/lib"),
        );
    }
    for (k, v) in &spec.env {
        env.insert(k.clone(), v.clone());
    }
    env
}

/// The descriptors [`write_layout`] wrote.
struct WrittenLayout {
    manifest: Descriptor,
    config: Descriptor,
    layers: Vec<Descriptor>,
}

/// Writes the OCI layout: the base's layers copied, the function's layer
/// on top, the config, the manifest and the index.
fn write_layout(
    spec: &ImageSpec,
    layout: &Path,
    blobs: &Path,
    layer: Descriptor,
    diff_id: String,
    env: &BTreeMap<String, String>,
) -> Result<WrittenLayout> {
    let mut layers: Vec<Descriptor> = Vec::new();
    let mut diff_ids: Vec<serde_json::Value> = Vec::new();
    let mut history: Vec<serde_json::Value> = Vec::new();
    if let Some(base) = &spec.base {
        for l in &base.layers {
            let from = base.layout.join("blobs/sha256").join(l.hex());
            std::fs::copy(&from, blobs.join(l.hex()))
                .with_context(|| format!("copying base layer {}", l.digest))?;
            layers.push(l.clone());
        }
        if let Some(ids) = base
            .config
            .pointer("/rootfs/diff_ids")
            .and_then(|v| v.as_array())
        {
            diff_ids.extend(ids.iter().cloned());
        }
        if let Some(h) = base.config.get("history").and_then(|v| v.as_array()) {
            history.extend(h.iter().cloned());
        }
    }
    layers.push(layer);
    diff_ids.push(json!(diff_id));
    history.push(
        json!({ "created": "1970-01-01T00:00:00Z", "created_by": "cargo-fn package --image" }),
    );

    let env_list: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let platform = spec.arch.json();
    let mut config = platform.clone();
    config["created"] = json!("1970-01-01T00:00:00Z");
    config["config"] = json!({
        "Entrypoint": [BOOTSTRAP_PATH],
        "Env": env_list,
        "WorkingDir": TASK_ROOT,
    });
    config["rootfs"] = json!({ "type": "layers", "diff_ids": diff_ids });
    config["history"] = json!(history);
    let config_bytes = serde_json::to_vec(&config)?;
    let config_desc = write_blob(blobs, &config_bytes, MEDIA_CONFIG)?;

    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": config_desc.to_json(),
        "layers": layers.iter().map(Descriptor::to_json).collect::<Vec<_>>(),
    });
    let manifest_bytes = serde_json::to_vec(&manifest)?;
    let manifest_desc = write_blob(blobs, &manifest_bytes, MEDIA_MANIFEST)?;

    let mut entry = manifest_desc.to_json();
    entry["annotations"] = json!({ "org.opencontainers.image.ref.name": "latest" });
    entry["platform"] = platform;
    let index = json!({ "schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": [entry] });
    std::fs::write(layout.join("index.json"), serde_json::to_vec(&index)?)?;
    std::fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    Ok(WrittenLayout {
        manifest: manifest_desc,
        config: config_desc,
        layers,
    })
}

/// 0o755 for files with any execute bit, 0o644 otherwise (like the zips).
fn file_mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(path) {
        Ok(m) if m.permissions().mode() & 0o111 != 0 => 0o755,
        _ => 0o644,
    }
}

fn walk_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let ty = entry.file_type()?;
            if ty.is_dir() {
                stack.push(entry.path());
            } else if ty.is_file() {
                out.push(entry.path());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The layout as an `oci-archive` tar (what `skopeo copy oci-archive:` reads).
fn write_archive(layout: &Path, archive: &Path) -> Result<()> {
    let file = io::BufWriter::new(File::create(archive)?);
    let mut builder = tar::Builder::new(file);
    builder.mode(tar::HeaderMode::Deterministic);
    let mut entries = walk_files(layout)?;
    entries.sort();
    for path in entries {
        let rel = path.strip_prefix(layout)?.to_string_lossy().into_owned();
        let f = File::open(&path)?;
        let size = f.metadata()?.len();
        let mut h = tar_header(tar::EntryType::Regular, 0o644, size);
        builder.append_data(&mut h, rel, BufReader::new(f))?;
    }
    builder.into_inner()?.flush()?;
    Ok(())
}

/// An equivalent Dockerfile for users who prefer `docker build`, meant to be
/// built with the output directory as its context (the bootstrap sits there).
fn dockerfile(spec: &ImageSpec, bundled: bool, env: &BTreeMap<String, String>) -> String {
    let mut s = String::new();
    s.push_str("# Generated by cargo-fn: the equivalent of `cargo fn package --image`.\n");
    s.push_str("# Build from this directory: docker build --provenance=false -t NAME .\n");
    let from = match &spec.base {
        Some(base) => base.reference.clone(),
        // A dynamically linked bootstrap needs a glibc: Lambda's own base
        // image for custom runtimes carries the runtime's.
        None if bundled => "public.ecr.aws/lambda/provided:al2023".to_string(),
        None => "scratch".to_string(),
    };
    s.push_str(&format!(
        "FROM --platform=linux/{} {from}\n",
        spec.arch.oci_arch()
    ));
    s.push_str(&format!("COPY bootstrap {BOOTSTRAP_PATH}\n"));
    for (source, dest) in &spec.files {
        s.push_str(&format!("COPY {} {dest}\n", source.display()));
    }
    for (k, v) in env {
        if k == "LD_LIBRARY_PATH" && bundled {
            continue;
        }
        s.push_str(&format!("ENV {k}=\"{v}\"\n"));
    }
    s.push_str(&format!("WORKDIR {TASK_ROOT}\n"));
    s.push_str(&format!("ENTRYPOINT [\"{BOOTSTRAP_PATH}\"]\n"));
    s
}

/// Reads a layout's single manifest (for pushing).
pub fn read_layout(layout: &Path) -> Result<(Descriptor, serde_json::Value)> {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).with_context(|| {
            format!("{} is not an OCI layout (no index.json)", layout.display())
        })?)?;
    let entry = index
        .pointer("/manifests/0")
        .context("the layout's index.json lists no manifest")?;
    let digest = entry["digest"]
        .as_str()
        .context("manifest digest")?
        .to_string();
    let desc = Descriptor {
        media_type: entry["mediaType"]
            .as_str()
            .unwrap_or(MEDIA_MANIFEST)
            .to_string(),
        size: entry["size"].as_u64().unwrap_or(0),
        digest,
    };
    let mut bytes = Vec::new();
    File::open(layout.join("blobs/sha256").join(desc.hex()))?.read_to_end(&mut bytes)?;
    if sha256_digest(&bytes) != desc.digest {
        bail!("manifest blob {} does not match its digest", desc.digest);
    }
    Ok((desc, serde_json::from_slice(&bytes)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_paths_must_be_absolute_and_clean() {
        assert!(check_image_path("/var/task/x").is_ok());
        assert!(check_image_path("var/task").is_err());
        assert!(check_image_path("/var/../etc/passwd").is_err());
        assert!(check_image_path("/var//x").is_err());
        assert!(check_image_path("/").is_err());
    }

    fn raw_tar(entries: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, ty, link) in entries {
            let mut h = tar::Header::new_old();
            // Write the name bytes directly: the tar crate refuses `..`.
            h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
            h.set_entry_type(*ty);
            h.set_size(0);
            h.set_mode(0o644);
            if !link.is_empty() {
                h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
            }
            h.set_cksum();
            b.append(&h, std::io::empty()).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn unpacking_refuses_entries_that_escape_the_root() {
        for (name, ty, link) in [
            ("../evil", tar::EntryType::Regular, ""),
            ("a/../../evil", tar::EntryType::Regular, ""),
            ("a/link", tar::EntryType::Symlink, "../../etc/passwd"),
            ("a/hard", tar::EntryType::Link, "../../etc/passwd"),
        ] {
            let root = tempfile::tempdir().unwrap();
            let data = raw_tar(&[(name, ty, link)]);
            let err = extract_layer(&data[..], root.path()).unwrap_err();
            assert!(format!("{err:#}").contains("image root"), "{name}: {err:#}");
        }
    }

    #[test]
    fn absolute_links_stay_inside_the_root() {
        let root = tempfile::tempdir().unwrap();
        let data = raw_tar(&[("lib64/ld.so", tar::EntryType::Symlink, "/usr/lib/ld.so")]);
        extract_layer(&data[..], root.path()).unwrap();
        let target = std::fs::read_link(root.path().join("lib64/ld.so")).unwrap();
        assert_eq!(target, PathBuf::from("../usr/lib/ld.so"));
    }

    #[test]
    fn whiteouts_remove_lower_files() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("etc")).unwrap();
        std::fs::write(root.path().join("etc/old"), "x").unwrap();
        let data = raw_tar(&[("etc/.wh.old", tar::EntryType::Regular, "")]);
        extract_layer(&data[..], root.path()).unwrap();
        assert!(!root.path().join("etc/old").exists());
    }

    #[test]
    fn directories_are_listed_once_and_sorted() {
        let mut tree = LayerTree::default();
        let f = tempfile::NamedTempFile::new().unwrap();
        tree.add("/var/runtime/bootstrap", f.path(), 0o755).unwrap();
        tree.add("/var/task/a/b.txt", f.path(), 0o644).unwrap();
        assert_eq!(
            tree.directories(),
            vec!["var", "var/runtime", "var/task", "var/task/a"]
        );
    }
}

/// An image unpacked to a directory, ready to run without a container
/// engine (for `cargo fn watch --image`).
#[derive(Debug, Clone)]
pub struct UnpackedImage {
    pub rootfs: PathBuf,
    /// The program to start and its arguments, as host paths: the
    /// entrypoint itself, or the image's own dynamic loader running it with
    /// the image's libraries, so what runs is what ships.
    pub command: PathBuf,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub working_dir: PathBuf,
}

/// Extracts every layer of the layout's image into `dest/rootfs`, in order.
/// Entries that would land outside the root (absolute, `..`, links
/// pointing out) are refused.
pub fn unpack(layout: &Path, dest: &Path) -> Result<UnpackedImage> {
    let (_, manifest) = read_layout(layout)?;
    let blobs = layout.join("blobs/sha256");
    let config_digest = manifest["config"]["digest"]
        .as_str()
        .context("manifest without config")?;
    let config: serde_json::Value = serde_json::from_slice(&std::fs::read(
        blobs.join(config_digest.trim_start_matches("sha256:")),
    )?)?;
    let rootfs = dest.join("rootfs");
    if rootfs.exists() {
        std::fs::remove_dir_all(&rootfs)?;
    }
    std::fs::create_dir_all(&rootfs)?;
    for layer in manifest["layers"].as_array().into_iter().flatten() {
        let digest = layer["digest"].as_str().context("layer without digest")?;
        let file = File::open(blobs.join(digest.trim_start_matches("sha256:")))?;
        let media = layer["mediaType"].as_str().unwrap_or_default();
        let reader: Box<dyn Read> = if media.ends_with("gzip") {
            Box::new(flate2::read::GzDecoder::new(BufReader::new(file)))
        } else {
            Box::new(BufReader::new(file))
        };
        extract_layer(reader, &rootfs).with_context(|| format!("unpacking layer {digest}"))?;
    }
    let cfg = &config["config"];
    let entrypoint: Vec<String> = cfg["Entrypoint"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(cfg["Cmd"].as_array().into_iter().flatten())
        .filter_map(|v| v.as_str().map(String::from))
        .collect();
    let Some(program) = entrypoint.first() else {
        bail!("the image has no entrypoint or command");
    };
    let mut env = BTreeMap::new();
    for kv in cfg["Env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str())
    {
        if let Some((k, v)) = kv.split_once('=') {
            env.insert(k.to_string(), v.to_string());
        }
    }
    let working_dir = rootfs.join(
        cfg["WorkingDir"]
            .as_str()
            .unwrap_or("/")
            .trim_start_matches('/'),
    );
    // The task root exists in Lambda even when the image puts nothing there.
    std::fs::create_dir_all(&working_dir)?;
    let program_host = rootfs.join(check_image_path(program)?);
    let info = elf_dynamic_info(&program_host)?;
    let (command, mut args) = match info.interpreter {
        // Run the image's own loader so the image's libraries are used.
        Some(interp) => {
            let loader = rootfs.join(check_image_path(&interp)?);
            let lib_path: Vec<String> = env
                .get("LD_LIBRARY_PATH")
                .map(|p| {
                    p.split(':')
                        .filter(|d| d.starts_with('/'))
                        .map(|d| rootfs.join(d.trim_start_matches('/')).display().to_string())
                        .collect()
                })
                .unwrap_or_default();
            let mut args = vec!["--library-path".to_string(), lib_path.join(":")];
            args.push(program_host.display().to_string());
            (loader, args)
        }
        None => (program_host, Vec::new()),
    };
    args.extend(entrypoint[1..].iter().cloned());
    Ok(UnpackedImage {
        rootfs,
        command,
        args,
        env,
        working_dir,
    })
}

fn extract_layer(reader: impl Read, rootfs: &Path) -> Result<()> {
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        let name = path.to_string_lossy().to_string();
        let rel = name.trim_start_matches("./").trim_end_matches('/');
        if rel.is_empty() {
            continue;
        }
        let clean = check_image_path(&format!("/{rel}"))
            .with_context(|| format!("layer entry `{name}` escapes the image root"))?;
        let file_name = Path::new(&clean)
            .file_name()
            .map(|f| f.to_string_lossy().to_string())
            .unwrap_or_default();
        // Whiteouts delete what a lower layer added.
        if let Some(hidden) = file_name.strip_prefix(".wh.") {
            let target = rootfs.join(&clean).with_file_name(hidden);
            if target.is_dir() {
                std::fs::remove_dir_all(&target)?;
            } else if target.exists() {
                std::fs::remove_file(&target)?;
            }
            continue;
        }
        let ty = entry.header().entry_type();
        let dest = rootfs.join(&clean);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        if dest.is_file() || dest.is_symlink() {
            std::fs::remove_file(&dest)?;
        }
        if ty.is_symlink() || ty.is_hard_link() {
            let link = entry
                .link_name()?
                .map(|l| l.to_string_lossy().to_string())
                .unwrap_or_default();
            let parent = Path::new(&clean).parent().unwrap_or(Path::new(""));
            let target = inside_root(parent, &link).with_context(|| {
                format!("layer entry `{name}` links outside the image root ({link})")
            })?;
            if ty.is_hard_link() {
                std::fs::copy(rootfs.join(&target), &dest)?;
            } else {
                // Relative, so the link resolves inside the unpacked root and
                // never into the host's own files.
                let up = "../".repeat(parent.components().count());
                std::os::unix::fs::symlink(format!("{up}{}", target.display()), &dest)?;
            }
            continue;
        }
        entry.unpack(&dest)?;
    }
    Ok(())
}

/// Resolves a link found in directory `parent` (relative to the image
/// root) to a path relative to the root; `None` if it climbs out.
fn inside_root(parent: &Path, link: &str) -> Option<PathBuf> {
    let joined = if link.starts_with('/') {
        PathBuf::from(link.trim_start_matches('/'))
    } else {
        parent.join(link)
    };
    let mut out: Vec<String> = Vec::new();
    for c in joined.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop()?;
            }
            std::path::Component::Normal(p) => out.push(p.to_string_lossy().into_owned()),
            _ => {}
        }
    }
    Some(out.iter().collect())
}
