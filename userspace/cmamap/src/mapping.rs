//! Mappings of blocks: `mmap` by offset, and the driver-made mappings of `IOC_ALLOC_MAP`.
//!
//! Soundness rests on the driver's promise that a mapping's memory stays valid until it is
//! unmapped, even after its block is freed or its file closed. Slices handed out here alias
//! memory that other mappings and processes may write; use them between synchronisation points
//! (such as `waitpid`), or the volatile accessors when another party writes concurrently.

use std::marker::PhantomData;
use std::num::NonZeroUsize;
use std::os::fd::{AsFd, BorrowedFd};
use std::ptr::NonNull;

use nix::errno::Errno;
use nix::sys::mman::{self, MRemapFlags, MapFlags, ProtFlags};

use crate::abi;
use crate::block::Block;
use crate::device::{to_off_t, Device};
use crate::error::{Context, Error, Result};
use crate::raw;
use crate::strategy::Prot;

/// The size one PMD entry maps: what a `huge` mapping needs its address aligned to.
pub const HUGE_SIZE: usize = 2 << 20;

/// `MAP_SHARED` or `MAP_PRIVATE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sharing {
    /// `MAP_SHARED`: the only kind the driver supports.
    Shared,
    /// `MAP_PRIVATE`: the driver refuses it with `EINVAL`.
    Private,
}

impl Sharing {
    fn flags(self) -> MapFlags {
        match self {
            Sharing::Shared => MapFlags::MAP_SHARED,
            Sharing::Private => MapFlags::MAP_PRIVATE,
        }
    }
}

/// A mapping of (part of) a block; unmapped on drop.
///
/// The lifetime ties it to the [`crate::Block`] or [`Device`] it came from; [`Mapping::detach`]
/// lifts that, since the memory outlives both.
#[derive(Debug)]
pub struct Mapping<'a> {
    ptr: NonNull<u8>,
    len: usize,
    prot: Prot,
    _source: PhantomData<&'a ()>,
}

fn prot_flags(prot: Prot) -> ProtFlags {
    ProtFlags::from_bits_truncate(prot.bits())
}

impl<'a> Mapping<'a> {
    pub(crate) fn new(
        fd: BorrowedFd<'_>,
        offset: u64,
        len: usize,
        prot: Prot,
        sharing: Sharing,
    ) -> Result<Self> {
        let length = NonZeroUsize::new(len).ok_or(Error::new("mmap", Errno::EINVAL))?;
        let offset = to_off_t("mmap", offset)?;
        // SAFETY: no MAP_FIXED, so the kernel picks a free range and no existing memory changes.
        let ptr =
            unsafe { mman::mmap(None, length, prot_flags(prot), sharing.flags(), fd, offset) }
                .context("mmap")?;
        Ok(Self {
            ptr: ptr.cast(),
            len,
            prot,
            _source: PhantomData,
        })
    }

    /// Like [`Mapping::new`], but at an address `a` with `a % HUGE_SIZE == phase % HUGE_SIZE`,
    /// so that each 2 MiB of a 2 MiB-aligned block can be one PMD entry.
    ///
    /// It reserves `len + HUGE_SIZE` bytes of `PROT_NONE` address space, maps the device with
    /// `MAP_FIXED` at the right place inside, and gives the slack on both sides back.
    pub(crate) fn new_huge_placed(
        fd: BorrowedFd<'_>,
        offset: u64,
        len: usize,
        prot: Prot,
        sharing: Sharing,
        phase: u64,
    ) -> Result<Self> {
        let length = NonZeroUsize::new(len).ok_or(Error::new("mmap", Errno::EINVAL))?;
        let offset = to_off_t("mmap", offset)?;
        let reserved_len = len
            .checked_add(HUGE_SIZE)
            .and_then(NonZeroUsize::new)
            .ok_or(Error::new("mmap", Errno::ENOMEM))?;
        // SAFETY: no MAP_FIXED: the kernel picks a free range, which only this function uses.
        let reserved = unsafe {
            mman::mmap_anonymous(
                None,
                reserved_len,
                ProtFlags::PROT_NONE,
                MapFlags::MAP_PRIVATE | MapFlags::MAP_NORESERVE,
            )
        }
        .context("mmap (reserve an aligned range)")?;
        let base = reserved.as_ptr() as usize;
        // The phase is below HUGE_SIZE, so the wanted start lies in the reservation's first
        // HUGE_SIZE bytes and the whole mapping fits in it.
        let wanted_phase = (phase % HUGE_SIZE as u64) as usize;
        let start = base + (wanted_phase.wrapping_sub(base) & (HUGE_SIZE - 1));
        let give_back = |from: usize, to: usize| {
            if let Some(len) = NonZeroUsize::new(to - from) {
                // SAFETY: `from..to` is part of our own reservation, which nothing else uses.
                let _ = unsafe { mman::munmap(NonNull::new(from as *mut _).unwrap(), len.get()) };
            }
        };
        // SAFETY: MAP_FIXED replaces only `start..start + len`, inside our own reservation.
        let mapped = unsafe {
            mman::mmap(
                NonZeroUsize::new(start),
                length,
                prot_flags(prot),
                sharing.flags() | MapFlags::MAP_FIXED,
                fd,
                offset,
            )
        };
        let ptr = match mapped {
            Ok(ptr) => ptr,
            Err(errno) => {
                give_back(base, base + reserved_len.get());
                return Err(Error::new("mmap", errno));
            }
        };
        give_back(base, start);
        give_back(start + len, base + reserved_len.get());
        Ok(Self {
            ptr: ptr.cast(),
            len,
            prot,
            _source: PhantomData,
        })
    }

