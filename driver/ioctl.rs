// SPDX-License-Identifier: GPL-2.0

//! The ioctls: a table from command to handler, the handlers of ALLOC, FREE, INFO, LIST and
//! STAT, and the steps that ALLOC_MAP and UNMAP_FREE (`mapping::alloc_map`) share with them.
//! Each handler decodes its argument, validates every field, acts, and writes its answer
//! back; errors become errnos only at `file::OpenFile::ioctl`. The errnos are listed per
//! ioctl in `driver/uapi/cmamap.h`.

use crate::{
    abi, caller, dma, dmabuf,
    file::OpenFile,
    mapping::{alloc_map, offsets, strategy::Strategy},
    memory::{
        block::{Backing, Block, BlockMemory, Owner},
        charge::{self, Charge},
        cma::{CmaArea, CmaPages},
        PAGE_SHIFT, PAGE_SIZE,
    },
    params,
    registry::{self, IdLease},
};
use kernel::{
    fs::File,
    list::ListArc,
    prelude::*,
    uaccess::{UserPtr, UserSlice},
};

/// One ioctl call: the open file, its `struct file`, and the user argument.
pub(crate) struct Call<'a> {
    pub(crate) me: &'a OpenFile,
    pub(crate) file: &'a File,
    arg: UserPtr,
}

impl Call<'_> {
    /// The user argument, as one `T`.
    pub(crate) fn arg<T>(&self) -> UserSlice {
        UserSlice::new(self.arg, core::mem::size_of::<T>())
    }
}

