//! Sharing blocks between processes: fork (inherited file) and SCM_RIGHTS (passed file).

use std::os::fd::AsFd;

use cmamap::{AllocRequest, Device, Info, Owner, Prot, Strategy};
use cmamap_testkit::pattern;
use cmamap_testkit::process::{recv_fd, send_fd};
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};

use crate::check::{pass, Failure, Step, TestResult};
use crate::child;
use crate::ctx::Ctx;

pub fn fork_shares_block(ctx: &Ctx, strategy: Strategy) -> TestResult {
    let dev = ctx.open()?;
    let size = ctx.pages(8);
    let block = dev.alloc(&AllocRequest::new(size).strategy(strategy))?;
    let mut parent_map = block.map(Prot::ReadWrite)?;
    pattern::fill(parent_map.as_mut_slice(), 31, 0);
    let parent_view = &parent_map;

    child::run(|| {
        pattern::check(parent_view.as_slice(), 31, 0)
            .map_err(|m| Failure::new(format!("inherited mapping: {m}")))?;
        let info = block.info().step("INFO through the inherited file")?;
        ensure_eq!(info.owner, Owner::ThisFile, "owner seen by the child");
        let mut own = block.map(Prot::ReadWrite).step("the child's own mmap")?;
        pattern::check(own.as_slice(), 31, 0)
            .map_err(|m| Failure::new(format!("the child's own mapping: {m}")))?;
        pattern::fill(own.as_mut_slice(), 32, 0);
        Ok(())
    })?;

    pattern::check(parent_map.as_slice(), 32, 0)
        .map_err(|m| Failure::new(format!("the child's writes seen by the parent: {m}")))?;
    // The child's exit closed only its copy of the descriptor.
    block.info().step("INFO after the child exited")?;
    drop(parent_map);
    block.free()?;
    pass()
}

/// What the parent sends along with the descriptor.
const MESSAGE_LEN: usize = 4 + 8 + 8;

fn encode(id: u32, offset: u64, size: u64) -> [u8; MESSAGE_LEN] {
    let mut message = [0u8; MESSAGE_LEN];
    message[..4].copy_from_slice(&id.to_le_bytes());
    message[4..12].copy_from_slice(&offset.to_le_bytes());
    message[12..].copy_from_slice(&size.to_le_bytes());
    message
}

fn decode(message: &[u8; MESSAGE_LEN]) -> (u32, u64, u64) {
    let id = u32::from_le_bytes(message[..4].try_into().unwrap());
    let offset = u64::from_le_bytes(message[4..12].try_into().unwrap());
    let size = u64::from_le_bytes(message[12..].try_into().unwrap());
    (id, offset, size)
}

pub fn scm_rights_passes_file(ctx: &Ctx) -> TestResult {
    let (parent_sock, child_sock) = socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .step("socketpair")?;

    // Forked before the device is opened: the child reaches it only through the message.
    let receiver = child::spawn(|| {
        let mut message = [0u8; MESSAGE_LEN];
        let (fd, len) = recv_fd(child_sock.as_fd(), &mut message).step("recvmsg")?;
        ensure_eq!(len, MESSAGE_LEN, "message length");
        let (id, offset, size) = decode(&message);
        let dev = Device::from_fd(fd);
        let info = dev.info(id).step("INFO through the received file")?;
        ensure_eq!(
            info.owner,
            Owner::ThisFile,
            "owner seen through the received file"
        );
        let mut mapping = dev
            .map(offset, size as usize, Prot::ReadWrite)
            .step("mmap through the received file")?;
        pattern::check(mapping.as_slice(), 41, 0)
            .map_err(|m| Failure::new(format!("sender's data: {m}")))?;
        pattern::fill(mapping.as_mut_slice(), 42, 0);
        Ok(())
    })?;
    drop(child_sock);

    let dev = ctx.open()?;
    let block = dev.alloc(&AllocRequest::new(ctx.pages(4)).strategy(Strategy::Page))?;
    let mut mapping = block.map(Prot::ReadWrite)?;
    pattern::fill(mapping.as_mut_slice(), 41, 0);
    send_fd(
        parent_sock.as_fd(),
        dev.as_fd(),
        &encode(block.id(), block.offset(), block.size()),
    )
    .step("sendmsg")?;
    child::wait(receiver)?;
    pattern::check(mapping.as_slice(), 42, 0)
        .map_err(|m| Failure::new(format!("receiver's writes: {m}")))?;
    drop(mapping);
    block.free()?;
    pass()
}

const DEBUGFS_BLOCKS: &str = "/sys/kernel/debug/cmamap/blocks";

