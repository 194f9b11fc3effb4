//! The rules of the archiver, free of I/O.

pub mod batch;
pub mod classify;
pub mod event;
pub mod export_format;
pub mod input;
pub mod layout;
pub mod lease;
pub mod retention;
pub mod staging;
pub mod window;
