//! IOC_ALLOC_MAP and IOC_UNMAP_FREE: allocation and mapping in one step, and their release.

use cmamap::{abi, AllocRequest, Errno, Prot, Strategy};
use cmamap_testkit::{pattern, Probe};

use crate::check::{expect_errno, pass, Failure, TestResult};
use crate::ctx::Ctx;
use crate::suite::validation::Spoiler;

pub fn alloc_map_roundtrip(ctx: &Ctx, strategy: Strategy) -> TestResult {
    let base = ctx.cma_level();
    let dev = ctx.open()?;
    let size = ctx.pages(4);
    let mut block = dev.alloc_map(&AllocRequest::new(size).strategy(strategy), Prot::ReadWrite)?;
    ensure!(block.addr() != 0, "ALLOC_MAP returned address 0");
    ensure!(
        block.addr().is_multiple_of(ctx.page),
        "address {:#x} is not page-aligned",
        block.addr()
    );
    ensure_eq!(block.size(), size, "size");
    ensure_eq!(block.strategy(), strategy, "strategy");
    ensure_eq!(block.offset(), abi::offset_of_id(block.id()), "offset");
    let info = dev.info(block.id())?;
    ensure_eq!(info.map_count, 1, "map_count of the driver's mapping");
    ensure_eq!(info.size, size, "INFO size");

    pattern::check_filled(block.as_slice(), 0, 0)
        .map_err(|m| Failure::new(format!("fresh block: {m}")))?;
    pattern::fill(block.as_mut_slice(), 61, 0);
    let mut read = vec![0u8; size as usize];
    ensure_eq!(
        dev.pread(block.offset(), &mut read)?,
        read.len(),
        "pread length"
    );
    pattern::check(&read, 61, 0).map_err(|m| Failure::new(format!("pread: {m}")))?;
    {
        let second = dev.map(block.offset(), size as usize, Prot::Read)?;
        pattern::check(second.as_slice(), 61, 0)
            .map_err(|m| Failure::new(format!("a second mapping by offset: {m}")))?;
    }

    let id = block.id();
    block.unmap_free()?;
    expect_errno(dev.info(id), Errno::ENOENT, "INFO after UNMAP_FREE")?;
    ctx.ensure_cma_returned(base, "after UNMAP_FREE, against before ALLOC_MAP")?;
    pass()
}

pub fn alloc_map_bad_prot_einval(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let (read, write, exec) = (libc::PROT_READ, libc::PROT_WRITE, libc::PROT_EXEC);
    for prot in [0, exec, read | exec, read | write | exec, 0x8, 1 << 24] {
        let mut args = AllocRequest::new(ctx.pages(1)).to_args();
        args.prot = prot as u32;
        expect_errno(
            dev.alloc_map_raw(args),
            Errno::EINVAL,
            &format!("ALLOC_MAP with prot {prot:#x}"),
        )?;
    }
    let spoilers: [Spoiler<abi::AllocArgs>; 4] = [
        ("addr = 0x1000", |a| a.addr = 0x1000),
        ("pad0 = 1", |a| a.pad0 = 1),
        ("reserved = 1", |a| a.reserved = 1),
        ("device without ALLOC_FOR_DEVICE", |a| a.device = 0x1000),
    ];
    for (what, spoil) in spoilers {
        let mut args = AllocRequest::new(ctx.pages(1)).to_args();
        args.prot = (read | write) as u32;
        spoil(&mut args);
        expect_errno(
            dev.alloc_map_raw(args),
            Errno::EINVAL,
            &format!("ALLOC_MAP with {what}"),
        )?;
    }
    ensure_eq!(dev.stat()?.blocks_file, 0, "blocks charged after refusals");
    pass()
}

/// Unwraps a probe the driver should have refused with EINVAL.
fn refused<T>(probe: Probe<T>, what: &str) -> Result<T, Failure> {
    match probe {
        Probe::Refused(handle, err) if err.errno() == Errno::EINVAL => Ok(handle),
        Probe::Refused(_, err) => Err(Failure::new(format!("{what}: {err}, expected EINVAL"))),
        Probe::Accepted => Err(Failure::new(format!("{what}: accepted, expected EINVAL"))),
    }
}

pub fn unmap_free_wrong_addr_einval(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let request = AllocRequest::new(ctx.pages(4));
    let mut a = dev.alloc_map(&request, Prot::ReadWrite)?;
    let b = dev.alloc_map(&request, Prot::ReadWrite)?;
    pattern::fill(a.as_mut_slice(), 62, 0);

    let a_id = a.id();
    let a = refused(
        a.probe_unmap_free(a_id, ctx.page),
        "UNMAP_FREE one page into the mapping",
    )?;
    let a = refused(
        a.probe_unmap_free(b.id(), 0),
        "UNMAP_FREE of another block's id at this mapping",
    )?;

    // The refusals left everything intact.
    pattern::check(a.as_slice(), 62, 0)
        .map_err(|m| Failure::new(format!("mapping after refused UNMAP_FREEs: {m}")))?;
    ensure_eq!(dev.info(a.id())?.map_count, 1, "map_count after refusals");
    a.unmap_free()?;
    b.unmap_free()?;
    pass()
}

pub fn unmap_free_plain_mmap_einval(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let block = dev.alloc(&AllocRequest::new(ctx.pages(4)))?;
    // Neither a whole-block nor a partial mmap mapping was made by ALLOC_MAP.
    for (what, pages) in [
        ("a whole-block mmap mapping", 4),
        ("a 2-page mmap mapping", 2),
    ] {
        let mapping = block.map_range(0, pages * ctx.page, Prot::ReadWrite)?;
        let mapping = refused(
            mapping.probe_unmap_free(&dev, block.id()),
            &format!("UNMAP_FREE of {what}"),
        )?;
        drop(mapping);
        block.info()?;
    }
    block.free()?;
    pass()
}
