//! The domain rules and AWS adapters of cwl-archiver.
//!
//! cwl-archiver archives CloudWatch Logs events older than a cutoff to S3 and
//! removes them from CloudWatch while keeping every newer event. The four
//! Lambda functions of the workflow are thin wrappers over [`workflow`]; the
//! services they call sit behind the [`store::LogStore`] and
//! [`store::ArchiveStore`] traits, implemented over the AWS SDK in [`aws`]
//! and in memory, with the same AWS rules, in [`memory`] for tests.

pub mod aws;
pub mod batch;
pub mod classify;
pub mod error;
pub mod event;
pub mod export_format;
pub mod input;
pub mod lambda;
pub mod layout;
pub mod memory;
pub mod metrics;
pub mod plan;
pub mod restore;
pub mod staging;
pub mod store;
pub mod window;
pub mod workflow;

pub use error::{ArchiverError, ErrorName};
pub use event::LogEvent;
