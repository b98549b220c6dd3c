//! What only the driver's tests need: ioctls with caller-built arguments and deliberately wrong
//! calls that stay memory-safe. Compiled with the `testkit` feature; `cmamap-testkit` turns it on.

use std::os::fd::AsFd;

use crate::abi;
use crate::block::Block;
use crate::device::Device;
use crate::error::{Context, Error, Result};
use crate::mapping::{MappedBlock, Mapping, Sharing};
use crate::raw;
use crate::strategy::{Prot, Strategy};
use crate::view::View;

/// What a deliberately wrong `IOC_UNMAP_FREE` did.
#[derive(Debug)]
pub enum Probe<T> {
    /// The driver refused, as it should; the handle comes back intact.
    Refused(T, Error),
    /// The driver accepted: the handle was torn down, since part of it may be gone.
    Accepted,
}

impl Device {
    /// `IOC_STAT` with caller-built arguments (tests check that reserved words are refused).
    pub fn stat_raw(&self, args: &mut abi::StatArgs) -> Result<()> {
        raw::stat(self.as_fd(), args).context("CMAMAP_IOC_STAT")
    }

    /// `IOC_INFO` with caller-built arguments.
    pub fn info_raw(&self, args: &mut abi::BlockInfo) -> Result<()> {
        raw::info(self.as_fd(), args).context("CMAMAP_IOC_INFO")
    }

    /// `IOC_ALLOC` with caller-built arguments, for tests of the driver's validation. Should the
    /// driver accept bad arguments, the block is still owned by the returned handle.
    pub fn alloc_raw(&self, mut args: abi::AllocArgs) -> Result<Block<'_>> {
        raw::alloc(self.as_fd(), &mut args).context("CMAMAP_IOC_ALLOC")?;
        Ok(Block::from_alloc(self, &args))
    }

    /// `IOC_ALLOC_MAP` with caller-built arguments (tests of `prot` validation).
    pub fn alloc_map_raw(&self, mut args: abi::AllocArgs) -> Result<MappedBlock<'_>> {
        raw::alloc_map(self.as_fd(), &mut args).context("CMAMAP_IOC_ALLOC_MAP")?;
        MappedBlock::from_alloc_map(self, &args)
    }

    /// `IOC_FREE` with caller-built arguments.
    pub fn free_raw(&self, args: &abi::FreeArgs) -> Result<()> {
        raw::free(self.as_fd(), args).context("CMAMAP_IOC_FREE")
    }
}

impl Block<'_> {
    /// Like [`Block::map_view`], `MAP_SHARED`, at an address congruent to `phase` modulo
    /// [`crate::HUGE_SIZE`] whatever the strategy: to show what a misplaced huge mapping does.
    pub fn map_view_at_phase(
        &self,
        view: Strategy,
        offset_in_block: u64,
        len: usize,
        prot: Prot,
        phase: u64,
    ) -> Result<Mapping<'_>> {
        let view = View::from(view);
        self.map_at_phase(
            view,
            offset_in_block,
            len,
            prot,
            Sharing::Shared,
            Some(phase),
        )
    }
}

impl Mapping<'_> {
    /// Asks `IOC_UNMAP_FREE` to release this plain `mmap` mapping as if `IOC_ALLOC_MAP` had made
    /// it; the driver must refuse with `EINVAL`.
    pub fn probe_unmap_free(self, dev: &Device, id: u32) -> Probe<Self> {
        let args = abi::FreeArgs {
            id,
            addr: self.addr() as u64,
            ..Default::default()
        };
        // SAFETY: the address is this mapping's start, which `self` owns; if the driver unmaps it
        // we tear `self` down below without touching the memory.
        match unsafe { raw::unmap_free(dev.as_fd(), &args) } {
            Err(errno) => Probe::Refused(self, Error::new("CMAMAP_IOC_UNMAP_FREE", errno)),
            Ok(()) => {
                // munmap of an already unmapped range succeeds and leaves nothing behind.
                drop(self);
                Probe::Accepted
            }
        }
    }
}

impl MappedBlock<'_> {
    /// Asks `IOC_UNMAP_FREE` with block `id` and the address `delta` bytes into this mapping;
    /// when that is not (this block, its start) the driver must refuse with `EINVAL`.
    ///
    /// # Panics
    ///
    /// If `delta` is not inside the mapping.
    pub fn probe_unmap_free(mut self, id: u32, delta: usize) -> Probe<Self> {
        let mapping = self.mapping.take().expect("mapping present until drop");
        assert!(delta < mapping.len(), "delta must stay inside the mapping");
        match self.unmap_free_at(&mapping, id, delta) {
            Err(err) => {
                self.mapping = Some(mapping);
                Probe::Refused(self, err)
            }
            Ok(()) => {
                // Whatever the driver unmapped, munmap of the whole range cleans up the rest.
                drop(mapping);
                let _ = self.device().free(self.id());
                Probe::Accepted
            }
        }
    }
}
