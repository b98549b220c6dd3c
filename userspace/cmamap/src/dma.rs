//! Device DMA: a block mapped for a device through the kernel's DMA API, the bus address that
//! device must use, and the syncs around every device access.
//!
//! A [`DmaMapping`] ends (`CMAMAP_IOC_DMA_UNMAP`) when it drops, and with the open file that
//! made it. Before the CPU reads what a device wrote, call [`Block::sync_for_cpu`]; before a
//! device reads what the CPU wrote, [`Block::sync_for_device`]. On cache-coherent hardware
//! both are cheap, so portable code always calls them.

use std::fmt;
use std::ops::Range;
use std::os::fd::AsFd;
use std::path::Path;

use nix::errno::Errno;

use crate::abi;
use crate::block::Block;
use crate::device::{AllocRequest, Device};
use crate::error::{Context, Error, Result};
use crate::raw;

/// Which way data moves between memory and the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize),
    serde(rename_all = "kebab-case")
)]
pub enum Direction {
    /// The device reads and writes.
    Bidirectional,
    /// The device reads what the CPU wrote.
    ToDevice,
    /// The device writes what the CPU reads.
    FromDevice,
}

impl Direction {
    /// Every direction.
    pub const ALL: [Direction; 3] = [Self::Bidirectional, Self::ToDevice, Self::FromDevice];

    /// The ABI value (`CMAMAP_DMA_*`).
    pub fn to_abi(self) -> u32 {
        match self {
            Self::Bidirectional => abi::DMA_BIDIRECTIONAL,
            Self::ToDevice => abi::DMA_TO_DEVICE,
            Self::FromDevice => abi::DMA_FROM_DEVICE,
        }
    }

    /// The direction of an ABI value, if it is one.
    pub fn from_abi(value: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.to_abi() == value)
    }

    /// The name the CLI takes and prints.
    pub fn name(self) -> &'static str {
        match self {
            Self::Bidirectional => "bidirectional",
            Self::ToDevice => "to-device",
            Self::FromDevice => "from-device",
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Direction {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|d| d.name() == s)
            .ok_or_else(|| {
                format!("unknown direction '{s}': bidirectional, to-device or from-device")
            })
    }
}

/// A device that blocks are mapped for, as the driver names it (`BUS:NAME`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DmaDevice {
    name: String,
    dma_bits: u32,
}

impl DmaDevice {
    /// A device named as users name it: a PCI address (`0000:00:05.0`), `BUS:NAME`
    /// (`platform:a0000000.dma`), or a path under `/sys/bus/BUS/devices/` or `/sys/devices/`.
    ///
    /// ```no_run
    /// let fpga = cmamap::DmaDevice::new("/sys/bus/pci/devices/0000:03:00.0")?;
    /// assert_eq!(fpga.name(), "pci:0000:03:00.0");
    /// # Ok::<(), cmamap::Error>(())
    /// ```
    pub fn new(name: &str) -> Result<Self> {
        let name = if name.starts_with('/') {
            Self::name_of_path(Path::new(name))?
        } else if name.contains(':') && !name.split(':').next().is_some_and(is_hex) {
            name.to_owned()
        } else {
            format!("pci:{name}")
        };
        if name.len() >= abi::DEVICE_NAME_MAX || name.ends_with(':') || name.contains('\0') {
            return Err(Error::new("device name", Errno::EINVAL));
        }
        Ok(Self { name, dma_bits: 0 })
    }

    /// `BUS:NAME` of a sysfs device path: its `subsystem` link names the bus.
    fn name_of_path(path: &Path) -> Result<String> {
        let op = || format!("device {}", path.display());
        let real = std::fs::canonicalize(path).map_err(|e| io_error(op(), &e))?;
        let bus = std::fs::read_link(real.join("subsystem")).map_err(|e| io_error(op(), &e))?;
        let (Some(bus), Some(dev)) = (bus.file_name(), real.file_name()) else {
            return Err(Error::new(op(), Errno::ENODEV));
        };
        Ok(format!(
            "{}:{}",
            bus.to_string_lossy(),
            dev.to_string_lossy()
        ))
    }

    /// Says that the device drives `bits` address bits (its DMA engine's width, from its
    /// datasheet). A device that no kernel driver owns gets this DMA mask; the driver refuses
    /// to map memory above it (`ERANGE`) instead of letting the device write elsewhere.
    pub fn dma_bits(mut self, bits: u32) -> Self {
        self.dma_bits = bits;
        self
    }

    /// `BUS:NAME`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The ABI form.
    pub fn to_abi(&self) -> abi::DeviceName {
        let mut out = abi::DeviceName {
            dma_bits: self.dma_bits,
            ..Default::default()
        };
        out.name[..self.name.len()].copy_from_slice(self.name.as_bytes());
        out
    }
}

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn io_error(op: String, err: &std::io::Error) -> Error {
    Error::new(op, Errno::from_raw(err.raw_os_error().unwrap_or(libc::EIO)))
}

