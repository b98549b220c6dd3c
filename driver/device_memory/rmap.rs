// SPDX-License-Identifier: GPL-2.0

//! The address_space that every open file of `/dev/cmamap` shares, so that the driver can zap
//! the user mappings of a block in every process at once (`unmap_mapping_range`).
//!
//! A char device's files use the `i_mapping` of the node they were opened through; two nodes
//! of the same device would split the VMAs between two rmap trees. Like DRM, every open file
//! adopts the `f_mapping` of one anonymous inode that the module owns.
//!
//! # Invariants
//!
//! [`HOLDER`] is null or a file from `cmamap_rmap_create`, set once in module init before the
//! device is registered, and released only when the module goes, after every open file and
//! VMA (each pins the module).

use core::ffi::c_void;
use kernel::{
    error::from_err_ptr,
    fs::File,
    prelude::*,
    sync::atomic::{ordering::Relaxed, Atomic},
};

extern "C" {
    fn cmamap_rmap_create() -> *mut c_void;
    fn cmamap_rmap_destroy(holder: *mut c_void);
    fn cmamap_rmap_adopt(file: *mut c_void, holder: *mut c_void);
    fn cmamap_rmap_zap(holder: *mut c_void, offset: u64, len: u64);
}

/// The anonymous file whose address_space all open files share (as a `usize`).
static HOLDER: Atomic<usize> = Atomic::new(0);

/// Owns the shared address_space for the module's lifetime; dropping it releases it.
pub(crate) struct SharedMapping(());

impl SharedMapping {
    /// Creates the shared address_space. Call once, from module init.
    pub(crate) fn new() -> Result<Self> {
        // SAFETY: No precondition; returns a new file or an error pointer.
        let holder = from_err_ptr(unsafe { cmamap_rmap_create() })?;
        // INVARIANT: Set once, before the misc device exists.
        HOLDER.store(holder as usize, Relaxed);
        Ok(Self(()))
    }
}

impl Drop for SharedMapping {
    fn drop(&mut self) {
        let holder = HOLDER.xchg(0, Relaxed) as *mut c_void;
        if !holder.is_null() {
            // SAFETY: By the invariants `holder` is our file, and the module is going: no open
            // file or VMA uses its address_space any more.
            unsafe { cmamap_rmap_destroy(holder) };
        }
    }
}

fn holder() -> *mut c_void {
    HOLDER.load(Relaxed) as *mut c_void
}

/// Makes a newly opened `file` use the shared address_space. Call from `open`.
pub(crate) fn adopt(file: &File) {
    let holder = holder();
    if !holder.is_null() {
        // SAFETY: `file` is being opened, so no VMA uses it yet; `holder` lives until the
        // module goes (invariants), which `file` outlives never.
        unsafe { cmamap_rmap_adopt(file.as_ptr().cast(), holder) };
    }
}

/// Zaps the user PTEs of mmap offsets `offset..offset + len` in every process. The VMAs stay;
/// their next access faults into the driver.
pub(crate) fn zap(offset: u64, len: u64) {
    let holder = holder();
    if !holder.is_null() {
        // SAFETY: `holder` is live (invariants); `unmap_mapping_range` takes its own locks.
        unsafe { cmamap_rmap_zap(holder, offset, len) };
    }
}