    /// The start address.
    pub fn addr(&self) -> usize {
        self.ptr.as_ptr() as usize
    }

    /// A raw pointer to the start.
    pub fn as_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }

    /// A raw mutable pointer to the start.
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: mappings are at least one page.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The protection it was mapped (or last `protect`ed) with.
    pub fn prot(&self) -> Prot {
        self.prot
    }

    /// The mapped bytes.
    ///
    /// # Panics
    ///
    /// If the mapping is not readable.
    ///
    /// ```no_run
    /// use cmamap::{AllocRequest, Device, Prot, Strategy};
    ///
    /// let dev = Device::open()?;
    /// let block = dev.alloc(&AllocRequest::new(1 << 20))?;
    /// let mapping = block.map(Prot::Read)?;
    /// // Blocks come zeroed.
    /// assert!(mapping.as_slice().iter().all(|&byte| byte == 0));
    /// # Ok::<(), cmamap::Error>(())
    /// ```
    pub fn as_slice(&self) -> &[u8] {
        assert!(self.prot.readable(), "mapping is not readable");
        // SAFETY: `ptr..ptr+len` is mapped readable for as long as `self` lives (the driver keeps
        // block memory valid until munmap), and `&self` prevents mutation through this mapping.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The mapped bytes, writable.
    ///
    /// # Panics
    ///
    /// If the mapping is not readable and writable.
    ///
    /// ```no_run
    /// use cmamap::{AllocRequest, Device, Prot, Strategy};
    ///
    /// let dev = Device::open()?;
    /// let block = dev.alloc(&AllocRequest::new(1 << 20))?;
    /// let mut mapping = block.map(Prot::ReadWrite)?;
    /// mapping.as_mut_slice()[..5].copy_from_slice(b"hello");
    /// # Ok::<(), cmamap::Error>(())
    /// ```
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        assert!(
            self.prot.readable() && self.prot.writable(),
            "mapping is not readable and writable"
        );
        // SAFETY: as in `as_slice`, and `&mut self` makes this the only slice of this mapping.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// Reads byte `index` with a volatile load, so that the access (and its page fault)
    /// really happens.
    ///
    /// # Panics
    ///
    /// If `index` is out of range.
    ///
    /// ```no_run
    /// use cmamap::{AllocRequest, Device, Prot, Strategy};
    ///
    /// let dev = Device::open()?;
    /// let block = dev.alloc(&AllocRequest::new(1 << 20))?;
    /// let mapping = block.map(Prot::Read)?;
    /// // The load happens, and so does its page fault.
    /// let first = mapping.read_volatile(0);
    /// # Ok::<(), cmamap::Error>(())
    /// ```
    pub fn read_volatile(&self, index: usize) -> u8 {
        assert!(index < self.len, "index {index} out of range");
        // SAFETY: in bounds of a live mapping.
        unsafe { self.ptr.as_ptr().add(index).read_volatile() }
    }

    /// Writes byte `index` with a volatile store.
    ///
    /// # Panics
    ///
    /// If `index` is out of range or the mapping is not writable.
    ///
    /// ```no_run
    /// use cmamap::{AllocRequest, Device, Prot, Strategy};
    ///
    /// let dev = Device::open()?;
    /// let block = dev.alloc(&AllocRequest::new(1 << 20))?;
    /// let mut mapping = block.map(Prot::ReadWrite)?;
    /// mapping.write_volatile(0, 1);
    /// # Ok::<(), cmamap::Error>(())
    /// ```
    pub fn write_volatile(&mut self, index: usize, value: u8) {
        assert!(index < self.len, "index {index} out of range");
        assert!(self.prot.writable(), "mapping is not writable");
        // SAFETY: in bounds of a live, writable mapping; `&mut self` excludes slices of it.
        unsafe { self.ptr.as_ptr().add(index).write_volatile(value) }
    }

    /// Drops the borrow of the block or device: the driver keeps the memory valid until munmap
    /// even after the block is freed or its file is closed.
    ///
    /// ```no_run
    /// use cmamap::{AllocRequest, Device, Prot, Strategy};
    ///
    /// let dev = Device::open()?;
    /// let block = dev.alloc(&AllocRequest::new(1 << 20))?;
    /// let mapping = block.map(Prot::Read)?.detach();
    /// drop(block);
    /// // Freed, yet still mapped: the memory stays until munmap.
    /// let _ = mapping.as_slice()[0];
    /// # Ok::<(), cmamap::Error>(())
    /// ```
    pub fn detach(self) -> Mapping<'static> {
        let detached = Mapping {
            ptr: self.ptr,
            len: self.len,
            prot: self.prot,
            _source: PhantomData,
        };
        std::mem::forget(self);
        detached
    }

    /// Resizes with `mremap(MREMAP_MAYMOVE)`; the driver refuses to grow its mappings.
    ///
    /// ```no_run
    /// use cmamap::{AllocRequest, Device, Prot, Strategy};
    ///
    /// let dev = Device::open()?;
    /// let block = dev.alloc(&AllocRequest::new(1 << 20))?;
    /// let mut mapping = block.map(Prot::Read)?;
    /// mapping.resize(4096)?; // shrinking works; growing is EINVAL
    /// # Ok::<(), cmamap::Error>(())
    /// ```
    pub fn resize(&mut self, new_len: usize) -> Result<()> {
        if new_len == 0 {
            return Err(Error::new("mremap", Errno::EINVAL));
        }
        // SAFETY: the range is this mapping's; on success the old range is gone and `self` takes
        // the new one, on failure nothing changed. `&mut self` excludes outstanding slices.
        let ptr = unsafe {
            mman::mremap(
                self.ptr.cast(),
                self.len,
                new_len,
                MRemapFlags::MREMAP_MAYMOVE,
                None,
            )
        }
        .context("mremap")?;
        self.ptr = ptr.cast();
        self.len = new_len;
        Ok(())
    }

    /// Changes the protection with `mprotect`.
    ///
    /// ```no_run
    /// use cmamap::{AllocRequest, Device, Prot, Strategy};
    ///
    /// let dev = Device::open()?;
    /// let block = dev.alloc(&AllocRequest::new(1 << 20))?;
    /// let mut mapping = block.map(Prot::ReadWrite)?;
    /// mapping.protect(Prot::Read)?;
    /// # Ok::<(), cmamap::Error>(())
    /// ```
    pub fn protect(&mut self, prot: Prot) -> Result<()> {
        // SAFETY: the range is this mapping's, and `&mut self` excludes outstanding slices, so no
        // reference outlives a protection change.
        unsafe { mman::mprotect(self.ptr.cast(), self.len, prot_flags(prot)) }
            .context("mprotect")?;
        self.prot = prot;
        Ok(())
    }
}

