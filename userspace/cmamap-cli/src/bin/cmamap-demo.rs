//! `cmamap-demo`: a narrated walk through /dev/cmamap for `make run`.
//!
//! It allocates a block per strategy, maps and checks them, maps one through every strategy's
//! view at once, shares one with a forked child and a
//! persistent one with an unrelated process (this binary re-executed, opening the device
//! itself), shows the driver's view, has edu DMA into a block and vivid capture a frame into
//! one exported as a dma-buf, frees everything and checks that CmaFree is back.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use cmamap::units::{format_size, parse_size, parse_u32, parse_u64};
use std::os::fd::{AsFd, AsRawFd};

use cmamap::{
    meminfo, AllocRequest, Block, CpuAccess, Device, Direction, DmaDevice, Errno, Prot, Strategy,
};
use cmamap_cli::{report, share};
use cmamap_testkit::edu::{self, Edu};
use cmamap_testkit::pattern;
use cmamap_testkit::v4l2::{self, Capture};

const DEBUGFS_BLOCKS: &str = "/sys/kernel/debug/cmamap/blocks";

/// A narrated demonstration of /dev/cmamap.
#[derive(Debug, Parser)]
#[command(name = "cmamap-demo", version)]
struct Cli {
    /// The cmamap device node.
    #[arg(long, global = true, value_name = "PATH", default_value = cmamap::DEFAULT_PATH)]
    device: PathBuf,

    /// Size of each demo block.
    #[arg(long, value_parser = parse_size, default_value = "4M")]
    size: u64,

    #[command(subcommand)]
    role: Option<Role>,
}

#[derive(Debug, Subcommand)]
enum Role {
    /// The unrelated process of step 6: open the device, check block ID, write a reply.
    #[command(hide = true)]
    Peer {
        #[arg(value_parser = parse_u32)]
        id: u32,
        #[arg(value_parser = parse_u64)]
        seed: u64,
        #[arg(value_parser = parse_u64)]
        reply_seed: u64,
    },
}

type Result<T = ()> = anyhow::Result<T>;

fn step(title: &str) {
    println!();
    println!("== {title}");
}

fn minor_faults() -> Result<i64> {
    cmamap_testkit::minor_faults().context("getrusage")
}

fn show_cma(dev: &Device, label: &str) -> Option<u64> {
    // Settled: recently freed small chunks put back first.
    match (
        meminfo::read(),
        meminfo::settled_cma_free_kib(Some(dev)).ok(),
    ) {
        (Ok(cma), Some(free_kib)) => {
            println!(
                "  {label}: CmaFree {} of CmaTotal {}",
                format_size(free_kib * 1024),
                format_size(cma.total_kib * 1024)
            );
            Some(free_kib)
        }
        (Ok(_), None) => {
            println!("  {label}: CmaFree unavailable");
            None
        }
        (Err(err), _) => {
            println!("  {label}: CMA figures unavailable: {err}");
            None
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.role {
        Some(Role::Peer {
            id,
            seed,
            reply_seed,
        }) => peer(&cli.device, id, seed, reply_seed),
        None => demo(&cli.device, cli.size),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let _ = std::io::stdout().flush();
            eprintln!("cmamap-demo: {err:#}");
            ExitCode::from(1)
        }
    }
}

/// The unrelated process: it shares nothing with the demo but the block's id.
fn peer(device: &Path, id: u32, seed: u64, reply_seed: u64) -> Result {
    let me = std::process::id();
    let dev = Device::open_path(device)?;
    let block = dev.block(id)?;
    let info = block.info()?;
    println!(
        "  [peer {me}] opened {} itself; block {id}: owner {}, allocated by pid {}",
        device.display(),
        info.owner,
        info.owner_tgid
    );
    let mut mapping = block.map(Prot::ReadWrite)?;
    pattern::check(mapping.as_slice(), seed, 0).with_context(|| format!("peer: block {id}"))?;
    println!(
        "  [peer {me}] verified the demo's pattern ({}), writing a reply",
        format_size(block.size())
    );
    pattern::fill(mapping.as_mut_slice(), reply_seed, 0);
    Ok(())
}

/// Step 6: a persistent block, checked and answered by a separate process that opens the
/// device itself. Without CAP_SYS_ADMIN there is no persistent block, and the step says so.
fn share_persistent<'dev>(
    dev: &'dev Device,
    device: &Path,
    size: u64,
) -> Result<Option<Block<'dev>>> {
    let persistent = match share::alloc_persistent(dev, size, Strategy::Page) {
        Ok(block) => block,
        Err(err) if err.errno() == Errno::EPERM => {
            println!("  (skipped: PERSIST needs CAP_SYS_ADMIN; run the demo as root)");
            return Ok(None);
        }
        Err(err) => return Err(err.into()),
    };
    let (seed, reply) = (200, 201);
    share::write_pattern(&persistent, seed)?;
    println!(
        "  allocated persistent block {} (owned by the module, visible to every opener), \
         wrote pattern {seed}",
        persistent.id()
    );
    let mut peer = share::this_program_on(device).context("current_exe")?;
    let exe = PathBuf::from(peer.get_program());
    println!(
        "  starting {} peer {} (a new process)",
        exe.display(),
        persistent.id()
    );
    let _ = std::io::stdout().flush();
    let status = peer
        .args(["peer", &persistent.id().to_string()])
        .args([seed.to_string(), reply.to_string()])
        .status()
        .with_context(|| format!("spawn {}", exe.display()))?;
    if !status.success() {
        bail!("the peer process failed ({status})");
    }
    let read = persistent.read_all()?;
    pattern::check(&read, reply, 0).context("peer's reply")?;
    println!("  demo: read the peer's reply with pread: OK");
    Ok(Some(persistent))
}

