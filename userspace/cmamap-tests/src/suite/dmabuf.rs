//! dma-buf export: blocks exported with `CMAMAP_IOC_EXPORT`, mapped and synced through the
//! dma-buf, passed between processes, freed and closed in every order, and imported by a real
//! driver, V4L2's vivid, with both of its videobuf2 allocators.

use std::os::fd::{AsFd, AsRawFd};

use cmamap::{
    abi, meminfo, AllocRequest, Block, CpuAccess, Device, DmaBuf, Errno, ExportRequest, Prot,
    Sharing, Strategy,
};
use cmamap_testkit::pattern;
use cmamap_testkit::process::{recv_fd, send_fd};
use cmamap_testkit::v4l2::{self, Capture};
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};

use crate::check::{expect_errno, pass, skip, Failure, Step, TestResult};
use crate::child;
use crate::ctx::Ctx;

fn mismatch(what: &str) -> impl Fn(pattern::Mismatch) -> Failure + '_ {
    move |m| Failure::new(format!("{what}: {m}"))
}

/// Every view of an exported block shows the same memory: the dma-buf's mapping (whole, a
/// window of it, and a partial export) and the block's own, whatever the block's strategy.
pub fn dmabuf_export_maps_block(ctx: &Ctx, strategy: Strategy) -> TestResult {
    let dev = ctx.open()?;
    let block = dev.alloc(&AllocRequest::new(ctx.pages(8)).strategy(strategy))?;
    let mut own = block.map(Prot::ReadWrite)?;
    pattern::fill(own.as_mut_slice(), 71, 0);
    let buf = block.export()?;
    ensure_eq!(buf.size(), block.size(), "dma-buf size");
    let mut view = buf.map(Prot::ReadWrite)?;
    buf.sync_start(CpuAccess::ReadWrite)?;
    pattern::check(view.as_slice(), 71, 0).map_err(mismatch("dma-buf mapping"))?;
    pattern::fill(view.as_mut_slice(), 72, 0);
    buf.sync_end(CpuAccess::ReadWrite)?;
    pattern::check(own.as_slice(), 72, 0).map_err(mismatch("own mapping after dma-buf writes"))?;

    let part = block.export_with(&ExportRequest {
        offset: ctx.pages(2),
        length: ctx.pages(4),
        ..Default::default()
    })?;
    ensure_eq!(
        part.size(),
        ctx.pages(4),
        "size of the export of pages 2..6"
    );
    let part_view = part.map(Prot::Read)?;
    pattern::check(part_view.as_slice(), 72, ctx.pages(2))
        .map_err(mismatch("mapping of the export of pages 2..6"))?;
    let window = part.map_range(ctx.pages(1), ctx.pages(2), Prot::Read, Sharing::Shared)?;
    pattern::check(window.as_slice(), 72, ctx.pages(3))
        .map_err(mismatch("pages 1..3 of the export of pages 2..6"))?;
    ensure_eq!(
        block.info()?.map_count,
        4,
        "map_count with three dma-buf mappings"
    );
    drop((view, part_view, window));
    ensure_eq!(
        block.info()?.map_count,
        1,
        "map_count after the dma-buf munmaps"
    );
    pass()
}

/// A change to valid EXPORT arguments.
type Edit<'a> = dyn Fn(&mut abi::ExportArgs) + 'a;

