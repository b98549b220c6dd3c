// SPDX-License-Identifier: GPL-2.0

//! Pages whose block is gone while something outside the driver still holds them.
//!
//! get_user_pages on a `page` mapping (vmsplice into a pipe, an O_DIRECT read in flight)
//! takes page references that can outlive every VMA and the block itself. `cma_release`
//! would free such pages anyway, and the pipe would then read whatever the next owner writes.
//! So the run waits here, still charged, and a delayed work retries every
//! [`RETRY_MS`] until the last outside reference is gone. While any run waits, the module
//! holds a reference on itself: `rmmod` is refused, as it is while a file or a VMA lives.
//!
//! `QUARANTINE` is lock 10 of the crate's lock order, a leaf.
//!
//! One of the modules with `unsafe`: the calls into its delayed work and the module reference,
//! which live in C (`memory_glue.c`).

use crate::memory::cma::CmaRun;
use kernel::prelude::*;

extern "C" {
    fn cmamap_quarantine_retry_later(ms: u32);
    fn cmamap_quarantine_cancel();
    fn cmamap_module_get();
    fn cmamap_module_put();
}

/// Runs [`cmamap_quarantine_retry`] on the system workqueue in `ms` milliseconds, unless a run
/// is already pending.
fn retry_later(ms: u32) {
    // SAFETY: Schedules a static work item; callable from any sleeping context.
    unsafe { cmamap_quarantine_retry_later(ms) };
}

/// Cancels the retry and waits for a run under way; it will not run again unless scheduled
/// anew.
fn cancel_retry() {
    // SAFETY: Cancels a static work item; we may sleep.
    unsafe { cmamap_quarantine_cancel() };
}

/// Takes a reference on this module, so that `rmmod` is refused until [`release_module`].
fn hold_module() {
    // SAFETY: The module is live (we run its code); taking a reference has no precondition.
    unsafe { cmamap_module_get() };
}

/// Drops a reference taken by [`hold_module`].
fn release_module() {
    // SAFETY: Called once per `hold_module`: when the quarantine empties after holding runs.
    unsafe { cmamap_module_put() };
}

/// How long a held run waits before the next try.
pub(crate) const RETRY_MS: u32 = 100;

kernel::sync::global_lock! {
    // SAFETY: `quarantine::init` runs in module init before the device is registered.
    unsafe(uninit) static QUARANTINE: Mutex<KVec<CmaRun>> = KVec::new();
}

/// Initializes the quarantine. Call once, from module init, before any block exists.
pub(crate) fn init() {
    // SAFETY: Called exactly once, from module init, before the misc device exists.
    unsafe { QUARANTINE.init() };
}

/// Returns `run` to CMA now if nothing else holds its pages, else keeps it until nothing does.
pub(crate) fn release(run: CmaRun) {
    let Err(run) = run.try_release() else {
        return;
    };
    let mut held = QUARANTINE.lock();
    let pages = run.count();
    // Without room to remember it, the run is dropped and stays allocated for good: a leak of
    // CMA pages, never a free of pages in use.
    if held.push(run, GFP_KERNEL).is_err() {
        pr_warn!(
            "{} pages still in use outside the driver are left allocated\n",
            pages
        );
        return;
    }
    if held.len() == 1 {
        hold_module();
    }
    retry_later(RETRY_MS);
}

/// Releases every run whose pages nobody holds any more; the number of pages still held.
fn retry(held: &mut KVec<CmaRun>) -> usize {
    let mut index = 0;
    while index < held.len() {
        let Ok(run) = held.remove(index) else {
            break;
        };
        if let Err(run) = run.try_release() {
            // Cannot fail: `remove` just made room at `index`.
            let _ = held.insert_within_capacity(index, run);
            index += 1;
        }
    }
    pages_in(held)
}

fn pages_in(held: &KVec<CmaRun>) -> usize {
    held.iter().map(CmaRun::count).sum()
}

/// Called by the delayed work that [`retry_later`] schedules.
#[no_mangle]
extern "C" fn cmamap_quarantine_retry() {
    let mut held = QUARANTINE.lock();
    let was_held = !held.is_empty();
    retry(&mut held);
    if !held.is_empty() {
        retry_later(RETRY_MS);
        return;
    }
    // Gives the list's buffer back too.
    *held = KVec::new();
    if was_held {
        // Safe although this very work runs module code after the put: the module's exit
        // cancels the work synchronously before the module text goes.
        release_module();
    }
}

/// The number of pages that wait here.
pub(crate) fn pages_held() -> usize {
    pages_in(&QUARANTINE.lock())
}

/// At module exit, after the last blocks were dropped: stops the retries and releases what it
/// can within about a second. Whatever is still held then (a `PERSIST` block pinned by a pipe)
/// stays allocated for good, with a log line: `rmmod` cannot wait for a pipe to close.
pub(crate) fn drain_at_exit() {
    cancel_retry();
    // Nothing else can reach the list any more; taking it also frees its buffer at the end.
    let mut held = core::mem::take(&mut *QUARANTINE.lock());
    let mut left = retry(&mut held);
    for _ in 0..10 {
        if left == 0 {
            return;
        }
        kernel::time::delay::fsleep(kernel::time::Delta::from_millis(RETRY_MS.into()));
        left = retry(&mut held);
    }
    // Dropping `held` drops the runs without releasing them: their pages stay allocated.
    pr_warn!(
        "{} pages are still in use outside the driver; leaving them allocated\n",
        left
    );
}
