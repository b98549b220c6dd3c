//! The ioctls of `/dev/cmamap`, one function each.
//!
//! The request numbers come from [`crate::abi`], so the C header, the driver and this crate
//! share one definition (a host test compares them with the header). The `ioc_*` functions are
//! the bare `nix` wrappers; the functions without the prefix are safe because each passes a
//! pointer to a whole argument struct that the kernel reads and writes only up to the size
//! encoded in the request number.

use std::os::fd::{AsRawFd, BorrowedFd};

use crate::abi;

nix::ioctl_readwrite_bad!(
    /// `CMAMAP_IOC_ALLOC`.
    ioc_alloc,
    abi::IOC_ALLOC,
    abi::AllocArgs
);
nix::ioctl_write_ptr_bad!(
    /// `CMAMAP_IOC_FREE`.
    ioc_free,
    abi::IOC_FREE,
    abi::FreeArgs
);
nix::ioctl_readwrite_bad!(
    /// `CMAMAP_IOC_INFO`.
    ioc_info,
    abi::IOC_INFO,
    abi::BlockInfo
);
nix::ioctl_readwrite_bad!(
    /// `CMAMAP_IOC_LIST`.
    ioc_list,
    abi::IOC_LIST,
    abi::ListArgs
);
nix::ioctl_readwrite_bad!(
    /// `CMAMAP_IOC_ALLOC_MAP`.
    ioc_alloc_map,
    abi::IOC_ALLOC_MAP,
    abi::AllocArgs
);
nix::ioctl_write_ptr_bad!(
    /// `CMAMAP_IOC_UNMAP_FREE`.
    ioc_unmap_free,
    abi::IOC_UNMAP_FREE,
    abi::FreeArgs
);
nix::ioctl_readwrite_bad!(
    /// `CMAMAP_IOC_STAT`.
    ioc_stat,
    abi::IOC_STAT,
    abi::StatArgs
);

/// The name of an ioctl request, for error messages.
pub fn request_name(request: u32) -> &'static str {
    match request {
        abi::IOC_ALLOC => "CMAMAP_IOC_ALLOC",
        abi::IOC_FREE => "CMAMAP_IOC_FREE",
        abi::IOC_INFO => "CMAMAP_IOC_INFO",
        abi::IOC_LIST => "CMAMAP_IOC_LIST",
        abi::IOC_ALLOC_MAP => "CMAMAP_IOC_ALLOC_MAP",
        abi::IOC_UNMAP_FREE => "CMAMAP_IOC_UNMAP_FREE",
        abi::IOC_STAT => "CMAMAP_IOC_STAT",
        abi::IOC_DMA_MAP => "CMAMAP_IOC_DMA_MAP",
        abi::IOC_DMA_UNMAP => "CMAMAP_IOC_DMA_UNMAP",
        abi::IOC_SYNC => "CMAMAP_IOC_SYNC",
        abi::IOC_DMA_LIST => "CMAMAP_IOC_DMA_LIST",
        abi::IOC_EXPORT => "CMAMAP_IOC_EXPORT",
        _ => "ioctl",
    }
}

/// The argument size encoded in an ioctl request number.
pub const fn request_size(request: u32) -> usize {
    ((request >> 16) & 0x3fff) as usize
}

/// `CMAMAP_IOC_ALLOC`: allocates a block described by `args` and fills in its out fields.
pub fn alloc(fd: BorrowedFd<'_>, args: &mut abi::AllocArgs) -> nix::Result<()> {
    // SAFETY: `args` is a live, exclusive AllocArgs; the kernel copies at most its size.
    unsafe { ioc_alloc(fd.as_raw_fd(), args) }.map(drop)
}

/// `CMAMAP_IOC_ALLOC_MAP`: allocates a block and maps it; `args.addr` receives the address.
///
/// Safe because the driver places the mapping at a free address of its choice: no existing
/// memory changes. The caller owns the new mapping and must release it with
/// [`unmap_free`] or `munmap`.
pub fn alloc_map(fd: BorrowedFd<'_>, args: &mut abi::AllocArgs) -> nix::Result<()> {
    // SAFETY: `args` is a live, exclusive AllocArgs; the kernel copies at most its size, and the
    // mapping it creates does not overlap memory that Rust code uses.
    unsafe { ioc_alloc_map(fd.as_raw_fd(), args) }.map(drop)
}

/// `CMAMAP_IOC_FREE`: frees block `args.id` (deferred to the last munmap while mapped).
pub fn free(fd: BorrowedFd<'_>, args: &abi::FreeArgs) -> nix::Result<()> {
    // SAFETY: `args` is a live FreeArgs that the kernel only reads; FREE never unmaps memory.
    unsafe { ioc_free(fd.as_raw_fd(), args) }.map(drop)
}

