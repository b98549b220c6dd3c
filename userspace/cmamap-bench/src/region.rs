//! Memory the benchmark maps itself: anonymous memory and dma-buf fds.
//!
//! # Safety
//! This is the crate's only `mmap`/`munmap` glue. A [`Region`] owns its range: nothing else in
//! the process maps, unmaps or aliases it, so handing out a `&mut [u8]` over it is sound.
//!
//! # Invariants
//! `ptr..ptr + len` is a live, readable and writable mapping made by this module, until
//! [`Region::unmap`] or `Drop` unmaps it (exactly once).

use std::io;
use std::num::NonZeroUsize;
use std::os::fd::BorrowedFd;
use std::ptr::NonNull;

use nix::sys::mman::{self, MapFlags, ProtFlags};

/// A read-write mapping owned by the benchmark.
#[derive(Debug)]
pub struct Region {
    ptr: NonNull<u8>,
    len: usize,
}

fn length(len: usize) -> io::Result<NonZeroUsize> {
    NonZeroUsize::new(len).ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))
}

const RW: ProtFlags = ProtFlags::PROT_READ.union(ProtFlags::PROT_WRITE);

impl Region {
    /// Private anonymous memory; `populate` asks the kernel to fault it all in (`MAP_POPULATE`).
    pub fn anonymous(len: usize, populate: bool) -> io::Result<Self> {
        let mut flags = MapFlags::MAP_PRIVATE;
        if populate {
            flags |= MapFlags::MAP_POPULATE;
        }
        // SAFETY: no MAP_FIXED, so the kernel picks a free range and no existing memory changes.
        let ptr = unsafe { mman::mmap_anonymous(None, length(len)?, RW, flags) }?;
        Ok(Self {
            ptr: ptr.cast(),
            len,
        })
    }

    /// `MAP_SHARED` read-write mapping of `len` bytes of `fd` from offset 0 (a dma-buf).
    pub fn shared(fd: BorrowedFd<'_>, len: usize) -> io::Result<Self> {
        // SAFETY: no MAP_FIXED, so the kernel picks a free range and no existing memory changes.
        let ptr = unsafe { mman::mmap(None, length(len)?, RW, MapFlags::MAP_SHARED, fd, 0) }?;
        Ok(Self {
            ptr: ptr.cast(),
            len,
        })
    }

    /// The whole region as bytes.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: the invariants say the range is mapped read-write and owned by `self`, and
        // `&mut self` makes this the only live reference to it.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// Unmaps now, reporting the error that `Drop` would swallow.
    pub fn unmap(self) -> io::Result<()> {
        let (ptr, len) = (self.ptr, self.len);
        std::mem::forget(self);
        // SAFETY: the range is ours (invariants) and `forget` keeps `Drop` from unmapping it
        // a second time.
        unsafe { mman::munmap(ptr.cast(), len) }?;
        Ok(())
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: the range is ours (invariants) and is unmapped only here or in `unmap`,
        // which skips `Drop`.
        let _ = unsafe { mman::munmap(self.ptr.cast(), self.len) };
    }
}
