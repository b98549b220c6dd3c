//! What `cmamap` and `cmamap-demo` share: the text of blocks and figures ([`report`]), the
//! ways of sharing a block with another process ([`share`]), and errors with hints
//! ([`error`]), and the system check of `cmamap doctor` ([`doctor`]).

pub mod doctor;
pub mod error;
pub mod json;
pub mod report;
pub mod share;
