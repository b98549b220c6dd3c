//! Adversarial mmap: overflowing offsets, mappings cut apart and moved, madvise, mlock, smaps
//! flags and O_DIRECT into a mapping.

use std::io::{Seek, SeekFrom, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::OpenOptionsExt;

use cmamap::{abi, AllocRequest, Errno, Strategy};
use cmamap_testkit::pattern;

use crate::check::{pass, skip, Failure, Step, TestResult};
use crate::ctx::Ctx;
use cmamap_testkit::region::{self, mmap_raw, Region};

/// True for the strategies whose VMAs are `VM_PFNMAP` (no `struct page` behind the PTEs).
fn is_pfnmap(strategy: Strategy) -> bool {
    strategy != Strategy::Page
}

/// Fails unless `region[start..start + len]` holds pattern `seed` for block offset `base`.
fn check_region(
    region: &Region,
    start: usize,
    len: usize,
    seed: u64,
    base: u64,
    what: &str,
) -> Result<(), Failure> {
    pattern::check(&region.copy_out(start, len), seed, base)
        .map_err(|m| Failure::new(format!("{what}: {m}")))
}

pub fn mmap_offset_overflow_refused(ctx: &Ctx) -> TestResult {
    let p = ctx.page;
    let dev = ctx.open()?;
    let block = dev.alloc(&AllocRequest::new(ctx.pages(2)))?;
    let fd = dev.as_fd();
    let base = block.offset();
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    // What each refusal is: the driver's EINVAL for windows outside a block, the kernel's own
    // ENOMEM for a length no address space holds, and EOVERFLOW for a negative offset.
    let cases: [(&str, u64, usize, Errno); 7] = [
        // The end of the positive offset space.
        (
            "offset 0x7ffffffffffff000, 2 pages",
            0x7fff_ffff_ffff_f000,
            2 * p,
            Errno::EINVAL,
        ),
        (
            "the largest id, its last in-block page, 2 pages",
            abi::offset_of_id(abi::MAX_ID) | (abi::MAX_BLOCK_SIZE - p as u64),
            2 * p,
            Errno::EINVAL,
        ),
        // Inside this block's offset range but far past its end.
        ("block + 4 GiB", base + (4 << 30), p, Errno::EINVAL),
        (
            "block + MAX_BLOCK_SIZE - 1 page, 2 pages (into the view bits)",
            base + abi::MAX_BLOCK_SIZE - p as u64,
            2 * p,
            Errno::EINVAL,
        ),
        // A length that overflows the block when added to the offset.
        (
            "block + 1 page, 1 TiB",
            base + p as u64,
            1 << 40,
            Errno::EINVAL,
        ),
        ("block, length 2^63", base, 1 << 63, Errno::ENOMEM),
        // A negative offset never reaches the driver's arithmetic as a large positive.
        (
            "offset -PAGE_SIZE",
            (-(p as i64)) as u64,
            p,
            Errno::EOVERFLOW,
        ),
    ];
    for (what, offset, len, expected) in cases {
        match mmap_raw(0, len, rw, 0, fd, offset) {
            Ok(addr) => {
                drop(Region::adopt(addr, len));
                fail!("mmap of {what} succeeded");
            }
            Err(errno) => ensure_eq!(errno, expected, "mmap of {what}"),
        }
    }
    ensure_eq!(block.info()?.map_count, 0, "map_count after refused mmaps");
    block.free()?;
    pass()
}

pub fn munmap_pieces_and_refill(ctx: &Ctx, strategy: Strategy) -> TestResult {
    let p = ctx.page;
    let pages = 8;
    let dev = ctx.open()?;
    let block = dev.alloc(&AllocRequest::new(ctx.pages(pages)).strategy(strategy))?;
    let region = Region::map(dev.as_fd(), block.offset(), pages * p)?;
    let pat = pattern::generate(pages * p, 41, 0);
    region.copy_in(0, &pat);

    // Cut the first and a middle page out; the rest stays intact and mapped.
    region.munmap(0, p).step("munmap of the first page")?;
    region.munmap(4 * p, p).step("munmap of a middle page")?;
    ensure_eq!(
        block.info()?.map_count,
        2,
        "map_count after cutting a VMA into two"
    );
    check_region(&region, p, 3 * p, 41, p as u64, "pages 1..4 after munmap")?;
    check_region(
        &region,
        5 * p,
        3 * p,
        41,
        5 * p as u64,
        "pages 5..8 after munmap",
    )?;

    // Map the holes again with MAP_FIXED, each at its own block offset.
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    for hole in [0, 4] {
        let at = region.addr + hole * p;
        let got = mmap_raw(
            at,
            p,
            rw,
            libc::MAP_FIXED,
            dev.as_fd(),
            block.offset() + (hole * p) as u64,
        )
        .step("mmap MAP_FIXED into the hole")?;
        ensure_eq!(got, at, "address of the refilled hole");
    }
    ensure_eq!(block.info()?.map_count, 4, "map_count after refilling");
    check_region(&region, 0, pages * p, 41, 0, "whole range after refilling")?;
    // The refilled pages share memory with the rest of the block.
    region.write(4 * p + 3, !pat[4 * p + 3]);
    let mut byte = [0u8];
    block.pread((4 * p + 3) as u64, &mut byte)?;
    ensure_eq!(
        byte[0],
        !pat[4 * p + 3],
        "pread of a byte written through the refill"
    );
    drop(region);
    ensure_eq!(
        block.info()?.map_count,
        0,
        "map_count after munmap of everything"
    );
    block.free()?;
    pass()
}

pub fn mremap_shrink_move_dontunmap(ctx: &Ctx, strategy: Strategy) -> TestResult {
    let p = ctx.page;
    let dev = ctx.open()?;
    let block = dev.alloc(&AllocRequest::new(ctx.pages(4)).strategy(strategy))?;
    let region = Region::map(dev.as_fd(), block.offset(), 4 * p)?;
    region.copy_in(0, &pattern::generate(4 * p, 42, 0));

    // Shrinking in place works and keeps the data.
    let addr = region
        .mremap(2 * p, 0, 0)
        .step("mremap shrink to 2 pages")?;
    ensure_eq!(addr, region.addr, "address after shrinking in place");
    let region = Region::adopt(region.addr, 2 * p);
    check_region(&region, 0, 2 * p, 42, 0, "after shrinking")?;
    ensure_eq!(block.info()?.map_count, 1, "map_count after shrinking");

    // MREMAP_DONTUNMAP needs an expandable private-anonymous-like VMA: refused.
    match region.mremap(2 * p, libc::MREMAP_MAYMOVE | libc::MREMAP_DONTUNMAP, 0) {
        Ok(addr) => {
            drop(Region::adopt(addr, 2 * p));
            fail!("MREMAP_DONTUNMAP succeeded");
        }
        Err(Errno::EINVAL) => {}
        Err(errno) => fail!("MREMAP_DONTUNMAP: {errno}, expected EINVAL"),
    }
    check_region(
        &region,
        0,
        2 * p,
        42,
        0,
        "after the refused MREMAP_DONTUNMAP",
    )?;

    // A fixed move carries the data (and, for fault strategies, the populated PTEs).
    let target = region::reserve(2 * p)?;
    let moved = region
        .mremap(
            2 * p,
            libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
            target.addr,
        )
        .step("mremap to a fixed address")?;
    ensure_eq!(moved, target.addr, "address after the fixed move");
    // The old range is gone; the target region now owns the mapping.
    std::mem::forget(region);
    check_region(&target, 0, 2 * p, 42, 0, "after the fixed move")?;
    ensure_eq!(block.info()?.map_count, 1, "map_count after the move");
    target.write(p + 1, 0xa5);
    let mut byte = [0u8];
    block.pread((p + 1) as u64, &mut byte)?;
    ensure_eq!(byte[0], 0xa5, "pread of a byte written after the move");
    drop(target);
    ensure_eq!(block.info()?.map_count, 0, "map_count after munmap");
    block.free()?;
    pass()
}

pub fn madvise_and_mlock(ctx: &Ctx, strategy: Strategy) -> TestResult {
    let p = ctx.page;
    let pages = 4;
    let dev = ctx.open()?;
    let block = dev.alloc(&AllocRequest::new(ctx.pages(pages)).strategy(strategy))?;
    let region = Region::map(dev.as_fd(), block.offset(), pages * p)?;
    region.copy_in(0, &pattern::generate(pages * p, 43, 0));
    let len = pages * p;

    // DONTNEED and PAGEOUT: madvise refuses VM_PFNMAP; on the page strategy they zap or skip
    // the PTEs, and the next touch faults the same shared memory back in.
    for (name, advice) in [
        ("MADV_DONTNEED", libc::MADV_DONTNEED),
        ("MADV_PAGEOUT", libc::MADV_PAGEOUT),
        ("MADV_COLD", libc::MADV_COLD),
    ] {
        let result = region.madvise(0, len, advice);
        if is_pfnmap(strategy) {
            ensure_eq!(result, Err(Errno::EINVAL), "{name} on a PFN map");
        } else {
            ensure_eq!(result, Ok(()), "{name} on a page map");
        }
        check_region(&region, 0, len, 43, 0, &format!("after {name}"))?;
    }
    // MADV_FREE is for anonymous memory only.
    ensure_eq!(
        region.madvise(0, len, libc::MADV_FREE),
        Err(Errno::EINVAL),
        "MADV_FREE"
    );
    // Hints that change no memory are accepted.
    for (name, advice) in [
        ("MADV_WILLNEED", libc::MADV_WILLNEED),
        ("MADV_RANDOM", libc::MADV_RANDOM),
        ("MADV_DONTDUMP", libc::MADV_DONTDUMP),
    ] {
        ensure_eq!(region.madvise(0, len, advice), Ok(()), "{name}");
    }
    check_region(&region, 0, len, 43, 0, "after the hints")?;

    // mlock skips special VMAs and succeeds; the memory stays as it is.
    // SAFETY: the range is the region's.
    let locked = unsafe { libc::mlock(region.addr as *const libc::c_void, len) };
    ensure_eq!(locked, 0, "mlock ({})", Errno::last());
    region.write(5, 0x11);
    check_region(&region, 6, len - 6, 43, 6, "after mlock")?;
    // SAFETY: as above.
    let unlocked = unsafe { libc::munlock(region.addr as *const libc::c_void, len) };
    ensure_eq!(unlocked, 0, "munlock ({})", Errno::last());
    let mut byte = [0u8];
    block.pread(5, &mut byte)?;
    ensure_eq!(byte[0], 0x11, "byte written under mlock");
    drop(region);
    block.free()?;
    pass()
}

/// The VmFlags mnemonics of the VMA that starts at `addr`, from /proc/self/smaps.
fn vm_flags_at(addr: usize) -> Result<Vec<String>, Failure> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").step("read /proc/self/smaps")?;
    let head = format!("{addr:x}-");
    let mut inside = false;
    for line in smaps.lines() {
        if line.starts_with(|c: char| c.is_ascii_hexdigit()) && line.contains('-') {
            inside = line.starts_with(&head);
        } else if inside {
            if let Some(flags) = line.strip_prefix("VmFlags:") {
                return Ok(flags.split_whitespace().map(str::to_owned).collect());
            }
        }
    }
    Err(Failure::new(format!(
        "no VMA at {addr:#x} in /proc/self/smaps"
    )))
}

