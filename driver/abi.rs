// SPDX-License-Identifier: GPL-2.0

//! The ABI shared with userspace: the very file that `userspace/cmamap-abi` compiles, plus
//! the byte-level promises the kernel's user-copy helpers need.

#[allow(
    dead_code,
    unreachable_pub,
    reason = "the shared ABI is public for userspace"
)]
#[path = "../userspace/cmamap-abi/src/abi.rs"]
mod shared;
pub(crate) use shared::*;

use kernel::transmute::{AsBytes, FromBytes};

// SAFETY: `#[repr(C)]` structs of integers with explicit padding fields: every bit pattern is
// valid and there are no implicit padding bytes (checked by the host ABI tests).
unsafe impl FromBytes for AllocArgs {}
// SAFETY: As above.
unsafe impl AsBytes for AllocArgs {}
// SAFETY: As above.
unsafe impl FromBytes for FreeArgs {}
// SAFETY: As above.
unsafe impl FromBytes for BlockInfo {}
// SAFETY: As above.
unsafe impl AsBytes for BlockInfo {}
// SAFETY: As above.
unsafe impl FromBytes for ListArgs {}
// SAFETY: As above.
unsafe impl AsBytes for ListArgs {}
// SAFETY: As above.
unsafe impl FromBytes for StatArgs {}
// SAFETY: As above.
unsafe impl AsBytes for StatArgs {}
// SAFETY: As above.
unsafe impl FromBytes for DmaMapArgs {}
// SAFETY: As above.
unsafe impl AsBytes for DmaMapArgs {}
// SAFETY: As above.
unsafe impl FromBytes for DmaUnmapArgs {}
// SAFETY: As above.
unsafe impl FromBytes for SyncArgs {}
// SAFETY: As above.
unsafe impl AsBytes for SyncArgs {}
// SAFETY: As above.
unsafe impl AsBytes for DmaInfo {}
// SAFETY: As above.
unsafe impl FromBytes for DmaListArgs {}
// SAFETY: As above.
unsafe impl AsBytes for DmaListArgs {}
// SAFETY: As above.
unsafe impl FromBytes for DeviceName {}
// SAFETY: As above.
unsafe impl FromBytes for ExportArgs {}
// SAFETY: As above.
unsafe impl AsBytes for ExportArgs {}
