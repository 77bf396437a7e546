//! Entry point: parse, run, map the outcome to an exit code. Nothing else.

use std::process::ExitCode;

fn main() -> ExitCode {
    cargo_fn::ui::quiet_on_broken_pipe();
    let cli = cargo_fn::cli::parse_from_env();
    match cargo_fn::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // `cargo fn config | head -1`: the reader has what it wanted.
        Err(err) if cargo_fn::ui::is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => cargo_fn::error::report(&err),
    }
}
