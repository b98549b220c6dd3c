//! Adversarial ioctls: sizes at the edges of u64 and of the limits, and CMA exhaustion.

use std::os::fd::{AsFd, AsRawFd};

use cmamap::{abi, raw, AllocRequest, Device, Errno, Prot, Strategy};

use crate::check::{expect_alloc_refused, pass, skip, Failure, Step, TestResult};
use crate::ctx::{is_cma_shortage, Ctx, PersistGuard};

pub fn alloc_size_edges_refused(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let stat = dev.stat()?;
    let limit = stat.max_bytes_per_file.min(stat.max_bytes_total);
    // 4 GiB is over the default limits; 0xfffffffffffff000 is the largest page-aligned size.
    for size in [4u64 << 30, 0xffff_ffff_ffff_f000] {
        ensure!(
            size > limit,
            "size {size:#x} is not over the limit {limit:#x}"
        );
        for strategy in Strategy::CONCRETE {
            expect_alloc_refused(
                dev.alloc(&AllocRequest::new(size).strategy(strategy)),
                Errno::ENOSPC,
                &format!("ALLOC of {size:#x} bytes, {strategy}"),
            )?;
            let mapped =
                dev.alloc_map(&AllocRequest::new(size).strategy(strategy), Prot::ReadWrite);
            if let Ok(block) = mapped {
                let _ = block.unmap_free();
                fail!("ALLOC_MAP of {size:#x} bytes, {strategy}: succeeded");
            }
            ensure_eq!(
                mapped.err().map(|e| e.errno()),
                Some(Errno::ENOSPC),
                "ALLOC_MAP of {size:#x} bytes, {strategy}"
            );
        }
    }
    let after = dev.stat()?;
    ensure_eq!(after.blocks_file, 0, "blocks charged after the refusals");
    ensure_eq!(after.bytes_file, 0, "bytes charged after the refusals");
    ensure_eq!(
        crate::ctx::ram_blocks_listed(&dev)?,
        0,
        "blocks listed after the refusals"
    );
    pass()
}

/// The size of each block in the exhaustion test.
const CHUNK: u64 = 16 << 20;

/// Allocates CHUNK blocks through fresh files (the per-file limit is below CMA's size) until
/// CMA runs out; returns the files (which hold the blocks) and the bytes allocated.
fn exhaust(ctx: &Ctx) -> Result<(Vec<Device>, u64, Errno), Failure> {
    let mut files: Vec<Device> = Vec::new();
    let mut total = 0u64;
    loop {
        if files.is_empty()
            || files.last().is_some_and(|f| {
                f.stat()
                    .is_ok_and(|s| s.bytes_file + CHUNK > s.max_bytes_per_file)
            })
        {
            files.push(ctx.open()?);
        }
        let dev = files.last().expect("a file was just opened");
        let outcome = dev.alloc(&AllocRequest::new(CHUNK)).map(|block| {
            block.into_raw_id();
        });
        match outcome.map_err(|err| err.errno()) {
            Ok(()) => total += CHUNK,
            Err(errno) if is_cma_shortage(errno) || errno == Errno::ENOSPC => {
                return Ok((files, total, errno));
            }
            Err(errno) => fail!("ALLOC after {total} bytes: {errno}"),
        }
        ensure!(total < 64 << 30, "CMA never ran out");
    }
}

pub fn alloc_until_enomem_then_again(ctx: &Ctx) -> TestResult {
    let base = ctx.cma_level();
    let (files, first, why) = exhaust(ctx)?;
    if why == Errno::ENOSPC {
        drop(files);
        return skip(format!(
            "the module's total limit stopped it at {first} bytes before CMA did"
        ));
    }
    ensure!(first > 0, "not even one {CHUNK}-byte block fitted");
    drop(files);
    ctx.ensure_cma_returned(base, &format!("after freeing {first} bytes"))?;
    // The same total fits again: nothing was lost or fragmented for good.
    let (files, second, _) = exhaust(ctx)?;
    drop(files);
    ensure!(
        second >= first,
        "only {second} bytes fitted the second time, {first} the first"
    );
    ctx.ensure_cma_returned(base, "after the second round")?;
    pass()
}

/// Issues `request` with the raw argument pointer `arg`.
fn ioctl_at(dev: &Device, request: u32, arg: usize) -> Result<(), Errno> {
    // SAFETY: the callers pass NULL or a page of their own that the kernel may only fail on.
    let ret = unsafe {
        libc::ioctl(
            dev.as_fd().as_raw_fd(),
            request as libc::c_ulong,
            arg as *mut libc::c_void,
        )
    };
    Errno::result(ret).map(drop)
}