pub fn smaps_vmflags(ctx: &Ctx, strategy: Strategy) -> TestResult {
    let dev = ctx.open()?;
    let block = dev.alloc(&AllocRequest::new(ctx.pages(2)).strategy(strategy))?;
    let region = Region::map(dev.as_fd(), block.offset(), 2 * ctx.page)?;
    let flags = vm_flags_at(region.addr)?;
    let has = |f: &str| flags.iter().any(|x| x == f);
    let (wanted, unwanted): (&[&str], &[&str]) = if is_pfnmap(strategy) {
        (&["rd", "wr", "sh", "io", "pf", "de", "dd"], &["mm"])
    } else {
        (&["rd", "wr", "sh", "mm", "de"], &["io", "pf"])
    };
    for flag in wanted {
        ensure!(has(flag), "{strategy}: VmFlags {flags:?} lack {flag}");
    }
    for flag in unwanted {
        ensure!(!has(flag), "{strategy}: VmFlags {flags:?} have {flag}");
    }
    drop(region);
    block.free()?;
    pass()
}

/// The block device an O_DIRECT read can come from: brd's first RAM disk.
const RAM_DISK: &str = "/dev/ram0";

pub fn odirect_read_into_mapping(ctx: &Ctx, strategy: Strategy) -> TestResult {
    let len = 4 * ctx.page;
    // Put a pattern on the disk through the page cache, then flush it to the device.
    let mut disk = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(RAM_DISK)
    {
        Ok(disk) => disk,
        Err(err) => return skip(format!("{RAM_DISK}: {err} (no BLK_DEV_RAM in the kernel?)")),
    };
    let data = pattern::generate(len, 44, 0);
    disk.seek(SeekFrom::Start(0))?;
    disk.write_all(&data)
        .step("write the pattern to the RAM disk")?;
    disk.sync_all().step("fsync the RAM disk")?;
    drop(disk);
    let direct = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(RAM_DISK)
        .step("open the RAM disk O_DIRECT")?;

    let dev = ctx.open()?;
    let block = dev.alloc(&AllocRequest::new(len as u64).strategy(strategy))?;
    let region = Region::map(dev.as_fd(), block.offset(), len)?;
    // SAFETY: the buffer is the region, page aligned and `len` long.
    let read = unsafe { libc::pread(direct.as_raw_fd(), region.addr as *mut libc::c_void, len, 0) };
    if is_pfnmap(strategy) {
        // get_user_pages refuses VM_IO|VM_PFNMAP: the read fails and writes nothing.
        ensure_eq!(read, -1, "O_DIRECT read into a PFN map");
        ensure_eq!(Errno::last(), Errno::EFAULT, "errno of the O_DIRECT read");
        pattern::check_filled(&region.copy_out(0, len), 0, 0)
            .map_err(|m| Failure::new(format!("after the failed read: {m}")))?;
    } else {
        ensure_eq!(
            read,
            len as isize,
            "O_DIRECT read into a page map ({})",
            Errno::last()
        );
        check_region(&region, 0, len, 44, 0, "O_DIRECT data in the mapping")?;
        let mut back = vec![0u8; len];
        block.pread(0, &mut back)?;
        pattern::check(&back, 44, 0).map_err(|m| Failure::new(format!("pread: {m}")))?;
    }
    drop(region);
    block.free()?;
    pass()
}

