// SPDX-License-Identifier: GPL-2.0

//! An open file of `/dev/cmamap`: the owner of the blocks it allocates, and its `mmap`,
//! `pread`/`pwrite` and fdinfo.

use crate::{
    device_memory::rmap,
    dma, ioctl,
    mapping::{alloc_map, offsets, strategy::Strategy, vma},
    memory::{block::Block, charge::Counter, user_io::UserIo},
    registry::{self, FileBlocks},
};
use kernel::{
    fs::{File, Kiocb},
    iov::{IovIterDest, IovIterSource},
    miscdevice::{MiscDevice, MiscDeviceRegistration},
    mm::virt::{flags, VmaNew},
    prelude::*,
    seq_file::SeqFile,
    seq_print,
    sync::{
        atomic::{ordering::Relaxed, Atomic},
        Arc,
    },
};

/// Source of open-file keys; keys are never reused, so a block cannot change hands.
static NEXT_FILE_KEY: Atomic<u64> = Atomic::new(1);

/// Per-open-file state.
#[pin_data]
pub(crate) struct OpenFile {
    key: u64,
    counter: Arc<Counter>,
    /// The file's blocks by id, and its id space.
    blocks: Arc<FileBlocks>,
    #[pin]
    alloc_map: alloc_map::Slot,
}

impl OpenFile {
    pub(crate) fn key(&self) -> u64 {
        self.key
    }

    pub(crate) fn counter(&self) -> Arc<Counter> {
        self.counter.clone()
    }

    /// The file's own blocks, where its ids are looked up.
    pub(crate) fn blocks(&self) -> &Arc<FileBlocks> {
        &self.blocks
    }

    /// The file's ALLOC_MAP slot.
    pub(crate) fn alloc_map(&self) -> &alloc_map::Slot {
        &self.alloc_map
    }

    /// The block with `id` that this file may use: published, or being mapped by the caller's
    /// ALLOC_MAP.
    fn find_block(&self, id: u32) -> Result<Arc<Block>> {
        match self.alloc_map.pending_for_caller(id) {
            Some(block) => Ok(block),
            None => registry::lookup(id, &self.blocks),
        }
    }

    fn mmap_block(&self, vma: &VmaNew) -> Result {
        // MAP_PRIVATE would make COW copies of CMA pages, which PFN maps cannot do.
        if vma.flags() & flags::MAYSHARE == 0 {
            return Err(EINVAL);
        }
        let window = offsets::map_window(vma::pgoff(vma), vma.end() - vma.start())?;
        let pending = self.alloc_map.pending_for_caller(window.id);
        let from_alloc_map = pending.is_some();
        let block = match pending {
            Some(block) => block,
            None => registry::lookup(window.id, &self.blocks).map_err(|_| EINVAL)?,
        };
        window.check_inside(block.page_count())?;
        if block.bar().is_some() {
            let (strategy, cache) = Strategy::for_device_view(window.view)?;
            return vma::install_bar(vma, block, strategy, cache, window.first_page);
        }
        let strategy = Strategy::from_abi(window.view, block.strategy())?;
        if from_alloc_map {
            block.alloc_map().record(vma);
        }
        vma::install(vma, block, strategy, window.first_page)
    }

    /// `pread` and `pwrite` at `pos`: the block and the byte offset inside it.
    fn io_block(&self, pos: i64) -> Result<(Arc<Block>, usize)> {
        let (id, inner) = offsets::io_position(pos)?;
        let block = self.find_block(id).map_err(|_| EINVAL)?;
        Ok((block, inner))
    }
}

#[vtable]
impl MiscDevice for OpenFile {
    type Ptr = Pin<KBox<Self>>;

    fn open(file: &File, _misc: &MiscDeviceRegistration<Self>) -> Result<Self::Ptr> {
        let counter = Arc::new(Counter::new(), GFP_KERNEL)?;
        let blocks = FileBlocks::new()?;
        // Before any mmap: unbinding a device zaps its mappings through this address_space.
        rmap::adopt(file);
        KBox::try_pin_init(
            try_pin_init!(Self {
                key: NEXT_FILE_KEY.fetch_add(1, Relaxed),
                counter,
                blocks,
                alloc_map <- alloc_map::Slot::new(),
            }),
            GFP_KERNEL,
        )
    }

    fn release(me: Self::Ptr, _file: &File) {
        // Mapped blocks stay alive through their VMAs; the rest go back to CMA now. The work
        // follows the file's own blocks, whatever else lives.
        dma::file_released(me.key);
        registry::release_file(&me.blocks);
    }

    fn mmap(me: Pin<&Self>, _file: &File, vma: &VmaNew) -> Result {
        me.mmap_block(vma)
    }

    fn ioctl(me: Pin<&Self>, file: &File, cmd: u32, arg: usize) -> Result<isize> {
        ioctl::dispatch(&me, file, cmd, arg)
    }

    fn read_iter(mut kiocb: Kiocb<'_, Self::Ptr>, iov: &mut IovIterDest<'_>) -> Result<usize> {
        let (block, inner) = kiocb.file().io_block(*kiocb.ki_pos_mut())?;
        let mut io = UserIo::Read(iov);
        let wanted = io.len();
        let copied = block.copy_user(inner, wanted, &mut io)?;
        if copied == 0 && wanted > 0 && (inner as u64) < block.size() {
            return Err(EFAULT);
        }
        *kiocb.ki_pos_mut() += copied as i64;
        Ok(copied)
    }

    fn write_iter(mut kiocb: Kiocb<'_, Self::Ptr>, iov: &mut IovIterSource<'_>) -> Result<usize> {
        let (block, inner) = kiocb.file().io_block(*kiocb.ki_pos_mut())?;
        let mut io = UserIo::Write(iov);
        let wanted = io.len();
        if wanted > 0 && inner as u64 >= block.size() {
            return Err(ENOSPC);
        }
        let copied = block.copy_user(inner, wanted, &mut io)?;
        if copied == 0 && wanted > 0 {
            return Err(EFAULT);
        }
        *kiocb.ki_pos_mut() += copied as i64;
        Ok(copied)
    }

    fn show_fdinfo(me: Pin<&Self>, m: &SeqFile, _file: &File) {
        seq_print!(m, "cmamap-file-key:\t{}\n", me.key);
        seq_print!(m, "cmamap-blocks:\t{}\n", me.counter.blocks());
        seq_print!(m, "cmamap-bytes:\t{}\n", me.counter.bytes());
        registry::for_each_visible(&me.blocks, |block| {
            seq_print!(
                m,
                "cmamap-block:\tid={} size={} strategy={} maps={} owner={}\n",
                block.id(),
                block.size(),
                block.strategy().name(),
                block.map_count(),
                block.owner_name()
            );
        });
        dma::show_of_file(m, me.key);
    }
}
