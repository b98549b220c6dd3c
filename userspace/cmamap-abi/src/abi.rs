// SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note

//! The cmamap ABI in Rust, shared verbatim by the driver (through `#[path]`) and userspace.
//!
//! It mirrors `driver/uapi/cmamap.h`; host tests compile the header and compare sizes, offsets
//! and ioctl numbers. This file must stay `core`-only so that the kernel crate can include it.

/// The ioctl type byte; free in `Documentation/userspace-api/ioctl/ioctl-number.rst`.
pub const IOC_MAGIC: u32 = 0xBB;
/// Bumped on any incompatible change.
pub const ABI_VERSION: u32 = 2;

/// Use the module parameter `default_strategy`.
pub const STRATEGY_DEFAULT: u32 = 0;
/// `remap_pfn_range` of the whole range inside `mmap`.
pub const STRATEGY_REMAP: u32 = 1;
/// One PFN inserted per fault (`VM_PFNMAP`).
pub const STRATEGY_FAULT: u32 = 2;
/// `vm_insert_page` per fault (`VM_MIXEDMAP`), so that GUP works.
pub const STRATEGY_PAGE: u32 = 3;
/// 2 MiB PMD entries where the block and the address are 2 MiB aligned, else like `FAULT`.
pub const STRATEGY_HUGE: u32 = 4;

/// The block is owned by the module, not by the file; needs `CAP_SYS_ADMIN`.
pub const ALLOC_PERSIST: u32 = 1 << 0;
/// The block is for the device that `AllocArgs::device` names: from that device's own CMA
/// area if it has one, and refused with `ERANGE` unless the device can reach it directly.
pub const ALLOC_FOR_DEVICE: u32 = 1 << 1;
/// Every allocation flag this ABI version knows.
pub const ALLOC_FLAGS_ALL: u32 = ALLOC_PERSIST | ALLOC_FOR_DEVICE;

/// The block was allocated through the caller's open file.
pub const OWNER_THIS_FILE: u32 = 1;
/// A `PERSIST` block, owned by the module.
pub const OWNER_MODULE: u32 = 2;
/// Device memory (a PCI BAR), owned by the bound device; it goes away on unbind.
pub const OWNER_DEVICE: u32 = 3;

/// `BlockInfo::flags` (out only): the block is device memory (a PCI BAR), not CMA RAM. It has
/// no `struct page`, so only the `remap` and `fault` views (and `VIEW_REMAP_WC`) map it.
pub const INFO_DEVICE_MEMORY: u32 = 1 << 16;

/// A view value for device memory only: `remap` with write-combining instead of uncached.
pub const VIEW_REMAP_WC: u32 = 5;

/// Largest alignment order accepted.
pub const MAX_ALIGN_ORDER: u32 = 10;

/// Argument of `IOC_ALLOC` and `IOC_ALLOC_MAP`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AllocArgs {
    /// In: bytes (rounded up to pages). Out: the rounded size.
    pub size: u64,
    /// In: `ALLOC_*` flags.
    pub flags: u32,
    /// In: `STRATEGY_*`. Out: the strategy used.
    pub strategy: u32,
    /// In: alignment as a page order.
    pub align_order: u32,
    /// Out: the block's handle.
    pub id: u32,
    /// Out: the mmap offset that selects the block.
    pub offset: u64,
    /// Out: the user address (`IOC_ALLOC_MAP` only). Must be 0 on input.
    pub addr: u64,
    /// In: `IOC_ALLOC_MAP`: `PROT_READ` and/or `PROT_WRITE`. `IOC_ALLOC`: must be 0.
    pub prot: u32,
    /// Must be 0.
    pub pad0: u32,
    /// In: with `ALLOC_FOR_DEVICE`, a user pointer to a `DeviceName`; else 0.
    pub device: u64,
    /// Must be 0.
    pub reserved: u64,
}

/// Argument of `IOC_FREE` and `IOC_UNMAP_FREE`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FreeArgs {
    /// In: the block's handle.
    pub id: u32,
    /// Must be 0.
    pub pad0: u32,
    /// In: `IOC_UNMAP_FREE`: the address `IOC_ALLOC_MAP` returned. `IOC_FREE`: must be 0.
    pub addr: u64,
    /// Must be 0.
    pub reserved: [u64; 2],
}

