//! `--only phases`: where one warm Invoke's time goes at concurrency 1, seen
//! from the kernel. While wrk drives the echo function, `perf` records the
//! socket syscalls of every process for half a second; each call is then cut
//! where bytes cross between processes:
//!
//! wrk writes the request, the emulator reads it, hands the event to the
//! function (the answer to its pending `next`), the function reads it,
//! posts its response, the emulator reads that and answers wrk, wrk reads.
//!
//! The emulator's own time is "dispatch" plus "answer"; the function's
//! (lambda_runtime and the handler) is "function"; the rest is the kernel
//! moving bytes and waking the reader. The same cut is made for cargo-lambda
//! in the same run, and bare nginx's round trip is measured beside them.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::{
    PAYLOAD, ROUNDS, Server, Setup, client, descendants, median, start_cargo_lambda, start_nginx,
    start_watch, wait_ready, which, wrk, wrk_command,
};

const PHASES: [&str; 7] = [
    "wrk to emulator",
    "emulator: dispatch",
    "emulator to function",
    "function (lambda_runtime + handler)",
    "function to emulator",
    "emulator: answer",
    "emulator to wrk",
];

const EVENTS: &str = "syscalls:sys_enter_recvfrom,syscalls:sys_exit_recvfrom,\
syscalls:sys_enter_writev,syscalls:sys_enter_write,syscalls:sys_exit_read";

pub(super) async fn phases(setup: &Setup) -> Result<()> {
    if which("perf").is_none() {
        bail!(
            "`perf` is not installed (Debian: apt-get install linux-perf); it records the syscalls"
        );
    }
    let client = client();
    let work = setup.work.path();
    let mut nginx = start_nginx(work)?;
    let mut watch = start_watch(setup, &[])?;
    let mut lambda = start_cargo_lambda(setup);
    let path = "/2015-03-31/functions/echo/invocations";
    eprintln!("bench: waiting for the servers (cargo fn watch builds first)");
    let bare_url = nginx.url("/");
    wait_ready(&client, &mut nginx, &bare_url, PAYLOAD).await?;
    let url = watch.url(path);
    wait_ready(&client, &mut watch, &url, PAYLOAD).await?;
    if let Some(l) = lambda.as_mut() {
        let url = l.url(path);
        if let Err(e) = wait_ready(&client, l, &url, PAYLOAD).await {
            println!("\ncargo-lambda left out: {e:#}\n");
            lambda = None;
        }
    }
    let mut targets: Vec<&Server> = vec![&watch];
    targets.extend(lambda.as_ref());

    let mut results: Vec<(&str, Vec<Round>)> = Vec::new();
    let mut bare = Vec::new();
    for round in 1..=ROUNDS {
        eprintln!("bench: round {round}/{ROUNDS}");
        bare.push(wrk(work, &bare_url, Some(PAYLOAD), 1, 3)?.p50 * 1000.0);
        for server in &targets {
            let cut = record(work, server, &server.url(path))?;
            match results.iter_mut().find(|(n, _)| *n == server.name) {
                Some((_, v)) => v.push(cut),
                None => results.push((server.name, vec![cut])),
            }
        }
    }

    println!("\n## Where a warm Invoke's time goes (concurrency 1, perf syscall trace)\n");
    println!(
        "Bare nginx round trip (wrk p50, same rounds): {:.0} µs. Per phase: the median over the rounds of each round's p50, in µs; phases are cut at syscalls, so their sum is near, not equal to, the total.\n",
        median(bare.clone())
    );
    print!("| phase |");
    for (name, _) in &results {
        print!(" {name} |");
    }
    println!();
    println!("|---|{}", "---|".repeat(results.len()));
    for (i, phase) in PHASES.iter().enumerate() {
        print!("| {phase} |");
        for (_, rounds) in &results {
            print!(" {:.0} |", median(rounds.iter().map(|r| r.0[i]).collect()));
        }
        println!();
    }
    print!("| total (wrk writes to wrk reads) |");
    for (_, rounds) in &results {
        print!(" {:.0} |", median(rounds.iter().map(|r| r.1).collect()));
    }
    println!();
    print!("| calls cut per round |");
    for (_, rounds) in &results {
        let n: Vec<String> = rounds.iter().map(|r| r.2.to_string()).collect();
        print!(" {} |", n.join(", "));
    }
    println!();
    let floor = median(bare);
    println!();
    for (name, rounds) in &results {
        let part = |i: usize| median(rounds.iter().map(|r| r.0[i]).collect());
        let own = part(1) + part(5);
        let function = part(3);
        let wires = part(0) + part(2) + part(4) + part(6);
        println!(
            "- {name}: emulator {own:.0} µs ({:.1}x bare), function {function:.0} µs ({:.1}x bare), kernel hand-offs {wires:.0} µs ({:.1}x bare)",
            own / floor,
            function / floor,
            wires / floor
        );
    }
    Ok(())
}

