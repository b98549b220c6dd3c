// SPDX-License-Identifier: GPL-2.0

//! ALLOC_MAP and UNMAP_FREE: allocating and mapping a block in one call, and undoing exactly
//! that mapping. This file owns the whole protocol and its state.
//!
//! ALLOC_MAP allocates through the shared step (`ioctl::allocate`), then maps the block
//! before it is published, so no other thread can reach it by id:
//!
//! 1. It takes the file's [`Slot`] turn (lock 3 of the crate's lock order) and puts the
//!    block in the slot's `pending` (lock 5), tagged with the calling task.
//! 2. It calls `vm_mmap` on the caller's behalf ([`map_into_current`]), at a 2 MiB aligned
//!    address when the block can use PMD entries, as userspace placement would.
//! 3. The file's `mmap` finds the block through [`Slot::pending_for_caller`] (only the tagged
//!    task can), and records the VMA in the block's [`Record`] (lock 7) under the mmap lock.
//! 4. The VMA's `close` forgets the record under the mmap lock too ([`Record::forget`]), so a
//!    later mapping at the same address is never taken for ALLOC_MAP's.
//!
//! UNMAP_FREE undoes only a live whole-block VMA whose record matches ([`alloc_map_len`]);
//! plain mmaps are the caller's to munmap. It claims the block's id (`ioctl::FreeClaim`)
//! before it unmaps, so no FREE can kill the id in between: a refused UNMAP_FREE changes
//! nothing.
//!
//! The window that remains: the kernel exports no way to check a VMA and unmap it under one
//! hold of the mmap lock (`do_munmap` and `do_vmi_munmap` are not exported, `vm_munmap`
//! takes the lock itself, and the Rust mm abstractions offer only its read side). So between
//! UNMAP_FREE's check (under the read lock) and its `vm_munmap`, a sibling thread that unmaps
//! ALLOC_MAP's mapping and maps something else at the same address and length loses that new
//! mapping. The same holds for ALLOC_MAP's own undo when writing its answer fails. ALLOC_MAP's
//! huge placement never unmaps anything: it maps with MAP_FIXED_NOREPLACE into a gap it
//! found.
//!
//! One of the modules with `unsafe`: the `vm_mmap`/`vm_munmap` calls.

use crate::{
    abi,
    ioctl::{self, Call},
    mapping::vma,
    memory::{block::Block, PAGE_SIZE},
};
use kernel::{
    bindings,
    error::to_result,
    mm::virt::VmaRef,
    new_mutex, new_spinlock,
    prelude::*,
    sync::{Arc, Mutex, SpinLock},
};

/// mmap(2) protection, from the uapi headers (the bindings do not carry them).
mod prot {
    pub(super) const READ: u32 = 0x1;
    pub(super) const WRITE: u32 = 0x2;
}

/// mmap(2) flags, from the uapi headers.
mod map {
    pub(super) const SHARED: usize = 0x01;
    pub(super) const FIXED_NOREPLACE: usize = 0x100000;
}

/// The calling task's identity (never dereferenced).
fn current_task() -> usize {
    kernel::current!().as_ptr() as usize
}

/// The block that ALLOC_MAP is mapping before it is published, and the task doing it.
struct Pending {
    block: Arc<Block>,
    task: usize,
}

/// Per open file: one ALLOC_MAP maps at a time, through one pending slot.
#[pin_data]
pub(crate) struct Slot {
    /// Lock 3: held across one ALLOC_MAP's mapping.
    #[pin]
    turn: Mutex<()>,
    /// Lock 5: the block being mapped, for `mmap` and `pread`/`pwrite` of the calling task.
    #[pin]
    pending: Mutex<Option<Pending>>,
}

impl Slot {
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            turn <- new_mutex!((), "alloc_map::Slot::turn"),
            pending <- new_mutex!(None, "alloc_map::Slot::pending"),
        })
    }

    /// Runs `map` (which mmaps `block` into the calling task) while this task, and only it,
    /// can find the unpublished `block`.
    fn map_unpublished<T>(&self, block: Arc<Block>, map: impl FnOnce() -> T) -> T {
        let _turn = self.turn.lock();
        *self.pending.lock() = Some(Pending {
            block,
            task: current_task(),
        });
        let mapped = map();
        // Dropped outside the lock.
        let pending = self.pending.lock().take();
        drop(pending);
        mapped
    }

    /// The block `id` if the calling task's ALLOC_MAP is mapping it right now.
    pub(crate) fn pending_for_caller(&self, id: u32) -> Option<Arc<Block>> {
        self.pending
            .lock()
            .as_ref()
            .filter(|p| p.block.id() == id && p.task == current_task())
            .map(|p| p.block.clone())
    }
}