/// Device mappings in this process.
fn device_mappings() -> Result<usize, Failure> {
    let maps = std::fs::read_to_string("/proc/self/maps").step("read /proc/self/maps")?;
    Ok(maps.lines().filter(|l| l.ends_with(" /dev/cmamap")).count())
}

pub fn null_and_readonly_args_efault(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let requests = [
        abi::IOC_ALLOC,
        abi::IOC_ALLOC_MAP,
        abi::IOC_FREE,
        abi::IOC_UNMAP_FREE,
        abi::IOC_INFO,
        abi::IOC_LIST,
        abi::IOC_STAT,
    ];
    for request in requests {
        ensure_eq!(
            ioctl_at(&dev, request, 0),
            Err(Errno::EFAULT),
            "{} with a NULL argument",
            raw::request_name(request)
        );
    }
    // A read-only page holding valid arguments: the driver reads them, acts, and must undo
    // everything when it cannot write the results back, the id included. Nothing else
    // allocates in the VM meanwhile, so the ids tell.
    let id_before = dev.alloc(&AllocRequest::new(ctx.pages(1)))?.id();
    let page = cmamap_testkit::region::reserve(ctx.page)?;
    page.mprotect_rw(true)?;
    let mut alloc = AllocRequest::new(ctx.pages(2)).to_args();
    for (request, prot) in [
        (abi::IOC_ALLOC, 0),
        (abi::IOC_ALLOC_MAP, libc::PROT_READ | libc::PROT_WRITE),
    ] {
        alloc.prot = prot as u32;
        page.mprotect_rw(true)?;
        // SAFETY: the page is ours, writable now, and as large as the arguments.
        unsafe { std::ptr::write(page.addr as *mut abi::AllocArgs, alloc) };
        page.mprotect_rw(false)?;
        ensure_eq!(
            ioctl_at(&dev, request, page.addr),
            Err(Errno::EFAULT),
            "{} with read-only arguments",
            raw::request_name(request)
        );
        ensure_eq!(
            crate::ctx::ram_blocks_listed(&dev)?,
            0,
            "blocks left by a failed {}",
            raw::request_name(request)
        );
        ensure_eq!(
            dev.stat()?.bytes_file,
            0,
            "bytes charged after {}",
            raw::request_name(request)
        );
        ensure_eq!(
            device_mappings()?,
            0,
            "mappings left by {}",
            raw::request_name(request)
        );
    }
    // Read-only INFO and STAT arguments (outputs) fail the same way.
    let block = dev.alloc(&AllocRequest::new(ctx.pages(1)))?;
    ensure_eq!(
        block.id(),
        id_before + 1,
        "id of the first block after the failed ALLOC and ALLOC_MAP (the ids they took must \
         come back)"
    );
    page.mprotect_rw(true)?;
    let info = abi::BlockInfo {
        id: block.id(),
        ..Default::default()
    };
    // SAFETY: as above.
    unsafe { std::ptr::write(page.addr as *mut abi::BlockInfo, info) };
    page.mprotect_rw(false)?;
    ensure_eq!(
        ioctl_at(&dev, abi::IOC_INFO, page.addr),
        Err(Errno::EFAULT),
        "INFO, read-only"
    );
    page.mprotect_rw(true)?;
    // SAFETY: as above.
    unsafe { std::ptr::write(page.addr as *mut abi::StatArgs, abi::StatArgs::default()) };
    page.mprotect_rw(false)?;
    ensure_eq!(
        ioctl_at(&dev, abi::IOC_STAT, page.addr),
        Err(Errno::EFAULT),
        "STAT, read-only"
    );
    // The block is untouched by the failures.
    ensure_eq!(
        crate::ctx::ram_blocks_listed(&dev)?,
        1,
        "blocks after the read-only INFO and STAT"
    );
    block.free()?;
    pass()
}

