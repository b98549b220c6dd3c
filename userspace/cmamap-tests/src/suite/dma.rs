//! Device DMA: blocks mapped for QEMU's `edu` device through the DMA API, and edu's DMA engine
//! moving data into and out of them. These cases run in the DMA VMs of `make test`, whose
//! command line names the machine set-up in `CMAMAP_DMA_SETUP`:
//! - `iommu`: q35 with an Intel IOMMU (strict), edu with its default 28-bit mask (on arm64:
//!   virt with an SMMUv3, strict);
//! - `direct64`: pc (arm64: virt) without an IOMMU, edu with a 64-bit mask;
//! - `direct28`: pc without an IOMMU, edu with its default 28-bit mask, and a CMA area that
//!   starts below 256 MiB and ends above it.

use std::io::Write;

use cmamap::{abi, AllocRequest, Block, Device, Direction, DmaDevice, Errno, Prot, Strategy};

use crate::check::{expect_errno, pass, skip, Failure, Step, TestResult};
use crate::child;
use crate::ctx::{drop_privileges, Ctx, PersistGuard};
use cmamap_testkit::edu::{self, Edu};
use cmamap_testkit::v4l2::{self, Capture};
use std::os::fd::AsFd;

/// The machine set-up a DMA VM runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Setup {
    Iommu,
    Direct64,
    Direct28,
    /// pc without an IOMMU, booted with swiotlb=force: every direct mapping would bounce.
    Bounce,
}

impl Setup {
    fn current() -> Option<Self> {
        match std::env::var("CMAMAP_DMA_SETUP").ok()?.as_str() {
            "iommu" => Some(Self::Iommu),
            "direct64" => Some(Self::Direct64),
            "direct28" => Some(Self::Direct28),
            "bounce" => Some(Self::Bounce),
            _ => None,
        }
    }

    /// The address width of the VM's edu device.
    fn edu_bits(self) -> u32 {
        match self {
            Self::Direct64 | Self::Bounce => 64,
            Self::Iommu | Self::Direct28 => 28,
        }
    }

    /// Whether a block at physical address `phys` of `len` bytes is one edu can reach.
    fn reaches(self, phys: u64, len: u64) -> bool {
        self == Self::Iommu || phys + len - 1 <= (u64::MAX >> (64 - self.edu_bits()))
    }
}

/// The edu device of this DMA VM and the address bits it drives, for the C example; `None`
/// outside a DMA VM and in the bounce VM, where every mapping is refused.
pub fn edu_for_example() -> Option<(String, u32)> {
    let setup = Setup::current().filter(|&s| s != Setup::Bounce)?;
    Some((edu::find_all().into_iter().next()?, setup.edu_bits()))
}

/// What every DMA case needs: root, the set-up, and the VM's edu device.
struct Bench {
    setup: Setup,
    edu: Edu,
    target: DmaDevice,
}

/// The bench, or the skip verdict outside a DMA VM (and in the bounce VM, where every mapping
/// is refused: `dma_bounce_refused` is its case).
fn bench(ctx: &Ctx) -> Result<Result<Bench, TestResult>, Failure> {
    let bench = any_bench(ctx)?;
    if let Ok(b) = &bench {
        if b.setup == Setup::Bounce {
            return Ok(Err(skip(
                "the bounce VM refuses every mapping; dma_bounce_refused runs there",
            )));
        }
    }
    Ok(bench)
}

fn any_bench(ctx: &Ctx) -> Result<Result<Bench, TestResult>, Failure> {
    if let Some(skipped) = ctx.needs_root() {
        return Ok(Err(skipped));
    }
    let Some(setup) = Setup::current() else {
        return Ok(Err(skip(
            "not a DMA VM: CMAMAP_DMA_SETUP is not set (make test runs these in three DMA VMs)",
        )));
    };
    let Some(address) = edu::find_all().into_iter().next() else {
        return Err(Failure::new(format!("{setup:?} VM has no edu device")));
    };
    let edu = Edu::open(&address).map_err(Failure::new)?;
    let target = DmaDevice::new(&address)?.dma_bits(setup.edu_bits());
    Ok(Ok(Bench { setup, edu, target }))
}

macro_rules! bench_or_skip {
    ($ctx:expr) => {
        match bench($ctx)? {
            Ok(bench) => bench,
            Err(skipped) => return skipped,
        }
    };
}

/// The physical address of a block (root sees it).
fn phys_of(block: &Block<'_>) -> Result<u64, Failure> {
    Ok(block.info()?.phys_addr)
}

/// A page-strategy block of `pages` pages that the set-up's edu can reach, or the reason none
/// can be had (a direct28 VM whose low CMA is used up).
fn reachable_block<'d>(
    ctx: &Ctx,
    dev: &'d Device,
    bench: &Bench,
    pages: usize,
) -> Result<Block<'d>, Failure> {
    let block = dev.alloc(&AllocRequest::new(ctx.pages(pages)).strategy(Strategy::Page))?;
    let phys = phys_of(&block)?;
    ensure!(
        bench.setup.reaches(phys, block.size()),
        "block at {phys:#x} is out of edu's reach in the {:?} VM (its CMA area must start below 256 MiB)",
        bench.setup
    );
    Ok(block)
}

