//! Reading processes' stdout and stderr as log lines. Output is bytes, not
//! text: invalid UTF-8 is shown lossily and never stops the reading (a
//! closed pipe would make the process's next write fail). A line is at most
//! [`MAX_LINE`] bytes, CloudWatch's event size: a longer one (or output
//! without newlines) becomes several lines, so memory stays bounded.
//!
//! Every read and the lines it completes happen under one lock, so
//! [`PipeSet::drain`] can tell, exactly, when everything a process wrote
//! before a point (an invocation's answer) has been logged: that keeps an
//! invocation's lines before its END.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::unix::AsyncFd;

/// CloudWatch Logs' largest event (256 KB).
pub(crate) const MAX_LINE: usize = 256 * 1024;

/// Where the lines of one pipe go.
pub(crate) type Emit = Arc<dyn Fn(&str) + Send + Sync>;

/// Splits a byte stream into bounded lines.
#[derive(Default)]
pub(crate) struct Lines {
    partial: Vec<u8>,
}

impl Lines {
    /// Adds bytes; emits every complete line (without its `\n` or `\r\n`)
    /// and every [`MAX_LINE`] piece of a longer one.
    pub fn push(&mut self, mut data: &[u8], emit: &dyn Fn(&str)) {
        while !data.is_empty() {
            let room = MAX_LINE - self.partial.len();
            match data.iter().take(room).position(|b| *b == b'\n') {
                Some(i) => {
                    self.partial.extend_from_slice(&data[..i]);
                    if self.partial.last() == Some(&b'\r') {
                        self.partial.pop();
                    }
                    emit_lossy(&self.partial, emit);
                    self.partial.clear();
                    data = &data[i + 1..];
                }
                None if data.len() < room => {
                    self.partial.extend_from_slice(data);
                    return;
                }
                None => {
                    self.partial.extend_from_slice(&data[..room]);
                    data = &data[room..];
                    // Cut before a character split in two, so both halves
                    // read well.
                    let cut = char_boundary(&self.partial);
                    let rest = self.partial.split_off(cut);
                    emit_lossy(&self.partial, emit);
                    self.partial = rest;
                }
            }
        }
    }

    /// Emits the unterminated rest, if any.
    pub fn flush(&mut self, emit: &dyn Fn(&str)) {
        if !self.partial.is_empty() {
            emit_lossy(&self.partial, emit);
            self.partial.clear();
        }
    }
}

fn emit_lossy(bytes: &[u8], emit: &dyn Fn(&str)) {
    emit(&String::from_utf8_lossy(bytes));
}

/// Where to cut a full buffer so no character is split in two: before
/// an incomplete UTF-8 sequence at its end, else at the end.
fn char_boundary(bytes: &[u8]) -> usize {
    let end = bytes.len();
    let mut lead = end;
    while lead > 0 && end - lead < 3 && (bytes[lead - 1] & 0xC0) == 0x80 {
        lead -= 1;
    }
    let Some(l) = lead.checked_sub(1) else {
        return end;
    };
    let need = match bytes[l] {
        b if b >= 0xF0 => 4,
        b if b >= 0xE0 => 3,
        b if b >= 0xC0 => 2,
        _ => 1,
    };
    if l > 0 && l + need > end { l } else { end }
}

struct Pipe {
    id: u64,
    fd: RawFd,
    lines: Lines,
    emit: Emit,
}

/// The pipes of one environment's processes, read line by line.
#[derive(Default)]
pub(crate) struct PipeSet {
    pipes: Mutex<Vec<Pipe>>,
    next_id: std::sync::atomic::AtomicU64,
}

