// SPDX-License-Identifier: GPL-2.0

//! `vm_operations_struct` glue: installing a block into a VMA, the fault handler, and the
//! reference that every VMA holds on its block.
//!
//! One of the glue modules with `unsafe` (with `cma`, `bar`, `rmap`, `sys`). The pattern follows
//! `drivers/android/binder/page_range.rs`: a static ops table, raw writes through
//! `vma.as_ptr()` while the VMA is new, and `vm_ops` identity checks before trusting
//! `vm_private_data`.
//!
//! # Invariants
//!
//! A VMA whose `vm_ops` is [`CMAMAP_VM_OPS`] has a `vm_private_data` made by `Arc::into_raw` of
//! the `Block` it maps, owned by that VMA: `open` takes one more for a copied VMA (fork, split,
//! mremap) and `close` gives it back. So a block outlives every VMA that maps it.

use crate::{
    block::{Backing, Block},
    cma::PAGE_SIZE,
    strategy::{Cache, Strategy, HUGE_ORDER},
};
use core::ffi::c_void;
use kernel::{
    bindings,
    error::to_result,
    mm::{
        virt::{flags, VmaNew, VmaRef},
        MmWithUser,
    },
    prelude::*,
    sync::{Arc, ArcBorrow},
};

// mmap(2) flags and protection, from the uapi headers.
const PROT_NONE: usize = 0x0;
const MAP_SHARED: usize = 0x01;
const MAP_PRIVATE: usize = 0x02;
const MAP_FIXED: usize = 0x10;
const MAP_ANONYMOUS: usize = 0x20;
const MAP_NORESERVE: usize = 0x4000;

extern "C" {
    fn cmamap_vma_set_flags(vma: *mut c_void, flags: bindings::vm_flags_t);
    fn cmamap_vma_set_cache(vma: *mut c_void, write_combine: bool);
}

/// The flags of a VMA whose PFNs are inserted per fault.
const FAULT_FLAGS: bindings::vm_flags_t = flags::PFNMAP
    | flags::IO
    | bindings::VM_DONTEXPAND as bindings::vm_flags_t
    | bindings::VM_DONTDUMP as bindings::vm_flags_t;

struct AssertSync<T>(T);
// SAFETY: The ops table is never written after its constant initialization.
unsafe impl<T> Sync for AssertSync<T> {}

static CMAMAP_VM_OPS: AssertSync<bindings::vm_operations_struct> =
    AssertSync(bindings::vm_operations_struct {
        open: Some(vma_open),
        close: Some(vma_close),
        fault: Some(vma_fault),
        ..pin_init::zeroed()
    });

/// The ops of `huge` VMAs: the same, plus PMD-sized faults. A separate table, because the mm
/// tries `huge_fault` first on every PFNMAP VMA that has one.
static CMAMAP_HUGE_VM_OPS: AssertSync<bindings::vm_operations_struct> =
    AssertSync(bindings::vm_operations_struct {
        open: Some(vma_open),
        close: Some(vma_close),
        fault: Some(vma_fault),
        huge_fault: Some(vma_huge_fault),
        ..pin_init::zeroed()
    });

/// Whether `ops` is one of ours.
fn is_ours(ops: *const bindings::vm_operations_struct) -> bool {
    core::ptr::eq(ops, &CMAMAP_VM_OPS.0) || core::ptr::eq(ops, &CMAMAP_HUGE_VM_OPS.0)
}

/// The page offset of the VMA (`vm_pgoff`): which block and where in it.
pub(crate) fn pgoff(vma: &VmaRef) -> u64 {
    // SAFETY: `vm_pgoff` of a VMA we were handed is stable while we hold it.
    unsafe { (*vma.as_ptr()).vm_pgoff as u64 }
}

/// Maps pages `first_page..` of `block` into the new `vma` with `strategy` (the block's own,
/// or a view) and hands one reference of `block` to the VMA.
pub(crate) fn install(
    vma: &VmaNew,
    block: Arc<Block>,
    strategy: Strategy,
    first_page: usize,
) -> Result {
    let len = vma.end() - vma.start();
    match strategy {
        Strategy::Remap => {
            let pfn = block.first_pfn() + first_page;
            // SAFETY: The VMA is new and write-locked; the PFNs are the block's own pages,
            // which `check_inside` proved cover `len` bytes, and which outlive the VMA since
            // it owns a reference to the block. It sets VM_IO|VM_PFNMAP|VM_DONTEXPAND.
            let ret = unsafe {
                bindings::remap_pfn_range(
                    vma.as_ptr(),
                    vma.start(),
                    pfn,
                    len,
                    (*vma.as_ptr()).vm_page_prot,
                )
            };
            to_result(ret)?;
        }
        Strategy::Fault | Strategy::Huge => {
            // SAFETY: The VMA is new and write-locked; PFNMAP without MIXEDMAP is what
            // `vmf_insert_pfn` requires, and MAP_PRIVATE was refused before this point.
            unsafe { cmamap_vma_set_flags(vma.as_ptr().cast(), FAULT_FLAGS) };
        }
        Strategy::Page => {
            // MIXEDMAP without IO/PFNMAP: `vm_insert_page` takes real page references, so GUP
            // users (O_DIRECT, io_uring, vmsplice) can pin the pages.
            vma.set_mixedmap();
            vma.set_dontexpand();
        }
    }
    let ops = match strategy {
        Strategy::Huge => &CMAMAP_HUGE_VM_OPS.0,
        _ => &CMAMAP_VM_OPS.0,
    };
    attach(vma, block, ops);
    Ok(())
}

