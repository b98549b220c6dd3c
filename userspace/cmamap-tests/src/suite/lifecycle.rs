//! Allocation, description, listing, ownership and release of blocks.

use cmamap::{abi, AllocRequest, Errno, Info, Owner, Prot, Strategy};
use cmamap_testkit::pattern;

use crate::check::{expect_errno, pass, skip, Failure, TestResult};
use crate::cma::Level;
use crate::ctx::Ctx;

fn check_fresh_info(ctx: &Ctx, info: &Info, size: u64, strategy: Strategy) -> Result<(), Failure> {
    ensure_eq!(info.size, size, "INFO size of block {}", info.id);
    ensure_eq!(info.offset, abi::offset_of_id(info.id), "INFO offset");
    ensure_eq!(info.strategy, strategy, "INFO strategy");
    ensure_eq!(info.owner, Owner::ThisFile, "INFO owner");
    ensure_eq!(
        info.owner_tgid,
        std::process::id() as i32,
        "INFO owner_tgid"
    );
    ensure_eq!(info.map_count, 0, "INFO map_count of an unmapped block");
    ensure_eq!(info.flags, 0, "INFO flags");
    if ctx.root {
        ensure!(info.phys_addr != 0, "root sees phys_addr 0");
        ensure!(
            info.phys_addr.is_multiple_of(ctx.page as u64),
            "phys_addr {:#x} not page-aligned",
            info.phys_addr
        );
    }
    Ok(())
}

pub fn alloc_info_list_free_roundtrip(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let a = dev.alloc(&AllocRequest::new(ctx.pages(2)).strategy(Strategy::Remap))?;
    let b = dev.alloc(&AllocRequest::new(ctx.pages(3)).strategy(Strategy::Page))?;
    ensure!(a.id() != b.id(), "two blocks share id {}", a.id());
    for (block, pages, strategy) in [(&a, 2, Strategy::Remap), (&b, 3, Strategy::Page)] {
        ensure_eq!(
            block.offset(),
            abi::offset_of_id(block.id()),
            "ALLOC offset"
        );
        ensure_eq!(block.size(), ctx.pages(pages), "ALLOC size");
        ensure_eq!(block.strategy(), strategy, "ALLOC strategy");
        check_fresh_info(ctx, &block.info()?, ctx.pages(pages), strategy)?;
    }

    let listed = dev.list()?;
    for block in [&a, &b] {
        let entry = listed.iter().find(|info| info.id == block.id());
        ensure_eq!(
            entry.copied(),
            Some(block.info()?),
            "LIST entry of block {}",
            block.id()
        );
    }
    let count = dev.list_count()?;
    ensure_eq!(count as usize, listed.len(), "LIST count without a buffer");

    // Capacity 1: one entry written, the true count returned, nothing written past it.
    let sentinel = abi::BlockInfo {
        id: 0xdead_beef,
        ..Default::default()
    };
    let mut entries = [abi::BlockInfo::default(), sentinel];
    ensure_eq!(
        dev.list_into(&mut entries[..1])?,
        count,
        "LIST count with capacity 1"
    );
    ensure!(
        listed.iter().any(|info| info.id == entries[0].id),
        "LIST wrote id {} which is not a listed block",
        entries[0].id
    );
    ensure_eq!(entries[1], sentinel, "the entry after the capacity");

    let a_id = a.id();
    a.free()?;
    expect_errno(dev.info(a_id), Errno::ENOENT, "INFO of the freed block")?;
    ensure!(
        !dev.list()?.iter().any(|info| info.id == a_id),
        "LIST still shows freed block {a_id}"
    );
    b.info()?;
    b.free()?;
    pass()
}

pub fn double_free_enoent(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let block = dev.alloc(&AllocRequest::new(ctx.pages(1)))?;
    let id = block.id();
    block.free()?;
    expect_errno(dev.free(id), Errno::ENOENT, "second FREE")?;
    expect_errno(dev.info(id), Errno::ENOENT, "INFO after FREE")?;
    pass()
}

pub fn unknown_id_enoent(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    // Ids may start at 0, so only ids far beyond any allocation are surely unknown.
    for id in [abi::MAX_ID, u32::MAX] {
        expect_errno(dev.info(id), Errno::ENOENT, &format!("INFO of id {id}"))?;
        expect_errno(dev.free(id), Errno::ENOENT, &format!("FREE of id {id}"))?;
    }
    pass()
}

pub fn ids_not_reused(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut seen = Vec::new();
    for _ in 0..4 {
        let block = dev.alloc(&AllocRequest::new(ctx.pages(1)))?;
        ensure!(
            !seen.contains(&block.id()),
            "id {} handed out again (earlier ids {seen:?})",
            block.id()
        );
        seen.push(block.id());
        block.free()?;
    }
    pass()
}

pub fn other_file_id_enoent(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let block = dev.alloc(&AllocRequest::new(ctx.pages(2)).strategy(Strategy::Remap))?;
    block.pwrite(0, &pattern::generate(ctx.page, 5, 0))?;
    let other = ctx.open()?;
    expect_errno(
        other.info(block.id()),
        Errno::ENOENT,
        "INFO through another file",
    )?;
    expect_errno(
        other.free(block.id()),
        Errno::ENOENT,
        "FREE through another file",
    )?;
    expect_errno(
        other.map(block.offset(), ctx.page, Prot::Read),
        Errno::EINVAL,
        "mmap through another file",
    )?;
    let mut buf = [0u8; 16];
    expect_errno(
        other.pread(block.offset(), &mut buf),
        Errno::EINVAL,
        "pread through another file",
    )?;
    ensure!(
        !other.list()?.iter().any(|info| info.id == block.id()),
        "another file lists block {}",
        block.id()
    );
    // Still alive and intact for its owner.
    block.info()?;
    let mut check = vec![0u8; ctx.page];
    block.pread(0, &mut check)?;
    pattern::check(&check, 5, 0)?;
    block.free()?;
    pass()
}