/// One device mapping, as `CMAMAP_IOC_DMA_LIST` describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct DmaInfo {
    /// The handle `DMA_UNMAP` takes.
    pub handle: u32,
    /// `BUS:NAME`.
    pub device: String,
    /// The bus address the device uses.
    pub dma_addr: u64,
    /// Bytes into the block.
    pub offset: u64,
    /// Bytes.
    pub length: u64,
    pub direction: Direction,
}

impl DmaInfo {
    fn from_abi(info: &abi::DmaInfo) -> Self {
        let len = info
            .device
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(info.device.len());
        Self {
            handle: info.handle,
            device: String::from_utf8_lossy(&info.device[..len]).into_owned(),
            dma_addr: info.dma_addr,
            offset: info.offset,
            length: info.length,
            direction: Direction::from_abi(info.direction).unwrap_or(Direction::Bidirectional),
        }
    }
}

/// A live device mapping of (part of) a block; `CMAMAP_IOC_DMA_UNMAP` when dropped.
#[derive(Debug)]
pub struct DmaMapping<'dev> {
    dev: &'dev Device,
    handle: u32,
    dma_addr: u64,
    offset: u64,
    length: u64,
    direction: Direction,
}

impl DmaMapping<'_> {
    /// The bus address that the device must use for the mapping's first byte.
    pub fn dma_addr(&self) -> u64 {
        self.dma_addr
    }

    /// The handle `CMAMAP_IOC_DMA_UNMAP` takes.
    pub fn handle(&self) -> u32 {
        self.handle
    }

    /// Where the mapping lies in its block, in bytes.
    pub fn range(&self) -> Range<u64> {
        self.offset..self.offset + self.length
    }

    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// Ends the mapping now, reporting any error (drop ignores it).
    pub fn unmap(mut self) -> Result<()> {
        let handle = std::mem::take(&mut self.handle);
        self.dev.dma_unmap(handle)
    }

    /// Keeps the mapping past this handle: it ends with DMA_UNMAP of the returned handle or
    /// when the file closes.
    pub fn into_handle(mut self) -> u32 {
        std::mem::take(&mut self.handle)
    }
}

impl Drop for DmaMapping<'_> {
    fn drop(&mut self) {
        if self.handle != 0 {
            let _ = self.dev.dma_unmap(self.handle);
        }
    }
}

impl Device {
    /// `CMAMAP_IOC_ALLOC` of a block for `device` (`CMAMAP_ALLOC_FOR_DEVICE`): from the
    /// device's own CMA area if it has one, and refused with `ERANGE` unless the device can
    /// reach the block without a bounce buffer.
    ///
    /// ```no_run
    /// use cmamap::{AllocRequest, Device, DmaDevice};
    /// let dev = Device::open()?;
    /// let engine = DmaDevice::new("0000:00:05.0")?.dma_bits(28);
    /// let block = dev.alloc_for(&AllocRequest::new(1 << 20), &engine)?;
    /// # Ok::<(), cmamap::Error>(())
    /// ```
    pub fn alloc_for(&self, request: &AllocRequest, device: &DmaDevice) -> Result<Block<'_>> {
        let name = device.to_abi();
        let mut args = request.to_args();
        args.flags |= abi::ALLOC_FOR_DEVICE;
        args.device = std::ptr::from_ref(&name) as u64;
        // `name` lives across the call; the kernel only reads it.
        raw::alloc(self.as_fd(), &mut args).context("CMAMAP_IOC_ALLOC")?;
        Ok(Block::from_alloc(self, &args))
    }

    /// `CMAMAP_IOC_DMA_MAP` with caller-built arguments; the mapping is the caller's to end.
    pub fn dma_map_raw(&self, args: &mut abi::DmaMapArgs) -> Result<()> {
        raw::dma_map(self.as_fd(), args).context("CMAMAP_IOC_DMA_MAP")
    }

    /// `CMAMAP_IOC_DMA_UNMAP` of a handle this file's DMA_MAP returned.
    pub fn dma_unmap(&self, handle: u32) -> Result<()> {
        let args = abi::DmaUnmapArgs {
            handle,
            ..Default::default()
        };
        raw::dma_unmap(self.as_fd(), &args).context("CMAMAP_IOC_DMA_UNMAP")
    }

    /// `CMAMAP_IOC_SYNC` with caller-built arguments; returns the mappings synced.
    pub fn sync_raw(&self, args: &mut abi::SyncArgs) -> Result<u32> {
        raw::sync(self.as_fd(), args).context("CMAMAP_IOC_SYNC")?;
        Ok(args.synced)
    }

    /// The device mappings of block `id`, made through any file (the first
    /// [`abi::DMA_LIST_MAX`] of them).
    pub fn dma_mappings(&self, id: u32) -> Result<Vec<DmaInfo>> {
        let most = abi::DMA_LIST_MAX as usize;
        let count = raw::dma_list(self.as_fd(), id, &mut []).context("CMAMAP_IOC_DMA_LIST")?;
        // Mappings may come between the two calls: room to spare, within what one call writes.
        let mut capacity = (count as usize + 4).min(most);
        loop {
            let mut entries = vec![abi::DmaInfo::default(); capacity];
            let count = raw::dma_list(self.as_fd(), id, &mut entries)
                .context("CMAMAP_IOC_DMA_LIST")? as usize;
            if count <= capacity || capacity == most {
                entries.truncate(count.min(capacity));
                return Ok(entries.iter().map(DmaInfo::from_abi).collect());
            }
            capacity = (count + 4).min(most);
        }
    }
}

