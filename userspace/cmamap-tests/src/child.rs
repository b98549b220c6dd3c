//! Running part of a test in a forked child and collecting its verdict.

use cmamap_testkit::process;

use crate::check::Failure;

/// A running child; [`wait`] turns its verdict into a test result.
pub use cmamap_testkit::process::Child;

/// Forks a child that runs `f`; the child `_exit`s, so the parent's handles are never dropped
/// (and never free the parent's blocks) in the child.
pub fn spawn<F>(f: F) -> Result<Child, Failure>
where
    F: FnOnce() -> Result<(), Failure>,
{
    process::spawn_child(|| f().map_err(|failure| failure.0))
        .map_err(|err| Failure::new(format!("fork: {err}")))
}

/// Waits for `child`; its failure becomes this test's.
pub fn wait(child: Child) -> Result<(), Failure> {
    match child.wait() {
        Ok(Ok(())) => Ok(()),
        Ok(Err(message)) => Err(Failure::new(format!("in child: {message}"))),
        Err(err) => Err(Failure::new(format!("waitpid: {err}"))),
    }
}

/// Runs `f` in a forked child and waits for it.
pub fn run<F>(f: F) -> Result<(), Failure>
where
    F: FnOnce() -> Result<(), Failure>,
{
    wait(spawn(f)?)
}
