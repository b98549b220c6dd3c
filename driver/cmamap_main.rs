// SPDX-License-Identifier: GPL-2.0

//! cmamap: physically contiguous CMA memory for userspace, through ioctls and `mmap`.
//!
//! `/dev/cmamap` allocates blocks from the default CMA area (`ioctl`), keeps every live block
//! in one list (`registry`), and maps them with one of four strategies: remap, fault, page
//! and huge (`mapping`). A block belongs to the open file that allocated it, or with
//! `PERSIST` to the module, and its pages go back to CMA only after the last VMA that maps it
//! is gone (`memory`).
//!
//! The module is also a PCI driver (`device_memory`): the BAR of a bound QEMU `ivshmem` device
//! is one more block, revoked and zapped in every process on unbind.
//!
//! Blocks are mapped for devices through the DMA API (`dma`): DMA_MAP gives the bus address a
//! device must use, SYNC does the cache maintenance, and a mapping ends on DMA_UNMAP, FREE,
//! file release, the device's removal or unbind, or `rmmod`.
//!
//! Blocks are exported as dma-bufs (`dmabuf`) for drivers that import them (V4L2, DRM, RDMA);
//! a dma-buf holds its block, and its CPU syncs cover the block's device mappings too.
//!
//! The ABI is `driver/uapi/cmamap.h`, shared in Rust with userspace (`abi`); its ERRORS blocks
//! list every errno each ioctl gives.
//!
//! # Lock order
//!
//! A lock may be taken only while every lock held has a smaller number. This is the one list;
//! other files name their locks by these numbers.
//!
//! 1. A device's lock (`device_lock`): held by DMA_MAP while it maps for that device, so that
//!    no driver binds or unbinds meanwhile; the driver core holds it around bind and unbind,
//!    whose bus notifications end that device's mappings (`dma`).
//! 2. `dma::MAPPINGS`: every device mapping. DMA API calls (map, unmap, sync) run under it,
//!    so a sync never meets an unmapped address.
//! 3. `mapping::alloc_map::Slot::turn` (per open file): held across one ALLOC_MAP's `vm_mmap`,
//!    so that ALLOC_MAP calls on one file take turns with the file's one pending slot.
//! 4. The mmap lock of an `mm`: taken by the mm around our `mmap`, faults and VMA `close`, by
//!    `vm_mmap`/`vm_munmap` in ALLOC_MAP and UNMAP_FREE, by UNMAP_FREE's lookup, and by
//!    `BarMemory::revoke` (with nothing of ours held).
//! 5. `mapping::alloc_map::Slot::pending` (per open file): read by `mmap` and `pread`/`pwrite`.
//! 6. `BarMemory::state` (`device_memory::bar`): the gate, held while PTEs of the BAR are
//!    inserted and while the BAR is copied through `ioremap`.
//! 7. `Block::alloc_map` (`mapping::alloc_map::Record`, a spinlock): set in `mmap` and cleared
//!    in `close`, both under 4.
//! 8. `registry::BLOCKS`: no block is dropped and nothing sleeps in CMA or a user copy under
//!    it; blocks leave it as `ListArc`s and are dropped after the guard. DMA_MAP looks its
//!    block up again under 2, so that a FREE in between cannot leave a mapping behind.
//! 9. `memory::quarantine::QUARANTINE`: a leaf. A block's last reference may go under 4 (a
//!    VMA's `close`), and its pages reach the quarantine there; `cma_release` under it takes
//!    only the mm's own spinlocks.
//!
//! 10. A dma-buf's attachments lock (`dmabuf/dmabuf_glue.c`): its importers' mappings. The
//!     dma-buf core may hold the buffer's reservation lock around it; nothing is taken
//!     under it, and it is dropped before a CPU sync reaches the device mappings (2).
//!
//! A dma-buf's `mmap` runs under 4, as ours does.
//!
//! Locks 5 to 8 are never held together today; the numbers fix which would come first. No
//! lock of ours is held across a user copy: a copy may fault into our own fault handler,
//! which takes 4 and 6.
//!
//! # Where `unsafe` is
//!
//! Only in small glue modules, each with its `# Safety` sections and safety comments: `abi`
//! (byte-level ABI promises), `caller` (capabilities, the log rate limit), `memory::cma` (CMA
//! FFI), `memory::user_io` (user iterator copies), `memory::quarantine` and `registry` (their
//! static locks; the quarantine's work), `mapping::vma` (vm_ops), `mapping::alloc_map`
//! (`vm_mmap`/`vm_munmap`), `dma::device` (the DMA API on a device), `dmabuf::exporter` (the
//! dma-buf exporter's callbacks), `device_memory::bar` (the PCI region, BAR copies) and
//! `device_memory::rmap` (the shared address_space); plus the self-test call below.

