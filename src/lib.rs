//! cargo-fn: the developer toolchain for AWS Lambda functions written in Rust.
//!
//! The binary (`src/main.rs`) is a thin shell over this library. `cli` turns
//! arguments into option structs and calls one operation from the modules
//! below; no module below `cli` knows about clap.

pub mod artifact;
pub mod aws;
pub mod bridge;
pub mod build;
pub mod cli;
pub mod config;
pub mod dashboard;
pub mod deploy;
pub mod durable;
pub mod error;
pub mod image;
pub mod invoke;
pub mod launch;
pub mod local;
pub mod logs;
pub mod package;
pub mod pipeline;
pub mod project;
pub mod templates;
pub mod toolchain;
pub mod tune;
pub mod ui;
pub mod watch;

/// The local Lambda emulator, its own crate (`crates/emulator`) so the
/// compiler keeps it free of cargo, configuration and AWS SDKs.
pub use cargo_fn_emulator as emulator;
