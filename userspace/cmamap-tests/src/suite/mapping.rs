//! mmap of blocks: contents through every path, fault counts, and refused mappings.

use cmamap::{abi, AllocRequest, Errno, Prot, Sharing, Strategy};
use cmamap_testkit::pattern;

use crate::check::{expect_errno, expect_failure, pass, Failure, TestResult};
use crate::ctx::{faults_touching, Ctx, PersistGuard};

pub fn map_roundtrip(ctx: &Ctx, strategy: Strategy) -> TestResult {
    let pages = 8;
    let p = ctx.page;
    let dev = ctx.open()?;
    let block = dev.alloc(&AllocRequest::new(ctx.pages(pages)).strategy(strategy))?;
    ensure_eq!(block.strategy(), strategy, "resolved strategy");

    let mut whole = block.map(Prot::ReadWrite)?;
    ensure_eq!(whole.len(), pages * p, "mapping length");
    pattern::check_filled(whole.as_slice(), 0, 0)
        .map_err(|m| Failure::new(format!("fresh block: {m}")))?;
    pattern::fill(whole.as_mut_slice(), 11, 0);

    let second = block.map(Prot::Read)?;
    ensure!(second.addr() != whole.addr(), "two mappings at one address");
    pattern::check(second.as_slice(), 11, 0)
        .map_err(|m| Failure::new(format!("second mapping: {m}")))?;
    ensure_eq!(block.info()?.map_count, 2, "map_count with two mappings");

    // Partial mappings at a page offset: first, middle and last page, and two middle pages.
    for (first_page, count) in [(0, 1), (pages / 2, 1), (pages - 1, 1), (3, 2)] {
        let offset = (first_page * p) as u64;
        let part = block.map_range(offset, count * p, Prot::Read)?;
        pattern::check(part.as_slice(), 11, offset).map_err(|m| {
            Failure::new(format!(
                "mapping of {count} page(s) at page {first_page}: {m}"
            ))
        })?;
    }

    pattern::check(&block.read_all()?, 11, 0)
        .map_err(|m| Failure::new(format!("pread of the block: {m}")))?;
    let mut inner = [0u8; 100];
    let inner_offset = (p + 7) as u64;
    ensure_eq!(
        block.pread(inner_offset, &mut inner)?,
        100,
        "inner pread length"
    );
    pattern::check(&inner, 11, inner_offset)
        .map_err(|m| Failure::new(format!("unaligned pread: {m}")))?;

    // pwrite across a page boundary shows up in the mappings, and nothing around it changes.
    let start = 2 * p - 5;
    let data = pattern::generate(p + 10, 12, start as u64);
    ensure_eq!(
        block.pwrite(start as u64, &data)?,
        data.len(),
        "pwrite length"
    );
    pattern::check(
        &second.as_slice()[start..start + data.len()],
        12,
        start as u64,
    )
    .map_err(|m| Failure::new(format!("pwrite seen through the mapping: {m}")))?;
    pattern::check(&second.as_slice()[..start], 11, 0)
        .map_err(|m| Failure::new(format!("bytes before the pwrite: {m}")))?;
    let after = start + data.len();
    pattern::check(&second.as_slice()[after..], 11, after as u64)
        .map_err(|m| Failure::new(format!("bytes after the pwrite: {m}")))?;

    // A write through a partial mapping shows up in the whole one.
    let last_offset = (pages - 1) * p;
    let mut last = block.map_range(last_offset as u64, p, Prot::ReadWrite)?;
    last.as_mut_slice().fill(0x5a);
    pattern::check_filled(&whole.as_slice()[last_offset..], 0x5a, last_offset as u64)
        .map_err(|m| Failure::new(format!("write through the last-page mapping: {m}")))?;
    drop(last);
    ensure_eq!(
        block.info()?.map_count,
        2,
        "map_count after unmapping partials"
    );
    drop(second);
    drop(whole);
    ensure_eq!(block.info()?.map_count, 0, "map_count after unmapping all");
    block.free()?;
    pass()
}

pub fn minor_faults(ctx: &Ctx, strategy: Strategy) -> TestResult {
    let pages = 16;
    let dev = ctx.open()?;
    let block = dev.alloc(&AllocRequest::new(ctx.pages(pages)).strategy(strategy))?;
    let mut mapping = block.map(Prot::ReadWrite)?;
    let expected = if strategy == Strategy::Remap {
        0
    } else {
        pages as i64
    };
    let first = faults_touching(&mut mapping, ctx.page, pages, 1)?;
    let second = faults_touching(&mut mapping, ctx.page, pages, 2)?;
    ensure_eq!(first, expected, "minor faults touching {pages} fresh pages");
    ensure_eq!(second, 0, "minor faults touching the same pages again");
    for page in 0..pages {
        ensure_eq!(
            mapping.read_volatile(page * ctx.page),
            2 + page as u8,
            "byte written to page {page}"
        );
    }
    pass()
}

pub fn mmap_past_end_einval(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    for strategy in Strategy::CONCRETE {
        let block = dev.alloc(&AllocRequest::new(ctx.pages(4)).strategy(strategy))?;
        for (offset_pages, len_pages) in [(0, 5), (4, 1), (3, 2), (5, 1), (0, 1 << 20)] {
            expect_errno(
                block.map_range(ctx.pages(offset_pages), len_pages * ctx.page, Prot::Read),
                Errno::EINVAL,
                &format!("{strategy}: {len_pages} page(s) at page {offset_pages} of 4"),
            )?;
        }
        // The last page itself is fine.
        block.map_range(ctx.pages(3), ctx.page, Prot::Read)?;
    }
    pass()
}

