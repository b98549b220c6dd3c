// SPDX-License-Identifier: GPL-2.0

//! The calling task: what it may do (capabilities) and how much it may log, which the Rust
//! abstractions do not offer yet.

use kernel::{bindings, prelude::*};

/// Whether the caller has `CAP_SYS_ADMIN` (audited, as `capable()` is).
pub(crate) fn is_admin() -> bool {
    // SAFETY: `capable` only reads the current task's credentials.
    unsafe { bindings::capable(bindings::CAP_SYS_ADMIN as i32) }
}

/// Whether the caller may see physical addresses: `CAP_SYS_ADMIN`, checked without an audit
/// record, since INFO and LIST only leave the address out for everyone else.
pub(crate) fn sees_phys() -> bool {
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
pub(crate) fn may_log() -> bool {
    // SAFETY: The name is a static C string; the call only updates the shared limiter.
    unsafe { bindings::__printk_ratelimit(c"cmamap".as_char_ptr()) != 0 }
}
