//! Sharing a block with another process, as `cmamap share` and `cmamap-demo` do it: a forked
//! child reaches the parent's file-owned block through the inherited open file, and an
//! unrelated process (this program run again) reaches a persistent block through its own.

use std::fmt;
use std::io;
use std::path::Path;
use std::process::Command;

use cmamap::{AllocRequest, Block, Device, Mapping, Prot, Strategy};
use cmamap_testkit::pattern::{self, Mismatch};
use cmamap_testkit::process;

/// Why a child could not show that both processes see each other's writes.
#[derive(Debug)]
pub enum ShareError {
    /// `fork` failed.
    Fork(io::Error),
    /// `waitpid` failed.
    Wait(io::Error),
    /// The child failed; its own words.
    Child(String),
    /// The parent does not see the child's pattern.
    Parent(Mismatch),
}

impl fmt::Display for ShareError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShareError::Fork(err) => write!(f, "fork: {err}"),
            ShareError::Wait(err) => write!(f, "waitpid: {err}"),
            ShareError::Child(message) => f.write_str(message),
            ShareError::Parent(mismatch) => write!(f, "parent: the child's pattern: {mismatch}"),
        }
    }
}

impl std::error::Error for ShareError {}

/// With `mapping` (the whole of `block`) holding the pattern of `seed`, a forked child maps
/// the block itself, checks that pattern and writes the one of `reply`; then the parent checks
/// that it sees the reply. `narrate` runs in the child after its write. Returns the child's pid.
pub fn reply_from_child(
    block: &Block<'_>,
    mapping: &Mapping<'_>,
    (seed, reply): (u64, u64),
    narrate: impl FnOnce(&Mapping<'_>),
) -> Result<i32, ShareError> {
    let child = process::spawn_child(|| {
        let mut own = block.map(Prot::ReadWrite).map_err(|e| e.to_string())?;
        pattern::check(own.as_slice(), seed, 0)
            .map_err(|m| format!("child: the parent's pattern: {m}"))?;
        pattern::fill(own.as_mut_slice(), reply, 0);
        narrate(&own);
        Ok(())
    })
    .map_err(ShareError::Fork)?;
    let pid = child.pid();
    child
        .wait()
        .map_err(ShareError::Wait)?
        .map_err(ShareError::Child)?;
    pattern::check(mapping.as_slice(), reply, 0).map_err(ShareError::Parent)?;
    Ok(pid)
}

/// A persistent (module-owned) block, freed when the handle drops so that no way out leaves
/// it behind.
pub fn alloc_persistent<'dev>(
    dev: &'dev Device,
    size: u64,
    strategy: Strategy,
) -> cmamap::Result<Block<'dev>> {
    let mut block = dev.alloc(&AllocRequest::new(size).strategy(strategy).persist(true))?;
    block.set_free_on_drop(true);
    Ok(block)
}

/// Writes the pattern of `seed` over the whole block through a mapping of its own.
pub fn write_pattern(block: &Block<'_>, seed: u64) -> cmamap::Result<()> {
    let mut mapping = block.map(Prot::ReadWrite)?;
    pattern::fill(mapping.as_mut_slice(), seed, 0);
    Ok(())
}

/// This program again, as an unrelated process that opens `device` itself.
pub fn this_program_on(device: &Path) -> io::Result<Command> {
    let exe = std::env::current_exe()?;
    let mut command = Command::new(exe);
    command.arg("--device").arg(device);
    Ok(command)
}
