//! The end-to-end suite as one test binary: every module links the AWS SDK,
//! the handlers and the stack harness, so one binary instead of one per file
//! saves about 400 MB of disk and six links on a cold `make test`.
//!
//! Run one module: `cargo test -p cwl-archiver-e2e --test e2e faults_e2e::`
//! (needs `make venv`, or `CWL_EMULATOR_PYTHON`; `CWL_EMULATOR_LOG=1` echoes
//! the emulator's stderr).

mod adapters;
mod archive_e2e;
mod deploy_e2e;
mod emulator_rules;
mod emulator_strict;
mod faults_e2e;
mod limits_e2e;
