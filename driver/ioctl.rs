// SPDX-License-Identifier: GPL-2.0

//! The ioctl handlers. Each decodes its argument, validates every field, acts, and writes its
//! answer back; errors become errnos only at `file::OpenFile::ioctl`.

use crate::{
    abi,
    block::{Backing, Block, Owner},
    charge::{self, Charge},
    cma::CmaPages,
    dma,
    file::OpenFile,
    offsets, params, registry,
    strategy::Strategy,
    sys, vma,
};
use kernel::{
    fs::File,
    prelude::*,
    uaccess::{UserPtr, UserSlice},
};

const PROT_READ: u32 = 0x1;
const PROT_WRITE: u32 = 0x2;

/// Dispatches one ioctl. Unknown commands give `ENOTTY`.
pub(crate) fn dispatch(me: &OpenFile, file: &File, cmd: u32, arg: usize) -> Result<isize> {
    let user = UserPtr::from_addr(arg);
    match cmd {
        abi::IOC_ALLOC => alloc(me, user, None),
        abi::IOC_ALLOC_MAP => alloc(me, user, Some(file)),
        abi::IOC_FREE => free(me, user, false),
        abi::IOC_UNMAP_FREE => free(me, user, true),
        abi::IOC_INFO => info(me, user),
        abi::IOC_LIST => list(me, user),
        abi::IOC_STAT => stat(me, user),
        abi::IOC_DMA_MAP => dma::map(me.key(), user),
        abi::IOC_DMA_UNMAP => dma::unmap(me.key(), user),
        abi::IOC_SYNC => dma::sync(me.key(), user),
        abi::IOC_DMA_LIST => dma::list(me.key(), user),
        _ => Err(ENOTTY),
    }?;
    Ok(0)
}

fn user_slice<T>(user: UserPtr) -> UserSlice {
    UserSlice::new(user, core::mem::size_of::<T>())
}

/// A validated allocation request.
struct AllocRequest {
    pages: usize,
    align_order: u32,
    strategy: Strategy,
    persist: bool,
    prot: u32,
}

fn parse_alloc(args: &abi::AllocArgs, mapping: bool) -> Result<AllocRequest> {
    if args.addr != 0 || args.pad0 != 0 || args.reserved != [0; 2] {
        return Err(EINVAL);
    }
    if args.flags & !abi::ALLOC_FLAGS_ALL != 0 || args.align_order > abi::MAX_ALIGN_ORDER {
        return Err(EINVAL);
    }
    let prot_ok = if mapping {
        args.prot != 0 && args.prot & !(PROT_READ | PROT_WRITE) == 0
    } else {
        args.prot == 0
    };
    if !prot_ok {
        return Err(EINVAL);
    }
    Ok(AllocRequest {
        pages: offsets::pages_for_size(args.size)?,
        align_order: args.align_order,
        strategy: Strategy::from_abi(args.strategy, params::default_strategy())?,
        persist: args.flags & abi::ALLOC_PERSIST != 0,
        prot: args.prot,
    })
}

/// Allocates a block; with `map_through`, also maps it into the caller (ALLOC_MAP).
fn alloc(me: &OpenFile, user: UserPtr, map_through: Option<&File>) -> Result {
    let (mut reader, mut writer) = user_slice::<abi::AllocArgs>(user).reader_writer();
    let mut args: abi::AllocArgs = reader.read()?;
    let request = parse_alloc(&args, map_through.is_some())?;
    if request.persist && !sys::caller_is_admin() {
        return Err(EPERM);
    }
    let bytes = offsets::bytes_of_pages(request.pages)?;
    let (file_counter, owner) = if request.persist {
        (None, Owner::Module)
    } else {
        (Some(me.counter()), Owner::File(me.key()))
    };
    let charge = Charge::new(
        file_counter,
        bytes,
        params::max_bytes_per_file(),
        params::max_bytes_total(),
    )?;
    let align_order = request
        .strategy
        .align_order(request.pages, request.align_order);
    let pages = CmaPages::alloc(request.pages, align_order, charge).inspect_err(|e| {
        if sys::log_ratelimit_ok() {
            pr_info!(
                "CMA allocation of {} pages failed: {:?}\n",
                request.pages,
                e
            );
        }
    })?;
    let lease = registry::lease_id()?;
    let id = lease.id();
    let tgid = kernel::current!().tgid();
    let block = Block::new(id, request.strategy, owner, tgid, Backing::Cma(pages))?;

    args.size = block.size();
    args.strategy = block.strategy().to_abi();
    args.id = id;
    args.offset = block.offset();
    if let Some(file) = map_through {
        let mapped = me.map_unpublished(block.clone_arc(), || {
            vma::map_into_current(
                file,
                request.pages << crate::cma::PAGE_SHIFT,
                request.prot,
                block.offset(),
                block.map_alignment(),
            )
        });
        let written = mapped.and_then(|addr| {
            args.addr = addr as u64;
            writer.write(&args).inspect_err(|_| {
                // The VMA holds the only other reference; unmapping it frees the block.
                let _ = vma::unmap_from_current(addr, block.size() as usize);
            })
        });
        if let Err(e) = written {
            // A VMA that survived (another thread forked meanwhile) maps the block under
            // this id: it must stay dead.
            if block.map_count() != 0 {
                lease.retire();
            }
            return Err(e);
        }
    } else {
        writer.write(&args)?;
    }
    // Published only now that userspace has its handle.
    registry::publish(block, lease);
    Ok(())
}

