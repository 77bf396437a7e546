//! The one integration test binary: a module per area.

mod support;

mod build;
mod config;
mod dashboard;
mod deploy;
mod deploy_image;
mod ecr_shim;
mod emulator;
mod extensions;
mod http_front;
mod image;
mod invoke;
mod logs;
mod moto;
mod new;
mod package;
mod ship;
mod streaming;
mod watch;
