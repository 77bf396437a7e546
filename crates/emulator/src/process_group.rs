//! An environment's process group, signalled without pid races.
//!
//! A pid names a process only until that process is reaped; after that the
//! kernel may give the number to anyone, and a process group id (the
//! leader's pid) likewise once the group is empty. So the leader is
//! signalled through a pidfd (it reaches that process or nobody), and the
//! group is killed only while its leader is known unreaped: the leader's
//! exit is watched on the pidfd without reaping it (its zombie keeps the
//! id taken), its exit status read with `WNOWAIT`, and the group killed
//! before the leader is reaped. This module knows nothing of environments.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::Mutex;

use tokio::io::unix::AsyncFd;
use tokio::process::Child;

/// The process group a spawned leader heads (`process_group(0)`).
pub(crate) struct ProcessGroup {
    pgid: i32,
    /// The leader's pidfd.
    leader: OwnedFd,
    /// Set just before the leader is reaped: from then on `pgid` may name
    /// someone else's group, so nothing is sent to it.
    reaped: Mutex<bool>,
}

impl ProcessGroup {
    /// The group of a child just spawned as its own group's leader (not
    /// yet waited for, so its pid is still its own).
    pub fn of_leader(child: &Child) -> io::Result<ProcessGroup> {
        let pid = child
            .id()
            .ok_or_else(|| io::Error::other("the process was already reaped"))?;
        let pgid = i32::try_from(pid).map_err(io::Error::other)?;
        Ok(ProcessGroup {
            pgid,
            leader: pidfd_open(pgid)?,
            reaped: Mutex::new(false),
        })
    }

    /// The leader's pid, which is the group id.
    pub fn pgid(&self) -> i32 {
        self.pgid
    }

    /// A signal to the leader alone; a no-op once it is gone.
    pub fn signal_leader(&self, signal: i32) {
        let _ = pidfd_send_signal(&self.leader, signal);
    }

    /// SIGKILL to every process of the group, while the leader is unreaped.
    pub fn kill(&self) {
        let reaped = self.reaped.lock().expect("process group");
        if !*reaped {
            // SAFETY: plain syscall. The leader is not reaped (checked under
            // the lock its reaper takes), so the group id is still ours.
            unsafe {
                libc::kill(-self.pgid, libc::SIGKILL);
            }
        }
    }

    /// Resolves when the leader has exited, with its status, leaving it
    /// unreaped (a zombie keeps its pid and the group id taken).
    pub async fn leader_exited(&self) -> io::Result<ExitStatus> {
        // A pidfd polls readable once its process has exited.
        let raw = self.leader.as_raw_fd();
        // SAFETY: the pidfd is owned by `self` and stays open, and the same,
        // for as long as this registration lives (it ends in this call).
        let fd = unsafe { AsyncFd::register_with_interest(raw, tokio::io::Interest::READABLE) }?;
        let _ready = fd.readable().await?;
        drop(fd);
        exit_status_no_reap(&self.leader)
    }

    /// Kills what is left of the group, then reaps the leader.
    pub async fn reap(&self, child: &mut Child) -> Option<ExitStatus> {
        {
            let mut reaped = self.reaped.lock().expect("process group");
            if !*reaped {
                // SAFETY: plain syscall; the leader is unreaped (we hold the
                // lock and are the only reaper), so the group id is ours.
                unsafe {
                    libc::kill(-self.pgid, libc::SIGKILL);
                }
                *reaped = true;
            }
        }
        child.wait().await.ok()
    }

    /// Reaps the leader without killing the group: from then on nothing is
    /// sent to the group id (for when its exit cannot be watched).
    pub async fn wait_without_kill(&self, child: &mut Child) -> Option<ExitStatus> {
        *self.reaped.lock().expect("process group") = true;
        child.wait().await.ok()
    }
}

/// A pidfd for `pid`: it keeps naming that process, even after its pid is
/// reused (signals through it then fail with ESRCH).
pub(crate) fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall; it returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = i32::try_from(fd).map_err(io::Error::other)?;
    // SAFETY: the kernel just gave us this descriptor, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A signal to the process a pidfd names.
