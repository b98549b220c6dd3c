//! A V4L2 capture device driven from userspace: just enough of the API to capture frames into
//! the driver's own (`MMAP`) buffers or into imported dma-bufs. The test VM boots two
//! instances of vivid, the kernel's virtual capture driver: instance 0 with videobuf2's
//! vmalloc allocator (it reaches an imported buffer through `vmap`) and instance 1 with
//! dma-contig (through `map_dma_buf` and the DMA API).

use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

/// `V4L2_BUF_TYPE_VIDEO_CAPTURE`.
const BUF_TYPE_VIDEO_CAPTURE: u32 = 1;
/// `V4L2_MEMORY_MMAP`.
pub const MEMORY_MMAP: u32 = 1;
/// `V4L2_MEMORY_DMABUF`.
pub const MEMORY_DMABUF: u32 = 4;
/// `V4L2_CAP_VIDEO_CAPTURE`.
const CAP_VIDEO_CAPTURE: u32 = 1;
/// vivid's "OSD Text Mode" control (`VIVID_CID_OSD_TEXT_MODE`); 2 draws no text, so that
/// every frame of the test pattern is the same.
pub const VIVID_CID_OSD_TEXT_MODE: u32 = 0x00f0_f000 + 1;
/// The value of [`VIVID_CID_OSD_TEXT_MODE`] that draws nothing.
pub const VIVID_OSD_NONE: i32 = 2;

/// `struct v4l2_capability`.
#[repr(C)]
#[derive(Clone, Copy)]
struct Capability {
    driver: [u8; 16],
    card: [u8; 32],
    bus_info: [u8; 32],
    version: u32,
    capabilities: u32,
    device_caps: u32,
    reserved: [u32; 3],
}

/// `struct v4l2_pix_format`, the `pix` member of `struct v4l2_format`'s union.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PixFormat {
    pub width: u32,
    pub height: u32,
    pub pixelformat: u32,
    pub field: u32,
    pub bytesperline: u32,
    pub sizeimage: u32,
    pub colorspace: u32,
    pub priv_: u32,
    pub flags: u32,
    pub ycbcr_enc: u32,
    pub quantization: u32,
    pub xfer_func: u32,
}

/// `struct v4l2_format`: its union is 200 bytes, 8-byte aligned (it holds pointers).
#[repr(C)]
#[derive(Clone, Copy)]
struct Format {
    kind: u32,
    pad: u32,
    pix: PixFormat,
    rest: [u8; 200 - std::mem::size_of::<PixFormat>()],
}

/// `struct v4l2_requestbuffers`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct RequestBuffers {
    count: u32,
    kind: u32,
    memory: u32,
    capabilities: u32,
    flags: u8,
    reserved: [u8; 3],
}

/// `struct v4l2_buffer` (64-bit layout: `struct timeval` of two longs, an 8-byte union).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Buffer {
    index: u32,
    kind: u32,
    bytesused: u32,
    flags: u32,
    field: u32,
    pad0: u32,
    timestamp: [i64; 2],
    timecode: [u32; 4],
    sequence: u32,
    memory: u32,
    /// `m.offset` (MMAP) or `m.fd` (DMABUF) in its low 32 bits.
    m: u64,
    length: u32,
    reserved2: u32,
    request_fd: i32,
    pad1: u32,
}

/// `struct v4l2_control`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Control {
    id: u32,
    value: i32,
}

const _: () = assert!(std::mem::size_of::<Capability>() == 104);
const _: () = assert!(std::mem::size_of::<Format>() == 208);
const _: () = assert!(std::mem::size_of::<RequestBuffers>() == 20);
const _: () = assert!(std::mem::size_of::<Buffer>() == 88);

nix::ioctl_read!(vidioc_querycap, b'V', 0, Capability);
nix::ioctl_readwrite!(vidioc_g_fmt, b'V', 4, Format);
nix::ioctl_readwrite!(vidioc_reqbufs, b'V', 8, RequestBuffers);
nix::ioctl_readwrite!(vidioc_querybuf, b'V', 9, Buffer);
nix::ioctl_readwrite!(vidioc_qbuf, b'V', 15, Buffer);
nix::ioctl_readwrite!(vidioc_dqbuf, b'V', 17, Buffer);
nix::ioctl_write_ptr!(vidioc_streamon, b'V', 18, i32);
nix::ioctl_write_ptr!(vidioc_streamoff, b'V', 19, i32);
nix::ioctl_readwrite!(vidioc_s_ctrl, b'V', 28, Control);

