//! A block handle that frees its block when dropped.

use nix::errno::Errno;

use crate::abi;
use crate::device::{Device, Info};
use crate::error::{Error, Result};
use crate::mapping::{Mapping, Sharing};
use crate::strategy::{Prot, Strategy};

/// A CMA block reached through a [`Device`].
///
/// A block from [`Device::alloc`] is freed when the handle drops, unless it is persistent or
/// [`Block::into_raw_id`] gave it up. A handle from [`Device::block`] never frees on drop.
#[derive(Debug)]
pub struct Block<'dev> {
    dev: &'dev Device,
    id: u32,
    offset: u64,
    size: u64,
    strategy: Strategy,
    flags: u32,
    free_on_drop: bool,
}

impl<'dev> Block<'dev> {
    pub(crate) fn from_alloc(dev: &'dev Device, args: &abi::AllocArgs) -> Self {
        let persistent = args.flags & abi::ALLOC_PERSIST != 0;
        Self {
            dev,
            id: args.id,
            offset: args.offset,
            size: args.size,
            strategy: Strategy::from_raw(args.strategy),
            flags: args.flags,
            free_on_drop: !persistent,
        }
    }

    pub(crate) fn from_info(dev: &'dev Device, info: &Info) -> Self {
        Self {
            dev,
            id: info.id,
            offset: info.offset,
            size: info.size,
            strategy: info.strategy,
            flags: info.flags,
            free_on_drop: false,
        }
    }

    /// The device the block was reached through.
    pub fn device(&self) -> &'dev Device {
        self.dev
    }

    /// The block's handle.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The mmap offset that selects the block.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Bytes, a whole number of pages.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The strategy the driver resolved for the block.
    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// `abi::ALLOC_*` flags it was allocated with.
    pub fn flags(&self) -> u32 {
        self.flags
    }

    /// True for a module-owned (`PERSIST`) block.
    pub fn is_persistent(&self) -> bool {
        self.flags & abi::ALLOC_PERSIST != 0
    }

    /// Whether dropping the handle frees the block.
    pub fn frees_on_drop(&self) -> bool {
        self.free_on_drop
    }

    /// Chooses whether dropping the handle frees the block; tests use it so that persistent
    /// blocks go away even when a check fails half-way.
    pub fn set_free_on_drop(&mut self, free_on_drop: bool) {
        self.free_on_drop = free_on_drop;
    }

    /// `IOC_INFO` of this block.
    pub fn info(&self) -> Result<Info> {
        self.dev.info(self.id)
    }

    /// Frees the block now (`IOC_FREE`), reporting the error that `Drop` would swallow.
    pub fn free(mut self) -> Result<()> {
        self.free_on_drop = false;
        self.dev.free(self.id)
    }

    /// Gives up ownership: the block lives on (until its file closes, for a file-owned block)
    /// and its id is returned.
    pub fn into_raw_id(mut self) -> u32 {
        self.free_on_drop = false;
        self.id
    }

    /// Maps the whole block, `MAP_SHARED`.
    pub fn map(&self, prot: Prot) -> Result<Mapping<'_>> {
        self.map_range(0, self.len_usize("mmap")?, prot)
    }

    /// Maps `len` bytes starting `offset_in_block` bytes (page-aligned) into the block.
    pub fn map_range(&self, offset_in_block: u64, len: usize, prot: Prot) -> Result<Mapping<'_>> {
        self.map_range_with(offset_in_block, len, prot, Sharing::Shared)
    }

    /// Like [`Block::map_range`] with a choice of `MAP_SHARED` or `MAP_PRIVATE`.
    pub fn map_range_with(
        &self,
        offset_in_block: u64,
        len: usize,
        prot: Prot,
        sharing: Sharing,
    ) -> Result<Mapping<'_>> {
        let offset = self.mmap_offset("mmap", offset_in_block)?;
        Mapping::new(
            std::os::fd::AsFd::as_fd(self.dev),
            offset,
            len,
            prot,
            sharing,
        )
    }

    /// `pread` at `offset_in_block`.
    pub fn pread(&self, offset_in_block: u64, buf: &mut [u8]) -> Result<usize> {
        self.dev
            .pread(self.mmap_offset("pread", offset_in_block)?, buf)
    }

    /// `pwrite` at `offset_in_block`.
    pub fn pwrite(&self, offset_in_block: u64, buf: &[u8]) -> Result<usize> {
        self.dev
            .pwrite(self.mmap_offset("pwrite", offset_in_block)?, buf)
    }

    /// Reads the whole block with `pread`.
    pub fn read_all(&self) -> Result<Vec<u8>> {
        let mut buf = vec![0; self.len_usize("pread")?];
        let mut done = 0;
        while done < buf.len() {
            let n = self.pread(done as u64, &mut buf[done..])?;
            if n == 0 {
                // The driver reports the block's end early: a short block is its bug to show.
                buf.truncate(done);
                break;
            }
            done += n;
        }
        Ok(buf)
    }

    fn mmap_offset(&self, op: &'static str, offset_in_block: u64) -> Result<u64> {
        // Offsets past the block's own 2^OFFSET_SHIFT window would select another block.
        if offset_in_block >= 1u64 << abi::OFFSET_SHIFT {
            return Err(Error::new(op, Errno::EINVAL));
        }
        Ok(self.offset + offset_in_block)
    }

    fn len_usize(&self, op: &'static str) -> Result<usize> {
        usize::try_from(self.size).map_err(|_| Error::new(op, Errno::EOVERFLOW))
    }
}

impl Drop for Block<'_> {
    fn drop(&mut self) {
        if self.free_on_drop {
            // Nothing useful can be done with an error here; `free()` reports it.
            let _ = self.dev.free(self.id);
        }
    }
}
