//! How much of a local invocation was the machine's load, not the
//! function: the CPU time each environment was granted and the time its
//! threads waited for a CPU (`/proc/<pid>/task/*/schedstat`), less the
//! time its CPU quota held it back on purpose (the cgroup's
//! `throttled_time`, Lambda's CPU share). What is left is waiting for a
//! core that other programs had: Lambda would not have had that wait.
//!
//! Linux only: elsewhere (or when `/proc` says nothing) every reading is
//! `None` and durations are the measured ones.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

/// Counters of one environment's processes, ns, cumulative.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Times {
    /// CPU time its threads ran.
    pub cpu_ns: u64,
    /// Time its threads were runnable but not running (throttling included).
    pub wait_ns: u64,
    /// Time its cgroup's CPU quota held it back.
    pub throttled_ns: u64,
}

impl Times {
    /// The counters' growth from `before` to `self`.
    pub fn since(self, before: Times) -> Times {
        Times {
            cpu_ns: self.cpu_ns.saturating_sub(before.cpu_ns),
            wait_ns: self.wait_ns.saturating_sub(before.wait_ns),
            throttled_ns: self.throttled_ns.saturating_sub(before.throttled_ns),
        }
    }
}

/// The emulator's CFS period: a run longer than this at a fraction of a
/// vCPU is held to its quota, a shorter one may fit in one period's budget.
const CFS_PERIOD_MS: f64 = 100.0;

/// The duration Lambda would have measured: `wall_ms` less the wait for a
/// CPU beyond the quota's own throttling, never above what was measured,
/// and never below what the quota alone imposes: the CPU time over the
/// size's vCPUs (below one vCPU only for runs longer than a CFS period,
/// since a load that kept the function off the CPU also kept it from
/// using up its quota and being throttled).
pub fn without_load(wall_ms: f64, d: Times, vcpus: f64) -> f64 {
    let ms = |ns: u64| ns as f64 / 1e6;
    let contention = (ms(d.wait_ns) - ms(d.throttled_ns)).max(0.0);
    let cpu = ms(d.cpu_ns);
    let held = cpu / vcpus;
    let floor = if vcpus >= 1.0 || held >= CFS_PERIOD_MS {
        held
    } else {
        cpu
    };
    (wall_ms - contention).max(floor).min(wall_ms)
}

/// The counters of the environments running function `name` at `memory`
/// MB: processes descending from this one whose environment says so.
pub fn sample(name: &str, memory: u32) -> Option<Times> {
    let me = std::process::id();
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        if let Some(ppid) = parent(pid) {
            children.entry(ppid).or_default().push(pid);
        }
    }
    let wanted = [
        format!("AWS_LAMBDA_FUNCTION_NAME={name}"),
        format!("AWS_LAMBDA_FUNCTION_MEMORY_SIZE={memory}"),
    ];
    let mut total = Times::default();
    let mut found = false;
    let mut cgroups = BTreeSet::new();
    let mut stack = children.get(&me).cloned().unwrap_or_default();
    while let Some(pid) = stack.pop() {
        stack.extend(children.get(&pid).into_iter().flatten());
        let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        let vars: BTreeSet<&[u8]> = env.split(|b| *b == 0).collect();
        if !wanted.iter().all(|w| vars.contains(w.as_bytes())) {
            continue;
        }
        found = true;
        let (cpu, wait) = threads(pid);
        total.cpu_ns += cpu;
        total.wait_ns += wait;
        // One cgroup per environment: its throttling counted once.
        if let Some(stat) = cpu_stat(pid)
            && cgroups.insert(stat.clone())
        {
            total.throttled_ns += throttled_ns(&stat).unwrap_or(0);
        }
    }
    found.then_some(total)
}

/// The parent pid (field 4 of `/proc/<pid>/stat`, after the command).
fn parent(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// CPU and run-queue wait, ns, summed over a process's threads.
fn threads(pid: u32) -> (u64, u64) {
    let mut sum = (0, 0);
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return sum;
    };
    for task in tasks.flatten() {
        let Ok(text) = std::fs::read_to_string(task.path().join("schedstat")) else {
            continue;
        };
        let mut f = text
            .split_whitespace()
            .map(|n| n.parse::<u64>().unwrap_or(0));
        sum.0 += f.next().unwrap_or(0);
        sum.1 += f.next().unwrap_or(0);
    }
    sum
}

