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
//! connection: a netlink lookup of the socket and a look at the group's
//! descriptors, tens of microseconds (runtimes keep their connection
//! alive, but not always: `lambda_runtime` opens a new one now and then).

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

/// The inode of the socket whose local end is `peer` and remote end
/// `local`: asked of the kernel by the four addresses, else found in
/// `/proc/net/tcp` (where the kernel has no `sock_diag`).
fn socket_inode(peer: SocketAddr, local: SocketAddr) -> Option<u64> {
    diag_inode(peer, local).or_else(|| proc_inode(peer, local))
}

/// `sock_diag` (netlink) looks one socket up by its addresses in the
/// kernel's hash table. Reading `/proc/net/tcp` instead walks every socket
/// of the machine: milliseconds once thousands sit in TIME_WAIT, which a
/// runtime that opens a connection now and then leaves behind.
#[cfg(target_os = "linux")]
fn diag_inode(peer: SocketAddr, local: SocketAddr) -> Option<u64> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    const SOCK_DIAG_BY_FAMILY: u16 = 20;
    const HEADER: usize = 16; // struct nlmsghdr
    const REQUEST: usize = 56; // struct inet_diag_req_v2
    let family = match (peer.ip(), local.ip()) {
        (IpAddr::V4(_), IpAddr::V4(_)) => libc::AF_INET,
        (IpAddr::V6(_), IpAddr::V6(_)) => libc::AF_INET6,
        _ => return None,
    };
    let ip16 = |ip: IpAddr| match ip {
        IpAddr::V4(v4) => {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&v4.octets());
            b
        }
        IpAddr::V6(v6) => v6.octets(),
    };
    let mut msg = Vec::with_capacity(HEADER + REQUEST);
    msg.extend(((HEADER + REQUEST) as u32).to_ne_bytes());
    msg.extend(SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    msg.extend((libc::NLM_F_REQUEST as u16).to_ne_bytes());
    msg.extend(1u32.to_ne_bytes()); // sequence
    msg.extend(0u32.to_ne_bytes()); // port id: the kernel
    msg.extend([family as u8, libc::IPPROTO_TCP as u8, 0, 0]);
    msg.extend(u32::MAX.to_ne_bytes()); // any state
    // inet_diag_sockid: the client's end is the source, ports big-endian.
    msg.extend(peer.port().to_be_bytes());
    msg.extend(local.port().to_be_bytes());
    msg.extend(ip16(peer.ip()));
    msg.extend(ip16(local.ip()));
    msg.extend(0u32.to_ne_bytes()); // any interface
    msg.extend([0xff; 8]); // no cookie
    // SAFETY: plain socket calls on a descriptor owned here; the buffers
    // outlive the calls and their lengths are passed with them.
    unsafe {
        let fd = libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            libc::NETLINK_SOCK_DIAG,
        );
        if fd < 0 {
            return None;
        }
        let fd = OwnedFd::from_raw_fd(fd);
        let mut kernel: libc::sockaddr_nl = std::mem::zeroed();
        kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        let sent = libc::sendto(
            fd.as_raw_fd(),
            msg.as_ptr().cast(),
            msg.len(),
            0,
            (&raw const kernel).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        );
        if sent != msg.len() as isize {
            return None;
        }
        // The kernel answers within sendto: the reply is already queued.
        let mut buf = [0u8; 512];
        let n = libc::recv(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT,
        );
        // struct inet_diag_msg: family, state, timer, retrans, the 48-byte
        // sockid, expires, rqueue, wqueue, uid, then the inode.
        let inode_at = HEADER + 4 + 48 + 16;
        if n < (inode_at + 4) as isize
            || u16::from_ne_bytes([buf[4], buf[5]]) != SOCK_DIAG_BY_FAMILY
        {
            return None; // an NLMSG_ERROR: no such socket, or no sock_diag
        }
        let inode = u32::from_ne_bytes(buf[inode_at..inode_at + 4].try_into().ok()?);
        (inode != 0).then_some(u64::from(inode))
    }
}

#[cfg(not(target_os = "linux"))]
fn diag_inode(_peer: SocketAddr, _local: SocketAddr) -> Option<u64> {
    None
}

/// The same from `/proc/net/tcp{,6}`.
fn proc_inode(peer: SocketAddr, local: SocketAddr) -> Option<u64> {
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

    #[test]
    fn the_kernel_lookup_finds_the_socket_proc_net_tcp_lists() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let local = listener.local_addr().unwrap();
        let _client = std::net::TcpStream::connect(local).unwrap();
        let (_server, peer) = listener.accept().unwrap();
        let from_proc = proc_inode(peer, local).expect("listed in /proc/net/tcp");
        assert_eq!(diag_inode(peer, local), Some(from_proc));
        // The server's end is another socket; a closed port none at all.
        assert_ne!(diag_inode(local, peer), Some(from_proc));
        let gone: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert_eq!(diag_inode(gone, local), None);
    }
}
