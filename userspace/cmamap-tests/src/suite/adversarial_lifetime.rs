//! Adversarial lifetimes: stale mappings after a free, fork with either side exiting first,
//! MADV_DONTFORK, SIGKILL with blocks held, and loading the module again and again.

use std::io::Read;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use cmamap::{AllocRequest, Device, Errno, Prot, Strategy};
use cmamap_testkit::pattern;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::check::{expect_errno, pass, Failure, Step, TestResult};
use crate::child;
use crate::ctx::Ctx;
use crate::module::{self, Params, Restore};
use cmamap_testkit::region::Region;

pub fn stale_mapping_probe(ctx: &Ctx, strategy: Strategy) -> TestResult {
    let pages = 16;
    let len = pages * ctx.page;
    let dev = ctx.open()?;
    let a = dev.alloc(&AllocRequest::new(len as u64).strategy(strategy))?;
    let region = Region::map(dev.as_fd(), a.offset(), len)?;
    // Touch only half of it, so that fault strategies fault the rest in after the free.
    region.copy_in(0, &pattern::generate(len / 2, 61, 0));
    let a_phys = a.info()?.phys_addr;
    a.free()?;

    // New blocks of the same size, written with other patterns, must never show through A.
    for round in 0..8u64 {
        let b = dev.alloc(&AllocRequest::new(len as u64).strategy(strategy))?;
        if a_phys != 0 {
            ensure!(
                b.info()?.phys_addr != a_phys,
                "round {round}: block B got A's memory at {a_phys:#x} while A is still mapped"
            );
        }
        b.pwrite(0, &pattern::generate(len, 70 + round, 0))?;
        pattern::check(&region.copy_out(0, len / 2), 61, 0)
            .map_err(|m| Failure::new(format!("round {round}: A's written half: {m}")))?;
        pattern::check_filled(&region.copy_out(len / 2, len / 2), 0, (len / 2) as u64)
            .map_err(|m| Failure::new(format!("round {round}: A's untouched half: {m}")))?;
        b.free()?;
    }
    drop(region);
    // A's memory is back in CMA now: whoever gets it next must find zeros.
    let c = dev.alloc(&AllocRequest::new(len as u64).strategy(strategy))?;
    pattern::check_filled(&c.read_all()?, 0, 0)
        .map_err(|m| Failure::new(format!("block allocated after A's munmap: {m}")))?;
    c.free()?;
    pass()
}

