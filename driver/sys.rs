// SPDX-License-Identifier: GPL-2.0

//! Small facts about the calling task that the Rust abstractions do not offer yet.

use kernel::{bindings, prelude::*};

/// Whether the caller has `CAP_SYS_ADMIN` (audited, as `capable()` is).
pub(crate) fn caller_is_admin() -> bool {
    // SAFETY: `capable` only reads the current task's credentials.
    unsafe { bindings::capable(bindings::CAP_SYS_ADMIN as i32) }
}

/// Whether a log line may be printed now (the kernel's shared printk rate limit), so that a
/// caller looping on a failing ioctl cannot flood the log.
pub(crate) fn log_ratelimit_ok() -> bool {
    // SAFETY: The name is a static C string; the call only updates the shared limiter.
    unsafe { bindings::__printk_ratelimit(c"cmamap".as_char_ptr()) != 0 }
}

extern "C" {
    fn cmamap_selftest_inject();
}

/// Runs the deliberate faults that `scripts/selftest-pipeline.sh` compiles in; a no-op in
/// every normal build.
pub(crate) fn selftest_inject() {
    // SAFETY: The C function takes no arguments and only warns or allocates.
    unsafe { cmamap_selftest_inject() };
}
