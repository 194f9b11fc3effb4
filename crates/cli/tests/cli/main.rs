//! The CLI's end-to-end tests as one test binary (one link of the AWS SDK
//! and the stack harness instead of one per file).
//!
//! Run one module: `cargo test -p cwl-archiver-cli --test cli start_command::`

mod common;

mod errors;
mod operator_commands;
mod retention_commands;
mod start_command;