pub fn owner_tgid_is_allocator(ctx: &Ctx) -> TestResult {
    let me = std::process::id() as i32;
    let dev = ctx.open()?;
    let own = dev.alloc(&AllocRequest::new(ctx.pages(1)))?;
    ensure_eq!(
        own.info()?.owner_tgid,
        me,
        "owner_tgid of the opener's own block"
    );
    let before: Vec<u32> = dev.list()?.iter().map(|info| info.id).collect();

    let child = child::spawn(|| {
        let me = std::process::id() as i32;
        let block = dev.alloc(&AllocRequest::new(ctx.pages(2)))?;
        ensure_eq!(
            block.info()?.owner_tgid,
            me,
            "owner_tgid of an ALLOC through the inherited file, seen by the child"
        );
        let mapped = dev.alloc_map(&AllocRequest::new(ctx.pages(3)), Prot::ReadWrite)?;
        ensure_eq!(
            dev.info(mapped.id())?.owner_tgid,
            me,
            "owner_tgid of an ALLOC_MAP through the inherited file, seen by the child"
        );
        // Both blocks stay with the shared file; the mapping goes when the child exits.
        block.into_raw_id();
        std::mem::forget(mapped);
        Ok(())
    })?;
    let child_pid = child.pid();
    child::wait(child)?;
    ensure!(child_pid != me, "the child has the parent's pid {me}");

    let new: Vec<Info> = dev
        .list()?
        .into_iter()
        .filter(|info| info.owner == Owner::ThisFile && !before.contains(&info.id))
        .collect();
    ensure_eq!(new.len(), 2, "blocks the child left with the shared file");
    for info in &new {
        ensure_eq!(
            info.owner_tgid,
            child_pid,
            "owner_tgid of block {} seen by the parent after the child exited",
            info.id
        );
    }
    ensure_eq!(
        own.info()?.owner_tgid,
        me,
        "owner_tgid of the parent's block after the child's allocations"
    );

    // debugfs's tgid column is the same tgid.
    if let Ok(listing) = std::fs::read_to_string(DEBUGFS_BLOCKS) {
        let column = listing
            .lines()
            .next()
            .and_then(|header| header.split_whitespace().position(|name| name == "tgid"))
            .ok_or_else(|| Failure::new(format!("debugfs has no tgid column:\n{listing}")))?;
        for (id, tgid) in new
            .iter()
            .map(|info| (info.id, child_pid))
            .chain([(own.id(), me)])
        {
            let line = listing
                .lines()
                .find(|line| line.split_whitespace().next() == Some(&id.to_string()))
                .ok_or_else(|| Failure::new(format!("debugfs does not list block {id}")))?;
            ensure_eq!(
                line.split_whitespace().nth(column),
                Some(tgid.to_string().as_str()),
                "debugfs tgid column of block {id} ({line:?})"
            );
        }
    }
    for info in &new {
        dev.free(info.id)?;
    }
    own.free()?;
    pass()
}

/// `owner_tgid` is the owner's PID as the reader's PID namespace sees it: a process in a new
/// PID namespace sees 0 for a block of its parent (invisible there) and its own PID (1) for
/// its own block, in INFO and LIST alike, while the parent sees the child's PID in its own
/// namespace.
pub fn owner_tgid_in_pid_namespace(ctx: &Ctx) -> TestResult {
    if let Some(skipped) = ctx.needs_root() {
        return skipped;
    }
    if !std::path::Path::new("/proc/self/ns/pid").exists() {
        return crate::check::skip("the kernel has no PID namespaces (CONFIG_PID_NS)");
    }
    let me = std::process::id() as i32;
    let dev = ctx.open()?;
    let parents = dev.alloc(&AllocRequest::new(ctx.pages(1)))?;
    ensure_eq!(
        parents.info()?.owner_tgid,
        me,
        "owner_tgid seen by the owner"
    );
    let parent_id = parents.id();
    let (reader, writer) = nix::unistd::pipe().step("pipe")?;
    let dev = &dev;
    child::run(|| {
        // SAFETY: unshare takes flags only; it changes the PID namespace of later children.
        if unsafe { libc::unshare(libc::CLONE_NEWPID) } != 0 {
            fail!("unshare(CLONE_NEWPID): {}", cmamap::Errno::last());
        }
        // The next child is PID 1 of the new namespace.
        child::run(|| {
            let inside = std::process::id() as i32;
            ensure_eq!(inside, 1, "PID of the first process of a new PID namespace");
            ensure_eq!(
                dev.info(parent_id)?.owner_tgid,
                0,
                "INFO owner_tgid of the parent's block, seen from a new PID namespace"
            );
            let own = dev.alloc(&AllocRequest::new(ctx.pages(2)))?;
            ensure_eq!(
                own.info()?.owner_tgid,
                1,
                "INFO owner_tgid of its own block, seen from the new PID namespace"
            );
            for info in dev.list()? {
                let want = if info.id == own.id() {
                    1
                } else if info.id == parent_id {
                    0
                } else {
                    continue;
                };
                ensure_eq!(
                    info.owner_tgid,
                    want,
                    "LIST owner_tgid of block {} from the new PID namespace",
                    info.id
                );
            }
            // Tell the parent which block is ours; it stays with the shared file.
            let id = own.into_raw_id();
            nix::unistd::write(&writer, &id.to_ne_bytes()).step("write the id")?;
            Ok(())
        })
    })?;
    drop(writer);
    let mut id = [0u8; 4];
    nix::unistd::read(&reader, &mut id).step("read the child's block id")?;
    let child_block = dev.block(u32::from_ne_bytes(id))?;
    let seen = child_block.info()?.owner_tgid;
    ensure!(
        seen > 1 && seen != me,
        "owner_tgid of the namespaced child's block, seen from outside: {seen} (want its PID here)"
    );
    child_block.free()?;
    parents.free()?;
    pass()
}
