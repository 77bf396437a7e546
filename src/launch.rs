//! How a Lambda executable is started on this machine: directly when it is
//! built for the host's architecture, or under qemu-user (Debian's
//! `qemu-user-static`) when it is not, with the loader and libraries taken
//! from a root directory (Debian's cross libc, or an unpacked image).
//!
//! This is what lets `cargo fn watch --artifact` and `--image` run the exact
//! arm64 bootstrap that ships on an x86_64 laptop. It knows nothing of the
//! emulator; it only turns "this file, for this architecture" into a
//! command line.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::config::Arch;
use crate::error::hinted;

/// A program and its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    pub command: PathBuf,
    pub args: Vec<String>,
}

/// The qemu-user emulator for `arch`: the static build first (it needs no
/// host libraries), then the dynamic one.
pub fn qemu_for(arch: Arch) -> Result<PathBuf> {
    let names: &[&str] = match arch {
        Arch::Arm64 => &["qemu-aarch64-static", "qemu-aarch64"],
        Arch::X86_64 => &["qemu-x86_64-static", "qemu-x86_64"],
    };
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in names {
        if let Some(found) = crate::toolchain::find_on_path(name, &path) {
            return Ok(found);
        }
    }
    Err(hinted(
        format!(
            "{arch} executables need {} to run on this {} machine",
            names[0],
            std::env::consts::ARCH
        ),
        "install it (Debian/Ubuntu: apt-get install qemu-user-static), or build for the host's architecture (--arch)",
    ))
}

/// Starts `program arg...`, built for `arch`, whose dynamic loader and
/// libraries live under `root` (`/` for the host's own). Under qemu, `-L
/// root` makes the emulator resolve the ELF interpreter and libraries there.
pub fn for_arch(arch: Arch, program: &Path, args: &[String], root: &Path) -> Result<Launch> {
    if Arch::host() == Some(arch) {
        return Ok(Launch {
            command: program.to_path_buf(),
            args: args.to_vec(),
        });
    }
    let qemu = qemu_for(arch)?;
    let mut qemu_args = vec![
        "-L".to_string(),
        root.display().to_string(),
        program.display().to_string(),
    ];
    qemu_args.extend(args.iter().cloned());
    Ok(Launch {
        command: qemu,
        args: qemu_args,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_architecture_runs_directly() {
        let arch = Arch::host().expect("tests run on x86_64 or aarch64");
        let l = for_arch(
            arch,
            Path::new("/x/bootstrap"),
            &["a".into()],
            Path::new("/"),
        )
        .unwrap();
        assert_eq!(l.command, PathBuf::from("/x/bootstrap"));
        assert_eq!(l.args, vec!["a".to_string()]);
    }

    #[test]
    fn foreign_architecture_runs_under_qemu_with_the_loader_root() {
        let other = match Arch::host().unwrap() {
            Arch::X86_64 => Arch::Arm64,
            Arch::Arm64 => Arch::X86_64,
        };
        // qemu-user-static is installed by `cargo xtask setup`; a missing
        // one must fail this test loudly, not skip it.
        let l = for_arch(other, Path::new("/x/bootstrap"), &[], Path::new("/sysroot")).unwrap();
        assert!(
            l.command.to_string_lossy().contains("qemu-"),
            "{}",
            l.command.display()
        );
        assert_eq!(l.args, vec!["-L", "/sysroot", "/x/bootstrap"]);
    }
}