/// The `cpu.stat` of the CPU cgroup `pid` is in (v1 `cpu` controller or v2).
fn cpu_stat(pid: u32) -> Option<PathBuf> {
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    for line in cgroups.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let v1 = controllers.split(',').any(|c| c == "cpu");
        if !v1 && !controllers.is_empty() {
            continue;
        }
        let mount = mounts.lines().find_map(|m| {
            let (left, right) = m.split_once(" - ")?;
            let point = left.split_whitespace().nth(4)?;
            let mut r = right.split_whitespace();
            let (fstype, options) = (r.next()?, r.nth(1).unwrap_or_default());
            let fits = if v1 {
                fstype == "cgroup" && options.split(',').any(|o| o == "cpu")
            } else {
                fstype == "cgroup2"
            };
            fits.then(|| PathBuf::from(point))
        })?;
        let stat = mount.join(path.trim_start_matches('/')).join("cpu.stat");
        return stat.exists().then_some(stat);
    }
    None
}

/// Throttled time of a `cpu.stat`: `throttled_time` ns (v1) or
/// `throttled_usec` (v2).
fn throttled_ns(stat: &PathBuf) -> Option<u64> {
    let text = std::fs::read_to_string(stat).ok()?;
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        let v: u64 = v.trim().parse().ok()?;
        match k {
            "throttled_time" => Some(v),
            "throttled_usec" => Some(v * 1000),
            _ => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn times(cpu_ms: f64, wait_ms: f64, throttled_ms: f64) -> Times {
        let ns = |ms: f64| (ms * 1e6) as u64;
        Times {
            cpu_ns: ns(cpu_ms),
            wait_ns: ns(wait_ms),
            throttled_ns: ns(throttled_ms),
        }
    }

    #[test]
    fn waiting_for_a_busy_machine_is_taken_out_and_the_quota_kept() {
        // 128 MB on an idle machine: 10 ms of CPU at 7% of a vCPU; the
        // wait is the quota's own throttling: nothing taken out.
        let idle = without_load(140.0, times(10.0, 130.0, 130.0), 128.0 / 1769.0);
        assert!((idle - 140.0).abs() < 1e-9, "{idle}");
        // The same call on a busy machine: 60 ms more waiting for a core.
        let busy = without_load(200.0, times(10.0, 190.0, 130.0), 128.0 / 1769.0);
        assert!((busy - 140.0).abs() < 1e-9, "{busy}");
        // 3,008 MB: no throttling; 100 ms of CPU waited 100 ms for a core.
        let big = without_load(200.0, times(100.0, 100.0, 0.0), 3008.0 / 1769.0);
        assert!((big - 100.0).abs() < 1e-9, "{big}");
        // Waiting on I/O is not waiting for a CPU: kept.
        let io = without_load(50.0, times(1.0, 0.5, 0.0), 1.0);
        assert!((io - 49.5).abs() < 1e-9, "{io}");
        // Never below the CPU time over every vCPU, never above the wall.
        assert!((without_load(100.0, times(90.0, 500.0, 0.0), 1.0) - 90.0).abs() < 1e-9);
        assert_eq!(without_load(100.0, times(1.0, 0.0, 50.0), 1.0), 100.0);
        // 512 MB kept off the CPU so long it was never throttled: its
        // quota alone would have made 50 ms of CPU last 50 / 0.29 ms.
        let vcpus = 512.0 / 1769.0;
        let starved = without_load(400.0, times(50.0, 350.0, 0.0), vcpus);
        assert!((starved - 50.0 / vcpus).abs() < 1e-9, "{starved}");
        // A short run fits in one period's budget: only its CPU time is sure.
        let short = without_load(40.0, times(5.0, 35.0, 0.0), vcpus);
        assert!((short - 5.0).abs() < 1e-9, "{short}");
    }

    #[test]
    fn a_process_of_this_test_is_found_by_its_environment_and_measured() {
        let mut child = std::process::Command::new("sh")
            .args([
                "-c",
                "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; sleep 30",
            ])
            .env("AWS_LAMBDA_FUNCTION_NAME", "cpu-probe")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "777")
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let mut last = None;
        while std::time::Instant::now() < deadline {
            last = sample("cpu-probe", 777);
            if last.is_some_and(|t| t.cpu_ns > 10_000_000) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert!(
            sample("cpu-probe", 778).is_none(),
            "another size is another environment"
        );
        let _ = child.kill();
        let _ = child.wait();
        let t = last.expect("the child process is found");
        assert!(t.cpu_ns > 10_000_000, "{t:?}");
    }
}
