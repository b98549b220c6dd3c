// SPDX-License-Identifier: GPL-2.0

//! Device DMA mappings: one home for DMA_MAP, DMA_UNMAP, SYNC and DMA_LIST, and for the end of
//! every mapping on FREE, file release, device removal or unbind, and `rmmod`.
//!
//! A mapping is made through the DMA API on the named device, so its address is the bus
//! address that device must use (an IOVA behind an IOMMU). It holds its block, so the memory
//! cannot go back to CMA while a device may reach it. Memory the device could reach only
//! through a bounce buffer is refused with `ERANGE`: a bounced mapping would look as if it
//! worked while the device wrote elsewhere.
//!
//! Locks (numbered in the crate root): a device's lock (1), then `MAPPINGS` (2), then a
//! registry lock (8 or 9). Bus notifiers for unbind run under the device lock and take
//! `MAPPINGS`, as DMA_MAP does.

mod device;

use crate::{
    abi, caller,
    ioctl::Call,
    memory::{block::Block, cma::CmaArea, PAGE_SHIFT, PAGE_SIZE},
    registry,
};
pub(crate) use device::render_syncs;
use device::{DeviceMapping, DmaDevice};
use kernel::{
    list::{List, ListArc, ListLinks},
    prelude::*,
    seq_file::SeqFile,
    seq_print,
    str::CStr,
    sync::Arc,
    uaccess::{UserPtr, UserSlice},
};

/// Most device mappings one open file may hold: each pins IOMMU space and a device reference.
const MAX_MAPPINGS_PER_FILE: usize = 1024;

/// Which way data moves in a device mapping; the values are the DMA API's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    Bidirectional,
    ToDevice,
    FromDevice,
}

impl Direction {
    /// The direction of an ABI (and DMA API) value; `EINVAL` for any other.
    pub(crate) fn from_abi(value: u32) -> Result<Self> {
        match value {
            abi::DMA_BIDIRECTIONAL => Ok(Self::Bidirectional),
            abi::DMA_TO_DEVICE => Ok(Self::ToDevice),
            abi::DMA_FROM_DEVICE => Ok(Self::FromDevice),
            _ => Err(EINVAL),
        }
    }

    fn to_abi(self) -> u32 {
        match self {
            Self::Bidirectional => abi::DMA_BIDIRECTIONAL,
            Self::ToDevice => abi::DMA_TO_DEVICE,
            Self::FromDevice => abi::DMA_FROM_DEVICE,
        }
    }

    /// `enum dma_data_direction`.
    fn to_c(self) -> i32 {
        self.to_abi() as i32
    }

    fn name(self) -> &'static str {
        match self {
            Self::Bidirectional => "bidirectional",
            Self::ToDevice => "to-device",
            Self::FromDevice => "from-device",
        }
    }

    /// Whether data moving `self` way can have passed through a mapping made `other` way.
    fn overlaps(self, other: Self) -> bool {
        self == other || self == Self::Bidirectional || other == Self::Bidirectional
    }
}

/// A device name as the ABI carries it, split into bus and device for the lookup.
struct DeviceName {
    /// `BUS:NAME`, NUL-terminated: what INFO and debugfs show.
    full: [u8; abi::DEVICE_NAME_MAX],
    /// Where NAME starts in `full`.
    name_at: usize,
    bus: [u8; 16],
}

impl DeviceName {
    /// Parses `0000:00:05.0` (PCI) or `BUS:NAME`; `EINVAL` if unterminated or empty.
    fn parse(raw: &[u8; abi::DEVICE_NAME_MAX]) -> Result<Self> {
        let len = raw.iter().position(|&c| c == 0).ok_or(EINVAL)?;
        let text = &raw[..len];
        if text.is_empty() {
            return Err(EINVAL);
        }
        // A PCI address has a domain of hex digits before its first colon; a bus name has
        // letters past `f`.
        let colon = text.iter().position(|&c| c == b':');
        let (bus, name): (&[u8], &[u8]) = match colon {
            Some(at) if !text[..at].iter().all(u8::is_ascii_hexdigit) => {
                (&text[..at], &text[at + 1..])
            }
            _ => (b"pci", text),
        };
        if name.is_empty() || bus.len() >= 16 || bus.len() + 1 + name.len() >= abi::DEVICE_NAME_MAX
        {
            return Err(EINVAL);
        }
        let mut parsed = Self {
            full: [0; abi::DEVICE_NAME_MAX],
            name_at: bus.len() + 1,
            bus: [0; 16],
        };
        parsed.bus[..bus.len()].copy_from_slice(bus);
        parsed.full[..bus.len()].copy_from_slice(bus);
        parsed.full[bus.len()] = b':';
        parsed.full[parsed.name_at..parsed.name_at + name.len()].copy_from_slice(name);
        Ok(parsed)
    }