fn free(me: &OpenFile, user: UserPtr, unmap: bool) -> Result {
    let args: abi::FreeArgs = user_slice::<abi::FreeArgs>(user).reader().read()?;
    if args.pad0 != 0 || args.reserved != [0; 2] || (args.addr != 0) != unmap {
        return Err(EINVAL);
    }
    // With UNMAP_FREE: the length of the ALLOC_MAP mapping to undo.
    let mut unmap_len = None;
    if unmap {
        let task = kernel::current!();
        let mm = task.mm().ok_or(EINVAL)?;
        let found = vma::mapping_at(mm, args.addr as usize).ok_or(EINVAL)?;
        // Only the whole-block mapping that ALLOC_MAP made is undone here; plain mmaps are
        // the caller's to munmap.
        let block = &found.block;
        let whole = found.len as u64 == block.size();
        if block.id() != args.id
            || !block.visible_to(me.key())
            || !whole
            || !block.is_alloc_map(mm.as_raw() as usize, args.addr as usize)
        {
            return Err(EINVAL);
        }
        unmap_len = Some(found.len);
    }
    // Checked before anything is unmapped, so that a refused call changes nothing: a freed
    // block is ENOENT, device memory belongs to its device and goes only when it unbinds, and
    // a `PERSIST` block, which only CAP_SYS_ADMIN can make, only CAP_SYS_ADMIN can free.
    match registry::lookup(args.id, me.key())?.owner() {
        Owner::Device => return Err(EPERM),
        Owner::Module if !sys::caller_is_admin() => return Err(EPERM),
        Owner::Module | Owner::File(_) => {}
    }
    if let Some(len) = unmap_len {
        vma::unmap_from_current(args.addr as usize, len)?;
    }
    let block = registry::unpublish(args.id, me.key())?;
    dma::block_freed(args.id);
    // Still mapped: the VMAs' references keep the pages until the last munmap.
    drop(block);
    Ok(())
}

fn info(me: &OpenFile, user: UserPtr) -> Result {
    let (mut reader, mut writer) = user_slice::<abi::BlockInfo>(user).reader_writer();
    let args: abi::BlockInfo = reader.read()?;
    if args.reserved != [0; 2] {
        return Err(EINVAL);
    }
    let block = registry::lookup(args.id, me.key())?;
    writer.write(&block.info(sys::caller_sees_phys()))
}

fn list(me: &OpenFile, user: UserPtr) -> Result {
    let (mut reader, mut writer) = user_slice::<abi::ListArgs>(user).reader_writer();
    let mut args: abi::ListArgs = reader.read()?;
    if args.reserved != [0; 2] {
        return Err(EINVAL);
    }
    let show_phys = sys::caller_sees_phys();
    // Collected under the lock, copied out after it: a user copy may fault into mmap paths.
    let mut infos = KVec::new();
    let mut result = Ok(());
    registry::for_each_visible(me.key(), |block| {
        if result.is_ok() {
            result = infos
                .push(block.info(show_phys), GFP_KERNEL)
                .map_err(Error::from);
        }
    });
    result?;
    args.count = u32::try_from(infos.len()).map_err(|_| EOVERFLOW)?;
    let shown = infos.len().min(args.capacity as usize);
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

fn stat(me: &OpenFile, user: UserPtr) -> Result {
    let (mut reader, mut writer) = user_slice::<abi::StatArgs>(user).reader_writer();
    let args: abi::StatArgs = reader.read()?;
    if args.reserved != [0; 2] {
        return Err(EINVAL);
    }
    let counter = me.counter();
    writer.write(&abi::StatArgs {
        abi_version: abi::ABI_VERSION,
        default_strategy: params::default_strategy(),
        page_size: crate::cma::PAGE_SIZE as u64,
        max_bytes_per_file: params::max_bytes_per_file(),
        max_bytes_total: params::max_bytes_total(),
        bytes_total: charge::TOTAL.bytes(),
        bytes_file: counter.bytes(),
        blocks_total: charge::TOTAL.blocks(),
        blocks_file: counter.blocks(),
        reserved: [0; 2],
    })
}
