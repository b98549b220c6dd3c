// SPDX-License-Identifier: GPL-2.0

//! cmamap: physically contiguous CMA memory for userspace, through ioctls and `mmap`.
//!
//! `/dev/cmamap` allocates blocks from the default CMA area (`ioctl`), keeps every live block
//! in one list (`registry`), and maps them with one of three strategies (`strategy`, `vma`).
//! A block belongs to the open file that allocated it, or with `PERSIST` to the module, and
//! its pages go back to CMA only after the last VMA that maps it is gone (`block`).
//!
//! The module is also a PCI driver (`pci`): the BAR of a bound QEMU `ivshmem` device is one
//! more block, of device memory (`bar`), revoked and zapped in every process on unbind.
//!
//! The ABI is `driver/uapi/cmamap.h`, shared in Rust with userspace (`abi`).

use kernel::prelude::*;

mod abi;
mod bar;
mod block;
mod charge;
mod cma;
mod debugfs;
mod device;
mod dma;
mod file;
mod ioctl;
mod offsets;
mod params;
mod pci;
mod quarantine;
mod registry;
mod rmap;
mod strategy;
mod sys;
mod vma;

module! {
    type: device::CmamapModule,
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