/// Each bad argument gets its errno, and nothing is exported.
pub fn dmabuf_export_bad_input(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let block = dev.alloc(&AllocRequest::new(ctx.pages(4)))?;
    let size = block.size();
    let export = |edit: &Edit<'_>| {
        let mut args = abi::ExportArgs {
            id: block.id(),
            flags: abi::EXPORT_RDWR,
            ..Default::default()
        };
        edit(&mut args);
        dev.export_raw(&mut args)
    };
    let page = ctx.pages(1);
    let cases: [(&str, &Edit<'_>, Errno); 10] = [
        ("unknown id", &|a| a.id = abi::MAX_ID, Errno::ENOENT),
        ("flags O_WRONLY", &|a| a.flags = 1, Errno::EINVAL),
        ("flags O_NONBLOCK", &|a| a.flags |= 0o4000, Errno::EINVAL),
        ("pad0", &|a| a.pad0 = 1, Errno::EINVAL),
        ("reserved", &|a| a.reserved[1] = 1, Errno::EINVAL),
        ("offset at the end", &|a| a.offset = size, Errno::EINVAL),
        ("unaligned offset", &|a| a.offset = 1, Errno::EINVAL),
        ("unaligned length", &|a| a.length = page + 1, Errno::EINVAL),
        (
            "range past the end",
            &|a| {
                a.offset = page;
                a.length = size;
            },
            Errno::EINVAL,
        ),
        (
            "range that overflows",
            &|a| {
                a.offset = page;
                a.length = u64::MAX - page + 1;
            },
            Errno::EINVAL,
        ),
    ];
    for (what, edit, errno) in cases {
        expect_errno(export(edit), errno, what)?;
    }
    let freed = dev.alloc(&AllocRequest::new(ctx.pages(1)))?;
    let freed_id = freed.id();
    freed.free()?;
    expect_errno(export(&|a| a.id = freed_id), Errno::ENOENT, "freed id")?;
    let other = ctx.open()?;
    expect_errno(
        other.export_raw(&mut abi::ExportArgs {
            id: block.id(),
            ..Default::default()
        }),
        Errno::ENOENT,
        "another file's block",
    )?;

    let buf = block.export()?;
    expect_errno(
        buf.map_range(0, size, Prot::ReadWrite, Sharing::Private),
        Errno::EINVAL,
        "MAP_PRIVATE of the dma-buf",
    )?;
    expect_errno(
        buf.map_range(0, size + page, Prot::Read, Sharing::Shared),
        Errno::EINVAL,
        "mmap past the dma-buf's end",
    )?;
    let read_only = block.export_with(&ExportRequest {
        writable: false,
        close_on_exec: false,
        ..Default::default()
    })?;
    expect_errno(
        read_only.map(Prot::ReadWrite),
        Errno::EACCES,
        "PROT_WRITE mapping of a read-only dma-buf",
    )?;
    read_only
        .map(Prot::Read)
        .step("PROT_READ mapping of a read-only dma-buf")?;
    let fd_flags = |b: &DmaBuf| nix::fcntl::fcntl(b.as_fd(), nix::fcntl::FcntlArg::F_GETFD);
    ensure_eq!(
        fd_flags(&buf).step("F_GETFD")?,
        libc::FD_CLOEXEC,
        "close-on-exec by default"
    );
    ensure_eq!(
        fd_flags(&read_only).step("F_GETFD")?,
        0,
        "close-on-exec when not asked"
    );
    for (flags, what) in [(0u64, "neither read nor write"), (1 << 3, "an unknown bit")] {
        expect_errno(
            cmamap::raw::dma_buf_sync(buf.as_fd(), flags),
            Errno::EINVAL,
            &format!("DMA_BUF_IOCTL_SYNC with {what}"),
        )?;
    }
    match device_memory_block(&dev)? {
        Some(id) => expect_errno(
            export(&|a| a.id = id),
            Errno::EOPNOTSUPP,
            "export of device memory",
        )?,
        None => println!("# no device memory in this VM: its EOPNOTSUPP is checked in shard 0"),
    }
    pass()
}

/// The id of a device-memory block (the bound ivshmem BAR), if the VM has one.
fn device_memory_block(dev: &Device) -> Result<Option<u32>, Failure> {
    Ok(dev
        .list()?
        .into_iter()
        .find(|info| info.flags & abi::INFO_DEVICE_MEMORY != 0)
        .map(|info| info.id))
}

