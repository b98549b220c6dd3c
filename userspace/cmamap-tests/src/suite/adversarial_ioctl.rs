//! Adversarial ioctls: sizes at the edges of u64 and of the limits, and CMA exhaustion.

use cmamap::{AllocRequest, Device, Errno, Prot, Strategy};

use crate::check::{expect_alloc_refused, pass, skip, Failure, TestResult};
use crate::ctx::{is_cma_shortage, Ctx};

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
    ensure_eq!(dev.list_count()?, 0, "blocks listed after the refusals");
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
    let base = ctx.cma_free_kib();
    let baseline_available = cmamap::meminfo::cma_available_pages();
    let (files, first, why) = exhaust(ctx)?;
    if why == Errno::ENOSPC {
        drop(files);
        return skip(format!(
            "the module's total limit stopped it at {first} bytes before CMA did"
        ));
    }
    ensure!(first > 0, "not even one {CHUNK}-byte block fitted");
    drop(files);
    if let Some(base) = base {
        if let Err(now) = ctx.wait_for_cma_free(base) {
            fail!("after freeing {first} bytes: CmaFree is {now} kB, {base} kB before");
        }
    }
    ensure_eq!(
        cmamap::meminfo::cma_available_pages(),
        baseline_available,
        "CMA available pages after freeing everything"
    );
    // The same total fits again: nothing was lost or fragmented for good.
    let (files, second, _) = exhaust(ctx)?;
    drop(files);
    ensure!(
        second >= first,
        "only {second} bytes fitted the second time, {first} the first"
    );
    if let Some(base) = base {
        if let Err(now) = ctx.wait_for_cma_free(base) {
            fail!("after the second round: CmaFree is {now} kB, {base} kB before");
        }
    }
    pass()
}
