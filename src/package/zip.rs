//! Byte-reproducible zip archives, written by streaming: the same entries
//! give the same bytes whatever the files' timestamps, owners or the order
//! they were listed in, and memory does not grow with file size.
//!
//! Reproducible means: entries sorted by name, one fixed timestamp
//! (1980-01-01 00:00, the zip epoch), Unix permissions 0755 or 0644 only,
//! no extra fields, and one fixed compression rule: deflate at level 6,
//! except a file whose sample does not compress (already compressed or
//! random data) is stored. The rule depends only on the bytes, so the
//! output does too; storing incompressible data keeps packaging at disk
//! speed where deflate would spend CPU for nothing. Knows nothing about Lambda.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use base64::Engine;
use sha2::{Digest, Sha256};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

/// The deflate level of every entry. Fixed so the bytes never depend on a
/// default that may change; 6 is zlib's balance of size and speed.
pub const COMPRESSION_LEVEL: i64 = 6;

/// A file to put in the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path inside the archive, `/`-separated, relative.
    pub name: String,
    pub source: PathBuf,
    /// 0o755 for executables, 0o644 otherwise.
    pub mode: u32,
}

/// A written archive.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Archive {
    pub path: PathBuf,
    /// Size of the zip file.
    pub zipped_size: u64,
    /// Sum of the entries' sizes.
    pub unzipped_size: u64,
    /// Base64 SHA-256 of the zip bytes: what Lambda reports as CodeSha256.
    pub code_sha256: String,
    pub entries: Vec<String>,
}

/// Writes `entries` to `dest` as a reproducible zip, atomically (a temp
/// file in the same directory, renamed over `dest` once complete).
pub fn write(dest: &Path, mut entries: Vec<Entry>) -> Result<Archive> {
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    for pair in entries.windows(2) {
        if pair[0].name == pair[1].name {
            bail!(
                "two files would be stored as `{}` in {} ({} and {})",
                pair[0].name,
                dest.display(),
                pair[0].source.display(),
                pair[1].source.display()
            );
        }
    }
    for e in &entries {
        if e.name.is_empty()
            || e.name.starts_with('/')
            || e.name.split('/').any(|c| c == ".." || c.is_empty())
        {
            bail!(
                "refusing the archive path `{}`: it must be relative and stay inside the archive",
                e.name
            );
        }
    }
    let dir = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix(".cargo-fn-zip.")
        .tempfile_in(dir)
        .with_context(|| format!("creating a temp file in {}", dir.display()))?;

    let mut zip = ZipWriter::new(BufWriter::with_capacity(256 * 1024, tmp.reopen()?));
    let mut unzipped = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    for e in &entries {
        let mut input =
            File::open(&e.source).with_context(|| format!("opening {}", e.source.display()))?;
        let len = input.metadata()?.len();
        let compress = compressible(&mut input, len, &mut buf)
            .with_context(|| format!("reading {}", e.source.display()))?;
        let options = SimpleFileOptions::default();
        let options = if compress {
            options
                .compression_method(CompressionMethod::Deflated)
                .compression_level(Some(COMPRESSION_LEVEL))
        } else {
            options.compression_method(CompressionMethod::Stored)
        };
        let options = options
            .last_modified_time(DateTime::default())
            .unix_permissions(e.mode)
            .large_file(len >= u32::MAX as u64);
        zip.start_file(e.name.as_str(), options)
            .with_context(|| format!("adding {} to the zip", e.name))?;
        loop {
            let n = input
                .read(&mut buf)
                .with_context(|| format!("reading {}", e.source.display()))?;
            if n == 0 {
                break;
            }
            std::io::Write::write_all(&mut zip, &buf[..n]).context("compressing")?;
            unzipped += n as u64;
        }
    }
    let mut inner = zip.finish().context("finishing the zip")?;
    std::io::Write::flush(&mut inner).context("writing the zip")?;
    let file = inner
        .into_inner()
        .map_err(|e| e.into_error())
        .context("writing the zip")?;
    // A temp file is created 0600; the zip is a build output like any
    // other (0644), readable by the tools and users that ship it.
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o644))
            .with_context(|| format!("setting the mode of {}", dest.display()))?;
    }
    file.sync_all().ok();
    drop(file);

    let (code_sha256, zipped_size) = sha256_base64(tmp.path())?;
    tmp.persist(dest)
        .with_context(|| format!("writing {}", dest.display()))?;
    Ok(Archive {
        path: dest.to_path_buf(),
        zipped_size,
        unzipped_size: unzipped,
        code_sha256,
        entries: entries.into_iter().map(|e| e.name).collect(),
    })
}

/// Size of each of the sampled blocks, and how many.
const SAMPLE_BLOCK: usize = 64 * 1024;
const SAMPLES: u64 = 4;

/// Whether deflate is worth it: deflates a few blocks spread over the file
/// and says no when they shrink by less than 3%. Small files always
/// deflate. Leaves `input` at its start.
fn compressible(input: &mut File, len: u64, buf: &mut [u8]) -> std::io::Result<bool> {
    use std::io::{Seek, SeekFrom, Write};
    if len < SAMPLES * SAMPLE_BLOCK as u64 {
        return Ok(true);
    }
    let mut encoder = flate2::write::DeflateEncoder::new(
        Vec::with_capacity(SAMPLE_BLOCK),
        flate2::Compression::new(COMPRESSION_LEVEL as u32),
    );
    let mut sampled = 0u64;
    for i in 0..SAMPLES {
        input.seek(SeekFrom::Start(len / SAMPLES * i))?;
        let block = &mut buf[..SAMPLE_BLOCK];
        input.read_exact(block)?;
        encoder.write_all(block)?;
        sampled += SAMPLE_BLOCK as u64;
    }
    let compressed = encoder.finish()?.len() as u64;
    input.seek(SeekFrom::Start(0))?;
    Ok(compressed * 100 < sampled * 97)
}