/// Maps pages `first_page..` of the device memory of `block` into the new `vma` with
/// `strategy` (`Remap` or `Fault`) and `cache`, and hands one reference of `block` to the VMA.
/// `ENODEV` once the device has unbound.
pub(crate) fn install_bar(
    vma: &VmaNew,
    block: Arc<Block>,
    strategy: Strategy,
    cache: Cache,
    first_page: usize,
) -> Result {
    let bar = block.bar().ok_or(EINVAL)?;
    let len = vma.end() - vma.start();
    // SAFETY: The VMA is new and write-locked; only its page protection changes.
    unsafe { cmamap_vma_set_cache(vma.as_ptr().cast(), cache == Cache::WriteCombine) };
    match strategy {
        Strategy::Remap => {
            let pfn = bar.first_pfn() + first_page;
            bar.remap_live(vma.mm(), || {
                // SAFETY: The VMA is new and write-locked; the PFNs are the BAR's, which
                // `check_inside` proved cover `len` bytes and which the gate says the driver
                // still holds. `revoke` zaps them before the region is released.
                to_result(unsafe {
                    bindings::remap_pfn_range(
                        vma.as_ptr(),
                        vma.start(),
                        pfn,
                        len,
                        (*vma.as_ptr()).vm_page_prot,
                    )
                })
            })?;
        }
        Strategy::Fault => {
            if !bar.is_live() {
                return Err(ENODEV);
            }
            // SAFETY: As in `install`: new, write-locked, shared, PFNMAP without MIXEDMAP.
            unsafe { cmamap_vma_set_flags(vma.as_ptr().cast(), FAULT_FLAGS) };
        }
        Strategy::Page | Strategy::Huge => return Err(EOPNOTSUPP),
    }
    attach(vma, block, &CMAMAP_VM_OPS.0);
    Ok(())
}

/// Sets our `ops` on the new `vma` and gives it one reference of `block`.
fn attach(vma: &VmaNew, block: Arc<Block>, ops: &'static bindings::vm_operations_struct) {
    block.mapped();
    let private = Arc::into_raw(block).cast_mut().cast::<c_void>();
    // SAFETY: The VMA is new and not yet visible to other threads. INVARIANT: the ops and the
    // reference are set together, after every fallible step.
    unsafe {
        (*vma.as_ptr()).vm_private_data = private;
        (*vma.as_ptr()).vm_ops = ops;
    }
}

/// The block that our VMA `vma` maps, or `None` if `vma` is not ours.
fn block_of(vma: &VmaRef) -> Option<ArcBorrow<'_, Block>> {
    // SAFETY: Reading `vm_ops` of a live VMA is safe.
    let ops = unsafe { (*vma.as_ptr()).vm_ops };
    if !is_ours(ops) {
        return None;
    }
    // SAFETY: By the invariants our VMAs own an `Arc<Block>` in `vm_private_data`, valid for as
    // long as the VMA, which outlives the borrow of `vma`.
    Some(unsafe { ArcBorrow::from_raw((*vma.as_ptr()).vm_private_data.cast::<Block>()) })
}

/// A whole-block mapping found at a user address.
pub(crate) struct FoundMapping {
    pub(crate) block: Arc<Block>,
    pub(crate) len: usize,
}

/// The cmamap VMA that starts exactly at `addr` in `mm` and maps a block from its first page.
pub(crate) fn mapping_at(mm: &MmWithUser, addr: usize) -> Option<FoundMapping> {
    let guard = mm.mmap_read_lock();
    let vma = guard.vma_lookup(addr)?;
    let block = block_of(vma)?;
    if vma.start() != addr || pgoff(vma) != block.first_pgoff() {
        return None;
    }
    Some(FoundMapping {
        block: block.into(),
        len: vma.end() - vma.start(),
    })
}

/// The result of `vm_mmap`: an address, or a negative errno.
fn mmap_result(addr: usize) -> Result<usize> {
    let as_signed = addr as isize;
    if (-(bindings::MAX_ERRNO as isize)..0).contains(&as_signed) {
        return Err(Error::from_errno(as_signed as i32));
    }
    Ok(addr)
}

