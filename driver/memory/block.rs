// SPDX-License-Identifier: GPL-2.0

//! A block: one CMA allocation or one device BAR, its identity, owner and mapping state.
//!
//! A block is shared through `Arc`: the registry's list holds one reference while the id is
//! live, and every VMA that maps the block holds one more. The pages go back to CMA when the
//! last reference goes, so no path can free memory that userspace can still reach. Device
//! memory is not freed but revoked: on unbind its gate closes and its PTEs are zapped while
//! VMAs may still hold the block (`device_memory::pci`).

use crate::{
    abi,
    caller::OwnerPid,
    device_memory::bar::BarMemory,
    mapping::{
        alloc_map,
        strategy::{Strategy, HUGE_ORDER},
    },
    memory::{cma::CmaPages, user_io::UserIo, PAGE_SHIFT, PAGE_SIZE},
};
use kernel::{
    list::{ListArc, ListLinks},
    prelude::*,
    sync::atomic::{
        ordering::{Full, Relaxed, Release},
        Atomic,
    },
};

/// Who a block belongs to, and so when it is freed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Owner {
    /// The open file (by its key) that allocated it; freed when that file is released.
    File(u64),
    /// The module (`PERSIST`); freed by the free ioctl or at `rmmod`.
    Module,
    /// A bound PCI device (its BAR); removed when the device unbinds.
    Device,
}

/// What memory a block is.
pub(crate) enum Backing {
    /// RAM from the default CMA area, charged against the module's limits until it is back.
    Cma(CmaPages),
    /// A PCI BAR: no `struct page`, uncached, and revoked on unbind.
    Bar(Pin<KBox<BarMemory>>),
}

/// What a block needs from its memory, whatever kind it is.
pub(crate) trait BlockMemory {
    /// The number of pages.
    fn page_count(&self) -> usize;

    /// The PFN of the first page.
    fn first_pfn(&self) -> usize;

    /// Copies up to `len` bytes between byte `offset` of the memory and the user; the bytes
    /// copied, fewer than asked when user memory faults or the memory ends.
    fn copy_user(&self, offset: usize, len: usize, io: &mut UserIo<'_, '_>) -> Result<usize>;

    /// Copies between byte `offset` of the memory and the kernel buffer `buf` (into the memory
    /// when `write`), as far as the memory goes; the bytes copied. For debuggers
    /// (`/proc/PID/mem`, ptrace), through the VMA's `access`.
    fn copy_kernel(&self, offset: usize, buf: &mut [u8], write: bool) -> Result<usize>;
}

impl Owner {
    /// Whether the open file `file_key` may use (list, map, free) a block so owned.
    fn lets_use(self, file_key: u64) -> bool {
        match self {
            Owner::File(key) => key == file_key,
            Owner::Module | Owner::Device => true,
        }
    }
}

/// One block of CMA pages or device memory.
#[pin_data]
pub(crate) struct Block {
    id: u32,
    strategy: Strategy,
    owner: Owner,
    /// The thread group that allocated it; `None` for device memory.
    owner_pid: Option<OwnerPid>,
    backing: Backing,
    /// Live VMAs that map this block (kept by the vm_ops `open`/`close` glue).
    map_count: Atomic<u32>,
    /// Set while one FREE or UNMAP_FREE is killing the block's id (`ioctl::FreeClaim`), so
    /// that no other can: UNMAP_FREE unmaps before it unpublishes, and must not find the id
    /// gone afterwards.
    freeing: Atomic<bool>,
    /// The VMA that ALLOC_MAP made, while it lives (`alloc_map` owns it).
    #[pin]
    alloc_map: alloc_map::Record,
    #[pin]
    links: ListLinks,
}

kernel::list::impl_list_arc_safe! {
    impl ListArcSafe<0> for Block { untracked; }
}
kernel::list::impl_list_item! {
    impl ListItem<0> for Block { using ListLinks { self.links }; }
}

impl Block {
    /// Wraps freshly allocated memory in a block that no list holds yet.
    pub(crate) fn new(
        id: u32,
        strategy: Strategy,
        owner: Owner,
        owner_pid: Option<OwnerPid>,
        backing: Backing,
    ) -> Result<ListArc<Self>> {
        ListArc::pin_init(
            try_pin_init!(Self {
                id,
                strategy,
                owner,
                owner_pid,
                backing,
                map_count: Atomic::new(0),
                freeing: Atomic::new(false),
                alloc_map <- alloc_map::Record::new(),
                links <- ListLinks::new(),
            }),
            GFP_KERNEL,
        )
    }

    pub(crate) fn id(&self) -> u32 {
        self.id
    }

    pub(crate) fn strategy(&self) -> Strategy {
        self.strategy
    }

    pub(crate) fn owner(&self) -> Owner {
        self.owner
    }

