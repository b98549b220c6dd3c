//! The open device: ioctls, `pread`/`pwrite` and mappings by raw mmap offset.

use std::fs::OpenOptions;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;

use crate::abi;
use crate::block::Block;
use crate::error::{from_io, Context, Error, Result};
use crate::mapping::{MappedBlock, Mapping, Sharing};
use crate::raw;
use crate::strategy::{Owner, Prot, Strategy};

/// Where the misc device lives.
pub const DEFAULT_PATH: &str = "/dev/cmamap";

/// An open file of `/dev/cmamap`.
///
/// File-owned blocks belong to this open file description: they die when the last descriptor
/// referring to it is closed (a forked child or an `SCM_RIGHTS` receiver keeps it open).
#[derive(Debug)]
pub struct Device {
    fd: OwnedFd,
}

/// What to allocate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllocRequest {
    /// Bytes; the driver rounds up to whole pages.
    pub size: u64,
    /// How the block will be mapped.
    pub strategy: Strategy,
    /// Physical alignment as a page order, `0..=abi::MAX_ALIGN_ORDER`.
    pub align_order: u32,
    /// Owned by the module instead of the file; needs `CAP_SYS_ADMIN`.
    pub persist: bool,
}

impl AllocRequest {
    /// A request for `size` bytes with the module's default strategy.
    ///
    /// ```
    /// use cmamap::{AllocRequest, Device, Prot, Strategy};
    ///
    /// let request = AllocRequest::new(4 << 20).strategy(Strategy::Huge).align_order(9);
    /// assert_eq!(request.to_args().size, 4 << 20);
    /// ```
    pub fn new(size: u64) -> Self {
        Self {
            size,
            strategy: Strategy::Default,
            align_order: 0,
            persist: false,
        }
    }

    /// Sets the strategy.
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// Sets the alignment order.
    pub fn align_order(mut self, order: u32) -> Self {
        self.align_order = order;
        self
    }

    /// Makes the block persistent (module-owned).
    pub fn persist(mut self, persist: bool) -> Self {
        self.persist = persist;
        self
    }

    /// The ioctl argument for this request.
    pub fn to_args(&self) -> abi::AllocArgs {
        abi::AllocArgs {
            size: self.size,
            flags: if self.persist { abi::ALLOC_PERSIST } else { 0 },
            strategy: self.strategy.to_raw(),
            align_order: self.align_order,
            ..Default::default()
        }
    }
}

/// One block, as `IOC_INFO` and `IOC_LIST` describe it.
///
/// With the `serde` feature it serializes in this field order, with `flags` as `persistent`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Info {
    /// The block's handle.
    pub id: u32,
    /// Bytes (whole pages).
    pub size: u64,
    /// The strategy the block is mapped with.
    pub strategy: Strategy,
    /// The mmap offset that selects the block.
    pub offset: u64,
    /// Physical address; 0 unless the caller has `CAP_SYS_ADMIN`.
    pub phys_addr: u64,
    /// `abi::ALLOC_*` flags.
    #[cfg_attr(
        feature = "serde",
        serde(rename = "persistent", serialize_with = "serialize_persistent")
    )]
    pub flags: u32,
    /// Who owns the block.
    pub owner: Owner,
    /// The process that allocated it.
    pub owner_tgid: i32,
    /// Live VMAs that map the block.
    pub map_count: u32,
    /// Live device mappings of the block ([`Block::dma_mappings`] describes them).
    pub dma_mappings: u32,
}

#[cfg(feature = "serde")]
fn serialize_persistent<S: serde::Serializer>(
    flags: &u32,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_bool(flags & abi::ALLOC_PERSIST != 0)
}

