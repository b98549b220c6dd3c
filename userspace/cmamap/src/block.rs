//! A block handle that frees its block when dropped.

use nix::errno::Errno;

use crate::abi;
use crate::device::{Device, Info};
use crate::error::{Error, Result};
use crate::mapping::{Mapping, Sharing};
use crate::strategy::{Prot, Strategy};
use crate::view::View;

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
    ///
    /// ```no_run
    /// use cmamap::{AllocRequest, Device, Prot, Strategy};
    ///
    /// let dev = Device::open()?;
    /// let block = dev.alloc(&AllocRequest::new(1 << 20))?;
    /// println!("mapped {} times", block.info()?.map_count);
    /// # Ok::<(), cmamap::Error>(())
    /// ```
    pub fn info(&self) -> Result<Info> {
        self.dev.info(self.id)
    }

    /// Frees the block now (`IOC_FREE`), reporting the error that `Drop` would swallow.
    ///
    /// ```no_run
    /// use cmamap::{AllocRequest, Device, Prot, Strategy};
    ///
    /// let dev = Device::open()?;
    /// let block = dev.alloc(&AllocRequest::new(1 << 20))?;
    /// // Unlike a drop, this reports a failure.
    /// block.free()?;
    /// # Ok::<(), cmamap::Error>(())
    /// ```
    pub fn free(mut self) -> Result<()> {
        self.free_on_drop = false;
        self.dev.free(self.id)
    }

    /// Gives up ownership: the block lives on (until its file closes, for a file-owned block)
    /// and its id is returned.
    ///
    /// ```no_run
    /// use cmamap::{AllocRequest, Device, Prot, Strategy};
    ///
    /// let dev = Device::open()?;
    /// let id = dev.alloc(&AllocRequest::new(4096))?.into_raw_id();
    /// // The block lives until the file closes or FREE.
    /// dev.free(id)?;
    /// # Ok::<(), cmamap::Error>(())
    /// ```
    pub fn into_raw_id(mut self) -> u32 {
        self.free_on_drop = false;
        self.id
    }

    /// Maps the whole block through its own strategy, `MAP_SHARED`. A `huge` block is placed
    /// at a 2 MiB-aligned address, so that its faults can map 2 MiB at a time.
    ///
    /// ```no_run
    /// use cmamap::{AllocRequest, Device, Prot, Strategy};
    ///
    /// let dev = Device::open()?;
    /// let block = dev.alloc(&AllocRequest::new(1 << 20))?;
    /// let mut mapping = block.map(Prot::ReadWrite)?;
    /// mapping.as_mut_slice().fill(0x5a);
    /// # Ok::<(), cmamap::Error>(())
    /// ```
    pub fn map(&self, prot: Prot) -> Result<Mapping<'_>> {
        self.map_range(0, self.len_usize("mmap")?, prot)
    }

    /// Maps `len` bytes starting `offset_in_block` bytes (page-aligned) into the block.
    ///
    /// ```no_run
    /// use cmamap::{AllocRequest, Device, Prot, Strategy};
    ///
    /// let dev = Device::open()?;
    /// let block = dev.alloc(&AllocRequest::new(1 << 20))?;
    /// let page = cmamap::page_size();
    /// // The second page only.
    /// let mapping = block.map_range(page as u64, page, Prot::Read)?;
    /// # Ok::<(), cmamap::Error>(())
    /// ```
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
        self.map_view_with(View::Own, offset_in_block, len, prot, sharing)
    }

    /// Maps `len` bytes starting `offset_in_block` bytes (page-aligned) into the block through
    /// `view`, whatever the block's own strategy: the same memory can be mapped as remap,
    /// fault and page at once, and each mapping behaves (faults, get_user_pages) like a block
    /// of its view's strategy. A [`Strategy`] is a view; [`View::Own`] (or
    /// [`Strategy::Default`]) is the block's own strategy.
    ///
    /// A view that does not fit the offset's view bits (see [`view_offset`]) is `EINVAL`.
    ///
    /// ```no_run
    /// use cmamap::{AllocRequest, Device, Prot, Strategy};
    ///
    /// let dev = Device::open()?;
    /// let block = dev.alloc(&AllocRequest::new(1 << 20).strategy(Strategy::Remap))?;
    /// // The same memory, mapped so that get_user_pages (O_DIRECT, vmsplice) can pin it.
    /// let pinnable = block.map_view(Strategy::Page, 0, 1 << 20, Prot::ReadWrite)?;
    /// # Ok::<(), cmamap::Error>(())
    /// ```
    pub fn map_view(
        &self,
        view: impl Into<View>,
        offset_in_block: u64,
        len: usize,
        prot: Prot,
    ) -> Result<Mapping<'_>> {
        self.map_view_with(view, offset_in_block, len, prot, Sharing::Shared)
    }

    /// Like [`Block::map_view`] with a choice of `MAP_SHARED` or `MAP_PRIVATE`.
    pub fn map_view_with(
        &self,
        view: impl Into<View>,
        offset_in_block: u64,
        len: usize,
        prot: Prot,
        sharing: Sharing,
    ) -> Result<Mapping<'_>> {
        let view = view.into();
        let huge = match view {
            View::Own => self.strategy == Strategy::Huge,
            view => view == View::Huge,
        };
        // A 2 MiB-aligned block gets PMD entries only where the address is aligned like the
        // physical pages: address = offset_in_block modulo 2 MiB.
        let phase = huge.then_some(offset_in_block);
        self.map_at_phase(view, offset_in_block, len, prot, sharing, phase)
    }

    /// Maps through `view`, at an address congruent to `phase` modulo [`crate::HUGE_SIZE`]
    /// when there is one, and wherever the kernel likes otherwise.
    pub(crate) fn map_at_phase(
        &self,
        view: View,
        offset_in_block: u64,
        len: usize,
        prot: Prot,
        sharing: Sharing,
        phase: Option<u64>,
    ) -> Result<Mapping<'_>> {
        let offset = view_offset(self.offset, view, offset_in_block)?;
        let fd = std::os::fd::AsFd::as_fd(self.dev);
        match phase {
            Some(phase) => Mapping::new_huge_placed(fd, offset, len, prot, sharing, phase),
            None => Mapping::new(fd, offset, len, prot, sharing),
        }
    }

    /// `pread` at `offset_in_block`.
    ///
    /// ```no_run
    /// use cmamap::{AllocRequest, Device, Prot, Strategy};
    ///
    /// let dev = Device::open()?;
    /// let block = dev.alloc(&AllocRequest::new(1 << 20))?;
    /// let mut buf = [0u8; 16];
    /// block.pread(4096, &mut buf)?;
    /// # Ok::<(), cmamap::Error>(())
    /// ```
    pub fn pread(&self, offset_in_block: u64, buf: &mut [u8]) -> Result<usize> {
        self.dev
            .pread(self.mmap_offset("pread", offset_in_block)?, buf)
    }

    /// `pwrite` at `offset_in_block`.
    ///
    /// ```no_run
    /// use cmamap::{AllocRequest, Device, Prot, Strategy};
    ///
    /// let dev = Device::open()?;
    /// let block = dev.alloc(&AllocRequest::new(1 << 20))?;
    /// block.pwrite(0, b"written without a mapping")?;
    /// # Ok::<(), cmamap::Error>(())
    /// ```
    pub fn pwrite(&self, offset_in_block: u64, buf: &[u8]) -> Result<usize> {
        self.dev
            .pwrite(self.mmap_offset("pwrite", offset_in_block)?, buf)
    }

    /// Reads the whole block with `pread`.
    ///
    /// ```no_run
    /// use cmamap::{AllocRequest, Device, Prot, Strategy};
    ///
    /// let dev = Device::open()?;
    /// let block = dev.alloc(&AllocRequest::new(1 << 20))?;
    /// let bytes = block.read_all()?;
    /// assert_eq!(bytes.len() as u64, block.size());
    /// # Ok::<(), cmamap::Error>(())
    /// ```
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

