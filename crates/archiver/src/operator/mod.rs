//! What the operator's command line computes: plans and restores.

pub mod plan;
pub mod restore;