impl Info {
    /// Converts the ABI struct.
    pub fn from_abi(info: &abi::BlockInfo) -> Self {
        Self {
            id: info.id,
            flags: info.flags,
            size: info.size,
            offset: info.offset,
            phys_addr: info.phys_addr,
            strategy: Strategy::from_raw(info.strategy),
            map_count: info.map_count,
            owner: Owner::from_raw(info.owner),
            owner_tgid: info.owner_tgid,
            dma_mappings: info.dma_mappings,
        }
    }

    /// True for a `PERSIST` (module-owned) block.
    pub fn is_persistent(&self) -> bool {
        self.flags & abi::ALLOC_PERSIST != 0
    }

    /// True for device memory (a PCI BAR) rather than CMA RAM.
    pub fn is_device_memory(&self) -> bool {
        self.flags & abi::INFO_DEVICE_MEMORY != 0
    }
}

/// Device-wide figures and limits, as `IOC_STAT` reports them: the ABI struct's fields (through
/// `Deref`), with the default strategy typed by [`Stat::default_strategy`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat(abi::StatArgs);

impl Stat {
    /// Wraps the ABI struct.
    pub fn from_abi(stat: &abi::StatArgs) -> Self {
        Self(*stat)
    }

    /// What `Strategy::Default` resolves to.
    pub fn default_strategy(&self) -> Strategy {
        Strategy::from_raw(self.0.default_strategy)
    }
}

impl std::ops::Deref for Stat {
    type Target = abi::StatArgs;

    fn deref(&self) -> &abi::StatArgs {
        &self.0
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for Stat {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut out = serializer.serialize_struct("Stat", 9)?;
        out.serialize_field("abi_version", &self.abi_version)?;
        out.serialize_field("default_strategy", &self.default_strategy())?;
        out.serialize_field("page_size", &self.page_size)?;
        out.serialize_field("max_bytes_per_file", &self.max_bytes_per_file)?;
        out.serialize_field("max_bytes_total", &self.max_bytes_total)?;
        out.serialize_field("bytes_total", &self.bytes_total)?;
        out.serialize_field("blocks_total", &self.blocks_total)?;
        out.serialize_field("bytes_file", &self.bytes_file)?;
        out.serialize_field("blocks_file", &self.blocks_file)?;
        out.end()
    }
}

/// mmap offsets are `off_t`; the driver's offsets fit, anything else is EOVERFLOW.
pub(crate) fn to_off_t(op: &'static str, offset: u64) -> Result<libc::off_t> {
    libc::off_t::try_from(offset).map_err(|_| Error::new(op, Errno::EOVERFLOW))
}

impl Device {
    /// Opens [`DEFAULT_PATH`] for reading and writing.
    ///
    /// ```no_run
    /// use cmamap::{AllocRequest, Device, Prot, Strategy};
    ///
    /// let dev = Device::open()?;
    /// println!("ABI version {}", dev.stat()?.abi_version);
    /// # Ok::<(), cmamap::Error>(())
    /// ```
    pub fn open() -> Result<Self> {
        Self::open_path(DEFAULT_PATH)
    }

    /// Opens `path` for reading and writing.
    ///
    /// ```no_run
    /// use cmamap::{AllocRequest, Device, Prot, Strategy};
    ///
    /// let dev = Device::open_path("/dev/cmamap")?;
    /// # Ok::<(), cmamap::Error>(())
    /// ```
    pub fn open_path(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path.as_ref(), true)
    }

    /// Opens [`DEFAULT_PATH`] read-only: mappings of it cannot be writable.
    ///
    /// ```no_run
    /// use cmamap::{AllocRequest, Device, Prot, Strategy};
    ///
    /// let dev = Device::open_readonly()?;
    /// // Read-only files refuse writable mappings (EACCES).
    /// let blocks = dev.list()?;
    /// # Ok::<(), cmamap::Error>(())
    /// ```
    pub fn open_readonly() -> Result<Self> {
        Self::open_path_readonly(DEFAULT_PATH)
    }

