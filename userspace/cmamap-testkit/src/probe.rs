//! ioctls with deliberately bad arguments, for the driver's validation tests. Each stays
//! memory-safe even against a driver that wrongly accepts what it passes.

use std::os::fd::{AsRawFd, BorrowedFd};

use cmamap::{abi, raw};
use nix::errno::Errno;

use crate::region::Region;

/// `CMAMAP_IOC_LIST` with caller-built arguments whose `entries` pointer is 0, so the driver
/// only counts. Tests use it to check the validation of the other fields.
///
/// # Panics
///
/// If `args.entries` is not 0: a caller-chosen pointer could make the kernel write anywhere.
pub fn list_count_with(fd: BorrowedFd<'_>, args: &mut abi::ListArgs) -> nix::Result<()> {
    assert_eq!(args.entries, 0, "list_count_with passes no entries buffer");
    // SAFETY: `args` is live and exclusive; with a null entries pointer the kernel writes only
    // `args` itself.
    unsafe { raw::ioc_list(fd.as_raw_fd(), args) }.map(drop)
}

/// Issues an arbitrary `request` with a pointer to `buf`, for tests of unknown requests.
///
/// # Panics
///
/// If `buf` is shorter than the size encoded in `request`.
pub fn ioctl_with_buffer(fd: BorrowedFd<'_>, request: u32, buf: &mut [u8]) -> nix::Result<i32> {
    assert!(
        buf.len() >= raw::request_size(request),
        "buffer shorter than the request's encoded size"
    );
    // SAFETY: `buf` is live and exclusive, and at least as large as the size the request
    // encodes, which bounds what a driver copies.
    let ret = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            request as nix::sys::ioctl::ioctl_num_type,
            buf.as_mut_ptr(),
        )
    };
    Errno::result(ret)
}

/// Issues `request` with its argument pointer aimed at a `PROT_NONE` page: expect `EFAULT`.
pub fn ioctl_with_inaccessible_arg_probe(fd: BorrowedFd<'_>, request: u32) -> nix::Result<i32> {
    let region = Region::inaccessible(raw::request_size(request))?;
    // SAFETY: the argument points to a PROT_NONE region that the kernel cannot access; nothing
    // in this process can be read or changed through it.
    let ret = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            request as nix::sys::ioctl::ioctl_num_type,
            region.addr as *mut libc::c_void,
        )
    };
    Errno::result(ret)
}

/// `CMAMAP_IOC_LIST` with a valid `ListArgs` whose `entries` points at a `PROT_NONE` region of
/// `capacity` entries: expect `EFAULT` when at least one block is reachable.
pub fn list_into_inaccessible_probe(fd: BorrowedFd<'_>, capacity: u32) -> nix::Result<u32> {
    let bytes = capacity as usize * std::mem::size_of::<abi::BlockInfo>();
    let region = Region::inaccessible(bytes)?;
    let mut args = abi::ListArgs {
        entries: region.addr as u64,
        capacity,
        ..Default::default()
    };
    // SAFETY: `args` is live and exclusive; the entries pointer aims at a PROT_NONE region large
    // enough for `capacity` entries, which the kernel cannot write.
    unsafe { raw::ioc_list(fd.as_raw_fd(), &mut args) }?;
    Ok(args.count)
}
