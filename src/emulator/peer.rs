//! Who is on the other end of a loopback TCP connection: on Linux, the
//! client's socket is found in `/proc/net/tcp{,6}` (its local address is
//! our peer address, its remote address is our listening address), which
//! gives its inode; the connection belongs to a process group when one of
//! the group's processes holds that socket among its file descriptors.
//!
//! An environment's Runtime, Extensions and Telemetry APIs admit only
//! connections from its own process group (the runtime, the processes it
//! starts, its external extensions), so no other process on the machine can
//! take an invocation or forge its answer. The check runs once per
//! connection; runtimes keep their connection alive, so it is cheap.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Does a process of group `pgid` hold the client end of the connection
/// from `peer` to `local`? Elsewhere than on Linux there is no cheap way to
/// tell: every loopback peer is admitted.
pub(crate) fn in_group(peer: SocketAddr, local: SocketAddr, pgid: i32) -> bool {
    if !cfg!(target_os = "linux") {
        return peer.ip().is_loopback();
    }
    if pgid <= 0 {
        return false;
    }
    match socket_inode(peer, local) {
        Some(inode) => group_holds(pgid, inode),
        None => false,
    }
}

/// The inode of the socket whose local end is `peer` and remote end `local`.
fn socket_inode(peer: SocketAddr, local: SocketAddr) -> Option<u64> {
    let table = match peer.ip() {
        IpAddr::V4(_) => "/proc/net/tcp",
        IpAddr::V6(_) => "/proc/net/tcp6",
    };
    let text = std::fs::read_to_string(table).ok()?;
    find_inode(&text, peer, local)
}

/// Finds the row `peer -> local` in a `/proc/net/tcp` table.
fn find_inode(table: &str, peer: SocketAddr, local: SocketAddr) -> Option<u64> {
    table.lines().skip(1).find_map(|row| {
        let fields: Vec<&str> = row.split_whitespace().collect();
        // sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...
        if fields.len() < 10 {
            return None;
        }
        let from = parse_addr(fields[1])?;
        let to = parse_addr(fields[2])?;
        (same(from, peer) && same(to, local))
            .then(|| fields[9].parse().ok())
            .flatten()
    })
}

/// Equal addresses, seeing an IPv4-mapped IPv6 address as its IPv4 one.
fn same(a: SocketAddr, b: SocketAddr) -> bool {
    let canon = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    };
    a.port() == b.port() && canon(a.ip()) == canon(b.ip())
}

/// `0100007F:1F90` (IPv4) or 32 hex digits (IPv6), each 32-bit word in the
/// kernel's byte order, then the port in hex.
fn parse_addr(field: &str) -> Option<SocketAddr> {
    let (ip, port) = field.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |hex: &str| u32::from_str_radix(hex, 16).ok().map(u32::to_ne_bytes);
    let ip = match ip.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(ip)?)),
        32 => {
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&word(&ip[i * 8..i * 8 + 8])?);
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Does a process of group `pgid` have `socket:[inode]` open? The
/// group's leader (the runtime) first, the usual caller; then the others.
fn group_holds(pgid: i32, inode: u64) -> bool {
    let wanted = format!("socket:[{inode}]");
    let holds = |pid: i32| {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            return false;
        };
        fds.flatten().any(|fd| {
            std::fs::read_link(fd.path()).is_ok_and(|target| target.as_os_str() == wanted.as_str())
        })
    };
    if process_group(pgid) == Some(pgid) && holds(pgid) {
        return true;
    }
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return false;
    };
    procs.flatten().any(|entry| {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|s| s.parse::<i32>().ok()) else {
            return false;
        };
        pid != pgid && process_group(pid) == Some(pgid) && holds(pid)
    })
}

/// The process group of a process, from `/proc/<pid>/stat` (the fields
/// after the command name, which may itself hold spaces and parentheses).
fn process_group(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    // state ppid pgrp ...
    rest.split_whitespace().nth(2)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_tcp_rows_are_matched_by_both_ends() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 111 1 0 100 0 0 10 0\n   1: 0100007F:C350 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1000        0 222 1 0 20 4 30 10 -1\n";
        let peer: SocketAddr = "127.0.0.1:50000".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        if cfg!(target_endian = "little") {
            assert_eq!(find_inode(table, peer, local), Some(222));
            assert_eq!(find_inode(table, local, peer), None);
        }
    }

    #[test]
    fn ipv6_rows_parse() {
        let loopback = "00000000000000000000000001000000:1F90";
        if cfg!(target_endian = "little") {
            assert_eq!(parse_addr(loopback), Some("[::1]:8080".parse().unwrap()));
        }
    }

    #[test]
    fn our_own_connection_is_ours_and_not_another_groups() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (_server, peer) = listener.accept().unwrap();
        let local = listener.local_addr().unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
        let own = process_group(std::process::id() as i32).unwrap();
        assert!(in_group(peer, local, own));
        assert!(!in_group(peer, local, own + 100_000));
    }
}
