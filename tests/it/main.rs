//! The one integration test binary: a module per area.

mod support;

mod config;
mod deploy;
mod moto;