pub fn mmap_unknown_block_einval(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let block = dev.alloc(&AllocRequest::new(ctx.pages(1)))?;
    let freed_offset = block.offset();
    block.free()?;
    for (what, offset) in [
        ("a freed block", freed_offset),
        ("id MAX_ID", abi::offset_of_id(abi::MAX_ID)),
    ] {
        expect_errno(
            dev.map(offset, ctx.page, Prot::Read),
            Errno::EINVAL,
            &format!("mmap of {what}"),
        )?;
    }
    pass()
}

pub fn mmap_private_einval(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    for strategy in Strategy::CONCRETE {
        let block = dev.alloc(&AllocRequest::new(ctx.pages(2)).strategy(strategy))?;
        for prot in [Prot::Read, Prot::ReadWrite] {
            expect_errno(
                block.map_range_with(0, ctx.page, prot, Sharing::Private),
                Errno::EINVAL,
                &format!("{strategy}: MAP_PRIVATE {prot}"),
            )?;
        }
    }
    pass()
}

pub fn readonly_fd_refuses_write(ctx: &Ctx) -> TestResult {
    // The read-only file must reach a block it did not allocate: a persistent one.
    if let Some(skipped) = ctx.needs_root() {
        return skipped;
    }
    let dev = ctx.open()?;
    let size = ctx.pages(2);
    let block = dev.alloc(&AllocRequest::new(size).persist(true))?;
    let mut guard = PersistGuard::new(ctx, block.id());
    block.pwrite(0, &pattern::generate(size as usize, 13, 0))?;

    let ro = ctx.open_readonly()?;
    for prot in [Prot::ReadWrite, Prot::Write] {
        expect_errno(
            ro.map(block.offset(), size as usize, prot),
            Errno::EACCES,
            &format!("{prot} mapping through an O_RDONLY file"),
        )?;
    }
    let mut mapping = ro.map(block.offset(), size as usize, Prot::Read)?;
    pattern::check(mapping.as_slice(), 13, 0)?;
    expect_errno(
        mapping.protect(Prot::ReadWrite),
        Errno::EACCES,
        "mprotect to read-write",
    )?;
    expect_errno(
        ro.pwrite(block.offset(), b"x"),
        Errno::EBADF,
        "pwrite through an O_RDONLY file",
    )?;
    let mut buf = vec![0u8; size as usize];
    ensure_eq!(
        ro.pread(block.offset(), &mut buf)?,
        buf.len(),
        "pread length"
    );
    pattern::check(&buf, 13, 0)?;
    drop(mapping);
    block.free()?;
    guard.disarm();
    pass()
}

pub fn pread_pwrite_bounds(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let size = ctx.pages(2);
    let block = dev.alloc(&AllocRequest::new(size))?;
    let mut buf = [0u8; 100];
    ensure_eq!(block.pread(size, &mut buf)?, 0, "pread at the end");
    ensure_eq!(block.pread(size + 100, &mut buf)?, 0, "pread past the end");
    ensure_eq!(
        block.pread(size - 10, &mut buf)?,
        10,
        "pread across the end"
    );

    expect_errno(block.pwrite(size, &buf), Errno::ENOSPC, "pwrite at the end")?;
    expect_errno(
        block.pwrite(size + ctx.page as u64, &buf),
        Errno::ENOSPC,
        "pwrite past the end",
    )?;
    let data = pattern::generate(100, 14, size - 10);
    ensure_eq!(block.pwrite(size - 10, &data)?, 10, "pwrite across the end");
    let mut tail = [0u8; 10];
    ensure_eq!(block.pread(size - 10, &mut tail)?, 10, "pread of the tail");
    ensure_eq!(tail[..], data[..10], "tail written by the truncated pwrite");

    let id_offset = block.offset();
    block.free()?;
    for (what, offset) in [
        ("a freed block", id_offset),
        ("id MAX_ID", abi::offset_of_id(abi::MAX_ID)),
    ] {
        expect_errno(
            dev.pread(offset, &mut buf),
            Errno::EINVAL,
            &format!("pread of {what}"),
        )?;
        expect_errno(
            dev.pwrite(offset, &buf),
            Errno::EINVAL,
            &format!("pwrite of {what}"),
        )?;
    }
    pass()
}

pub fn mremap_grow_fails(ctx: &Ctx, strategy: Strategy) -> TestResult {
    let dev = ctx.open()?;
    let block = dev.alloc(&AllocRequest::new(ctx.pages(4)).strategy(strategy))?;
    let mut whole = block.map(Prot::ReadWrite)?;
    pattern::fill(whole.as_mut_slice(), 15, 0);
    let errno = expect_failure(
        whole.resize(ctx.page * 8),
        "mremap of the whole block to twice its size",
    )?;
    // Growing a partial mapping would stay inside the block, yet still must fail.
    let mut part = block.map_range(0, 2 * ctx.page, Prot::Read)?;
    expect_failure(
        part.resize(3 * ctx.page),
        "mremap of a 2-page mapping to 3 pages",
    )?;
    pattern::check(whole.as_slice(), 15, 0)
        .map_err(|m| Failure::new(format!("after the refused mremap ({errno}): {m}")))?;
    pattern::check(part.as_slice(), 15, 0)?;
    ensure_eq!(whole.len(), ctx.page * 4, "length after the refused mremap");
    pass()
}