impl PipeSet {
    /// Reads `pipe` until its writers are gone; each line goes to `emit`.
    pub fn spawn(self: &Arc<Self>, pipe: OwnedFd, emit: Emit) -> std::io::Result<()> {
        set_nonblocking(&pipe)?;
        let fd = pipe.as_raw_fd();
        // SAFETY: an OwnedFd's descriptor stays open, and the same, for as
        // long as the AsyncFd owns it.
        let pipe = unsafe { AsyncFd::register_with_interest(pipe, tokio::io::Interest::READABLE) }?;
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.lock().push(Pipe {
            id,
            fd,
            lines: Lines::default(),
            emit,
        });
        let set = self.clone();
        tokio::spawn(async move {
            set.read_all(pipe, id).await;
        });
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Pipe>> {
        self.pipes.lock().expect("pipes")
    }

    async fn read_all(&self, pipe: AsyncFd<OwnedFd>, id: u64) {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let Ok(mut ready) = pipe.readable().await else {
                break;
            };
            let mut pipes = self.lock();
            let read = ready.try_io(|fd| {
                // SAFETY: reads into our own buffer from a descriptor we own.
                let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
                if n < 0 {
                    Err(std::io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            let Some(p) = pipes.iter_mut().find(|p| p.id == id) else {
                return;
            };
            match read {
                Err(_would_block) => continue,
                Ok(Ok(0)) => break,
                Ok(Ok(n)) => {
                    let emit = p.emit.clone();
                    p.lines.push(&buf[..n], &*emit);
                }
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Ok(Err(_)) => break,
            }
        }
        // End of output: the rest, then forget the pipe before its fd closes.
        let mut pipes = self.lock();
        if let Some(i) = pipes.iter().position(|p| p.id == id) {
            let mut p = pipes.remove(i);
            let emit = p.emit.clone();
            p.lines.flush(&*emit);
        }
    }

    /// Waits (briefly) until everything written to the pipes so far has
    /// been logged, unterminated last lines included. What a function
    /// printed before answering is in its pipe by then, so this keeps its
    /// lines before the END of the invocation.
    pub async fn drain(&self) {
        for round in 0..200 {
            {
                let mut pipes = self.lock();
                // Reads happen under this lock: with nothing left in the
                // pipes, everything read has been emitted.
                if pipes.iter().all(|p| pending_bytes(p.fd) == 0) {
                    for p in pipes.iter_mut() {
                        let emit = p.emit.clone();
                        p.lines.flush(&*emit);
                    }
                    return;
                }
            }
            // The reader usually just needs to be scheduled: yield first,
            // and only fall back to the timer (1 ms granularity) if it lags.
            if round < 100 {
                tokio::task::yield_now().await;
            } else {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
}

fn pending_bytes(fd: RawFd) -> i32 {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD only writes the byte count into `n`.
    let rc = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) };
    if rc == 0 { n } else { 0 }
}

fn set_nonblocking(fd: &OwnedFd) -> std::io::Result<()> {
    // SAFETY: plain fcntl calls on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]]) -> Vec<String> {
        let out = std::cell::RefCell::new(Vec::new());
        let emit = |l: &str| out.borrow_mut().push(l.to_string());
        let mut lines = Lines::default();
        for c in chunks {
            lines.push(c, &emit);
        }
        lines.flush(&emit);
        out.into_inner()
    }

    #[test]
    fn invalid_utf8_is_shown_lossily_and_reading_goes_on() {
        assert_eq!(
            split(&[b"ok\n", b"bad \xff\xfe byte\n", b"after\r\n"]),
            ["ok", "bad \u{fffd}\u{fffd} byte", "after"]
        );
    }

    #[test]
    fn long_lines_are_split_at_the_cloudwatch_event_size() {
        let long = vec![b'x'; MAX_LINE * 2 + 10];
        let lines = split(&[&long, b"\nnext"]);
        let lens: Vec<usize> = lines.iter().map(String::len).collect();
        assert_eq!(lens, [MAX_LINE, MAX_LINE, 10, 4]);
        // A character is never cut in two.
        let mut text = vec![b'a'; MAX_LINE - 1];
        text.extend_from_slice("é\n".as_bytes());
        let lines = split(&[&text]);
        assert_eq!(lines.len(), 2);
        assert!(lines[1] == "é", "{:?}", &lines[1]);
    }
}
