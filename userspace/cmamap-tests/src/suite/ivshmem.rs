//! Device memory: the BAR of QEMU's `ivshmem-plain` device, which the driver exposes as a
//! block. The backing file is shared with the host: `make test` fills its first half with
//! [`HOST_SEED`] before boot, the guest writes [`GUEST_SEED`] over its second half, and the
//! host checks both halves after the VM exits (`cmamap-test --host-fill/--host-check`).

use std::path::{Path, PathBuf};

use cmamap::{abi, AllocRequest, Device, Errno, Info, Owner, Prot, Sharing, Strategy};
use cmamap_testkit::pattern;

use std::io::{Read, Write};

use crate::check::{expect_errno, pass, skip, Failure, Step, TestResult};
use crate::child;
use crate::ctx::{self, Ctx};
use crate::module::{self, Params, Restore};

/// The pattern the host writes to the first half of the backing file before boot.
pub const HOST_SEED: u64 = 0x4057_5348;
/// The pattern the guest writes to the second half.
pub const GUEST_SEED: u64 = 0x4755_4553;

const DRIVER_DIR: &str = "/sys/bus/pci/drivers/cmamap";

/// The device block, or the skip verdict when no ivshmem device is bound.
fn device_block(dev: &Device) -> Result<Result<Info, TestResult>, Failure> {
    let found = dev.list()?.into_iter().find(Info::is_device_memory);
    Ok(found.ok_or_else(|| {
        skip("no ivshmem device bound to cmamap (boot with qemu/run.sh --ivshmem FILE:SIZE)")
    }))
}

macro_rules! device_block_or_skip {
    ($dev:expr) => {
        match device_block($dev)? {
            Ok(info) => info,
            Err(skipped) => return skipped,
        }
    };
}

/// The mmap offset of byte `byte` of `info` through view `view`.
fn offset(info: &Info, view: u32, byte: u64) -> u64 {
    abi::view_offset(info.id, view, byte)
}

fn len_of(info: &Info) -> Result<usize, Failure> {
    usize::try_from(info.size).step("BAR size")
}

/// `/proc/iomem` lines that name the driver's region.
fn iomem_claims() -> Result<Vec<String>, Failure> {
    let iomem = std::fs::read_to_string("/proc/iomem").step("read /proc/iomem")?;
    Ok(iomem
        .lines()
        .filter(|line| line.trim_end().ends_with(": cmamap"))
        .map(str::to_owned)
        .collect())
}

pub fn ivshmem_block_listed(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let info = device_block_or_skip!(&dev);
    ensure_eq!(info.owner, Owner::Device, "owner of the device block");
    ensure_eq!(
        info.strategy,
        Strategy::Remap,
        "strategy of the device block"
    );
    ensure_eq!(info.owner_tgid, 0, "owner_tgid of the device block");
    ensure!(
        !info.is_persistent(),
        "device block has ALLOC_PERSIST: flags {:#x}",
        info.flags
    );
    ensure!(
        info.size >= ctx.pages(1) && info.size.is_power_of_two(),
        "BAR size {} is not a power of two of at least a page",
        info.size
    );
    ensure_eq!(dev.info(info.id)?, info, "INFO of the device block");
    // Any open file reaches it, like a PERSIST block.
    let other = ctx.open()?;
    ensure_eq!(
        other.info(info.id)?,
        info,
        "INFO of the device block through another file"
    );
    if ctx.root {
        ensure!(info.phys_addr != 0, "root sees phys_addr 0 for the BAR");
        let claims = iomem_claims()?;
        let start = format!("{:x}-", info.phys_addr);
        ensure!(
            claims
                .iter()
                .any(|line| line.trim_start().starts_with(&start)),
            "/proc/iomem has no region named cmamap at {:#x}: {claims:?}",
            info.phys_addr
        );
    }
    // Device memory belongs to the device: no user frees it.
    expect_errno(dev.free(info.id), Errno::EPERM, "FREE of the device block")?;
    ensure!(
        device_block(&dev)?.is_ok(),
        "the device block left the list after a refused FREE"
    );
    if let Ok(text) = std::fs::read_to_string("/sys/kernel/debug/cmamap/blocks") {
        ensure!(
            text.lines().any(|line| {
                let words: Vec<&str> = line.split_whitespace().collect();
                words.first() == Some(&info.id.to_string().as_str()) && words.contains(&"device")
            }),
            "debugfs blocks has no device line for block {}:\n{text}",
            info.id
        );
    }
    pass()
}