/// Logs to the kernel log, where the VM verdict reads it.
fn kmsg(line: &str) -> Result<(), Failure> {
    let mut kmsg = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/kmsg")
        .step("open /dev/kmsg")?;
    kmsg.write_all(line.as_bytes()).step("write /dev/kmsg")
}

pub fn dma_map_gives_bus_address(ctx: &Ctx) -> TestResult {
    let bench = bench_or_skip!(ctx);
    let dev = ctx.open()?;
    let block = reachable_block(ctx, &dev, &bench, 4)?;
    let phys = phys_of(&block)?;
    let mapping = block.dma_map(&bench.target, Direction::Bidirectional)?;
    let addr = mapping.dma_addr();
    println!(
        "# {:?}: phys_addr {phys:#x}, dma_addr {addr:#x}",
        bench.setup
    );
    match bench.setup {
        Setup::Iommu => ensure!(
            addr != phys,
            "behind an IOMMU the bus address {addr:#x} is the physical one"
        ),
        Setup::Direct64 | Setup::Direct28 | Setup::Bounce => {
            ensure_eq!(addr, phys, "bus address without an IOMMU")
        }
    }
    ensure!(
        addr + block.size() - 1 <= u64::MAX >> (64 - bench.setup.edu_bits()),
        "bus address {addr:#x} is above edu's {}-bit reach",
        bench.setup.edu_bits()
    );
    let listed = block.dma_mappings()?;
    ensure_eq!(listed.len(), 1, "DMA_LIST entries");
    ensure_eq!(listed[0].dma_addr, addr, "DMA_LIST dma_addr");
    ensure_eq!(listed[0].device, bench.target.name(), "DMA_LIST device");
    ensure_eq!(
        listed[0].offset..listed[0].offset + listed[0].length,
        0..block.size(),
        "DMA_LIST range"
    );
    ensure_eq!(
        listed[0].direction,
        Direction::Bidirectional,
        "DMA_LIST direction"
    );
    // The device's own DMA mask is its driver's business: cmamap's dma_bits does not stay.
    let mask_file = Edu::sysfs_dir_of(bench.edu.address()).join("dma_mask_bits");
    let mask_bits = std::fs::read_to_string(mask_file).step("read dma_mask_bits")?;
    ensure_eq!(
        mask_bits.trim(),
        "32",
        "edu's DMA mask bits after DMA_MAP with dma_bits"
    );
    let debugfs =
        std::fs::read_to_string("/sys/kernel/debug/cmamap/dma").step("read debugfs dma")?;
    ensure!(
        debugfs.contains(&format!("{addr:#x}")) && debugfs.contains(bench.target.name()),
        "debugfs dma does not show the mapping:\n{debugfs}"
    );
    mapping.unmap()?;
    ensure_eq!(
        block.dma_mappings()?.len(),
        0,
        "DMA_LIST entries after DMA_UNMAP"
    );
    pass()
}

/// Page `from` of a block goes through edu's buffer to page `to`; the CPU sees it through its
/// own mapping, with the syncs the DMA API asks for around each device access.
pub fn dma_edu_copies_between_pages(ctx: &Ctx) -> TestResult {
    let bench = bench_or_skip!(ctx);
    let dev = ctx.open()?;
    let block = reachable_block(ctx, &dev, &bench, 4)?;
    let mut view = block.map(Prot::ReadWrite)?;
    let page = ctx.page;
    let (from, to) = (1usize, 3usize);
    let data = cmamap_testkit::pattern::generate(edu::BUFFER_LEN, 0xd3a, 0);
    view.as_mut_slice()[from * page..from * page + edu::BUFFER_LEN].copy_from_slice(&data);
    let mapping = block.dma_map(&bench.target, Direction::Bidirectional)?;
    let bus = mapping.dma_addr();
    // The CPU wrote: the device may read only after a sync for the device.
    let synced =
        block.sync_for_device(ctx.pages(from)..ctx.pages(from + 1), Direction::ToDevice)?;
    ensure_eq!(synced, 1, "mappings synced for the device");
    bench
        .edu
        .dma_from_ram(bus + ctx.pages(from), 0, edu::BUFFER_LEN)
        .map_err(Failure::new)?;
    // The device writes: the CPU may read only after a sync for the CPU.
    block.sync_for_device(ctx.pages(to)..ctx.pages(to + 1), Direction::FromDevice)?;
    bench
        .edu
        .dma_to_ram(0, bus + ctx.pages(to), edu::BUFFER_LEN)
        .map_err(Failure::new)?;
    let synced = block.sync_for_cpu(ctx.pages(to)..ctx.pages(to + 1), Direction::FromDevice)?;
    ensure_eq!(synced, 1, "mappings synced for the CPU");
    let got = &view.as_slice()[to * page..to * page + edu::BUFFER_LEN];
    ensure!(
        got == data.as_slice(),
        "page {to} does not hold what edu copied from page {from}"
    );
    let untouched = &view.as_slice()[2 * page..3 * page];
    ensure!(
        untouched.iter().all(|&b| b == 0),
        "page 2, which no DMA touched, changed"
    );
    let mut read_back = vec![0u8; edu::BUFFER_LEN];
    block.pread(ctx.pages(to), &mut read_back)?;
    ensure!(
        read_back == data,
        "pread of page {to} disagrees with the mapping"
    );
    pass()
}

