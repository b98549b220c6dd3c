// SPDX-License-Identifier: GPL-2.0

//! One `pread` or `pwrite`: the user iterator and the way the bytes go, so that each kind of
//! memory writes its copy loop once for both directions.
//!
//! One of the modules with `unsafe`: the raw iterator copies.

use kernel::{
    bindings,
    iov::{IovIterDest, IovIterSource},
};

/// The user side of one copy.
pub(crate) enum UserIo<'a, 'data> {
    /// `pread`: from the block to the user.
    Read(&'a mut IovIterDest<'data>),
    /// `pwrite`: from the user to the block.
    Write(&'a mut IovIterSource<'data>),
}

impl UserIo<'_, '_> {
    /// The bytes the user asked for.
    pub(crate) fn len(&self) -> usize {
        match self {
            Self::Read(dest) => dest.len(),
            Self::Write(src) => src.len(),
        }
    }

    /// Whether the bytes go to the block (`pwrite`).
    pub(crate) fn writes_block(&self) -> bool {
        matches!(self, Self::Write(_))
    }

    /// Copies up to `len` bytes between kernel memory at `kernel` and the user. Returns the
    /// bytes copied; fewer than asked when user memory faults.
    ///
    /// # Safety
    ///
    /// `kernel..kernel + len` must be valid for reads and writes for the whole call. It may be
    /// memory that userspace maps and writes at the same time, as read(2) of shared memory
    /// allows.
    pub(crate) unsafe fn copy_raw(&mut self, kernel: *mut u8, len: usize) -> usize {
        match self {
            // SAFETY: The caller guarantees `kernel` for `len` bytes; the iterator is live.
            Self::Read(dest) => unsafe {
                bindings::_copy_to_iter(kernel.cast_const().cast(), len, dest.as_raw())
            },
            // SAFETY: As above.
            Self::Write(src) => unsafe {
                bindings::_copy_from_iter(kernel.cast(), len, src.as_raw())
            },
        }
    }

    /// Copies between `buf` and the user, as [`Self::copy_raw`].
    pub(crate) fn copy(&mut self, buf: &mut [u8]) -> usize {
        // SAFETY: `buf` is valid for reads and writes of its length.
        unsafe { self.copy_raw(buf.as_mut_ptr(), buf.len()) }
    }
}
