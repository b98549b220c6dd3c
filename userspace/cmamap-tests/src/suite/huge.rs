//! The `huge` strategy: one PMD entry per 2 MiB where the block and the address are both
//! 2 MiB aligned, 4 KiB faults everywhere else.
//!
//! Each successful fault counts one minor fault, so the counts below are exact: a PMD fault
//! maps 512 pages at once.

use cmamap::{AllocRequest, Block, Mapping, Prot, Strategy, HUGE_SIZE};
use cmamap_testkit::pattern;

use crate::check::{pass, Failure, Step, TestResult};
use crate::child;
use crate::ctx::{faults_touching, Ctx};

/// Pages in one PMD entry.
const PAGES_PER_HUGE: usize = 512;

fn alloc_huge<'d>(dev: &'d cmamap::Device, bytes: usize) -> Result<Block<'d>, Failure> {
    Ok(dev.alloc(&AllocRequest::new(bytes as u64).strategy(Strategy::Huge))?)
}

/// Checks `mapping` against the pattern `seed` of the block, starting at `offset_in_block`.
fn check_mapping(
    mapping: &Mapping<'_>,
    seed: u64,
    offset_in_block: usize,
    what: &str,
) -> Result<(), Failure> {
    pattern::check(mapping.as_slice(), seed, offset_in_block as u64)
        .map_err(|m| Failure::new(format!("{what}: {m}")))
}

/// Fills the whole block with the pattern `seed` through pwrite.
fn pwrite_pattern(block: &Block<'_>, seed: u64) -> Result<(), Failure> {
    let bytes = pattern::generate(block.size() as usize, seed, 0);
    let written = block.pwrite(0, &bytes)?;
    ensure_eq!(written, bytes.len(), "pwrite of the whole block");
    Ok(())
}

pub fn huge_64m_touch_takes_32_faults(ctx: &Ctx) -> TestResult {
    let size = 64 << 20;
    let pages = size / ctx.page;
    let dev = ctx.open()?;

    let huge = alloc_huge(&dev, size)?;
    let mut mapping = huge.map(Prot::ReadWrite)?;
    ensure_eq!(
        mapping.addr() % HUGE_SIZE,
        0,
        "address of a huge mapping from the library"
    );
    let huge_faults = faults_touching(&mut mapping, ctx.page, pages, 7)?;
    ensure_eq!(
        huge_faults,
        (size / HUGE_SIZE) as i64,
        "minor faults touching all {pages} pages of a 64 MiB huge mapping"
    );
    ensure_eq!(
        faults_touching(&mut mapping, ctx.page, pages, 9)?,
        0,
        "minor faults touching them again"
    );
    let read = huge.read_all()?;
    for page in 0..pages {
        ensure_eq!(
            read[page * ctx.page],
            9u8.wrapping_add(page as u8),
            "byte written to page {page}, read by pread"
        );
    }
    drop(read);
    drop(mapping);
    huge.free()?;

    // The same touch through 4 KiB faults, for the ratio.
    let fault = dev.alloc(&AllocRequest::new(size as u64).strategy(Strategy::Fault))?;
    let mut mapping = fault.map(Prot::ReadWrite)?;
    let page_faults = faults_touching(&mut mapping, ctx.page, pages, 7)?;
    ensure_eq!(
        page_faults,
        pages as i64,
        "minor faults touching all pages of a 64 MiB fault mapping"
    );
    ensure!(
        page_faults >= 100 * huge_faults,
        "huge took {huge_faults} faults, fault {page_faults}: less than 100x fewer"
    );
    println!("# 64 MiB touch: huge {huge_faults} minor faults, fault {page_faults}");
    pass()
}

pub fn huge_data_across_2m_edges(ctx: &Ctx) -> TestResult {
    let size = 8 << 20;
    let dev = ctx.open()?;
    let block = alloc_huge(&dev, size)?;
    pwrite_pattern(&block, 51)?;
    let mut mapping = block.map(Prot::ReadWrite)?;
    check_mapping(&mapping, 51, 0, "pwritten pattern through the huge mapping")?;

    // Writes that straddle each 2 MiB edge, seen by pread and by a 4 KiB fault view.
    let straddle = 64;
    for edge in (HUGE_SIZE..size).step_by(HUGE_SIZE) {
        let range = edge - straddle..edge + straddle;
        let seed = 52 + (edge / HUGE_SIZE) as u64;
        pattern::fill(
            &mut mapping.as_mut_slice()[range.clone()],
            seed,
            range.start as u64,
        );
        let mut read = vec![0u8; range.len()];
        block.pread(range.start as u64, &mut read)?;
        pattern::check(&read, seed, range.start as u64).map_err(|m| {
            Failure::new(format!("bytes around the edge at {edge:#x}, by pread: {m}"))
        })?;
        let view = block.map_view(
            Strategy::Fault,
            (edge - ctx.page) as u64,
            2 * ctx.page,
            Prot::Read,
        )?;
        let inside = ctx.page - straddle..ctx.page + straddle;
        pattern::check(&view.as_slice()[inside], seed, range.start as u64).map_err(|m| {
            Failure::new(format!(
                "bytes around the edge at {edge:#x}, by a fault view: {m}"
            ))
        })?;
    }
    drop(mapping);
    block.free()?;
    pass()
}