pub fn ivshmem_reads_host_data(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let info = device_block_or_skip!(&dev);
    let half = len_of(&info)? / 2;
    // Through the default (remap, uncached) mapping of the whole BAR.
    let whole = dev.map(info.offset, len_of(&info)?, Prot::Read)?;
    pattern::check(&whole.as_slice()[..half], HOST_SEED, 0)
        .map_err(|m| Failure::new(format!("host half through the remap mapping: {m}")))?;
    drop(whole);
    // Through the fault view, from its third page on.
    let skip_bytes = 2 * ctx.page;
    let fault = dev.map(
        offset(&info, abi::STRATEGY_FAULT, skip_bytes as u64),
        half - skip_bytes,
        Prot::Read,
    )?;
    // Warm up getrusage itself so that its first call's faults are not counted.
    ctx::minor_fault_count()?;
    let faults_before = ctx::minor_fault_count()?;
    pattern::check(fault.as_slice(), HOST_SEED, skip_bytes as u64)
        .map_err(|m| Failure::new(format!("host half through the fault view: {m}")))?;
    let faults = ctx::minor_fault_count()? - faults_before;
    let pages = ((half - skip_bytes) / ctx.page) as i64;
    ensure!(
        faults >= pages,
        "reading {pages} pages through the fault view took only {faults} minor faults"
    );
    drop(fault);
    // pread across a page boundary.
    let mut buf = vec![0u8; 3 * ctx.page];
    let at = (ctx.page / 2) as u64;
    let read = dev.pread(info.offset + at, &mut buf)?;
    ensure_eq!(read, buf.len(), "pread length");
    pattern::check(&buf, HOST_SEED, at)
        .map_err(|m| Failure::new(format!("host half through pread: {m}")))?;
    pass()
}

pub fn ivshmem_guest_writes_reach_host(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let info = device_block_or_skip!(&dev);
    let len = len_of(&info)?;
    let half = len / 2;
    let quarter = half / 4;
    ensure!(
        quarter >= ctx.page && quarter % ctx.page == 0,
        "BAR of {len} bytes is too small for this test"
    );
    let part = |i: usize| (half + i * quarter) as u64;
    // Four paths, a quarter of the second half each: remap (uncached), fault, remap
    // write-combined, and pwrite.
    for (i, view) in [abi::STRATEGY_REMAP, abi::STRATEGY_FAULT, abi::VIEW_REMAP_WC]
        .into_iter()
        .enumerate()
    {
        let mut mapping = dev
            .map(offset(&info, view, part(i)), quarter, Prot::ReadWrite)
            .step(&format!("map view {view}"))?;
        pattern::fill(mapping.as_mut_slice(), GUEST_SEED, part(i));
        pattern::check(mapping.as_slice(), GUEST_SEED, part(i))
            .map_err(|m| Failure::new(format!("reading back through view {view}: {m}")))?;
    }
    let data = pattern::generate(quarter, GUEST_SEED, part(3));
    ensure_eq!(
        dev.pwrite(info.offset + part(3), &data)?,
        quarter,
        "pwrite length"
    );
    // Everything through another path: pread of the whole second half.
    let mut back = vec![0u8; half];
    ensure_eq!(
        dev.pread(info.offset + half as u64, &mut back)?,
        half,
        "pread length"
    );
    pattern::check(&back, GUEST_SEED, half as u64)
        .map_err(|m| Failure::new(format!("second half through pread: {m}")))?;
    pass()
}

pub fn ivshmem_bad_mappings_refused(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let info = device_block_or_skip!(&dev);
    let len = len_of(&info)?;
    let p = ctx.page;
    expect_errno(
        dev.map(info.offset, len + p, Prot::Read),
        Errno::EINVAL,
        "mmap one page past the BAR",
    )?;
    expect_errno(
        dev.map(info.offset + info.size, p, Prot::Read),
        Errno::EINVAL,
        "mmap at the BAR's end",
    )?;
    expect_errno(
        dev.map(info.offset + info.size - p as u64, 2 * p, Prot::Read),
        Errno::EINVAL,
        "mmap across the BAR's end",
    )?;
    for view in [abi::STRATEGY_PAGE, abi::STRATEGY_HUGE] {
        expect_errno(
            dev.map(offset(&info, view, 0), p, Prot::Read),
            Errno::EOPNOTSUPP,
            &format!("mmap of device memory through view {view} (needs struct page)"),
        )?;
    }
    expect_errno(
        dev.map(offset(&info, 6, 0), p, Prot::Read),
        Errno::EINVAL,
        "mmap through unknown view 6",
    )?;
    expect_errno(
        dev.map_with(info.offset, p, Prot::Read, Sharing::Private),
        Errno::EINVAL,
        "MAP_PRIVATE of device memory",
    )?;
    // Past the end, pread reads nothing and pwrite has no room.
    let mut buf = [0u8; 8];
    ensure_eq!(
        dev.pread(info.offset + info.size, &mut buf)?,
        0,
        "pread at the BAR's end"
    );
    expect_errno(
        dev.pwrite(info.offset + info.size, &buf),
        Errno::ENOSPC,
        "pwrite at the BAR's end",
    )?;
    // Write-combining is for device memory only.
    let cma = dev.alloc(&AllocRequest::new(ctx.pages(1)))?;
    expect_errno(
        dev.map(
            abi::view_offset(cma.id(), abi::VIEW_REMAP_WC, 0),
            p,
            Prot::Read,
        ),
        Errno::EINVAL,
        "VIEW_REMAP_WC of a CMA block",
    )?;
    pass()
}

