//! Error reporting at the process boundary: the cause chain, an optional hint
//! telling the user what to do next, and the exit code.
//!
//! Operations return `anyhow::Result`; they attach a [`Hint`] with
//! [`WithHint::hint`] where the next step is not obvious from the message.

use std::fmt;
use std::process::ExitCode;

/// Exit code for a failed operation.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code for bad usage (same as clap's).
pub const EXIT_USAGE: u8 = 2;

/// An error message that also says what the user should do next.
#[derive(Debug)]
pub struct Hinted {
    pub message: String,
    pub hint: String,
}

impl fmt::Display for Hinted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Hinted {}

/// A usage error: the command line itself is wrong (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Builds an error with a hint.
pub fn hinted(message: impl Into<String>, hint: impl Into<String>) -> anyhow::Error {
    Hinted {
        message: message.into(),
        hint: hint.into(),
    }
    .into()
}

/// Attach a hint to any error result.
pub trait WithHint<T> {
    fn hint(self, hint: impl Into<String>) -> anyhow::Result<T>;
}

impl<T, E> WithHint<T> for Result<T, E>
where
    E: Into<anyhow::Error>,
{
    fn hint(self, hint: impl Into<String>) -> anyhow::Result<T> {
        self.map_err(|e| {
            let e: anyhow::Error = e.into();
            let message = format!("{e:#}");
            hinted(message, hint)
        })
    }
}

/// Prints the error with its causes and hint on stderr and returns the exit code.
pub fn report(err: &anyhow::Error) -> ExitCode {
    eprintln!("error: {err}");
    for cause in err.chain().skip(1) {
        eprintln!("  caused by: {cause}");
    }
    if let Some(h) = err.chain().find_map(|e| e.downcast_ref::<Hinted>()) {
        eprintln!("  hint: {}", h.hint);
    }
    let code = if err.chain().any(|e| e.is::<UsageError>()) {
        EXIT_USAGE
    } else {
        EXIT_FAILURE
    };
    ExitCode::from(code)
}