/// Behind a strict IOMMU an unmapped bus address reaches nothing: the DMA faults (the kernel
/// logs it) and no memory changes.
pub fn dma_unmap_fences_the_device(ctx: &Ctx) -> TestResult {
    let bench = bench_or_skip!(ctx);
    if bench.setup != Setup::Iommu {
        return skip("without an IOMMU the device reaches all memory: unmapping cannot fence it");
    }
    let dev = ctx.open()?;
    // Fill edu's buffer from a live mapping of a source block, kept mapped so that its bus
    // address is not handed out again, then change the source: a stray write shows.
    let source = reachable_block(ctx, &dev, &bench, 1)?;
    let mut source_view = source.map(Prot::ReadWrite)?;
    source_view.as_mut_slice().fill(0xa5);
    let source_mapping = source.dma_map(&bench.target, Direction::ToDevice)?;
    source.sync_for_device(0..source.size(), Direction::ToDevice)?;
    bench
        .edu
        .dma_from_ram(source_mapping.dma_addr(), 0, edu::BUFFER_LEN)
        .map_err(Failure::new)?;
    source_view.as_mut_slice().fill(0x11);

    let block = reachable_block(ctx, &dev, &bench, 1)?;
    let mut view = block.map(Prot::ReadWrite)?;
    view.as_mut_slice().fill(0x5a);
    let mapping = block.dma_map(&bench.target, Direction::FromDevice)?;
    let bus = mapping.dma_addr();
    mapping.unmap()?;
    kmsg(&format!("cmamap-test: expect IOMMU fault at {bus:#x}\n"))?;
    bench
        .edu
        .dma_to_ram(0, bus, edu::BUFFER_LEN)
        .map_err(Failure::new)?;
    ensure!(
        view.as_slice().iter().all(|&b| b == 0x5a),
        "DMA to the unmapped bus address {bus:#x} changed the block"
    );
    ensure!(
        source_view.as_slice().iter().all(|&b| b == 0x11),
        "DMA to the unmapped bus address {bus:#x} landed in another block"
    );
    ensure!(
        logged_write_fault(&kernel_log()?, bus),
        "the IOMMU logged no write fault at {bus:#x}"
    );
    pass()
}

/// Whether the kernel log has an IOMMU write fault at bus address `bus`: Intel's DMAR says it
/// in one line, Arm's SMMUv3 in two records (the event with its IOVA, then its access; each
/// record may carry ` SUBSYSTEM=`/` DEVICE=` lines).
fn logged_write_fault(log: &str, bus: u64) -> bool {
    let dmar = format!("fault addr {bus:#x}");
    let smmu = format!("iova: {bus:#x} ");
    let lines: Vec<&str> = log.lines().filter(|l| !l.starts_with(' ')).collect();
    lines.iter().enumerate().any(|(i, line)| {
        (line.contains("DMAR: [DMA Write") && line.contains(&dmar))
            || (line.contains("arm-smmu-v3")
                && line.contains(&smmu)
                && lines
                    .get(i + 1)
                    .is_some_and(|next| next.contains(" data write ")))
    })
}

/// The kernel log so far, one record a line.
fn kernel_log() -> Result<String, Failure> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut kmsg = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open("/dev/kmsg")
        .step("open /dev/kmsg")?;
    let mut log = String::new();
    let mut record = vec![0u8; 8192];
    loop {
        match kmsg.read(&mut record) {
            Ok(0) => break,
            Ok(n) => {
                // "prio,seq,time,flags;text": keep the text.
                let text = String::from_utf8_lossy(&record[..n]);
                log.push_str(text.split_once(';').map_or(&*text, |(_, t)| t).trim_end());
                log.push('\n');
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            // A record overwritten while we read: skip it.
            Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
            Err(e) => return Err(Failure::new(format!("read /dev/kmsg: {e}"))),
        }
    }
    Ok(log)
}

/// A block out of the device's reach is refused, not bounced; nothing is left mapped.
pub fn dma_out_of_reach_refused(ctx: &Ctx) -> TestResult {
    let bench = bench_or_skip!(ctx);
    if bench.setup != Setup::Direct28 {
        return skip("only the direct28 VM has CMA above its edu's 28-bit reach and no IOMMU");
    }
    let dev = ctx.open()?;
    // The area starts below 256 MiB and is filled from its start: past the first 256 MiB
    // mark, blocks are out of reach.
    let mut held = Vec::new();
    let high = loop {
        let block = dev.alloc(&AllocRequest::new(16 << 20))?;
        let phys = phys_of(&block)?;
        if phys >= 1 << 28 {
            break block;
        }
        ensure!(
            held.len() < 64,
            "no block above 256 MiB after {} blocks",
            held.len()
        );
        held.push(block);
    };
    expect_errno(
        high.dma_map(&bench.target, Direction::FromDevice),
        Errno::ERANGE,
        "DMA_MAP of a block above a 28-bit device's reach",
    )?;
    ensure_eq!(
        high.dma_mappings()?.len(),
        0,
        "mappings of the refused block"
    );
    // A low block maps, and the device reaches it at its physical address.
    let low = &held[0];
    let mapping = low.dma_map(&bench.target, Direction::FromDevice)?;
    ensure_eq!(
        mapping.dma_addr(),
        phys_of(low)?,
        "bus address of the low block"
    );
    pass()
}