pub fn unmap_free_refuses_plain_mmap_at_old_address(ctx: &Ctx) -> TestResult {
    let len = 4 * ctx.page;
    let dev = ctx.open()?;
    let mut args = cmamap::AllocRequest::new(len as u64).to_args();
    args.prot = (libc::PROT_READ | libc::PROT_WRITE) as u32;
    cmamap::raw::alloc_map(dev.as_fd(), &mut args).step("ALLOC_MAP")?;
    let addr = args.addr as usize;
    // Undo ALLOC_MAP's mapping by hand, then map the block again, plainly, at that address.
    drop(Region::adopt(addr, len));
    let again = mmap_raw(
        addr,
        len,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_FIXED_NOREPLACE,
        dev.as_fd(),
        args.offset,
    )
    .step("mmap at the old ALLOC_MAP address")?;
    ensure_eq!(again, addr, "address of the plain mapping");
    let plain = Region::adopt(addr, len);
    plain.write(0, 0x3c);
    let free = abi::FreeArgs {
        id: args.id,
        addr: addr as u64,
        ..Default::default()
    };
    // SAFETY: the mapping at `addr` is `plain`, which is never touched again if this unmaps it.
    let result = unsafe { cmamap::raw::unmap_free(dev.as_fd(), &free) };
    if result.is_ok() {
        std::mem::forget(plain);
        fail!("UNMAP_FREE unmapped a plain mmap because ALLOC_MAP once used its address");
    }
    ensure_eq!(
        result,
        Err(Errno::EINVAL),
        "UNMAP_FREE of a plain mmap at the old address"
    );
    ensure_eq!(plain.read(0), 0x3c, "byte in the plain mapping");
    drop(plain);
    dev.free(args.id)?;
    pass()
}

