// SPDX-License-Identifier: GPL-2.0

//! Device memory: a PCI BAR claimed for a block, and the gate that stops every access to it
//! when the device unbinds.
//!
//! One of the modules with `unsafe`: the PCI region request, the copies through short-lived
//! kernel mappings and the raw `struct pci_dev` the Rust PCI abstractions do not expose.
//!
//! `BarMemory::state` is lock 6 of the crate's lock order.
//!
//! The driver keeps no long-lived kernel mapping of the BAR: on x86 the first mapping of a
//! physical range fixes its cache mode (PAT), and a kernel `ioremap` would silently turn every
//! write-combined user mapping into an uncached one. Each `pread`/`pwrite` page is copied through
//! a mapping that lives for that copy alone: `vmap_pfn`, which reserves no memtype, where the
//! kernel has it (x86 with `CONFIG_VMAP_PFN`), else `ioremap` (see device_memory_glue.c).
//!
//! Unbind: [`BarMemory::revoke`] closes the gate under `BarMemory::state`, so no fault inserts
//! a PTE and no `pread`/`pwrite` touches the BAR afterwards; the caller then zaps the PTEs that
//! exist. A `remap` mapping gets its PTEs in `mmap`, before its VMA is in the file's rmap tree,
//! so the gate also remembers the `mm` of each such mapping: `revoke` waits for that mm's
//! `mmap` to finish (its mmap lock) so the zap that follows sees the VMA.

use crate::memory::{block::BlockMemory, user_io::UserIo, PAGE_SHIFT, PAGE_SIZE};
use core::ffi::c_void;
use kernel::{
    bindings,
    device::{Core, DeviceContext},
    mm::Mm,
    new_mutex, pci,
    prelude::*,
    sync::{aref::ARef, Mutex},
};

extern "C" {
    fn cmamap_mm_has_users(mm: *mut c_void) -> bool;
    fn cmamap_bar_copy_uses_ioremap(phys: bindings::phys_addr_t, len: u64) -> bool;
    fn cmamap_bar_copy(
        phys: bindings::phys_addr_t,
        buf: *mut c_void,
        len: usize,
        to_device: bool,
    ) -> i32;
}

/// The raw `struct pci_dev` of `pdev`.
fn raw_pci_dev<Ctx: DeviceContext>(pdev: &pci::Device<Ctx>) -> *mut bindings::pci_dev {
    // `pci::Device` is `#[repr(transparent)]` over `Opaque<bindings::pci_dev>` (plus a ZST).
    core::ptr::from_ref(pdev).cast_mut().cast()
}

/// A memory BAR of a bound PCI device, requested for this driver; released on drop.
///
/// # Invariants
///
/// `pci_request_region(pdev, bar)` succeeded and `pci_enable_device_mem(pdev)` too; both are
/// undone exactly once, in `drop`. `phys..phys + len` is the BAR, page aligned.
pub(crate) struct BarRegion {
    pdev: ARef<pci::Device>,
    bar: i32,
    phys: u64,
    len: u64,
}

impl BarRegion {
    /// Enables memory decoding and requests memory BAR `bar` of `pdev` under `name`.
    /// `ENODEV` if the BAR is not page-aligned memory, `EBUSY` if someone else holds it.
    pub(crate) fn claim(
        pdev: &pci::Device<Core<'_>>,
        bar: u32,
        name: &'static CStr,
    ) -> Result<Self> {
        let phys = pdev.resource_start(bar)?;
        let len = pdev.resource_len(bar)?;
        let page_mask = PAGE_SIZE as u64 - 1;
        if len == 0 || phys & page_mask != 0 || len & page_mask != 0 {
            return Err(ENODEV);
        }
        let index = usize::try_from(bar)?;
        let raw = raw_pci_dev(pdev);
        // SAFETY: `raw` is a live, bound device (we are in its probe); `resource_len` above
        // proved that `bar` indexes its resource array.
        let flags = unsafe { (*raw).resource[index].flags };
        if flags & bindings::IORESOURCE_MEM as usize == 0 {
            return Err(ENODEV);
        }
        pdev.enable_device_mem()?;
        let bar = i32::try_from(bar)?;
        // SAFETY: As above; `name` is a static C string, as the resource tree keeps it.
        let ret = unsafe { bindings::pci_request_region(raw, bar, name.as_char_ptr()) };
        if ret != 0 {
            // SAFETY: Undoes the `enable_device_mem` above.
            unsafe { bindings::pci_disable_device(raw) };
            return Err(EBUSY);
        }
        // INVARIANT: The region is requested and the device enabled.
        Ok(Self {
            pdev: pdev.into(),
            bar,
            phys,
            len,
        })
    }

