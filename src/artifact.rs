//! Checks that an executable can run on Lambda: ELF class and machine match
//! the architecture, every versioned glibc symbol it needs exists in the
//! runtime's glibc, and its interpreter and shared libraries are ones the
//! runtime image has.
//!
//! Pure inspection of bytes with the `object` crate: knows nothing about
//! cargo, zig or packaging. Callers turn an [`ArtifactError`] into a hinted
//! error; its message already names the symbol, version, limit and fix.

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;

use anyhow::{Context, Result};
use object::read::elf::{Dyn, FileHeader, ProgramHeader, Sym};
use object::read::{ReadCache, ReadRef};
use object::{FileKind, elf};

use crate::config::{Arch, Runtime};

/// A glibc symbol version such as `GLIBC_2.34` -> (2, 34).
pub type GlibcVersion = (u32, u32);

/// Libraries the Lambda OS-only runtimes provide: glibc's own libraries,
/// libgcc_s, and libstdc++ (needed by the package manager in both images).
const RUNTIME_LIBRARIES: &[&str] = &[
    "libc.so.6",
    "libm.so.6",
    "libdl.so.2",
    "libpthread.so.0",
    "librt.so.1",
    "libutil.so.1",
    "libresolv.so.2",
    "libanl.so.1",
    "libgcc_s.so.1",
    "libstdc++.so.6",
    "ld-linux-x86-64.so.2",
    "ld-linux-aarch64.so.1",
];

/// What the check found out about a binary that passed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ArtifactReport {
    /// True when statically linked (no interpreter).
    pub static_binary: bool,
    /// The highest `GLIBC_x.y` version the binary needs, if any.
    pub max_glibc: Option<String>,
    #[serde(skip)]
    pub max_glibc_version: Option<GlibcVersion>,
    pub needed_libraries: Vec<String>,
}

/// Why a binary cannot run on the chosen runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArtifactError {
    NotElf,
    WrongClass,
    WrongMachine {
        expected: Arch,
        found: String,
    },
    GlibcTooNew {
        symbol: String,
        version: GlibcVersion,
        limit: GlibcVersion,
        runtime: Runtime,
        /// How many other symbols are also too new.
        others: usize,
    },
    Interpreter {
        found: String,
        expected: &'static str,
    },
    Library {
        name: String,
    },
}

fn v(version: GlibcVersion) -> String {
    format!("{}.{}", version.0, version.1)
}

impl fmt::Display for ArtifactError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArtifactError::NotElf => f.write_str(
                "not a Linux ELF executable; Lambda runs Linux binaries (build with `cargo fn build`)",
            ),
            ArtifactError::WrongClass => f.write_str(
                "a 32-bit ELF executable; Lambda runs 64-bit x86_64 or arm64 binaries",
            ),
            ArtifactError::WrongMachine { expected, found } => write!(
                f,
                "built for {found}, but the function's architecture is {expected}; \
                 rebuild with `cargo fn build --arch {expected}` or set the architecture to match the binary"
            ),
            ArtifactError::GlibcTooNew {
                symbol,
                version,
                limit,
                runtime,
                others,
            } => {
                write!(
                    f,
                    "needs `{symbol}` from GLIBC_{}, but {runtime} has glibc {} (symbols must be at GLIBC_{} or older)",
                    v(*version),
                    v(*limit),
                    v(*limit)
                )?;
                if *others > 0 {
                    write!(f, "; {others} more symbol(s) are also too new")?;
                }
                write!(
                    f,
                    ". Fix: build with `cargo fn build` (pins glibc {} through zig), \
                     or `cargo fn build --musl` for a static binary",
                    v(*limit)
                )?;
                if *runtime == Runtime::ProvidedAl2 {
                    write!(f, ", or use runtime provided.al2023 (glibc 2.34)")?;
                }
                Ok(())
            }
            ArtifactError::Interpreter { found, expected } => write!(
                f,
                "uses the program interpreter `{found}`, which Lambda does not have (expected `{expected}` or a static binary); \
                 build with `cargo fn build` (glibc) or `cargo fn build --musl` (static)"
            ),
            ArtifactError::Library { name } => write!(
                f,
                "needs the shared library `{name}`, which the Lambda runtime does not provide; \
                 link it statically (e.g. rustls instead of OpenSSL, or the crate's `vendored`/`bundled` feature) \
                 or build with `--musl`"
            ),
        }
    }
}

impl std::error::Error for ArtifactError {}

/// The interpreter (dynamic loader) glibc uses on each architecture.
pub fn interpreter(arch: Arch) -> &'static str {
    match arch {
        Arch::X86_64 => "/lib64/ld-linux-x86-64.so.2",
        Arch::Arm64 => "/lib/ld-linux-aarch64.so.1",
    }
}

/// Reads `path` and checks it (see [`check_bytes`]).
/// Only the headers, dynamic section and symbol tables are read (through
/// a read cache), so memory does not grow with the binary's size.
pub fn check_file(path: &Path, arch: Arch, runtime: Runtime) -> Result<ArtifactReport> {
    let file = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let cache = ReadCache::new(file);
    check_data(&cache, arch, runtime)
        .with_context(|| format!("{} cannot run on Lambda", path.display()))
}

/// Checks an executable's bytes against an architecture and runtime.
pub fn check_bytes(data: &[u8], arch: Arch, runtime: Runtime) -> Result<ArtifactReport> {
    check_data(data, arch, runtime)
}