type Handler = fn(&Call<'_>) -> Result;

/// Every ioctl and its handler.
const HANDLERS: &[(u32, Handler)] = &[
    (abi::IOC_ALLOC, alloc),
    (abi::IOC_FREE, free),
    (abi::IOC_INFO, info),
    (abi::IOC_LIST, list),
    (abi::IOC_ALLOC_MAP, alloc_map::alloc_map),
    (abi::IOC_UNMAP_FREE, alloc_map::unmap_free),
    (abi::IOC_STAT, stat),
    (abi::IOC_DMA_MAP, dma::map),
    (abi::IOC_DMA_UNMAP, dma::unmap),
    (abi::IOC_SYNC, dma::sync),
    (abi::IOC_DMA_LIST, dma::list),
    (abi::IOC_EXPORT, dmabuf::export),
];

/// Runs the handler of `cmd`. Unknown commands give `ENOTTY`.
pub(crate) fn dispatch(me: &OpenFile, file: &File, cmd: u32, arg: usize) -> Result<isize> {
    let (_, handler) = HANDLERS
        .iter()
        .find(|(known, _)| *known == cmd)
        .ok_or(ENOTTY)?;
    handler(&Call {
        me,
        file,
        arg: UserPtr::from_addr(arg),
    })?;
    Ok(0)
}

/// A block that ALLOC or ALLOC_MAP made and has not published yet: nobody can find it by id.
pub(crate) struct NewBlock {
    block: ListArc<Block>,
    lease: IdLease,
}

impl NewBlock {
    pub(crate) fn block(&self) -> &ListArc<Block> {
        &self.block
    }

    /// Fills in the answer of ALLOC and ALLOC_MAP.
    pub(crate) fn describe(&self, args: &mut abi::AllocArgs) {
        args.size = self.block.size();
        args.strategy = self.block.strategy().to_abi();
        args.id = self.block.id();
        args.offset = self.block.offset();
    }

    /// Makes the block visible by its id; call once userspace has its handle.
    pub(crate) fn publish(self) {
        registry::publish(self.block, self.lease);
    }

    /// Drops the block after a failed call. Its id is handed out again unless a VMA that
    /// survived (another thread forked meanwhile) still maps the block under it.
    pub(crate) fn abandon(self) {
        if self.block.map_count() != 0 {
            self.lease.retire();
        }
    }
}

/// The step ALLOC and ALLOC_MAP share: validates `args` (but `prot`, which each checks
/// itself), charges the limits and allocates a zeroed block owned by the file, or by the
/// module with `PERSIST`.
pub(crate) fn allocate(me: &OpenFile, args: &abi::AllocArgs) -> Result<NewBlock> {
    if args.addr != 0 || args.pad0 != 0 || args.reserved != 0 {
        return Err(EINVAL);
    }
    let target = match args.flags & abi::ALLOC_FOR_DEVICE {
        0 if args.device != 0 => return Err(EINVAL),
        0 => None,
        _ if args.device == 0 => return Err(EINVAL),
        _ => Some(dma::AllocTarget::from_user(args.device)?),
    };
    if args.flags & !abi::ALLOC_FLAGS_ALL != 0 || args.align_order > abi::MAX_ALIGN_ORDER {
        return Err(EINVAL);
    }
    let pages = offsets::pages_for_size(args.size)?;
    let strategy = Strategy::from_abi(args.strategy, params::default_strategy())?;
    let persist = args.flags & abi::ALLOC_PERSIST != 0;
    if persist && !caller::is_admin() {
        return Err(EPERM);
    }
    let (file_counter, owner) = if persist {
        (None, Owner::Module)
    } else {
        (Some(me.counter()), Owner::File(me.key()))
    };
    let charge = Charge::new(
        file_counter,
        offsets::bytes_of_pages(pages)?,
        params::max_bytes_per_file(),
        params::max_bytes_total(),
    )?;
    let align_order = strategy.align_order(pages, args.align_order);
    let area = match &target {
        Some(target) => target.cma_area()?,
        None => CmaArea::default_area()?,
    };
    let memory = CmaPages::alloc(pages, align_order, charge, area).inspect_err(|e| {
        if caller::may_log() {
            pr_info!("CMA allocation of {} pages failed: {:?}\n", pages, e);
        }
    })?;
    if let Some(target) = &target {
        // Freed on the way out if the device cannot reach it.
        target.check_reach(
            (memory.first_pfn() as u64) << PAGE_SHIFT,
            offsets::bytes_of_pages(pages)? as u64,
        )?;
    }
    let lease = registry::lease_id()?;
    let tgid = kernel::current!().tgid();
    let block = Block::new(lease.id(), strategy, owner, tgid, Backing::Cma(memory))?;
    Ok(NewBlock { block, lease })
}

/// ALLOC: allocates a block that the caller maps itself.
fn alloc(call: &Call<'_>) -> Result {
    let (mut reader, mut writer) = call.arg::<abi::AllocArgs>().reader_writer();
    let mut args: abi::AllocArgs = reader.read()?;
    if args.prot != 0 {
        return Err(EINVAL);
    }
    let new = allocate(call.me, &args)?;
    new.describe(&mut args);
    writer.write(&args)?;
    new.publish();
    Ok(())
}

/// Reads the argument of FREE and UNMAP_FREE and checks its padding.
pub(crate) fn read_free_args(call: &Call<'_>) -> Result<abi::FreeArgs> {
    let args: abi::FreeArgs = call.arg::<abi::FreeArgs>().reader().read()?;
    if args.pad0 != 0 || args.reserved != [0; 2] {
        return Err(EINVAL);
    }
    Ok(args)
}

/// Whether the caller may free block `id`: a freed block is `ENOENT`, device memory belongs
/// to its device and goes only when it unbinds, and a `PERSIST` block, which only
/// CAP_SYS_ADMIN can make, only CAP_SYS_ADMIN can free (`EPERM`).
pub(crate) fn may_free(me: &OpenFile, id: u32) -> Result {
    match registry::lookup(id, me.key())?.owner() {
        Owner::Device => Err(EPERM),
        Owner::Module if !caller::is_admin() => Err(EPERM),
        Owner::Module | Owner::File(_) => Ok(()),
    }
}

/// Kills the id of block `id`. Still mapped, the block keeps its pages through the VMAs'
/// references until the last munmap.
pub(crate) fn unpublish(me: &OpenFile, id: u32) -> Result {
    drop(registry::unpublish(id, me.key())?);
    Ok(())
}

/// FREE: frees a block by id.
fn free(call: &Call<'_>) -> Result {
    let args = read_free_args(call)?;
    if args.addr != 0 {
        return Err(EINVAL);
    }
    may_free(call.me, args.id)?;
    unpublish(call.me, args.id)
}

fn info(call: &Call<'_>) -> Result {
    let (mut reader, mut writer) = call.arg::<abi::BlockInfo>().reader_writer();
    let args: abi::BlockInfo = reader.read()?;
    if args.pad0 != 0 || args.reserved != 0 {
        return Err(EINVAL);
    }
    let block = registry::lookup(args.id, call.me.key())?;
    let mut info = block.info(caller::sees_phys());
    info.dma_mappings = dma::count_of(info.id);
    writer.write(&info)
}

fn list(call: &Call<'_>) -> Result {
    let (mut reader, mut writer) = call.arg::<abi::ListArgs>().reader_writer();
    let mut args: abi::ListArgs = reader.read()?;
    if args.reserved != [0; 2] {
        return Err(EINVAL);
    }
    let show_phys = caller::sees_phys();
    let key = call.me.key();
    // Only what the caller can take is collected, into memory allocated outside the lock
    // (kvmalloc: large lists come from vmalloc instead of a high-order kmalloc that WARNs),
    // then copied out after it: a user copy may fault into mmap paths.
    let mut want = 0;
    let (infos, total) = loop {
        let mut infos = KVVec::with_capacity(want, GFP_KERNEL)?;
        let mut total = 0usize;
        registry::for_each_visible(key, |block| {
            total += 1;
            let _ = infos.push_within_capacity(block.info(show_phys));
        });
        let fits = total.min(args.capacity as usize);
        // Blocks may have come since the capacity was chosen: try again with room for them.
        if infos.len() >= fits {
            break (infos, total);
        }
        want = fits;
    };
    let mut infos = infos;
    // After the registry's lock: the device mappings have their own (lock 2).
    for info in infos.iter_mut() {
        info.dma_mappings = dma::count_of(info.id);
    }
    args.count = u32::try_from(total).map_err(|_| EOVERFLOW)?;
    let shown = infos.len();
    if shown > 0 {
        let entries = UserPtr::from_addr(usize::try_from(args.entries).map_err(|_| EFAULT)?);
        let mut out =
            UserSlice::new(entries, shown * core::mem::size_of::<abi::BlockInfo>()).writer();
        for info in &infos[..shown] {
            out.write(info)?;
        }
    }
    writer.write(&args)
}

fn stat(call: &Call<'_>) -> Result {
    let (mut reader, mut writer) = call.arg::<abi::StatArgs>().reader_writer();
    let args: abi::StatArgs = reader.read()?;
    if args.reserved != [0; 2] {
        return Err(EINVAL);
    }
    let counter = call.me.counter();
    writer.write(&abi::StatArgs {
        abi_version: abi::ABI_VERSION,
        default_strategy: params::default_strategy().to_abi(),
        page_size: PAGE_SIZE as u64,
        max_bytes_per_file: params::max_bytes_per_file(),
        max_bytes_total: params::max_bytes_total(),
        bytes_total: charge::TOTAL.bytes(),
        bytes_file: counter.bytes(),
        blocks_total: charge::TOTAL.blocks(),
        blocks_file: counter.blocks(),
        reserved: [0; 2],
    })
}