/// Waits until this process's parent is no longer `parent` (it exited and we were reparented).
fn wait_for_orphaning(parent: i32) -> Result<(), Failure> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while nix::unistd::getppid().as_raw() == parent {
        ensure!(
            Instant::now() < deadline,
            "the parent did not exit within 10 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

pub fn fork_either_exits_first(ctx: &Ctx, strategy: Strategy) -> TestResult {
    let len = 8 * ctx.page;
    let base = ctx.cma_level();
    // Parent exits first: a middle process allocates and maps, forks a grandchild and exits;
    // the grandchild, holding the only mapping and file left, checks and writes the memory.
    let (mut reader, writer) = std::io::pipe().step("pipe")?;
    let middle = child::spawn(|| {
        let dev = ctx.open()?;
        let block = dev.alloc(&AllocRequest::new(len as u64).strategy(strategy))?;
        let region = Region::map(dev.as_fd(), block.offset(), len)?;
        region.copy_in(0, &pattern::generate(len / 2, 62, 0));
        let me = nix::unistd::getpid().as_raw();
        let grandchild = child::spawn(|| {
            let mut writer = writer;
            let outcome = (|| -> Result<(), Failure> {
                wait_for_orphaning(me)?;
                pattern::check(&region.copy_out(0, len / 2), 62, 0)
                    .map_err(|m| Failure::new(format!("grandchild, written half: {m}")))?;
                pattern::check_filled(&region.copy_out(len / 2, len / 2), 0, (len / 2) as u64)
                    .map_err(|m| Failure::new(format!("grandchild, untouched half: {m}")))?;
                region.copy_in(len / 2, &pattern::generate(len / 2, 63, (len / 2) as u64));
                pattern::check(&region.copy_out(len / 2, len / 2), 63, (len / 2) as u64)?;
                ensure_eq!(block.info()?.map_count, 1, "map_count in the grandchild");
                Ok(())
            })();
            let message = match outcome {
                Ok(()) => "ok".to_owned(),
                Err(failure) => failure.0,
            };
            use std::io::Write;
            let _ = writer.write_all(message.as_bytes());
            Ok(())
        })?;
        // Leave without waiting: the grandchild must outlive us (forget skips the kill).
        std::mem::forget(grandchild);
        block.into_raw_id();
        std::mem::forget(region);
        Ok(())
    })?;
    child::wait(middle)?;
    let mut message = String::new();
    reader
        .read_to_string(&mut message)
        .step("read the grandchild's verdict")?;
    ensure_eq!(message.as_str(), "ok", "grandchild's verdict");
    ctx.ensure_cma_returned(base, "after both exited")?;

    // Child exits first: the parent's mapping and block stay intact.
    let dev = ctx.open()?;
    let block = dev.alloc(&AllocRequest::new(len as u64).strategy(strategy))?;
    let region = Region::map(dev.as_fd(), block.offset(), len)?;
    region.copy_in(0, &pattern::generate(len, 64, 0));
    child::run(|| {
        pattern::check(&region.copy_out(0, len), 64, 0)
            .map_err(|m| Failure::new(format!("child: {m}")))?;
        region.copy_in(0, &pattern::generate(len, 65, 0));
        Ok(())
    })?;
    pattern::check(&region.copy_out(0, len), 65, 0)
        .map_err(|m| Failure::new(format!("parent after the child exited: {m}")))?;
    ensure_eq!(
        block.info()?.map_count,
        1,
        "map_count after the child exited"
    );
    drop(region);
    block.free()?;
    pass()
}

pub fn madv_dontfork(ctx: &Ctx, strategy: Strategy) -> TestResult {
    let len = 4 * ctx.page;
    let dev = ctx.open()?;
    let block = dev.alloc(&AllocRequest::new(len as u64).strategy(strategy))?;
    let kept = Region::map(dev.as_fd(), block.offset(), len)?;
    let dropped = Region::map(dev.as_fd(), block.offset(), len)?;
    kept.copy_in(0, &pattern::generate(len, 66, 0));
    dropped
        .madvise(0, len, libc::MADV_DONTFORK)
        .step("MADV_DONTFORK")?;
    let (dropped_addr, kept_addr) = (dropped.addr, kept.addr);
    child::run(|| {
        let mut vec = [0u8; 1];
        // SAFETY: mincore only inspects the range; ENOMEM means it is not mapped.
        let rc = unsafe { libc::mincore(dropped_addr as *mut libc::c_void, len, vec.as_mut_ptr()) };
        ensure!(
            rc == -1 && Errno::last() == Errno::ENOMEM,
            "the MADV_DONTFORK range is mapped in the child"
        );
        let rc =
            unsafe { libc::mincore(kept_addr as *mut libc::c_void, ctx.page, vec.as_mut_ptr()) };
        ensure_eq!(
            rc,
            0,
            "mincore of the inherited mapping ({})",
            Errno::last()
        );
        pattern::check(&kept.copy_out(0, len), 66, 0)
            .map_err(|m| Failure::new(format!("child, inherited mapping: {m}")))?;
        ensure_eq!(
            block.info()?.map_count,
            3,
            "map_count with the child's copy"
        );
        Ok(())
    })?;
    ensure_eq!(
        block.info()?.map_count,
        2,
        "map_count after the child exited"
    );
    // Special mappings cannot be made copyable again.
    expect_errno(
        dropped.madvise(0, len, libc::MADV_DOFORK),
        Errno::EINVAL,
        "MADV_DOFORK on a driver mapping",
    )?;
    pattern::check(&dropped.copy_out(0, len), 66, 0)?;
    drop((kept, dropped));
    block.free()?;
    pass()
}

pub fn sigkill_with_blocks_and_mappings(ctx: &Ctx) -> TestResult {
    let observer = ctx.open()?;
    let before = observer.stat()?;
    let base = ctx.cma_level();
    let (mut ready_reader, ready_writer) = std::io::pipe().step("pipe")?;
    let (hold_reader, hold_writer) = std::io::pipe().step("pipe")?;
    // The victim inherits both ends of `hold`, so its read below never ends: it waits for the
    // kill. `ready_writer` moves into the closure, so the parent's copy closes after the fork.
    let victim = child::spawn(move || {
        let dev = ctx.open()?;
        let mut regions = Vec::new();
        for (i, strategy) in Strategy::CONCRETE.into_iter().enumerate() {
            let block = dev.alloc(&AllocRequest::new(ctx.pages(8)).strategy(strategy))?;
            let region = Region::map(dev.as_fd(), block.offset(), 8 * ctx.page)?;
            region.copy_in(0, &pattern::generate(4 * ctx.page, 67 + i as u64, 0));
            // Half the blocks are freed while mapped, half stay allocated.
            if i % 2 == 0 {
                block.free()?;
            } else {
                block.into_raw_id();
            }
            regions.push(region);
        }
        let mapped = dev.alloc_map(&AllocRequest::new(ctx.pages(4)), Prot::ReadWrite)?;
        std::mem::forget(mapped);
        use std::io::Write;
        let mut ready_writer = ready_writer;
        ready_writer.write_all(b"r").step("signal readiness")?;
        // Block until killed.
        let mut hold_reader = hold_reader;
        let _ = hold_reader.read(&mut [0u8]);
        fail!("the victim was not killed");
    })?;
    let mut byte = [0u8];
    ready_reader
        .read_exact(&mut byte)
        .step("wait for the victim")?;
    let held = observer.stat()?;
    // Blocks freed while mapped stay charged until their last munmap: all five count.
    ensure_eq!(
        held.blocks_total,
        before.blocks_total + 5,
        "live blocks while the victim holds them"
    );
    kill(Pid::from_raw(victim.pid()), Signal::SIGKILL).step("SIGKILL")?;
    match victim.wait() {
        Ok(Err(message)) if message.contains("SIGKILL") => {}
        other => fail!("victim ended with {other:?}, expected death by SIGKILL"),
    }
    drop(hold_writer);
    let after = observer.stat()?;
    ensure_eq!(
        after.blocks_total,
        before.blocks_total,
        "live blocks after the kill"
    );
    ensure_eq!(
        after.bytes_total,
        before.bytes_total,
        "live bytes after the kill"
    );
    ctx.ensure_cma_returned(base, "after the kill")?;
    pass()
}

/// How many times `insmod_rmmod_cycles` loads and unloads the module.
const RELOAD_CYCLES: usize = 50;

pub fn insmod_rmmod_cycles(ctx: &Ctx) -> TestResult {
    if let Some(skipped) = module::cannot_reload(ctx) {
        return skipped;
    }
    // Fifty reloads of a module built with every debug option take a while under TCG.
    nix::unistd::alarm::set(600);
    let params = Params::current(ctx)?;
    let restore = Restore::new(ctx, params);
    for cycle in 0..RELOAD_CYCLES {
        restore
            .reload_with(&params)
            .map_err(|f| Failure::new(format!("cycle {cycle}: {}", f.0)))?;
        // Use the fresh module a little, so that each load runs its real paths.
        let dev = Device::open_path(&ctx.device).step("open after insmod")?;
        let strategy = Strategy::CONCRETE[cycle % Strategy::CONCRETE.len()];
        let block = dev.alloc(&AllocRequest::new(ctx.pages(2)).strategy(strategy))?;
        let mut mapping = block.map(Prot::ReadWrite)?;
        mapping.write_volatile(ctx.page, cycle as u8);
        ensure_eq!(
            mapping.read_volatile(ctx.page),
            cycle as u8,
            "cycle {cycle}: byte"
        );
        drop(mapping);
        block.free()?;
    }
    pass()
}
