//! The one integration test binary: a module per area.

mod support;

mod build;
mod config;
mod image;
mod new;
mod package;
mod emulator;
mod invoke;
mod watch;