impl Drop for Mapping<'_> {
    fn drop(&mut self) {
        // SAFETY: the range is this mapping's and no slice of it outlives `self`.
        let _ = unsafe { mman::munmap(self.ptr.cast(), self.len) };
    }
}

/// A block that `IOC_ALLOC_MAP` allocated and mapped in one step; `IOC_UNMAP_FREE` releases
/// both when it drops (a persistent one is only unmapped).
#[derive(Debug)]
pub struct MappedBlock<'dev> {
    /// The block's identity and calls (through `Deref`); it never frees on its own, since
    /// this handle releases the block with UNMAP_FREE.
    block: Block<'dev>,
    // Always Some until drop or an explicit release takes it.
    pub(crate) mapping: Option<Mapping<'dev>>,
}

impl<'dev> MappedBlock<'dev> {
    pub(crate) fn from_alloc_map(dev: &'dev Device, args: &abi::AllocArgs) -> Result<Self> {
        let prot = match args.prot as i32 {
            p if p == libc::PROT_READ => Prot::Read,
            p if p == libc::PROT_WRITE => Prot::Write,
            _ => Prot::ReadWrite,
        };
        let ptr = NonNull::new(args.addr as *mut u8);
        let len = usize::try_from(args.size).ok();
        let (Some(ptr), Some(len)) = (ptr, len) else {
            // The driver reported success without a usable mapping: free what we can.
            let _ = dev.free(args.id);
            return Err(Error::new("CMAMAP_IOC_ALLOC_MAP", Errno::EPROTO));
        };
        // ALLOC_MAP's contract: the driver mapped the whole block at `addr` in this process,
        // and that mapping is now ours to use and to release.
        let mut block = Block::from_alloc(dev, args);
        block.set_free_on_drop(false);
        Ok(Self {
            block,
            mapping: Some(Mapping {
                ptr,
                len,
                prot,
                _source: PhantomData,
            }),
        })
    }