/// Step 4: the same block mapped through the remap, fault and page views at once. Each view
/// faults like a block of its strategy, and all show the same bytes.
fn show_views(block: &Block<'_>) -> Result {
    let page = cmamap::page_size();
    let len = usize::try_from(block.size()).context("block too large to map")?;
    let seed = 300;
    {
        let mut own = block.map(Prot::ReadWrite)?;
        pattern::fill(own.as_mut_slice(), seed, 0);
    }
    println!(
        "  block {} ({} strategy): wrote pattern {seed} through its own mapping",
        block.id(),
        block.strategy()
    );
    let mut views = Vec::new();
    for view in Strategy::CONCRETE {
        let mapping = block
            .map_view(view, 0, len, Prot::Read)
            .with_context(|| format!("{view} view"))?;
        // One read per page, counted: a remap view is populated at mmap, the others fault.
        let before = minor_faults()?;
        for index in (0..len).step_by(page) {
            mapping.read_volatile(index);
        }
        let faults = minor_faults()? - before;
        pattern::check(mapping.as_slice(), seed, 0).with_context(|| format!("{view} view"))?;
        let first: Vec<String> = mapping.as_slice()[..8]
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        println!(
            "  {view:<5} view at {:#x}: {faults:>4} minor faults reading {} pages; first bytes \
             {}; pattern verified",
            mapping.addr(),
            len / page,
            first.join(" ")
        );
        views.push(mapping);
    }
    let info = block.info()?;
    println!(
        "  IOC_INFO: map_count {} (all three views at once); only the page view can be pinned \
         by get_user_pages",
        info.map_count
    );
    Ok(())
}

/// QEMU's edu device copies page 0 of `block` into its buffer and back into page 1, through a
/// device mapping; the CPU syncs around each transfer and reads the result through its own
/// mapping.
fn device_dma(block: &Block<'_>) -> Result {
    let Some(address) = edu::find_all().into_iter().next() else {
        println!("  (this VM has no edu DMA device; `make run` boots one)");
        return Ok(());
    };
    let edu = Edu::open(&address).map_err(anyhow::Error::msg)?;
    // edu drives 28 address bits; no kernel driver owns it, so cmamap sets that mask.
    let target = DmaDevice::new(&address)?.dma_bits(28);
    let page = cmamap::page_size() as u64;
    let mut view = block.map(Prot::ReadWrite)?;
    pattern::fill(&mut view.as_mut_slice()[..edu::BUFFER_LEN], 300, 0);
    let mapping = block.dma_map(&target, Direction::Bidirectional)?;
    let (phys, bus) = (block.info()?.phys_addr, mapping.dma_addr());
    println!(
        "  block {} mapped for edu at {}: physical {}, bus address {bus:#x}",
        block.id(),
        target.name(),
        report::phys_text(phys)
    );
    if bus != phys {
        println!(
            "  the device sees an IOVA: an IOMMU translates it (the physical address would fault)"
        );
    }
    block.sync_for_device(0..page, Direction::ToDevice)?;
    edu.dma_from_ram(bus, 0, edu::BUFFER_LEN)
        .map_err(anyhow::Error::msg)?;
    println!("  edu read page 0 (pattern 300) into its buffer by DMA");
    edu.dma_to_ram(0, bus + page, edu::BUFFER_LEN)
        .map_err(anyhow::Error::msg)?;
    block.sync_for_cpu(page..2 * page, Direction::FromDevice)?;
    pattern::check(
        &view.as_slice()[page as usize..page as usize + edu::BUFFER_LEN],
        300,
        0,
    )?;
    println!("  edu wrote it to page 1 by DMA; after SYNC for the CPU the mapping shows it:");
    for line in report::hexdump(&view.as_slice()[page as usize..page as usize + 32], page).lines() {
        println!("    {line}");
    }
    if let Ok(text) = std::fs::read_to_string("/sys/kernel/debug/cmamap/dma") {
        println!("  cat /sys/kernel/debug/cmamap/dma:");
        for line in text.lines() {
            println!("    {line}");
        }
    }
    mapping.unmap()?;
    println!("  DMA_UNMAP: the device can no longer reach the block");
    Ok(())
}

