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

/// The thread group that allocated a block, kept as a `struct pid` reference so that each
/// reader sees it in its own PID namespace.
///
/// # Invariants
///
/// `pid` is a reference from `get_task_pid`, owned by this value and put exactly once, in
/// `drop`.
pub(crate) struct OwnerPid {
    pid: *mut bindings::pid,
}

// SAFETY: A `struct pid` is reference counted and its number lookups take their own locks,
// so a reference may be used and put from any thread.
unsafe impl Send for OwnerPid {}
// SAFETY: As above; `&OwnerPid` only reads through `pid_nr_ns`.
unsafe impl Sync for OwnerPid {}

impl OwnerPid {
    /// The calling task's thread group.
    pub(crate) fn current() -> Self {
        // SAFETY: `current` is a live task; `get_task_pid` takes a reference (or gives NULL for
        // an exiting task, which `pid_nr_ns` and `put_pid` accept).
        let pid = unsafe {
            bindings::get_task_pid(kernel::current!().as_ptr(), bindings::pid_type_PIDTYPE_TGID)
        };
        // INVARIANT: The reference is ours.
        Self { pid }
    }

    /// The thread group id as the calling task's PID namespace sees it: 0 when the owner is
    /// not visible there (it lives in an outer or a sibling namespace) or has no number.
    pub(crate) fn nr_seen_by_current(&self) -> i32 {
        // SAFETY: `pid` is a reference we hold (invariants) or NULL; `current`'s active PID
        // namespace lives at least as long as `current`, which runs this call.
        unsafe {
            bindings::pid_nr_ns(
                self.pid,
                bindings::task_active_pid_ns(kernel::current!().as_ptr()),
            )
        }
    }
}

impl Drop for OwnerPid {
    fn drop(&mut self) {
        // SAFETY: The reference is ours (invariants) and put only here; NULL is accepted.
        unsafe { bindings::put_pid(self.pid) };
    }
}