/// Where a VMA starts: its address space (an identity only, never dereferenced) and address.
#[derive(Clone, Copy, PartialEq, Eq)]
struct VmaAt {
    mm: usize,
    addr: usize,
}

impl VmaAt {
    fn of(vma: &VmaRef) -> Self {
        Self {
            mm: vma.mm().as_raw() as usize,
            addr: vma.start(),
        }
    }
}

/// Per block: where the VMA that ALLOC_MAP made is, while it lives. Only that mapping may
/// UNMAP_FREE. Lock 7; set and cleared under the mmap lock.
#[pin_data]
pub(crate) struct Record {
    #[pin]
    at: SpinLock<Option<VmaAt>>,
}

impl Record {
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            at <- new_spinlock!(None, "Block::alloc_map"),
        })
    }

    /// Records `vma`, which the file's `mmap` is making for ALLOC_MAP.
    pub(crate) fn record(&self, vma: &VmaRef) {
        *self.at.lock() = Some(VmaAt::of(vma));
    }

    /// Called when a VMA of the block goes away: if it was ALLOC_MAP's, UNMAP_FREE no longer
    /// applies to its address.
    pub(crate) fn forget(&self, vma: &VmaRef) {
        let mut at = self.at.lock();
        if *at == Some(VmaAt::of(vma)) {
            *at = None;
        }
    }

    fn is(&self, vma: &VmaRef) -> bool {
        *self.at.lock() == Some(VmaAt::of(vma))
    }
}

/// ALLOC_MAP: allocates a block and maps all of it into the caller with its `prot`.
pub(crate) fn alloc_map(call: &Call<'_>) -> Result {
    let (mut reader, mut writer) = call.arg::<abi::AllocArgs>().reader_writer();
    let mut args: abi::AllocArgs = reader.read()?;
    if args.prot == 0 || args.prot & !(prot::READ | prot::WRITE) != 0 {
        return Err(EINVAL);
    }
    let new = ioctl::allocate(call.me, &args)?;
    new.describe(&mut args);
    let block = new.block();
    let len = block.size() as usize;
    let mapped = call.me.alloc_map().map_unpublished(block.clone_arc(), || {
        map_into_current(
            call.file,
            len,
            args.prot,
            block.offset(),
            block.map_alignment(),
        )
    });
    let written = mapped.and_then(|addr| {
        args.addr = addr as u64;
        writer.write(&args).inspect_err(|_| {
            // The VMA holds the only other reference; unmapping it frees the block. Only if
            // it is still ALLOC_MAP's: another thread may have replaced it already.
            if is_alloc_maps(block, addr) {
                let _ = unmap_from_current(addr, len);
            }
        })
    });
    if let Err(e) = written {
        new.abandon();
        return Err(e);
    }
    new.publish();
    Ok(())
}

/// UNMAP_FREE: unmaps the mapping that ALLOC_MAP made at `addr`, then frees its block.
pub(crate) fn unmap_free(call: &Call<'_>) -> Result {
    let args = ioctl::read_free_args(call)?;
    if args.addr == 0 {
        return Err(EINVAL);
    }
    let addr = args.addr as usize;
    let len = alloc_map_len(call, args.id, addr)?;
    // Claimed before anything is unmapped, so that a refused call changes nothing: no FREE
    // can kill the id between the unmap and the unpublish (it gets ENOENT, as it would just
    // after), and a failed unmap gives the claim back.
    let claim = ioctl::claim_free(call.me, args.id)?;
    unmap_from_current(addr, len)?;
    claim.finish()
}