impl<'dev> Block<'dev> {
    /// Maps the whole block for `device` (CAP_SYS_ADMIN). The result's
    /// [`dma_addr`](DmaMapping::dma_addr) is what the device must use: behind an IOMMU it is
    /// not the physical address.
    ///
    /// ```no_run
    /// use cmamap::{AllocRequest, Device, DmaDevice, Direction};
    /// let dev = Device::open()?;
    /// let block = dev.alloc(&AllocRequest::new(1 << 20))?;
    /// let engine = DmaDevice::new("0000:00:05.0")?;
    /// let mapping = block.dma_map(&engine, Direction::FromDevice)?;
    /// println!("program the engine with {:#x}", mapping.dma_addr());
    /// // ... the device writes ...
    /// block.sync_for_cpu(0..block.size(), Direction::FromDevice)?;
    /// # Ok::<(), cmamap::Error>(())
    /// ```
    pub fn dma_map(&self, device: &DmaDevice, direction: Direction) -> Result<DmaMapping<'dev>> {
        self.dma_map_range(device, direction, 0..self.size())
    }

    /// Maps the page-aligned byte `range` of the block for `device`.
    pub fn dma_map_range(
        &self,
        device: &DmaDevice,
        direction: Direction,
        range: Range<u64>,
    ) -> Result<DmaMapping<'dev>> {
        let length = range.end.checked_sub(range.start).filter(|&n| n > 0);
        let length = length.ok_or_else(|| Error::new("CMAMAP_IOC_DMA_MAP", Errno::EINVAL))?;
        let mut args = abi::DmaMapArgs {
            id: self.id(),
            direction: direction.to_abi(),
            offset: range.start,
            length,
            device: device.to_abi(),
            ..Default::default()
        };
        self.device().dma_map_raw(&mut args)?;
        Ok(DmaMapping {
            dev: self.device(),
            handle: args.handle,
            dma_addr: args.dma_addr,
            offset: range.start,
            length,
            direction,
        })
    }

    /// Syncs the block's device mappings over `range` before the CPU reads what a device
    /// wrote. Returns how many mappings were synced.
    pub fn sync_for_cpu(&self, range: Range<u64>, direction: Direction) -> Result<u32> {
        self.sync(range, direction, abi::SYNC_FOR_CPU)
    }

    /// Syncs the block's device mappings over `range` before a device reads what the CPU
    /// wrote. Returns how many mappings were synced.
    pub fn sync_for_device(&self, range: Range<u64>, direction: Direction) -> Result<u32> {
        self.sync(range, direction, abi::SYNC_FOR_DEVICE)
    }

    fn sync(&self, range: Range<u64>, direction: Direction, flags: u32) -> Result<u32> {
        let length = range.end.checked_sub(range.start).filter(|&n| n > 0);
        let length = length.ok_or_else(|| Error::new("CMAMAP_IOC_SYNC", Errno::EINVAL))?;
        self.device().sync_raw(&mut abi::SyncArgs {
            id: self.id(),
            flags,
            offset: range.start,
            length,
            direction: direction.to_abi(),
            ..Default::default()
        })
    }

    /// The block's device mappings.
    pub fn dma_mappings(&self) -> Result<Vec<DmaInfo>> {
        self.device().dma_mappings(self.id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_take_the_bus_prefix() {
        assert_eq!(
            DmaDevice::new("0000:00:05.0").unwrap().name(),
            "pci:0000:00:05.0"
        );
        assert_eq!(
            DmaDevice::new("pci:0000:00:05.0").unwrap().name(),
            "pci:0000:00:05.0"
        );
        assert_eq!(
            DmaDevice::new("platform:a0000000.dma").unwrap().name(),
            "platform:a0000000.dma"
        );
        assert!(DmaDevice::new("pci:").is_err());
        assert!(DmaDevice::new(&"x".repeat(80)).is_err());
    }

    #[test]
    fn directions_round_trip() {
        for d in Direction::ALL {
            assert_eq!(Direction::from_abi(d.to_abi()), Some(d));
            assert_eq!(d.name().parse::<Direction>(), Ok(d));
        }
        assert_eq!(Direction::from_abi(3), None);
    }
}
