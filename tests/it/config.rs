//! `cargo fn config` and configuration layering, through the CLI.