pub fn unmap_free_after_free_keeps_mapping(ctx: &Ctx) -> TestResult {
    let len = 2 * ctx.page;
    let dev = ctx.open()?;
    let mut args = cmamap::AllocRequest::new(len as u64).to_args();
    args.prot = (libc::PROT_READ | libc::PROT_WRITE) as u32;
    cmamap::raw::alloc_map(dev.as_fd(), &mut args).step("ALLOC_MAP")?;
    let mapping = Region::adopt(args.addr as usize, len);
    mapping.write(ctx.page, 0x5d);
    dev.free(args.id)?;
    let free = abi::FreeArgs {
        id: args.id,
        addr: args.addr,
        ..Default::default()
    };
    // SAFETY: if the driver wrongly unmaps `mapping`, the test fails before touching it again.
    let result = unsafe { cmamap::raw::unmap_free(dev.as_fd(), &free) };
    let still_mapped = device_mapping_count()? == 1;
    if !still_mapped {
        std::mem::forget(mapping);
        fail!("UNMAP_FREE of a freed block unmapped its mapping ({result:?})");
    }
    ensure_eq!(result, Err(Errno::ENOENT), "UNMAP_FREE of a freed block");
    ensure_eq!(
        mapping.read(ctx.page),
        0x5d,
        "byte in the mapping after the refusal"
    );
    drop(mapping);
    pass()
}

