//! Lambda's memory and CPU limits for execution environments, with one
//! cgroup per environment.
//!
//! Memory: the group's limit is the configured size (swap off where the
//! kernel allows), so an environment that grows past it is killed by the
//! kernel, as Lambda kills it. CPU: a CFS quota of `memory / 1,769` of a
//! vCPU (Lambda's documented proportion, at most 6 vCPUs), so a 128 MB
//! function gets about 7% of a core.
//!
//! Both cgroup layouts are supported: v1 (`memory` and `cpu` hierarchies,
//! writable by root) and v2 (a subtree of the current cgroup, writable when
//! it is delegated to the user). Groups live in a `cargo-fn` directory under
//! this process's own cgroup, named `<pid>-<environment>`; groups of dead
//! emulators are removed at start. Processes join their group in a
//! `pre_exec` hook (writing `0`, "this process", to `cgroup.procs`), so
//! nothing they start can escape the limit.
//!
//! This module knows nothing of the rest of the emulator: it turns "an
//! environment of N MB" into a group, and answers "was it OOM-killed" and
//! "what was its peak".

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// Megabytes of memory that buy one vCPU (Lambda's documented proportion).
pub const MB_PER_VCPU: u32 = 1769;
/// Most vCPUs a function gets (at 10,240 MB).
pub const MAX_VCPUS: f64 = 6.0;
/// CFS period for the quota (the kernel's default).
const PERIOD_US: u64 = 100_000;
/// Name of the directory holding every group this tool creates.
const CONTAINER: &str = "cargo-fn";

/// How to get limits where they are not available, for notices.
pub const HOW_TO_ENABLE: &str = "To enforce them, run as root, on cgroup v1, or on cgroup v2 inside a \
     delegated subtree (`systemd-run --user --scope -p Delegate=yes cargo fn watch`); macOS has no cgroups. \
     REPORT lines whose Max Memory Used exceeds the memory size are followed by a LIMIT line.";

/// The vCPUs Lambda gives a function of `memory_mb`.
pub fn vcpus(memory_mb: u32) -> f64 {
    (f64::from(memory_mb) / f64::from(MB_PER_VCPU)).min(MAX_VCPUS)
}

/// CFS quota (µs per [`PERIOD_US`]) for `vcpus`; the kernel's minimum is 1 ms.
fn quota_us(vcpus: f64) -> u64 {
    ((vcpus * PERIOD_US as f64).round() as u64).max(1000)
}

/// Whether limits are enforced, for the one notice at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitsStatus {
    /// Turned off (`--no-limits`, or a library user that did not ask).
    Off,
    /// Enforced; how (`cgroup v1 under ...`).
    Enforced(String),
    /// Asked for but impossible here: why. Environments run uncapped.
    Unavailable(String),
}

/// Detects limits when they are wanted.
pub(crate) fn start(wanted: bool) -> (Option<Limits>, LimitsStatus) {
    if !wanted {
        return (None, LimitsStatus::Off);
    }
    match Limits::detect() {
        Ok(limits) => {
            let how = limits.describe();
            (Some(limits), LimitsStatus::Enforced(how))
        }
        Err(why) => (None, LimitsStatus::Unavailable(why)),
    }
}

/// Which cgroup layout is in use, with the container directories.
#[derive(Debug, Clone)]
enum Layout {
    V1 { memory: PathBuf, cpu: PathBuf },
    V2 { dir: PathBuf },
}

/// The ability to cap environments on this machine (found once at start).
#[derive(Debug, Clone)]
pub struct Limits {
    layout: Layout,
    /// Set when making a group failed after start: environments run
    /// uncapped from then on, and that is said once.
    failed: Arc<AtomicBool>,
}

impl Limits {
    /// Finds a usable cgroup layout, creates the container directories and
    /// removes groups left by emulators that are gone. The error says why
    /// limits cannot be enforced here (for a one-time notice).
    pub fn detect() -> Result<Limits, String> {
        let mountinfo = fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
        let own = fs::read_to_string("/proc/self/cgroup")
            .map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
        Self::detect_from(&mountinfo, &own)
    }

