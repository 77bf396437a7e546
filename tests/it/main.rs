//! The one integration test binary: a module per area.

mod support;

mod build;
mod config;
mod deploy;
mod emulator;
mod http_front;
mod image;
mod invoke;
mod moto;
mod new;
mod package;
mod streaming;
mod watch;
