//! The one integration test binary: a module per area.

mod support;

mod build;
mod cli_boundary;
mod config;
mod deploy;
mod deploy_image;
mod ecr_shim;
mod emulator;
mod extensions;
mod http_front;
mod image;
mod invoke;
mod moto;
mod new;
mod package;
mod ship;
mod streaming;
mod watch;
