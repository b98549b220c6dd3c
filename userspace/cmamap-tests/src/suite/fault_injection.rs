//! Fault injection: `/proc/thread-self/fail-nth` fails the Nth fault-injection point (slab,
//! page allocator, user copies) that this thread reaches. Walking N from 1 until the call
//! succeeds without an injection visits every failure path of ALLOC, ALLOC_MAP and mmap once.
//! Each injected failure must give a clean errno and leave no block, id or mapping behind;
//! splats and leaks are the verdict's business.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;

use cmamap::{abi, errno_name, raw, AllocRequest, Device, Errno, Strategy};

use crate::check::{pass, skip, Failure, Step, TestResult};
use crate::ctx::Ctx;
use crate::figures;
use cmamap_testkit::region::{mmap_raw, Region};

/// The errnos an injected allocation or copy failure may surface as.
const CLEAN: [Errno; 4] = [Errno::ENOMEM, Errno::EFAULT, Errno::EBUSY, Errno::EAGAIN];
/// A call with more injection points than this is a runaway.
const MAX_POINTS: u32 = 5000;

/// The debugfs knobs that make the page and slab allocators honour fail-nth for the sleeping,
/// order-0 allocations a driver makes; restored on drop.
struct Knobs(Vec<(String, String)>);

impl Knobs {
    fn set() -> Result<Option<Self>, Failure> {
        let base = "/sys/kernel/debug";
        let wanted = [
            ("failslab/ignore-gfp-wait", "N"),
            ("fail_page_alloc/ignore-gfp-wait", "N"),
            ("fail_page_alloc/min-order", "0"),
            // One line per injection would flood the console; the test counts them itself.
            ("failslab/verbose", "0"),
            ("fail_page_alloc/verbose", "0"),
            ("fail_usercopy/verbose", "0"),
        ];
        let mut saved = Vec::new();
        for (file, value) in wanted {
            let path = format!("{base}/{file}");
            let Ok(old) = std::fs::read_to_string(&path) else {
                let knobs = Knobs(saved);
                drop(knobs);
                return Ok(None);
            };
            std::fs::write(&path, value).step(&format!("write {path}"))?;
            saved.push((path, old.trim().to_owned()));
        }
        Ok(Some(Knobs(saved)))
    }
}

impl Drop for Knobs {
    fn drop(&mut self) {
        for (path, old) in &self.0 {
            let _ = std::fs::write(path, old);
        }
    }
}

/// This thread's fail-nth file.
struct FailNth(File);

impl FailNth {
    fn open() -> Result<Option<Self>, Failure> {
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/proc/thread-self/fail-nth")
        {
            Ok(file) => Ok(Some(Self(file))),
            Err(_) => Ok(None),
        }
    }

    /// Fails the `n`th injection point from now on. Call right before the system call.
    fn arm(&self, n: u32) -> Result<(), Failure> {
        self.0
            .write_at(n.to_string().as_bytes(), 0)
            .step("write fail-nth")?;
        Ok(())
    }

    /// Disarms; true when the armed failure was injected.
    fn disarm(&self) -> bool {
        let mut buf = [0u8; 16];
        // Reading copies to user space, itself an injection point: when it fails, the armed
        // count had not run out during the call.
        let injected = match self.0.read_at(&mut buf, 0) {
            Ok(n) => {
                std::str::from_utf8(&buf[..n])
                    .ok()
                    .and_then(|s| s.trim().parse::<u32>().ok())
                    == Some(0)
            }
            Err(_) => false,
        };
        // The write may fail the same way, and then has consumed the count: twice is enough.
        let _ = self.0.write_at(b"0", 0);
        let _ = self.0.write_at(b"0", 0);
        injected
    }
}

/// What one walk saw.
#[derive(Default)]
struct Walk {
    points: u32,
    errnos: BTreeMap<String, u32>,
    absorbed: u32,
}

/// Mappings of the device in this process, from /proc/self/maps.
fn device_mappings() -> Result<usize, Failure> {
    let maps = std::fs::read_to_string("/proc/self/maps").step("read /proc/self/maps")?;
    Ok(maps
        .lines()
        .filter(|line| line.ends_with(" /dev/cmamap"))
        .count())
}

/// Fails unless the file holds exactly `blocks` blocks and the process no device mapping
/// beyond `mappings`.
fn ensure_clean(dev: &Device, blocks: u32, mappings: usize, what: &str) -> Result<(), Failure> {
    ensure_eq!(
        crate::ctx::ram_blocks_listed(dev)?,
        blocks,
        "{what}: blocks listed"
    );
    ensure_eq!(dev.stat()?.blocks_file, blocks, "{what}: blocks charged");
    ensure_eq!(device_mappings()?, mappings, "{what}: device mappings");
    Ok(())
}

/// What a call under injection returned, and whether the armed failure was injected.
type Called = Result<(Result<(), Errno>, bool), Failure>;

