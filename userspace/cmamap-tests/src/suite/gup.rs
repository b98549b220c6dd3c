//! get_user_pages: vmsplice pins the pages of a page-strategy mapping, and must fail with
//! EFAULT on the PFN-mapped strategies.

use std::fs::File;
use std::io::{IoSlice, Read};
use std::os::fd::AsFd;

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