fn check_data<'data, R: ReadRef<'data>>(
    data: R,
    arch: Arch,
    runtime: Runtime,
) -> Result<ArtifactReport> {
    match FileKind::parse(data) {
        Ok(FileKind::Elf64) => {}
        Ok(FileKind::Elf32) => return Err(ArtifactError::WrongClass.into()),
        _ => return Err(ArtifactError::NotElf.into()),
    }
    let header =
        elf::FileHeader64::<object::Endianness>::parse(data).context("parsing the ELF header")?;
    let endian = header.endian().context("reading the ELF byte order")?;
    let machine = header.e_machine(endian);
    let expected_machine = match arch {
        Arch::X86_64 => elf::EM_X86_64,
        Arch::Arm64 => elf::EM_AARCH64,
    };
    if machine != expected_machine {
        let found = if machine == elf::EM_X86_64 {
            "x86_64".to_string()
        } else if machine == elf::EM_AARCH64 {
            "arm64".to_string()
        } else {
            format!("ELF machine {machine:?}")
        };
        return Err(ArtifactError::WrongMachine {
            expected: arch,
            found,
        }
        .into());
    }

    let mut interp = None;
    for ph in header
        .program_headers(endian, data)
        .context("reading the ELF program headers")?
    {
        if let Some(bytes) = ph.interpreter(endian, data).context("reading PT_INTERP")? {
            interp = Some(String::from_utf8_lossy(bytes).into_owned());
        }
    }
    if let Some(found) = &interp
        && found != interpreter(arch)
    {
        return Err(ArtifactError::Interpreter {
            found: found.clone(),
            expected: interpreter(arch),
        }
        .into());
    }

    let sections = header
        .sections(endian, data)
        .context("reading the ELF sections")?;

    // Shared libraries (DT_NEEDED).
    let mut needed = Vec::new();
    if let Some((dynamic, strtab_index)) =
        sections.dynamic(endian, data).context("reading .dynamic")?
    {
        let strings = sections
            .strings(endian, data, strtab_index)
            .context("reading the dynamic string table")?;
        for d in dynamic {
            if d.tag(endian) == elf::DT_NEEDED {
                let name = d
                    .string(endian, strings)
                    .context("reading a DT_NEEDED name")?;
                needed.push(String::from_utf8_lossy(name).into_owned());
            }
        }
    }
    for name in &needed {
        if !RUNTIME_LIBRARIES.contains(&name.as_str()) {
            return Err(ArtifactError::Library { name: name.clone() }.into());
        }
    }

    // Versioned glibc symbols the binary imports.
    let limit = runtime.glibc();
    let mut too_new: Vec<(GlibcVersion, String)> = Vec::new();
    let mut max: Option<GlibcVersion> = None;
    if let Some(versions) = sections
        .versions(endian, data)
        .context("reading symbol versions")?
    {
        let symbols = sections
            .symbols(endian, data, elf::SHT_DYNSYM)
            .context("reading the dynamic symbols")?;
        for (index, sym) in symbols.enumerate() {
            if !sym.is_undefined(endian) || sym.st_name(endian) == 0 {
                continue;
            }
            let vindex = versions.version_index(endian, index);
            let Some(version) = versions
                .version(vindex.into())
                .context("reading a symbol version")?
            else {
                continue;
            };
            let Some(parsed) = parse_glibc_version(version.name()) else {
                continue;
            };
            max = max.max(Some(parsed));
            if parsed > limit {
                let name = symbols
                    .symbol_name(endian, sym)
                    .context("reading a symbol name")?;
                too_new.push((parsed, String::from_utf8_lossy(name).into_owned()));
            }
        }
    }
    if !too_new.is_empty() {
        // Name the newest symbol first: it is the one that decides the fix.
        too_new.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let distinct: BTreeSet<&str> = too_new.iter().map(|(_, s)| s.as_str()).collect();
        let (version, symbol) = too_new[0].clone();
        return Err(ArtifactError::GlibcTooNew {
            symbol,
            version,
            limit,
            runtime,
            others: distinct.len() - 1,
        }
        .into());
    }

    Ok(ArtifactReport {
        static_binary: interp.is_none(),
        max_glibc: max.map(|m| format!("GLIBC_{}", v(m))),
        max_glibc_version: max,
        needed_libraries: needed,
    })
}

/// `GLIBC_2.34` -> (2, 34); `GLIBC_2.2.5` -> (2, 2); anything else -> None.
pub fn parse_glibc_version(name: &[u8]) -> Option<GlibcVersion> {
    let rest = std::str::from_utf8(name).ok()?.strip_prefix("GLIBC_")?;
    let mut parts = rest.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_glibc_versions() {
        assert_eq!(parse_glibc_version(b"GLIBC_2.34"), Some((2, 34)));
        assert_eq!(parse_glibc_version(b"GLIBC_2.2.5"), Some((2, 2)));
        assert_eq!(parse_glibc_version(b"GLIBC_PRIVATE"), None);
        assert_eq!(parse_glibc_version(b"GCC_3.0"), None);
    }

    #[test]
    fn rejects_non_elf() {
        let err = check_bytes(
            b"#!/bin/sh\necho hi\n",
            Arch::X86_64,
            Runtime::ProvidedAl2023,
        )
        .unwrap_err();
        assert_eq!(
            err.downcast_ref::<ArtifactError>(),
            Some(&ArtifactError::NotElf)
        );
    }

    #[test]
    fn checks_the_running_test_binary() {
        // The test binary itself is a real ELF for the host: a wrong
        // architecture must be refused whatever the host is.
        let exe = std::env::current_exe().unwrap();
        let data = std::fs::read(exe).unwrap();
        let other = if cfg!(target_arch = "x86_64") {
            Arch::Arm64
        } else {
            Arch::X86_64
        };
        let err = check_bytes(&data, other, Runtime::ProvidedAl2023).unwrap_err();
        assert!(matches!(
            err.downcast_ref::<ArtifactError>(),
            Some(ArtifactError::WrongMachine { .. })
        ));
    }
}