/// V4L2's vivid captures a frame into a block exported as a dma-buf; the CPU reads it through
/// the block's own mapping after a dma-buf sync.
fn v4l2_capture(dev: &Device) -> Result {
    // Instance 1 imports through videobuf2-dma-contig: a real DMA API mapping of the block.
    let Some(path) = Capture::find_vivid(1) else {
        println!("  (this kernel has no vivid capture device; the project's test kernels do)");
        return Ok(());
    };
    let capture = Capture::open(&path)?;
    capture.set_control(v4l2::VIVID_CID_OSD_TEXT_MODE, v4l2::VIVID_OSD_NONE)?;
    let format = capture.format()?;
    let block = dev.alloc(&AllocRequest::new(format.sizeimage.into()).strategy(Strategy::Page))?;
    let buf = block.export()?;
    buf.set_name("cmamap-demo-frame")?;
    println!(
        "  block {} ({}) exported as dma-buf fd {}; {} (vivid, dma-contig) imports it",
        block.id(),
        format_size(block.size()),
        buf.as_fd().as_raw_fd(),
        path.display()
    );
    let fourcc: String = format
        .pixelformat
        .to_le_bytes()
        .iter()
        .map(|&b| b as char)
        .collect();
    println!(
        "  VIDIOC_REQBUFS(V4L2_MEMORY_DMABUF), QBUF with the fd, STREAMON: {}x{} {fourcc}",
        format.width, format.height
    );
    capture.request_buffers(v4l2::MEMORY_DMABUF, 1)?;
    let captured = (|| -> Result<v4l2::Dequeued> {
        capture.queue_dmabuf(0, buf.as_fd(), u32::try_from(buf.size())?)?;
        capture.stream_on()?;
        let got = capture.dequeue(v4l2::MEMORY_DMABUF, 10_000)?;
        capture.stream_off()?;
        Ok(got)
    })();
    capture.request_buffers(v4l2::MEMORY_DMABUF, 0)?;
    let got = captured?;
    buf.sync_start(CpuAccess::Read)?;
    let view = block.map(Prot::Read)?;
    let frame = &view.as_slice()[..got.bytesused as usize];
    let lit = frame.iter().filter(|&&b| b != 0).count();
    println!(
        "  DQBUF: frame {} ({} bytes) is in the block; {lit} bytes are non-zero; its first bytes:",
        got.sequence, got.bytesused
    );
    for line in report::hexdump(&frame[..32], 0).lines() {
        println!("    {line}");
    }
    buf.sync_end(CpuAccess::Read)?;
    if let Ok(text) = std::fs::read_to_string("/sys/kernel/debug/dma_buf/bufinfo") {
        println!("  /sys/kernel/debug/dma_buf/bufinfo lists it (exporter cmamap):");
        for line in text.lines().filter(|l| l.contains("cmamap")) {
            println!("    {line}");
        }
    }
    if lit == 0 {
        bail!("vivid's frame is all zero: the capture did not reach the block");
    }
    Ok(())
}