pub fn close_releases_blocks(ctx: &Ctx) -> TestResult {
    let watcher = ctx.open()?;
    let before = watcher.stat()?;
    let dev = ctx.open()?;
    let id = dev.alloc(&AllocRequest::new(ctx.pages(4)))?.into_raw_id();
    let during = watcher.stat()?;
    ensure_eq!(
        during.blocks_total,
        before.blocks_total + 1,
        "blocks after ALLOC"
    );
    drop(dev);
    let after = watcher.stat()?;
    ensure_eq!(
        after.blocks_total,
        before.blocks_total,
        "blocks after close"
    );
    ensure_eq!(after.bytes_total, before.bytes_total, "bytes after close");
    expect_errno(watcher.info(id), Errno::ENOENT, "INFO after close")?;
    pass()
}

pub fn block_is_zeroed(ctx: &Ctx, strategy: Strategy) -> TestResult {
    let dev = ctx.open()?;
    let request = AllocRequest::new(ctx.pages(16)).strategy(strategy);
    // Dirty a block and free it, so the next one of the same size likely reuses the memory.
    let first = dev.alloc(&request)?;
    {
        let mut mapping = first.map(Prot::ReadWrite)?;
        mapping.as_mut_slice().fill(0xa5);
    }
    first.free()?;
    let second = dev.alloc(&request)?;
    let mapping = second.map(Prot::Read)?;
    pattern::check_filled(mapping.as_slice(), 0, 0)
        .map_err(|m| Failure::new(format!("new block is not zeroed through mmap: {m}")))?;
    pattern::check_filled(&second.read_all()?, 0, 0)
        .map_err(|m| Failure::new(format!("new block is not zeroed through pread: {m}")))?;
    pass()
}

pub fn stat_tracks_usage(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let s0 = dev.stat()?;
    let size = ctx.pages(3);
    let block = dev.alloc(&AllocRequest::new(size))?;
    let s1 = dev.stat()?;
    ensure_eq!(
        s1.bytes_file,
        s0.bytes_file + size,
        "bytes_file after ALLOC"
    );
    ensure_eq!(
        s1.blocks_file,
        s0.blocks_file + 1,
        "blocks_file after ALLOC"
    );
    ensure_eq!(
        s1.bytes_total,
        s0.bytes_total + size,
        "bytes_total after ALLOC"
    );
    ensure_eq!(
        s1.blocks_total,
        s0.blocks_total + 1,
        "blocks_total after ALLOC"
    );
    let other = ctx.open()?.stat()?;
    ensure_eq!(
        (other.bytes_file, other.blocks_file),
        (0, 0),
        "another file's own charge"
    );
    ensure_eq!(
        other.bytes_total,
        s1.bytes_total,
        "bytes_total seen by another file"
    );
    block.free()?;
    let s2 = dev.stat()?;
    ensure_eq!(
        (
            s2.bytes_file,
            s2.blocks_file,
            s2.bytes_total,
            s2.blocks_total
        ),
        (
            s0.bytes_file,
            s0.blocks_file,
            s0.bytes_total,
            s0.blocks_total
        ),
        "figures after FREE"
    );
    pass()
}

pub fn default_strategy_resolves(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let default = dev.stat()?.default_strategy();
    let block = dev.alloc(&AllocRequest::new(ctx.pages(1)).strategy(Strategy::Default))?;
    ensure_eq!(block.strategy(), default, "strategy ALLOC resolved");
    ensure_eq!(block.info()?.strategy, default, "strategy INFO reports");
    block.free()?;
    pass()
}

pub fn align_order_is_honoured(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    for order in [0, 1, 4, abi::MAX_ALIGN_ORDER] {
        let block = dev.alloc(&AllocRequest::new(ctx.pages(1)).align_order(order))?;
        ensure_eq!(block.size(), ctx.pages(1), "size with align_order {order}");
        if ctx.root {
            let phys = block.info()?.phys_addr;
            let alignment = (ctx.page as u64) << order;
            ensure!(
                phys.is_multiple_of(alignment),
                "align_order {order}: phys_addr {phys:#x} is not a multiple of {alignment:#x}"
            );
        }
        block.free()?;
    }
    if !ctx.root {
        return skip("allocations passed, but checking physical alignment needs root");
    }
    pass()
}

pub fn cma_free_tracks_blocks(ctx: &Ctx) -> TestResult {
    let Some(base) = ctx.cma_level() else {
        return skip("neither the CMA areas' page counts nor CmaFree can be read");
    };
    let dev = ctx.open()?;
    let size = 1 << 20;
    let block = dev.alloc(&AllocRequest::new(size))?;
    match (base, ctx.cma_level()) {
        (Level::AvailablePages(before), Some(Level::AvailablePages(during))) => ensure_eq!(
            before - during,
            size / ctx.page as u64,
            "CMA pages taken by a 1 MiB block ({before} available before, {during} during)"
        ),
        _ => ctx.ensure_cma_held(Some(base), size, "after ALLOC")?,
    }
    block.free()?;
    ctx.ensure_cma_returned(Some(base), "after FREE")?;
    pass()
}
