//! get_user_pages: vmsplice pins the pages of a page-strategy mapping, and must fail with
//! EFAULT on the PFN-mapped strategies; a long-term pin (io_uring) fails at once everywhere.

use std::fs::File;
use std::io::{IoSlice, Read};
use std::os::fd::{AsFd, AsRawFd, FromRawFd};

use cmamap::{AllocRequest, Errno, Mapping, Prot, Strategy};
use cmamap_testkit::pattern;
use nix::fcntl::{vmsplice, SpliceFFlags};

use crate::check::{expect_errno, pass, skip, Failure, Step, TestResult};
use crate::ctx::Ctx;

/// vmsplices all of `mapping`, which `what` names, into a new pipe: the pipe's read end (its
/// write end closed), or vmsplice's error.
///
/// The mapping must fit the default pipe (16 pages), so that vmsplice never waits for a reader.
fn vmsplice_to_pipe(mapping: &Mapping<'_>, what: &str) -> Result<Result<File, Errno>, Failure> {
    let (reader, writer) = nix::unistd::pipe().step("pipe")?;
    match vmsplice(
        writer.as_fd(),
        &[IoSlice::new(mapping.as_slice())],
        SpliceFFlags::empty(),
    ) {
        Ok(spliced) => {
            ensure_eq!(spliced, mapping.len(), "bytes spliced from {what}");
            Ok(Ok(File::from(reader)))
        }
        Err(errno) => Ok(Err(errno)),
    }
}

/// Reads the whole pipe and checks that it shows pattern `seed` over `len` bytes; `context`
/// heads the message of a mismatch. Draining the pipe drops its page references.
fn check_pipe(reader: File, len: usize, seed: u64, context: &str) -> Result<(), Failure> {
    let mut piped = Vec::new();
    { reader }.read_to_end(&mut piped).step("read the pipe")?;
    ensure_eq!(piped.len(), len, "bytes read from the pipe");
    pattern::check(&piped, seed, 0).map_err(|m| Failure::new(format!("{context}: {m}")))
}

/// vmsplices `mapping`, which holds pattern `seed`, into a pipe. When `pinnable` the pipe must
/// deliver the pattern; otherwise vmsplice must fail with `EFAULT`. `what` names the mapping.
pub fn check_vmsplice(
    mapping: &Mapping<'_>,
    seed: u64,
    pinnable: bool,
    what: &str,
) -> Result<(), Failure> {
    let spliced = vmsplice_to_pipe(mapping, what)?;
    if !pinnable {
        return expect_errno(spliced, Errno::EFAULT, &format!("vmsplice of {what}"));
    }
    let reader = spliced.step(&format!("vmsplice of {what}"))?;
    // Draining the pipe drops its page references before the block goes.
    check_pipe(
        reader,
        mapping.len(),
        seed,
        &format!("pages of {what} pinned by vmsplice"),
    )
}

pub fn vmsplice_gup(ctx: &Ctx, strategy: Strategy) -> TestResult {
    let size = 4 * ctx.page;
    let dev = ctx.open()?;
    let block = dev.alloc(&AllocRequest::new(size as u64).strategy(strategy))?;
    let mut mapping = block.map(Prot::ReadWrite)?;
    pattern::fill(mapping.as_mut_slice(), 71, 0);
    check_vmsplice(
        &mapping,
        71,
        strategy.supports_gup(),
        &format!("a {strategy} mapping"),
    )?;
    drop(mapping);
    block.free()?;
    pass()
}

/// The debugfs count of pages that wait for an outside reference to go.
pub const DEBUGFS_HELD_PAGES: &str = "/sys/kernel/debug/cmamap/held_pages";

/// Pages of freed blocks that the driver holds back because something else references them.
pub fn held_pages() -> Result<u64, Failure> {
    let text = std::fs::read_to_string(DEBUGFS_HELD_PAGES).step("read debugfs held_pages")?;
    text.trim()
        .parse()
        .map_err(|e| Failure::new(format!("{DEBUGFS_HELD_PAGES} holds {text:?}: {e}")))
}