    /// [`detect`](Self::detect) from the text of `/proc/self/mountinfo`
    /// and `/proc/self/cgroup`. A layout only counts once a probe group
    /// was made, capped and opened for joining: a directory that exists
    /// (left by an earlier run, on a read-only mount) is no permission.
    fn detect_from(mountinfo: &str, own: &str) -> Result<Limits, String> {
        let mounts = parse_mounts(mountinfo);
        let usable = |layout: Layout| {
            let limits = Limits {
                layout,
                failed: Arc::new(AtomicBool::new(false)),
            };
            for dir in limits.containers() {
                remove_stale(dir);
            }
            match limits.create(0, 128, None) {
                Ok(_probe) => Ok(limits),
                Err(e) => Err(format!("{}: {e}", limits.describe())),
            }
        };
        match v1_layout(&mounts, own).and_then(usable) {
            Ok(limits) => Ok(limits),
            Err(v1_reason) => v2_layout(&mounts, own)
                .and_then(usable)
                .map_err(|v2_reason| format!("cgroup v1: {v1_reason}; cgroup v2: {v2_reason}")),
        }
    }

    /// `cgroup v1 (memory, cpu)` or `cgroup v2 (<dir>)`, for messages.
    pub fn describe(&self) -> String {
        match &self.layout {
            Layout::V1 { memory, .. } => format!("cgroup v1 under {}", memory.display()),
            Layout::V2 { dir } => format!("cgroup v2 under {}", dir.display()),
        }
    }

    fn containers(&self) -> Vec<&Path> {
        match &self.layout {
            Layout::V1 { memory, cpu } => vec![memory, cpu],
            Layout::V2 { dir } => vec![dir],
        }
    }

    /// Creates the group of environment `env_id` capped at `memory_mb` and
    /// `cpus` vCPUs (default: the share Lambda gives that memory).
    pub fn create(&self, env_id: u64, memory_mb: u32, cpus: Option<f64>) -> io::Result<Cgroup> {
        // Unique per process (several emulators may run in one process).
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("{}-{n}-env{env_id}", std::process::id());
        let bytes = u64::from(memory_mb) * 1024 * 1024;
        let quota = quota_us(cpus.unwrap_or_else(|| vcpus(memory_mb)));
        let mut group = Cgroup {
            dirs: Vec::new(),
            procs: Vec::new(),
            memory: PathBuf::new(),
            v2: matches!(self.layout, Layout::V2 { .. }),
            memory_mb,
            events: None,
            peak: None,
        };
        // Each directory is recorded as soon as it exists, so a failure
        // half-way still removes what was made (Drop).
        match &self.layout {
            Layout::V1 { memory, cpu } => {
                let mem = memory.join(&name);
                fs::create_dir(&mem)?;
                group.dirs.push(mem.clone());
                write(&mem, "memory.limit_in_bytes", &bytes.to_string())?;
                // Swap off: memory+swap capped at the same size (absent
                // when the kernel does not account swap).
                if mem.join("memory.memsw.limit_in_bytes").exists() {
                    write(&mem, "memory.memsw.limit_in_bytes", &bytes.to_string())?;
                }
                let _ = write(&mem, "memory.swappiness", "0");
                let cpu_dir = cpu.join(&name);
                fs::create_dir(&cpu_dir)?;
                group.dirs.push(cpu_dir.clone());
                write(&cpu_dir, "cpu.cfs_period_us", &PERIOD_US.to_string())?;
                write(&cpu_dir, "cpu.cfs_quota_us", &quota.to_string())?;
                group.memory = mem;
            }
            Layout::V2 { dir } => {
                let d = dir.join(&name);
                fs::create_dir(&d)?;
                group.dirs.push(d.clone());
                write(&d, "memory.max", &bytes.to_string())?;
                if d.join("memory.swap.max").exists() {
                    write(&d, "memory.swap.max", "0")?;
                }
                // The whole environment dies on OOM, as Lambda's does.
                let _ = write(&d, "memory.oom.group", "1");
                write(&d, "cpu.max", &format!("{quota} {PERIOD_US}"))?;
                group.memory = d;
            }
        }
        for dir in &group.dirs {
            let procs = dir.join("cgroup.procs");
            let file = OpenOptions::new()
                .write(true)
                .open(&procs)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", procs.display())))?;
            group.procs.push(file);
        }
        // Read after every invocation (REPORT's Max Memory Used): kept
        // open and re-read at offset 0, one syscall each instead of four.
        let (events, peaks): (&str, &[&str]) = if group.v2 {
            ("memory.events", &["memory.peak", "memory.current"])
        } else {
            ("memory.oom_control", &["memory.max_usage_in_bytes"])
        };
        group.events = File::open(group.memory.join(events)).ok();
        group.peak = peaks
            .iter()
            .find_map(|f| File::open(group.memory.join(f)).ok());
        Ok(group)
    }
}