/// Maps `len` bytes of the mmap `offset` of `file` into the current process, as mmap(2) would,
/// at an address aligned to `align` (a power of two, at least a page), so that a `huge`
/// mapping gets PMD entries.
pub(crate) fn map_into_current(
    file: &kernel::fs::File,
    len: usize,
    prot: u32,
    offset: u64,
    align: usize,
) -> Result<usize> {
    let offset = usize::try_from(offset).map_err(|_| EINVAL)?;
    if align <= PAGE_SIZE {
        // SAFETY: `file` is a live file of this driver; `vm_mmap` takes the mmap lock itself
        // and runs our `mmap` handler.
        return mmap_result(unsafe {
            bindings::vm_mmap(file.as_ptr(), 0, len, prot as usize, MAP_SHARED, offset)
        });
    }
    // Reserve `len + align` bytes of inaccessible address space, map over its aligned part
    // and give the slack back, as userspace would.
    let reserved_len = len.checked_add(align).ok_or(ENOMEM)?;
    // SAFETY: An anonymous mapping without MAP_FIXED changes nothing that exists.
    let reserved = mmap_result(unsafe {
        bindings::vm_mmap(
            core::ptr::null_mut(),
            0,
            reserved_len,
            PROT_NONE,
            MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
            0,
        )
    })?;
    let start = reserved.next_multiple_of(align);
    // SAFETY: As above; MAP_FIXED replaces only `start..start + len`, inside the reservation.
    let mapped = mmap_result(unsafe {
        bindings::vm_mmap(
            file.as_ptr(),
            start,
            len,
            prot as usize,
            MAP_SHARED | MAP_FIXED,
            offset,
        )
    });
    let reserved_end = reserved + reserved_len;
    let (keep_start, keep_end) = match mapped {
        Ok(_) => (start, start + len),
        Err(_) => (start, start),
    };
    for (from, to) in [(reserved, keep_start), (keep_end, reserved_end)] {
        if to > from {
            // Another thread may already have unmapped the slack; nothing to undo then.
            let _ = unmap_from_current(from, to - from);
        }
    }
    mapped
}

/// Unmaps `len` bytes at `addr` from the current process.
pub(crate) fn unmap_from_current(addr: usize, len: usize) -> Result {
    // SAFETY: `vm_munmap` validates the range itself and takes the mmap lock.
    to_result(unsafe { bindings::vm_munmap(addr, len) })
}

/// Called when a VMA is copied (fork, split, mremap).
///
/// # Safety
///
/// Called by the mm with a VMA that carries our ops, so by the invariants it owns an
/// `Arc<Block>` reference.
unsafe extern "C" fn vma_open(vma: *mut bindings::vm_area_struct) {
    // SAFETY: The VMA is live and ours.
    let vma = unsafe { VmaRef::from_raw(vma) };
    if let Some(block) = block_of(vma) {
        let block: Arc<Block> = block.into();
        block.mapped();
        // INVARIANT: The copy owns the new reference.
        let _ = Arc::into_raw(block);
    }
}

/// Called when a VMA goes away.
///
/// # Safety
///
/// As for [`vma_open`]; the VMA's reference is given back here, exactly once.
unsafe extern "C" fn vma_close(vma: *mut bindings::vm_area_struct) {
    // SAFETY: The VMA is live and ours until this returns.
    let vma_ref = unsafe { VmaRef::from_raw(vma) };
    if block_of(vma_ref).is_none() {
        return;
    }
    // SAFETY: By the invariants `vm_private_data` holds the VMA's own reference; we take it
    // back once. The VMA is never used again, so nothing reads the pointer afterwards.
    let block = unsafe { Arc::<Block>::from_raw((*vma).vm_private_data.cast::<Block>()) };
    block.vma_closed(vma_ref.mm().as_raw() as usize, vma_ref.start());
    block.unmapped();
    // Dropping the last reference returns the pages to CMA: no VMA maps them any more.
    drop(block);
}

