//! get_user_pages: vmsplice pins the pages of a page-strategy mapping, and must fail with
//! EFAULT on the PFN-mapped strategies.

use std::fs::File;
use std::io::{IoSlice, Read};
use std::os::fd::AsFd;

use cmamap::{pattern, AllocRequest, Errno, Mapping, Prot, Strategy};
use nix::fcntl::{vmsplice, SpliceFFlags};

use crate::check::{expect_errno, pass, Failure, Step, TestResult};
use crate::ctx::Ctx;

/// vmsplices `mapping`, which holds pattern `seed`, into a pipe. When `pinnable` the pipe must
/// deliver the pattern; otherwise vmsplice must fail with `EFAULT`. `what` names the mapping.
///
/// The mapping must fit the default pipe (16 pages), so that vmsplice never waits for a reader.
pub fn check_vmsplice(
    mapping: &Mapping<'_>,
    seed: u64,
    pinnable: bool,
    what: &str,
) -> Result<(), Failure> {
    let size = mapping.len();
    let (reader, writer) = nix::unistd::pipe().step("pipe")?;
    let spliced = vmsplice(
        writer.as_fd(),
        &[IoSlice::new(mapping.as_slice())],
        SpliceFFlags::empty(),
    );
    if !pinnable {
        return expect_errno(spliced, Errno::EFAULT, &format!("vmsplice of {what}"));
    }
    let spliced = spliced.step(&format!("vmsplice of {what}"))?;
    ensure_eq!(spliced, size, "bytes spliced from {what}");
    drop(writer);
    // Draining the pipe drops its page references before the block goes.
    let mut piped = Vec::new();
    File::from(reader)
        .read_to_end(&mut piped)
        .step("read the pipe")?;
    ensure_eq!(piped.len(), size, "bytes read from the pipe");
    pattern::check(&piped, seed, 0)
        .map_err(|m| Failure::new(format!("pages of {what} pinned by vmsplice: {m}")))
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