/// One environment's group. Dropping it kills what is left inside and
/// removes the directories.
#[derive(Debug)]
pub struct Cgroup {
    dirs: Vec<PathBuf>,
    /// `cgroup.procs` of each directory, opened before any fork (the
    /// `pre_exec` hook may not allocate or open files).
    procs: Vec<File>,
    /// The directory with the memory controller's files.
    memory: PathBuf,
    v2: bool,
    memory_mb: u32,
    /// `memory.events` (v2) or `memory.oom_control` (v1): the OOM counter.
    events: Option<File>,
    /// The peak usage file (`memory.peak`, else `memory.current`, on v2;
    /// `memory.max_usage_in_bytes` on v1).
    peak: Option<File>,
}

impl Cgroup {
    /// Makes a command's process join this group before it executes.
    pub fn attach(&self, cmd: &mut tokio::process::Command) {
        let fds: Vec<i32> = self.procs.iter().map(|f| f.as_raw_fd()).collect();
        // SAFETY: the hook only calls write(2) on descriptors that stay open
        // while `self` lives (the environment outlives its spawn calls); no
        // allocation happens between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                for fd in &fds {
                    if libc::write(*fd, b"0".as_ptr().cast(), 1) != 1 {
                        return Err(io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
    }

    /// The environment's group, when limits are enforced. When the group
    /// cannot be made (permissions changed, a stale directory), the
    /// environment runs uncapped rather than not at all: `say` gets why,
    /// once per emulator.
    pub fn for_environment(
        limits: Option<&Limits>,
        env_id: u64,
        memory_mb: u32,
        cpus: Option<f64>,
        say: impl FnOnce(String),
    ) -> Option<Cgroup> {
        let limits = limits.filter(|l| !l.failed.load(Ordering::Relaxed))?;
        match limits.create(env_id, memory_mb, cpus) {
            Ok(group) => Some(group),
            Err(e) => {
                if !limits.failed.swap(true, Ordering::Relaxed) {
                    say(format!(
                        "cannot set the memory and CPU limits ({}): {e}; functions now run uncapped. {HOW_TO_ENABLE}",
                        limits.describe()
                    ));
                }
                None
            }
        }
    }

    /// Whether the kernel's OOM killer has killed a process of this group.
    pub fn oom_killed(&self) -> bool {
        let counter = self
            .events
            .as_ref()
            .and_then(|f| read_at_start(f, |text| counter(text, "oom_kill")));
        match counter {
            Some(n) => n > 0,
            // Older v1 kernels have no counter: a limit that was hit and
            // usage at the limit is the best sign left.
            None => {
                !self.v2
                    && read_u64(&self.memory.join("memory.failcnt")).unwrap_or(0) > 0
                    && read_u64(&self.memory.join("memory.max_usage_in_bytes")).unwrap_or(0)
                        >= u64::from(self.memory_mb) * 1024 * 1024
            }
        }
    }

    /// The group's peak memory use in MB (rounded up), never above the
    /// limit, and the limit itself after an OOM kill (as Lambda reports it).
    pub fn peak_mb(&self) -> Option<u64> {
        if self.oom_killed() {
            return Some(u64::from(self.memory_mb));
        }
        let peak: u64 = read_at_start(self.peak.as_ref()?, |text| text.trim().parse().ok())?;
        Some(peak.div_ceil(1024 * 1024).min(u64::from(self.memory_mb)))
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        self.procs.clear();
        let dirs = std::mem::take(&mut self.dirs);
        // The processes are being killed as the environment ends; a
        // directory can only go once they have exited.
        if !dirs.iter().rev().all(|d| try_remove(d)) {
            std::thread::spawn(move || {
                for _ in 0..100 {
                    if dirs.iter().rev().all(|d| !d.exists() || try_remove(d)) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            });
        }
    }
}

/// Kills every process of a group and removes the directory; false while
/// processes are still exiting.
fn try_remove(dir: &Path) -> bool {
    // Through pidfds: a listed pid may be reused before the signal.
    let procs = dir.join("cgroup.procs");
    super::process_group::kill_listed(|| fs::read_to_string(&procs).ok());
    match fs::remove_dir(dir) {
        Ok(()) => true,
        Err(e) => e.kind() == io::ErrorKind::NotFound,
    }
}

/// Removes groups whose emulator process is gone.
fn remove_stale(container: &Path) {
    let Ok(entries) = fs::read_dir(container) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            try_remove(&entry.path());
        }
    }
}

fn make_dir(dir: &Path) -> io::Result<()> {
    match fs::create_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        other => other,
    }
}

