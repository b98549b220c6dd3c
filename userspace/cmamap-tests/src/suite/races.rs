//! Races between threads (under lockdep and KASAN in the test kernel): faults against munmap,
//! free against touch, fork during faults, and concurrent alloc/free on one or several files.
//!
//! Each checks that every byte a thread reads is one it (or the test) wrote, so a stale or
//! misplaced PTE shows up as wrong data, and the kernel's own checkers catch the rest.

use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cmamap::{AllocRequest, Device, Errno, Prot, Strategy};
use cmamap_testkit::pattern;

use crate::check::{pass, Failure, Step, TestResult};
use crate::ctx::Ctx;
use cmamap_testkit::region::{mmap_raw, Region};
use cmamap_testkit::rng::Rng;

const PAGES: usize = 16;
const RW: i32 = libc::PROT_READ | libc::PROT_WRITE;

/// The rounds a racing test makes at least, and how long it goes on past them while its other
/// thread has not finished one: on a fast kernel all of them could end before a busy host
/// schedules that thread at all, and nothing would race (seen on Debian's kernel).
const RACE_ROUNDS: u32 = 300;
const WAIT_FOR_RACER: Duration = Duration::from_secs(30);

/// Whether a racing test should do another round: `round` are done, `racer` counts what the
/// other thread has done, `start` is when the rounds began.
fn another_round(round: u32, racer: &AtomicU64, start: Instant) -> bool {
    round < RACE_ROUNDS || (racer.load(Ordering::Relaxed) == 0 && start.elapsed() < WAIT_FOR_RACER)
}

/// Writes a counter to the first byte of each page and reads it back until `stop`, counting
/// finished rounds in `done`; returns them, or the first byte that was not what was written.
fn toucher(
    region: &Region,
    page: usize,
    stop: &AtomicBool,
    done: &AtomicU64,
) -> Result<u64, Failure> {
    let mut round = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let value = (round % 251) as u8 + 1;
        for index in 0..PAGES {
            region.write(index * page, value);
            let seen = region.read(index * page);
            ensure_eq!(seen, value, "round {round}, page {index}: byte read back");
        }
        round += 1;
        done.store(round, Ordering::Relaxed);
    }
    Ok(round)
}