    /// The physical address of the BAR.
    pub(crate) fn phys(&self) -> u64 {
        self.phys
    }

    /// The BAR's size in bytes.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }
}

impl Drop for BarRegion {
    fn drop(&mut self) {
        let raw = raw_pci_dev(&self.pdev);
        // SAFETY: By the invariants the region is ours and the device enabled by us; the device
        // is still bound (the region lives in its driver data), and `pdev` holds a reference.
        unsafe {
            bindings::pci_release_region(raw, self.bar);
            bindings::pci_disable_device(raw);
        }
    }
}

/// What the gate protects.
struct GateState {
    /// False once the device unbound: no access may reach the BAR any more.
    live: bool,
    /// The mms that mapped the BAR with `remap` (one entry each), for `revoke`.
    mms: KVec<ARef<Mm>>,
}

/// The memory of one BAR, as a block's backing.
///
/// # Invariants
///
/// While `state.live`, `phys..phys + pages * PAGE_SIZE` is a memory BAR that this driver has
/// requested. Every access to it (PTE insertion, copy) happens under `state` with `live`
/// checked.
#[pin_data]
pub(crate) struct BarMemory {
    phys: u64,
    pages: usize,
    #[pin]
    state: Mutex<GateState>,
}

impl BarMemory {
    /// Describes the BAR that `region` holds; the caller keeps `region` until `revoke`.
    pub(crate) fn new(region: &BarRegion) -> Result<Pin<KBox<Self>>> {
        let pages = usize::try_from(region.len() >> PAGE_SHIFT)?;
        KBox::pin_init(
            try_pin_init!(Self {
                phys: region.phys(),
                pages,
                state <- new_mutex!(
                    GateState {
                        live: true,
                        mms: KVec::new(),
                    },
                    "BarMemory::state"
                ),
            }),
            GFP_KERNEL,
        )
    }

