// SPDX-License-Identifier: GPL-2.0

//! The module: registers `/dev/cmamap` and returns every remaining block at `rmmod`.

use crate::{block::Owner, debugfs::BlocksView, file::OpenFile, registry, sys};
use kernel::{
    debugfs::{Dir, File},
    miscdevice::{MiscDeviceOptions, MiscDeviceRegistration},
    prelude::*,
};

/// The loaded module.
#[pin_data(PinnedDrop)]
pub(crate) struct CmamapModule {
    #[pin]
    misc: MiscDeviceRegistration<OpenFile>,
    _debugfs: Dir,
    #[pin]
    _blocks_file: File<BlocksView>,
}

impl kernel::InPlaceModule for CmamapModule {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        registry::init();
        sys::selftest_inject();
        let debugfs = Dir::new(c"cmamap");
        try_pin_init!(Self {
            misc <- MiscDeviceRegistration::register(MiscDeviceOptions { name: c"cmamap" }),
            _blocks_file <- debugfs.read_only_file(c"blocks", BlocksView),
            _debugfs: debugfs,
        })
    }
}

#[pinned_drop]
impl PinnedDrop for CmamapModule {
    fn drop(self: Pin<&mut Self>) {
        // No file is open and no VMA exists (each pins the module), so only PERSIST blocks
        // remain, and nothing maps them: freeing them here returns their memory at once.
        let (blocks, bytes) = registry::unpublish_where(|block| {
            debug_assert!(block.owner() == Owner::Module);
            true
        });
        pr_info!(
            "unloaded; returned {} blocks, {} bytes to CMA\n",
            blocks,
            bytes
        );
    }
}