/// Waits up to 5 s for [`held_pages`] to come down to `target`; the driver retries every
/// 100 ms.
pub fn wait_for_held_pages(target: u64) -> Result<(), Failure> {
    let mut held = held_pages()?;
    for _ in 0..50 {
        if held == target {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        held = held_pages()?;
    }
    fail!("{held} pages still held 5 s after the last outside reference went (want {target})")
}

/// A block of `pages` pages with the page strategy, filled with pattern `seed`, vmspliced into
/// a pipe, unmapped, freed and its file closed: only the pipe still holds its pages. Returns
/// the pipe's read end.
pub fn pin_freed_block(ctx: &Ctx, pages: usize, seed: u64) -> Result<File, Failure> {
    let dev = ctx.open()?;
    let block = dev.alloc(&AllocRequest::new(ctx.pages(pages)).strategy(Strategy::Page))?;
    let mut mapping = block.map(Prot::ReadWrite)?;
    pattern::fill(mapping.as_mut_slice(), seed, 0);
    let reader =
        vmsplice_to_pipe(&mapping, "a page mapping")?.step("vmsplice of a page mapping")?;
    drop(mapping);
    block
        .free()
        .step("FREE of a block whose pages a pipe holds")?;
    drop(dev);
    Ok(reader)
}

/// Reads the whole pipe and checks that it still shows pattern `seed` over `len` bytes.
pub fn drain_pinned(reader: File, len: usize, seed: u64) -> Result<(), Failure> {
    check_pipe(
        reader,
        len,
        seed,
        "a pipe's pages of a freed block were reused before the pipe let go",
    )
}

/// vmsplice references outlive the mapping, the block and its file: the driver must hold the
/// pages back (not hand them to CMA, where the next block would take them) until the pipe lets
/// go, and return them then.
pub fn vmsplice_pins_outlive_free(ctx: &Ctx) -> TestResult {
    if !std::path::Path::new(DEBUGFS_HELD_PAGES).exists() {
        return skip(format!("{DEBUGFS_HELD_PAGES} absent: no debugfs mounted"));
    }
    let pages = 4;
    let held_before = held_pages()?;
    let reader = pin_freed_block(ctx, pages, 73)?;
    ensure_eq!(
        held_pages()?,
        held_before + pages as u64,
        "pages held back while a pipe references them"
    );
    // Blocks allocated now must not get those pages: fill some with another pattern, and the
    // pipe must still read the first.
    let dev = ctx.open()?;
    let mut others = Vec::new();
    for _ in 0..4 {
        let other = dev.alloc(&AllocRequest::new(ctx.pages(pages)).strategy(Strategy::Page))?;
        let mut mapping = other.map(Prot::ReadWrite)?;
        pattern::fill(mapping.as_mut_slice(), 74, 0);
        drop(mapping);
        others.push(other);
    }
    // Several retries pass while the pipe holds on.
    std::thread::sleep(std::time::Duration::from_millis(350));
    ensure_eq!(
        held_pages()?,
        held_before + pages as u64,
        "pages held back after several retries"
    );
    drain_pinned(reader, pages * ctx.page, 73)?;
    wait_for_held_pages(held_before)?;
    for other in others {
        other.free()?;
    }
    pass()
}

/// How long a long-term pin may take before it counts as spinning. A prompt refusal takes
/// milliseconds even under TCG; the kernel's migration loop never ends.
const PIN_BOUND: std::time::Duration = std::time::Duration::from_secs(10);

/// Registers `len` bytes at `addr` as an io_uring fixed buffer (`IORING_REGISTER_BUFFERS`), a
/// long-term pin for writing (`FOLL_LONGTERM | FOLL_WRITE`): `Ok(())`, or the errno. `Err` of
/// the outer result when io_uring itself is missing.
fn io_uring_register_buffer(addr: usize, len: usize) -> Result<Result<(), Errno>, Errno> {
    const IORING_REGISTER_BUFFERS: libc::c_long = 0;
    // `struct io_uring_params` is 120 bytes; all zero asks for defaults.
    let mut params = [0u8; 120];
    // SAFETY: io_uring_setup writes at most `sizeof(struct io_uring_params)` into `params`.
    let ring = unsafe { libc::syscall(libc::SYS_io_uring_setup, 1, params.as_mut_ptr()) };
    if ring < 0 {
        return Err(Errno::last());
    }
    // SAFETY: `ring` is a descriptor we own from here.
    let ring = unsafe { std::os::fd::OwnedFd::from_raw_fd(ring as i32) };
    let iov = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: len,
    };
    // SAFETY: One valid iovec; the kernel only reads it and pins the memory it names.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_io_uring_register,
            ring.as_raw_fd(),
            IORING_REGISTER_BUFFERS,
            &iov as *const libc::iovec,
            1,
        )
    };
    Ok(if ret < 0 { Err(Errno::last()) } else { Ok(()) })
}