    /// Opens `path` read-only.
    pub fn open_path_readonly(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path.as_ref(), false)
    }

    fn open_with(path: &Path, write: bool) -> Result<Self> {
        // std opens with O_CLOEXEC, so exec'd helpers do not inherit (and keep alive) the file.
        let file = OpenOptions::new()
            .read(true)
            .write(write)
            .open(path)
            .map_err(|err| from_io(format!("open {}", path.display()), &err))?;
        Ok(Self { fd: file.into() })
    }

    /// Wraps a descriptor of `/dev/cmamap` obtained elsewhere (inherited, or via `SCM_RIGHTS`).
    pub fn from_fd(fd: OwnedFd) -> Self {
        Self { fd }
    }

    /// Gives the descriptor back.
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }

    /// `IOC_STAT`.
    ///
    /// ```no_run
    /// use cmamap::{AllocRequest, Device, Prot, Strategy};
    ///
    /// let dev = Device::open()?;
    /// let stat = dev.stat()?;
    /// println!("{} blocks, default strategy {}", stat.blocks_total, stat.default_strategy());
    /// # Ok::<(), cmamap::Error>(())
    /// ```
    pub fn stat(&self) -> Result<Stat> {
        let mut args = abi::StatArgs::default();
        raw::stat(self.as_fd(), &mut args).context("CMAMAP_IOC_STAT")?;
        Ok(Stat::from_abi(&args))
    }

    /// `IOC_INFO` of block `id`.
    ///
    /// ```no_run
    /// use cmamap::{AllocRequest, Device, Prot, Strategy};
    ///
    /// let dev = Device::open()?;
    /// let block = dev.alloc(&AllocRequest::new(1 << 20))?;
    /// let info = dev.info(block.id())?;
    /// assert_eq!(info.size, block.size());
    /// # Ok::<(), cmamap::Error>(())
    /// ```
    pub fn info(&self, id: u32) -> Result<Info> {
        let mut args = abi::BlockInfo {
            id,
            ..Default::default()
        };
        raw::info(self.as_fd(), &mut args).context("CMAMAP_IOC_INFO")?;
        Ok(Info::from_abi(&args))
    }

    /// The number of blocks reachable through this file (its own and the persistent ones).
    ///
    /// ```no_run
    /// use cmamap::{AllocRequest, Device, Prot, Strategy};
    ///
    /// let dev = Device::open()?;
    /// let reachable = dev.list_count()?;
    /// # Ok::<(), cmamap::Error>(())
    /// ```
    pub fn list_count(&self) -> Result<u32> {
        raw::list(self.as_fd(), &mut []).context("CMAMAP_IOC_LIST")
    }

    /// Every block reachable through this file.
    ///
    /// ```no_run
    /// use cmamap::{AllocRequest, Device, Prot, Strategy};
    ///
    /// let dev = Device::open()?;
    /// for info in dev.list()? {
    ///     println!("block {}: {} bytes, {}", info.id, info.size, info.strategy);
    /// }
    /// # Ok::<(), cmamap::Error>(())
    /// ```
    pub fn list(&self) -> Result<Vec<Info>> {
        // Blocks may appear between the two calls (another process, a persistent block), so
        // retry with room to spare until the answer fits.
        let mut capacity = self.list_count()? as usize + 4;
        loop {
            let mut entries = vec![abi::BlockInfo::default(); capacity];
            let count = raw::list(self.as_fd(), &mut entries).context("CMAMAP_IOC_LIST")? as usize;
            if count <= capacity {
                entries.truncate(count);
                return Ok(entries.iter().map(Info::from_abi).collect());
            }
            capacity = count + 4;
        }
    }

    /// `IOC_LIST` into a caller's buffer; returns the reachable count (`min(count, len)` written).
    pub fn list_into(&self, entries: &mut [abi::BlockInfo]) -> Result<u32> {
        raw::list(self.as_fd(), entries).context("CMAMAP_IOC_LIST")
    }

    /// `IOC_ALLOC`: a zeroed block that is freed when the returned handle drops (unless
    /// persistent).
    ///
    /// ```no_run
    /// use cmamap::{AllocRequest, Device, Prot, Strategy};
    ///
    /// let dev = Device::open()?;
    /// let block = dev.alloc(&AllocRequest::new(2 << 20).strategy(Strategy::Page))?;
    /// let mapping = block.map(Prot::ReadWrite)?;
    /// // The mapping unmaps, then the block frees, as they drop.
    /// # Ok::<(), cmamap::Error>(())
    /// ```
    pub fn alloc(&self, request: &AllocRequest) -> Result<Block<'_>> {
        let mut args = request.to_args();
        raw::alloc(self.as_fd(), &mut args).context("CMAMAP_IOC_ALLOC")?;
        Ok(Block::from_alloc(self, &args))
    }

    /// `IOC_ALLOC_MAP`: a zeroed block, already mapped whole with `prot`, released with
    /// `IOC_UNMAP_FREE` when the handle drops.
    ///
    /// ```no_run
    /// use cmamap::{AllocRequest, Device, Prot, Strategy};
    ///
    /// let dev = Device::open()?;
    /// let mut block = dev.alloc_map(&AllocRequest::new(1 << 20), Prot::ReadWrite)?;
    /// block.as_mut_slice()[0] = 1;
    /// block.unmap_free()?;
    /// # Ok::<(), cmamap::Error>(())
    /// ```
    pub fn alloc_map(&self, request: &AllocRequest, prot: Prot) -> Result<MappedBlock<'_>> {
        let mut args = request.to_args();
        args.prot = prot.bits() as u32;
        raw::alloc_map(self.as_fd(), &mut args).context("CMAMAP_IOC_ALLOC_MAP")?;
        MappedBlock::from_alloc_map(self, &args)
    }

    /// A handle to an existing block reachable through this file (checked with `IOC_INFO`).
    /// Dropping it does not free the block.
    ///
    /// ```no_run
    /// use cmamap::{AllocRequest, Device, Prot, Strategy};
    ///
    /// let dev = Device::open()?;
    /// // A persistent block that another process allocated.
    /// let block = dev.block(7)?;
    /// let mapping = block.map(Prot::Read)?;
    /// # Ok::<(), cmamap::Error>(())
    /// ```
    pub fn block(&self, id: u32) -> Result<Block<'_>> {
        let info = self.info(id)?;
        Ok(Block::from_info(self, &info))
    }

    /// `IOC_FREE` of block `id`. A mapped block stays valid for its mappings until the last
    /// munmap.
    ///
    /// ```no_run
    /// use cmamap::{AllocRequest, Device, Prot, Strategy};
    ///
    /// let dev = Device::open()?;
    /// let id = dev.alloc(&AllocRequest::new(4096))?.into_raw_id();
    /// dev.free(id)?;
    /// # Ok::<(), cmamap::Error>(())
    /// ```
    pub fn free(&self, id: u32) -> Result<()> {
        let args = abi::FreeArgs {
            id,
            ..Default::default()
        };
        raw::free(self.as_fd(), &args).context("CMAMAP_IOC_FREE")
    }

    /// Maps `len` bytes at mmap offset `offset` (a block's offset plus a page-aligned offset
    /// inside it), `MAP_SHARED`.
    ///
    /// ```no_run
    /// use cmamap::{AllocRequest, Device, Prot, Strategy};
    ///
    /// let dev = Device::open()?;
    /// let block = dev.alloc(&AllocRequest::new(1 << 20))?;
    /// // The block's second page, by its mmap offset.
    /// let page = cmamap::page_size();
    /// let mapping = dev.map(block.offset() + page as u64, page, Prot::Read)?;
    /// # Ok::<(), cmamap::Error>(())
    /// ```
    pub fn map(&self, offset: u64, len: usize, prot: Prot) -> Result<Mapping<'_>> {
        self.map_with(offset, len, prot, Sharing::Shared)
    }

    /// Like [`Device::map`] with a choice of `MAP_SHARED` or `MAP_PRIVATE` (which the driver
    /// refuses; tests check that).
    pub fn map_with(
        &self,
        offset: u64,
        len: usize,
        prot: Prot,
        sharing: Sharing,
    ) -> Result<Mapping<'_>> {
        Mapping::new(self.as_fd(), offset, len, prot, sharing)
    }

    /// `pread` at mmap offset `offset`; returns the bytes read (0 at or past the block's end).
    ///
    /// ```no_run
    /// use cmamap::{AllocRequest, Device, Prot, Strategy};
    ///
    /// let dev = Device::open()?;
    /// let block = dev.alloc(&AllocRequest::new(1 << 20))?;
    /// let mut head = [0u8; 64];
    /// dev.pread(block.offset(), &mut head)?;
    /// # Ok::<(), cmamap::Error>(())
    /// ```
    pub fn pread(&self, offset: u64, buf: &mut [u8]) -> Result<usize> {
        nix::sys::uio::pread(self.as_fd(), buf, to_off_t("pread", offset)?).context("pread")
    }

    /// `pwrite` at mmap offset `offset`; returns the bytes written (truncated at the block's end).
    ///
    /// ```no_run
    /// use cmamap::{AllocRequest, Device, Prot, Strategy};
    ///
    /// let dev = Device::open()?;
    /// let block = dev.alloc(&AllocRequest::new(1 << 20))?;
    /// dev.pwrite(block.offset(), b"hello")?;
    /// # Ok::<(), cmamap::Error>(())
    /// ```
    pub fn pwrite(&self, offset: u64, buf: &[u8]) -> Result<usize> {
        nix::sys::uio::pwrite(self.as_fd(), buf, to_off_t("pwrite", offset)?).context("pwrite")
    }
}