pub fn huge_partial_mappings(ctx: &Ctx) -> TestResult {
    let size = 8 << 20;
    let mib = 1 << 20;
    let dev = ctx.open()?;
    let block = alloc_huge(&dev, size)?;
    pwrite_pattern(&block, 61)?;
    // (offset, length, minor faults touching every page): PMD entries only for the 2 MiB
    // stretches that are aligned in the block and lie wholly inside the mapping.
    let page = ctx.page;
    let cases = [
        (2 * mib, 4 * mib, 2),
        (mib, 4 * mib, 256 + 1 + 256),
        (page, size - page, PAGES_PER_HUGE as i64 - 1 + 3),
        (6 * mib, 2 * mib, 1),
        (7 * mib, mib, 256),
        (size - page, page, 1),
    ];
    for (offset, len, expected) in cases {
        let mapping = block.map_range(offset as u64, len, Prot::ReadWrite)?;
        ensure_eq!(
            mapping.addr() % HUGE_SIZE,
            offset % HUGE_SIZE,
            "address of the huge mapping of {len:#x} bytes at {offset:#x}, modulo 2 MiB"
        );
        check_mapping(
            &mapping,
            61,
            offset,
            &format!("mapping of {len:#x} bytes at {offset:#x}"),
        )?;
        drop(mapping);
        // A fresh mapping, so that the touch below faults everything in.
        let mut mapping = block.map_range(offset as u64, len, Prot::ReadWrite)?;
        let faults = faults_touching(&mut mapping, page, len / page, 0)?;
        ensure_eq!(
            faults,
            expected,
            "minor faults touching the mapping of {len:#x} bytes at {offset:#x}"
        );
        // Undo the touch so the next case sees the pattern.
        pattern::fill(mapping.as_mut_slice(), 61, offset as u64);
    }
    pass()
}

pub fn huge_misplaced_address_falls_back(ctx: &Ctx) -> TestResult {
    let size = 4 << 20;
    let pages = size / ctx.page;
    let dev = ctx.open()?;
    let block = alloc_huge(&dev, size)?;
    pwrite_pattern(&block, 71)?;
    // Four KiB off the phase the block needs: no 2 MiB of it can be one PMD entry.
    let mapping =
        block.map_view_at_phase(Strategy::Default, 0, size, Prot::ReadWrite, ctx.page as u64)?;
    ensure_eq!(mapping.addr() % HUGE_SIZE, ctx.page, "address modulo 2 MiB");
    check_mapping(&mapping, 71, 0, "misplaced huge mapping")?;
    drop(mapping);
    let mut mapping =
        block.map_view_at_phase(Strategy::Default, 0, size, Prot::ReadWrite, ctx.page as u64)?;
    ensure_eq!(
        faults_touching(&mut mapping, ctx.page, pages, 3)?,
        pages as i64,
        "minor faults touching a misplaced huge mapping: one per page"
    );
    pass()
}

pub fn huge_view_of_aligned_page_block(ctx: &Ctx) -> TestResult {
    let size = 4 << 20;
    let pages = size / ctx.page;
    let dev = ctx.open()?;
    // Other strategies get 2 MiB physical alignment only on request.
    let block = dev.alloc(
        &AllocRequest::new(size as u64)
            .strategy(Strategy::Page)
            .align_order(9),
    )?;
    pwrite_pattern(&block, 81)?;
    let mut view = block.map_view(Strategy::Huge, 0, size, Prot::ReadWrite)?;
    check_mapping(&view, 81, 0, "huge view of a page block")?;
    drop(view);
    view = block.map_view(Strategy::Huge, 0, size, Prot::ReadWrite)?;
    ensure_eq!(
        faults_touching(&mut view, ctx.page, pages, 5)?,
        (size / HUGE_SIZE) as i64,
        "minor faults touching a huge view of a 2 MiB-aligned page block"
    );
    let own = block.map(Prot::Read)?;
    for page in 0..pages {
        ensure_eq!(
            own.read_volatile(page * ctx.page),
            5u8.wrapping_add(page as u8),
            "byte written through the huge view to page {page}, read through the page mapping"
        );
    }
    pass()
}

