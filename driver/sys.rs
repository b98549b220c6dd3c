// SPDX-License-Identifier: GPL-2.0

//! Small facts about the calling task that the Rust abstractions do not offer yet.

use kernel::{bindings, prelude::*};

/// Whether the caller has `CAP_SYS_ADMIN` (audited, as `capable()` is).
pub(crate) fn caller_is_admin() -> bool {
    // SAFETY: `capable` only reads the current task's credentials.
    unsafe { bindings::capable(bindings::CAP_SYS_ADMIN as i32) }
}

/// Whether the caller may see physical addresses: `CAP_SYS_ADMIN`, checked without an audit
/// record, since INFO and LIST only leave the address out for everyone else.
pub(crate) fn caller_sees_phys() -> bool {
    // SAFETY: `init_user_ns` is a static that lives for the whole kernel; the call only reads
    // the current task's credentials.
    unsafe {
        bindings::ns_capable_noaudit(
            core::ptr::addr_of_mut!(bindings::init_user_ns),
            bindings::CAP_SYS_ADMIN as i32,
        )
    }
}

/// Whether a log line may be printed now (the kernel's shared printk rate limit), so that a
/// caller looping on a failing ioctl cannot flood the log.
pub(crate) fn log_ratelimit_ok() -> bool {
    // SAFETY: The name is a static C string; the call only updates the shared limiter.
    unsafe { bindings::__printk_ratelimit(c"cmamap".as_char_ptr()) != 0 }
}

extern "C" {
    fn cmamap_selftest_inject();
    fn cmamap_quarantine_retry_later(ms: u32);
    fn cmamap_quarantine_cancel();
    fn cmamap_module_get();
    fn cmamap_module_put();
}

/// Runs `quarantine`'s retry on the system workqueue in `ms` milliseconds, unless a run is
/// already pending.
pub(crate) fn retry_quarantine_later(ms: u32) {
    // SAFETY: Schedules a static work item; callable from any sleeping context.
    unsafe { cmamap_quarantine_retry_later(ms) };
}

/// Cancels the quarantine's retry and waits for a run under way; it will not run again unless
/// scheduled anew.
pub(crate) fn cancel_quarantine_retry() {
    // SAFETY: Cancels a static work item; we may sleep.
    unsafe { cmamap_quarantine_cancel() };
}

/// Takes a reference on this module, so that `rmmod` is refused until [`release_module`].
pub(crate) fn hold_module() {
    // SAFETY: The module is live (we run its code); taking a reference has no precondition.
    unsafe { cmamap_module_get() };
}

/// Drops a reference taken by [`hold_module`].
pub(crate) fn release_module() {
    // SAFETY: Called once per `hold_module`, by the quarantine's bookkeeping.
    unsafe { cmamap_module_put() };
}

/// Runs the deliberate faults that `scripts/selftest-pipeline.sh` compiles in; a no-op in
/// every normal build.
pub(crate) fn selftest_inject() {
    // SAFETY: The C function takes no arguments and only warns or allocates.
    unsafe { cmamap_selftest_inject() };
}