fn write(dir: &Path, file: &str, value: &str) -> io::Result<()> {
    fs::write(dir.join(file), value).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("writing {value} to {}/{file}: {e}", dir.display()),
        )
    })
}

fn read_u64(path: &Path) -> Option<u64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Reads a kernel-generated file kept open (cgroup and /proc files are
/// written anew for every read from offset 0) and hands its text to `read`.
pub(crate) fn read_at_start<T>(file: &File, read: impl FnOnce(&str) -> Option<T>) -> Option<T> {
    use std::os::unix::fs::FileExt;
    let mut buf = [0u8; 8192];
    let n = file.read_at(&mut buf, 0).ok()?;
    read(std::str::from_utf8(&buf[..n]).ok()?)
}

/// `key N` in a flat-keyed cgroup file.
fn counter(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let mut parts = l.split_whitespace();
        (parts.next() == Some(key)).then(|| parts.next()?.parse().ok())?
    })
}

/// A cgroup mount: its root inside the hierarchy, where it is mounted, its
/// type (`cgroup` or `cgroup2`) and super options (v1 controllers).
#[derive(Debug, PartialEq)]
struct Mount {
    root: String,
    point: PathBuf,
    v2: bool,
    options: Vec<String>,
}

fn parse_mounts(mountinfo: &str) -> Vec<Mount> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let left: Vec<&str> = left.split(' ').collect();
            let right: Vec<&str> = right.split(' ').collect();
            let fstype = *right.first()?;
            if fstype != "cgroup" && fstype != "cgroup2" {
                return None;
            }
            Some(Mount {
                root: left.get(3)?.to_string(),
                point: PathBuf::from(unescape(left.get(4)?)),
                v2: fstype == "cgroup2",
                options: right
                    .get(2)
                    .map(|o| o.split(',').map(str::to_string).collect())
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// mountinfo escapes spaces and such as `\040`.
fn unescape(s: &str) -> String {
    s.replace("\\040", " ").replace("\\011", "\t")
}

/// This process's cgroup path in the hierarchy with `controller` (v1) or
/// in the unified hierarchy (`None`).
fn own_path(own: &str, controller: Option<&str>) -> Option<String> {
    own.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let _id = parts.next()?;
        let controllers = parts.next()?;
        let path = parts.next()?;
        let hit = match controller {
            Some(c) => controllers.split(',').any(|x| x == c),
            None => controllers.is_empty(),
        };
        hit.then(|| path.to_string())
    })
}

/// The directory of our own cgroup under a mount.
fn own_dir(mount: &Mount, path: &str) -> PathBuf {
    let relative = path
        .strip_prefix(mount.root.as_str())
        .unwrap_or(path)
        .trim_start_matches('/');
    mount.point.join(relative)
}

fn v1_layout(mounts: &[Mount], own: &str) -> Result<Layout, String> {
    let dir = |controller: &str| -> Result<PathBuf, String> {
        let mount = mounts
            .iter()
            .find(|m| !m.v2 && m.options.iter().any(|o| o == controller))
            .ok_or_else(|| format!("no `{controller}` hierarchy mounted"))?;
        let path = own_path(own, Some(controller)).unwrap_or_else(|| "/".into());
        let container = own_dir(mount, &path).join(CONTAINER);
        make_dir(&container).map_err(|e| format!("cannot create {}: {e}", container.display()))?;
        Ok(container)
    };
    Ok(Layout::V1 {
        memory: dir("memory")?,
        cpu: dir("cpu")?,
    })
}