pub fn output_padding_zeroed(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let mut args = AllocRequest::new(ctx.pages(1)).to_args();
    raw::alloc(dev.as_fd(), &mut args).step("ALLOC")?;
    let block = dev.block(args.id)?;
    ensure_eq!(
        (args.pad0, args.device, args.reserved),
        (0, 0, 0),
        "ALLOC's pad0, device and reserved out"
    );
    ensure_eq!(args.addr, 0, "ALLOC's addr out");
    // LIST into entries full of 0xff: every written entry's reserved words come back zero, and
    // the entries past the count stay as they were.
    let mut entries = [abi::BlockInfo {
        id: u32::MAX,
        flags: u32::MAX,
        size: u64::MAX,
        offset: u64::MAX,
        phys_addr: u64::MAX,
        strategy: u32::MAX,
        map_count: u32::MAX,
        owner: u32::MAX,
        owner_tgid: -1,
        dma_mappings: u32::MAX,
        pad0: u32::MAX,
        reserved: u64::MAX,
    }; 3];
    let count = raw::list(dev.as_fd(), &mut entries).step("LIST")? as usize;
    // A bound PCI BAR is listed too; the block is among the written entries.
    ensure!(
        (1..entries.len()).contains(&count),
        "LIST count {count}, expected the block and at most one device"
    );
    let written = &entries[..count];
    ensure!(
        written.iter().any(|e| e.id == args.id),
        "LIST lacks block {}",
        args.id
    );
    for entry in written {
        ensure_eq!(
            (entry.dma_mappings, entry.pad0, entry.reserved),
            (0, 0, 0),
            "device mappings, padding and reserved word of LIST entry {}",
            entry.id
        );
    }
    ensure_eq!(
        (entries[count].pad0, entries[count].reserved),
        (u32::MAX, u64::MAX),
        "LIST entry past the count"
    );
    let mut info = abi::BlockInfo {
        id: args.id,
        ..Default::default()
    };
    raw::info(dev.as_fd(), &mut info).step("INFO")?;
    ensure_eq!(
        (info.dma_mappings, info.pad0, info.reserved),
        (0, 0, 0),
        "INFO's device mappings, padding and reserved word"
    );
    let mut stat = abi::StatArgs::default();
    raw::stat(dev.as_fd(), &mut stat).step("STAT")?;
    ensure_eq!(stat.reserved, [0, 0], "STAT's reserved words");
    block.free()?;
    pass()
}

/// LIST of more blocks than one kmalloc may hold: 65,536 one-page blocks (the default
/// per-file limit) plus a persistent one. Every entry comes back and the kernel stays quiet;
/// before, the list was gathered into one growing kmalloc under the registry's lock, whose
/// order-11 step WARNed, and LIST failed with ENOMEM from then on.
pub fn list_past_the_largest_kmalloc(ctx: &Ctx) -> TestResult {
    if let Some(skipped) = ctx.needs_root() {
        return skipped;
    }
    const BLOCKS: usize = 65_536;
    if std::env::var_os("CMAMAP_LONG_TESTS").is_none() {
        return skip(
            "65,537 ALLOCs take about 6 minutes under TCG: run with CMAMAP_LONG_TESTS=1 \
             (make test-long)",
        );
    }
    let dev = ctx.open()?;
    let stat = dev.stat()?;
    if stat.max_bytes_per_file < (BLOCKS * ctx.page) as u64 {
        return skip("max_bytes_per_file holds fewer than 65,536 pages");
    }
    let persistent = dev.alloc(&AllocRequest::new(ctx.pages(1)).persist(true))?;
    let _guard = PersistGuard::new(ctx, persistent.id());
    // A file of its own, closed at the end: one release frees them all.
    let many = ctx.open()?;
    let mut ids = Vec::with_capacity(BLOCKS);
    for _ in 0..BLOCKS {
        ids.push(many.alloc(&AllocRequest::new(ctx.pages(1)))?.into_raw_id());
    }
    let listed = many.list().step("LIST of 65,537 blocks")?;
    ensure!(
        listed.len() > BLOCKS,
        "LIST gave {} entries, expected at least {}",
        listed.len(),
        BLOCKS + 1
    );
    ensure!(
        listed.iter().any(|info| info.id == persistent.id()),
        "LIST lacks the persistent block"
    );
    let mut seen: Vec<u32> = listed.iter().map(|info| info.id).collect();
    seen.sort_unstable();
    ensure!(
        ids.iter().all(|id| seen.binary_search(id).is_ok()),
        "LIST lacks some of the file's blocks"
    );
    // Again: a LIST that failed once kept failing before.
    ensure_eq!(
        many.list_count()? as usize,
        listed.len(),
        "a second LIST's count"
    );
    drop(many);
    pass()
}