/// FREE and close end a block's device mappings; the memory then goes back (the harness
/// checks CMA after every case).
pub fn dma_free_and_close_end_mappings(ctx: &Ctx) -> TestResult {
    let bench = bench_or_skip!(ctx);
    let dev = ctx.open()?;
    let block = reachable_block(ctx, &dev, &bench, 2)?;
    let id = block.id();
    let mapping = block.dma_map(&bench.target, Direction::Bidirectional)?;
    let handle = mapping.into_handle();
    block.free()?;
    expect_errno(
        dev.dma_mappings(id),
        Errno::ENOENT,
        "DMA_LIST of a freed block",
    )?;
    expect_errno(dev.dma_unmap(handle), Errno::ENOENT, "DMA_UNMAP after FREE")?;
    ensure_eq!(debugfs_mapping_lines()?, 0, "debugfs mappings after FREE");
    // Close: the file's mappings end with it.
    {
        let other = ctx.open()?;
        let mut block = reachable_block(ctx, &other, &bench, 2)?;
        block
            .dma_map(&bench.target, Direction::ToDevice)?
            .into_handle();
        block.set_free_on_drop(false);
        ensure_eq!(
            debugfs_mapping_lines()?,
            1,
            "debugfs mappings while the file is open"
        );
    }
    ensure_eq!(debugfs_mapping_lines()?, 0, "debugfs mappings after close");
    pass()
}

fn debugfs_mapping_lines() -> Result<usize, Failure> {
    let text = std::fs::read_to_string("/sys/kernel/debug/cmamap/dma").step("read debugfs dma")?;
    Ok(text.lines().skip(1).count())
}

/// Removing the device (hot-unplug) ends its mappings before it goes; FREE works after, and a
/// rescan brings the device back for the cases that follow.
pub fn dma_device_removal_ends_mappings(ctx: &Ctx) -> TestResult {
    let bench = bench_or_skip!(ctx);
    let dev = ctx.open()?;
    let block = reachable_block(ctx, &dev, &bench, 2)?;
    let mapping = block.dma_map(&bench.target, Direction::Bidirectional)?;
    let handle = mapping.into_handle();
    let address = bench.edu.address().to_owned();
    drop(bench);
    std::fs::write(Edu::sysfs_dir_of(&address).join("remove"), "1")
        .step("remove the edu device")?;
    let rescan = || std::fs::write("/sys/bus/pci/rescan", "1").step("rescan the PCI bus");
    let outcome = (|| {
        ensure_eq!(
            block.dma_mappings()?.len(),
            0,
            "mappings after the device went"
        );
        ensure_eq!(
            debugfs_mapping_lines()?,
            0,
            "debugfs mappings after the device went"
        );
        expect_errno(
            dev.dma_unmap(handle),
            Errno::ENOENT,
            "DMA_UNMAP of a removed device's mapping",
        )?;
        expect_errno(
            block.dma_map(&DmaDevice::new(&address)?, Direction::Bidirectional),
            Errno::ENODEV,
            "DMA_MAP for the removed device",
        )?;
        Ok::<_, Failure>(())
    })();
    rescan()?;
    outcome?;
    ensure!(
        edu::find_all().contains(&address),
        "edu {address} did not come back after a rescan"
    );
    block.free().step("FREE after the device went")?;
    pass()
}

