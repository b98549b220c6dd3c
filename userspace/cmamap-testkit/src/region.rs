//! Raw ranges of address space: device mappings that tests cut apart (partial munmap, mremap,
//! MAP_FIXED into holes, madvise), anonymous memory the benchmark compares against, and
//! `PROT_NONE` ranges that ioctl arguments can point at. The library's `Mapping` keeps its
//! range whole; a `Region` does not.
//!
//! A region owns `addr..addr + len` and unmaps all of it on drop, holes included (munmap of
//! an unmapped range is harmless). Bytes are accessed volatilely, since other mappings,
//! threads and processes may write the same memory.

use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, Ordering};

use cmamap::Error;
use nix::errno::Errno;

/// A range of address space this process owns.
#[derive(Debug)]
pub struct Region {
    pub addr: usize,
    pub len: usize,
    // True while the whole range is one read-write mapping that this region made and nothing
    // cut: only then may it be handed out as a slice.
    sliceable: AtomicBool,
}

fn last_errno<T>() -> Result<T, Errno> {
    Err(Errno::last())
}

/// `mmap(hint, len, prot, MAP_SHARED | extra, fd, offset)`; the raw result.
pub fn mmap_raw(
    hint: usize,
    len: usize,
    prot: i32,
    extra_flags: i32,
    fd: BorrowedFd<'_>,
    offset: u64,
) -> Result<usize, Errno> {
    // SAFETY: a caller that passes MAP_FIXED owns the range it replaces (a Region or a hole in
    // one); without it the kernel picks free address space.
    let ptr = unsafe {
        libc::mmap(
            hint as *mut libc::c_void,
            len,
            prot,
            libc::MAP_SHARED | extra_flags,
            fd.as_raw_fd(),
            offset as libc::off_t,
        )
    };
    if ptr == libc::MAP_FAILED {
        return last_errno();
    }
    Ok(ptr as usize)
}

/// Anonymous memory of the kernel's choice; the raw result.
fn mmap_anonymous(len: usize, prot: i32, flags: i32) -> Result<usize, Errno> {
    // SAFETY: no MAP_FIXED: fresh address space, which no other code uses.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            prot,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | flags,
            -1,
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return last_errno();
    }
    Ok(ptr as usize)
}

const RW: i32 = libc::PROT_READ | libc::PROT_WRITE;

impl Region {
    fn new(addr: usize, len: usize, sliceable: bool) -> Self {
        Self {
            addr,
            len,
            sliceable: AtomicBool::new(sliceable),
        }
    }

    /// A shared read-write mapping of `len` bytes of the device (or a dma-buf) at `offset`.
    pub fn map(fd: BorrowedFd<'_>, offset: u64, len: usize) -> Result<Self, Error> {
        let addr = mmap_raw(0, len, RW, 0, fd, offset)
            .map_err(|e| Error::new(format!("mmap of {len} bytes at offset {offset:#x}"), e))?;
        Ok(Self::new(addr, len, true))
    }

    /// Private anonymous read-write memory; `populate` has the kernel fault it all in
    /// (`MAP_POPULATE`).
    pub fn anonymous(len: usize, populate: bool) -> Result<Self, Error> {
        let flags = if populate { libc::MAP_POPULATE } else { 0 };
        let addr = mmap_anonymous(len, RW, flags)
            .map_err(|e| Error::new(format!("mmap of {len} anonymous bytes"), e))?;
        Ok(Self::new(addr, len, true))
    }

    /// `PROT_NONE` address space of at least `len` bytes (whole pages, at least one): an
    /// address that the kernel can neither read nor write, so handing it to an ioctl must
    /// yield `EFAULT`, whatever the driver would do with it.
    pub fn inaccessible(len: usize) -> Result<Self, Errno> {
        let page = cmamap::page_size();
        let len = len.max(1).div_ceil(page) * page;
        Ok(Self::new(
            mmap_anonymous(len, libc::PROT_NONE, 0)?,
            len,
            false,
        ))
    }

    /// Takes over `addr..addr + len` (a range the test made and must not unmap itself).
    pub fn adopt(addr: usize, len: usize) -> Self {
        Self::new(addr, len, false)
    }

    pub fn read(&self, index: usize) -> u8 {
        assert!(index < self.len);
        // SAFETY: the index is inside the region; the test keeps that page mapped.
        unsafe { std::ptr::read_volatile((self.addr + index) as *const u8) }
    }

    pub fn write(&self, index: usize, value: u8) {
        assert!(index < self.len);
        // SAFETY: as for `read`, and the page is mapped writable.
        unsafe { std::ptr::write_volatile((self.addr + index) as *mut u8, value) }
    }