fn demo(device: &Path, size: u64) -> Result {
    println!("cmamap demo: physically contiguous CMA memory for user space");

    step("1. Open the device and ask the driver about itself (IOC_STAT)");
    let dev = Device::open_path(device)?;
    let stat = dev.stat()?;
    print!("{}", report::aligned(&report::stat_lines(&stat), "  "));
    let baseline = show_cma(&dev, "baseline");
    let available_before = meminfo::cma_available_pages();

    step("2. Allocate one block per mapping strategy (IOC_ALLOC)");
    let mut blocks: Vec<Block<'_>> = Vec::new();
    for strategy in Strategy::CONCRETE {
        let block = dev.alloc(&AllocRequest::new(size).strategy(strategy))?;
        let info = block.info()?;
        println!(
            "  {strategy:<5} -> block {}: {}, mmap offset {:#x}, phys {}",
            block.id(),
            format_size(block.size()),
            block.offset(),
            report::phys_text(info.phys_addr)
        );
        blocks.push(block);
    }
    show_cma(&dev, "after allocating");

    step("3. Map each block, write a pattern, read it back another way");
    let page = cmamap::page_size();
    for block in &blocks {
        let seed = u64::from(block.id());
        let mut mapping = block.map(Prot::ReadWrite)?;
        // One write per page, counted: remap maps everything up front, huge faults once per
        // 2 MiB, fault and page once per page.
        let before = minor_faults()?;
        for index in (0..mapping.len()).step_by(page) {
            mapping.write_volatile(index, 0);
        }
        let faults = minor_faults()? - before;
        pattern::fill(mapping.as_mut_slice(), seed, 0);
        let second = block.map(Prot::Read)?;
        pattern::check(second.as_slice(), seed, 0)?;
        let read = block.read_all()?;
        pattern::check(&read, seed, 0)?;
        println!(
            "  {:<5} block {}: mapped at {:#x}; {} page faults touching {} pages; \
             pattern verified via a 2nd mapping and via pread",
            block.strategy(),
            block.id(),
            mapping.addr(),
            faults,
            mapping.len() / page
        );
    }

    step("4. Map one block through every strategy at once (views)");
    show_views(&blocks[0])?;

    step("5. Share a block with a forked child (same open file, MAP_SHARED)");
    let shared = &blocks[1];
    let mut parent_map = shared.map(Prot::ReadWrite)?;
    pattern::fill(parent_map.as_mut_slice(), 100, 0);
    println!(
        "  parent {}: wrote pattern 100 into block {}",
        std::process::id(),
        shared.id()
    );
    share::reply_from_child(shared, &parent_map, (100, 101), |_| {
        println!(
            "  child {}: mapped block {} itself, saw pattern 100, wrote pattern 101",
            std::process::id(),
            shared.id()
        );
    })?;
    println!("  parent: sees pattern 101 through its own mapping; its first bytes:");
    for line in report::hexdump(&parent_map.as_slice()[..32], 0).lines() {
        println!("    {line}");
    }
    drop(parent_map);

    step("6. Share a PERSIST block with an unrelated process");
    let persistent = share_persistent(&dev, device, size)?;

    step("7. The driver's view: IOC_INFO, IOC_LIST and debugfs");
    for block in blocks.iter().chain(persistent.iter()) {
        let info = block.info()?;
        println!("  block {}:", info.id);
        print!("{}", report::aligned(&report::info_lines(&info), "    "));
    }
    let listed = dev.list()?;
    println!("  IOC_LIST through this file:");
    for line in report::list_table(&listed).lines() {
        println!("    {line}");
    }
    match std::fs::read_to_string(DEBUGFS_BLOCKS) {
        Ok(text) => {
            println!("  cat {DEBUGFS_BLOCKS}:");
            for line in text.lines() {
                println!("    {line}");
            }
        }
        Err(err) => println!(
            "  ({DEBUGFS_BLOCKS} unavailable: {err}; is debugfs mounted at /sys/kernel/debug?)"
        ),
    }

    step("8. A device writes into a block: DMA through the DMA API (IOC_DMA_MAP, IOC_SYNC)");
    device_dma(&blocks[2])?;

    step("9. V4L2 captures into a block: a dma-buf export (IOC_EXPORT)");
    v4l2_capture(&dev)?;

    step("10. Free everything and check that CMA got its memory back");
    for block in blocks.into_iter().chain(persistent) {
        let id = block.id();
        block.free()?;
        println!("  freed block {id}");
    }
    let Some(baseline) = baseline else {
        println!("  (no CMA figures to compare)");
        return Ok(());
    };
    // CmaFree also moves with other allocations that borrow free CMA pages (many on q35, whose
    // CMA is most of the memory above 4 GiB); the CMA areas' available pages count exactly
    // what cma_alloc holds.
    let now = match meminfo::wait_for_cma_free(Some(&dev), baseline, 0) {
        Ok(now) | Err(now) => now,
    };
    println!(
        "  CmaFree {} (baseline {})",
        format_size(now * 1024),
        format_size(baseline * 1024)
    );
    if let (Some(before), Some(after)) = (available_before, meminfo::cma_available_pages()) {
        println!("  CMA areas' available pages: {after} (baseline {before})");
        if after != before {
            bail!("CMA did not get its memory back: {after} pages available, {before} before");
        }
    } else if !meminfo::cma_free_returned(now, baseline, 0) {
        bail!("CmaFree did not return to its baseline: {now} kB now, {baseline} kB before");
    }
    println!();
    println!("demo complete: every block was freed and CMA has all its pages back");
    Ok(())
}