#[cfg(not(target_arch = "aarch64"))]
const PAT_LIST: &str = "/sys/kernel/debug/x86/pat_memtype_list";

/// The x86 PAT memtype of `phys..phys + len`, as the kernel's reservation list names it.
#[cfg(not(target_arch = "aarch64"))]
fn pat_memtype(phys: u64, len: u64) -> Result<Option<String>, Failure> {
    let list = std::fs::read_to_string(PAT_LIST).step("read the PAT memtype list")?;
    let range = format!("[mem {:#018x}-{:#018x}]", phys, phys + len);
    Ok(list.lines().find_map(|line| {
        line.split_once(&range)
            .map(|(_, kind)| kind.trim().to_owned())
    }))
}

/// The memory type of each device-memory view. x86-64 names it in PAT's reservation list:
/// UC- for the default view, WC for `VIEW_REMAP_WC`. arm64 has no such list (its memory
/// types live in MAIR, fixed at boot, and the PTE only picks one): there the test shows what
/// each type allows, see [`arm64_cache_modes`].
pub fn ivshmem_cache_modes(ctx: &Ctx) -> TestResult {
    if let Some(skipped) = ctx.needs_root() {
        return skipped;
    }
    let dev = ctx.open()?;
    let info = device_block_or_skip!(&dev);
    #[cfg(target_arch = "aarch64")]
    {
        arm64_cache_modes(ctx, &dev, &info)
    }
    #[cfg(not(target_arch = "aarch64"))]
    {
        x86_cache_modes(ctx, &dev, &info)
    }
}

/// On arm64 `pgprot_noncached` is Device-nGnRnE and `pgprot_writecombine` Normal-NC. Device
/// memory takes only aligned accesses: an unaligned load is an alignment fault (SIGBUS),
/// while Normal-NC memory takes it and returns the same bytes. So one unaligned `LDR` through
/// each view tells the two types apart, on the same page (arm64 has no per-range memtype
/// to conflict with, unlike x86 PAT).
#[cfg(target_arch = "aarch64")]
fn arm64_cache_modes(ctx: &Ctx, dev: &Device, info: &Info) -> TestResult {
    let uncached = dev.map(offset(info, abi::STRATEGY_REMAP, 0), ctx.page, Prot::Read)?;
    let combined = dev.map(offset(info, abi::VIEW_REMAP_WC, 0), ctx.page, Prot::Read)?;
    // Bytes 1..9, read one at a time (aligned) through the Device view.
    let mut bytes = [0u8; 8];
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = uncached.read_volatile(1 + i);
    }
    let want = u64::from_le_bytes(bytes);
    ensure!(
        bytes.iter().any(|&b| b != bytes[0]),
        "the host pattern at bytes 1..9 is flat ({want:#018x}): it would not show a misread"
    );
    // SAFETY: bytes 1..9 of the live, readable Normal-NC mapping.
    let got = unsafe { unaligned_load(combined.addr() + 1) };
    ensure_eq!(
        got,
        want,
        "unaligned load through VIEW_REMAP_WC (Normal-NC) against byte reads"
    );
    let addr = uncached.addr();
    let verdict = child::spawn(move || {
        // SAFETY: bytes 1..9 of the live, readable Device mapping inherited from the parent;
        // the load either returns or raises SIGBUS, which is what the test checks.
        let value = unsafe { unaligned_load(addr + 1) };
        Err(Failure::new(format!("loaded {value:#018x}")))
    })?
    .wait()
    .step("waitpid")?;
    match verdict {
        Err(message) if message.contains("SIGBUS") => {}
        Err(message) => fail!("unaligned load through the default view (Device): expected SIGBUS, the child reported: {message}"),
        Ok(()) => fail!("unaligned load through the default view (Device): expected SIGBUS, the child exited cleanly"),
    }
    println!("# arm64: default view Device-nGnRnE (unaligned LDR: SIGBUS), VIEW_REMAP_WC Normal-NC (unaligned LDR: {got:#018x})");
    pass()
}