/// A thread's state letter and minor faults, from `/proc/self/task/TID/stat` (`path`).
/// Reads with raw calls into a stack buffer: while a race is staged, nothing may allocate,
/// since growing the heap takes the mmap lock.
fn thread_state(path: &std::ffi::CStr) -> (char, u64) {
    let mut buf = [0u8; 1024];
    // SAFETY: A valid C path; the descriptor is closed below.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY) };
    if fd < 0 {
        return ('?', 0);
    }
    // SAFETY: `buf` is writable for its length.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    // SAFETY: Ours to close.
    unsafe { libc::close(fd) };
    let text = std::str::from_utf8(&buf[..n.max(0) as usize]).unwrap_or("");
    // Fields after the parenthesised name: state is the 3rd, minflt the 10th.
    let rest = text.rsplit_once(')').map_or("", |(_, rest)| rest);
    let mut fields = rest.split_whitespace();
    let state = fields.next().and_then(|f| f.chars().next()).unwrap_or('?');
    let minflt = fields.nth(6).and_then(|f| f.parse().ok()).unwrap_or(0);
    (state, minflt)
}

/// The `/proc` stat path of thread `tid` of this process.
fn stat_path(tid: i32) -> std::ffi::CString {
    std::ffi::CString::new(format!("/proc/self/task/{tid}/stat")).expect("no NUL in a path")
}

/// Spins until `flag` is set.
fn wait_for(flag: &std::sync::atomic::AtomicBool) {
    while !flag.load(std::sync::atomic::Ordering::SeqCst) {
        std::thread::yield_now();
    }
}