pub fn race_fault_vs_munmap(ctx: &Ctx, strategy: Strategy) -> TestResult {
    let p = ctx.page;
    let dev = ctx.open()?;
    let block = dev.alloc(&AllocRequest::new(ctx.pages(PAGES)).strategy(strategy))?;
    let region = Region::map(dev.as_fd(), block.offset(), PAGES * p)?;
    let stop = AtomicBool::new(false);
    let done = AtomicU64::new(0);
    let replaced = std::thread::scope(|scope| -> Result<u32, Failure> {
        let worker = scope.spawn(|| toucher(&region, p, &stop, &done));
        // Replace the mapping under the toucher: MAP_FIXED unmaps (zapping every PTE the
        // faults made) and maps again in one step, so the range is never a hole.
        let mut replaced = 0;
        let mut result = Ok(());
        let start = Instant::now();
        let mut round = 0;
        while another_round(round, &done, start) {
            round += 1;
            let offset = block.offset();
            match mmap_raw(
                region.addr,
                PAGES * p,
                RW,
                libc::MAP_FIXED,
                dev.as_fd(),
                offset,
            ) {
                Ok(addr) if addr == region.addr => replaced += 1,
                Ok(addr) => {
                    result = Err(Failure::new(format!(
                        "round {round}: MAP_FIXED gave {addr:#x}"
                    )));
                    break;
                }
                Err(errno) => {
                    result = Err(Failure::new(format!("round {round}: MAP_FIXED: {errno}")));
                    break;
                }
            }
            // Half-way, also split the VMA under the faults.
            if round % 2 == 1 {
                let piece = mmap_raw(
                    region.addr + 5 * p,
                    3 * p,
                    RW,
                    libc::MAP_FIXED,
                    dev.as_fd(),
                    offset + 5 * p as u64,
                );
                if let Err(errno) = piece {
                    result = Err(Failure::new(format!("round {round}: split: {errno}")));
                    break;
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
        let rounds = worker
            .join()
            .map_err(|_| Failure::new("toucher panicked"))??;
        result?;
        ensure!(rounds > 0, "the toucher never finished a round");
        Ok(replaced)
    })?;
    ensure!(
        replaced >= RACE_ROUNDS,
        "{replaced} mappings replaced, not {RACE_ROUNDS}"
    );
    // The last values written are in the block.
    let mut byte = [0u8];
    block.pread(0, &mut byte)?;
    ensure!(byte[0] != 0, "page 0 was never written");
    drop(region);
    ensure_eq!(block.info()?.map_count, 0, "map_count after munmap");
    block.free()?;
    pass()
}

pub fn race_free_vs_touch(ctx: &Ctx, strategy: Strategy) -> TestResult {
    let p = ctx.page;
    let dev = ctx.open()?;
    let block = dev.alloc(&AllocRequest::new(ctx.pages(PAGES)).strategy(strategy))?;
    let region = Region::map(dev.as_fd(), block.offset(), PAGES * p)?;
    let stop = AtomicBool::new(false);
    let done = AtomicU64::new(0);
    std::thread::scope(|scope| -> Result<(), Failure> {
        let worker = scope.spawn(|| toucher(&region, p, &stop, &done));
        let mut result = block.free().step("FREE while touched");
        // New blocks, full of 0xee, must never show through the freed block's mapping.
        for _ in 0..40 {
            if result.is_err() {
                break;
            }
            result = (|| {
                let other = dev.alloc(&AllocRequest::new(ctx.pages(PAGES)).strategy(strategy))?;
                other.pwrite(0, &vec![0xee; PAGES * p])?;
                other.free()?;
                Ok::<(), cmamap::Error>(())
            })()
            .step("alloc, write and free another block");
        }
        stop.store(true, Ordering::Relaxed);
        worker
            .join()
            .map_err(|_| Failure::new("toucher panicked"))??;
        result
    })?;
    drop(region);
    pass()
}

pub fn race_fork_during_faults(ctx: &Ctx, strategy: Strategy) -> TestResult {
    let p = ctx.page;
    let dev = ctx.open()?;
    let block = dev.alloc(&AllocRequest::new(ctx.pages(PAGES)).strategy(strategy))?;
    let region = Region::map(dev.as_fd(), block.offset(), PAGES * p)?;
    let stop = AtomicBool::new(false);
    let forks = 40;
    std::thread::scope(|scope| -> Result<(), Failure> {
        // Page i only ever holds 0 (never written) or i + 1, so a child may check it
        // whatever moment the fork caught.
        let worker = scope.spawn(|| -> Result<(), Failure> {
            while !stop.load(Ordering::Relaxed) {
                let again = mmap_raw(
                    region.addr,
                    PAGES * p,
                    RW,
                    libc::MAP_FIXED,
                    dev.as_fd(),
                    block.offset(),
                );
                ensure!(again == Ok(region.addr), "MAP_FIXED: {again:?}");
                for index in 0..PAGES {
                    region.write(index * p, index as u8 + 1);
                }
            }
            Ok(())
        });
        let mut result = Ok(());
        for round in 0..forks {
            // SAFETY: the child only reads memory and calls _exit, both async-signal-safe.
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                let mut code = 0;
                for index in 0..PAGES {
                    // SAFETY: the region is mapped in the child (driver VMAs are copied).
                    let seen =
                        unsafe { std::ptr::read_volatile((region.addr + index * p) as *const u8) };
                    if seen != 0 && seen != index as u8 + 1 {
                        code = 1 + index as i32;
                    }
                }
                // SAFETY: leaves the child without running any destructor.
                unsafe { libc::_exit(code) };
            }
            if pid < 0 {
                result = Err(Failure::new(format!(
                    "round {round}: fork: {}",
                    Errno::last()
                )));
                break;
            }
            let mut status = 0;
            // SAFETY: waits for our own child.
            unsafe { libc::waitpid(pid, &mut status, 0) };
            if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
                result = Err(Failure::new(format!(
                    "round {round}: child saw a wrong byte or died (status {status:#x})"
                )));
                break;
            }
        }
        stop.store(true, Ordering::Relaxed);
        worker
            .join()
            .map_err(|_| Failure::new("toucher panicked"))??;
        result
    })?;
    drop(region);
    ensure_eq!(
        block.info()?.map_count,
        0,
        "map_count after all children exited"
    );
    block.free()?;
    pass()
}

const THREADS: usize = 4;
const ROUNDS: usize = 40;

/// One thread's share of the alloc/free race: alloc, maybe map and check, free.
fn churn(ctx: &Ctx, dev: &Device, seed: u64) -> Result<(), Failure> {
    let mut rng = Rng::new(seed);
    for round in 0..ROUNDS {
        let strategy = Strategy::CONCRETE[rng.below(4) as usize];
        let pages = 1 + rng.below(4) as usize;
        let block = dev
            .alloc(&AllocRequest::new(ctx.pages(pages)).strategy(strategy))
            .map_err(|e| Failure::new(format!("round {round}: alloc: {e}")))?;
        if rng.chance(50) {
            let mut mapping = block.map(Prot::ReadWrite)?;
            let value = rng.next_u64();
            pattern::fill(mapping.as_mut_slice(), value, 0);
            pattern::check(mapping.as_slice(), value, 0)
                .map_err(|m| Failure::new(format!("round {round}: {m}")))?;
            if rng.chance(50) {
                // Free while mapped; the munmap below releases it.
                dev.free(block.id())?;
                drop(mapping);
                block.into_raw_id();
                continue;
            }
        }
        block.free()?;
    }
    Ok(())
}

fn alloc_free_threads(ctx: &Ctx, shared: bool) -> TestResult {
    let observer = ctx.open()?;
    let before = observer.stat()?;
    let shared_dev = ctx.open()?;
    std::thread::scope(|scope| -> Result<(), Failure> {
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let shared_dev = &shared_dev;
                scope.spawn(move || -> Result<(), Failure> {
                    if shared {
                        churn(ctx, shared_dev, t as u64)
                    } else {
                        let own = ctx.open()?;
                        churn(ctx, &own, t as u64)
                    }
                })
            })
            .collect();
        for (t, worker) in workers.into_iter().enumerate() {
            worker
                .join()
                .map_err(|_| Failure::new(format!("thread {t} panicked")))?
                .map_err(|f| Failure::new(format!("thread {t}: {}", f.0)))?;
        }
        Ok(())
    })?;
    ensure_eq!(
        shared_dev.stat()?.blocks_file,
        0,
        "blocks left on the shared file"
    );
    ensure_eq!(
        crate::ctx::ram_blocks_listed(&shared_dev)?,
        0,
        "blocks listed on the shared file"
    );
    let after = observer.stat()?;
    ensure_eq!(
        after.blocks_total,
        before.blocks_total,
        "live blocks after the race"
    );
    ensure_eq!(
        after.bytes_total,
        before.bytes_total,
        "live bytes after the race"
    );
    pass()
}