/// A frame taken off the queue.
#[derive(Clone, Copy, Debug)]
pub struct Dequeued {
    pub index: u32,
    pub bytesused: u32,
    pub sequence: u32,
}

/// An open capture device.
pub struct Capture {
    fd: OwnedFd,
    path: PathBuf,
}

fn errno(what: &str, e: nix::Error) -> io::Error {
    io::Error::new(io::Error::from(e).kind(), format!("{what}: {e}"))
}

fn text(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

impl Capture {
    /// The video capture node of vivid instance `instance` (bus `platform:vivid-00N`).
    pub fn find_vivid(instance: u32) -> Option<PathBuf> {
        let wanted = format!("platform:vivid-{instance:03}");
        let mut nodes: Vec<PathBuf> = std::fs::read_dir("/dev")
            .ok()?
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("video"))
            })
            .collect();
        nodes.sort();
        nodes.into_iter().find(|path| {
            Self::open(path)
                .and_then(|c| c.bus_info())
                .is_ok_and(|(bus, caps)| bus == wanted && caps & CAP_VIDEO_CAPTURE != 0)
        })
    }

    pub fn open(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(Self {
            fd: file.into(),
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn raw(&self) -> i32 {
        self.fd.as_raw_fd()
    }

    /// The bus info and the device capabilities.
    fn bus_info(&self) -> io::Result<(String, u32)> {
        // SAFETY: All-zero is a valid `Capability`.
        let mut cap: Capability = unsafe { std::mem::zeroed() };
        // SAFETY: `cap` is a live, exclusive struct of the size the request encodes.
        unsafe { vidioc_querycap(self.raw(), &mut cap) }
            .map_err(|e| errno("VIDIOC_QUERYCAP", e))?;
        Ok((text(&cap.bus_info), cap.device_caps))
    }

    /// The current capture format.
    pub fn format(&self) -> io::Result<PixFormat> {
        let mut fmt = Format {
            kind: BUF_TYPE_VIDEO_CAPTURE,
            pad: 0,
            pix: PixFormat::default(),
            rest: [0; 200 - std::mem::size_of::<PixFormat>()],
        };
        // SAFETY: `fmt` is a live, exclusive struct of the size the request encodes.
        unsafe { vidioc_g_fmt(self.raw(), &mut fmt) }.map_err(|e| errno("VIDIOC_G_FMT", e))?;
        Ok(fmt.pix)
    }

    pub fn set_control(&self, id: u32, value: i32) -> io::Result<()> {
        let mut ctrl = Control { id, value };
        // SAFETY: `ctrl` is a live, exclusive struct of the size the request encodes.
        unsafe { vidioc_s_ctrl(self.raw(), &mut ctrl) }.map_err(|e| errno("VIDIOC_S_CTRL", e))?;
        Ok(())
    }

    /// `VIDIOC_REQBUFS`: asks for `count` buffers of `memory` (0 frees them); how many came.
    pub fn request_buffers(&self, memory: u32, count: u32) -> io::Result<u32> {
        let mut req = RequestBuffers {
            count,
            kind: BUF_TYPE_VIDEO_CAPTURE,
            memory,
            ..Default::default()
        };
        // SAFETY: `req` is a live, exclusive struct of the size the request encodes.
        unsafe { vidioc_reqbufs(self.raw(), &mut req) }.map_err(|e| errno("VIDIOC_REQBUFS", e))?;
        Ok(req.count)
    }

    fn buffer(memory: u32, index: u32) -> Buffer {
        Buffer {
            index,
            kind: BUF_TYPE_VIDEO_CAPTURE,
            memory,
            ..Default::default()
        }
    }

    /// Queues MMAP buffer `index`.
    pub fn queue_mmap(&self, index: u32) -> io::Result<()> {
        let mut buf = Self::buffer(MEMORY_MMAP, index);
        // SAFETY: `buf` is a live, exclusive struct of the size the request encodes.
        unsafe { vidioc_qbuf(self.raw(), &mut buf) }.map_err(|e| errno("VIDIOC_QBUF", e))?;
        Ok(())
    }

    /// Queues DMABUF buffer `index`, backed by dma-buf `dmabuf` of `length` bytes.
    pub fn queue_dmabuf(&self, index: u32, dmabuf: BorrowedFd<'_>, length: u32) -> io::Result<()> {
        let mut buf = Self::buffer(MEMORY_DMABUF, index);
        buf.m = dmabuf.as_raw_fd() as u32 as u64;
        buf.length = length;
        // SAFETY: `buf` is a live, exclusive struct of the size the request encodes.
        unsafe { vidioc_qbuf(self.raw(), &mut buf) }.map_err(|e| errno("VIDIOC_QBUF", e))?;
        Ok(())
    }

    /// Takes the next filled buffer off the queue, waiting up to `timeout_ms` for one.
    pub fn dequeue(&self, memory: u32, timeout_ms: u16) -> io::Result<Dequeued> {
        let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
        let ready = poll(&mut fds, PollTimeout::from(timeout_ms)).map_err(|e| errno("poll", e))?;
        if ready == 0 {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "no frame from {} within {timeout_ms} ms",
                    self.path.display()
                ),
            ));
        }
        let mut buf = Self::buffer(memory, 0);
        // SAFETY: `buf` is a live, exclusive struct of the size the request encodes.
        unsafe { vidioc_dqbuf(self.raw(), &mut buf) }.map_err(|e| errno("VIDIOC_DQBUF", e))?;
        Ok(Dequeued {
            index: buf.index,
            bytesused: buf.bytesused,
            sequence: buf.sequence,
        })
    }

    pub fn stream_on(&self) -> io::Result<()> {
        // SAFETY: The argument is a live int the kernel only reads.
        unsafe { vidioc_streamon(self.raw(), &(BUF_TYPE_VIDEO_CAPTURE as i32)) }
            .map_err(|e| errno("VIDIOC_STREAMON", e))?;
        Ok(())
    }

    pub fn stream_off(&self) -> io::Result<()> {
        // SAFETY: The argument is a live int the kernel only reads.
        unsafe { vidioc_streamoff(self.raw(), &(BUF_TYPE_VIDEO_CAPTURE as i32)) }
            .map_err(|e| errno("VIDIOC_STREAMOFF", e))?;
        Ok(())
    }

    /// Captures one frame into the driver's own buffers and returns its bytes: a reference
    /// to compare frames captured into imported buffers with. The first `skip` frames are
    /// dropped.
    pub fn capture_mmap_frame(&self, skip: u32) -> io::Result<Vec<u8>> {
        let count = self.request_buffers(MEMORY_MMAP, 2)?;
        let result = (|| {
            let mut maps = Vec::new();
            for index in 0..count {
                let mut buf = Self::buffer(MEMORY_MMAP, index);
                // SAFETY: `buf` is a live, exclusive struct of the size the request encodes.
                unsafe { vidioc_querybuf(self.raw(), &mut buf) }
                    .map_err(|e| errno("VIDIOC_QUERYBUF", e))?;
                let map = crate::region::Region::map(
                    self.fd.as_fd(),
                    buf.m & 0xffff_ffff,
                    buf.length as usize,
                )
                .map_err(|e| io::Error::other(e.to_string()))?;
                maps.push(map);
                self.queue_mmap(index)?;
            }
            self.stream_on()?;
            let mut frame = None;
            for _ in 0..=skip {
                let got = self.dequeue(MEMORY_MMAP, 10_000)?;
                let map: &crate::region::Region = &maps[got.index as usize];
                frame = Some(map.copy_out(0, got.bytesused as usize));
                self.queue_mmap(got.index)?;
            }
            self.stream_off()?;
            Ok(frame.unwrap_or_default())
        })();
        self.request_buffers(MEMORY_MMAP, 0)?;
        result
    }
}

impl AsFd for Capture {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
