// SPDX-License-Identifier: GPL-2.0

//! The module: registers `/dev/cmamap` and the PCI driver, and returns every remaining block
//! at `rmmod`.

use crate::{
    block::Owner,
    dma::DmaMappings,
    debugfs::{BlocksView, DmaView, HeldPagesView},
    file::OpenFile,
    pci::CmamapPci,
    quarantine, registry,
    rmap::SharedMapping,
    sys,
};
use kernel::{
    debugfs::{Dir, File},
    driver,
    miscdevice::{MiscDeviceOptions, MiscDeviceRegistration},
    prelude::*,
};

/// The loaded module. Fields drop in order: the device node, then the PCI driver (unbinding
/// zaps through the shared mapping), then debugfs, and the shared mapping last.
#[pin_data(PinnedDrop)]
pub(crate) struct CmamapModule {
    _dma: DmaMappings,
    #[pin]
    misc: MiscDeviceRegistration<OpenFile>,
    #[pin]
    _pci: driver::Registration<kernel::pci::Adapter<CmamapPci>>,
    _debugfs: Dir,
    #[pin]
    _blocks_file: File<BlocksView>,
    #[pin]
    _held_pages_file: File<HeldPagesView>,
    #[pin]
    _dma_file: File<DmaView>,
    _rmap: SharedMapping,
}

impl kernel::InPlaceModule for CmamapModule {
    fn init(module: &'static ThisModule) -> impl PinInit<Self, Error> {
        registry::init();
        quarantine::init();
        sys::selftest_inject();
        let debugfs = Dir::new(c"cmamap");
        try_pin_init!(Self {
            _dma: DmaMappings::init()?,
            _rmap: SharedMapping::new()?,
            misc <- MiscDeviceRegistration::register(MiscDeviceOptions { name: c"cmamap" }),
            _pci <- driver::Registration::new(c"cmamap", module),
            _blocks_file <- debugfs.read_only_file(c"blocks", BlocksView),
            _held_pages_file <- debugfs.read_only_file(c"held_pages", HeldPagesView),
            _dma_file <- debugfs.read_only_file(c"dma", DmaView),
            _debugfs: debugfs,
        })
    }
}

#[pinned_drop]
impl PinnedDrop for CmamapModule {
    fn drop(self: Pin<&mut Self>) {
        // No file is open and no VMA exists (each pins the module), so only PERSIST blocks
        // remain, and nothing maps them: freeing them here returns their memory at once.
        // Device blocks go when the PCI driver unbinds, right after this.
        let (blocks, bytes) = registry::unpublish_where(|block| {
            debug_assert!(!matches!(block.owner(), Owner::File(_)));
            block.owner() == Owner::Module
        });
        // A freed PERSIST block may still be pinned by a pipe; nothing else can wait here,
        // since a waiting run holds the module.
        quarantine::drain_at_exit();
        pr_info!(
            "unloaded; returned {} blocks, {} bytes to CMA\n",
            blocks,
            bytes
        );
    }
}