    fn bus(&self) -> &CStr {
        CStr::from_bytes_until_nul(&self.bus).unwrap_or(c"")
    }

    fn name(&self) -> &CStr {
        CStr::from_bytes_until_nul(&self.full[self.name_at..]).unwrap_or(c"")
    }

    fn display(&self) -> &str {
        let len = self
            .full
            .iter()
            .position(|&c| c == 0)
            .unwrap_or(self.full.len());
        core::str::from_utf8(&self.full[..len]).unwrap_or("?")
    }
}

/// The device an allocation is for (`ALLOC_FOR_DEVICE`).
pub(crate) struct AllocTarget {
    device: DmaDevice,
    name: DeviceName,
    dma_bits: u32,
}

impl AllocTarget {
    /// Reads and finds the device that `user_ptr` (a `struct cmamap_device`) names.
    pub(crate) fn from_user(user_ptr: u64) -> Result<Self> {
        let user = UserPtr::from_addr(usize::try_from(user_ptr).map_err(|_| EFAULT)?);
        let named: abi::DeviceName = UserSlice::new(user, core::mem::size_of::<abi::DeviceName>())
            .reader()
            .read()?;
        let dma_bits = check_dma_bits(&named)?;
        let name = DeviceName::parse(&named.name)?;
        let device = DmaDevice::find(name.bus(), name.name())?;
        Ok(Self {
            device,
            name,
            dma_bits,
        })
    }

    /// The CMA area to allocate from: the device's own, else the default. A device's own
    /// pool (often a few MiB that its driver needs) is only for CAP_SYS_ADMIN: `EPERM`.
    pub(crate) fn cma_area(&self) -> Result<CmaArea> {
        let area = self.device.cma_area()?;
        if !area.is_default() && !caller::is_admin() {
            return Err(EPERM);
        }
        Ok(area)
    }

    /// `Ok` if the device reaches block memory at `phys` directly, else `ERANGE` (logged) or
    /// `EOPNOTSUPP` (the device does no DMA).
    pub(crate) fn check_reach(&self, phys: u64, size: u64) -> Result {
        let reach = self.device.reaches(phys, size as usize, self.dma_bits);
        if reach != Err(ERANGE) {
            return reach;
        }
        if caller::may_log() {
            pr_info!(
                "ALLOC for {}: CMA gave a block out of its direct reach; place CMA lower (cma=)\n",
                self.name.display()
            );
        }
        Err(ERANGE)
    }
}

/// `dma_bits` of a device name, checked: 0 or 12..64; `pad0` must be 0.
fn check_dma_bits(named: &abi::DeviceName) -> Result<u32> {
    if named.pad0 != 0 || (named.dma_bits != 0 && !(12..=64).contains(&named.dma_bits)) {
        return Err(EINVAL);
    }
    Ok(named.dma_bits)
}

/// One live device mapping of (part of) a block.
#[pin_data]
struct DmaMapping {
    handle: u32,
    /// The open file that made it, and whose release ends it.
    file_key: u64,
    /// Declared before `block`, so it is dropped (unmapped) first: the device must not reach
    /// memory that is back in CMA.
    mapped: DeviceMapping,
    block: Arc<Block>,
    device_name: DeviceName,
    /// Bytes into the block.
    offset: u64,
    len: u64,
    direction: Direction,
    #[pin]
    links: ListLinks,
}