/// fdinfo of the dma-buf's fd, and the kernel's list of every dma-buf, show it with its
/// exporter and the name it was given.
pub fn dmabuf_shows_in_bufinfo_and_fdinfo(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let block = dev.alloc(&AllocRequest::new(ctx.pages(3)))?;
    let buf = block.export()?;
    buf.set_name("cmamap-test-frame")?;
    let fdinfo = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", buf.as_fd().as_raw_fd()))
        .step("read fdinfo")?;
    for wanted in [
        format!("size:\t{}", block.size()),
        "exp_name:\tcmamap".to_owned(),
        "name:\tcmamap-test-frame".to_owned(),
    ] {
        ensure!(
            fdinfo.contains(&wanted),
            "fdinfo lacks '{wanted}':\n{fdinfo}"
        );
    }
    if ctx.needs_root().is_some() {
        return skip("debugfs bufinfo needs root; fdinfo was checked");
    }
    let inode = nix::sys::stat::fstat(buf.as_fd()).step("fstat")?.st_ino;
    let bufinfo =
        std::fs::read_to_string("/sys/kernel/debug/dma_buf/bufinfo").step("read bufinfo")?;
    let line = bufinfo
        .lines()
        .find(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            fields.len() >= 7 && fields[5].trim().parse::<u64>().ok() == Some(inode)
        })
        .ok_or_else(|| {
            Failure::new(format!("bufinfo has no line for inode {inode}:\n{bufinfo}"))
        })?;
    let fields: Vec<&str> = line.split('\t').collect();
    ensure_eq!(fields[4], "cmamap", "bufinfo exp_name");
    ensure_eq!(fields[6], "cmamap-test-frame", "bufinfo name");
    ensure_eq!(
        fields[0].trim().parse::<u64>().ok(),
        Some(block.size()),
        "bufinfo size"
    );
    pass()
}

/// The free CMA pages, exactly (the areas' own counters).
fn available_pages() -> Result<u64, Failure> {
    meminfo::cma_available_pages()
        .ok_or_else(|| Failure::new("no CMA area reports available_pages"))
}

/// The dma-buf holds the block: FREE and closing the file that allocated it kill the id but
/// keep the memory and its data, in every order of munmap, FREE, and closing the dma-buf
/// before or after the device file; the pages come back after the last holder goes.
pub fn dmabuf_outlives_free_and_close(ctx: &Ctx) -> TestResult {
    let pages = 4u64;
    for order in 0..3 {
        let before = available_pages()?;
        let dev = ctx.open()?;
        let block =
            dev.alloc(&AllocRequest::new(ctx.pages(pages as usize)).strategy(Strategy::Fault))?;
        let mut own = block.map(Prot::ReadWrite)?.detach();
        pattern::fill(own.as_mut_slice(), 90 + order, 0);
        let buf = block.export()?;
        let id = block.id();
        match order {
            // munmap, then FREE, then close the device file; the dma-buf maps afterwards.
            0 => {
                drop(own);
                block.free()?;
                drop(dev);
                let view = buf.map(Prot::Read)?;
                pattern::check(view.as_slice(), 90, 0).map_err(mismatch("after FREE and close"))?;
                ensure_eq!(
                    available_pages()?,
                    before - pages,
                    "CMA pages while the dma-buf lives"
                );
                drop(view);
                drop(buf);
            }
            // FREE with the block mapped, close the dma-buf, then munmap.
            1 => {
                block.free()?;
                expect_errno(
                    dev.info(id),
                    Errno::ENOENT,
                    "INFO of the freed, exported block",
                )?;
                drop(buf);
                pattern::check(own.as_slice(), 91, 0).map_err(mismatch("own mapping"))?;
                ensure_eq!(available_pages()?, before - pages, "CMA pages while mapped");
                drop(own);
                drop(dev);
            }
            // Close the device file (which frees the block) before the dma-buf's mapping goes.
            _ => {
                let view = buf.map(Prot::ReadWrite)?.detach();
                drop(buf);
                block.into_raw_id();
                drop(dev);
                drop(own);
                pattern::check(view.as_slice(), 92, 0).map_err(mismatch("dma-buf mapping"))?;
                ensure_eq!(
                    available_pages()?,
                    before - pages,
                    "CMA pages while only a dma-buf mapping lives"
                );
                drop(view);
            }
        }
        ensure_eq!(
            available_pages()?,
            before,
            "CMA pages once nothing holds the block (order {order})"
        );
    }
    pass()
}