use kernel::{
    driver,
    miscdevice::{MiscDeviceOptions, MiscDeviceRegistration},
    prelude::*,
};

mod abi;
mod caller;
mod debugfs;
mod device_memory;
mod dma;
mod dmabuf;
mod file;
mod ioctl;
mod mapping;
mod memory;
mod params;
mod registry;

use crate::{
    debugfs::DebugFs,
    device_memory::{pci::CmamapPci, rmap::SharedMapping},
    dma::DmaMappings,
    file::OpenFile,
    memory::{block::Owner, quarantine},
};

module! {
    type: CmamapModule,
    name: "cmamap",
    authors: ["The cmamap developers"],
    description: "Physically contiguous CMA blocks mapped to userspace",
    license: "GPL",
    params: {
        default_strategy: u32 {
            default: 1,
            description: "Strategy for allocations that ask for the default: 1 remap, 2 fault, 3 page",
        },
        max_bytes_per_file: u64 {
            default: 268435456,
            description: "Most bytes the blocks of one open file may hold (default 256 MiB)",
        },
        max_bytes_total: u64 {
            default: 1073741824,
            description: "Most bytes all blocks together may hold (default 1 GiB; CMA is the real bound)",
        },
    },
}

/// The loaded module: registers `/dev/cmamap` and the PCI driver, and returns every remaining
/// block at `rmmod`. Fields drop in order: the device node, then the PCI driver (unbinding
/// zaps through the shared mapping), then debugfs, and the shared mapping last. The device
/// mappings come first both ways: set up before the device node exists, and dropped (the bus
/// notifier unregistered) first, when no file is open and so no mapping is left.
#[pin_data(PinnedDrop)]
struct CmamapModule {
    _dma: DmaMappings,
    #[pin]
    misc: MiscDeviceRegistration<OpenFile>,
    #[pin]
    _pci: driver::Registration<kernel::pci::Adapter<CmamapPci>>,
    _debugfs: DebugFs,
    _rmap: SharedMapping,
}

extern "C" {
    fn cmamap_selftest_inject();
}

impl kernel::InPlaceModule for CmamapModule {
    fn init(module: &'static ThisModule) -> impl PinInit<Self, Error> {
        registry::init();
        quarantine::init();
        // SAFETY: A no-op in every normal build; `scripts/selftest-pipeline.sh` compiles in a
        // warning or a leak, which need nothing from us.
        unsafe { cmamap_selftest_inject() };
        try_pin_init!(Self {
            _dma: DmaMappings::init()?,
            _rmap: SharedMapping::new()?,
            misc <- MiscDeviceRegistration::register(MiscDeviceOptions { name: c"cmamap" }),
            _pci <- driver::Registration::new(c"cmamap", module),
            _debugfs: DebugFs::new(),
        })
    }
}

#[pinned_drop]
impl PinnedDrop for CmamapModule {
    fn drop(self: Pin<&mut Self>) {
        // No file is open and no VMA exists (each pins the module), so only PERSIST blocks
        // remain, and nothing maps them: freeing them here returns their memory at once.
        // Device blocks go when the PCI driver unbinds, right after this.
        let (blocks, bytes) = registry::unpublish_where(|block| {
            debug_assert!(!matches!(block.owner(), Owner::File(_)));
            block.owner() == Owner::Module
        });
        // A freed PERSIST block may still be pinned by a pipe; nothing else can wait here,
        // since a waiting run holds the module.
        quarantine::drain_at_exit();
        pr_info!(
            "unloaded; returned {} blocks, {} bytes to CMA\n",
            blocks,
            bytes
        );
    }
}