/// A FREE of the block that UNMAP_FREE is unmapping, landing between its checks and its
/// unpublish: once UNMAP_FREE unmapped and then failed with ENOENT. Staged deterministically:
/// a thread populating a large anonymous region holds the mmap lock for reading, so
/// UNMAP_FREE, past its checks, waits in `vm_munmap` for the write side; the FREE runs then.
/// Whatever the outcome, a refused UNMAP_FREE must leave the mapping, and a successful one
/// must remove it and the block.
pub fn unmap_free_racing_free_changes_nothing(ctx: &Ctx) -> TestResult {
    use std::sync::atomic::{AtomicBool, AtomicI32, Ordering::SeqCst};
    let len = 2 * ctx.page;
    let dev = ctx.open()?;
    let mut args = cmamap::AllocRequest::new(len as u64).to_args();
    args.prot = (libc::PROT_READ | libc::PROT_WRITE) as u32;
    cmamap::raw::alloc_map(dev.as_fd(), &mut args).step("ALLOC_MAP")?;
    let mapping = Region::adopt(args.addr as usize, len);
    mapping.write(ctx.page, 0x5e);
    // Big enough that populating it with 4 KiB pages under TCG takes far longer than the
    // steps below.
    let big = 256 << 20;
    let region = Region::anonymous(big, false).step("anonymous region")?;
    // SAFETY: The region is ours: 4 KiB pages (the guest's THP would take 128 faults).
    unsafe { libc::madvise(region.addr as *mut _, big, libc::MADV_NOHUGEPAGE) };
    let (holder_tid, holder_go, holder_done) = (
        AtomicI32::new(0),
        AtomicBool::new(false),
        AtomicBool::new(false),
    );
    let (unmapper_tid, unmapper_go) = (AtomicI32::new(0), AtomicBool::new(false));
    let free = abi::FreeArgs {
        id: args.id,
        addr: args.addr,
        ..Default::default()
    };
    let (unmapped, freed, staged) = std::thread::scope(|scope| -> Result<_, Failure> {
        // Both threads exist (their stacks mapped) before anything holds the lock.
        let holder = scope.spawn(|| {
            // SAFETY: gettid has no preconditions.
            holder_tid.store(unsafe { libc::gettid() }, SeqCst);
            wait_for(&holder_go);
            // SAFETY: The region is ours and anonymous; populating only faults it in.
            unsafe { libc::madvise(region.addr as *mut _, big, libc::MADV_POPULATE_WRITE) };
            holder_done.store(true, SeqCst);
        });
        let unmapper = scope.spawn(|| {
            // SAFETY: gettid has no preconditions.
            unmapper_tid.store(unsafe { libc::gettid() }, SeqCst);
            wait_for(&unmapper_go);
            // SAFETY: The test touches the mapping again only after checking /proc/self/maps.
            unsafe { cmamap::raw::unmap_free(dev.as_fd(), &free) }
        });
        while holder_tid.load(SeqCst) == 0 || unmapper_tid.load(SeqCst) == 0 {
            std::thread::yield_now();
        }
        let (holder_stat, unmapper_stat) = (
            stat_path(holder_tid.load(SeqCst)),
            stat_path(unmapper_tid.load(SeqCst)),
        );
        holder_go.store(true, SeqCst);
        // Wait until the holder is well into populating: it holds the mmap lock now.
        while thread_state(&holder_stat).1 < 2000 && !holder_done.load(SeqCst) {
            std::thread::yield_now();
        }
        unmapper_go.store(true, SeqCst);
        // Wait until UNMAP_FREE sleeps on the mmap lock (D), past its checks.
        while thread_state(&unmapper_stat).0 != 'D'
            && !unmapper.is_finished()
            && !holder_done.load(SeqCst)
        {
            std::thread::yield_now();
        }
        let freed = cmamap::raw::free(
            dev.as_fd(),
            &abi::FreeArgs {
                id: args.id,
                ..Default::default()
            },
        );
        let staged = !holder_done.load(SeqCst) && !unmapper.is_finished();
        let unmapped = unmapper
            .join()
            .map_err(|_| Failure::new("UNMAP_FREE thread panicked"))?;
        holder
            .join()
            .map_err(|_| Failure::new("populate thread panicked"))?;
        Ok((unmapped, freed, staged))
    })?;
    drop(region);
    let still_mapped = device_mapping_count()? == 1;
    match unmapped {
        Ok(()) => {
            ensure!(
                !still_mapped,
                "UNMAP_FREE succeeded but the mapping is still there"
            );
            std::mem::forget(mapping);
        }
        Err(errno) => {
            if !still_mapped {
                std::mem::forget(mapping);
                fail!(
                    "UNMAP_FREE was refused ({errno}) but unmapped the block's mapping \
                     (the racing FREE gave {freed:?})"
                );
            }
            ensure_eq!(
                mapping.read(ctx.page),
                0x5e,
                "byte in the mapping after the refusal"
            );
            drop(mapping);
        }
    }
    ensure!(
        staged,
        "the FREE did not land while UNMAP_FREE waited (UNMAP_FREE {unmapped:?}, FREE {freed:?}): \
         the race was not staged"
    );
    ensure!(
        unmapped.is_ok() != freed.is_ok(),
        "exactly one of UNMAP_FREE ({unmapped:?}) and FREE ({freed:?}) may free the block"
    );
    pass()
}