/// A dma-buf fd crosses to another process over SCM_RIGHTS and through fork; both map it and
/// see each other's writes.
pub fn dmabuf_crosses_processes(ctx: &Ctx) -> TestResult {
    let (parent_sock, child_sock) = socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .step("socketpair")?;
    let receiver = child::spawn(move || {
        let mut size = [0u8; 8];
        let (fd, _) = recv_fd(child_sock.as_fd(), &mut size).step("recvmsg")?;
        let buf = DmaBuf::from_fd(fd)?;
        ensure_eq!(
            buf.size(),
            u64::from_le_bytes(size),
            "size of the received dma-buf"
        );
        let mut view = buf.map(Prot::ReadWrite)?;
        pattern::check(view.as_slice(), 61, 0).map_err(mismatch("receiver's view"))?;
        pattern::fill(view.as_mut_slice(), 62, 0);
        Ok(())
    })?;
    let dev = ctx.open()?;
    let block = dev.alloc(&AllocRequest::new(ctx.pages(4)).strategy(Strategy::Page))?;
    let buf = block.export()?;
    {
        let mut view = buf.map(Prot::ReadWrite)?;
        pattern::fill(view.as_mut_slice(), 61, 0);
    }
    send_fd(parent_sock.as_fd(), buf.as_fd(), &buf.size().to_le_bytes()).step("sendmsg")?;
    child::wait(receiver)?;
    let view = buf.map(Prot::Read)?;
    pattern::check(view.as_slice(), 62, 0).map_err(mismatch("the receiver's writes"))?;
    // Through fork: the child's inherited fd maps the same memory.
    child::run(|| {
        let view = buf.map(Prot::Read)?;
        pattern::check(view.as_slice(), 62, 0).map_err(mismatch("forked child's view"))
    })?;
    pass()
}

/// vivid instance 0 imports with videobuf2-vmalloc (`vmap`), instance 1 with dma-contig
/// (`map_dma_buf` through the DMA API).
fn vivid(ctx: &Ctx, instance: u32) -> Result<Result<Capture, TestResult>, Failure> {
    if let Some(skipped) = ctx.needs_root() {
        return Ok(Err(skipped));
    }
    let Some(path) = Capture::find_vivid(instance) else {
        return Err(Failure::new(format!(
            "no vivid instance {instance}: the test kernel builds vivid in and the VM boots it \
             with vivid.n_devs=2"
        )));
    };
    let capture = Capture::open(&path).step("open vivid")?;
    capture
        .set_control(v4l2::VIVID_CID_OSD_TEXT_MODE, v4l2::VIVID_OSD_NONE)
        .step("turn vivid's text overlay off")?;
    Ok(Ok(capture))
}

/// Frames that vivid captures into cmamap dma-bufs equal a frame captured into its own MMAP
/// buffers: vivid's test pattern is the same in every frame once its text is off.
fn vivid_captures_into_dmabufs(ctx: &Ctx, instance: u32) -> TestResult {
    let capture = match vivid(ctx, instance)? {
        Ok(capture) => capture,
        Err(skipped) => return skipped,
    };
    let format = capture.format().step("VIDIOC_G_FMT")?;
    let reference = capture
        .capture_mmap_frame(1)
        .step("reference MMAP capture")?;
    ensure_eq!(
        reference.len(),
        format.sizeimage as usize,
        "reference frame size"
    );
    ensure!(
        reference.iter().any(|&b| b != 0),
        "vivid's reference frame is all zero"
    );
    println!(
        "# {}: {}x{} fourcc {:#x}, {} bytes a frame",
        capture.path().display(),
        format.width,
        format.height,
        format.pixelformat,
        format.sizeimage
    );
    let dev = ctx.open()?;
    let count = 3u32;
    let blocks: Vec<Block<'_>> = (0..count)
        .map(|_| dev.alloc(&AllocRequest::new(format.sizeimage.into()).strategy(Strategy::Fault)))
        .collect::<Result<_, _>>()?;
    let bufs: Vec<DmaBuf> = blocks.iter().map(Block::export).collect::<Result<_, _>>()?;
    let views: Vec<_> = blocks
        .iter()
        .map(|b| b.map(Prot::Read))
        .collect::<Result<_, _>>()?;
    let granted = capture
        .request_buffers(v4l2::MEMORY_DMABUF, count)
        .step("REQBUFS DMABUF")?;
    ensure_eq!(granted, count, "DMABUF buffers granted");
    let length = |b: &DmaBuf| u32::try_from(b.size()).unwrap_or(u32::MAX);
    for (index, buf) in bufs.iter().enumerate() {
        capture
            .queue_dmabuf(index as u32, buf.as_fd(), length(buf))
            .step("QBUF")?;
    }
    capture.stream_on().step("STREAMON")?;
    let frames = 6;
    let result = (|| -> Result<(), Failure> {
        for _ in 0..frames {
            let got = capture.dequeue(v4l2::MEMORY_DMABUF, 10_000).step("DQBUF")?;
            let index = got.index as usize;
            ensure_eq!(got.bytesused as usize, reference.len(), "bytes captured");
            bufs[index].sync_start(CpuAccess::Read)?;
            let frame = &views[index].as_slice()[..reference.len()];
            let same = frame == reference.as_slice();
            bufs[index].sync_end(CpuAccess::Read)?;
            ensure!(
                same,
                "frame {} in block {} differs from the MMAP reference (first difference at byte {:?})",
                got.sequence,
                blocks[index].id(),
                frame.iter().zip(&reference).position(|(a, b)| a != b)
            );
            capture
                .queue_dmabuf(got.index, bufs[index].as_fd(), length(&bufs[index]))
                .step("re-QBUF")?;
        }
        Ok(())
    })();
    capture.stream_off().step("STREAMOFF")?;
    capture
        .request_buffers(v4l2::MEMORY_DMABUF, 0)
        .step("REQBUFS 0")?;
    result?;
    println!("# {frames} frames captured into cmamap dma-bufs match the MMAP reference");
    pass()
}