/// `CMAMAP_IOC_UNMAP_FREE`: unmaps the mapping at `args.addr` and frees block `args.id`.
///
/// # Safety
///
/// `args.addr` may be unmapped: the caller must own whatever lives there and must not touch it
/// afterwards.
pub unsafe fn unmap_free(fd: BorrowedFd<'_>, args: &abi::FreeArgs) -> nix::Result<()> {
    // SAFETY: the caller guarantees that unmapping `args.addr` harms no live reference.
    unsafe { ioc_unmap_free(fd.as_raw_fd(), args) }.map(drop)
}

/// `CMAMAP_IOC_INFO`: describes block `args.id`.
pub fn info(fd: BorrowedFd<'_>, args: &mut abi::BlockInfo) -> nix::Result<()> {
    // SAFETY: `args` is a live, exclusive BlockInfo; the kernel copies at most its size.
    unsafe { ioc_info(fd.as_raw_fd(), args) }.map(drop)
}

/// `CMAMAP_IOC_STAT`: device-wide figures.
pub fn stat(fd: BorrowedFd<'_>, args: &mut abi::StatArgs) -> nix::Result<()> {
    // SAFETY: `args` is a live, exclusive StatArgs; the kernel copies at most its size.
    unsafe { ioc_stat(fd.as_raw_fd(), args) }.map(drop)
}

/// `CMAMAP_IOC_LIST` into `entries`: returns the number of reachable blocks, of which
/// `min(count, entries.len())` were written.
pub fn list(fd: BorrowedFd<'_>, entries: &mut [abi::BlockInfo]) -> nix::Result<u32> {
    let capacity = u32::try_from(entries.len()).unwrap_or(u32::MAX);
    let mut args = abi::ListArgs {
        entries: if entries.is_empty() {
            0
        } else {
            entries.as_mut_ptr() as u64
        },
        capacity,
        ..Default::default()
    };
    // SAFETY: `args` is live; `entries` points to `capacity` writable BlockInfo that nothing else
    // borrows during the call, and the driver writes at most `capacity` of them.
    unsafe { ioc_list(fd.as_raw_fd(), &mut args) }?;
    Ok(args.count)
}

#[cfg(test)]
mod tests {
    use std::mem::size_of;

    use super::*;

    // nix computes _IOWR/_IOW independently of cmamap-abi's own encoder: both must agree.
    #[test]
    fn request_numbers_match_nix_encoding() {
        let magic = abi::IOC_MAGIC;
        let cases: [(u32, u64); 7] = [
            (
                abi::IOC_ALLOC,
                nix::request_code_readwrite!(magic, 0x00, size_of::<abi::AllocArgs>()) as u64,
            ),
            (
                abi::IOC_FREE,
                nix::request_code_write!(magic, 0x01, size_of::<abi::FreeArgs>()) as u64,
            ),
            (
                abi::IOC_INFO,
                nix::request_code_readwrite!(magic, 0x02, size_of::<abi::BlockInfo>()) as u64,
            ),
            (
                abi::IOC_LIST,
                nix::request_code_readwrite!(magic, 0x03, size_of::<abi::ListArgs>()) as u64,
            ),
            (
                abi::IOC_ALLOC_MAP,
                nix::request_code_readwrite!(magic, 0x04, size_of::<abi::AllocArgs>()) as u64,
            ),
            (
                abi::IOC_UNMAP_FREE,
                nix::request_code_write!(magic, 0x05, size_of::<abi::FreeArgs>()) as u64,
            ),
            (
                abi::IOC_STAT,
                nix::request_code_readwrite!(magic, 0x06, size_of::<abi::StatArgs>()) as u64,
            ),
        ];
        for (ours, theirs) in cases {
            assert_eq!(ours as u64, theirs, "{}", request_name(ours));
        }
    }

    #[test]
    fn request_size_decodes_the_size_field() {
        assert_eq!(request_size(abi::IOC_ALLOC), size_of::<abi::AllocArgs>());
        assert_eq!(request_size(abi::IOC_STAT), size_of::<abi::StatArgs>());
    }

    #[test]
    fn request_names() {
        assert_eq!(request_name(abi::IOC_UNMAP_FREE), "CMAMAP_IOC_UNMAP_FREE");
        assert_eq!(request_name(0), "ioctl");
    }
}

nix::ioctl_readwrite_bad!(
    /// `CMAMAP_IOC_DMA_MAP`.
    ioc_dma_map,
    abi::IOC_DMA_MAP,
    abi::DmaMapArgs
);
nix::ioctl_write_ptr_bad!(
    /// `CMAMAP_IOC_DMA_UNMAP`.
    ioc_dma_unmap,
    abi::IOC_DMA_UNMAP,
    abi::DmaUnmapArgs
);
nix::ioctl_readwrite_bad!(
    /// `CMAMAP_IOC_SYNC`.
    ioc_sync,
    abi::IOC_SYNC,
    abi::SyncArgs
);
nix::ioctl_readwrite_bad!(
    /// `CMAMAP_IOC_DMA_LIST`.
    ioc_dma_list,
    abi::IOC_DMA_LIST,
    abi::DmaListArgs
);