/// One round's figures for one server: each phase's median, the total's
/// median (µs), and how many calls were cut.
type Round = ([f64; 7], f64, usize);

/// One round against one server: wrk at concurrency 1 for 3 s, perf for
/// the half second in its middle.
fn record(work: &Path, server: &Server, url: &str) -> Result<Round> {
    let function = function_pid(server.pid())
        .with_context(|| format!("no echo function process under {}", server.name))?;
    let mut load = wrk_command(work, url, Some(PAYLOAD), 1, 3)?
        .stdout(Stdio::null())
        .spawn()
        .context("running wrk")?;
    std::thread::sleep(Duration::from_secs(1));
    let data = work.join("phases.data");
    let recorded = Command::new("perf")
        .args(["record", "-q", "-a", "-e", EVENTS, "-o"])
        .arg(&data)
        .args(["--", "sleep", "0.5"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context("running perf record")?;
    let _ = load.wait();
    if !recorded.success() {
        bail!("perf record failed (it needs root, or kernel.perf_event_paranoid = -1)");
    }
    let out = Command::new("perf")
        .args(["script", "-F", "comm,pid,tid,time,event,trace", "-i"])
        .arg(&data)
        .stderr(Stdio::null())
        .output()
        .context("running perf script")?;
    let calls = cut(
        &String::from_utf8_lossy(&out.stdout),
        server.pid(),
        function,
    );
    if calls.len() < 100 {
        bail!(
            "only {} calls could be cut from the trace of {}",
            calls.len(),
            server.name
        );
    }
    let mut phases = [0.0; 7];
    for (i, p) in phases.iter_mut().enumerate() {
        *p = median(calls.iter().map(|c| c[i + 1] - c[i]).collect());
    }
    let total = median(calls.iter().map(|c| c[7] - c[0]).collect());
    Ok((phases, total, calls.len()))
}

/// The echo function's process: a descendant of `root` named `echo…`.
fn function_pid(root: i32) -> Option<i32> {
    descendants(root)
        .1
        .iter()
        .find(|p| p.name.starts_with("echo"))
        .map(|p| p.pid)
}

/// One traced syscall: time (µs), command, process, thread, event, arguments.
struct Event<'a> {
    at: f64,
    comm: &'a str,
    pid: i32,
    tid: i32,
    name: &'a str,
    args: &'a str,
}

fn parse(line: &str) -> Option<Event<'_>> {
    let mut words = line.split_whitespace();
    let comm = words.next()?;
    let (pid, tid) = words.next()?.split_once('/')?;
    let at: f64 = words.next()?.trim_end_matches(':').parse().ok()?;
    let name = words
        .next()?
        .strip_prefix("syscalls:")?
        .trim_end_matches(':');
    let args = line.split_once(name).map(|(_, rest)| rest)?;
    Some(Event {
        at: at * 1e6,
        comm,
        pid: pid.parse().ok()?,
        tid: tid.parse().ok()?,
        name,
        args: args.trim_start_matches(':').trim(),
    })
}

fn hex(text: &str) -> Option<i64> {
    u64::from_str_radix(text.trim().trim_start_matches("0x"), 16)
        .ok()
        .map(|v| v as i64)
}

/// The `fd: 0x..` or `count: 0x..` argument of an enter event.
fn arg(args: &str, key: &str) -> Option<i64> {
    let rest = args.split_once(&format!("{key}: "))?.1;
    hex(rest.split(',').next()?)
}

