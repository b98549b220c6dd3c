// SPDX-License-Identifier: GPL-2.0

//! `/sys/kernel/debug/cmamap/`: `blocks`, every live block, one line each (with the key of
//! its file, 0 for shared blocks, since ids are per file); `held_pages`, the
//! pages of freed blocks that wait for an outside reference to go (`quarantine`); `dma`,
//! every device mapping; `dma_syncs`, how many DMA API syncs SYNC made; and `blocks_visited`,
//! the blocks that lookups, frees and releases have looked at since load (a test checks that
//! a release's work follows its own blocks).
//!
//! The files are made in C (`debugfs_glue.c`) with `.owner` set, so that an open file pins
//! the module: the Rust debugfs of 7.3 sets none, and a file kept open across `rmmod` then
//! read the freed module's operations when it closed.

use crate::{
    dma,
    memory::{block::Owner, quarantine},
    registry,
};
use core::{ffi::c_void, fmt};
use kernel::{bindings, prelude::*, seq_file::SeqFile, seq_print};

extern "C" {
    fn cmamap_debugfs_create(names: *const *const u8, count: usize) -> *mut c_void;
    fn cmamap_debugfs_remove(dir: *mut c_void);
}

/// What each file shows, by its index in [`NAMES`].
const VIEWS: [fn(&mut fmt::Formatter<'_>) -> fmt::Result; 5] = [
    blocks,
    held_pages,
    dma::render,
    blocks_visited,
    dma::render_syncs,
];
/// The file names, NUL-terminated, in the order of [`VIEWS`].
const NAMES: [&CStr; 5] = [
    c"blocks",
    c"held_pages",
    c"dma",
    c"blocks_visited",
    c"dma_syncs",
];

/// The directory and its files, removed on drop.
///
/// # Invariants
///
/// `dir` is what `cmamap_debugfs_create` returned (an error pointer when debugfs is absent,
/// which `debugfs_remove` accepts).
pub(crate) struct DebugFs {
    dir: *mut c_void,
}

// SAFETY: The dentry is only handed back to `debugfs_remove`, from any thread.
unsafe impl Send for DebugFs {}
// SAFETY: As above; `&DebugFs` gives no access to the dentry.
unsafe impl Sync for DebugFs {}

impl DebugFs {
    /// Makes the directory and its files.
    pub(crate) fn new() -> Self {
        let names = NAMES.map(|name| name.as_char_ptr().cast::<u8>());
        // SAFETY: `names` holds `NAMES.len()` NUL-terminated static strings, which debugfs
        // copies; the call has no other precondition.
        let dir = unsafe { cmamap_debugfs_create(names.as_ptr(), names.len()) };
        // INVARIANT: `dir` is the creation's result.
        Self { dir }
    }
}

impl Drop for DebugFs {
    fn drop(&mut self) {
        // SAFETY: `dir` came from `cmamap_debugfs_create` (invariant) and is removed once.
        unsafe { cmamap_debugfs_remove(self.dir) };
    }
}

/// One view, printed through the kernel's formatting.
struct Rendered(usize);

impl kernel::fmt::Display for Rendered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        VIEWS.get(self.0).map_or(Ok(()), |view| view(f))
    }
}

/// Called by `debugfs_glue.c` to fill a file's `seq_file` with view `view`.
#[no_mangle]
extern "C" fn cmamap_debugfs_show(m: *mut bindings::seq_file, view: usize) -> i32 {
    // SAFETY: The seq_file is live for the duration of its `show` callback.
    let m = unsafe { SeqFile::from_raw(m) };
    seq_print!(m, "{}", Rendered(view));
    0
}

/// The `held_pages` file: one number.
fn held_pages(f: &mut fmt::Formatter<'_>) -> fmt::Result {
    writeln!(f, "{}", quarantine::pages_held())
}

/// The `blocks_visited` file: one number.
fn blocks_visited(f: &mut fmt::Formatter<'_>) -> fmt::Result {
    writeln!(f, "{}", registry::blocks_visited())
}

/// The `blocks` file, rendered from the registry on every read.
fn blocks(f: &mut fmt::Formatter<'_>) -> fmt::Result {
    writeln!(
        f,
        "{:>9} {:>12} {:>10} {:>8} {:>5} {:>6} {:>7} {:>6}",
        "id", "size", "pfn", "strategy", "maps", "owner", "tgid", "file"
    )?;
    let mut result = Ok(());
    registry::for_each(|block| {
        if result.is_err() {
            return;
        }
        // Ids are per open file: the file's key tells equal ids of two files apart.
        let file = match block.owner() {
            Owner::File(key) => key,
            Owner::Module | Owner::Device => 0,
        };
        result = writeln!(
            f,
            "{:>9} {:>12} {:>#10x} {:>8} {:>5} {:>6} {:>7} {:>6}",
            block.id(),
            block.size(),
            block.first_pfn(),
            block.strategy().name(),
            block.map_count(),
            block.owner_name(),
            block.owner_tgid(),
            file
        );
    });
    result
}