pub(crate) fn pidfd_send_signal(pidfd: &OwnedFd, signal: i32) -> io::Result<()> {
    // SAFETY: plain syscall on a descriptor we own; no siginfo is passed.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// SIGKILL to the processes a list names (a cgroup's `cgroup.procs`). A
/// pid read from the list may exit and be reused before the signal, so a
/// pidfd is opened for each first and used only if its pid is still listed
/// after that: it then names the member (or a process that has exited
/// since, which the signal cannot reach), never a stranger.
pub(crate) fn kill_listed(list: impl Fn() -> Option<String>) {
    let parse = |text: String| -> Vec<i32> {
        text.lines()
            .filter_map(|p| p.trim().parse::<i32>().ok())
            .collect()
    };
    let Some(listed) = list().map(parse) else {
        return;
    };
    let opened: Vec<(i32, OwnedFd)> = listed
        .into_iter()
        .filter_map(|pid| pidfd_open(pid).ok().map(|fd| (pid, fd)))
        .collect();
    if opened.is_empty() {
        return;
    }
    let still = list().map(parse).unwrap_or_default();
    for (pid, fd) in opened {
        if still.contains(&pid) {
            let _ = pidfd_send_signal(&fd, libc::SIGKILL);
        }
    }
}

/// The exit status of an exited process, leaving it to be reaped.
fn exit_status_no_reap(pidfd: &OwnedFd) -> io::Result<ExitStatus> {
    // SAFETY: siginfo_t is plain data; all zeroes is a valid value.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: waitid writes only into `info`; WNOWAIT leaves the child
    // waitable, so tokio's `Child::wait` still reaps it.
    let rc = unsafe {
        libc::waitid(
            libc::P_PIDFD,
            pidfd.as_raw_fd() as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOWAIT,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: waitid filled `info` for a child state change (SIGCHLD), for
    // which si_status is the field the kernel set.
    let status = unsafe { info.si_status() };
    Ok(ExitStatus::from_raw(wait_status(info.si_code, status)))
}

/// The `wait(2)` status word for a `waitid` code and status.
fn wait_status(code: i32, status: i32) -> i32 {
    match code {
        libc::CLD_EXITED => (status & 0xff) << 8,
        libc::CLD_DUMPED => (status & 0x7f) | 0x80,
        _ => status & 0x7f,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_status_matches_what_wait_reports() {
        let exited = ExitStatus::from_raw(wait_status(libc::CLD_EXITED, 3));
        assert_eq!(exited.code(), Some(3));
        let killed = ExitStatus::from_raw(wait_status(libc::CLD_KILLED, libc::SIGKILL));
        assert_eq!(killed.signal(), Some(libc::SIGKILL));
        let dumped = ExitStatus::from_raw(wait_status(libc::CLD_DUMPED, libc::SIGSEGV));
        assert_eq!(dumped.signal(), Some(libc::SIGSEGV));
        assert!(dumped.core_dumped());
    }

    fn sleeper() -> std::process::Child {
        std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap()
    }

    #[test]
    fn kill_listed_kills_members_but_not_a_pid_that_left_the_list() {
        let mut member = sleeper();
        let pid = member.id().to_string();
        kill_listed(|| Some(format!("{pid}\n")));
        let status = member.wait().unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL));

        // Listed when read, gone from the list by the second read (it
        // exited, and its pid may now be someone else's): left alone.
        let mut stranger = sleeper();
        let pid = stranger.id().to_string();
        let reads = std::cell::Cell::new(0);
        kill_listed(|| {
            reads.set(reads.get() + 1);
            Some(if reads.get() == 1 {
                pid.clone()
            } else {
                String::new()
            })
        });
        assert_eq!(reads.get(), 2);
        assert!(
            stranger.try_wait().unwrap().is_none(),
            "a pid no longer listed was signalled"
        );
        stranger.kill().unwrap();
        stranger.wait().unwrap();
    }

    #[tokio::test]
    async fn the_group_is_killed_while_its_leader_is_a_zombie_then_reaped() {
        use tokio::io::AsyncBufReadExt;
        // The leader exits at once; a member of its group lives on.
        let mut child = tokio::process::Command::new("sh")
            .args(["-c", "sleep 30 & echo $!; exit 7"])
            .stdout(std::process::Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        let group = ProcessGroup::of_leader(&child).unwrap();
        let mut line = String::new();
        let stdout = child.stdout.take().unwrap();
        tokio::io::BufReader::new(stdout)
            .read_line(&mut line)
            .await
            .unwrap();
        let member: i32 = line.trim().parse().unwrap();
        let status = group.leader_exited().await.unwrap();
        assert_eq!(status.code(), Some(7));
        // Not reaped: the zombie still holds its pid.
        assert!(std::path::Path::new(&format!("/proc/{}", group.pgid())).exists());
        let reaped = group.reap(&mut child).await.unwrap();
        assert_eq!(reaped.code(), Some(7));
        // The member was killed with the group (gone, or a zombie until
        // its new parent reaps it).
        let dead = (0..200).any(|_| {
            let stat = std::fs::read_to_string(format!("/proc/{member}/stat")).unwrap_or_default();
            let state = stat.rsplit(") ").next().and_then(|s| s.chars().next());
            if stat.is_empty() || state == Some('Z') {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
            false
        });
        assert!(dead, "the group's member outlived the reap");
        // Both are no-ops now: the group id may be someone else's.
        group.kill();
        group.signal_leader(libc::SIGKILL);
    }
}