/// One 8-byte `LDR` at `addr`, whatever its alignment (a Rust unaligned read may be split).
///
/// # Safety
///
/// `addr..addr + 8` must be readable memory.
#[cfg(target_arch = "aarch64")]
unsafe fn unaligned_load(addr: usize) -> u64 {
    let value: u64;
    // SAFETY: the caller guarantees the 8 bytes are readable; the asm touches nothing else.
    unsafe {
        std::arch::asm!("ldr {v}, [{a}]", v = out(reg) value, a = in(reg) addr,
            options(nostack, readonly, preserves_flags));
    }
    value
}

/// On x86-64 PAT's reservation list names each mapping's memtype.
#[cfg(not(target_arch = "aarch64"))]
fn x86_cache_modes(ctx: &Ctx, dev: &Device, info: &Info) -> TestResult {
    let (dev, info) = (dev, *info);
    if !Path::new(PAT_LIST).exists() {
        return skip(format!("{PAT_LIST} absent: no x86 PAT or no debugfs"));
    }
    let p = ctx.page as u64;
    // Two pages apart: PAT keeps one memtype per physical range, and a second mapping of the
    // same page would inherit the first one's.
    let uncached = dev.map(offset(&info, abi::STRATEGY_REMAP, 0), ctx.page, Prot::Read)?;
    let combined = dev.map(
        offset(&info, abi::VIEW_REMAP_WC, 2 * p),
        ctx.page,
        Prot::Read,
    )?;
    ensure_eq!(
        pat_memtype(info.phys_addr, p)?.as_deref(),
        Some("uncached-minus"),
        "PAT memtype of the default (remap) mapping"
    );
    ensure_eq!(
        pat_memtype(info.phys_addr + 2 * p, p)?.as_deref(),
        Some("write-combining"),
        "PAT memtype of the VIEW_REMAP_WC mapping"
    );
    drop((uncached, combined));
    ensure_eq!(
        pat_memtype(info.phys_addr + 2 * p, p)?,
        None,
        "PAT reservation after munmap"
    );
    pass()
}

/// Mappings of `resource2_wc` the main thread makes while the copies run: this many at least,
/// and for [`OUTSIDE_WC_TIME`] at least (a fast kernel makes 200 in 60 ms, and a TCG vCPU that
/// the busy host leaves waiting can hide the race for that long).
#[cfg(target_arch = "x86_64")]
const OUTSIDE_WC_ROUNDS: usize = 200;
#[cfg(target_arch = "x86_64")]
const OUTSIDE_WC_TIME: std::time::Duration = std::time::Duration::from_secs(3);

/// `pread`/`pwrite` of the BAR leave a write-combined mapping of it made outside cmamap
/// write-combined (issue 14, defect 8). While a thread copies the BAR's first two pages back
/// and forth through cmamap, the main thread maps the first four pages of the device's sysfs
/// `resource2_wc` again and again, and PAT's reservation list must name each mapping
/// write-combining. A copy through `ioremap` reserves its page UC- while it copies, and a
/// mapping made meanwhile gets UC- for its lifetime.
pub fn ivshmem_copy_keeps_outside_wc(ctx: &Ctx) -> TestResult {
    if let Some(skipped) = ctx.needs_root() {
        return skipped;
    }
    let dev = ctx.open()?;
    let info = device_block_or_skip!(&dev);
    #[cfg(target_arch = "x86_64")]
    {
        x86_copy_keeps_outside_wc(ctx, &dev, &info)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = info;
        skip("not x86-64: only x86 PAT reserves a memtype per physical range")
    }
}

/// Whether the running kernel has `vmap_pfn` (`CONFIG_VMAP_PFN`), by its name in
/// `/proc/kallsyms`.
#[cfg(target_arch = "x86_64")]
fn kernel_has_vmap_pfn() -> Result<bool, Failure> {
    let symbols = std::fs::read_to_string("/proc/kallsyms").step("read /proc/kallsyms")?;
    Ok(symbols
        .lines()
        .any(|line| line.split_whitespace().nth(2) == Some("vmap_pfn")))
}

/// The CPUs the calling thread may run on.
#[cfg(target_arch = "x86_64")]
fn allowed_cpus() -> Result<Vec<usize>, Failure> {
    // SAFETY: `cpu_set_t` is plain data, and all zeros is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: Pid 0 is the calling thread; `set` has the size passed.
    let ret = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) };
    if ret != 0 {
        fail!("sched_getaffinity: {}", Errno::last());
    }
    Ok((0..libc::CPU_SETSIZE as usize)
        // SAFETY: `cpu` is below CPU_SETSIZE, inside `set`.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect())
}

