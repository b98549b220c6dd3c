//! Debuggers reach the buffers: `/proc/PID/mem` and ptrace (and so gdb) read and write every
//! strategy's mappings. get_user_pages cannot reach PFN maps (remap, fault, huge), so the
//! kernel asks the VMA's `access` handler; before it existed they gave EIO.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;

use cmamap::{AllocRequest, Prot, Strategy};
use cmamap_testkit::pattern;
use nix::sys::ptrace;
use nix::sys::signal::{self, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult};

use crate::check::{pass, Failure, Step, TestResult};
use crate::ctx::Ctx;

/// Reads `len` bytes at address `addr` of this process through `/proc/self/mem`.
fn read_mem(addr: usize, len: usize) -> std::io::Result<Vec<u8>> {
    let mem = OpenOptions::new().read(true).open("/proc/self/mem")?;
    let mut buf = vec![0u8; len];
    mem.read_exact_at(&mut buf, addr as u64)?;
    Ok(buf)
}

fn write_mem(addr: usize, data: &[u8]) -> std::io::Result<()> {
    let mem = OpenOptions::new().write(true).open("/proc/self/mem")?;
    mem.write_all_at(data, addr as u64)
}

/// `/proc/self/mem` reads and writes a partial mapping (pages 1 to 3 of a 4-page block), across
/// page edges, a split of it, and the block after FREE while it is still mapped; a read-only
/// mapping refuses the write.
pub fn proc_mem_reaches_mappings(ctx: &Ctx, strategy: Strategy) -> TestResult {
    let dev = ctx.open()?;
    let page = ctx.page;
    let block = dev.alloc(&AllocRequest::new(ctx.pages(4)).strategy(strategy))?;
    let data = pattern::generate(4 * page, 41, 0);
    block.pwrite(0, &data)?;
    let mapping = block
        .map_range(ctx.pages(1), 3 * page, Prot::ReadWrite)?
        .detach();
    let addr = mapping.addr();
    let seen = read_mem(addr, 3 * page).step("read /proc/self/mem of the mapping")?;
    ensure!(
        seen == data[page..],
        "/proc/self/mem shows other bytes than the block's pages 1-3"
    );
    // A write across the edge of the mapping's first two pages.
    let at = page - 8;
    write_mem(addr + at, &[0xd5; 16]).step("write /proc/self/mem across a page edge")?;
    let mut back = vec![0u8; 16];
    block.pread(ctx.pages(1) + at as u64, &mut back)?;
    ensure!(
        back == [0xd5; 16],
        "pread after a /proc/self/mem write: {back:02x?}"
    );
    ensure!(
        mapping.as_slice()[at..at + 16] == [0xd5; 16],
        "the mapping does not show the /proc/self/mem write"
    );
    // Split: the middle page goes, the hole reads as nothing, the rest still reads.
    // SAFETY: the page lies inside `mapping`, which is detached and not read there again.
    unsafe { libc::munmap((addr + page) as *mut libc::c_void, page) };
    ensure!(
        read_mem(addr + page, 8).is_err(),
        "/proc/self/mem read a hole"
    );
    let last = read_mem(addr + 2 * page, page).step("read the mapping's last page")?;
    ensure!(
        last == data[3 * page..],
        "/proc/self/mem of the last page after a split"
    );
    // Freed but mapped: the memory lives on for its mappings, and for the debugger.
    block.free()?;
    let first = read_mem(addr, 8).step("read /proc/self/mem after FREE")?;
    ensure!(
        first == data[page..page + 8],
        "/proc/self/mem after FREE: {first:02x?}"
    );
    // SAFETY: the rest of `mapping`'s range is ours and unused from here.
    unsafe {
        libc::munmap(addr as *mut libc::c_void, page);
        libc::munmap((addr + 2 * page) as *mut libc::c_void, page);
    }
    // Read-only: a debugger's write is refused, as a write fault would be.
    let block = dev.alloc(&AllocRequest::new(ctx.pages(1)).strategy(strategy))?;
    let readonly = block.map(Prot::Read)?;
    ensure!(
        write_mem(readonly.addr(), &[1]).is_err(),
        "/proc/self/mem wrote into a read-only mapping"
    );
    ensure!(
        readonly.as_slice()[0] == 0,
        "the refused write changed the block"
    );
    pass()
}

/// Another process reads and writes a mapping with ptrace (PEEKDATA, POKEDATA), as gdb does.
pub fn ptrace_peeks_and_pokes(ctx: &Ctx, strategy: Strategy) -> TestResult {
    let dev = ctx.open()?;
    let block = dev.alloc(&AllocRequest::new(ctx.pages(2)).strategy(strategy))?;
    let mut mapping = block.map(Prot::ReadWrite)?;
    pattern::fill(mapping.as_mut_slice(), 43, 0);
    let word_at = mapping.addr() + ctx.page + 16;
    let expected = u64::from_ne_bytes(
        mapping.as_slice()[ctx.page + 16..ctx.page + 24]
            .try_into()
            .map_err(|_| Failure::new("word"))?,
    );
    // SAFETY: the child only stops itself and then waits to be killed.
    let child = match unsafe { fork() }.step("fork")? {
        ForkResult::Child => loop {
            let _ = signal::raise(Signal::SIGSTOP);
            // SAFETY: pause has no preconditions.
            unsafe { libc::pause() };
        },
        ForkResult::Parent { child } => child,
    };
    let result = (|| {
        waitpid(child, Some(WaitPidFlag::WUNTRACED)).step("wait for the child to stop")?;
        ptrace::attach(child).step("PTRACE_ATTACH")?;
        match waitpid(child, None).step("wait for the attach")? {
            WaitStatus::Stopped(..) => {}
            other => return Err(Failure::new(format!("after PTRACE_ATTACH: {other:?}"))),
        }
        let word = ptrace::read(child, word_at as ptrace::AddressType).step("PTRACE_PEEKDATA")?;
        ensure_eq!(word as u64, expected, "PEEKDATA of the child's mapping");
        ptrace::write(
            child,
            word_at as ptrace::AddressType,
            0x1122_3344_5566_7788_u64 as i64,
        )
        .step("PTRACE_POKEDATA")?;
        Ok(())
    })();
    let _ = signal::kill(child, Signal::SIGKILL);
    let _ = waitpid(child, None);
    result?;
    // The child's mapping is a copy of ours (fork copies PFN maps): the parent sees the poke.
    let seen = u64::from_ne_bytes(
        mapping.as_slice()[ctx.page + 16..ctx.page + 24]
            .try_into()
            .map_err(|_| Failure::new("word"))?,
    );
    ensure_eq!(
        seen,
        0x1122_3344_5566_7788,
        "the parent's view of the poked word"
    );
    pass()
}
