// SPDX-License-Identifier: GPL-2.0

//! Physically contiguous pages from a CMA area: the default one, or a device's own.
//!
//! One of the modules with `unsafe`: the FFI to `cma_alloc`/`cma_release` and the kernel
//! address of the pages for `pread`/`pwrite`.
//!
//! Pages go back to CMA only when nothing outside the driver holds them. The `page` strategy
//! lets get_user_pages take references (vmsplice into a pipe, O_DIRECT) that can outlive
//! every VMA, and `cma_release` frees pages whatever their count. So a block whose pages are
//! still held leaves them to `quarantine`, which returns them once the last outside
//! reference is gone.

use crate::memory::{block::BlockMemory, charge::Charge, quarantine, user_io::UserIo, PAGE_SIZE};
use core::{
    ffi::{c_ulong, c_void},
    mem::ManuallyDrop,
};
use kernel::{bindings, prelude::*};

// `struct cma` and `struct page` are opaque here; `c_void` keeps `improper_ctypes` quiet.
extern "C" {
    fn dev_get_cma_area(dev: *mut c_void) -> *mut c_void;
    fn cma_alloc(cma: *mut c_void, count: c_ulong, align: u32, no_warn: bool) -> *mut c_void;
    fn cma_release(cma: *mut c_void, pages: *const c_void, count: c_ulong) -> bool;
    fn cmamap_page_to_pfn(page: *const c_void) -> c_ulong;
    fn cmamap_pfn_to_page(pfn: c_ulong) -> *mut c_void;
    fn cmamap_page_address(page: *const c_void) -> *mut c_void;
    fn cmamap_zero_pfns(pfn: c_ulong, count: c_ulong);
    fn cmamap_free_cma_pages() -> c_ulong;
    fn cmamap_pages_idle(page: *const c_void, count: c_ulong) -> bool;
}

/// A CMA area to allocate from: the default one, or a device's own (a device tree
/// `memory-region`), which `dev_get_cma_area` falls back from to the default.
///
/// # Invariants
///
/// The pointer is a live `struct cma`; the kernel never frees CMA areas.
#[derive(Clone, Copy)]
pub(crate) struct CmaArea(*mut c_void);

impl CmaArea {
    /// The default area (`cma=`), or `ENODEV` when the kernel has none.
    pub(crate) fn default_area() -> Result<Self> {
        // SAFETY: `NULL` asks for the default area.
        unsafe { Self::of_device(core::ptr::null_mut()) }
    }

    /// Whether this is the default area.
    pub(crate) fn is_default(&self) -> bool {
        Self::default_area().is_ok_and(|default| core::ptr::eq(default.0, self.0))
    }

    /// The area for device `dev`: its own if it has one, else the default.
    ///
    /// # Safety
    ///
    /// `dev` is a live `struct device`, or null for the default area.
    pub(crate) unsafe fn of_device(dev: *mut c_void) -> Result<Self> {
        // SAFETY: `dev` is live or null (caller); the call only reads it.
        let area = unsafe { dev_get_cma_area(dev) };
        if area.is_null() {
            return Err(ENODEV);
        }
        // INVARIANT: a non-null answer is a live area, never freed.
        Ok(Self(area))
    }
}

/// A run of pages from `cma_alloc`, and the charge that counts them until they are back.
///
/// It has no `Drop`: a run that is dropped without [`CmaRun::try_release`] stays allocated
/// (a leak, never a free of memory that may be in use).
///
/// # Invariants
///
/// `first` is the first page of `count` pages returned by `cma_alloc` on `area`, not yet
/// released.
pub(crate) struct CmaRun {
    area: *mut c_void,
    first: *mut c_void,
    count: usize,
    _charge: Charge,
}

// SAFETY: The pages are plain memory owned by this value; nothing ties them to a thread.
unsafe impl Send for CmaRun {}

impl CmaRun {
    /// The number of pages.
    pub(crate) fn count(&self) -> usize {
        self.count
    }

    /// Returns the pages to CMA, or gives the run back while anything outside the driver
    /// still holds a reference to one of its pages.
    ///
    /// Once every count is ours alone nobody can take a new reference (no page table maps
    /// the pages, and a pipe can only copy references it already has), so the check holds
    /// until `cma_release` drops our references.
    pub(crate) fn try_release(self) -> Result<(), Self> {
        // SAFETY: By the invariants the `count` pages from `first` are allocated.
        if !unsafe { cmamap_pages_idle(self.first, self.count as c_ulong) } {
            return Err(self);
        }
        // SAFETY: By the invariants the pages came from `cma_alloc(area)`; `self` is consumed,
        // so they are released exactly once, and only this driver holds them.
        unsafe { cma_release(self.area, self.first, self.count as c_ulong) };
        Ok(())
    }
}

