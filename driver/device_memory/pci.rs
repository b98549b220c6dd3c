// SPDX-License-Identifier: GPL-2.0

//! The PCI driver: QEMU's `ivshmem-plain` device, whose BAR 2 is shared memory, becomes a
//! block of device memory for as long as the device is bound.
//!
//! Probe requests BAR 2 and publishes a block with `OWNER_DEVICE`. Unbind (sysfs `unbind`,
//! device removal or `rmmod`) takes the block out of the list, so its id is dead like a freed
//! block's; closes its gate, so faults give SIGBUS and in-flight `pread`/`pwrite` `ENODEV`;
//! zaps every user PTE of it, `remap` ones included; and only then releases the region.
//! Processes keep their VMAs (and the block, through them) until they unmap.

use crate::{
    abi,
    device_memory::{
        bar::{BarMemory, BarRegion},
        rmap,
    },
    mapping::strategy::Strategy,
    memory::block::{Backing, Block, Owner},
    registry,
};
use kernel::{device::Core, pci, prelude::*, sync::Arc};

/// QEMU's ivshmem device id (vendor Red Hat/Qumranet, 0x1af4).
const IVSHMEM_DEVICE_ID: u32 = 0x1110;
/// The BAR that holds ivshmem's shared memory.
const IVSHMEM_SHMEM_BAR: u32 = 2;

/// The PCI driver.
pub(crate) struct CmamapPci;

kernel::pci_device_table!(
    PCI_TABLE,
    <CmamapPci as pci::Driver>::IdInfo,
    [(
        pci::DeviceId::from_id(pci::Vendor::REDHAT_QUMRANET, IVSHMEM_DEVICE_ID),
        ()
    )]
);

/// A bound device: its block and the BAR region the block maps.
pub(crate) struct BoundBar {
    block: Arc<Block>,
    /// Released after `drop` has revoked every access to it.
    _region: BarRegion,
}

impl pci::Driver for CmamapPci {
    type IdInfo = ();
    type Data<'bound> = BoundBar;

    const ID_TABLE: pci::IdTable<Self::IdInfo> = &PCI_TABLE;

    fn probe<'bound>(
        pdev: &'bound pci::Device<Core<'_>>,
        _info: Option<&'bound Self::IdInfo>,
    ) -> impl PinInit<Self::Data<'bound>, Error> + 'bound {
        let region = BarRegion::claim(pdev, IVSHMEM_SHMEM_BAR, c"cmamap")?;
        if region.len() > abi::MAX_BLOCK_SIZE {
            return Err(E2BIG);
        }
        let memory = BarMemory::new(&region)?;
        let copy_mapping = memory.copy_mapping();
        let lease = registry::lease_id(registry::Space::Shared)?;
        let id = lease.id();
        let block = Block::new(
            id,
            Strategy::Remap,
            Owner::Device,
            None,
            Backing::Bar(memory),
        )?;
        let shared = block.clone_arc();
        registry::publish(block, lease);
        dev_info!(
            pdev.as_ref(),
            "BAR {}: {} bytes at {:#x} are block {}; pread/pwrite copy through {}\n",
            IVSHMEM_SHMEM_BAR,
            region.len(),
            region.phys(),
            id,
            copy_mapping
        );
        Ok(BoundBar {
            block: shared,
            _region: region,
        })
    }
}

impl Drop for BoundBar {
    fn drop(&mut self) {
        let id = self.block.id();
        // Gone from the list (absent already after an rmmod's sweep): the id is dead.
        registry::unpublish_shared(id);
        if let Some(bar) = self.block.bar() {
            bar.revoke();
        }
        // Every view of the block: its whole offset space.
        rmap::zap(self.block.offset(), 1 << abi::OFFSET_SHIFT);
        pr_info!(
            "block {} (device memory) revoked; {} mappings left to unmap\n",
            id,
            self.block.map_count()
        );
    }
}
