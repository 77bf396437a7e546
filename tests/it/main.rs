//! The one integration test binary: a module per area.

mod support;

mod build;
mod cli_boundary;
mod config;
mod dashboard;
mod deploy;
mod deploy_image;
mod deploy_managed;
mod deploy_plan;
mod durable;
mod durable_cli;
mod emulator;
mod example_app;
mod extensions;
mod guide;
mod http_front;
mod image;
mod invoke;
mod local_schedules;
mod local_sqs;
mod local_streams;
mod logs;
mod managed_instances;
mod new;
mod package;
mod rollout;
mod ship;
mod snapshot;
mod stages;
mod stages_deploy;
mod streaming;
mod triggers;
mod tune;
mod watch;
