//! Userspace access to `/dev/cmamap`: physically contiguous CMA blocks handed out through
//! ioctls and mapped with `mmap`.
//!
//! The crate is layered:
//! - [`raw`]: one function per ioctl, with the request numbers taken from [`abi`] so that the C
//!   header, the driver and userspace share a single definition.
//! - [`Device`], [`Block`], [`Mapping`] and [`MappedBlock`]: owning handles that free and unmap
//!   in `Drop`, with lifetimes that tie a mapping to its block and a block to its device.
//!   [`Block::map_view`] maps a block through any strategy (a view), whatever its own.
//! - Helpers shared by the CLI, the demo and the in-VM tests: [`units`], [`pattern`],
//!   [`meminfo`] and [`process`].
//!
//! `unsafe` lives only in [`raw`], in the mapping code and in [`process`] (fork and fd passing).

pub use cmamap_abi as abi;

mod block;
mod device;
mod dma;
mod error;
mod mapping;
pub mod meminfo;
pub mod pattern;
pub mod process;
pub mod raw;
mod strategy;
pub mod units;

pub use block::{view_offset, Block, VIEW_LIMIT};
pub use device::{AllocRequest, Device, Info, Stat, DEFAULT_PATH};
pub use dma::{Direction, DmaDevice, DmaInfo, DmaMapping};
pub use error::{errno_name, explanation as errno_explanation, Error, Result};
pub use mapping::{MappedBlock, Mapping, Probe, Sharing, HUGE_SIZE};
pub use nix::errno::Errno;
pub use strategy::{Owner, ParseStrategyError, Prot, Strategy};

/// The system page size in bytes.
pub fn page_size() -> usize {
    // sysconf(_SC_PAGESIZE) cannot fail on Linux; 4096 keeps the function total anyway.
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .and_then(|size| usize::try_from(size).ok())
        .unwrap_or(4096)
}
