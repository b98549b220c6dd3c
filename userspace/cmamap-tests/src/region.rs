//! A raw range of address space for tests that cut mappings apart (partial munmap, mremap,
//! MAP_FIXED into holes, madvise): the library's `Mapping` keeps its range whole, this does not.
//!
//! The region owns `addr..addr + len` and unmaps all of it on drop, holes included (munmap of
//! an unmapped range is harmless). Bytes are accessed volatilely, since other mappings,
//! threads and processes may write the same memory.

use std::os::fd::{AsRawFd, BorrowedFd};

use nix::errno::Errno;

use crate::check::Failure;

pub struct Region {
    pub addr: usize,
    pub len: usize,
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

impl Region {
    /// A shared read-write mapping of `len` bytes of the device at `offset`.
    pub fn map(fd: BorrowedFd<'_>, offset: u64, len: usize) -> Result<Self, Failure> {
        let addr = mmap_raw(0, len, libc::PROT_READ | libc::PROT_WRITE, 0, fd, offset)
            .map_err(|e| Failure::new(format!("mmap of {len} bytes at offset {offset:#x}: {e}")))?;
        Ok(Self { addr, len })
    }

    /// Takes over `addr..addr + len` (a range the test made and must not unmap itself).
    pub fn adopt(addr: usize, len: usize) -> Self {
        Self { addr, len }
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

    pub fn munmap(&self, start: usize, len: usize) -> Result<(), Errno> {
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
    pub fn mprotect_rw(&self, writable: bool) -> Result<(), Failure> {
        let prot = libc::PROT_READ | if writable { libc::PROT_WRITE } else { 0 };
        // SAFETY: the range is this region's; no reference into it outlives the change.
        if unsafe { libc::mprotect(self.addr as *mut libc::c_void, self.len, prot) } != 0 {
            return Err(Failure::new(format!("mprotect: {}", Errno::last())));
        }
        Ok(())
    }

    /// `mremap(addr, len, new_len, flags, new_addr)`; the raw result.
    pub fn mremap(&self, new_len: usize, flags: i32, new_addr: usize) -> Result<usize, Errno> {
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
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: the range is this region's; holes in it are unmapped already.
        unsafe { libc::munmap(self.addr as *mut libc::c_void, self.len) };
    }
}

/// Anonymous PROT_NONE address space of `len` bytes, to move or map things into with MAP_FIXED.
pub fn reserve(len: usize) -> Result<Region, Failure> {
    // SAFETY: no MAP_FIXED: fresh address space.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(Failure::new(format!(
            "reserve {len} bytes: {}",
            Errno::last()
        )));
    }
    Ok(Region::adopt(ptr as usize, len))
}