/// Argument of `IOC_INFO`, and each entry of `IOC_LIST`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockInfo {
    /// In: the block's handle.
    pub id: u32,
    /// Out: `ALLOC_*` flags, and `INFO_DEVICE_MEMORY` for a PCI BAR.
    pub flags: u32,
    /// Out: bytes.
    pub size: u64,
    /// Out: mmap offset.
    pub offset: u64,
    /// Out: physical address; 0 unless the caller has `CAP_SYS_ADMIN`.
    pub phys_addr: u64,
    /// Out: `STRATEGY_*`.
    pub strategy: u32,
    /// Out: live VMAs that map the block.
    pub map_count: u32,
    /// Out: `OWNER_*`.
    pub owner: u32,
    /// Out: the process that allocated it; 0 for device memory.
    pub owner_tgid: i32,
    /// Out: live device mappings of the block (`IOC_DMA_LIST` describes them).
    pub dma_mappings: u32,
    /// Must be 0 on input; 0 on output.
    pub pad0: u32,
    /// Must be 0 on input; 0 on output.
    pub reserved: u64,
}

/// Argument of `IOC_LIST`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ListArgs {
    /// In: user pointer to `BlockInfo[capacity]`; 0 with capacity 0 asks only for the count.
    pub entries: u64,
    /// In: entries available.
    pub capacity: u32,
    /// Out: blocks reachable; `min(count, capacity)` were written.
    pub count: u32,
    /// Must be 0.
    pub reserved: [u64; 2],
}

/// Argument of `IOC_STAT`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatArgs {
    /// Out: `ABI_VERSION`.
    pub abi_version: u32,
    /// Out: `STRATEGY_*`.
    pub default_strategy: u32,
    /// Out: the page size.
    pub page_size: u64,
    /// Out: module parameter `max_bytes_per_file`.
    pub max_bytes_per_file: u64,
    /// Out: module parameter `max_bytes_total`.
    pub max_bytes_total: u64,
    /// Out: bytes held by all live blocks.
    pub bytes_total: u64,
    /// Out: bytes charged to the caller's file.
    pub bytes_file: u64,
    /// Out: live blocks.
    pub blocks_total: u32,
    /// Out: blocks charged to the caller's file.
    pub blocks_file: u32,
    /// Must be 0 on input; 0 on output.
    pub reserved: [u64; 2],
}

/// A device mapping in which the device reads and writes.
pub const DMA_BIDIRECTIONAL: u32 = 0;
/// A device mapping in which the device reads what the CPU wrote.
pub const DMA_TO_DEVICE: u32 = 1;
/// A device mapping in which the device writes what the CPU reads.
pub const DMA_FROM_DEVICE: u32 = 2;

/// Longest device name, with its NUL.
pub const DEVICE_NAME_MAX: usize = 64;

/// A device, named as users name it: a PCI address or `BUS:NAME`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceName {
    /// In: NUL-terminated.
    pub name: [u8; DEVICE_NAME_MAX],
    /// In: the device's DMA address width, 0 for the kernel's mask.
    pub dma_bits: u32,
    /// Must be 0.
    pub pad0: u32,
}

impl Default for DeviceName {
    fn default() -> Self {
        Self {
            name: [0; DEVICE_NAME_MAX],
            dma_bits: 0,
            pad0: 0,
        }
    }
}

/// Argument of `IOC_DMA_MAP`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DmaMapArgs {
    /// In: the block's handle.
    pub id: u32,
    /// In: `DMA_*`.
    pub direction: u32,
    /// In: bytes into the block, page aligned.
    pub offset: u64,
    /// In: bytes, a page multiple; 0 maps to the end of the block.
    pub length: u64,
    /// In: the device.
    pub device: DeviceName,
    /// Out: the bus address that this device must use.
    pub dma_addr: u64,
    /// Out: the mapping's handle.
    pub handle: u32,
    /// Must be 0.
    pub pad1: u32,
    /// Must be 0.
    pub reserved: [u64; 2],
}