/// Calls `call` with failure point 1, 2, ... until it succeeds with nothing injected. `call`
/// arms `fail` with the given point right before its system call, disarms right after (before
/// any cleanup, which must not meet the armed failure) and cleans up a success; `check`
/// verifies the state after each attempt.
fn walk(
    what: &str,
    fail: &FailNth,
    mut call: impl FnMut(&FailNth, u32) -> Called,
    mut check: impl FnMut(&str) -> Result<(), Failure>,
) -> Result<Walk, Failure> {
    let mut walk = Walk::default();
    for n in 1..=MAX_POINTS {
        let (result, injected) = call(fail, n)?;
        let step = format!("{what}, failure point {n}");
        match result {
            Ok(()) if !injected => {
                walk.points = n - 1;
                return Ok(walk);
            }
            Ok(()) => walk.absorbed += 1,
            Err(errno) => {
                ensure!(injected, "{step}: {errno} without an injected failure");
                ensure!(CLEAN.contains(&errno), "{step}: unclean errno {errno}");
                *walk.errnos.entry(errno_name(errno)).or_default() += 1;
            }
        }
        check(&step)?;
    }
    fail!("{what}: still failing after {MAX_POINTS} injection points")
}

fn report(what: &str, walk: &Walk) {
    let errnos: Vec<String> = walk
        .errnos
        .iter()
        .map(|(e, n)| format!("{e} {n}"))
        .collect();
    println!(
        "# {what}: {} injection points, errnos [{}], {} absorbed by retries",
        walk.points,
        errnos.join(", "),
        walk.absorbed
    );
    figures::record("fault_points", u64::from(walk.points));
}

fn setup() -> Result<Result<(FailNth, Knobs), TestResult>, Failure> {
    let Some(knobs) = Knobs::set()? else {
        return Ok(Err(skip(
            "no failslab/fail_page_alloc/fail_usercopy in debugfs (FAULT_INJECTION_DEBUG_FS)",
        )));
    };
    let Some(fail) = FailNth::open()? else {
        return Ok(Err(skip("no /proc/thread-self/fail-nth (FAULT_INJECTION)")));
    };
    Ok(Ok((fail, knobs)))
}

pub fn fault_injection_alloc(ctx: &Ctx, strategy: Strategy) -> TestResult {
    let (fail, _knobs) = match setup()? {
        Ok(armed) => armed,
        Err(skipped) => return skipped,
    };
    let dev = ctx.open()?;
    let request = AllocRequest::new(ctx.pages(2)).strategy(strategy);
    let walk = walk(
        &format!("ALLOC {strategy}"),
        &fail,
        |fail, n| {
            let mut args = request.to_args();
            fail.arm(n)?;
            let result = raw::alloc(dev.as_fd(), &mut args);
            let injected = fail.disarm();
            if result.is_ok() {
                dev.free(args.id).step("FREE of the block ALLOC made")?;
            }
            Ok((result, injected))
        },
        |step| ensure_clean(&dev, 0, 0, step),
    )?;
    report(&format!("fault injection, ALLOC {strategy}"), &walk);
    pass()
}

pub fn fault_injection_alloc_map(ctx: &Ctx, strategy: Strategy) -> TestResult {
    let (fail, _knobs) = match setup()? {
        Ok(armed) => armed,
        Err(skipped) => return skipped,
    };
    let dev = ctx.open()?;
    let request = AllocRequest::new(ctx.pages(2)).strategy(strategy);
    let mut args = request.to_args();
    args.prot = (libc::PROT_READ | libc::PROT_WRITE) as u32;
    let walk = walk(
        &format!("ALLOC_MAP {strategy}"),
        &fail,
        |fail, n| {
            let mut call_args = args;
            fail.arm(n)?;
            let result = raw::alloc_map(dev.as_fd(), &mut call_args);
            let injected = fail.disarm();
            if result.is_ok() {
                let mapping = Region::adopt(call_args.addr as usize, ctx.page * 2);
                mapping.write(ctx.page, 1);
                ensure_eq!(mapping.read(ctx.page), 1, "byte written to the new mapping");
                let free = abi::FreeArgs {
                    id: call_args.id,
                    addr: call_args.addr,
                    ..Default::default()
                };
                // SAFETY: the mapping is ours and forgotten right after, untouched.
                unsafe { raw::unmap_free(dev.as_fd(), &free) }.step("UNMAP_FREE")?;
                std::mem::forget(mapping);
            }
            Ok((result, injected))
        },
        |step| ensure_clean(&dev, 0, 0, step),
    )?;
    report(&format!("fault injection, ALLOC_MAP {strategy}"), &walk);
    pass()
}

pub fn fault_injection_mmap(ctx: &Ctx, strategy: Strategy) -> TestResult {
    let (fail, _knobs) = match setup()? {
        Ok(armed) => armed,
        Err(skipped) => return skipped,
    };
    let dev = ctx.open()?;
    let len = 2 * ctx.page;
    let block = dev.alloc(&AllocRequest::new(len as u64).strategy(strategy))?;
    let offset = block.offset();
    let walk = walk(
        &format!("mmap {strategy}"),
        &fail,
        |fail, n| {
            fail.arm(n)?;
            let result = mmap_raw(
                0,
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                0,
                dev.as_fd(),
                offset,
            );
            let injected = fail.disarm();
            let result = result.map(|addr| {
                let mapping = Region::adopt(addr, len);
                mapping.write(len - 1, 7);
            });
            Ok((result, injected))
        },
        |step| {
            ensure_eq!(block.info()?.map_count, 0, "{step}: map_count");
            ensure_clean(&dev, 1, 0, step)
        },
    )?;
    // The block is intact after all the failed attempts.
    let mut byte = [0u8];
    block.pread((len - 1) as u64, &mut byte)?;
    ensure_eq!(byte[0], 7, "byte written through the last mapping");
    block.free()?;
    report(&format!("fault injection, mmap {strategy}"), &walk);
    pass()
}
