//! The domain rules and AWS adapters of cwl-archiver.
//!
//! cwl-archiver archives CloudWatch Logs events older than a cutoff to S3 and
//! removes them from CloudWatch while keeping every newer event. The library
//! is grouped by layer:
//!
//! - [`domain`]: the rules, free of I/O: the execution input, the export
//!   window and checkpoint, stream classes, batch packing, the staging and
//!   export formats, the S3 layout;
//! - [`store`]: the small traits the workflow reaches AWS through, their AWS
//!   SDK implementation, and (with the `test-doubles` feature) an in-memory
//!   one with the same rules;
//! - [`workflow`]: the steps of the state machine, one per Lambda entry
//!   point, and what the Lambda binaries share;
//! - [`operator`]: what the `cwl-archiver` command line computes (plans,
//!   restores).

pub mod domain;
pub mod error;
pub mod operator;
pub mod store;
pub mod workflow;

pub use domain::event::LogEvent;
pub use error::{ArchiverError, ErrorName};
