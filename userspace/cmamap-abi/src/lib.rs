//! The cmamap ABI for userspace: the same file the driver includes.
#![no_std]

#[path = "abi.rs"]
mod abi;
pub use abi::*;