    /// The kernel mapping that `pread`/`pwrite` copy through: `ioremap` (which reserves the
    /// page's memtype on x86 while it copies) if any page of the BAR needs it, else `vmap_pfn`.
    pub(crate) fn copy_mapping(&self) -> &'static str {
        let len = (self.pages * PAGE_SIZE) as u64;
        // SAFETY: Reads only the kernel's configuration and memory map, for any range.
        if unsafe { cmamap_bar_copy_uses_ioremap(self.phys, len) } {
            "ioremap"
        } else {
            "vmap_pfn"
        }
    }

    /// Whether the device is still bound.
    pub(crate) fn is_live(&self) -> bool {
        self.state.lock().live
    }

    /// Runs `f`, which inserts PTEs for the BAR, unless the device is gone (`None`).
    pub(crate) fn while_live<R>(&self, f: impl FnOnce() -> R) -> Option<R> {
        let state = self.state.lock();
        state.live.then(f)
    }

    /// Runs `f`, which fills `mm`'s new `remap` VMA with PTEs in `mmap`, unless the device is
    /// gone (`ENODEV`), and remembers `mm` for `revoke`.
    pub(crate) fn remap_live(&self, mm: &Mm, f: impl FnOnce() -> Result) -> Result {
        let mut state = self.state.lock();
        if !state.live {
            return Err(ENODEV);
        }
        // Forget mms whose processes are gone (an exited mm has no VMA left to zap), so the
        // list stays as long as the set of live processes that map the BAR.
        state.mms.retain(|m| {
            // SAFETY: Each entry holds an `mmgrab` reference, so its `mm_struct` is valid.
            unsafe { cmamap_mm_has_users(m.as_raw().cast()) }
        });
        let known = state.mms.iter().any(|m| core::ptr::eq(&**m, mm));
        if !known {
            // Reserve first so that a failed push cannot leave PTEs `revoke` would not see.
            state.mms.reserve(1, GFP_KERNEL)?;
        }
        f()?;
        if !known {
            state.mms.push(mm.into(), GFP_KERNEL)?;
        }
        Ok(())
    }

    /// Closes the gate: no access reaches the BAR after this returns, except through PTEs
    /// that exist now, which the caller must zap next. Waits for every `mmap` that made
    /// `remap` PTEs to finish, so that their VMAs are in the rmap tree the zap walks.
    pub(crate) fn revoke(&self) {
        let mms = {
            let mut state = self.state.lock();
            state.live = false;
            core::mem::take(&mut state.mms)
        };
        for mm in &mms {
            // An mm without users is being torn down: no task can reach its mappings.
            if let Some(mm) = mm.mmget_not_zero() {
                // The `mmap` that made the PTEs holds this lock for writing until its VMA is
                // linked; taking it once is enough.
                drop(mm.mmap_read_lock());
            }
        }
    }

    /// The bytes to copy next: up to the end of the page at `offset`, of `len`, of the BAR.
    fn chunk(&self, offset: usize, len: usize) -> Option<usize> {
        let size = self.pages * PAGE_SIZE;
        if len == 0 || offset >= size {
            return None;
        }
        Some(len.min(size - offset).min(PAGE_SIZE - offset % PAGE_SIZE))
    }

    /// Copies `buf` to or from `offset` of the BAR under the gate; `ENODEV` once unbound.
    fn device_copy(&self, offset: usize, buf: &mut [u8], to_device: bool) -> Result {
        let state = self.state.lock();
        if !state.live {
            return Err(ENODEV);
        }
        let phys = self.phys + offset as u64;
        // SAFETY: The device is bound and the region ours (invariants, `live` checked under the
        // lock that `revoke` takes); `chunk` kept `offset..offset + buf.len()` inside the BAR.
        let ret = unsafe { cmamap_bar_copy(phys, buf.as_mut_ptr().cast(), buf.len(), to_device) };
        drop(state);
        kernel::error::to_result(ret)
    }
}

impl BlockMemory for BarMemory {
    fn page_count(&self) -> usize {
        self.pages
    }

    fn first_pfn(&self) -> usize {
        (self.phys >> PAGE_SHIFT) as usize
    }

    /// A page at a time, under the gate: `ENODEV` once unbound.
    fn copy_kernel(&self, offset: usize, buf: &mut [u8], write: bool) -> Result<usize> {
        let mut done = 0;
        while let Some(chunk) = self.chunk(offset + done, buf.len() - done) {
            self.device_copy(offset + done, &mut buf[done..done + chunk], write)?;
            done += chunk;
        }
        Ok(done)
    }

    /// Copies a page at a time through a bounce buffer: a user copy must not run under the
    /// gate, since it may fault on this very BAR.
    fn copy_user(&self, offset: usize, len: usize, io: &mut UserIo<'_, '_>) -> Result<usize> {
        let mut bounce = KVec::<u8>::with_capacity(PAGE_SIZE, GFP_KERNEL)?;
        bounce.resize(PAGE_SIZE, 0, GFP_KERNEL)?;
        let mut done = 0;
        while let Some(chunk) = self.chunk(offset + done, len - done) {
            let at = offset + done;
            let buf = &mut bounce[..chunk];
            let copied = if io.writes_block() {
                let copied = io.copy(buf);
                if copied > 0 {
                    self.device_copy(at, &mut buf[..copied], true)?;
                }
                copied
            } else {
                self.device_copy(at, buf, false)?;
                io.copy(buf)
            };
            done += copied;
            if copied < chunk {
                break;
            }
        }
        Ok(done)
    }
}