/// Base64 SHA-256 of a file (Lambda's CodeSha256 form) and its size, streamed.
pub fn sha256_base64(path: &Path) -> Result<(String, u64)> {
    let mut reader = BufReader::with_capacity(
        256 * 1024,
        File::open(path).with_context(|| format!("opening {}", path.display()))?,
    );
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((
        base64::engine::general_purpose::STANDARD.encode(hasher.finalize()),
        total,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_entries_same_bytes_whatever_the_order_and_mtime() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        std::fs::write(&a, b"bootstrap bytes").unwrap();
        std::fs::write(&b, b"config").unwrap();
        let entries = vec![
            Entry {
                name: "bootstrap".into(),
                source: a.clone(),
                mode: 0o755,
            },
            Entry {
                name: "conf/app.toml".into(),
                source: b.clone(),
                mode: 0o644,
            },
        ];
        let one = write(&dir.path().join("one.zip"), entries.clone()).unwrap();
        let f = File::options().write(true).open(&a).unwrap();
        f.set_modified(
            std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000),
        )
        .unwrap();
        let mut reversed = entries;
        reversed.reverse();
        let two = write(&dir.path().join("two.zip"), reversed).unwrap();
        assert_eq!(one.code_sha256, two.code_sha256);
        assert_eq!(
            std::fs::read(dir.path().join("one.zip")).unwrap(),
            std::fs::read(dir.path().join("two.zip")).unwrap()
        );
        assert_eq!(one.entries, vec!["bootstrap", "conf/app.toml"]);
        assert_eq!(one.unzipped_size, 21);
    }

    #[test]
    fn zips_are_written_readable_like_other_build_outputs() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("bootstrap");
        std::fs::write(&src, b"bytes").unwrap();
        let zip = dir.path().join("fn.zip");
        let entry = Entry {
            name: "bootstrap".into(),
            source: src,
            mode: 0o755,
        };
        write(&zip, vec![entry]).unwrap();
        let mode = std::fs::metadata(&zip).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644, "{mode:o}");
    }

    #[test]
    fn incompressible_files_are_stored_and_the_rest_deflated() {
        let dir = tempfile::tempdir().unwrap();
        let noise = dir.path().join("noise");
        let mut state = 0x1234_5678_9abc_def1u64;
        let bytes: Vec<u8> = (0..512 * 1024)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 24) as u8
            })
            .collect();
        std::fs::write(&noise, &bytes).unwrap();
        let text = dir.path().join("text");
        std::fs::write(&text, "a compressible line\n".repeat(30_000)).unwrap();
        let zip_path = dir.path().join("x.zip");
        write(
            &zip_path,
            vec![
                Entry {
                    name: "noise".into(),
                    source: noise,
                    mode: 0o644,
                },
                Entry {
                    name: "text".into(),
                    source: text,
                    mode: 0o644,
                },
            ],
        )
        .unwrap();
        let mut archive = zip::ZipArchive::new(File::open(&zip_path).unwrap()).unwrap();
        let noise = archive.by_name("noise").unwrap();
        assert_eq!(noise.compression(), CompressionMethod::Stored);
        drop(noise);
        let mut text = archive.by_name("text").unwrap();
        assert_eq!(text.compression(), CompressionMethod::Deflated);
        let mut back = String::new();
        text.read_to_string(&mut back).unwrap();
        assert_eq!(back.len(), 20 * 30_000);
    }

    #[test]
    fn duplicate_and_escaping_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        std::fs::write(&a, b"x").unwrap();
        let dup = vec![
            Entry {
                name: "bootstrap".into(),
                source: a.clone(),
                mode: 0o755,
            },
            Entry {
                name: "bootstrap".into(),
                source: a.clone(),
                mode: 0o644,
            },
        ];
        let dest = dir.path().join("x.zip");
        assert!(
            write(&dest, dup)
                .unwrap_err()
                .to_string()
                .contains("two files")
        );
        let escape = vec![Entry {
            name: "../evil".into(),
            source: a,
            mode: 0o644,
        }];
        assert!(write(&dest, escape).is_err());
        assert!(!dest.exists(), "nothing half-written");
    }

    #[test]
    fn a_failed_write_keeps_the_previous_zip() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        std::fs::write(&a, b"x").unwrap();
        let dest = dir.path().join("x.zip");
        let good = write(
            &dest,
            vec![Entry {
                name: "bootstrap".into(),
                source: a,
                mode: 0o755,
            }],
        )
        .unwrap();
        let missing = vec![Entry {
            name: "bootstrap".into(),
            source: dir.path().join("nope"),
            mode: 0o755,
        }];
        assert!(write(&dest, missing).is_err());
        assert_eq!(sha256_base64(&dest).unwrap().0, good.code_sha256);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".cargo-fn-zip"))
            .collect();
        assert!(leftovers.is_empty(), "temp files are cleaned up");
    }
}
