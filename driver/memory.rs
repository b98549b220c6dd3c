// SPDX-License-Identifier: GPL-2.0

//! Memory: blocks, the CMA pages behind them, the charge that counts them against the
//! module's limits, and the quarantine that holds pages someone outside the driver still
//! references once their block is gone.

pub(crate) mod block;
pub(crate) mod charge;
pub(crate) mod cma;
pub(crate) mod quarantine;
pub(crate) mod user_io;

/// The kernel's page size.
pub(crate) const PAGE_SIZE: usize = kernel::bindings::PAGE_SIZE;
/// log2 of [`PAGE_SIZE`].
pub(crate) const PAGE_SHIFT: u32 = kernel::bindings::PAGE_SHIFT;

const _: () = assert!(PAGE_SIZE == 4096, "offsets and tests assume 4 KiB pages");