kernel::list::impl_list_arc_safe! {
    impl ListArcSafe<0> for DmaMapping { untracked; }
}
kernel::list::impl_list_item! {
    impl ListItem<0> for DmaMapping { using ListLinks { self.links }; }
}

impl DmaMapping {
    /// The ABI description; `dma_addr` only when `show_addr`: without an IOMMU it is the
    /// physical address, which only CAP_SYS_ADMIN sees.
    fn info(&self, show_addr: bool) -> abi::DmaInfo {
        abi::DmaInfo {
            handle: self.handle,
            direction: self.direction.to_abi(),
            offset: self.offset,
            length: self.len,
            dma_addr: if show_addr { self.mapped.addr() } else { 0 },
            device: self.device_name.full,
        }
    }
}

/// Every live device mapping, and the handles.
struct Mappings {
    list: List<DmaMapping>,
    last_handle: u32,
}

impl Mappings {
    const fn new() -> Self {
        Self {
            list: List::new(),
            last_handle: 0,
        }
    }

    /// A handle no live mapping has; handles count up and skip 0.
    fn next_handle(&mut self) -> u32 {
        loop {
            self.last_handle = self.last_handle.wrapping_add(1);
            let candidate = self.last_handle;
            if candidate != 0 && !self.list.iter().any(|m| m.handle == candidate) {
                return candidate;
            }
        }
    }

    /// Takes out (and so unmaps, once dropped) every mapping that `matches`.
    fn remove_where(&mut self, mut matches: impl FnMut(&DmaMapping) -> bool) -> usize {
        let mut removed = 0;
        let mut cursor = self.list.cursor_front();
        while let Some(next) = cursor.peek_next() {
            if matches(&next) {
                drop(next.remove());
                removed += 1;
            } else {
                cursor.move_next();
            }
        }
        removed
    }
}

kernel::sync::global_lock! {
    // SAFETY: `dma::init` runs in module init before the device is registered.
    unsafe(uninit) static MAPPINGS: Mutex<Mappings> = Mappings::new();
}

/// Device mappings can exist while this lives: the module holds it from init to exit.
pub(crate) struct DmaMappings(());

impl DmaMappings {
    /// Sets up the mappings and starts watching for devices that go away. Call once, from
    /// module init, before the misc device exists.
    pub(crate) fn init() -> Result<Self> {
        // SAFETY: Called exactly once, from module init, before anything can map.
        unsafe { MAPPINGS.init() };
        device::watch_buses()?;
        Ok(Self(()))
    }
}

impl Drop for DmaMappings {
    /// Stops watching devices and ends whatever mappings are left (none: each open file ended
    /// its own, and every file is closed before `rmmod`).
    fn drop(&mut self) {
        device::unwatch_buses();
        MAPPINGS.lock().remove_where(|_| true);
    }
}

/// Called by the bus notifier (`dma/glue.c`) when a device is removed or its driver unbinds:
/// its mappings end before it goes.
#[no_mangle]
extern "C" fn cmamap_dma_device_gone(dev: *mut core::ffi::c_void) {
    let removed = MAPPINGS.lock().remove_where(|m| m.mapped.is_for(dev));
    if removed > 0 {
        pr_info!("ended {} device mappings: the device went away\n", removed);
    }
}

/// The byte range `[offset, offset + length)` of a block of `size` bytes (`length` 0: to the
/// end); `EINVAL` if it is empty, outside the block or overflows, or if `page_aligned` and it
/// is not.
pub(crate) fn range_in_block(
    size: u64,
    offset: u64,
    length: u64,
    page_aligned: bool,
) -> Result<(u64, u64)> {
    if offset >= size {
        return Err(EINVAL);
    }
    let len = if length == 0 { size - offset } else { length };
    let end = offset.checked_add(len).ok_or(EINVAL)?;
    let page_mask = PAGE_SIZE as u64 - 1;
    if end > size || (page_aligned && (offset | len) & page_mask != 0) {
        return Err(EINVAL);
    }
    Ok((offset, len))
}

