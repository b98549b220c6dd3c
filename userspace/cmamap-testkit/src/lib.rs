//! What the cmamap tests, the demo, the CLI and the benchmark share, and what the library's
//! public API does not carry:
//!
//! - [`probe`]: deliberately bad ioctl arguments that stay memory-safe even against a driver
//!   that wrongly accepts them, plus the library's `testkit` feature ([`Probe`],
//!   `Device::*_raw`, `probe_unmap_free`, `Block::map_view_at_phase`), re-exported here.
//! - [`process`]: a closure in a forked child, and descriptor passing with `SCM_RIGHTS`.
//! - [`pattern`]: a test pattern keyed by seed and block offset; [`rng`]: its generator.
//! - [`region`]: raw ranges of address space that tests cut apart and the benchmark fills.
//! - [`minor_faults`]: the process's minor-fault count.
//! - [`edu`]: QEMU's `edu` DMA device, driven from userspace as FPGA users drive theirs.
//! - [`progress`]: progress lines of long runs, on a channel of their own (the VM's console).
//! - [`v4l2`]: a V4L2 capture device (vivid in the VM) that imports dma-bufs.
//! - [`dma_heap`]: the kernel's CMA dma-heap, the benchmark's contender and the VM's way to
//!   settle CMA before its figures are read.

pub mod dma_heap;
pub mod edu;
pub mod pattern;
pub mod probe;
pub mod process;
pub mod progress;
pub mod region;
pub mod rng;
pub mod v4l2;

pub use cmamap::Probe;
pub use region::Region;

/// Minor faults of this process so far.
pub fn minor_faults() -> nix::Result<i64> {
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF)?;
    Ok(usage.minor_page_faults())
}
