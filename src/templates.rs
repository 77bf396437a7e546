//! Embedded templates for `cargo fn new` / `cargo fn init`.