/// Argument of `IOC_DMA_UNMAP`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DmaUnmapArgs {
    /// In: what `IOC_DMA_MAP` returned through this file.
    pub handle: u32,
    /// Must be 0.
    pub pad0: u32,
    /// Must be 0.
    pub reserved: [u64; 2],
}

/// `SyncArgs::flags`: before the CPU reads what a device wrote.
pub const SYNC_FOR_CPU: u32 = 1 << 0;
/// `SyncArgs::flags`: before a device reads what the CPU wrote.
pub const SYNC_FOR_DEVICE: u32 = 1 << 1;

/// Argument of `IOC_SYNC`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncArgs {
    /// In: the block's handle.
    pub id: u32,
    /// In: `SYNC_FOR_CPU` or `SYNC_FOR_DEVICE`.
    pub flags: u32,
    /// In: bytes into the block.
    pub offset: u64,
    /// In: bytes; 0 syncs to the end of the block.
    pub length: u64,
    /// In: `DMA_*` of the data that moved.
    pub direction: u32,
    /// Out: device mappings synced.
    pub synced: u32,
    /// Must be 0.
    pub reserved: [u64; 2],
}

/// Most entries one `IOC_DMA_LIST` call writes.
pub const DMA_LIST_MAX: u32 = 1024;

/// Each entry of `IOC_DMA_LIST`: one device mapping of a block.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DmaInfo {
    /// Out: the mapping's handle.
    pub handle: u32,
    /// Out: `DMA_*`.
    pub direction: u32,
    /// Out: bytes into the block.
    pub offset: u64,
    /// Out: bytes.
    pub length: u64,
    /// Out: the device's bus address.
    pub dma_addr: u64,
    /// Out: `BUS:NAME`, NUL-terminated.
    pub device: [u8; DEVICE_NAME_MAX],
}

impl Default for DmaInfo {
    fn default() -> Self {
        Self {
            handle: 0,
            direction: 0,
            offset: 0,
            length: 0,
            dma_addr: 0,
            device: [0; DEVICE_NAME_MAX],
        }
    }
}

/// Argument of `IOC_DMA_LIST`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DmaListArgs {
    /// In: the block's handle.
    pub id: u32,
    /// In: entries available.
    pub capacity: u32,
    /// In: user pointer to `DmaInfo[capacity]`.
    pub entries: u64,
    /// Out: mappings; `min(count, capacity)` were written.
    pub count: u32,
    /// Must be 0.
    pub pad0: u32,
    /// Must be 0.
    pub reserved: [u64; 2],
}

/// `ExportArgs::flags`: a read-write dma-buf (`O_RDWR`); without it, mmap is read-only.
pub const EXPORT_RDWR: u32 = 0o2;
/// `ExportArgs::flags`: close the dma-buf's fd on exec (`O_CLOEXEC`).
pub const EXPORT_CLOEXEC: u32 = 0o2000000;
/// Every `ExportArgs::flags` bit.
pub const EXPORT_FLAGS_ALL: u32 = EXPORT_RDWR | EXPORT_CLOEXEC;

/// Argument of `IOC_EXPORT`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExportArgs {
    /// In: the block's handle.
    pub id: u32,
    /// In: `EXPORT_*`.
    pub flags: u32,
    /// In: bytes into the block, page aligned.
    pub offset: u64,
    /// In: bytes, a page multiple; 0 exports to the end of the block.
    pub length: u64,
    /// Out: the dma-buf's file descriptor.
    pub fd: i32,
    /// Must be 0.
    pub pad0: u32,
    /// Out: the dma-buf's size in bytes.
    pub size: u64,
    /// Must be 0.
    pub reserved: [u64; 2],
}

const IOC_WRITE: u32 = 1;
const IOC_READ: u32 = 2;

const fn ioc(dir: u32, nr: u32, size: usize) -> u32 {
    (dir << 30) | ((size as u32) << 16) | (IOC_MAGIC << 8) | nr
}