/// Inserts the one page that faulted.
///
/// # Safety
///
/// Called by the mm with a valid `vmf` whose VMA carries our ops.
unsafe extern "C" fn vma_fault(vmf: *mut bindings::vm_fault) -> bindings::vm_fault_t {
    // SAFETY: The mm hands us a valid `vmf` for the duration of the call.
    let (raw_vma, pgoff, address) = unsafe {
        let fault = &(*vmf).__bindgen_anon_1;
        (fault.vma, fault.pgoff as u64, fault.address)
    };
    // SAFETY: The faulting VMA is live while its fault is handled.
    let vma = unsafe { VmaRef::from_raw(raw_vma) };
    let Some(block) = block_of(vma) else {
        return bindings::vm_fault_reason_VM_FAULT_SIGBUS;
    };
    let Some(index) = block.page_index(pgoff) else {
        return bindings::vm_fault_reason_VM_FAULT_SIGBUS;
    };
    let pages = match block.backing() {
        Backing::Cma(pages) => pages,
        Backing::Bar(bar) => {
            let pfn = bar.first_pfn() + index;
            // After unbind the gate is shut and the mapping's pages are gone: SIGBUS.
            // SAFETY: The VMA is PFNMAP (set in `install_bar` or by `remap_pfn_range`), shared,
            // and `address` is inside it. The gate proves the driver still holds the BAR, and
            // `revoke` zaps this PTE before the region is released.
            return bar
                .while_live(|| unsafe { bindings::vmf_insert_pfn(raw_vma, address, pfn) })
                .unwrap_or(bindings::vm_fault_reason_VM_FAULT_SIGBUS);
        }
    };
    let Some(page) = pages.page_ptr(index) else {
        return bindings::vm_fault_reason_VM_FAULT_SIGBUS;
    };
    // The VMA's flags say how it was set up: the block may be mapped through another view.
    if vma.flags() & flags::MIXEDMAP != 0 {
        // SAFETY: The VMA is MIXEDMAP (set in `install`) and `address` is inside it; the page
        // is the block's and gets its own reference from `vm_insert_page`.
        match unsafe { bindings::vm_insert_page(raw_vma, address, page) } {
            // EBUSY: another thread won the race to the same page.
            0 => bindings::vm_fault_reason_VM_FAULT_NOPAGE,
            e if e == -(bindings::EBUSY as i32) => bindings::vm_fault_reason_VM_FAULT_NOPAGE,
            e if e == -(bindings::ENOMEM as i32) => bindings::vm_fault_reason_VM_FAULT_OOM,
            _ => bindings::vm_fault_reason_VM_FAULT_SIGBUS,
        }
    } else {
        // `fault` views, and `remap` ones whose PTEs were zapped: the VMA is PFNMAP.
        let pfn = pages.first_pfn() + index;
        // SAFETY: The VMA is PFNMAP (set in `install` or by `remap_pfn_range`), shared, and
        // `address` is inside it. The PFN is the block's, which the VMA keeps alive.
        unsafe { bindings::vmf_insert_pfn(raw_vma, address, pfn) }
    }
}

/// Inserts one 2 MiB PMD entry, or falls back to 4 KiB faults when the address range or the
/// physical pages are not 2 MiB aligned, or the 2 MiB would run past the VMA or the block.
///
/// # Safety
///
/// Called by the mm with a valid `vmf` whose VMA carries our huge ops.
unsafe extern "C" fn vma_huge_fault(
    vmf: *mut bindings::vm_fault,
    order: u32,
) -> bindings::vm_fault_t {
    const FALLBACK: bindings::vm_fault_t = bindings::vm_fault_reason_VM_FAULT_FALLBACK;
    const HUGE_PAGES: usize = 1 << HUGE_ORDER;
    const HUGE_SIZE: usize = PAGE_SIZE << HUGE_ORDER;
    if order != HUGE_ORDER {
        return FALLBACK;
    }
    // SAFETY: The mm hands us a valid `vmf` for the duration of the call.
    let (raw_vma, address, write) = unsafe {
        let fault = &(*vmf).__bindgen_anon_1;
        let write = (*vmf).flags & bindings::fault_flag_FAULT_FLAG_WRITE != 0;
        (fault.vma, fault.address, write)
    };
    // SAFETY: The faulting VMA is live while its fault is handled.
    let vma = unsafe { VmaRef::from_raw(raw_vma) };
    let Some(block) = block_of(vma) else {
        return bindings::vm_fault_reason_VM_FAULT_SIGBUS;
    };
    let start = address & !(HUGE_SIZE - 1);
    if start < vma.start() || start + HUGE_SIZE > vma.end() {
        return FALLBACK;
    }
    let pgoff = pgoff(vma) + ((start - vma.start()) / PAGE_SIZE) as u64;
    let Some(index) = block.page_index(pgoff) else {
        return bindings::vm_fault_reason_VM_FAULT_SIGBUS;
    };
    let pfn = block.first_pfn() + index;
    if pfn % HUGE_PAGES != 0 || index + HUGE_PAGES > block.page_count() {
        return FALLBACK;
    }
    // SAFETY: The VMA is PFNMAP and shared (set in `install`); `start..start + 2 MiB` lies in it
    // and maps 512 of the block's pages, 2 MiB aligned, which the VMA keeps alive.
    unsafe { bindings::vmf_insert_pfn_pmd(vmf, pfn, write) }
}

const _: () = assert!(PAGE_SIZE == 4096, "offsets and tests assume 4 KiB pages");