/// Mappings of the device in this process.
fn device_mapping_count() -> Result<usize, Failure> {
    let maps = std::fs::read_to_string("/proc/self/maps").step("read /proc/self/maps")?;
    Ok(maps.lines().filter(|l| l.ends_with(" /dev/cmamap")).count())
}

pub fn huge_pmd_split_paths(ctx: &Ctx) -> TestResult {
    const HUGE: usize = cmamap::HUGE_SIZE;
    let p = ctx.page;
    let len = 2 * HUGE;
    let dev = ctx.open()?;
    let block = match dev.alloc(&AllocRequest::new(len as u64).strategy(Strategy::Huge)) {
        Ok(block) => block,
        Err(err) if crate::ctx::is_cma_shortage(err.errno()) => {
            return skip(format!("CMA has no 2 MiB-aligned 4 MiB: {err}"));
        }
        Err(err) => return Err(err.into()),
    };
    // The library places huge mappings 2 MiB-aligned; the region takes the range over.
    let mapping = block.map(cmamap::Prot::ReadWrite)?.detach();
    let region = Region::adopt(mapping.addr(), len);
    std::mem::forget(mapping);
    ensure_eq!(region.addr % HUGE, 0, "huge mapping address alignment");
    let data = pattern::generate(len, 45, 0);
    crate::ctx::minor_fault_count()?;
    // One fault per PMD: touching every page of each 2 MiB faults once.
    for half in 0..2 {
        let before = crate::ctx::minor_fault_count()?;
        for page in 0..HUGE / p {
            region.write(half * HUGE + page * p, 1);
        }
        let faults = crate::ctx::minor_fault_count()? - before;
        ensure_eq!(faults, 1, "faults touching every page of PMD {half}");
    }
    region.copy_in(0, &data);

    // Cut a page out of the first PMD: the PMD entry goes, the rest refaults with PTEs.
    region.munmap(HUGE / 2, p).step("munmap inside a PMD")?;
    check_region(&region, 0, HUGE / 2, 45, 0, "first PMD below the hole")?;
    let after_hole = HUGE / 2 + p;
    check_region(
        &region,
        after_hole,
        HUGE - after_hole,
        45,
        after_hole as u64,
        "first PMD above the hole",
    )?;
    // A read-only stretch inside the second PMD splits it too.
    let second = Region::adopt(region.addr + HUGE, HUGE);
    let piece = Region::adopt(region.addr + HUGE + 4 * p, 2 * p);
    piece.mprotect_rw(false)?;
    std::mem::forget(piece);
    check_region(
        &second,
        0,
        HUGE,
        45,
        HUGE as u64,
        "second PMD after mprotect",
    )?;
    ensure_eq!(
        second.madvise(0, HUGE, libc::MADV_DONTNEED),
        Err(Errno::EINVAL),
        "MADV_DONTNEED on the huge PFN map"
    );
    // A child sees the same memory through its copies, split or not.
    crate::child::run(|| {
        check_region(&region, 0, HUGE / 2, 45, 0, "child, first PMD")?;
        check_region(&second, 0, HUGE, 45, HUGE as u64, "child, second PMD")?;
        Ok(())
    })?;
    // Move the second half to another 2 MiB-aligned address: the data goes with it.
    let target = region::reserve(2 * HUGE)?;
    let aligned = target.addr.next_multiple_of(HUGE);
    let moved = Region::adopt(second.addr, 4 * p)
        .mremap(4 * p, libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED, aligned)
        .step("mremap of the second PMD's first pages")?;
    ensure_eq!(moved, aligned, "mremap target");
    check_region(
        &target,
        aligned - target.addr,
        4 * p,
        45,
        HUGE as u64,
        "moved pages",
    )?;
    let mut byte = [0u8];
    block.pread((HUGE + 3 * p) as u64, &mut byte)?;
    ensure_eq!(
        byte[0],
        pattern::byte_at(45, (HUGE + 3 * p) as u64),
        "pread after the move"
    );
    std::mem::forget(second);
    drop(target);
    drop(region);
    ensure_eq!(
        block.info()?.map_count,
        0,
        "map_count after unmapping everything"
    );
    block.free()?;
    pass()
}
