// SPDX-License-Identifier: GPL-2.0

//! The boundary with the C exporter (`dmabuf_glue.c`): making the dma-buf, and the callbacks
//! its ops make into [`Export`].
//!
//! One of the modules with `unsafe` (the crate root lists them).
//!
//! # Invariants
//!
//! The `owner` pointer that the C side holds for a dma-buf comes from `Arc::into_raw` of its
//! [`Export`] and owns that reference until `cmamap_export_release`, which the dma-buf core
//! calls once, after the last fd, mapping and attachment are gone. Every other callback runs
//! while the dma-buf lives, so `owner` is valid in each.

use super::Export;
use crate::dma::Direction;
use core::ffi::{c_int, c_ulong, c_void};
use kernel::{
    bindings,
    error::from_err_ptr,
    fs::File,
    mm::virt::VmaNew,
    prelude::*,
    sync::{aref::ARef, Arc},
};

// `struct file` comes back as `c_void`: bindgen's view of it holds a zero-sized array that the
// FFI lint refuses.
extern "C" {
    fn cmamap_dmabuf_export(
        owner: *mut c_void,
        pfn: c_ulong,
        size: usize,
        flags: c_int,
    ) -> *mut c_void;
}

/// Makes a dma-buf of `export`, with a file opened with `open_flags`; the dma-buf owns
/// `export` from then on. Returns the file's one reference, to install in an fd or drop
/// (which releases the dma-buf).
pub(super) fn export(export: Arc<Export>, open_flags: u32) -> Result<ARef<File>> {
    let pfn = export.first_pfn() as c_ulong;
    let size = export.size();
    let owner = Arc::into_raw(export).cast_mut().cast::<c_void>();
    // SAFETY: `owner` is an `Arc` reference that the dma-buf takes over on success; the PFNs
    // are the block's, which that reference keeps allocated.
    let file = unsafe { cmamap_dmabuf_export(owner, pfn, size, open_flags as c_int) };
    match from_err_ptr(file) {
        Ok(file) => {
            // SAFETY: A dma-buf's file (never null on success), with one reference that is now
            // ours; `File` wraps `struct file` transparently.
            Ok(unsafe { ARef::from_raw(core::ptr::NonNull::new_unchecked(file.cast::<File>())) })
        }
        Err(e) => {
            // SAFETY: On failure the C side did not keep `owner`: the reference is ours again.
            drop(unsafe { Arc::from_raw(owner.cast::<Export>()) });
            Err(e)
        }
    }
}

/// The `Export` behind `owner`, borrowed for a callback.
///
/// # Safety
///
/// `owner` is the pointer of a live dma-buf (see the invariants).
unsafe fn borrow<'a>(owner: *mut c_void) -> &'a Export {
    // SAFETY: By the invariants the dma-buf's reference keeps the `Export` alive throughout
    // the callback.
    unsafe { &*owner.cast::<Export>() }
}

/// The dma-buf is gone: its reference of the `Export` (and so of the block) goes.
///
/// # Safety
///
/// Called once per dma-buf, by its `release`, with its `owner`.
#[no_mangle]
unsafe extern "C" fn cmamap_export_release(owner: *mut c_void) {
    // SAFETY: `owner` came from `Arc::into_raw` in `export`, and the dma-buf gives it back
    // exactly once (invariants).
    drop(unsafe { Arc::from_raw(owner.cast::<Export>()) });
}

/// `mmap` of the dma-buf.
///
/// # Safety
///
/// `owner` is a live dma-buf's; `vma` is new, in its `mmap`, under the mmap write lock.
#[no_mangle]
unsafe extern "C" fn cmamap_export_mmap(
    owner: *mut c_void,
    vma: *mut bindings::vm_area_struct,
) -> c_int {
    // SAFETY: The caller vouches for both.
    let (export, vma) = unsafe { (borrow(owner), VmaNew::from_raw(vma)) };
    match export.mmap(vma) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// Syncs the block's device mappings around a CPU access through the dma-buf; `dir` is an
/// `enum dma_data_direction`.
///
/// # Safety
///
/// `owner` is a live dma-buf's.
#[no_mangle]
unsafe extern "C" fn cmamap_export_sync_devices(owner: *mut c_void, dir: c_int, for_cpu: bool) {
    // SAFETY: The caller vouches for `owner`.
    let export = unsafe { borrow(owner) };
    // DMA_NONE (the only other value) moves no data.
    if let Ok(direction) = u32::try_from(dir)
        .map_err(|_| EINVAL)
        .and_then(Direction::from_abi)
    {
        export.sync_devices(direction, for_cpu);
    }
}