/// Bad input: each call fails with its documented errno and leaves nothing mapped.
pub fn dma_bad_input_refused(ctx: &Ctx) -> TestResult {
    let bench = bench_or_skip!(ctx);
    let dev = ctx.open()?;
    let block = reachable_block(ctx, &dev, &bench, 2)?;
    let size = block.size();
    let base = || abi::DmaMapArgs {
        id: block.id(),
        device: bench.target.to_abi(),
        ..Default::default()
    };
    let named = |name: &str| {
        let mut args = base();
        args.device.name = [0; abi::DEVICE_NAME_MAX];
        args.device.name[..name.len()].copy_from_slice(name.as_bytes());
        args
    };
    let cases: Vec<(&str, abi::DmaMapArgs, Errno)> = vec![
        (
            "an unknown PCI device",
            named("pci:0000:00:1e.7"),
            Errno::ENODEV,
        ),
        ("an unknown bus", named("nosuchbus:dev0"), Errno::ENODEV),
        ("a device without DMA", named("cpu:cpu0"), Errno::EOPNOTSUPP),
        ("an empty name", named(""), Errno::EINVAL),
        (
            "an unterminated name",
            {
                let mut args = base();
                args.device.name = [b'a'; abi::DEVICE_NAME_MAX];
                args
            },
            Errno::EINVAL,
        ),
        (
            "an unknown block",
            abi::DmaMapArgs {
                id: u32::MAX >> 5,
                ..base()
            },
            Errno::ENOENT,
        ),
        (
            "a range past the block",
            abi::DmaMapArgs {
                offset: size,
                ..base()
            },
            Errno::EINVAL,
        ),
        (
            "a length past the block",
            abi::DmaMapArgs {
                length: size + ctx.pages(1),
                ..base()
            },
            Errno::EINVAL,
        ),
        (
            "an overflowing range",
            abi::DmaMapArgs {
                offset: ctx.pages(1),
                length: u64::MAX - 4095,
                ..base()
            },
            Errno::EINVAL,
        ),
        (
            "an unaligned offset",
            abi::DmaMapArgs {
                offset: 512,
                length: ctx.pages(1),
                ..base()
            },
            Errno::EINVAL,
        ),
        (
            "a bad direction",
            abi::DmaMapArgs {
                direction: 3,
                ..base()
            },
            Errno::EINVAL,
        ),
        (
            "a 5-bit device",
            {
                let mut args = base();
                args.device.dma_bits = 5;
                args
            },
            Errno::EINVAL,
        ),
        (
            "nonzero reserved words",
            abi::DmaMapArgs {
                reserved: [0, 1],
                ..base()
            },
            Errno::EINVAL,
        ),
    ];
    for (what, mut args, errno) in cases {
        expect_errno(
            dev.dma_map_raw(&mut args),
            errno,
            &format!("DMA_MAP of {what}"),
        )?;
        ensure_eq!(
            block.dma_mappings()?.len(),
            0,
            "mappings after DMA_MAP of {what}"
        );
    }
    // A path that is not a device is refused by the library before any ioctl.
    ensure!(
        DmaDevice::new("/proc/self").is_err(),
        "/proc/self taken as a device"
    );
    // Handles: a double unmap, and a handle from another file.
    let mapping = block.dma_map(&bench.target, Direction::ToDevice)?;
    let handle = mapping.handle();
    let other = ctx.open()?;
    expect_errno(
        other.dma_unmap(handle),
        Errno::ENOENT,
        "DMA_UNMAP through another file",
    )?;
    ensure_eq!(
        block.dma_mappings()?.len(),
        1,
        "mappings after another file's DMA_UNMAP"
    );
    mapping.unmap()?;
    expect_errno(dev.dma_unmap(handle), Errno::ENOENT, "a second DMA_UNMAP")?;
    // SYNC: one of the two flags, a known direction, a range inside the block.
    let sync = |flags, direction, offset, length| {
        dev.sync_raw(&mut abi::SyncArgs {
            id: block.id(),
            flags,
            offset,
            length,
            direction,
            ..Default::default()
        })
    };
    expect_errno(sync(0, 0, 0, 0), Errno::EINVAL, "SYNC without a flag")?;
    expect_errno(
        sync(abi::SYNC_FOR_CPU | abi::SYNC_FOR_DEVICE, 0, 0, 0),
        Errno::EINVAL,
        "SYNC with both flags",
    )?;
    expect_errno(
        sync(abi::SYNC_FOR_CPU, 7, 0, 0),
        Errno::EINVAL,
        "SYNC with a bad direction",
    )?;
    expect_errno(
        sync(abi::SYNC_FOR_CPU, 0, size, 0),
        Errno::EINVAL,
        "SYNC past the block",
    )?;
    expect_errno(
        sync(abi::SYNC_FOR_CPU, 0, 8, u64::MAX),
        Errno::EINVAL,
        "SYNC of an overflowing range",
    )?;
    ensure_eq!(
        sync(abi::SYNC_FOR_CPU, 0, 0, 0)?,
        0,
        "mappings synced with none live"
    );
    // Unprivileged: a device reaching memory needs CAP_SYS_ADMIN.
    child::run(|| {
        drop_privileges()?;
        expect_errno(
            block.dma_map(&bench.target, Direction::Bidirectional),
            Errno::EPERM,
            "DMA_MAP without CAP_SYS_ADMIN",
        )?;
        Ok(())
    })?;
    ensure_eq!(
        block.dma_mappings()?.len(),
        0,
        "mappings after the unprivileged DMA_MAP"
    );
    // DMA_LIST shows every file's mappings of a reachable block, but the bus address (the
    // physical one without an IOMMU) only to CAP_SYS_ADMIN.
    let shared = dev.alloc(&AllocRequest::new(ctx.pages(1)).persist(true))?;
    let _guard = PersistGuard::new(ctx, shared.id());
    let _mapping = shared.dma_map(&bench.target, Direction::ToDevice)?;
    let shared_id = shared.id();
    child::run(|| {
        drop_privileges()?;
        let listed = dev.dma_mappings(shared_id)?;
        ensure_eq!(listed.len(), 1, "unprivileged DMA_LIST entries");
        ensure_eq!(listed[0].dma_addr, 0, "unprivileged DMA_LIST dma_addr");
        Ok(())
    })?;
    pass()
}

/// With swiotlb=force every direct mapping would go through a bounce buffer: DMA_MAP and
/// ALLOC for the device refuse with ERANGE, nothing stays mapped, and the block keeps what
/// the CPU wrote.
pub fn dma_bounce_refused(ctx: &Ctx) -> TestResult {
    let bench = match any_bench(ctx)? {
        Ok(bench) => bench,
        Err(skipped) => return skipped,
    };
    if bench.setup != Setup::Bounce {
        return skip("only the bounce VM (swiotlb=force) bounces every direct mapping");
    }
    let dev = ctx.open()?;
    let block = dev.alloc(&AllocRequest::new(ctx.pages(2)).strategy(Strategy::Page))?;
    let data = cmamap_testkit::pattern::generate(2 * ctx.page, 0xb0, 0);
    block.pwrite(0, &data)?;
    for direction in Direction::ALL {
        expect_errno(
            block.dma_map(&bench.target, direction),
            Errno::ERANGE,
            &format!("DMA_MAP ({direction}) with swiotlb=force"),
        )?;
    }
    ensure_eq!(
        block.dma_mappings()?.len(),
        0,
        "mappings after the refusals"
    );
    let mut back = vec![0u8; data.len()];
    block.pread(0, &mut back)?;
    ensure!(back == data, "the refused mappings changed the block");
    expect_errno(
        dev.alloc_for(&AllocRequest::new(ctx.pages(1)), &bench.target),
        Errno::ERANGE,
        "ALLOC for edu with swiotlb=force",
    )?;
    ensure_eq!(dev.stat()?.blocks_file, 1, "blocks after the refused ALLOC");
    pass()
}

