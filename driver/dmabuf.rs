// SPDX-License-Identifier: GPL-2.0

//! dma-buf export: one home for CMAMAP_IOC_EXPORT and for the life of an exported block.
//!
//! An [`Export`] is (part of) a block that other drivers import as a dma-buf: V4L2 capture,
//! DRM scanout, RDMA. The dma-buf owns one reference of its `Export`, and the `Export` owns a
//! reference of the block, so FREE and the release of the file that allocated the block kill
//! its id but not its memory: the pages go back to CMA after the last dma-buf fd, mapping and
//! attachment. The dma-buf also holds the module, so `rmmod` is refused meanwhile.
//!
//! The exporter's ops are C (`dmabuf/dmabuf_glue.c`): 7.3's Rust has no dma-buf abstraction.
//! They keep the importers' scatterlists and sync them, and call back here for what is the
//! block's: its mapping into userspace, with the block's own strategy, and the sync of its
//! device mappings (`dma`), which a CPU access through the dma-buf must cover too.

mod exporter;

use crate::{
    abi, dma,
    ioctl::Call,
    mapping::vma,
    memory::{block::Block, PAGE_SHIFT},
    registry,
};
use kernel::{
    bindings, fs::file::FileDescriptorReservation, mm::virt::flags, mm::virt::VmaNew, prelude::*,
    sync::Arc,
};

/// Pages `first_page..first_page + pages` of a block, exported as one dma-buf.
pub(crate) struct Export {
    block: Arc<Block>,
    first_page: usize,
    pages: usize,
}

impl Export {
    /// The PFN of the first exported page.
    fn first_pfn(&self) -> usize {
        self.block.first_pfn() + self.first_page
    }

    /// The exported bytes.
    fn size(&self) -> usize {
        self.pages << PAGE_SHIFT
    }

    /// `mmap` of the dma-buf: shared only, as for `/dev/cmamap`, and with the block's own
    /// strategy. The VMA holds the block as every mapping of it does.
    fn mmap(&self, vma: &VmaNew) -> Result {
        // MAP_PRIVATE would make COW copies of CMA pages, which PFN maps cannot do.
        if vma.flags() & flags::MAYSHARE == 0 {
            return Err(EINVAL);
        }
        vma::install_foreign(vma, self.block.clone(), self.first_page)
    }

    /// A CPU access through the dma-buf begins (`for_cpu`) or ends: the block's device
    /// mappings over the exported pages are synced as CMAMAP_IOC_SYNC would.
    fn sync_devices(&self, direction: dma::Direction, for_cpu: bool) {
        dma::sync_block(
            &self.block,
            (self.first_page << PAGE_SHIFT) as u64,
            self.size() as u64,
            direction,
            for_cpu,
        );
    }
}

/// The open flags of the dma-buf's file and fd for `EXPORT_*` `flags`.
fn open_flags(flags: u32) -> Result<u32> {
    if flags & !abi::EXPORT_FLAGS_ALL != 0 {
        return Err(EINVAL);
    }
    let mut open = 0;
    if flags & abi::EXPORT_RDWR != 0 {
        open |= bindings::O_RDWR;
    }
    if flags & abi::EXPORT_CLOEXEC != 0 {
        open |= bindings::O_CLOEXEC;
    }
    Ok(open)
}

/// CMAMAP_IOC_EXPORT.
pub(crate) fn export(call: &Call<'_>) -> Result {
    let (mut reader, mut writer) = call.arg::<abi::ExportArgs>().reader_writer();
    let mut args: abi::ExportArgs = reader.read()?;
    if args.pad0 != 0 || args.reserved != [0; 2] {
        return Err(EINVAL);
    }
    let open = open_flags(args.flags)?;
    let block = registry::lookup(args.id, call.me.key())?;
    // Device memory has no struct page for a scatterlist or a kernel mapping.
    if block.bar().is_some() {
        return Err(EOPNOTSUPP);
    }
    let (offset, len) = dma::range_in_block(block.size(), args.offset, args.length, true)?;
    let export = Arc::new(
        Export {
            block,
            first_page: (offset >> PAGE_SHIFT) as usize,
            pages: (len >> PAGE_SHIFT) as usize,
        },
        GFP_KERNEL,
    )?;
    // The fd is reserved first and installed last, so a failed call leaves no fd behind:
    // dropping the file instead releases the dma-buf and its `Export`.
    let fd = FileDescriptorReservation::get_unused_fd_flags(open)?;
    let file = exporter::export(export, open)?;
    args.fd = i32::try_from(fd.reserved_fd()).map_err(|_| EMFILE)?;
    args.size = len;
    writer.write(&args)?;
    fd.fd_install(file);
    Ok(())
}
