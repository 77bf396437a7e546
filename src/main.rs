//! Entry point: parse, run, map the outcome to an exit code. Nothing else.

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cargo_fn::cli::parse_from_env();
    match cargo_fn::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => cargo_fn::error::report(&err),
    }
}
