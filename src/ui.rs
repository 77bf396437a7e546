//! Everything the user sees besides command results: status lines, spinners,
//! warnings, and the choice between human and JSON output.
//!
//! Status goes to stderr so stdout stays clean for results (payloads, JSON).
//! Spinners only draw on a terminal; elsewhere a plain line is printed once.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    #[default]
    Human,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ColorChoice {
    #[default]
    Auto,
    Always,
    Never,
}

/// How chatty to be and in which format; cheap to copy into operations.
#[derive(Debug, Clone, Copy)]
pub struct Ui {
    pub quiet: bool,
    pub verbose: u8,
    pub color: bool,
    pub output: OutputFormat,
    interactive: bool,
}

impl Default for Ui {
    fn default() -> Self {
        Ui::new(false, 0, ColorChoice::Auto, OutputFormat::Human)
    }
}

impl Ui {
    pub fn new(quiet: bool, verbose: u8, color: ColorChoice, output: OutputFormat) -> Self {
        let stderr_tty = std::io::stderr().is_terminal();
        let color = match color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => stderr_tty && std::env::var_os("NO_COLOR").is_none(),
        };
        Ui {
            quiet,
            verbose,
            color,
            output,
            interactive: stderr_tty,
        }
    }

    /// A UI that prints nothing (for library callers and tests).
    pub fn silent() -> Self {
        Ui {
            quiet: true,
            verbose: 0,
            color: false,
            output: OutputFormat::Human,
            interactive: false,
        }
    }

    pub fn is_json(&self) -> bool {
        self.output == OutputFormat::Json
    }

    /// A status line such as "Building hello (arm64)".
    pub fn status(&self, verb: &str, message: impl std::fmt::Display) {
        if self.quiet {
            return;
        }
        if self.color {
            eprintln!("\x1b[1;32m{verb:>12}\x1b[0m {message}");
        } else {
            eprintln!("{verb:>12} {message}");
        }
    }

    pub fn warn(&self, message: impl std::fmt::Display) {
        if self.quiet {
            return;
        }
        if self.color {
            eprintln!("\x1b[1;33mwarning\x1b[0m: {message}");
        } else {
            eprintln!("warning: {message}");
        }
    }

    /// Detail shown only with `-v`.
    pub fn detail(&self, message: impl std::fmt::Display) {
        if !self.quiet && self.verbose > 0 {
            eprintln!("{:>12} {message}", "");
        }
    }

    /// A spinner for a step that may take a while; a plain line off a terminal.
    pub fn step(&self, message: impl Into<String>) -> Step {
        let message = message.into();
        if self.quiet {
            return Step { bar: None };
        }
        if !self.interactive {
            eprintln!("{:>12} {message}", "...");
            return Step { bar: None };
        }
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                .expect("static spinner template"),
        );
        bar.set_message(message);
        bar.enable_steady_tick(Duration::from_millis(100));
        Step { bar: Some(bar) }
    }

    /// A byte progress bar (uploads, packaging); hidden off a terminal.
    pub fn bytes_bar(&self, total: u64, message: impl Into<String>) -> ProgressBar {
        if self.quiet || !self.interactive {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
                .expect("static bar template")
                .progress_chars("=> "),
        );
        bar.set_message(message.into());
        bar
    }
}

/// A running step; finishing (or dropping) clears the spinner.
pub struct Step {
    bar: Option<ProgressBar>,
}

impl Step {
    pub fn finish(self) {}
}

impl Drop for Step {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

/// A closed stdout (`cargo fn config | head -1`) ends the command quietly
/// with success, as cargo and ripgrep do. `println!` panics on EPIPE (Rust
/// ignores SIGPIPE), so the panic hook exits 0 for that panic, and only it.
pub fn quiet_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}

/// Did the command fail only because its stdout was closed?
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