fn v2_layout(mounts: &[Mount], own: &str) -> Result<Layout, String> {
    let mount = mounts
        .iter()
        .find(|m| m.v2)
        .ok_or("no cgroup2 hierarchy mounted")?;
    let path = own_path(own, None).ok_or("this process has no cgroup v2 path")?;
    let dir = own_dir(mount, &path);
    let available = fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
    for needed in ["memory", "cpu"] {
        if !available.split_whitespace().any(|c| c == needed) {
            return Err(format!(
                "the `{needed}` controller is not available in {} (it is not delegated to this user, \
                 or it is bound to a v1 hierarchy)",
                dir.display()
            ));
        }
    }
    let container = dir.join(CONTAINER);
    let delegated = |e: io::Error| {
        format!(
            "{}: {e} (run inside a delegated scope, e.g. `systemd-run --user --scope -p Delegate=yes cargo fn ...`)",
            dir.display()
        )
    };
    make_dir(&container).map_err(delegated)?;
    // Controllers reach a child only through the parent's subtree_control;
    // the parent may hold no processes of its own then (except the root),
    // so this process moves into a leaf beside the container first.
    let enable = |at: &Path| fs::write(at.join("cgroup.subtree_control"), "+memory +cpu");
    if enable(&dir).is_err() {
        let leaf = dir.join(format!("{CONTAINER}-self"));
        make_dir(&leaf).map_err(delegated)?;
        fs::write(leaf.join("cgroup.procs"), "0").map_err(delegated)?;
        enable(&dir).map_err(delegated)?;
    }
    enable(&container).map_err(delegated)?;
    Ok(Layout::V2 { dir: container })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_follows_memory_like_lambda() {
        assert!((vcpus(1769) - 1.0).abs() < 1e-9);
        // A 128 MB function gets about 7% of a core.
        assert_eq!(quota_us(vcpus(128)), 7236);
        assert_eq!(quota_us(vcpus(10_240)), 578_858);
        assert!(vcpus(40_000) <= MAX_VCPUS);
    }

    #[test]
    fn own_cgroup_directory_from_proc_files() {
        let mountinfo = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 /docker/abc /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw";
        let own = "4:memory:/docker/abc/inner\n1:cpu:/\n0::/user.slice/x.scope\n";
        let mounts = parse_mounts(mountinfo);
        assert_eq!(mounts.len(), 3);
        let memory = mounts
            .iter()
            .find(|m| m.options.contains(&"memory".into()))
            .unwrap();
        assert_eq!(
            own_dir(memory, &own_path(own, Some("memory")).unwrap()),
            PathBuf::from("/sys/fs/cgroup/memory/inner")
        );
        let unified = mounts.iter().find(|m| m.v2).unwrap();
        assert_eq!(
            own_dir(unified, &own_path(own, None).unwrap()),
            PathBuf::from("/sys/fs/cgroup/unified/user.slice/x.scope")
        );
    }

    /// A directory that looks like a delegated cgroup v2 (controllers
    /// listed, a `cargo-fn` directory left by an earlier run) but is not
    /// one: groups cannot be joined there, as on a read-only mount.
    fn fake_cgroup2() -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("cgroup.controllers"), "cpuset cpu memory\n").unwrap();
        fs::write(dir.path().join("cgroup.subtree_control"), "").unwrap();
        fs::create_dir(dir.path().join(CONTAINER)).unwrap();
        fs::write(
            dir.path().join(CONTAINER).join("cgroup.subtree_control"),
            "",
        )
        .unwrap();
        let mountinfo = format!(
            "40 31 0:37 / {} rw,relatime - cgroup2 cgroup2 rw",
            dir.path().display()
        );
        (dir, mountinfo)
    }

    #[test]
    fn cgroups_without_permission_are_not_reported_as_enforced() {
        let (_dir, mountinfo) = fake_cgroup2();
        let why = Limits::detect_from(&mountinfo, "0::/\n").unwrap_err();
        assert!(why.contains("cgroup v2 under"), "{why}");
        assert!(why.contains("cgroup.procs"), "{why}");
    }

    #[test]
    fn a_group_that_cannot_be_made_later_runs_the_environment_uncapped_and_says_so_once() {
        let (dir, _) = fake_cgroup2();
        let limits = Limits {
            layout: Layout::V2 {
                dir: dir.path().join(CONTAINER),
            },
            failed: Arc::new(AtomicBool::new(false)),
        };
        let mut said = Vec::new();
        for env in 1..=3 {
            let group = Cgroup::for_environment(Some(&limits), env, 128, None, |m| said.push(m));
            assert!(group.is_none());
        }
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(said[0].contains("run uncapped"), "{said:?}");
        assert!(said[0].contains("Delegate=yes"), "{said:?}");
    }

    #[test]
    fn oom_counters_are_read_from_flat_keyed_files() {
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n";
        assert_eq!(counter(v1, "oom_kill"), Some(2));
        let v2 = "low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(counter(v2, "oom_kill"), Some(1));
        assert_eq!(counter(v2, "missing"), None);
    }
}