/// Runs `pin` in a forked child and waits at most [`PIN_BOUND`] for it: a child still running
/// then is killed (SIGKILL is the only thing that ends the kernel's migration loop) and the
/// test fails.
fn within_bound(what: &str, pin: impl FnOnce() -> Result<(), Failure>) -> Result<(), Failure> {
    let child = crate::child::spawn(pin)?;
    let started = std::time::Instant::now();
    loop {
        // Peek without reaping, so that `wait` still collects the verdict.
        // SAFETY: `info` is a plain out-parameter for waitid.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
        // SAFETY: As above; the child is ours.
        let ret = unsafe { libc::waitid(libc::P_PID, child.pid() as u32, &mut info, flags) };
        ensure!(ret == 0, "waitid: {}", Errno::last());
        // SAFETY: waitid filled `info` (si_pid is 0 while the child runs).
        if unsafe { info.si_pid() } != 0 {
            return crate::child::wait(child);
        }
        if started.elapsed() > PIN_BOUND {
            // Dropping the child kills and reaps it.
            drop(child);
            fail!("{what} had not returned after {PIN_BOUND:?}: the kernel spins on the pin");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A long-term pin (an io_uring fixed buffer) of a mapping in each strategy returns at once:
/// EFAULT on every strategy, where the kernel used to spin for ever on a `page` mapping
/// (CMA pages are not long-term pinnable and the driver's cannot be migrated). Anonymous
/// memory registers, which shows that io_uring itself works here.
pub fn long_term_pin_returns(ctx: &Ctx, strategy: Strategy) -> TestResult {
    let size = 4 * ctx.page;
    let anon = cmamap_testkit::region::Region::anonymous(size, true).step("anonymous buffer")?;
    match io_uring_register_buffer(anon.addr, size) {
        Err(Errno::ENOSYS) => return skip("the kernel has no io_uring"),
        Err(errno) => fail!("io_uring_setup: {errno}"),
        Ok(registered) => registered.step("io_uring buffer registration of anonymous memory")?,
    }
    let dev = ctx.open()?;
    let block = dev.alloc(&AllocRequest::new(size as u64).strategy(strategy))?;
    let mut mapping = block.map(Prot::ReadWrite)?;
    pattern::fill(mapping.as_mut_slice(), 75, 0);
    let (addr, len) = (mapping.addr(), mapping.len());
    let what = format!("io_uring buffer registration of a {strategy} mapping");
    within_bound(&what, || {
        let registered = io_uring_register_buffer(addr, len).step("io_uring_setup")?;
        expect_errno(registered, Errno::EFAULT, &what)
    })?;
    // The refusal left the mapping as it was.
    pattern::check(mapping.as_slice(), 75, 0)
        .map_err(|m| Failure::new(format!("after the refused pin: {m}")))?;
    drop(mapping);
    block.free()?;
    pass()
}