/// CMAMAP_IOC_DMA_MAP.
pub(crate) fn map(call: &Call<'_>) -> Result {
    let file_key = call.me.key();
    let (mut reader, mut writer) = call.arg::<abi::DmaMapArgs>().reader_writer();
    let mut args: abi::DmaMapArgs = reader.read()?;
    if args.pad1 != 0 || args.reserved != [0; 2] {
        return Err(EINVAL);
    }
    let direction = Direction::from_abi(args.direction)?;
    let dma_bits = check_dma_bits(&args.device)?;
    let device_name = DeviceName::parse(&args.device.name)?;
    // A device reaching memory is as sensitive as knowing its physical address.
    if !caller::is_admin() {
        return Err(EPERM);
    }
    let block = registry::lookup(args.id, call.me.blocks())?;
    // Peer-to-peer DMA into another device's BAR is not supported.
    if block.bar().is_some() {
        return Err(EOPNOTSUPP);
    }
    let (offset, len) = range_in_block(block.size(), args.offset, args.length, true)?;
    let device = DmaDevice::find(device_name.bus(), device_name.name())?;
    let phys = ((block.first_pfn() as u64) << PAGE_SHIFT) + offset;

    let locked = device.lock();
    let mut mappings = MAPPINGS.lock();
    // FREE may have taken the block since the lookup; a mapping made now would outlive it.
    registry::lookup(args.id, call.me.blocks())?;
    if mappings
        .list
        .iter()
        .filter(|m| m.file_key == file_key)
        .count()
        >= MAX_MAPPINGS_PER_FILE
    {
        return Err(ENOSPC);
    }
    let mapped = device
        .map(&locked, phys, len as usize, direction, dma_bits)
        .inspect_err(|e| {
            if *e == ERANGE && caller::may_log() {
                pr_info!(
                    "DMA_MAP: {} cannot reach block {} directly; refused rather than bounced\n",
                    device_name.display(),
                    args.id
                );
            }
        })?;
    let dma_addr = mapped.addr();
    let handle = mappings.next_handle();
    // On failure the initializer drops `mapped`, which unmaps.
    let mapping = ListArc::pin_init(
        try_pin_init!(DmaMapping {
            handle,
            file_key,
            mapped,
            block,
            device_name,
            offset,
            len,
            direction,
            links <- ListLinks::new(),
        }),
        GFP_KERNEL,
    )?;
    mappings.list.push_back(mapping);
    drop(mappings);
    drop(locked);

    args.dma_addr = dma_addr;
    args.handle = handle;
    writer.write(&args).inspect_err(|_| {
        // The caller never learns the handle: the mapping must not outlive the call.
        MAPPINGS
            .lock()
            .remove_where(|m| m.handle == handle && m.file_key == file_key);
    })
}

/// CMAMAP_IOC_DMA_UNMAP.
pub(crate) fn unmap(call: &Call<'_>) -> Result {
    let file_key = call.me.key();
    let args: abi::DmaUnmapArgs = call.arg::<abi::DmaUnmapArgs>().reader().read()?;
    if args.pad0 != 0 || args.reserved != [0; 2] {
        return Err(EINVAL);
    }
    let removed = MAPPINGS
        .lock()
        .remove_where(|m| m.handle == args.handle && m.file_key == file_key);
    if removed == 0 {
        return Err(ENOENT);
    }
    Ok(())
}

/// CMAMAP_IOC_SYNC.
pub(crate) fn sync(call: &Call<'_>) -> Result {
    let (mut reader, mut writer) = call.arg::<abi::SyncArgs>().reader_writer();
    let mut args: abi::SyncArgs = reader.read()?;
    if args.reserved != [0; 2] {
        return Err(EINVAL);
    }
    let for_cpu = match args.flags {
        abi::SYNC_FOR_CPU => true,
        abi::SYNC_FOR_DEVICE => false,
        _ => return Err(EINVAL),
    };
    let direction = Direction::from_abi(args.direction)?;
    let block = registry::lookup(args.id, call.me.blocks())?;
    let (start, len) = range_in_block(block.size(), args.offset, args.length, false)?;
    let synced = sync_block(&block, start, len, direction, for_cpu);
    args.synced = synced;
    writer.write(&args)
}