    /// A short name of the owner, for debugfs and fdinfo.
    pub(crate) fn owner_name(&self) -> &'static str {
        match self.owner {
            Owner::File(_) => "file",
            Owner::Module => "module",
            Owner::Device => "device",
        }
    }

    /// The allocating process's id as the caller's PID namespace sees it: 0 for device
    /// memory, and when that process is not visible from the caller's namespace.
    pub(crate) fn owner_tgid(&self) -> i32 {
        self.owner_pid
            .as_ref()
            .map_or(0, OwnerPid::nr_seen_by_current)
    }

    /// Where ALLOC_MAP's own mapping of the block is, while it lives.
    pub(crate) fn alloc_map(&self) -> &alloc_map::Record {
        &self.alloc_map
    }

    pub(crate) fn backing(&self) -> &Backing {
        &self.backing
    }

    /// The device memory behind this block, if it is a BAR.
    pub(crate) fn bar(&self) -> Option<&BarMemory> {
        match &self.backing {
            Backing::Bar(bar) => Some(bar),
            Backing::Cma(_) => None,
        }
    }

    fn memory(&self) -> &dyn BlockMemory {
        match &self.backing {
            Backing::Cma(pages) => pages,
            Backing::Bar(bar) => &**bar,
        }
    }

    /// The number of pages.
    pub(crate) fn page_count(&self) -> usize {
        self.memory().page_count()
    }

    /// Copies between byte `offset` of the block and `buf` (see [`BlockMemory::copy_kernel`]).
    pub(crate) fn copy_kernel(&self, offset: usize, buf: &mut [u8], write: bool) -> Result<usize> {
        self.memory().copy_kernel(offset, buf, write)
    }

    /// The PFN of the first page.
    pub(crate) fn first_pfn(&self) -> usize {
        self.memory().first_pfn()
    }

    /// Copies up to `len` bytes between byte `offset` of the block and the user
    /// ([`BlockMemory::copy_user`]).
    pub(crate) fn copy_user(
        &self,
        offset: usize,
        len: usize,
        io: &mut UserIo<'_, '_>,
    ) -> Result<usize> {
        self.memory().copy_user(offset, len, io)
    }

    fn phys_addr(&self) -> u64 {
        (self.first_pfn() as u64) << PAGE_SHIFT
    }

    /// The block's size in bytes.
    pub(crate) fn size(&self) -> u64 {
        (self.page_count() as u64) << PAGE_SHIFT
    }

    /// The mmap offset that selects the block.
    pub(crate) fn offset(&self) -> u64 {
        abi::offset_of_id(self.id)
    }

    /// The mmap page offset of the block's first page.
    pub(crate) fn first_pgoff(&self) -> u64 {
        self.offset() >> PAGE_SHIFT
    }

    /// The address alignment that lets its own mapping use the largest entries the block's
    /// strategy and physical alignment allow.
    pub(crate) fn map_alignment(&self) -> usize {
        let huge = PAGE_SIZE << HUGE_ORDER;
        if self.strategy == Strategy::Huge
            && self.size() >= huge as u64
            && self.first_pfn() % (huge / PAGE_SIZE) == 0
        {
            huge
        } else {
            PAGE_SIZE
        }
    }

    /// The page of this block that mmap page offset `pgoff` (of any view) selects.
    pub(crate) fn page_index(&self, pgoff: u64) -> Option<usize> {
        let (id, _view, inner) = abi::view_of_offset(pgoff.checked_mul(PAGE_SIZE as u64)?);
        let index = usize::try_from(inner >> PAGE_SHIFT).ok()?;
        (id == self.id && index < self.page_count()).then_some(index)
    }

    /// Whether the open file `file_key` may use this block.
    pub(crate) fn visible_to(&self, file_key: u64) -> bool {
        self.owner.lets_use(file_key)
    }

    /// Claims the right to kill the block's id: `ENOENT` if another FREE or UNMAP_FREE holds
    /// it, as for the freed block it is about to be.
    pub(crate) fn claim_free(&self) -> Result {
        if self.freeing.xchg(true, Full) {
            return Err(ENOENT);
        }
        Ok(())
    }

    /// Gives back a claim that did not end in the block's death.
    pub(crate) fn release_free_claim(&self) {
        self.freeing.store(false, Release);
    }

    pub(crate) fn map_count(&self) -> u32 {
        self.map_count.load(Relaxed)
    }

    /// Called for every new VMA that maps the block.
    pub(crate) fn mapped(&self) {
        self.map_count.add(1, Relaxed);
    }

    /// Called when a VMA that mapped the block goes away.
    pub(crate) fn unmapped(&self) {
        self.map_count.fetch_sub(1, Relaxed);
    }

    /// The ABI description; `phys_addr` only when `show_phys` (CAP_SYS_ADMIN). Only callers
    /// the block is visible to get here, so a file-owned block is always the caller's.
    pub(crate) fn info(&self, show_phys: bool) -> abi::BlockInfo {
        abi::BlockInfo {
            id: self.id,
            flags: match self.owner {
                Owner::File(_) => 0,
                Owner::Module => abi::ALLOC_PERSIST,
                Owner::Device => abi::INFO_DEVICE_MEMORY,
            },
            size: self.size(),
            offset: self.offset(),
            phys_addr: if show_phys { self.phys_addr() } else { 0 },
            strategy: self.strategy.to_abi(),
            map_count: self.map_count(),
            owner: match self.owner {
                Owner::File(_) => abi::OWNER_THIS_FILE,
                Owner::Module => abi::OWNER_MODULE,
                Owner::Device => abi::OWNER_DEVICE,
            },
            owner_tgid: self.owner_tgid(),
            dma_mappings: 0,
            pad0: 0,
            reserved: 0,
        }
    }
}

#[kunit_tests(cmamap_block)]
mod tests {
    use super::*;

    #[test]
    fn file_blocks_are_private_to_their_file() {
        assert!(Owner::File(7).lets_use(7));
        assert!(!Owner::File(7).lets_use(8));
        assert!(!Owner::File(7).lets_use(0));
    }

    #[test]
    fn module_and_device_blocks_are_shared() {
        assert!(Owner::Module.lets_use(1));
        assert!(Owner::Module.lets_use(u64::MAX));
        assert!(Owner::Device.lets_use(1));
    }
}
