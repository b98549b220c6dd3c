//! The kernel's CMA dma-heap (`/dev/dma_heap/*`): the benchmark's in-tree contender, and how
//! the VM settles CMA before and after the module is loaded ([`settle_cma`]).
//!
//! # Safety
//! The only `unsafe` is the `DMA_HEAP_IOCTL_ALLOC` call, whose argument layout matches
//! `struct dma_heap_allocation_data` in `include/uapi/linux/dma-heap.h`.
//!
//! # Invariants
//! A [`DmaHeap`] holds an open heap device; every fd it returns is a fresh dma-buf owned by the
//! caller.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Where heaps appear.
pub const HEAP_DIR: &str = "/dev/dma_heap";

/// Heap names of the default CMA area, best first: 7.x calls it `default_cma_region`; older
/// kernels used the area's own name (`reserved` for `cma=`).
const PREFERRED: [&str; 2] = ["default_cma_region", "reserved"];

/// `struct dma_heap_allocation_data`.
#[repr(C)]
#[derive(Debug, Default)]
struct AllocationData {
    len: u64,
    fd: u32,
    fd_flags: u32,
    heap_flags: u64,
}

nix::ioctl_readwrite!(heap_alloc, b'H', 0, AllocationData);

/// An open CMA dma-heap.
#[derive(Debug)]
pub struct DmaHeap {
    path: PathBuf,
    file: File,
}

/// The CMA heap to use among the entries of `HEAP_DIR`: a preferred name, else any heap but
/// the (non-contiguous) `system` heap.
pub fn choose(names: &[String]) -> Option<&str> {
    PREFERRED
        .iter()
        .find_map(|want| names.iter().find(|name| name == want))
        .or_else(|| {
            let mut others: Vec<&String> = names.iter().filter(|n| *n != "system").collect();
            others.sort();
            others.into_iter().next()
        })
        .map(String::as_str)
}

impl DmaHeap {
    /// Opens the CMA heap, or says why there is none.
    pub fn find() -> Result<Self, String> {
        let entries = std::fs::read_dir(HEAP_DIR).map_err(|err| format!("no {HEAP_DIR}: {err}"))?;
        let names: Vec<String> = entries
            .filter_map(|entry| entry.ok())
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .collect();
        let name =
            choose(&names).ok_or_else(|| format!("{HEAP_DIR} has no CMA heap ({names:?})"))?;
        let path = Path::new(HEAP_DIR).join(name);
        let file = OpenOptions::new()
            .read(true)
            .open(&path)
            .map_err(|err| format!("open {}: {err}", path.display()))?;
        Ok(Self { path, file })
    }

    /// The heap's device path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Allocates a zeroed, physically contiguous dma-buf of `len` bytes.
    pub fn alloc(&self, len: u64) -> io::Result<OwnedFd> {
        let mut data = AllocationData {
            len,
            fd_flags: (libc::O_RDWR | libc::O_CLOEXEC) as u32,
            ..Default::default()
        };
        // SAFETY: `data` is a live, correctly laid out argument for this request, and the fd
        // is the heap device this request belongs to.
        unsafe { heap_alloc(self.file.as_raw_fd(), &mut data) }?;
        let fd = i32::try_from(data.fd).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
        // SAFETY: the ioctl succeeded, so `fd` is a new descriptor that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }
}

/// Chunk sizes for [`settle_cma`], largest first: each is a multiple of 64 KiB, so a page that
/// cannot be allocated costs at most the 64 KiB piece around it in the count taken.
const SETTLE_CHUNKS: [u64; 3] = [16 << 20, 1 << 20, 64 << 10];

/// Allocates the default CMA area's free pages through the heap and gives them back; returns
/// how many bytes it could take.
///
/// The allocation migrates out every page the kernel lent to other movable allocations (page
/// cache, tmpfs, anonymous memory), so a page it cannot take is held by someone: the VM's
/// verdict compares the count before insmod and after rmmod. `CmaFree` is not exact after it:
/// released pieces of a huge page's order wait on per-CPU lists (62 MB on arm64).
/// `free_bytes` (the area's `available_pages` in bytes) bounds what is asked for, so a fully
/// free area sees no failed allocation; a piece the kernel cannot give moves on to smaller
/// pieces.
pub fn settle_cma(free_bytes: u64) -> Result<u64, String> {
    let heap = DmaHeap::find()?;
    let mut held = Vec::new();
    let mut taken = 0u64;
    for chunk in SETTLE_CHUNKS {
        while taken + chunk <= free_bytes {
            match heap.alloc(chunk) {
                Ok(fd) => {
                    held.push(fd);
                    taken += chunk;
                }
                Err(_) => break,
            }
        }
    }
    drop(held);
    Ok(taken)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_default_cma_heap_wins() {
        let list = names(&["system", "reserved", "default_cma_region"]);
        assert_eq!(choose(&list), Some("default_cma_region"));
        assert_eq!(choose(&names(&["system", "reserved"])), Some("reserved"));
    }

    #[test]
    fn any_cma_heap_but_never_system() {
        assert_eq!(choose(&names(&["system", "linux,cma"])), Some("linux,cma"));
        assert_eq!(choose(&names(&["system"])), None);
        assert_eq!(choose(&[]), None);
    }

    #[test]
    fn the_argument_matches_the_uapi_layout() {
        assert_eq!(std::mem::size_of::<AllocationData>(), 24);
    }
}