pub fn dmabuf_vivid_capture_vmalloc(ctx: &Ctx) -> TestResult {
    vivid_captures_into_dmabufs(ctx, 0)
}

pub fn dmabuf_vivid_capture_dma_contig(ctx: &Ctx) -> TestResult {
    vivid_captures_into_dmabufs(ctx, 1)
}

/// vivid keeps streaming into blocks whose ids were freed and whose file and dma-buf fds were
/// closed; the memory comes back only after STREAMOFF and REQBUFS(0).
pub fn dmabuf_vivid_free_while_streaming(ctx: &Ctx) -> TestResult {
    let capture = match vivid(ctx, 1)? {
        Ok(capture) => capture,
        Err(skipped) => return skipped,
    };
    let format = capture.format().step("VIDIOC_G_FMT")?;
    let before = available_pages()?;
    let count = 3u32;
    let dev = ctx.open()?;
    let blocks: Vec<Block<'_>> = (0..count)
        .map(|_| dev.alloc(&AllocRequest::new(format.sizeimage.into())))
        .collect::<Result<_, _>>()?;
    let pages: u64 = blocks.iter().map(|b| b.size() / ctx.page as u64).sum();
    let bufs: Vec<DmaBuf> = blocks.iter().map(Block::export).collect::<Result<_, _>>()?;
    capture
        .request_buffers(v4l2::MEMORY_DMABUF, count)
        .step("REQBUFS DMABUF")?;
    for (index, buf) in bufs.iter().enumerate() {
        let length = u32::try_from(buf.size()).unwrap_or(u32::MAX);
        capture
            .queue_dmabuf(index as u32, buf.as_fd(), length)
            .step("QBUF")?;
    }
    capture.stream_on().step("STREAMON")?;
    // vivid holds the dma-bufs from here: every handle of ours goes while it streams.
    for block in blocks {
        block.free()?;
    }
    drop(dev);
    drop(bufs);
    let result = (|| -> Result<(), Failure> {
        for _ in 0..count {
            capture.dequeue(v4l2::MEMORY_DMABUF, 10_000).step("DQBUF")?;
        }
        ensure_eq!(
            available_pages()?,
            before - pages,
            "CMA pages while vivid streams into freed blocks"
        );
        Ok(())
    })();
    capture.stream_off().step("STREAMOFF")?;
    let after_streamoff = available_pages()?;
    capture
        .request_buffers(v4l2::MEMORY_DMABUF, 0)
        .step("REQBUFS 0")?;
    result?;
    ensure_eq!(
        after_streamoff,
        before - pages,
        "CMA pages after STREAMOFF (vivid still holds the buffers)"
    );
    ensure_eq!(available_pages()?, before, "CMA pages after REQBUFS(0)");
    pass()
}
