//! Unloading the module: refused while a file or a mapping of the device lives, or while
//! something outside the driver holds pages of a freed block; fine after.
//! These tests reload the module, so they run last.

use cmamap::{AllocRequest, Prot, Strategy};
use cmamap_testkit::pattern;

use crate::check::{pass, Failure, Step, TestResult};
use crate::ctx::Ctx;
use crate::module::{self, Params, Restore};
use crate::suite::gup;

/// Fails unless nothing pins the module: the runner and the other tests must hold no file.
fn ensure_idle() -> Result<(), Failure> {
    let refcnt = module::refcnt();
    ensure!(
        refcnt == "0" || refcnt == "?",
        "module refcnt is {refcnt} before this test opened anything: something else holds the \
         device open"
    );
    Ok(())
}

/// `rmmod` must fail while `why`, and leave the module and its node in place.
fn ensure_rmmod_refused(ctx: &Ctx, why: &str) -> Result<(), Failure> {
    let refcnt = module::refcnt();
    if module::rmmod()?.is_ok() {
        fail!(
            "rmmod {} succeeded while {why} (refcnt was {refcnt})",
            module::NAME
        );
    }
    ensure!(
        module::loaded()?,
        "module gone from /proc/modules after a refused rmmod ({why})"
    );
    ensure!(
        ctx.device.exists(),
        "{} gone after a refused rmmod ({why})",
        ctx.device.display()
    );
    Ok(())
}

/// `rmmod` must succeed now, the module and the node must go, and `insmod` must bring both
/// back with the same parameters.
fn unload_and_reload(ctx: &Ctx, params: &Params, after: &str) -> Result<(), Failure> {
    if let Err(message) = module::rmmod()? {
        fail!(
            "rmmod {} after {after}: {message} (refcnt {})",
            module::NAME,
            module::refcnt()
        );
    }
    ensure!(
        !module::loaded()?,
        "module still in /proc/modules after rmmod succeeded"
    );
    module::wait_for_node(ctx, false)?;
    module::insmod(ctx, params)?;
    ensure_eq!(
        Params::current(ctx)?,
        *params,
        "module parameters after insmod"
    );
    Ok(())
}

pub fn rmmod_refused_while_open(ctx: &Ctx) -> TestResult {
    if let Some(skipped) = module::cannot_reload(ctx) {
        return skipped;
    }
    let params = Params::current(ctx)?;
    // Declared first so that it drops last, after the files below are closed.
    let _restore = Restore::new(ctx, params);
    ensure_idle()?;

    let dev = ctx.open()?;
    // A block too, which the close must give back before the module can go.
    let block = dev.alloc(&AllocRequest::new(ctx.pages(2)))?;
    block.pwrite(0, b"still here")?;
    ensure_rmmod_refused(ctx, "a file of the device is open")?;
    let mut buf = [0u8; 10];
    block
        .pread(0, &mut buf)
        .step("pread after the refused rmmod")?;
    ensure_eq!(
        &buf,
        b"still here",
        "block contents after the refused rmmod"
    );
    dev.stat().step("STAT after the refused rmmod")?;
    block.into_raw_id();
    drop(dev);

    unload_and_reload(ctx, &params, "the last file was closed")?;
    pass()
}

/// A dma-buf holds the module: `rmmod` is refused while one lives, even with every file of the
/// device closed and its block freed, and the dma-buf still maps the block's data.
pub fn rmmod_refused_while_dmabuf_lives(ctx: &Ctx) -> TestResult {
    if let Some(skipped) = module::cannot_reload(ctx) {
        return skipped;
    }
    let params = Params::current(ctx)?;
    let _restore = Restore::new(ctx, params);
    ensure_idle()?;

    let dev = ctx.open()?;
    let block = dev.alloc(&AllocRequest::new(ctx.pages(2)))?;
    let buf = block.export()?;
    pattern::fill(buf.map(Prot::ReadWrite)?.as_mut_slice(), 83, 0);
    block.free()?;
    drop(dev);

    ensure_rmmod_refused(ctx, "a dma-buf of a freed block lives (every file closed)")?;
    pattern::check(buf.map(Prot::Read)?.as_slice(), 83, 0)
        .map_err(|m| Failure::new(format!("dma-buf after the refused rmmod: {m}")))?;
    drop(buf);

    unload_and_reload(ctx, &params, "the last dma-buf was closed")?;
    pass()
}

