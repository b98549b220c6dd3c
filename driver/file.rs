// SPDX-License-Identifier: GPL-2.0

//! An open file of `/dev/cmamap`: the owner of the blocks it allocates.
//!
//! Lock order: `OpenFile::alloc_map`, then the caller's mmap lock, then `OpenFile::pending`;
//! `pending` is never held with `registry::BLOCKS`.

use crate::{
    block::{Backing, Block, Owner},
    charge::Counter,
    dma, ioctl, offsets, registry, rmap,
    strategy::Strategy,
    vma,
};
use kernel::{
    fs::{File, Kiocb},
    iov::{IovIterDest, IovIterSource},
    miscdevice::{MiscDevice, MiscDeviceRegistration},
    mm::virt::{flags, VmaNew},
    new_mutex,
    prelude::*,
    seq_file::SeqFile,
    seq_print,
    sync::{
        atomic::{ordering::Relaxed, Atomic},
        Arc, Mutex,
    },
};

/// Source of open-file keys; keys are never reused, so a block cannot change hands.
static NEXT_FILE_KEY: Atomic<u64> = Atomic::new(1);

/// The block that ALLOC_MAP is mapping before it is published, and the task doing it: only
/// that task's `mmap` may find it, so no other thread reaches an unpublished block.
struct PendingMap {
    block: Arc<Block>,
    /// An identity only, never dereferenced.
    task: usize,
}

/// The calling task's identity, to compare with [`PendingMap::task`].
fn current_task() -> usize {
    kernel::current!().as_ptr() as usize
}

/// Per-open-file state.
#[pin_data]
pub(crate) struct OpenFile {
    key: u64,
    counter: Arc<Counter>,
    /// Held across one ALLOC_MAP's mapping, so that concurrent ones on the file take turns
    /// with the one `pending` slot.
    #[pin]
    alloc_map: Mutex<()>,
    #[pin]
    pending: Mutex<Option<PendingMap>>,
}

impl OpenFile {
    pub(crate) fn key(&self) -> u64 {
        self.key
    }

    pub(crate) fn counter(&self) -> Arc<Counter> {
        self.counter.clone()
    }

    /// Runs `map` (which mmaps `block` into the calling task) while the file's `mmap` lets
    /// this task, and only it, find the unpublished `block`.
    pub(crate) fn map_unpublished<T>(&self, block: Arc<Block>, map: impl FnOnce() -> T) -> T {
        let _turn = self.alloc_map.lock();
        *self.pending.lock() = Some(PendingMap {
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
    fn pending_for_caller(&self, id: u32) -> Option<Arc<Block>> {
        self.pending
            .lock()
            .as_ref()
            .filter(|p| p.block.id() == id && p.task == current_task())
            .map(|p| p.block.clone())
    }

    /// The block with `id` that this file may use: published, or being mapped by the caller's
    /// ALLOC_MAP.
    fn find_block(&self, id: u32) -> Result<Arc<Block>> {
        match self.pending_for_caller(id) {
            Some(block) => Ok(block),
            None => registry::lookup(id, self.key),
        }
    }

    fn mmap_block(&self, vma: &VmaNew) -> Result {
        // MAP_PRIVATE would make COW copies of CMA pages, which PFN maps cannot do.
        if vma.flags() & flags::MAYSHARE == 0 {
            return Err(EINVAL);
        }
        let window = offsets::map_window(vma::pgoff(vma), vma.end() - vma.start())?;
        let pending = self.pending_for_caller(window.id);
        let from_alloc_map = pending.is_some();
        let block = match pending {
            Some(block) => block,
            None => registry::lookup(window.id, self.key).map_err(|_| EINVAL)?,
        };
        window.check_inside(block.page_count())?;
        if block.bar().is_some() {
            let (strategy, cache) = Strategy::for_device_view(window.view)?;
            return vma::install_bar(vma, block, strategy, cache, window.first_page);
        }
        let strategy = Strategy::from_abi(window.view, block.strategy().to_abi())?;
        if from_alloc_map {
            // Under the mmap lock, like the `close` that forgets it: no window in between.
            block.set_alloc_map(vma.mm().as_raw() as usize, vma.start());
        }
        vma::install(vma, block, strategy, window.first_page)
    }
}

#[vtable]
impl MiscDevice for OpenFile {
    type Ptr = Pin<KBox<Self>>;

    fn open(file: &File, _misc: &MiscDeviceRegistration<Self>) -> Result<Self::Ptr> {
        let counter = Arc::new(Counter::new(), GFP_KERNEL)?;
        // Before any mmap: unbinding a device zaps its mappings through this address_space.
        rmap::adopt(file);
        KBox::try_pin_init(
            try_pin_init!(Self {
                key: NEXT_FILE_KEY.fetch_add(1, Relaxed),
                counter,
                alloc_map <- new_mutex!((), "OpenFile::alloc_map"),
                pending <- new_mutex!(None, "OpenFile::pending"),
            }),
            GFP_KERNEL,
        )
    }

    fn release(me: Self::Ptr, _file: &File) {
        // Mapped blocks stay alive through their VMAs; the rest go back to CMA now.
        let key = me.key;
        dma::file_released(key);
        registry::unpublish_where(|block| block.owner() == Owner::File(key));
    }

    fn mmap(me: Pin<&Self>, _file: &File, vma: &VmaNew) -> Result {
        me.mmap_block(vma)
    }

    fn ioctl(me: Pin<&Self>, file: &File, cmd: u32, arg: usize) -> Result<isize> {
        ioctl::dispatch(&me, file, cmd, arg)
    }

    fn read_iter(mut kiocb: Kiocb<'_, Self::Ptr>, iov: &mut IovIterDest<'_>) -> Result<usize> {
        let (id, inner) = offsets::io_position(*kiocb.ki_pos_mut())?;
        let block = kiocb.file().find_block(id).map_err(|_| EINVAL)?;
        let wanted = iov.len();
        let copied = match block.backing() {
            Backing::Cma(pages) => pages.copy_to_user(inner, wanted, iov),
            Backing::Bar(bar) => bar.copy_to_user(inner, wanted, iov)?,
        };
        if copied == 0 && wanted > 0 && (inner as u64) < block.size() {
            return Err(EFAULT);
        }
        *kiocb.ki_pos_mut() += copied as i64;
        Ok(copied)
    }

    fn write_iter(mut kiocb: Kiocb<'_, Self::Ptr>, iov: &mut IovIterSource<'_>) -> Result<usize> {
        let (id, inner) = offsets::io_position(*kiocb.ki_pos_mut())?;
        let block = kiocb.file().find_block(id).map_err(|_| EINVAL)?;
        let wanted = iov.len();
        if wanted > 0 && inner as u64 >= block.size() {
            return Err(ENOSPC);
        }
        let copied = match block.backing() {
            Backing::Cma(pages) => pages.copy_from_user(inner, wanted, iov),
            Backing::Bar(bar) => bar.copy_from_user(inner, wanted, iov)?,
        };
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
        registry::for_each_visible(me.key, |block| {
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