impl AsFd for Device {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alloc_request_builds_args() {
        let args = AllocRequest::new(5000)
            .strategy(Strategy::Page)
            .align_order(3)
            .persist(true)
            .to_args();
        assert_eq!(args.size, 5000);
        assert_eq!(args.strategy, abi::STRATEGY_PAGE);
        assert_eq!(args.align_order, 3);
        assert_eq!(args.flags, abi::ALLOC_PERSIST);
        assert_eq!((args.id, args.offset, args.addr, args.prot), (0, 0, 0, 0));
        assert_eq!((args.device, args.reserved), (0, 0));
        assert_eq!(AllocRequest::new(1).to_args().flags, 0);
    }

    #[test]
    fn info_converts_from_abi() {
        let info = Info::from_abi(&abi::BlockInfo {
            id: 7,
            flags: abi::ALLOC_PERSIST,
            size: 8192,
            offset: abi::offset_of_id(7),
            phys_addr: 0x1000_0000,
            strategy: abi::STRATEGY_FAULT,
            map_count: 2,
            owner: abi::OWNER_MODULE,
            owner_tgid: 42,
            dma_mappings: 3,
            pad0: 0,
            reserved: 0,
        });
        assert_eq!(info.dma_mappings, 3);
        assert!(info.is_persistent());
        assert_eq!(info.strategy, Strategy::Fault);
        assert_eq!(info.owner, Owner::Module);
        assert_eq!(info.offset, 7 << abi::OFFSET_SHIFT);
    }

    #[test]
    fn missing_device_reports_open_and_path() {
        let err = Device::open_path("/nonexistent/cmamap").unwrap_err();
        assert_eq!(err.errno(), Errno::ENOENT);
        assert_eq!(err.op(), "open /nonexistent/cmamap");
    }

    #[test]
    fn offsets_beyond_off_t_overflow() {
        assert_eq!(
            to_off_t("pread", u64::MAX).unwrap_err().errno(),
            Errno::EOVERFLOW
        );
        assert_eq!(to_off_t("pread", 4096).unwrap(), 4096);
    }
}