/// A zeroed, physically contiguous run of pages owned by a block.
///
/// # Invariants
///
/// `run` is live until `drop` takes it. `base` is the kernel linear-map address of its pages,
/// valid for `count * PAGE_SIZE` bytes (CMA memory on 64-bit is never highmem).
pub(crate) struct CmaPages {
    run: ManuallyDrop<CmaRun>,
    base: *mut u8,
}

// SAFETY: The pages are plain memory owned by this value; nothing ties them to a thread.
unsafe impl Send for CmaPages {}
// SAFETY: Shared access only reads the invariant fields or copies with user iterators, which the
// kernel allows concurrently with userspace mappings of the same memory.
unsafe impl Sync for CmaPages {}

impl CmaPages {
    /// Allocates `count` pages aligned to `2^align_order` pages and zeroes them; `charge`
    /// stays with the pages until they are back in CMA.
    ///
    /// Sleeps. When CMA cannot satisfy the request,
    /// `EBUSY` if enough CMA pages are free in total (the area is fragmented or pinned) and
    /// `ENOMEM` otherwise. `cma_alloc` is asked not to warn, so a failure is never a splat.
    pub(crate) fn alloc(
        count: usize,
        align_order: u32,
        charge: Charge,
        area: CmaArea,
    ) -> Result<Self> {
        let area = area.0;
        let count_ulong: c_ulong = count.try_into().map_err(|_| EINVAL)?;
        // SAFETY: `area` is a live CMA area (invariant); `cma_alloc` may sleep, and we may too.
        let first = unsafe { cma_alloc(area, count_ulong, align_order, true) };
        if first.is_null() {
            // SAFETY: Reads a global counter; no precondition.
            let free = unsafe { cmamap_free_cma_pages() } as usize;
            return Err(if free >= count { EBUSY } else { ENOMEM });
        }
        // SAFETY: `first` is a valid page returned by `cma_alloc`.
        let pfn = unsafe { cmamap_page_to_pfn(first) };
        // SAFETY: The `count` pages from `pfn` are ours; nobody else can see them yet, so they
        // are zeroed before userspace can.
        unsafe { cmamap_zero_pfns(pfn, count_ulong) };
        // SAFETY: `first` is a valid lowmem page.
        let base = unsafe { cmamap_page_address(first) }.cast::<u8>();
        // INVARIANT: `first` heads `count` pages from `cma_alloc(area)`; `base` maps them.
        Ok(Self {
            run: ManuallyDrop::new(CmaRun {
                area,
                first,
                count,
                _charge: charge,
            }),
            base,
        })
    }

    /// The `struct page` of page `index`, for `vm_insert_page`.
    pub(crate) fn page_ptr(&self, index: usize) -> Option<*mut bindings::page> {
        if index >= self.page_count() {
            return None;
        }
        // SAFETY: `index < count`, so the PFN lies inside the allocation and has a page.
        Some(unsafe { cmamap_pfn_to_page((self.first_pfn() + index) as c_ulong) }.cast())
    }
}

impl BlockMemory for CmaPages {
    fn page_count(&self) -> usize {
        self.run.count
    }

    fn first_pfn(&self) -> usize {
        // SAFETY: By the invariants `run.first` is a valid page.
        unsafe { cmamap_page_to_pfn(self.run.first) as usize }
    }

    fn copy_user(&self, offset: usize, len: usize, io: &mut UserIo<'_, '_>) -> Result<usize> {
        let size = self.page_count() * PAGE_SIZE;
        if offset >= size {
            return Ok(0);
        }
        let len = len.min(size - offset);
        // SAFETY: `offset..offset + len` lies inside the block, which `base` maps (invariants).
        Ok(unsafe { io.copy_raw(self.base.add(offset), len) })
    }

    fn copy_kernel(&self, offset: usize, buf: &mut [u8], write: bool) -> Result<usize> {
        let size = self.page_count() * PAGE_SIZE;
        let len = buf.len().min(size.saturating_sub(offset));
        // SAFETY: `offset..offset + len` lies inside the block, which `base` maps (invariants),
        // and `buf` is a distinct kernel buffer; other mappings may write the block meanwhile,
        // as they may during any user copy.
        unsafe {
            let block = self.base.add(offset);
            if write {
                core::ptr::copy_nonoverlapping(buf.as_ptr(), block, len);
            } else {
                core::ptr::copy_nonoverlapping(block, buf.as_mut_ptr(), len);
            }
        }
        Ok(len)
    }
}

impl Drop for CmaPages {
    fn drop(&mut self) {
        // SAFETY: `drop` runs once, and nothing uses `run` after it.
        let run = unsafe { ManuallyDrop::take(&mut self.run) };
        // Callers drop a `CmaPages` only once no VMA maps it (the `Block` that owns it is kept
        // alive by every VMA through an `Arc`); outside references may remain.
        quarantine::release(run);
    }
}