    fn mapping_ref(&self) -> &Mapping<'dev> {
        self.mapping.as_ref().expect("mapping present until drop")
    }

    fn mapping_mut(&mut self) -> &mut Mapping<'dev> {
        self.mapping.as_mut().expect("mapping present until drop")
    }

    /// The address the driver mapped the block at.
    pub fn addr(&self) -> usize {
        self.mapping_ref().addr()
    }

    /// The mapping, for its accessors.
    pub fn mapping(&self) -> &Mapping<'dev> {
        self.mapping_ref()
    }

    /// The mapped block.
    pub fn as_slice(&self) -> &[u8] {
        self.mapping_ref().as_slice()
    }

    /// The mapped block, writable.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        self.mapping_mut().as_mut_slice()
    }

    /// Volatile read of byte `index`.
    pub fn read_volatile(&self, index: usize) -> u8 {
        self.mapping_ref().read_volatile(index)
    }

    /// Volatile write of byte `index`.
    pub fn write_volatile(&mut self, index: usize, value: u8) {
        self.mapping_mut().write_volatile(index, value)
    }

    /// `IOC_UNMAP_FREE` now, reporting the error that `Drop` would swallow. On error the handle
    /// is dropped, which unmaps and frees by other means.
    ///
    /// ```no_run
    /// use cmamap::{AllocRequest, Device, Prot, Strategy};
    ///
    /// let dev = Device::open()?;
    /// let block = dev.alloc_map(&AllocRequest::new(1 << 20), Prot::ReadWrite)?;
    /// block.unmap_free()?;
    /// # Ok::<(), cmamap::Error>(())
    /// ```
    pub fn unmap_free(mut self) -> Result<()> {
        let mapping = self.mapping.take().expect("mapping present until drop");
        match self.unmap_free_at(&mapping, self.id(), 0) {
            Ok(()) => {
                // The driver unmapped it; do not munmap a range that may be reused already.
                std::mem::forget(mapping);
                Ok(())
            }
            Err(err) => {
                drop(mapping);
                let _ = self.device().free(self.id());
                Err(err)
            }
        }
    }

    pub(crate) fn unmap_free_at(&self, mapping: &Mapping<'_>, id: u32, delta: usize) -> Result<()> {
        let args = abi::FreeArgs {
            id,
            addr: (mapping.addr() + delta) as u64,
            ..Default::default()
        };
        // SAFETY: the address lies inside `mapping`, which the callers own and stop using (or
        // drop) when the driver accepts; no slice of it is alive during the call.
        unsafe { raw::unmap_free(self.device().as_fd(), &args) }.context("CMAMAP_IOC_UNMAP_FREE")
    }
}

impl<'dev> std::ops::Deref for MappedBlock<'dev> {
    type Target = Block<'dev>;

    fn deref(&self) -> &Block<'dev> {
        &self.block
    }
}

impl Drop for MappedBlock<'_> {
    fn drop(&mut self) {
        let Some(mapping) = self.mapping.take() else {
            return;
        };
        if self.is_persistent() {
            // The module owns the block; only our mapping goes.
            drop(mapping);
            return;
        }
        match self.unmap_free_at(&mapping, self.id(), 0) {
            Ok(()) => std::mem::forget(mapping),
            Err(_) => {
                drop(mapping);
                let _ = self.device().free(self.id());
            }
        }
    }
}
