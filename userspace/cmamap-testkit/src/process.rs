//! Process plumbing for sharing blocks: running a closure in a forked child and passing a
//! descriptor with `SCM_RIGHTS`.
//!
//! A forked child shares the parent's open file of `/dev/cmamap`, and so its file-owned blocks.
//! The child therefore leaves with `_exit`, never running the destructors of the parent's
//! handles, which would free the parent's blocks.

use std::fs::File;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::panic::{self, AssertUnwindSafe};

use nix::sys::socket::{self, ControlMessage, ControlMessageOwned, MsgFlags};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{ForkResult, Pid};

/// How a child ended: `Ok` when its closure succeeded, otherwise why not.
pub type Verdict = Result<(), String>;

/// True when the calling process has exactly one thread, which makes `fork` safe for arbitrary
/// code in the child.
pub fn is_single_threaded() -> bool {
    std::fs::read_dir("/proc/self/task").is_ok_and(|tasks| tasks.count() == 1)
}

/// A forked child running a closure; [`Child::wait`] collects its verdict. Dropping it
/// without waiting kills and reaps the child, so that an early return cannot leave a child
/// blocked forever on a parent that has moved on.
#[derive(Debug)]
pub struct Child {
    pid: Pid,
    verdict: File,
    reaped: bool,
}

impl Child {
    /// The child's process id.
    pub fn pid(&self) -> i32 {
        self.pid.as_raw()
    }

    /// Waits for the child and returns what its closure reported.
    pub fn wait(mut self) -> io::Result<Verdict> {
        // Read to EOF first: the child may write more than a pipe holds before it exits.
        let mut message = String::new();
        let read = self.verdict.read_to_string(&mut message);
        let status = waitpid(self.pid, None).map_err(io::Error::from)?;
        self.reaped = true;
        read?;
        Ok(match status {
            WaitStatus::Exited(_, 0) if message.is_empty() => Ok(()),
            WaitStatus::Exited(_, code) if message.is_empty() => {
                Err(format!("child exited with status {code}"))
            }
            WaitStatus::Exited(..) => Err(message),
            WaitStatus::Signaled(_, signal, _) => Err(format!("child killed by {signal:?}")),
            other => Err(format!("child ended unexpectedly: {other:?}")),
        })
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = nix::sys::signal::kill(self.pid, nix::sys::signal::Signal::SIGKILL);
            let _ = waitpid(self.pid, None);
        }
    }
}

/// Forks; the child runs `f` and `_exit`s, reporting `f`'s error (or panic) to the parent.
///
/// Returns an error when the process has more than one thread, since a
/// child of a threaded process may only call async-signal-safe functions.
pub fn spawn_child<F>(f: F) -> io::Result<Child>
where
    F: FnOnce() -> Verdict,
{
    if !is_single_threaded() {
        return Err(io::Error::other(
            "fork helper needs a single-threaded process",
        ));
    }
    // Buffered output would be written twice, once by each process.
    let _ = io::stdout().flush();
    let _ = io::stderr().flush();
    let (reader, writer) = nix::unistd::pipe().map_err(io::Error::from)?;
    // SAFETY: the process is single-threaded (checked above), so the child may run any code.
    match unsafe { nix::unistd::fork() }.map_err(io::Error::from)? {
        ForkResult::Parent { child } => {
            drop(writer);
            Ok(Child {
                pid: child,
                verdict: File::from(reader),
                reaped: false,
            })
        }
        ForkResult::Child => {
            drop(reader);
            let outcome = panic::catch_unwind(AssertUnwindSafe(f));
            let (code, message) = match outcome {
                Ok(Ok(())) => (0, String::new()),
                Ok(Err(message)) if message.is_empty() => (1, "child failed".to_owned()),
                Ok(Err(message)) => (1, message),
                Err(payload) => (2, format!("child panicked: {}", panic_message(&*payload))),
            };
            let mut writer = File::from(writer);
            let _ = writer.write_all(message.as_bytes());
            drop(writer);
            let _ = io::stdout().flush();
            // SAFETY: _exit ends the process without running destructors of handles copied from
            // the parent, which would otherwise free the parent's blocks.
            unsafe { libc::_exit(code) }
        }
    }
}

/// Forks, runs `f` in the child, and waits for its verdict.
pub fn run_in_child<F>(f: F) -> io::Result<Verdict>
where
    F: FnOnce() -> Verdict,
{
    spawn_child(f)?.wait()
}

/// The text of a panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "non-text panic payload".to_owned()
    }
}

/// Sends `fd` and the bytes `payload` (at least one byte, so the message is not empty) over a
/// Unix socket.
pub fn send_fd(socket: BorrowedFd<'_>, fd: BorrowedFd<'_>, payload: &[u8]) -> io::Result<()> {
    if payload.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "send_fd needs a non-empty payload",
        ));
    }
    let fds = [fd.as_raw_fd()];
    let cmsgs = [ControlMessage::ScmRights(&fds)];
    let iov = [IoSlice::new(payload)];
    socket::sendmsg::<()>(socket.as_raw_fd(), &iov, &cmsgs, MsgFlags::empty(), None)
        .map_err(io::Error::from)?;
    Ok(())
}

/// Receives one descriptor and up to `payload.len()` bytes sent by [`send_fd`]; returns the
/// descriptor and the number of payload bytes.
pub fn recv_fd(socket: BorrowedFd<'_>, payload: &mut [u8]) -> io::Result<(OwnedFd, usize)> {
    let mut cmsg_buffer = nix::cmsg_space!([RawFd; 1]);
    let mut iov = [IoSliceMut::new(payload)];
    let msg = socket::recvmsg::<()>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg_buffer),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(io::Error::from)?;
    let bytes = msg.bytes;
    let mut received: Vec<OwnedFd> = Vec::new();
    for cmsg in msg.cmsgs().map_err(io::Error::from)? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            for fd in fds {
                // SAFETY: the kernel just installed `fd` in our table for this message; nothing
                // else knows it, so it is ours to own and close.
                received.push(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    let mut received = received.into_iter();
    let fd = received.next().ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidData, "message carried no descriptor")
    })?;
    Ok((fd, bytes))
}