/// Views `0..VIEW_LIMIT` fit the bits between `abi::VIEW_SHIFT` and `abi::OFFSET_SHIFT`.
pub const VIEW_LIMIT: u32 = 1 << (abi::OFFSET_SHIFT - abi::VIEW_SHIFT);

/// The mmap offset of byte `offset_in_block` of the block at mmap offset `block_offset`, seen
/// through `view` (as `abi::view_offset` builds it, but checked).
///
/// `EINVAL` when the view or the byte offset would spill into the neighbouring bits: a view of
/// `VIEW_LIMIT` or more would select another block, a byte offset of `abi::MAX_BLOCK_SIZE` or
/// more another view.
///
/// ```
/// use cmamap::{abi, view_offset, View};
///
/// let offset = view_offset(abi::offset_of_id(3), View::RemapWc, 0).unwrap();
/// assert_eq!(offset, abi::view_offset(3, abi::VIEW_REMAP_WC, 0));
/// ```
pub fn view_offset(block_offset: u64, view: impl Into<View>, offset_in_block: u64) -> Result<u64> {
    let view = view.into().to_raw();
    if view >= VIEW_LIMIT || offset_in_block >= abi::MAX_BLOCK_SIZE {
        return Err(Error::new("mmap", Errno::EINVAL));
    }
    Ok(block_offset | (u64::from(view) << abi::VIEW_SHIFT) | offset_in_block)
}

impl Drop for Block<'_> {
    fn drop(&mut self) {
        if self.free_on_drop {
            // Nothing useful can be done with an error here; `free()` reports it.
            let _ = self.dev.free(self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_offsets_match_the_abi() {
        let base = abi::offset_of_id(7);
        for (view, raw) in [
            (Strategy::Default, abi::STRATEGY_DEFAULT),
            (Strategy::Remap, abi::STRATEGY_REMAP),
            (Strategy::Fault, abi::STRATEGY_FAULT),
            (Strategy::Page, abi::STRATEGY_PAGE),
        ] {
            let offset = view_offset(base, view, 0x5000).unwrap();
            assert_eq!(offset, abi::view_offset(7, raw, 0x5000));
            assert_eq!(abi::view_of_offset(offset), (7, raw, 0x5000));
        }
    }

    #[test]
    fn views_and_offsets_that_spill_are_refused() {
        let base = abi::offset_of_id(6);
        for raw in [VIEW_LIMIT, VIEW_LIMIT + 1, u32::MAX] {
            let err = view_offset(base, Strategy::Unknown(raw), 0).unwrap_err();
            assert_eq!(err.errno(), Errno::EINVAL, "view {raw}");
        }
        let err = view_offset(base, Strategy::Page, abi::MAX_BLOCK_SIZE).unwrap_err();
        assert_eq!(err.errno(), Errno::EINVAL);
        assert!(view_offset(base, Strategy::Page, abi::MAX_BLOCK_SIZE - 4096).is_ok());
    }
}