/// Syncs, for the CPU or for the devices, every device mapping of `block` that overlaps bytes
/// `start..start + len` and whose direction overlaps `direction`, each over the overlap and in
/// its own direction, as the DMA API requires; how many. For SYNC, and for a CPU access
/// through the block's dma-buf (`dmabuf`).
pub(crate) fn sync_block(
    block: &Arc<Block>,
    start: u64,
    len: u64,
    direction: Direction,
    for_cpu: bool,
) -> u32 {
    let end = start.saturating_add(len);
    let mut synced = 0u32;
    for m in MAPPINGS.lock().list.iter() {
        if !Arc::ptr_eq(&m.block, block) || !direction.overlaps(m.direction) {
            continue;
        }
        let (from, to) = (start.max(m.offset), end.min(m.offset + m.len));
        if from < to {
            m.mapped
                .sync(from - m.offset, (to - from) as usize, for_cpu);
            synced += 1;
        }
    }
    synced
}

/// CMAMAP_IOC_DMA_LIST.
pub(crate) fn list(call: &Call<'_>) -> Result {
    let (mut reader, mut writer) = call.arg::<abi::DmaListArgs>().reader_writer();
    let mut args: abi::DmaListArgs = reader.read()?;
    if args.pad0 != 0 || args.reserved != [0; 2] {
        return Err(EINVAL);
    }
    let block = registry::lookup(args.id, call.me.blocks())?;
    // Allocated before the lock, bounded: the copy out happens after it.
    let wanted = args.capacity.min(abi::DMA_LIST_MAX) as usize;
    let show_addr = caller::sees_phys();
    let mut infos = KVVec::with_capacity(wanted, GFP_KERNEL)?;
    let mut count = 0u32;
    for m in MAPPINGS.lock().list.iter() {
        if Arc::ptr_eq(&m.block, &block) {
            count += 1;
            if infos.len() < wanted {
                infos.push(m.info(show_addr), GFP_KERNEL)?;
            }
        }
    }
    args.count = count;
    if !infos.is_empty() {
        let entries = UserPtr::from_addr(usize::try_from(args.entries).map_err(|_| EFAULT)?);
        let mut out =
            UserSlice::new(entries, infos.len() * core::mem::size_of::<abi::DmaInfo>()).writer();
        for info in &infos {
            out.write(info)?;
        }
    }
    writer.write(&args)
}

/// Ends every device mapping of `block`, which has just left the registry.
pub(crate) fn block_freed(block: &Block) {
    MAPPINGS
        .lock()
        .remove_where(|m| core::ptr::eq(&*m.block, block));
}

/// Ends every device mapping made through the open file `file_key`, which is being released.
pub(crate) fn file_released(file_key: u64) {
    MAPPINGS.lock().remove_where(|m| m.file_key == file_key);
}

/// How many device mappings block `id`, as the open file `file_key` sees it, has: ids are
/// per file, and of the blocks with one id a file sees only its own or the shared one.
pub(crate) fn count_of(id: u32, file_key: u64) -> u32 {
    MAPPINGS
        .lock()
        .list
        .iter()
        .filter(|m| m.block.id() == id && m.block.visible_to(file_key))
        .count() as u32
}

impl kernel::fmt::Display for DmaMapping {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "handle={} block={} device={} dma_addr={:#x} offset={} length={} dir={}",
            self.handle,
            self.block.id(),
            self.device_name.display(),
            self.mapped.addr(),
            self.offset,
            self.len,
            self.direction.name()
        )
    }
}

/// Prints the device mappings made through open file `file_key`, one line each (fdinfo).
pub(crate) fn show_of_file(m: &SeqFile, file_key: u64) {
    for mapping in MAPPINGS
        .lock()
        .list
        .iter()
        .filter(|x| x.file_key == file_key)
    {
        seq_print!(m, "cmamap-dma:\t{}\n", &*mapping);
    }
}

/// Writes every device mapping, one line each after a header (debugfs `dma`).
pub(crate) fn render(f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
    writeln!(
        f,
        "device mappings: handle block device dma_addr offset length dir"
    )?;
    for mapping in MAPPINGS.lock().list.iter() {
        kernel::fmt::Display::fmt(&*mapping, f)?;
        writeln!(f)?;
    }
    Ok(())
}
