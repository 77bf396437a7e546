//! Each generation's binaries, pinned under `target/lambda/watch/<run>/`
//! before they are served, so cargo rewriting `target/debug/<bin>` never
//! changes code under a running or starting environment; the run's lock,
//! and the removal of snapshots no live run holds.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::project::Project;

/// One directory per watcher (process id and a counter), so watchers
/// sharing a target dir never touch each other's snapshots. Beside it a
/// `.lock` file, locked while the run lives; dropping it removes both.
pub(super) struct SnapshotDir {
    pub(super) path: PathBuf,
    lock_path: PathBuf,
    _lock: std::fs::File,
}

impl SnapshotDir {
    pub(super) fn create(project: &Project) -> Result<SnapshotDir> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let parent = project.lambda_dir().join("watch");
        std::fs::create_dir_all(&parent)
            .with_context(|| format!("creating {}", parent.display()))?;
        remove_stale_snapshots(&parent);
        let name = format!("{}-{n}", std::process::id());
        let path = parent.join(&name);
        let lock_path = parent.join(format!("{name}.lock"));
        // Locked before the directory exists, so no other run ever sees
        // this directory unlocked.
        let lock = std::fs::File::create(&lock_path)
            .with_context(|| format!("creating {}", lock_path.display()))?;
        try_lock(&lock).with_context(|| format!("locking {}", lock_path.display()))?;
        Ok(SnapshotDir {
            path,
            lock_path,
            _lock: lock,
        })
    }
}

impl Drop for SnapshotDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
        let _ = std::fs::remove_file(&self.lock_path);
    }
}

/// Removes the snapshot directories of runs that are gone: their lock is
/// free (or, for a directory without one, its process id is not running).
fn remove_stale_snapshots(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let lock_path = parent.join(format!("{name}.lock"));
        let stale = match std::fs::File::open(&lock_path) {
            Ok(lock) => try_lock(&lock).is_ok(),
            Err(_) => name
                .split_once('-')
                .and_then(|(pid, _)| pid.parse::<u32>().ok())
                .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists()),
        };
        if stale {
            let _ = std::fs::remove_dir_all(&path);
            let _ = std::fs::remove_file(&lock_path);
        }
    }
}

/// An exclusive lock on a file, held until it is closed (`flock`, so a
/// run killed with SIGKILL releases it).
fn try_lock(file: &std::fs::File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: plain syscall on a descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Pins this build's binary under a new name. A hard link is instant and
/// safe: linkers write a new file (unlink or rename) rather than rewrite the
/// old inode, and a running executable cannot be written anyway (ETXTBSY).
/// Falls back to a copy through a temp file and a rename (other file
/// system), so a reader never sees half a binary.
pub(super) fn copy_atomic(from: &Path, to: &Path) -> Result<()> {
    let _ = std::fs::remove_file(to);
    if std::fs::hard_link(from, to).is_ok() {
        return Ok(());
    }
    let tmp = to.with_extension("tmp");
    std::fs::copy(from, &tmp)
        .with_context(|| format!("copying {} to {}", from.display(), tmp.display()))?;
    std::fs::rename(&tmp, to).with_context(|| format!("renaming to {}", to.display()))?;
    Ok(())
}

/// Removes snapshots two generations old or more (running processes keep
/// their inode; nothing new starts from them).
pub(super) fn prune_snapshots(dir: &Path, generation: u64) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some((_, g)) = name.rsplit_once('-')
            && let Ok(g) = g.parse::<u64>()
            && g + 1 < generation
        {
            // Binaries are files; unpacked images are directories.
            let _ = std::fs::remove_file(entry.path());
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
