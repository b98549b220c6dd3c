//! Userspace access to `/dev/cmamap`: physically contiguous CMA blocks handed out through
//! ioctls and mapped with `mmap`.
//!
//! The crate is layered:
//! - [`raw`]: one function per ioctl, with the request numbers taken from [`abi`] so that the C
//!   header, the driver and userspace share a single definition.
//! - [`Device`], [`Block`], [`Mapping`] and [`MappedBlock`]: owning handles that free and unmap
//!   in `Drop`, with lifetimes that tie a mapping to its block and a block to its device.
//!   [`Block::map_view`] maps a block through any strategy (a view), whatever its own.
//!   [`View`] names every view, the write-combined one of device memory included.
//! - [`DmaBuf`]: a block exported as a dma-buf for V4L2, DRM and other importers.
//! - Helpers for the command line and for reports: [`units`] and [`meminfo`].
//!
//! The `testkit` feature adds what only the driver's tests need (ioctls with caller-built
//! arguments, deliberately wrong `IOC_UNMAP_FREE`s); the `cmamap-testkit` crate turns it on.
//! The `serde` feature derives `Serialize` for [`Info`], [`Stat`] and the CMA figures.
//!
//! `unsafe` lives only in [`raw`] and in the mapping code (and, with `testkit`, in its wrong
//! `IOC_UNMAP_FREE`s).
//!
//! ```no_run
//! use cmamap::{AllocRequest, Device, Prot, Strategy};
//!
//! let dev = Device::open()?;
//! let block = dev.alloc(&AllocRequest::new(4 << 20).strategy(Strategy::Page))?;
//! let mut mapping = block.map(Prot::ReadWrite)?;
//! mapping.as_mut_slice().fill(0xa5);
//! // Dropping the mapping unmaps it; dropping the block frees it.
//! # Ok::<(), cmamap::Error>(())
//! ```

pub use cmamap_abi as abi;

mod block;
mod device;
mod dma;
mod dmabuf;
mod error;
mod mapping;
pub mod meminfo;
pub mod raw;
mod strategy;
#[cfg(feature = "testkit")]
mod testkit;
pub mod units;
mod view;

pub use block::{view_offset, Block, VIEW_LIMIT};
pub use device::{AllocRequest, Device, Info, Stat, DEFAULT_PATH};
pub use dma::{Direction, DmaDevice, DmaInfo, DmaMapping};
pub use dmabuf::{CpuAccess, DmaBuf, ExportRequest};
pub use error::{errno_name, explanation as errno_explanation, Error, Result};
pub use mapping::{MappedBlock, Mapping, Sharing, HUGE_SIZE};
pub use nix::errno::Errno;
pub use strategy::{Owner, ParseStrategyError, Prot, Strategy};
#[cfg(feature = "testkit")]
pub use testkit::Probe;
pub use view::View;

/// The system page size in bytes.
pub fn page_size() -> usize {
    // sysconf(_SC_PAGESIZE) cannot fail on Linux; 4096 keeps the function total anyway.
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .and_then(|size| usize::try_from(size).ok())
        .unwrap_or(4096)
}
