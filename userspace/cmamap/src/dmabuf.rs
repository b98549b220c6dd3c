//! dma-buf export: a block, or part of one, as a dma-buf that other drivers import: V4L2
//! capture (`V4L2_MEMORY_DMABUF`), DRM (PRIME), RDMA (`ibv_reg_dmabuf_mr`), encoders.
//!
//! A [`DmaBuf`] holds its block: freeing the block kills its id, but the memory stays until the
//! last dma-buf fd, mapping and importer are gone. Around CPU access to what a device wrote or
//! will read, bracket the access with [`DmaBuf::sync_start`] and [`DmaBuf::sync_end`]: they
//! sync every importer's mapping and every [`crate::DmaMapping`] of the block.

use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::unistd::{lseek, Whence};

use crate::abi;
use crate::block::Block;
use crate::device::Device;
use crate::error::{Context, Error, Result};
use crate::mapping::{Mapping, Sharing};
use crate::raw;
use crate::strategy::Prot;

/// What part of a block to export, and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExportRequest {
    /// Bytes into the block, page aligned.
    pub offset: u64,
    /// Bytes, a page multiple; 0 exports to the end of the block.
    pub length: u64,
    /// Read-write (`O_RDWR`); a read-only dma-buf refuses writable mappings.
    pub writable: bool,
    /// Close the fd on exec (`O_CLOEXEC`).
    pub close_on_exec: bool,
}

impl Default for ExportRequest {
    fn default() -> Self {
        Self {
            offset: 0,
            length: 0,
            writable: true,
            close_on_exec: true,
        }
    }
}

impl ExportRequest {
    /// The `EXPORT_*` flags.
    pub fn flags(&self) -> u32 {
        let mut flags = 0;
        if self.writable {
            flags |= abi::EXPORT_RDWR;
        }
        if self.close_on_exec {
            flags |= abi::EXPORT_CLOEXEC;
        }
        flags
    }
}

/// Which CPU access a sync brackets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuAccess {
    /// The CPU reads what a device wrote.
    Read,
    /// The CPU writes what a device will read.
    Write,
    /// Both.
    ReadWrite,
}

impl CpuAccess {
    fn flags(self) -> u64 {
        match self {
            Self::Read => raw::DMA_BUF_SYNC_READ,
            Self::Write => raw::DMA_BUF_SYNC_WRITE,
            Self::ReadWrite => raw::DMA_BUF_SYNC_READ | raw::DMA_BUF_SYNC_WRITE,
        }
    }
}

/// A dma-buf: an fd that importers take, and that maps like the block it came from.
#[derive(Debug)]
pub struct DmaBuf {
    fd: OwnedFd,
    size: u64,
}

impl DmaBuf {
    /// Wraps a dma-buf fd (one received over a socket, say); its size comes from `lseek`.
    pub fn from_fd(fd: OwnedFd) -> Result<Self> {
        let end = lseek(fd.as_fd(), 0, Whence::SeekEnd).context("lseek (dma-buf size)")?;
        let size = u64::try_from(end).map_err(|_| Error::new("lseek", Errno::EINVAL))?;
        Ok(Self { fd, size })
    }

    /// The size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Gives up the handle; the fd stays open.
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }

    /// Begins a CPU access (`DMA_BUF_IOCTL_SYNC` with `DMA_BUF_SYNC_START`).
    pub fn sync_start(&self, access: CpuAccess) -> Result<()> {
        raw::dma_buf_sync(self.fd.as_fd(), access.flags() | raw::DMA_BUF_SYNC_START)
            .context("DMA_BUF_IOCTL_SYNC")
    }

    /// Ends a CPU access (`DMA_BUF_IOCTL_SYNC` with `DMA_BUF_SYNC_END`).
    pub fn sync_end(&self, access: CpuAccess) -> Result<()> {
        raw::dma_buf_sync(self.fd.as_fd(), access.flags() | raw::DMA_BUF_SYNC_END)
            .context("DMA_BUF_IOCTL_SYNC")
    }

    /// Names the buffer for `/sys/kernel/debug/dma_buf/bufinfo` and fdinfo (at most 31 bytes).
    pub fn set_name(&self, name: &str) -> Result<()> {
        let name = CString::new(name).map_err(|_| Error::new("DMA_BUF_SET_NAME", Errno::EINVAL))?;
        raw::dma_buf_set_name(self.fd.as_fd(), &name).context("DMA_BUF_SET_NAME")
    }

    /// Maps the whole dma-buf, `MAP_SHARED` (the only kind it allows).
    pub fn map(&self, prot: Prot) -> Result<Mapping<'_>> {
        self.map_range(0, self.size, prot, Sharing::Shared)
    }

    /// Maps `len` bytes from byte `offset` of the dma-buf.
    pub fn map_range(
        &self,
        offset: u64,
        len: u64,
        prot: Prot,
        sharing: Sharing,
    ) -> Result<Mapping<'_>> {
        let len = usize::try_from(len).map_err(|_| Error::new("mmap", Errno::EINVAL))?;
        Mapping::new(self.fd.as_fd(), offset, len, prot, sharing)
    }
}

impl AsFd for DmaBuf {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Device {
    /// `IOC_EXPORT` with caller-built arguments; `args.fd` is owned by the returned handle.
    pub fn export_raw(&self, args: &mut abi::ExportArgs) -> Result<DmaBuf> {
        raw::export(self.as_fd(), args).context("CMAMAP_IOC_EXPORT")?;
        // SAFETY: The driver just installed this fd for us; nothing else owns it.
        let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(args.fd) };
        Ok(DmaBuf {
            fd,
            size: args.size,
        })
    }
}

impl Block<'_> {
    /// Exports the whole block as a read-write dma-buf (close-on-exec).
    ///
    /// ```no_run
    /// use cmamap::{AllocRequest, CpuAccess, Device, Prot};
    ///
    /// let dev = Device::open()?;
    /// let block = dev.alloc(&AllocRequest::new(1 << 20))?;
    /// let buf = block.export()?;
    /// // Hand `buf.as_fd()` to V4L2 (VIDIOC_QBUF with V4L2_MEMORY_DMABUF), DRM, ...
    /// buf.sync_start(CpuAccess::Read)?;
    /// let view = buf.map(Prot::Read)?;
    /// println!("first byte {}", view.as_slice()[0]);
    /// buf.sync_end(CpuAccess::Read)?;
    /// # Ok::<(), cmamap::Error>(())
    /// ```
    pub fn export(&self) -> Result<DmaBuf> {
        self.export_with(&ExportRequest::default())
    }

    /// Exports (part of) the block as `request` says.
    pub fn export_with(&self, request: &ExportRequest) -> Result<DmaBuf> {
        self.device().export_raw(&mut abi::ExportArgs {
            id: self.id(),
            flags: request.flags(),
            offset: request.offset,
            length: request.length,
            ..Default::default()
        })
    }
}
