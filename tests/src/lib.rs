//! The harness of cwl-archiver's end-to-end tests: the strict emulator, the
//! local Lambda host, and the stack that joins them.

pub mod demo;
pub mod emulator;
pub mod iam;
pub mod interpose;
pub mod invariants;
pub mod lambda_host;
pub mod limits;
pub mod scenario;
pub mod stack;
pub mod template;