/// Lets the calling thread run on `cpus` only.
#[cfg(target_arch = "x86_64")]
fn set_cpus(cpus: &[usize]) -> Result<(), Failure> {
    // SAFETY: As in `allowed_cpus`.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &cpu in cpus {
        // SAFETY: Each `cpu` came from `allowed_cpus`, below CPU_SETSIZE.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: Pid 0 is the calling thread; `set` has the size passed.
    let ret = unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) };
    if ret != 0 {
        fail!("sched_setaffinity to CPUs {cpus:?}: {}", Errno::last());
    }
    Ok(())
}

/// A shared read-only mapping of the first `len` bytes of a sysfs resource file.
#[cfg(target_arch = "x86_64")]
struct ResourceMapping {
    addr: *mut libc::c_void,
    len: usize,
}

#[cfg(target_arch = "x86_64")]
impl ResourceMapping {
    fn map(file: &std::fs::File, len: usize) -> Result<Self, Errno> {
        use std::os::fd::AsRawFd;
        // SAFETY: A new mapping chosen by the kernel; nothing in Rust references it.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(Errno::last());
        }
        Ok(Self { addr, len })
    }
}

#[cfg(target_arch = "x86_64")]
impl Drop for ResourceMapping {
    fn drop(&mut self) {
        // SAFETY: The mapping `map` made, unmapped once.
        unsafe { libc::munmap(self.addr, self.len) };
    }
}

