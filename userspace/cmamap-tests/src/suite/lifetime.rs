//! Block memory outlives its id (FREE while mapped) and its file (close while mapped), and goes
//! back to CMA exactly at the last munmap.

use cmamap::{AllocRequest, Errno, Prot, Strategy};
use cmamap_testkit::pattern;

use crate::check::{expect_errno, pass, Failure, TestResult};
use crate::ctx::Ctx;

const SIZE: u64 = 1 << 20;

pub fn free_while_mapped(ctx: &Ctx, strategy: Strategy) -> TestResult {
    let base = ctx.cma_level();
    let dev = ctx.open()?;
    let block = dev.alloc(&AllocRequest::new(SIZE).strategy(strategy))?;
    let (id, offset) = (block.id(), block.offset());
    // Written with pwrite so that (for fault and page) the mapping first touches the pages
    // after the FREE.
    block.pwrite(0, &pattern::generate(SIZE as usize, 21, 0))?;
    let mut mapping = block.map(Prot::ReadWrite)?.detach();
    block.free()?;

    expect_errno(dev.info(id), Errno::ENOENT, "INFO after FREE")?;
    expect_errno(dev.free(id), Errno::ENOENT, "second FREE")?;
    expect_errno(
        dev.map(offset, ctx.page, Prot::Read),
        Errno::EINVAL,
        "new mmap after FREE",
    )?;
    let mut buf = [0u8; 8];
    expect_errno(
        dev.pread(offset, &mut buf),
        Errno::EINVAL,
        "pread after FREE",
    )?;

    pattern::check(mapping.as_slice(), 21, 0)
        .map_err(|m| Failure::new(format!("old data after FREE: {m}")))?;
    pattern::fill(mapping.as_mut_slice(), 22, 0);
    pattern::check(mapping.as_slice(), 22, 0)
        .map_err(|m| Failure::new(format!("new data after FREE: {m}")))?;
    ctx.ensure_cma_held(base, SIZE, "after FREE, still mapped")?;

    drop(mapping);
    ctx.ensure_cma_returned(base, "after the last munmap")?;
    pass()
}

pub fn close_while_mapped(ctx: &Ctx, strategy: Strategy) -> TestResult {
    let base = ctx.cma_level();
    let dev = ctx.open()?;
    let block = dev.alloc(&AllocRequest::new(SIZE).strategy(strategy))?;
    block.pwrite(0, &pattern::generate(SIZE as usize, 23, 0))?;
    let mut mapping = block.map(Prot::ReadWrite)?.detach();
    // The file's release frees the block; the mapping keeps the memory.
    block.into_raw_id();
    drop(dev);

    pattern::check(mapping.as_slice(), 23, 0)
        .map_err(|m| Failure::new(format!("data after close: {m}")))?;
    pattern::fill(mapping.as_mut_slice(), 24, 0);
    pattern::check(mapping.as_slice(), 24, 0)
        .map_err(|m| Failure::new(format!("new data after close: {m}")))?;
    ctx.ensure_cma_held(base, SIZE, "after close, still mapped")?;

    drop(mapping);
    ctx.ensure_cma_returned(base, "after the last munmap")?;
    pass()
}