/// SYNC reaches exactly the mappings whose range and direction overlap the request.
pub fn dma_sync_picks_overlapping_mappings(ctx: &Ctx) -> TestResult {
    let bench = bench_or_skip!(ctx);
    let dev = ctx.open()?;
    let block = reachable_block(ctx, &dev, &bench, 4)?;
    let _to_device = block.dma_map_range(&bench.target, Direction::ToDevice, 0..ctx.pages(2))?;
    let _from_device = block.dma_map_range(
        &bench.target,
        Direction::FromDevice,
        ctx.pages(2)..ctx.pages(4),
    )?;
    let whole = 0..block.size();
    ensure_eq!(
        block.sync_for_cpu(whole.clone(), Direction::FromDevice)?,
        1,
        "from-device syncs of the whole block"
    );
    ensure_eq!(
        block.sync_for_device(whole.clone(), Direction::ToDevice)?,
        1,
        "to-device syncs of the whole block"
    );
    ensure_eq!(
        block.sync_for_cpu(whole, Direction::Bidirectional)?,
        2,
        "bidirectional syncs of the whole block"
    );
    ensure_eq!(
        block.sync_for_cpu(ctx.pages(2)..ctx.pages(3), Direction::ToDevice)?,
        0,
        "to-device syncs of a page only the from-device mapping covers"
    );
    ensure_eq!(
        block.sync_for_cpu(
            ctx.pages(1) + 100..ctx.pages(2) + 100,
            Direction::Bidirectional
        )?,
        2,
        "syncs of a range across both mappings"
    );
    pass()
}

/// The CLI maps a persistent block for edu, and a command it runs syncs and ends the mapping
/// through the inherited open file; errors name the errno and what to do.
pub fn dma_cli_maps_syncs_unmaps(ctx: &Ctx) -> TestResult {
    let bench = bench_or_skip!(ctx);
    let dev = ctx.open()?;
    let block = dev.alloc(&AllocRequest::new(ctx.pages(2)).persist(true))?;
    let id = block.id();
    let _guard = PersistGuard::new(ctx, id);
    if !bench.setup.reaches(phys_of(&block)?, block.size()) {
        return skip("the persistent block landed out of edu's reach");
    }
    let bits = bench.setup.edu_bits().to_string();
    let inner = format!(
        "cmamap --fd $CMAMAP_FD sync {id} --for device --dir to-device && \
         cmamap --fd $CMAMAP_FD dma-unmap $CMAMAP_DMA_HANDLE && \
         ! cmamap --fd $CMAMAP_FD dma-unmap $CMAMAP_DMA_HANDLE 2>/tmp/second-unmap"
    );
    let out = std::process::Command::new("/bin/cmamap")
        .args(["--json", "dma-map", &id.to_string(), bench.edu.address()])
        .args([
            "--dir",
            "to-device",
            "--dma-bits",
            &bits,
            "--",
            "sh",
            "-c",
            &inner,
        ])
        .output()
        .step("run cmamap dma-map")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "cmamap dma-map failed: {}\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(
        stdout.contains("\"dma_addr\":")
            && stdout.contains(&format!(
                "synced 1 device mappings of block {id} for the device"
            )),
        "dma-map and sync printed:\n{stdout}"
    );
    let second =
        std::fs::read_to_string("/tmp/second-unmap").step("read the second unmap's error")?;
    ensure!(
        second.contains("ENOENT") && second.contains("CMAMAP_IOC_DMA_UNMAP"),
        "a second dma-unmap said: {second}"
    );
    ensure_eq!(
        block.dma_mappings()?.len(),
        0,
        "mappings after the CLI exited"
    );
    // A device that does not exist: exit status 1, the errno and a fix.
    let out = std::process::Command::new("/bin/cmamap")
        .args(["dma-map", &id.to_string(), "0000:00:1e.7"])
        .output()
        .step("run cmamap dma-map of no device")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure_eq!(
        out.status.code(),
        Some(1),
        "exit status of dma-map of no device"
    );
    ensure!(
        stderr.contains("ENODEV") && stderr.contains("name the device as"),
        "dma-map of no device said: {stderr}"
    );
    pass()
}

