// SPDX-License-Identifier: GPL-2.0

//! `vm_operations_struct` glue: installing a block into a VMA, the fault handler, and the
//! reference that every VMA holds on its block.
//!
//! One of the modules with `unsafe` (the crate root lists them). The pattern follows
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
    mapping::strategy::{Cache, Strategy, HUGE_ORDER},
    memory::{
        block::{Backing, Block, BlockMemory},
        PAGE_SIZE,
    },
};
use core::ffi::c_void;
use kernel::{
    bindings,
    error::to_result,
    mm::virt::{flags, VmaNew, VmaRef},
    prelude::*,
    sync::{Arc, ArcBorrow},
};

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
        access: Some(vma_access),
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
        access: Some(vma_access),
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
    match strategy {
        Strategy::Remap => {
            // SAFETY: The PFNs are the block's own pages, which `check_inside` proved cover
            // the VMA, and which outlive it since it owns a reference to the block.
            unsafe { remap_whole(vma, block.first_pfn() + first_page) }?;
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

/// Maps `block` with its own strategy into the new `vma` of another file (a dma-buf), whose
/// page offset counts from page `first_page` of the block, and hands one reference of `block`
/// to the VMA. The page offset is rewritten to the block's own mmap offset, which the fault
/// handler and `access` read.
pub(crate) fn install_foreign(vma: &VmaNew, block: Arc<Block>, first_page: usize) -> Result {
    let first_page = first_page
        .checked_add(usize::try_from(pgoff(vma)).map_err(|_| EINVAL)?)
        .ok_or(EINVAL)?;
    let own_pgoff = usize::try_from(block.first_pgoff())
        .ok()
        .and_then(|pgoff| pgoff.checked_add(first_page))
        .ok_or(EINVAL)?;
    // SAFETY: The VMA is new and write-locked (we are in its file's `mmap`), so nothing reads
    // `vm_pgoff` meanwhile; the dma-buf core rewrites it the same way in `dma_buf_mmap`.
    unsafe { (*vma.as_ptr()).vm_pgoff = own_pgoff };
    let strategy = block.strategy();
    install(vma, block, strategy, first_page)
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
    // SAFETY: The VMA is new and write-locked; only its page protection changes.
    unsafe { cmamap_vma_set_cache(vma.as_ptr().cast(), cache == Cache::WriteCombine) };
    match strategy {
        Strategy::Remap => {
            let pfn = bar.first_pfn() + first_page;
            bar.remap_live(vma.mm(), || {
                // SAFETY: The PFNs are the BAR's, which `check_inside` proved cover the VMA
                // and which the gate says the driver still holds; `revoke` zaps them before
                // the region is released.
                unsafe { remap_whole(vma, pfn) }
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

/// Fills the whole new `vma` with PTEs for the PFNs from `pfn` (`remap_pfn_range`, which also
/// sets `VM_IO|VM_PFNMAP|VM_DONTEXPAND`).
///
/// # Safety
///
/// The PFNs from `pfn` must cover the VMA and stay valid for as long as its PTEs can reach
/// them.
unsafe fn remap_whole(vma: &VmaNew, pfn: usize) -> Result {
    // SAFETY: The VMA is new and write-locked (we are in `mmap`); the caller vouches for the
    // PFNs.
    to_result(unsafe {
        bindings::remap_pfn_range(
            vma.as_ptr(),
            vma.start(),
            pfn,
            vma.end() - vma.start(),
            (*vma.as_ptr()).vm_page_prot,
        )
    })
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
pub(crate) fn block_of(vma: &VmaRef) -> Option<ArcBorrow<'_, Block>> {
    // SAFETY: Reading `vm_ops` of a live VMA is safe.
    let ops = unsafe { (*vma.as_ptr()).vm_ops };
    if !is_ours(ops) {
        return None;
    }
    // SAFETY: By the invariants our VMAs own an `Arc<Block>` in `vm_private_data`, valid for as
    // long as the VMA, which outlives the borrow of `vma`.
    Some(unsafe { ArcBorrow::from_raw((*vma.as_ptr()).vm_private_data.cast::<Block>()) })
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
    block.alloc_map().forget(vma_ref);
    block.unmapped();
    // Dropping the last reference returns the pages to CMA: no VMA maps them any more.
    drop(block);
}

/// Reads or writes the block behind `addr` for `access_remote_vm` (`/proc/PID/mem`, ptrace
/// and so gdb), which calls this when get_user_pages cannot reach a PFN map. Returns the
/// bytes copied (at most to the end of the page, as the caller asks), or an errno.
///
/// # Safety
///
/// Called by the mm with a live VMA that carries our ops, `addr` inside it, and `buf` valid
/// for `len` bytes; the mmap lock is held.
unsafe extern "C" fn vma_access(
    vma: *mut bindings::vm_area_struct,
    addr: usize,
    buf: *mut c_void,
    len: core::ffi::c_int,
    write: core::ffi::c_int,
) -> core::ffi::c_int {
    // SAFETY: The VMA is live and ours while the mm holds its lock.
    let vma_ref = unsafe { VmaRef::from_raw(vma) };
    let Some(block) = block_of(vma_ref) else {
        return -(bindings::EIO as i32);
    };
    // Like a write fault, a write needs a writable mapping.
    if write != 0 && vma_ref.flags() & flags::WRITE == 0 {
        return -(bindings::EINVAL as i32);
    }
    let page_in_vma = ((addr - vma_ref.start()) / PAGE_SIZE) as u64;
    let Some(index) = block.page_index(pgoff(vma_ref) + page_in_vma) else {
        return -(bindings::EIO as i32);
    };
    let len = usize::try_from(len)
        .unwrap_or(0)
        .min(PAGE_SIZE - addr % PAGE_SIZE);
    // SAFETY: The mm hands us `buf` for `len` bytes (caller), and `len` only shrank.
    let buf = unsafe { core::slice::from_raw_parts_mut(buf.cast::<u8>(), len) };
    match block.copy_kernel(index * PAGE_SIZE + addr % PAGE_SIZE, buf, write != 0) {
        Ok(copied) => copied as core::ffi::c_int,
        Err(e) => e.to_errno(),
    }
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