#[cfg(target_arch = "x86_64")]
fn x86_copy_keeps_outside_wc(ctx: &Ctx, dev: &Device, info: &Info) -> TestResult {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    if !Path::new(PAT_LIST).exists() {
        return skip(format!("{PAT_LIST} absent: no x86 PAT or no debugfs"));
    }
    if !kernel_has_vmap_pfn()? {
        return skip(
            "kernel without CONFIG_VMAP_PFN (no vmap_pfn in /proc/kallsyms): pread/pwrite copy \
             through ioremap, which reserves UC- while it copies; see README",
        );
    }
    let Some(address) = bound_device()? else {
        return skip(format!("no device under {DRIVER_DIR}"));
    };
    let resource = PathBuf::from(DRIVER_DIR)
        .join(&address)
        .join("resource2_wc");
    if !resource.exists() {
        return skip(format!(
            "{} absent: BAR 2 is not prefetchable",
            resource.display()
        ));
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&resource)
        .step(&format!("open {}", resource.display()))?;
    let p = ctx.page;
    let len = 4 * p;
    // Before any copy runs: the mapping is allowed at all, and write-combined.
    match ResourceMapping::map(&file, len) {
        Ok(mapping) => {
            ensure_eq!(
                pat_memtype(info.phys_addr, len as u64)?.as_deref(),
                Some("write-combining"),
                "PAT memtype of a resource2_wc mapping with no copy running"
            );
            drop(mapping);
        }
        Err(Errno::EINVAL) => {
            return skip(format!(
                "mmap of {} refused (EINVAL): this kernel keeps a region a driver holds \
                 (cmamap's BAR) from user mappings (CONFIG_IO_STRICT_DEVMEM, or iomem=strict), \
                 so no mapping outside cmamap can exist to be downgraded (boot with \
                 iomem=relaxed to run this case)",
                resource.display()
            ));
        }
        Err(errno) => fail!("mmap of {}: {errno}", resource.display()),
    }
    // The copies write back what they read: the host's data stays.
    let mut first = vec![0u8; 2 * p];
    ensure_eq!(
        dev.pread(info.offset, &mut first)?,
        first.len(),
        "pread length"
    );
    pattern::check(&first, HOST_SEED, 0)
        .map_err(|m| Failure::new(format!("host data before the copies: {m}")))?;

    // The copies and the mappings on CPUs of their own: with lazy preemption a copy is switched
    // away at the next tick or on its return to user space, seldom while it holds its mapping,
    // so on one CPU the two would rarely meet.
    let cpus = allowed_cpus()?;
    let &[copier_cpu, mapper_cpu, ..] = cpus.as_slice() else {
        return skip(format!(
            "needs two CPUs to copy and map at once, this thread may use {cpus:?}"
        ));
    };
    let stop = AtomicBool::new(false);
    let copies = AtomicU64::new(0);
    let copy_pages = [
        format!(
            "[mem {:#018x}-{:#018x}]",
            info.phys_addr,
            info.phys_addr + p as u64
        ),
        format!(
            "[mem {:#018x}-{:#018x}]",
            info.phys_addr + p as u64,
            info.phys_addr + 2 * p as u64
        ),
    ];
    let started = std::time::Instant::now();
    let (rounds, downgrades, copies_seen) = std::thread::scope(|scope| -> Result<_, Failure> {
        let copier = scope.spawn(|| -> Result<(), Failure> {
            set_cpus(&[copier_cpu])?;
            let mut buf = vec![0u8; 2 * p];
            while !stop.load(Ordering::Relaxed) {
                ensure_eq!(dev.pread(info.offset, &mut buf)?, buf.len(), "pread length");
                ensure_eq!(dev.pwrite(info.offset, &buf)?, buf.len(), "pwrite length");
                copies.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        });
        let rounds = (|| -> Result<(usize, usize, usize), Failure> {
            set_cpus(&[mapper_cpu])?;
            while copies.load(Ordering::Relaxed) == 0 && !copier.is_finished() {
                std::thread::yield_now();
            }
            let (mut round, mut downgrades, mut copies_seen) = (0, 0, 0);
            while round < OUTSIDE_WC_ROUNDS || started.elapsed() < OUTSIDE_WC_TIME {
                round += 1;
                let mapping = ResourceMapping::map(&file, len)
                    .step(&format!("round {round}: mmap of {}", resource.display()))?;
                let list = std::fs::read_to_string(PAT_LIST).step("read the PAT memtype list")?;
                drop(mapping);
                let range = format!(
                    "[mem {:#018x}-{:#018x}]",
                    info.phys_addr,
                    info.phys_addr + len as u64
                );
                let memtype = list.lines().find_map(|line| {
                    line.split_once(&range)
                        .map(|(_, kind)| kind.trim().to_owned())
                });
                match memtype.as_deref() {
                    Some("write-combining") => {}
                    Some("uncached-minus") => downgrades += 1,
                    other => {
                        fail!("round {round}: PAT memtype of the resource2_wc mapping: {other:?}")
                    }
                }
                if copy_pages.iter().any(|page| list.contains(page.as_str())) {
                    copies_seen += 1;
                }
            }
            Ok((round, downgrades, copies_seen))
        })();
        stop.store(true, Ordering::Relaxed);
        copier
            .join()
            .map_err(|_| Failure::new("the copying thread panicked"))??;
        set_cpus(&cpus)?;
        rounds
    })?;
    let copies = copies.load(Ordering::Relaxed);
    println!(
        "# {rounds} resource2_wc mappings on CPU {mapper_cpu} during {copies} \
         pread+pwrite pairs on CPU {copier_cpu} ({} ms): {downgrades} downgraded to UC-, a \
         copy's own reservation seen in {copies_seen}",
        started.elapsed().as_millis()
    );
    ensure!(
        downgrades == 0,
        "{downgrades} of {rounds} write-combined resource2_wc mappings got UC- \
         while pread/pwrite copied the BAR (a copy's own reservation seen in {copies_seen} \
         rounds)"
    );
    pass()
}

/// The PCI address of the bound ivshmem device, from the driver's sysfs directory.
fn bound_device() -> Result<Option<String>, Failure> {
    let Ok(entries) = std::fs::read_dir(DRIVER_DIR) else {
        return Ok(None);
    };
    for entry in entries {
        let name = entry.step("read the driver's sysfs directory")?.file_name();
        let name = name.to_string_lossy();
        if name.contains(':') && name.contains('.') {
            return Ok(Some(name.into_owned()));
        }
    }
    Ok(None)
}

fn driver_write(file: &str, address: &str) -> Result<(), Failure> {
    let path = PathBuf::from(DRIVER_DIR).join(file);
    std::fs::write(&path, address).step(&format!("write {address} to {}", path.display()))
}

/// Binds the device again when dropped, so that a failing test leaves it bound.
struct Rebind {
    address: Option<String>,
}

impl Drop for Rebind {
    fn drop(&mut self) {
        if let Some(address) = self.address.take() {
            if !Path::new(DRIVER_DIR).join(&address).exists() {
                let _ = driver_write("bind", &address);
            }
        }
    }
}

/// Touches byte `index` of the mapping at `addr` in a forked child, which must die of SIGBUS.
fn expect_sigbus(addr: usize, index: usize, what: &str) -> Result<(), Failure> {
    let verdict = child::spawn(|| {
        // SAFETY: `addr + index` lies in a live mapping inherited from the parent; reading it
        // either returns a byte or raises SIGBUS, which is what the test checks.
        let byte = unsafe { std::ptr::read_volatile((addr + index) as *const u8) };
        Err(Failure::new(format!("read {byte:#04x}")))
    })?
    .wait()
    .step("waitpid")?;
    match verdict {
        Err(message) if message.contains("SIGBUS") => Ok(()),
        Err(message) => fail!("{what}: expected SIGBUS, the child reported: {message}"),
        Ok(()) => fail!("{what}: expected SIGBUS, the child exited cleanly"),
    }
}

pub fn ivshmem_unbind_while_mapped(ctx: &Ctx) -> TestResult {
    if let Some(skipped) = ctx.needs_root() {
        return skipped;
    }
    let dev = ctx.open()?;
    let info = device_block_or_skip!(&dev);
    let Some(address) = bound_device()? else {
        return skip(format!("no device under {DRIVER_DIR}"));
    };
    let p = ctx.page;
    let pages = 4;
    // One mapping per strategy; the fault one has pages touched and pages never touched.
    let remap = dev.map(info.offset, pages * p, Prot::Read)?;
    let fault = dev.map(offset(&info, abi::STRATEGY_FAULT, 0), pages * p, Prot::Read)?;
    pattern::check(remap.as_slice(), HOST_SEED, 0)
        .map_err(|m| Failure::new(format!("remap mapping before unbind: {m}")))?;
    pattern::check(&fault.as_slice()[..2 * p], HOST_SEED, 0)
        .map_err(|m| Failure::new(format!("fault mapping before unbind: {m}")))?;
    ensure_eq!(dev.info(info.id)?.map_count, 2, "map_count before unbind");

    // Another process with mappings of its own (its mm is not the unbinder's): it maps, reads,
    // says ready, waits for the unbind, then touches its remap mapping, which must SIGBUS.
    let (mut ready_rx, ready_tx) = pipe()?;
    let (go_rx, mut go_tx) = pipe()?;
    let other = child::spawn(|| {
        let (mut ready_tx, mut go_rx) = (ready_tx, go_rx);
        let own = dev.map(info.offset, pages * p, Prot::Read)?;
        let own_fault = dev.map(offset(&info, abi::STRATEGY_FAULT, 0), pages * p, Prot::Read)?;
        pattern::check(own.as_slice(), HOST_SEED, 0)?;
        pattern::check(&own_fault.as_slice()[..p], HOST_SEED, 0)?;
        ready_tx.write_all(b"r").step("say ready")?;
        let mut go = [0u8; 1];
        go_rx.read_exact(&mut go).step("wait for the unbind")?;
        // The remap mapping first: its PTEs were made in mmap, the hard case to zap.
        let byte = own.read_volatile(0);
        let other = own_fault.read_volatile(0);
        fail!("read {byte:#04x} and {other:#04x} from mappings of an unbound device")
    })?;
    let mut ready = [0u8; 1];
    ready_rx
        .read_exact(&mut ready)
        .step("wait for the other process")?;
    // Ours, the two the child inherited, and the child's own two.
    ensure_eq!(
        dev.info(info.id)?.map_count,
        6,
        "map_count with the other process's mappings"
    );

    let mut rebind = Rebind {
        address: Some(address.clone()),
    };
    driver_write("unbind", &address)?;
    go_tx.write_all(b"g").step("tell the other process")?;
    match other.wait().step("waitpid")? {
        Err(message) if message.contains("SIGBUS") => {}
        Err(message) => fail!("other process: expected SIGBUS, it reported: {message}"),
        Ok(()) => fail!("other process: expected SIGBUS, it exited cleanly"),
    }

    // The block is gone: its id is dead like a freed block's.
    ensure!(
        device_block(&dev)?.is_err(),
        "a device block is still listed after unbind"
    );
    expect_errno(dev.info(info.id), Errno::ENOENT, "INFO after unbind")?;
    let mut buf = [0u8; 8];
    expect_errno(
        dev.pread(info.offset, &mut buf),
        Errno::EINVAL,
        "pread after unbind",
    )?;
    expect_errno(
        dev.pwrite(info.offset, &buf),
        Errno::EINVAL,
        "pwrite after unbind",
    )?;
    expect_errno(
        dev.map(info.offset, p, Prot::Read),
        Errno::EINVAL,
        "mmap after unbind",
    )?;
    let claims = iomem_claims()?;
    ensure!(
        claims.is_empty(),
        "/proc/iomem still has cmamap regions after unbind: {claims:?}"
    );
    // Every access through the old mappings, touched or not, remap or fault: SIGBUS.
    expect_sigbus(remap.addr(), 0, "remap mapping, touched page")?;
    expect_sigbus(remap.addr(), 3 * p, "remap mapping, last page")?;
    expect_sigbus(fault.addr(), 0, "fault mapping, touched page")?;
    expect_sigbus(fault.addr(), 3 * p, "fault mapping, untouched page")?;
    // The mappings still unmap cleanly.
    drop(remap);
    drop(fault);

    rebind.address = None;
    driver_write("bind", &address)?;
    let again = match device_block(&dev)? {
        Ok(again) => again,
        Err(_) => fail!("no device block after binding {address} again"),
    };
    ensure!(
        again.id > info.id,
        "rebound block has id {}, not newer than {}",
        again.id,
        info.id
    );
    ensure_eq!(again.size, info.size, "BAR size after rebind");
    ensure_eq!(again.map_count, 0, "map_count after rebind");
    let mapping = dev.map(again.offset, pages * p, Prot::Read)?;
    pattern::check(mapping.as_slice(), HOST_SEED, 0)
        .map_err(|m| Failure::new(format!("host data after rebind: {m}")))?;
    pass()
}

/// A pipe as two files.
fn pipe() -> Result<(std::fs::File, std::fs::File), Failure> {
    let (read, write) = nix::unistd::pipe().step("pipe")?;
    Ok((read.into(), write.into()))
}

pub fn ivshmem_rmmod_releases_region(ctx: &Ctx) -> TestResult {
    if let Some(skipped) = module::cannot_reload(ctx) {
        return skipped;
    }
    {
        let dev = ctx.open()?;
        let _ = device_block_or_skip!(&dev);
    }
    let params = Params::current(ctx)?;
    let restore = Restore::new(ctx, params);
    ensure!(
        !iomem_claims()?.is_empty(),
        "/proc/iomem has no cmamap region while the device is bound"
    );
    if let Err(message) = module::rmmod()? {
        fail!("rmmod: {message} (refcnt {})", module::refcnt());
    }
    let claims = iomem_claims()?;
    ensure!(
        claims.is_empty(),
        "/proc/iomem still has cmamap regions after rmmod: {claims:?}"
    );
    restore.restore()?;
    let dev = ctx.open()?;
    let info = match device_block(&dev)? {
        Ok(info) => info,
        Err(_) => fail!("no device block after insmod"),
    };
    let mapping = dev.map(info.offset, ctx.page, Prot::Read)?;
    pattern::check(mapping.as_slice(), HOST_SEED, 0)
        .map_err(|m| Failure::new(format!("host data after reload: {m}")))?;
    pass()
}

/// Host side, before boot: a backing file of `size` bytes with [`HOST_SEED`] in its first half
/// and zeros in the second.
pub fn host_fill(path: &Path, size: usize) -> std::io::Result<()> {
    let mut data = pattern::generate(size / 2, HOST_SEED, 0);
    data.resize(size, 0);
    std::fs::write(path, data)
}

/// Host side, after the VM exits: the host half unchanged and the guest's pattern in the
/// second half.
pub fn host_check(path: &Path) -> anyhow::Result<()> {
    use anyhow::Context;
    let data = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
    let half = data.len() / 2;
    pattern::check(&data[..half], HOST_SEED, 0)
        .with_context(|| format!("host half of {}", path.display()))?;
    pattern::check(&data[half..], GUEST_SEED, half as u64)
        .with_context(|| format!("guest half of {}", path.display()))?;
    Ok(())
}

/// Debuggers reach device memory too: `/proc/self/mem` reads the host's half of the BAR
/// through a remap mapping, and a write through it (undone afterwards) shows in the mapping.
pub fn ivshmem_proc_mem_reaches_bar(ctx: &Ctx) -> TestResult {
    use std::os::unix::fs::FileExt;
    let dev = ctx.open()?;
    let info = device_block_or_skip!(&dev);
    let mapping = dev.map(info.offset, len_of(&info)?, Prot::ReadWrite)?;
    let mem = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/proc/self/mem")
        .step("open /proc/self/mem")?;
    let mut buf = vec![0u8; 2 * ctx.page];
    let at = (ctx.page / 2) as u64;
    mem.read_exact_at(&mut buf, mapping.addr() as u64 + at)
        .step("read /proc/self/mem of the BAR")?;
    pattern::check(&buf, HOST_SEED, at)
        .map_err(|m| Failure::new(format!("host half through /proc/self/mem: {m}")))?;
    let byte = mapping.read_volatile(100);
    mem.write_all_at(&[!byte], mapping.addr() as u64 + 100)
        .step("write /proc/self/mem of the BAR")?;
    let seen = mapping.read_volatile(100);
    mem.write_all_at(&[byte], mapping.addr() as u64 + 100)
        .step("restore the byte through /proc/self/mem")?;
    ensure_eq!(seen, !byte, "the BAR byte after a /proc/self/mem write");
    ensure_eq!(
        mapping.read_volatile(100),
        byte,
        "the BAR byte after restoring it"
    );
    pass()
}