pub fn race_alloc_free_one_fd(ctx: &Ctx) -> TestResult {
    alloc_free_threads(ctx, true)
}

pub fn race_alloc_free_many_fds(ctx: &Ctx) -> TestResult {
    alloc_free_threads(ctx, false)
}

pub fn race_uaccess_vs_munmap(ctx: &Ctx, strategy: Strategy) -> TestResult {
    let p = ctx.page;
    let len = PAGES * p;
    let dev = ctx.open()?;
    let block = dev.alloc(&AllocRequest::new(len as u64).strategy(strategy))?;
    block.pwrite(0, &vec![0x77; len])?;
    let zero = std::fs::File::open("/dev/zero").step("open /dev/zero")?;
    let region = Region::map(dev.as_fd(), block.offset(), len)?;
    let addr = region.addr;
    std::mem::forget(region);
    let stop = AtomicBool::new(false);
    // Reads done, so that the rounds go on until the reader has run (another_round).
    let reads = AtomicU64::new(0);
    // The kernel itself touches the range (read(2) from /dev/zero copies into it), so a fault
    // that meets the unmapping gives EFAULT instead of a signal.
    let (copies, refusals) = std::thread::scope(|scope| -> Result<(u64, u64), Failure> {
        let worker = scope.spawn(|| -> Result<(u64, u64), Failure> {
            let (mut copies, mut refusals) = (0, 0);
            let mut index = 0;
            while !stop.load(Ordering::Relaxed) {
                let target = addr + (index % PAGES) * p;
                // SAFETY: the kernel writes at most `p` bytes there, or fails with EFAULT when
                // the page is not mapped; nothing in Rust references the range.
                let read = unsafe {
                    libc::read(
                        std::os::fd::AsRawFd::as_raw_fd(&zero),
                        target as *mut libc::c_void,
                        p,
                    )
                };
                match read {
                    n if n == p as isize => copies += 1,
                    -1 if Errno::last() == Errno::EFAULT => refusals += 1,
                    other => fail!("read into the mapping: {other} ({})", Errno::last()),
                }
                index += 1;
                reads.store(copies + refusals, Ordering::Relaxed);
            }
            Ok((copies, refusals))
        });
        let mut result = Ok(());
        let start = Instant::now();
        let mut round = 0;
        while another_round(round, &reads, start) {
            round += 1;
            // Unmap the device by mapping inaccessible memory over it in place (a bare munmap
            // would leave a hole that another thread's allocation may take), then map the
            // device back.
            // SAFETY: MAP_FIXED replaces only the test's own range.
            let hole = unsafe {
                libc::mmap(
                    addr as *mut libc::c_void,
                    len,
                    libc::PROT_NONE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                    -1,
                    0,
                )
            };
            if hole as usize != addr {
                result = Err(Failure::new(format!(
                    "round {round}: PROT_NONE over the range: {}",
                    Errno::last()
                )));
                break;
            }
            match mmap_raw(addr, len, RW, libc::MAP_FIXED, dev.as_fd(), block.offset()) {
                Ok(at) if at == addr => {}
                other => {
                    result = Err(Failure::new(format!("round {round}: remap: {other:?}")));
                    break;
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
        let counts = worker
            .join()
            .map_err(|_| Failure::new("reader panicked"))??;
        result?;
        Ok(counts)
    })?;
    let region = Region::adopt(addr, len);
    // Every page the reader reached is zero, the others keep the 0x77 they had.
    for page in 0..PAGES {
        let byte = region.read(page * p);
        ensure!(byte == 0 || byte == 0x77, "page {page} holds {byte:#04x}");
    }
    ensure!(copies + refusals > 0, "the reader never ran");
    drop(region);
    ensure_eq!(block.info()?.map_count, 0, "map_count after munmap");
    block.free()?;
    pass()
}

/// ALLOC_MAP from 4 threads on one file, while another thread keeps mmapping ids that are
/// about to be handed out. Every ALLOC_MAP and every UNMAP_FREE must succeed: the threads take
/// turns with the file's one slot for an unpublished block, and only the thread whose
/// ALLOC_MAP is running may map it (the sniper gets EINVAL until the id is published).
pub fn race_alloc_map_one_fd(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    // The next ids come after this one.
    let first_id = dev.alloc(&AllocRequest::new(ctx.pages(1)))?.id() + 1;
    let done = AtomicBool::new(false);
    let sniped = std::thread::scope(|scope| -> Result<u64, Failure> {
        let sniper = scope.spawn(|| {
            let mut rng = Rng::new(7);
            let mut sniped = 0u64;
            while !done.load(Ordering::Relaxed) {
                let id = first_id + rng.below((THREADS * ROUNDS) as u64) as u32;
                let offset = cmamap::abi::offset_of_id(id);
                if dev.map(offset, ctx.page, Prot::ReadWrite).is_ok() {
                    sniped += 1;
                }
            }
            sniped
        });
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let dev = &dev;
                scope.spawn(move || -> Result<(), Failure> {
                    let mut rng = Rng::new(100 + t as u64);
                    for round in 0..ROUNDS {
                        let strategy = Strategy::CONCRETE[rng.below(4) as usize];
                        let pages = 1 + rng.below(4) as usize;
                        let request = AllocRequest::new(ctx.pages(pages)).strategy(strategy);
                        let mut mapped = dev
                            .alloc_map(&request, Prot::ReadWrite)
                            .map_err(|e| Failure::new(format!("round {round}: ALLOC_MAP: {e}")))?;
                        let value = rng.next_u64();
                        pattern::fill(mapped.as_mut_slice(), value, 0);
                        pattern::check(mapped.as_slice(), value, 0)
                            .map_err(|m| Failure::new(format!("round {round}: {m}")))?;
                        mapped
                            .unmap_free()
                            .map_err(|e| Failure::new(format!("round {round}: UNMAP_FREE: {e}")))?;
                    }
                    Ok(())
                })
            })
            .collect();
        let mut result = Ok(());
        for (t, worker) in workers.into_iter().enumerate() {
            let joined = worker
                .join()
                .map_err(|_| Failure::new(format!("thread {t} panicked")))
                .and_then(|r| r.map_err(|f| Failure::new(format!("thread {t}: {}", f.0))));
            result = result.and(joined);
        }
        done.store(true, Ordering::Relaxed);
        let sniped = sniper.join().map_err(|_| Failure::new("sniper panicked"))?;
        result.map(|()| sniped)
    })?;
    ensure_eq!(
        crate::ctx::ram_blocks_listed(&dev)?,
        0,
        "blocks listed after the race"
    );
    println!("# {sniped} of the sniper's mmaps hit a published block");
    pass()
}