/// `CMAMAP_IOC_DMA_MAP`: maps part of block `args.id` for a device; fills in the bus address
/// and the handle.
pub fn dma_map(fd: BorrowedFd<'_>, args: &mut abi::DmaMapArgs) -> nix::Result<()> {
    // SAFETY: `args` is a live, exclusive DmaMapArgs; the kernel copies at most its size.
    unsafe { ioc_dma_map(fd.as_raw_fd(), args) }.map(drop)
}

/// `CMAMAP_IOC_DMA_UNMAP`: ends the device mapping `args.handle` made through this file.
pub fn dma_unmap(fd: BorrowedFd<'_>, args: &abi::DmaUnmapArgs) -> nix::Result<()> {
    // SAFETY: `args` is a live DmaUnmapArgs that the kernel only reads.
    unsafe { ioc_dma_unmap(fd.as_raw_fd(), args) }.map(drop)
}

/// `CMAMAP_IOC_SYNC`: syncs the device mappings of a block; `args.synced` says how many.
pub fn sync(fd: BorrowedFd<'_>, args: &mut abi::SyncArgs) -> nix::Result<()> {
    // SAFETY: `args` is a live, exclusive SyncArgs; the kernel copies at most its size.
    unsafe { ioc_sync(fd.as_raw_fd(), args) }.map(drop)
}

/// `CMAMAP_IOC_DMA_LIST` of block `id` into `entries`: returns the number of device mappings,
/// of which `min(count, entries.len())` were written.
pub fn dma_list(fd: BorrowedFd<'_>, id: u32, entries: &mut [abi::DmaInfo]) -> nix::Result<u32> {
    let mut args = abi::DmaListArgs {
        id,
        capacity: u32::try_from(entries.len()).unwrap_or(u32::MAX),
        entries: if entries.is_empty() {
            0
        } else {
            entries.as_mut_ptr() as u64
        },
        ..Default::default()
    };
    // SAFETY: `args` is live and exclusive; `entries` points to `capacity` writable DmaInfos
    // that live across the call.
    unsafe { ioc_dma_list(fd.as_raw_fd(), &mut args) }?;
    Ok(args.count)
}

nix::ioctl_readwrite_bad!(
    /// `CMAMAP_IOC_EXPORT`.
    ioc_export,
    abi::IOC_EXPORT,
    abi::ExportArgs
);

/// `CMAMAP_IOC_EXPORT`: makes a dma-buf of part of block `args.id`; fills in its fd and size.
pub fn export(fd: BorrowedFd<'_>, args: &mut abi::ExportArgs) -> nix::Result<()> {
    // SAFETY: `args` is a live, exclusive ExportArgs; the kernel copies at most its size.
    unsafe { ioc_export(fd.as_raw_fd(), args) }.map(drop)
}

/// `struct dma_buf_sync` of `<linux/dma-buf.h>`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct DmaBufSync {
    /// `DMA_BUF_SYNC_*`.
    pub flags: u64,
}

/// `DMA_BUF_SYNC_READ`: the CPU reads.
pub const DMA_BUF_SYNC_READ: u64 = 1;
/// `DMA_BUF_SYNC_WRITE`: the CPU writes.
pub const DMA_BUF_SYNC_WRITE: u64 = 2;
/// `DMA_BUF_SYNC_START`: the CPU access begins (the value is 0).
pub const DMA_BUF_SYNC_START: u64 = 0;
/// `DMA_BUF_SYNC_END`: the CPU access ends.
pub const DMA_BUF_SYNC_END: u64 = 1 << 2;

nix::ioctl_write_ptr!(
    /// `DMA_BUF_IOCTL_SYNC`.
    ioc_dma_buf_sync,
    b'b',
    0,
    DmaBufSync
);
nix::ioctl_write_ptr_bad!(
    /// `DMA_BUF_SET_NAME_B`: its argument is the name itself, though its number says `u64`.
    ioc_dma_buf_set_name,
    nix::request_code_write!(b'b', 1, std::mem::size_of::<u64>()),
    std::ffi::c_char
);

/// `DMA_BUF_IOCTL_SYNC` on dma-buf `fd` with `flags` (`DMA_BUF_SYNC_*`).
pub fn dma_buf_sync(fd: BorrowedFd<'_>, flags: u64) -> nix::Result<()> {
    // SAFETY: The argument is a live DmaBufSync that the kernel only reads.
    unsafe { ioc_dma_buf_sync(fd.as_raw_fd(), &DmaBufSync { flags }) }.map(drop)
}

/// `DMA_BUF_SET_NAME` on dma-buf `fd`.
pub fn dma_buf_set_name(fd: BorrowedFd<'_>, name: &std::ffi::CStr) -> nix::Result<()> {
    // SAFETY: `name` is a NUL-terminated string that lives across the call; the kernel only
    // reads it (up to DMA_BUF_NAME_LEN).
    unsafe { ioc_dma_buf_set_name(fd.as_raw_fd(), name.as_ptr()) }.map(drop)
}