pub fn huge_split_mapping_keeps_data(ctx: &Ctx) -> TestResult {
    let size = 8 << 20;
    let pages = size / ctx.page;
    let page = ctx.page;
    let dev = ctx.open()?;
    let block = alloc_huge(&dev, size)?;
    pwrite_pattern(&block, 91)?;
    let mut mapping = block.map(Prot::ReadWrite)?.detach();
    ensure_eq!(
        faults_touching(&mut mapping, page, pages, 0)?,
        4,
        "minor faults touching 8 MiB"
    );
    pattern::fill(mapping.as_mut_slice(), 91, 0);
    let base = mapping.addr();

    // Punch one page out of the middle of the second 2 MiB: its PMD entry must be split.
    let hole = 3 << 20;
    // SAFETY: the page lies inside our own mapping, which is not used below except through
    // the pieces on either side of the hole.
    unsafe {
        nix::sys::mman::munmap(
            std::ptr::NonNull::new((base + hole) as *mut _).unwrap(),
            page,
        )
    }
    .step("munmap of one page in the middle of a PMD mapping")?;
    // Make the two halves read-only and back, splitting the VMAs once more.
    for prot in [
        nix::sys::mman::ProtFlags::PROT_READ,
        nix::sys::mman::ProtFlags::PROT_READ | nix::sys::mman::ProtFlags::PROT_WRITE,
    ] {
        // SAFETY: the range is our own mapping.
        unsafe {
            nix::sys::mman::mprotect(
                std::ptr::NonNull::new((base + 5 * (1 << 20)) as *mut _).unwrap(),
                2 << 20,
                prot,
            )
        }
        .step("mprotect of 2 MiB across a PMD edge")?;
    }
    // Everything but the hole still reads the pattern, and a write next to the hole shows.
    let check = |from: usize, to: usize| -> Result<(), Failure> {
        // SAFETY: `from..to` is mapped (it excludes the hole) for as long as this test runs.
        let bytes = unsafe { std::slice::from_raw_parts((base + from) as *const u8, to - from) };
        pattern::check(bytes, 91, from as u64)
            .map_err(|m| Failure::new(format!("bytes {from:#x}..{to:#x} after the split: {m}")))
    };
    check(0, hole)?;
    check(hole + page, size)?;
    // SAFETY: the byte just before the hole is mapped and writable.
    unsafe { std::ptr::write_volatile((base + hole - 1) as *mut u8, 0xa5) };
    let mut byte = [0u8; 1];
    block.pread((hole - 1) as u64, &mut byte)?;
    ensure_eq!(
        byte[0],
        0xa5,
        "byte written next to the hole, read by pread"
    );

    // The hole maps again on its own, at the same place in the block.
    let again = block.map_range(hole as u64, page, Prot::Read)?;
    check_mapping(&again, 91, hole, "the punched page mapped again")?;

    // A forked child sees the split mapping too.
    child::run(|| {
        check(0, hole - 1)?;
        check(hole + page, size)
    })?;
    for (start, len) in [(0, hole), (hole + page, size - hole - page)] {
        // SAFETY: these are the two remaining pieces of our own mapping.
        unsafe {
            nix::sys::mman::munmap(
                std::ptr::NonNull::new((base + start) as *mut _).unwrap(),
                len,
            )
        }
        .step("munmap of the rest")?;
    }
    std::mem::forget(mapping);
    pass()
}

pub fn huge_fork_shares_pmd_mapping(ctx: &Ctx) -> TestResult {
    let size = 4 << 20;
    let dev = ctx.open()?;
    let block = alloc_huge(&dev, size)?;
    let mut mapping = block.map(Prot::ReadWrite)?;
    pattern::fill(mapping.as_mut_slice(), 101, 0);
    let shared = &mapping;
    child::run(|| {
        check_mapping(shared, 101, 0, "the inherited huge mapping")?;
        let mut own = block
            .map(Prot::ReadWrite)
            .step("the child's own huge mapping")?;
        pattern::fill(own.as_mut_slice(), 102, 0);
        Ok(())
    })?;
    check_mapping(&mapping, 102, 0, "the child's writes seen by the parent")?;
    pattern::fill(mapping.as_mut_slice(), 0, 0);
    pass()
}

pub fn huge_alloc_map_is_2m_aligned(ctx: &Ctx) -> TestResult {
    let size = 4 << 20;
    let pages = size / ctx.page;
    let dev = ctx.open()?;
    let request = AllocRequest::new(size as u64).strategy(Strategy::Huge);
    let mut mapped = dev.alloc_map(&request, Prot::ReadWrite)?;
    ensure_eq!(
        mapped.addr() % HUGE_SIZE,
        0,
        "address of a 4 MiB huge block from ALLOC_MAP, modulo 2 MiB"
    );
    crate::ctx::minor_fault_count()?;
    let before = crate::ctx::minor_fault_count()?;
    for page in 0..pages {
        mapped.write_volatile(page * ctx.page, page as u8);
    }
    let faults = crate::ctx::minor_fault_count()? - before;
    ensure_eq!(
        faults,
        (size / HUGE_SIZE) as i64,
        "minor faults touching a 4 MiB huge block mapped by ALLOC_MAP"
    );
    let block_bytes = {
        let mut buf = vec![0u8; size];
        dev.pread(mapped.offset(), &mut buf)?;
        buf
    };
    for page in 0..pages {
        ensure_eq!(
            block_bytes[page * ctx.page],
            page as u8,
            "byte written to page {page}, read by pread"
        );
    }
    mapped.unmap_free()?;
    pass()
}