/// Allocates a block.
pub const IOC_ALLOC: u32 = ioc(
    IOC_READ | IOC_WRITE,
    0x00,
    core::mem::size_of::<AllocArgs>(),
);
/// Frees a block (deferred to the last munmap while it is mapped).
pub const IOC_FREE: u32 = ioc(IOC_WRITE, 0x01, core::mem::size_of::<FreeArgs>());
/// Describes one block.
pub const IOC_INFO: u32 = ioc(
    IOC_READ | IOC_WRITE,
    0x02,
    core::mem::size_of::<BlockInfo>(),
);
/// Describes every block the caller can reach.
pub const IOC_LIST: u32 = ioc(IOC_READ | IOC_WRITE, 0x03, core::mem::size_of::<ListArgs>());
/// Allocates a block and maps it into the caller.
pub const IOC_ALLOC_MAP: u32 = ioc(
    IOC_READ | IOC_WRITE,
    0x04,
    core::mem::size_of::<AllocArgs>(),
);
/// Unmaps what `IOC_ALLOC_MAP` mapped and frees the block.
pub const IOC_UNMAP_FREE: u32 = ioc(IOC_WRITE, 0x05, core::mem::size_of::<FreeArgs>());
/// Device-wide figures and limits.
pub const IOC_STAT: u32 = ioc(IOC_READ | IOC_WRITE, 0x06, core::mem::size_of::<StatArgs>());
/// Maps (part of) a block for a device through the DMA API.
pub const IOC_DMA_MAP: u32 = ioc(
    IOC_READ | IOC_WRITE,
    0x07,
    core::mem::size_of::<DmaMapArgs>(),
);
/// Ends a device mapping.
pub const IOC_DMA_UNMAP: u32 = ioc(IOC_WRITE, 0x08, core::mem::size_of::<DmaUnmapArgs>());
/// Syncs the device mappings of a block for the CPU or for the devices.
pub const IOC_SYNC: u32 = ioc(IOC_READ | IOC_WRITE, 0x09, core::mem::size_of::<SyncArgs>());
/// Lists the device mappings of one block.
pub const IOC_DMA_LIST: u32 = ioc(
    IOC_READ | IOC_WRITE,
    0x0a,
    core::mem::size_of::<DmaListArgs>(),
);

/// Exports (part of) a block as a dma-buf.
pub const IOC_EXPORT: u32 = ioc(
    IOC_READ | IOC_WRITE,
    0x0b,
    core::mem::size_of::<ExportArgs>(),
);

/// log2 of the mmap offset space each block owns (64 GiB), in the style of DRM fake offsets.
pub const OFFSET_SHIFT: u32 = 36;
/// Highest block id; keeps every offset below 2^63 so that it fits a positive `off_t`.
pub const MAX_ID: u32 = (1 << (63 - OFFSET_SHIFT)) - 1;

/// Bits `VIEW_SHIFT..OFFSET_SHIFT` of the offset inside a block choose the strategy of one
/// mapping (a view): 0 uses the block's own, `STRATEGY_*` maps the same memory another way.
pub const VIEW_SHIFT: u32 = 33;
/// The largest block (8 GiB): the part of the offset below `VIEW_SHIFT`.
pub const MAX_BLOCK_SIZE: u64 = 1 << VIEW_SHIFT;

/// The mmap offset of block `id`.
pub const fn offset_of_id(id: u32) -> u64 {
    (id as u64) << OFFSET_SHIFT
}

/// The mmap offset of byte `byte_offset` of block `id`, seen through the `view` strategy.
pub const fn view_offset(id: u32, view: u32, byte_offset: u64) -> u64 {
    offset_of_id(id) | ((view as u64) << VIEW_SHIFT) | byte_offset
}

/// The block id that an mmap offset selects, and the byte offset inside that block (for
/// `pread`/`pwrite`, where view bits make the offset lie past the block's end).
pub const fn id_of_offset(offset: u64) -> (u32, u64) {
    (
        (offset >> OFFSET_SHIFT) as u32,
        offset & ((1u64 << OFFSET_SHIFT) - 1),
    )
}

/// The block id, view strategy and byte offset that an mmap offset selects.
pub const fn view_of_offset(offset: u64) -> (u32, u32, u64) {
    let (id, inner) = id_of_offset(offset);
    (
        id,
        (inner >> VIEW_SHIFT) as u32,
        inner & (MAX_BLOCK_SIZE - 1),
    )
}