    /// Copies `range` of the region out (volatile reads, page by page).
    pub fn copy_out(&self, start: usize, len: usize) -> Vec<u8> {
        (start..start + len).map(|i| self.read(i)).collect()
    }

    /// Writes `data` at `start`.
    pub fn copy_in(&self, start: usize, data: &[u8]) {
        for (i, &b) in data.iter().enumerate() {
            self.write(start + i, b);
        }
    }

    /// The whole region as bytes, for code that owns it alone (the benchmark's memcpy).
    ///
    /// # Panics
    ///
    /// Unless the region was made whole and read-write by [`Region::map`] or
    /// [`Region::anonymous`] and not cut or protected since.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        assert!(
            self.sliceable.load(Ordering::Relaxed),
            "region is not one whole read-write mapping"
        );
        // SAFETY: the range is one live read-write mapping that this region made, and
        // `&mut self` makes this the only reference to it.
        unsafe { std::slice::from_raw_parts_mut(self.addr as *mut u8, self.len) }
    }

    pub fn munmap(&self, start: usize, len: usize) -> Result<(), Errno> {
        self.sliceable.store(false, Ordering::Relaxed);
        // SAFETY: the range is inside this region, which the test owns.
        if unsafe { libc::munmap((self.addr + start) as *mut libc::c_void, len) } != 0 {
            return last_errno();
        }
        Ok(())
    }

    pub fn madvise(&self, start: usize, len: usize, advice: i32) -> Result<(), Errno> {
        // SAFETY: the range is inside this region; advice never frees memory others own.
        if unsafe { libc::madvise((self.addr + start) as *mut libc::c_void, len, advice) } != 0 {
            return last_errno();
        }
        Ok(())
    }

    /// Makes the region read-write (`true`) or read-only.
    pub fn mprotect_rw(&self, writable: bool) -> Result<(), Error> {
        let prot = libc::PROT_READ | if writable { libc::PROT_WRITE } else { 0 };
        self.sliceable.store(false, Ordering::Relaxed);
        // SAFETY: the range is this region's; no reference into it outlives the change.
        if unsafe { libc::mprotect(self.addr as *mut libc::c_void, self.len, prot) } != 0 {
            return Err(Error::new("mprotect", Errno::last()));
        }
        Ok(())
    }

    /// `mremap(addr, len, new_len, flags, new_addr)`; the raw result.
    pub fn mremap(&self, new_len: usize, flags: i32, new_addr: usize) -> Result<usize, Errno> {
        self.sliceable.store(false, Ordering::Relaxed);
        // SAFETY: the old range is this region's; a fixed target is owned by the caller.
        let ptr = unsafe {
            libc::mremap(
                self.addr as *mut libc::c_void,
                self.len,
                new_len,
                flags,
                new_addr as *mut libc::c_void,
            )
        };
        if ptr == libc::MAP_FAILED {
            return last_errno();
        }
        Ok(ptr as usize)
    }

    /// Unmaps now, reporting the error that `Drop` would swallow.
    pub fn unmap(self) -> Result<(), Errno> {
        let (addr, len) = (self.addr, self.len);
        std::mem::forget(self);
        // SAFETY: the range is this region's, and `forget` keeps `Drop` from unmapping it again.
        if unsafe { libc::munmap(addr as *mut libc::c_void, len) } != 0 {
            return last_errno();
        }
        Ok(())
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: the range is this region's; holes in it are unmapped already.
        unsafe { libc::munmap(self.addr as *mut libc::c_void, self.len) };
    }
}

/// Anonymous PROT_NONE address space of `len` bytes, to move or map things into with MAP_FIXED.
pub fn reserve(len: usize) -> Result<Region, Error> {
    let addr = mmap_anonymous(len, libc::PROT_NONE, libc::MAP_NORESERVE)
        .map_err(|e| Error::new(format!("reserve {len} bytes"), e))?;
    Ok(Region::adopt(addr, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inaccessible_regions_round_to_pages() {
        let region = Region::inaccessible(1).unwrap();
        assert_eq!(region.len, cmamap::page_size());
        assert_ne!(region.addr, 0);
    }

    #[test]
    fn anonymous_regions_slice_until_cut() {
        let page = cmamap::page_size();
        let mut region = Region::anonymous(2 * page, false).unwrap();
        region.as_mut_slice()[page] = 7;
        assert_eq!(region.read(page), 7);
        region.munmap(page, page).unwrap();
        let cut =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| region.as_mut_slice().len()));
        assert!(cut.is_err());
    }
}
