//! Writing log lines to stderr off the invocation's path. Lines are
//! appended, in the order they are given, to one buffer that a writer
//! thread empties into stderr with one write per batch: the answer to a
//! caller never waits for a terminal or a file. Nothing is lost: the
//! process's writer ([`stderr`]) is flushed at exit, and dropping another
//! handle waits until everything is written. Knows nothing of invocations; ordering within an invocation
//! is its callers' (they log in order).

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// How long the writer gathers lines before a write, once woken.
const LINGER: Duration = Duration::from_millis(1);

static STDERR: std::sync::OnceLock<StderrWriter> = std::sync::OnceLock::new();

/// The process's one writer to stderr, flushed when the process exits.
pub(crate) fn stderr() -> &'static StderrWriter {
    STDERR.get_or_init(|| {
        // SAFETY: registers a plain function with no arguments.
        unsafe { libc::atexit(flush_at_exit) };
        StderrWriter::start()
    })
}

extern "C" fn flush_at_exit() {
    if let Some(w) = STDERR.get() {
        w.flush();
    }
}

#[derive(Default)]
struct State {
    buf: Vec<u8>,
    /// The writer is asleep and must be woken for new lines.
    idle: bool,
    /// The writer holds a batch it has not written yet.
    writing: bool,
    closed: bool,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    /// New lines (to the writer) and an empty buffer (to a flush).
    changed: Condvar,
}

/// A handle on the writer thread; its drop flushes and ends the thread.
pub(crate) struct StderrWriter {
    shared: Arc<Shared>,
}

impl StderrWriter {
    pub fn start() -> StderrWriter {
        let shared = Arc::new(Shared::default());
        let thread = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || write_loop(&thread));
        if spawned.is_err() {
            // No thread: write in place, as before.
            shared.state.lock().expect("log").closed = true;
        }
        StderrWriter { shared }
    }

    /// Queues one line (a `\n` is added).
    pub fn line(&self, args: std::fmt::Arguments<'_>) {
        let mut state = self.shared.state.lock().expect("log");
        if state.closed {
            drop(state);
            let mut line = std::fmt::format(args);
            line.push('\n');
            let _ = std::io::stderr().write_all(line.as_bytes());
            return;
        }
        let _ = state.buf.write_fmt(args);
        state.buf.push(b'\n');
        if state.idle {
            state.idle = false;
            self.shared.changed.notify_all();
        }
    }

    /// Waits until every queued line is written.
    pub fn flush(&self) {
        let mut state = self.shared.state.lock().expect("log");
        while !state.closed && (!state.buf.is_empty() || state.writing) {
            state = self.shared.changed.wait(state).expect("log");
        }
    }
}

impl Drop for StderrWriter {
    fn drop(&mut self) {
        self.flush();
        self.shared.state.lock().expect("log").closed = true;
        self.shared.changed.notify_all();
    }
}

fn write_loop(shared: &Shared) {
    let mut batch = Vec::new();
    loop {
        {
            let mut state = shared.state.lock().expect("log");
            state.writing = false;
            loop {
                if !state.buf.is_empty() {
                    break;
                }
                if state.closed {
                    return;
                }
                state.idle = true;
                // A flush may be waiting for this very moment.
                shared.changed.notify_all();
                state = shared.changed.wait(state).expect("log");
            }
            state.idle = false;
            state.writing = true;
        }
        // Linger a moment so one write takes the lines of many invocations:
        // while this thread is busy, loggers only append (no wake-up each).
        std::thread::sleep(LINGER);
        std::mem::swap(&mut batch, &mut shared.state.lock().expect("log").buf);
        // One write per batch; stderr locks itself for it, so other
        // writers' lines never split ours.
        let _ = std::io::stderr().write_all(&batch);
        batch.clear();
        if batch.capacity() > 1 << 20 {
            batch = Vec::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flush_waits_for_every_line() {
        let w = StderrWriter::start();
        for i in 0..1000 {
            w.line(format_args!("log-writer test line {i}"));
        }
        w.flush();
        let state = w.shared.state.lock().unwrap();
        assert!(state.buf.is_empty() && !state.writing);
    }
}
