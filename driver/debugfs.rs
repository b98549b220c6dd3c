// SPDX-License-Identifier: GPL-2.0

//! `/sys/kernel/debug/cmamap/`: `blocks`, every live block, one line each; and `held_pages`,
//! the pages of freed blocks that wait for an outside reference to go (`quarantine`); and
//! `dma`, every device mapping.

use crate::{dma, memory::quarantine, registry};
use core::fmt;
use kernel::debugfs::Writer;

/// The contents of the `blocks` file, rendered from the registry on every read.
pub(crate) struct BlocksView;

impl Writer for BlocksView {
    fn write(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:>6} {:>12} {:>10} {:>8} {:>5} {:>6} {:>7}",
            "id", "size", "pfn", "strategy", "maps", "owner", "tgid"
        )?;
        let mut result = Ok(());
        registry::for_each(|block| {
            if result.is_err() {
                return;
            }
            result = writeln!(
                f,
                "{:>6} {:>12} {:>#10x} {:>8} {:>5} {:>6} {:>7}",
                block.id(),
                block.size(),
                block.first_pfn(),
                block.strategy().name(),
                block.map_count(),
                block.owner_name(),
                block.owner_tgid()
            );
        });
        result
    }
}

/// The contents of the `held_pages` file: one number.
pub(crate) struct HeldPagesView;

impl Writer for HeldPagesView {
    fn write(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", quarantine::pages_held())
    }
}

/// The contents of the `dma` file: every device mapping, one line each.
pub(crate) struct DmaView;

impl Writer for DmaView {
    fn write(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        dma::render(f)
    }
}