pub fn rmmod_refused_while_mapped(ctx: &Ctx) -> TestResult {
    if let Some(skipped) = module::cannot_reload(ctx) {
        return skipped;
    }
    let params = Params::current(ctx)?;
    let _restore = Restore::new(ctx, params);
    ensure_idle()?;

    let pages = 4;
    let p = ctx.page;
    let dev = ctx.open()?;
    // Fault strategy: the untouched half faults in through the driver after the close.
    let block = dev.alloc(&AllocRequest::new(ctx.pages(pages)).strategy(Strategy::Fault))?;
    let mut mapping = block.map(Prot::ReadWrite)?.detach();
    pattern::fill(&mut mapping.as_mut_slice()[..2 * p], 81, 0);
    block.into_raw_id();
    drop(dev);

    ensure_rmmod_refused(ctx, "a mapping of the device exists (its file is closed)")?;
    pattern::check(&mapping.as_slice()[..2 * p], 81, 0)
        .map_err(|m| Failure::new(format!("written half after the refused rmmod: {m}")))?;
    pattern::check_filled(&mapping.as_slice()[2 * p..], 0, 2 * p as u64)
        .map_err(|m| Failure::new(format!("untouched half after the refused rmmod: {m}")))?;
    pattern::fill(&mut mapping.as_mut_slice()[2 * p..], 82, 2 * p as u64);
    pattern::check(&mapping.as_slice()[2 * p..], 82, 2 * p as u64)
        .map_err(|m| Failure::new(format!("writing the untouched half: {m}")))?;
    drop(mapping);

    unload_and_reload(ctx, &params, "the last mapping was unmapped")?;
    pass()
}

pub fn rmmod_refused_while_pages_pinned(ctx: &Ctx) -> TestResult {
    if let Some(skipped) = module::cannot_reload(ctx) {
        return skipped;
    }
    if !std::path::Path::new(gup::DEBUGFS_HELD_PAGES).exists() {
        return crate::check::skip(format!(
            "{} absent: no debugfs mounted",
            gup::DEBUGFS_HELD_PAGES
        ));
    }
    let params = Params::current(ctx)?;
    let _restore = Restore::new(ctx, params);
    ensure_idle()?;

    let pages = 4;
    // No file and no mapping is left: only the pipe holds the pages.
    let reader = gup::pin_freed_block(ctx, pages, 83)?;
    ensure_rmmod_refused(ctx, "a pipe holds pages of a freed block")?;
    gup::drain_pinned(reader, pages * ctx.page, 83)?;
    gup::wait_for_held_pages(0)?;

    unload_and_reload(ctx, &params, "the pipe let go of the pages")?;
    pass()
}

/// An open debugfs file pins the module: `rmmod` is refused until it is closed. Before the
/// fix, rmmod went through and closing the file afterwards read the freed module's
/// `file_operations`.
pub fn rmmod_refused_while_debugfs_open(ctx: &Ctx) -> TestResult {
    if let Some(skipped) = module::cannot_reload(ctx) {
        return skipped;
    }
    let params = Params::current(ctx)?;
    let _restore = Restore::new(ctx, params);
    ensure_idle()?;
    for name in ["blocks", "held_pages", "dma"] {
        let path = format!("/sys/kernel/debug/cmamap/{name}");
        if !std::path::Path::new(&path).exists() {
            return crate::check::skip(format!("{path} absent: no debugfs mounted"));
        }
        let file = std::fs::File::open(&path).step(&format!("open {path}"))?;
        ensure_rmmod_refused(ctx, &format!("{path} is open"))?;
        drop(file);
    }
    unload_and_reload(ctx, &params, "the debugfs files were closed")?;
    pass()
}