/// ALLOC for a device gives a block that device reaches directly, or refuses with ERANGE and
/// leaves nothing behind; bad devices are refused before anything is allocated.
pub fn dma_alloc_for_device(ctx: &Ctx) -> TestResult {
    let bench = bench_or_skip!(ctx);
    let dev = ctx.open()?;
    let request = AllocRequest::new(ctx.pages(4)).strategy(Strategy::Page);
    let block = dev.alloc_for(&request, &bench.target)?;
    let phys = phys_of(&block)?;
    ensure!(
        bench.setup.reaches(phys, block.size()),
        "block for edu at {phys:#x} is out of its {}-bit reach",
        bench.setup.edu_bits()
    );
    block
        .dma_map(&bench.target, Direction::Bidirectional)?
        .unmap()?;
    block.free()?;
    let nowhere = DmaDevice::new("0000:00:1e.7")?;
    expect_errno(
        dev.alloc_for(&request, &nowhere),
        Errno::ENODEV,
        "ALLOC for no device",
    )?;
    let no_dma = DmaDevice::new("cpu:cpu0")?;
    expect_errno(
        dev.alloc_for(&request, &no_dma),
        Errno::EOPNOTSUPP,
        "ALLOC for a device that does no DMA",
    )?;
    let mut args = request.to_args();
    args.flags |= abi::ALLOC_FOR_DEVICE;
    args.device = 8;
    expect_errno(
        dev.alloc_raw(args),
        Errno::EFAULT,
        "ALLOC for a device at a bad pointer",
    )?;
    if bench.setup == Setup::Direct28 {
        // Fill the area's low part: the first-fit allocator then hands out blocks above
        // 256 MiB, which the 28-bit edu cannot reach.
        let mut low = Vec::new();
        loop {
            let block = dev.alloc(&AllocRequest::new(16 << 20))?;
            if phys_of(&block)? >= 1 << 28 {
                break;
            }
            ensure!(
                low.len() < 64,
                "no block above 256 MiB after {} blocks",
                low.len()
            );
            low.push(block);
        }
        let before = dev.stat()?.blocks_file;
        expect_errno(
            dev.alloc_for(&request, &bench.target),
            Errno::ERANGE,
            "ALLOC for edu when CMA gives a block above its reach",
        )?;
        ensure_eq!(
            dev.stat()?.blocks_file,
            before,
            "blocks after the refused ALLOC"
        );
    }
    ensure_eq!(dev.stat()?.blocks_file, 0, "blocks left");
    pass()
}

/// A block exported as a dma-buf and mapped for edu: edu writes into it, and
/// DMA_BUF_IOCTL_SYNC is the only sync around each device access, read through the dma-buf's
/// own mapping. The dma-buf's syncs reach the block's DMA_MAP mapping, which no importer owns
/// (the CMA heap syncs only its importers'): the driver's count of DMA API syncs shows one for
/// the device at the write's end and one for the CPU at the read's start.
pub fn dma_dmabuf_sync_covers_device_mappings(ctx: &Ctx) -> TestResult {
    let bench = bench_or_skip!(ctx);
    let dev = ctx.open()?;
    let block = reachable_block(ctx, &dev, &bench, 2)?;
    let buf = block.export()?;
    let data = cmamap_testkit::pattern::generate(edu::BUFFER_LEN, 0xb0f, 0);
    {
        let mut own = block.map(Prot::ReadWrite)?;
        own.as_mut_slice()[..edu::BUFFER_LEN].copy_from_slice(&data);
    }
    let mapping = block.dma_map(&bench.target, Direction::Bidirectional)?;
    let bus = mapping.dma_addr();
    // The CPU wrote page 0 through the block: the device reads it after the dma-buf's end.
    let before = dma_syncs()?;
    buf.sync_end(cmamap::CpuAccess::Write)?;
    let after_end = dma_syncs()?;
    ensure_eq!(
        (after_end[0] - before[0], after_end[1] - before[1]),
        (0, 1),
        "DMA API syncs (for the CPU, for the device) at DMA_BUF_IOCTL_SYNC write end"
    );
    bench
        .edu
        .dma_from_ram(bus, 0, edu::BUFFER_LEN)
        .map_err(Failure::new)?;
    bench
        .edu
        .dma_to_ram(0, bus + ctx.pages(1), edu::BUFFER_LEN)
        .map_err(Failure::new)?;
    buf.sync_start(cmamap::CpuAccess::Read)?;
    let after_start = dma_syncs()?;
    ensure_eq!(
        (after_start[0] - after_end[0], after_start[1] - after_end[1]),
        (1, 0),
        "DMA API syncs (for the CPU, for the device) at DMA_BUF_IOCTL_SYNC read start"
    );
    let view = buf.map(Prot::Read)?;
    let page = ctx.page;
    ensure!(
        &view.as_slice()[page..page + edu::BUFFER_LEN] == data.as_slice(),
        "page 1 read through the dma-buf lacks what edu wrote"
    );
    buf.sync_end(cmamap::CpuAccess::Read)?;
    mapping.unmap()?;
    pass()
}