/// The eight moments of each complete call, in trace order. The request
/// is matched by size (the emulator reads exactly what wrk wrote), which
/// names the caller's connection; the answer is the emulator's next write
/// on it.
fn cut(trace: &str, emulator: i32, function: i32) -> Vec<[f64; 8]> {
    let mut calls = Vec::new();
    let mut cur: [Option<f64>; 8] = [None; 8];
    let mut sent = 0;
    let mut caller_fd = None;
    let mut fds: HashMap<i32, i64> = HashMap::new();
    for e in trace.lines().filter_map(parse) {
        let enter = e.name.starts_with("sys_enter");
        if enter && let Some(fd) = arg(e.args, "fd") {
            fds.insert(e.tid, fd);
        }
        let fd = fds.get(&e.tid).copied();
        let ret = (!enter).then(|| hex(e.args)).flatten().unwrap_or(-1);
        match (e.comm, e.pid, e.name) {
            ("wrk", _, "sys_enter_write") => {
                cur = [None; 8];
                cur[0] = Some(e.at);
                sent = arg(e.args, "count").unwrap_or(0);
            }
            (_, p, "sys_exit_recvfrom") if p == emulator && ret > 0 => {
                if cur[0].is_some() && cur[1].is_none() && ret == sent {
                    cur[1] = Some(e.at);
                    caller_fd = fd;
                } else if cur[4].is_some() && cur[5].is_none() && fd != caller_fd {
                    cur[5] = Some(e.at);
                }
            }
            (_, p, "sys_enter_writev") if p == emulator => {
                if cur[1].is_some() && cur[2].is_none() && fd != caller_fd {
                    cur[2] = Some(e.at);
                } else if cur[5].is_some() && cur[6].is_none() && fd == caller_fd {
                    cur[6] = Some(e.at);
                }
            }
            (_, p, "sys_exit_recvfrom")
                if p == function && ret > 0 && cur[2].is_some() && cur[3].is_none() =>
            {
                cur[3] = Some(e.at);
            }
            (_, p, "sys_enter_writev") if p == function && cur[3].is_some() && cur[4].is_none() => {
                cur[4] = Some(e.at);
            }
            ("wrk", _, "sys_exit_read") if ret > 0 && cur[6].is_some() && cur[7].is_none() => {
                cur[7] = Some(e.at);
                if let Some(done) = complete(&cur) {
                    calls.push(done);
                }
            }
            _ => {}
        }
    }
    calls
}

fn complete(cur: &[Option<f64>; 8]) -> Option<[f64; 8]> {
    let mut out = [0.0; 8];
    for (o, c) in out.iter_mut().zip(cur) {
        *o = (*c)?;
    }
    out.windows(2).all(|w| w[0] <= w[1]).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_call_is_cut_at_its_eight_moments() {
        let trace = "\
wrk 9/9 1.000000: syscalls:sys_enter_write: fd: 0x00000004, buf: 0x1, count: 0x0000009a
tokio-rt-worker 5/6 1.000010: syscalls:sys_enter_recvfrom: fd: 0x00000010, ubuf: 0x1, size: 0x00002000, flags: 0x00
tokio-rt-worker 5/6 1.000011: syscalls:sys_exit_recvfrom: 0x9a
tokio-rt-worker 5/6 1.000040: syscalls:sys_enter_writev: fd: 0x00000016, vec: 0x1, vlen: 0x00000002
tokio-rt-worker 7/8 1.000050: syscalls:sys_enter_recvfrom: fd: 0x00000007, ubuf: 0x1, size: 0x00002000, flags: 0x00
tokio-rt-worker 7/8 1.000051: syscalls:sys_exit_recvfrom: 0x1b3
tokio-rt-worker 7/8 1.000100: syscalls:sys_enter_writev: fd: 0x00000007, vec: 0x1, vlen: 0x00000002
tokio-rt-worker 5/6 1.000110: syscalls:sys_enter_recvfrom: fd: 0x00000016, ubuf: 0x1, size: 0x00002000, flags: 0x00
tokio-rt-worker 5/6 1.000111: syscalls:sys_exit_recvfrom: 0xc4
tokio-rt-worker 5/6 1.000120: syscalls:sys_enter_writev: fd: 0x00000016, vec: 0x1, vlen: 0x00000002
tokio-rt-worker 5/6 1.000130: syscalls:sys_enter_writev: fd: 0x00000010, vec: 0x1, vlen: 0x00000002
wrk 9/9 1.000145: syscalls:sys_exit_read: 0xdd
";
        let calls = cut(trace, 5, 7);
        assert_eq!(calls.len(), 1);
        let c = calls[0];
        let gaps: Vec<i64> = c.windows(2).map(|w| (w[1] - w[0]).round() as i64).collect();
        // The 202 to the function (fd 0x16) is not the caller's answer.
        assert_eq!(gaps, vec![11, 29, 11, 49, 11, 19, 15]);
    }
}
