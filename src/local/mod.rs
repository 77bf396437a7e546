//! Local triggers (placeholder until the framework lands from `lsqs`).

pub mod events;
pub mod schedule;