/// With swiotlb=force an importer's DMA mapping of a dma-buf would bounce too: vivid's
/// dma-contig instance (which maps through the DMA API) is refused at QBUF, while its vmalloc
/// instance (a CPU-only importer) captures into the same block.
pub fn dma_bounce_dmabuf_import_refused(ctx: &Ctx) -> TestResult {
    let bench = match any_bench(ctx)? {
        Ok(bench) => bench,
        Err(skipped) => return skipped,
    };
    if bench.setup != Setup::Bounce {
        return skip("only the bounce VM (swiotlb=force) bounces every direct mapping");
    }
    let open = |instance| {
        let path = Capture::find_vivid(instance)
            .ok_or_else(|| Failure::new(format!("no vivid instance {instance}")))?;
        Capture::open(&path).step("open vivid")
    };
    let (dma_contig, vmalloc) = (open(1)?, open(0)?);
    let size = u64::from(dma_contig.format().step("VIDIOC_G_FMT")?.sizeimage);
    let dev = ctx.open()?;
    let block = dev.alloc(&AllocRequest::new(size))?;
    let buf = block.export()?;
    let length = u32::try_from(buf.size()).unwrap_or(u32::MAX);
    dma_contig
        .request_buffers(v4l2::MEMORY_DMABUF, 1)
        .step("REQBUFS DMABUF")?;
    let queued = dma_contig.queue_dmabuf(0, buf.as_fd(), length);
    dma_contig
        .request_buffers(v4l2::MEMORY_DMABUF, 0)
        .step("REQBUFS 0")?;
    match queued {
        Ok(()) => fail!("vivid dma-contig mapped the dma-buf although swiotlb=force bounces it"),
        Err(err) => println!("# vivid dma-contig QBUF refused: {err}"),
    }
    vmalloc
        .request_buffers(v4l2::MEMORY_DMABUF, 1)
        .step("REQBUFS DMABUF (vmalloc)")?;
    let captured = (|| -> Result<(), Failure> {
        vmalloc
            .queue_dmabuf(0, buf.as_fd(), length)
            .step("QBUF (vmalloc)")?;
        vmalloc.stream_on().step("STREAMON (vmalloc)")?;
        let got = vmalloc
            .dequeue(v4l2::MEMORY_DMABUF, 10_000)
            .step("DQBUF (vmalloc)")?;
        vmalloc.stream_off().step("STREAMOFF (vmalloc)")?;
        ensure!(got.bytesused > 0, "vmalloc capture wrote nothing");
        Ok(())
    })();
    vmalloc
        .request_buffers(v4l2::MEMORY_DMABUF, 0)
        .step("REQBUFS 0 (vmalloc)")?;
    captured?;
    let frame = block.read_all()?;
    ensure!(
        frame.iter().any(|&b| b != 0),
        "the vmalloc importer's frame did not reach the block"
    );
    pass()
}

/// The driver's count of DMA API syncs (debugfs `dma_syncs`): for the CPU, for the device,
/// and those the DMA API had work for.
fn dma_syncs() -> Result<[u64; 3], Failure> {
    let text = std::fs::read_to_string("/sys/kernel/debug/cmamap/dma_syncs")
        .step("read debugfs dma_syncs")?;
    let mut counts = [None; 3];
    for line in text.lines() {
        let (name, value) = line.split_once(' ').unwrap_or((line, ""));
        let slot = match name {
            "for_cpu" => 0,
            "for_device" => 1,
            "with_work" => 2,
            _ => continue,
        };
        counts[slot] = value.trim().parse::<u64>().ok();
    }
    match counts {
        [Some(cpu), Some(device), Some(work)] => Ok([cpu, device, work]),
        _ => fail!("debugfs dma_syncs is not three counts:\n{text}"),
    }
}

/// SYNC calls the DMA API's sync once per mapping it covers, in the direction asked: the
/// driver counts each call it makes. On a non-coherent device (most arm64 SoCs) that call is
/// where the caches are cleaned or invalidated; QEMU's devices are cache-coherent, so there
/// the DMA API has no work (`with_work` stays put: a bounce would count, and is refused).
pub fn dma_sync_calls_the_dma_api(ctx: &Ctx) -> TestResult {
    let bench = bench_or_skip!(ctx);
    let dev = ctx.open()?;
    let block = reachable_block(ctx, &dev, &bench, 4)?;
    let whole = block.dma_map(&bench.target, Direction::Bidirectional)?;
    let tail = block.dma_map_range(
        &bench.target,
        Direction::ToDevice,
        ctx.pages(2)..ctx.pages(4),
    )?;
    let before = dma_syncs()?;
    // Page 0: only the whole-block mapping; pages 1..3: both.
    let synced = block.sync_for_device(0..ctx.pages(1), Direction::ToDevice)?;
    ensure_eq!(synced, 1, "mappings synced for the device over page 0");
    let synced = block.sync_for_device(ctx.pages(1)..ctx.pages(3), Direction::ToDevice)?;
    ensure_eq!(synced, 2, "mappings synced for the device over pages 1..3");
    let synced = block.sync_for_cpu(ctx.pages(1)..ctx.pages(3), Direction::Bidirectional)?;
    ensure_eq!(synced, 2, "mappings synced for the CPU over pages 1..3");
    let after = dma_syncs()?;
    ensure_eq!(after[1] - before[1], 3, "DMA API syncs for the device");
    ensure_eq!(after[0] - before[0], 2, "DMA API syncs for the CPU");
    ensure_eq!(
        after[2] - before[2],
        0,
        "syncs the DMA API had work for on QEMU's cache-coherent {:?} set-up",
        bench.setup
    );
    println!(
        "# {:?}: 3 syncs for the device and 2 for the CPU reached the DMA API; it had work for none (coherent device)",
        bench.setup
    );
    drop((whole, tail));
    pass()
}