/// The length of the live VMA that ALLOC_MAP made of block `id` at `addr` in the caller, or
/// `EINVAL` if there is none: no cmamap VMA starts there, it maps another block or only part
/// of one, the caller's file may not use the block, or the VMA is not ALLOC_MAP's.
fn alloc_map_len(call: &Call<'_>, id: u32, addr: usize) -> Result<usize> {
    let task = kernel::current!();
    let mm = task.mm().ok_or(EINVAL)?;
    let guard = mm.mmap_read_lock();
    let vma = guard.vma_lookup(addr).ok_or(EINVAL)?;
    let block = vma::block_of(vma).ok_or(EINVAL)?;
    let len = vma.end() - vma.start();
    let whole = vma::pgoff(vma) == block.first_pgoff() && len as u64 == block.size();
    if vma.start() != addr
        || !whole
        || block.id() != id
        || !block.visible_to(call.me.key())
        || !block.alloc_map().is(vma)
    {
        return Err(EINVAL);
    }
    Ok(len)
}

/// Whether ALLOC_MAP's own VMA of `block` still starts at `addr` in the caller.
fn is_alloc_maps(block: &Block, addr: usize) -> bool {
    let task = kernel::current!();
    let Some(mm) = task.mm() else {
        return false;
    };
    let guard = mm.mmap_read_lock();
    guard
        .vma_lookup(addr)
        .is_some_and(|vma| vma.start() == addr && block.alloc_map().is(vma))
}

/// The result of `vm_mmap`: an address, or a negative errno.
fn mmap_result(addr: usize) -> Result<usize> {
    let as_signed = addr as isize;
    if (-(bindings::MAX_ERRNO as isize)..0).contains(&as_signed) {
        return Err(Error::from_errno(as_signed as i32));
    }
    Ok(addr)
}

/// Maps `len` bytes of the mmap `offset` of `file` into the current process with `protection`
/// (`PROT_*`), as mmap(2) would, at an address aligned to `align` (a power of two, at least a
/// page), so that a `huge` mapping gets PMD entries.
fn map_into_current(
    file: &kernel::fs::File,
    len: usize,
    protection: u32,
    offset: u64,
    align: usize,
) -> Result<usize> {
    let offset = usize::try_from(offset).map_err(|_| EINVAL)?;
    let protection = protection as usize;
    if align <= PAGE_SIZE {
        // SAFETY: `file` is a live file of this driver; `vm_mmap` takes the mmap lock itself
        // and runs our `mmap` handler.
        return mmap_result(unsafe {
            bindings::vm_mmap(file.as_ptr(), 0, len, protection, map::SHARED, offset)
        });
    }
    // Find a gap of `len + align` bytes and map at its aligned place, refusing to replace
    // anything (MAP_FIXED_NOREPLACE): another thread may have mapped there since. Nothing is
    // reserved and unmapped on the caller's behalf, so nothing of theirs can be unmapped.
    let gap_len = len.checked_add(align).ok_or(ENOMEM)?;
    let gap = {
        let task = kernel::current!();
        let mm = task.mm().ok_or(EINVAL)?;
        let _lock = mm.mmap_read_lock();
        // SAFETY: The current mm's maple tree is read under its mmap lock, held above; no file,
        // offset or flags: a plain search for free address space.
        mmap_result(unsafe {
            bindings::mm_get_unmapped_area(core::ptr::null_mut(), 0, gap_len, 0, 0)
        })
    };
    if let Ok(gap) = gap {
        // SAFETY: As above; MAP_FIXED_NOREPLACE fails with EEXIST rather than replace anything.
        let mapped = mmap_result(unsafe {
            bindings::vm_mmap(
                file.as_ptr(),
                gap.next_multiple_of(align),
                len,
                protection,
                map::SHARED | map::FIXED_NOREPLACE,
                offset,
            )
        });
        if mapped != Err(EEXIST) {
            return mapped;
        }
    }
    // No gap, or another thread took it: anywhere, unaligned (the huge strategy then falls
    // back to 4 KiB faults where it must).
    // SAFETY: As in the first branch.
    mmap_result(unsafe {
        bindings::vm_mmap(file.as_ptr(), 0, len, protection, map::SHARED, offset)
    })
}

/// Unmaps `len` bytes at `addr` from the current process.
fn unmap_from_current(addr: usize, len: usize) -> Result {
    // SAFETY: `vm_munmap` validates the range itself and takes the mmap lock.
    to_result(unsafe { bindings::vm_munmap(addr, len) })
}
