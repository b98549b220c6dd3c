//! get_user_pages: vmsplice pins the pages of a page-strategy mapping, and must fail with
//! EFAULT on the PFN-mapped strategies.

use std::fs::File;
use std::io::{IoSlice, Read};
use std::os::fd::AsFd;

use cmamap::{pattern, AllocRequest, Errno, Prot, Strategy};
use nix::fcntl::{vmsplice, SpliceFFlags};

use crate::check::{expect_errno, pass, Failure, Step, TestResult};
use crate::ctx::Ctx;

pub fn vmsplice_gup(ctx: &Ctx, strategy: Strategy) -> TestResult {
    // Four pages fit the default pipe (16 slots), so vmsplice never waits for a reader.
    let size = 4 * ctx.page;
    let dev = ctx.open()?;
    let block = dev.alloc(&AllocRequest::new(size as u64).strategy(strategy))?;
    let mut mapping = block.map(Prot::ReadWrite)?;
    pattern::fill(mapping.as_mut_slice(), 71, 0);
    let (reader, writer) = nix::unistd::pipe().step("pipe")?;
    let spliced = vmsplice(
        writer.as_fd(),
        &[IoSlice::new(mapping.as_slice())],
        SpliceFFlags::empty(),
    );
    if strategy.supports_gup() {
        let spliced = spliced.step("vmsplice of a page-strategy mapping")?;
        ensure_eq!(spliced, size, "bytes spliced");
        drop(writer);
        // Draining the pipe drops its page references before the block goes.
        let mut piped = Vec::new();
        File::from(reader)
            .read_to_end(&mut piped)
            .step("read the pipe")?;
        ensure_eq!(piped.len(), size, "bytes read from the pipe");
        pattern::check(&piped, 71, 0)
            .map_err(|m| Failure::new(format!("pages pinned by vmsplice: {m}")))?;
    } else {
        expect_errno(
            spliced,
            Errno::EFAULT,
            &format!("vmsplice of a {strategy} mapping"),
        )?;
    }
    drop(mapping);
    block.free()?;
    pass()
}
