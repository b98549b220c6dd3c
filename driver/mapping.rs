// SPDX-License-Identifier: GPL-2.0

//! Mapping: how blocks reach userspace page tables. The mmap offset selects a block and a
//! view (`offsets`), a view picks a strategy (`strategy`), `vma` installs it and handles the
//! faults, and `alloc_map` owns ALLOC_MAP and UNMAP_FREE, which map and unmap on the caller's
//! behalf.

pub(crate) mod alloc_map;
pub(crate) mod offsets;
pub(crate) mod strategy;
pub(crate) mod vma;
