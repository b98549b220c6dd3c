//! Argument validation: every malformed request fails with the documented errno and changes
//! nothing.

use std::mem::size_of;
use std::os::fd::AsFd;

use cmamap::{abi, raw, AllocRequest, Errno, Prot, Strategy};
use cmamap_testkit::probe;

use crate::check::{expect_alloc_refused, expect_errno, pass, skip, Failure, Outcome, TestResult};
use crate::ctx::{is_cma_shortage, Ctx};
use crate::module::{self, Params, Restore};

/// A named change that makes valid arguments invalid.
pub type Spoiler<T> = (&'static str, fn(&mut T));

/// A valid one-page request, for tests that spoil one field at a time.
fn valid_args(ctx: &Ctx) -> abi::AllocArgs {
    AllocRequest::new(ctx.pages(1))
        .strategy(Strategy::Remap)
        .to_args()
}

pub fn unknown_ioctl_enotty(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let magic = abi::IOC_MAGIC;
    let alloc_size = size_of::<abi::AllocArgs>();
    let requests: [(&str, u32); 6] = [
        (
            "_IO(magic, 0x7f)",
            nix::request_code_none!(magic, 0x7f) as u32,
        ),
        (
            "the number after the last ioctl",
            nix::request_code_readwrite!(magic, 0x07, alloc_size) as u32,
        ),
        (
            "ALLOC's number with a wrong size",
            nix::request_code_readwrite!(magic, 0x00, 8) as u32,
        ),
        (
            "ALLOC's number with _IOR instead of _IOWR",
            nix::request_code_read!(magic, 0x00, alloc_size) as u32,
        ),
        (
            "FREE's number with ALLOC's size",
            nix::request_code_write!(magic, 0x01, alloc_size) as u32,
        ),
        (
            "ALLOC's layout under another magic",
            nix::request_code_readwrite!(magic - 1, 0x00, alloc_size) as u32,
        ),
    ];
    let mut buf = [0u8; 256];
    for (what, request) in requests {
        buf.fill(0);
        expect_errno(
            probe::ioctl_with_buffer(dev.as_fd(), request, &mut buf),
            Errno::ENOTTY,
            &format!("{what} ({request:#x})"),
        )?;
    }
    ensure_eq!(dev.stat()?.blocks_file, 0, "blocks charged to the file");
    pass()
}

pub fn alloc_reserved_nonzero_einval(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let spoilers: [Spoiler<abi::AllocArgs>; 7] = [
        ("reserved = 1", |a| a.reserved = 1),
        ("reserved = 1 << 63", |a| a.reserved = 1 << 63),
        ("device without ALLOC_FOR_DEVICE", |a| a.device = 0x1000),
        ("ALLOC_FOR_DEVICE without a device", |a| {
            a.flags |= abi::ALLOC_FOR_DEVICE
        }),
        ("pad0 = 1", |a| a.pad0 = 1),
        ("addr = 0x1000", |a| a.addr = 0x1000),
        ("prot = PROT_READ on ALLOC", |a| {
            a.prot = libc::PROT_READ as u32
        }),
    ];
    for (what, spoil) in spoilers {
        let mut args = valid_args(ctx);
        spoil(&mut args);
        expect_alloc_refused(dev.alloc_raw(args), Errno::EINVAL, what)?;
    }
    ensure_eq!(dev.stat()?.blocks_file, 0, "blocks charged after refusals");
    // The unspoilt request works, so the refusals were about the spoilt fields.
    dev.alloc_raw(valid_args(ctx))?.free()?;
    pass()
}

pub fn free_reserved_nonzero_einval(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let block = dev.alloc(&AllocRequest::new(ctx.pages(1)))?;
    let spoilers: [Spoiler<abi::FreeArgs>; 4] = [
        ("pad0 = 1", |a| a.pad0 = 1),
        ("reserved[0] = 1", |a| a.reserved[0] = 1),
        ("reserved[1] = 1", |a| a.reserved[1] = 1),
        ("addr = 0x1000 on FREE", |a| a.addr = 0x1000),
    ];
    for (what, spoil) in spoilers {
        let mut args = abi::FreeArgs {
            id: block.id(),
            ..Default::default()
        };
        spoil(&mut args);
        expect_errno(dev.free_raw(&args), Errno::EINVAL, what)?;
        block.info().map_err(|e| {
            crate::check::Failure::new(format!("block gone after refused FREE ({what}): {e}"))
        })?;
    }
    block.free()?;
    pass()
}

pub fn info_list_stat_reserved_einval(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let block = dev.alloc(&AllocRequest::new(ctx.pages(1)))?;
    for word in 0..2 {
        let mut info = abi::BlockInfo {
            id: block.id(),
            ..Default::default()
        };
        let info_field = if word == 0 {
            info.pad0 = 1;
            "pad0"
        } else {
            info.reserved = 1;
            "reserved"
        };
        expect_errno(
            dev.info_raw(&mut info),
            Errno::EINVAL,
            &format!("INFO with {info_field} = 1"),
        )?;

        let mut list = abi::ListArgs::default();
        list.reserved[word] = 1;
        expect_errno(
            probe::list_count_with(dev.as_fd(), &mut list),
            Errno::EINVAL,
            &format!("LIST with reserved[{word}] = 1"),
        )?;

        let mut stat = abi::StatArgs::default();
        stat.reserved[word] = 1;
        expect_errno(
            dev.stat_raw(&mut stat),
            Errno::EINVAL,
            &format!("STAT with reserved[{word}] = 1"),
        )?;
    }
    block.free()?;
    pass()
}

pub fn alloc_unknown_flags_einval(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    for flags in [1u32 << 2, 1 << 31, !abi::ALLOC_FLAGS_ALL, u32::MAX] {
        let mut args = valid_args(ctx);
        args.flags = flags;
        expect_alloc_refused(
            dev.alloc_raw(args),
            Errno::EINVAL,
            &format!("flags {flags:#x}"),
        )?;
    }
    pass()
}

pub fn alloc_bad_strategy_einval(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    for raw_strategy in [abi::STRATEGY_HUGE + 1, 0x100, u32::MAX] {
        let request = AllocRequest::new(ctx.pages(1)).strategy(Strategy::Unknown(raw_strategy));
        expect_alloc_refused(
            dev.alloc(&request),
            Errno::EINVAL,
            &format!("strategy {raw_strategy}"),
        )?;
    }
    pass()
}

pub fn alloc_align_order_too_big_einval(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    for order in [abi::MAX_ALIGN_ORDER + 1, 31, 32, 64, u32::MAX] {
        let request = AllocRequest::new(ctx.pages(1)).align_order(order);
        expect_alloc_refused(
            dev.alloc(&request),
            Errno::EINVAL,
            &format!("align_order {order}"),
        )?;
    }
    pass()
}

pub fn alloc_size_zero_einval(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    for strategy in Strategy::CONCRETE {
        expect_alloc_refused(
            dev.alloc(&AllocRequest::new(0).strategy(strategy)),
            Errno::EINVAL,
            &format!("size 0, {strategy}"),
        )?;
    }
    let mut args = valid_args(ctx);
    args.size = 0;
    args.prot = (libc::PROT_READ | libc::PROT_WRITE) as u32;
    expect_errno(
        dev.alloc_map_raw(args),
        Errno::EINVAL,
        "ALLOC_MAP of size 0",
    )?;
    pass()
}

pub fn alloc_size_overflow_einval(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let page = ctx.page as u64;
    // Rounding each of these up to a page boundary passes 2^64.
    for size in [u64::MAX, u64::MAX - 1, u64::MAX - page + 2] {
        expect_alloc_refused(
            dev.alloc(&AllocRequest::new(size)),
            Errno::EINVAL,
            &format!("size {size:#x}"),
        )?;
    }
    pass()
}

pub fn alloc_huge_size_enospc(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let stat = dev.stat()?;
    let page = ctx.page as u64;
    let limit = stat.max_bytes_per_file.min(stat.max_bytes_total);
    // The largest page-aligned size: no rounding overflow, just far over any limit.
    let mut sizes = vec![!(page - 1)];
    if let Some(just_over) = limit.checked_add(page) {
        sizes.push(just_over);
    }
    if 1 << 40 > limit {
        sizes.push(1 << 40);
    }
    for size in sizes {
        expect_alloc_refused(
            dev.alloc(&AllocRequest::new(size)),
            Errno::ENOSPC,
            &format!("size {size:#x} (limit {limit:#x})"),
        )?;
    }
    ensure_eq!(dev.stat()?.bytes_file, 0, "bytes charged after refusals");
    pass()
}

/// Every size in `sizes` is over `abi::MAX_BLOCK_SIZE`: ALLOC and ALLOC_MAP refuse it with
/// ENOSPC and charge nothing.
fn ensure_over_cap_refused(ctx: &Ctx, sizes: &[u64], limits: &str) -> Result<(), Failure> {
    let dev = ctx.open()?;
    for &size in sizes {
        for strategy in Strategy::CONCRETE {
            let what = format!("{strategy} block of {size:#x} bytes ({limits})");
            expect_alloc_refused(
                dev.alloc(&AllocRequest::new(size).strategy(strategy)),
                Errno::ENOSPC,
                &format!("ALLOC of a {what}"),
            )?;
            expect_errno(
                dev.alloc_map(&AllocRequest::new(size).strategy(strategy), Prot::ReadWrite),
                Errno::ENOSPC,
                &format!("ALLOC_MAP of a {what}"),
            )?;
        }
    }
    let stat = dev.stat()?;
    ensure_eq!(
        (stat.bytes_file, stat.blocks_file),
        (0, 0),
        "bytes and blocks charged after the refusals"
    );
    Ok(())
}

pub fn alloc_over_max_block_size_enospc(ctx: &Ctx) -> TestResult {
    let page = ctx.page as u64;
    let max = abi::MAX_BLOCK_SIZE;
    let sizes = [
        max + 1,
        max + page,
        2 * max,
        // A size whose pages would reach into the next block's mmap offsets.
        (1 << abi::OFFSET_SHIFT) + page,
    ];
    let params = Params::current(ctx)?;
    let limit = params.max_bytes_per_file.min(params.max_bytes_total);
    ensure_over_cap_refused(ctx, &sizes, &format!("limit {limit:#x}"))?;
    if limit >= max + page {
        // The limits do not hide the cap: exactly MAX_BLOCK_SIZE is not over it.
        return ensure_cap_admits_max(ctx).and_then(|()| pass());
    }
    // The module's limits are below the cap, so they alone could have refused. Reload the
    // module with limits far above it, so that only the cap can.
    if let Some(skipped) = module::cannot_reload(ctx) {
        return match skipped {
            Ok(Outcome::Skip(why)) => skip(format!(
                "sizes over MAX_BLOCK_SIZE gave ENOSPC, but the module's limit ({limit:#x}) is \
                 below MAX_BLOCK_SIZE ({max:#x}), which leaves the cap itself untested, and \
                 the module cannot be reloaded with higher limits: {why}"
            )),
            other => other,
        };
    }
    let restore = Restore::new(ctx, params);
    let high = Params {
        max_bytes_per_file: 1 << 40,
        max_bytes_total: 1 << 40,
        ..params
    };
    restore.reload_with(&high)?;
    ensure_over_cap_refused(ctx, &sizes, "limits raised to 1 TiB")?;
    ensure_cap_admits_max(ctx)?;
    restore.restore()?;
    pass()
}

/// With limits above `abi::MAX_BLOCK_SIZE`, a block of exactly that size passes the size
/// check: CMA refuses it (ENOMEM or EBUSY), or grants it and it is freed at once.
fn ensure_cap_admits_max(ctx: &Ctx) -> Result<(), Failure> {
    let dev = ctx.open()?;
    match dev.alloc(&AllocRequest::new(abi::MAX_BLOCK_SIZE)) {
        Ok(block) => block.free()?,
        Err(err) if is_cma_shortage(err.errno()) => {}
        Err(err) => fail!(
            "ALLOC of exactly MAX_BLOCK_SIZE ({:#x}) with limits above it: {err}, expected \
             success or a CMA shortage (ENOMEM, EBUSY)",
            abi::MAX_BLOCK_SIZE
        ),
    }
    Ok(())
}

pub fn per_file_limit_is_cumulative(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let stat = dev.stat()?;
    let limit = stat.max_bytes_per_file;
    let cma_free = ctx.cma_free_kib().unwrap_or(0) * 1024;
    let page = ctx.page as u64;
    // Fill the per-file limit with two blocks, then ask for one more page. CMA needs room for
    // the limit and some slack, since movable pages in the area must migrate out first.
    let slack = 16 << 20;
    if !limit.is_multiple_of(page)
        || limit > stat.max_bytes_total.saturating_sub(stat.bytes_total)
        || limit.saturating_add(slack) > cma_free
    {
        return skip(format!(
            "max_bytes_per_file {limit} does not fit comfortably in CMA ({cma_free} free) or \
             under max_bytes_total"
        ));
    }
    let half = (limit / 2) & !(page - 1);
    let mut blocks = Vec::new();
    for size in [half, limit - half] {
        if size == 0 {
            continue;
        }
        match dev.alloc(&AllocRequest::new(size)) {
            Ok(block) => blocks.push(block),
            Err(err) if is_cma_shortage(err.errno()) => {
                return skip(format!("CMA could not provide {size} bytes: {err}"));
            }
            Err(err) => fail!("allocating {size} of the {limit}-byte per-file limit: {err}"),
        }
    }
    ensure_eq!(dev.stat()?.bytes_file, limit, "bytes charged to the file");
    expect_alloc_refused(
        dev.alloc(&AllocRequest::new(ctx.pages(1))),
        Errno::ENOSPC,
        "one page over the per-file limit",
    )?;
    // Another file has its own allowance.
    let other = ctx.open()?;
    match other.alloc(&AllocRequest::new(ctx.pages(1))) {
        Ok(block) => block.free()?,
        Err(err)
            if err.errno() == Errno::ENOSPC
                && stat.bytes_total + limit + page > stat.max_bytes_total => {}
        Err(err) => fail!("one page through another file: {err}"),
    }
    drop(blocks);
    dev.alloc(&AllocRequest::new(ctx.pages(1)))?.free()?;
    pass()
}

pub fn alloc_unaligned_size_rounded_up(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let page = ctx.page as u64;
    for (asked, rounded) in [
        (1, page),
        (page - 1, page),
        (page + 1, 2 * page),
        (3 * page - 1, 3 * page),
    ] {
        let block = dev.alloc(&AllocRequest::new(asked))?;
        ensure_eq!(block.size(), rounded, "size returned for {asked} bytes");
        ensure_eq!(block.info()?.size, rounded, "INFO size for {asked} bytes");
        // The rounded tail is part of the block: it maps and reads.
        let tail = block.map_range(rounded - page, ctx.page, cmamap::Prot::Read)?;
        ensure!(
            tail.as_slice().iter().all(|&b| b == 0),
            "tail page of a {asked}-byte block is not zero"
        );
        drop(tail);
        let mut buf = [0xffu8; 1];
        ensure_eq!(
            block.pread(rounded - 1, &mut buf)?,
            1,
            "pread of the last byte"
        );
        block.free()?;
    }
    pass()
}

pub fn bad_pointer_efault(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    for request in [
        abi::IOC_ALLOC,
        abi::IOC_ALLOC_MAP,
        abi::IOC_FREE,
        abi::IOC_UNMAP_FREE,
        abi::IOC_INFO,
        abi::IOC_LIST,
        abi::IOC_STAT,
    ] {
        expect_errno(
            probe::ioctl_with_inaccessible_arg_probe(dev.as_fd(), request),
            Errno::EFAULT,
            &format!(
                "{} with an inaccessible argument",
                raw::request_name(request)
            ),
        )?;
    }
    // A valid LIST whose entries buffer is inaccessible: the driver has something to write.
    let block = dev.alloc(&AllocRequest::new(ctx.pages(1)))?;
    expect_errno(
        probe::list_into_inaccessible_probe(dev.as_fd(), 4),
        Errno::EFAULT,
        "LIST into an inaccessible entries buffer",
    )?;
    ensure_eq!(dev.stat()?.blocks_file, 1, "blocks charged to the file");
    block.free()?;
    pass()
}
