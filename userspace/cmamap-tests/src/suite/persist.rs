//! PERSIST blocks: owned by the module, reachable from every open file, and reserved for
//! CAP_SYS_ADMIN, as is the physical address.

use cmamap::{abi, AllocRequest, Errno, Owner, Prot, Strategy};
use cmamap_testkit::pattern;

use crate::check::{expect_alloc_refused, expect_errno, pass, Failure, Step, TestResult};
use crate::child;
use crate::ctx::{drop_privileges, Ctx, PersistGuard};

pub fn persist_visible_to_other_opens(ctx: &Ctx) -> TestResult {
    if let Some(skipped) = ctx.needs_root() {
        return skipped;
    }
    let size = ctx.pages(8);
    let first = ctx.open()?;
    let block = first.alloc(
        &AllocRequest::new(size)
            .strategy(Strategy::Fault)
            .persist(true),
    )?;
    let mut guard = PersistGuard::new(ctx, block.id());
    ensure!(
        block.is_persistent(),
        "ALLOC did not report the PERSIST flag"
    );
    let info = block.info()?;
    ensure_eq!(info.owner, Owner::Module, "owner");
    ensure_eq!(info.flags, abi::ALLOC_PERSIST, "flags");
    {
        let mut mapping = block.map(Prot::ReadWrite)?;
        pattern::fill(mapping.as_mut_slice(), 51, 0);
    }
    let (id, offset) = (block.id(), block.offset());
    drop(block);
    // Closing the allocating file leaves a persistent block alone.
    drop(first);

    let second = ctx.open()?;
    let info = second.info(id).step("INFO through a new file")?;
    ensure_eq!(info.owner, Owner::Module, "owner seen by a new file");
    ensure!(
        second.list()?.iter().any(|listed| listed.id == id),
        "a new file does not list persistent block {id}"
    );
    let mut mapping = second.map(offset, size as usize, Prot::ReadWrite)?;
    pattern::check(mapping.as_slice(), 51, 0)
        .map_err(|m| Failure::new(format!("data seen by a new file: {m}")))?;
    pattern::fill(mapping.as_mut_slice(), 52, 0);

    // A child that opens the device itself shares nothing with us but the id.
    let device = ctx.device.clone();
    child::run(move || {
        let dev = cmamap::Device::open_path(&device).step("open in the child")?;
        let info = dev.info(id).step("INFO in the child")?;
        let mapping = dev
            .map(info.offset, info.size as usize, Prot::Read)
            .step("mmap in the child")?;
        pattern::check(mapping.as_slice(), 52, 0)
            .map_err(|m| Failure::new(format!("data seen by the child: {m}")))?;
        Ok(())
    })?;

    second.free(id)?;
    guard.disarm();
    expect_errno(second.info(id), Errno::ENOENT, "INFO after FREE")?;
    // The memory stays mapped here until munmap.
    pattern::check(mapping.as_slice(), 52, 0)?;
    drop(mapping);
    pass()
}

pub fn persist_needs_cap_sys_admin(ctx: &Ctx) -> TestResult {
    if let Some(skipped) = ctx.needs_root() {
        return skipped;
    }
    // Opened as root: the device node is root-only, and the check is on the caller.
    let dev = ctx.open()?;
    let persistent = dev.alloc(&AllocRequest::new(ctx.pages(1)).persist(true))?;
    let _guard = PersistGuard::new(ctx, persistent.id());
    let persistent_id = persistent.id();
    child::run(|| {
        drop_privileges()?;
        expect_alloc_refused(
            dev.alloc(&AllocRequest::new(ctx.pages(1)).persist(true)),
            Errno::EPERM,
            "PERSIST without CAP_SYS_ADMIN",
        )?;
        // Whoever opens the device sees a PERSIST block, but only an admin may free it.
        expect_errno(
            dev.free(persistent_id),
            Errno::EPERM,
            "FREE of a PERSIST block without CAP_SYS_ADMIN",
        )?;
        dev.info(persistent_id)
            .step("INFO of the PERSIST block after the refused FREE")?;
        // A file-owned block needs no capability.
        let block = dev
            .alloc(&AllocRequest::new(ctx.pages(1)))
            .step("plain ALLOC without CAP_SYS_ADMIN")?;
        block.free().step("FREE without CAP_SYS_ADMIN")?;
        Ok(())
    })?;
    ensure_eq!(dev.stat()?.blocks_file, 0, "blocks left on the file");
    pass()
}

pub fn phys_addr_needs_cap_sys_admin(ctx: &Ctx) -> TestResult {
    if let Some(skipped) = ctx.needs_root() {
        return skipped;
    }
    let dev = ctx.open()?;
    let own = dev.alloc(&AllocRequest::new(ctx.pages(1)))?;
    let persistent = dev.alloc(&AllocRequest::new(ctx.pages(1)).persist(true))?;
    let _guard = PersistGuard::new(ctx, persistent.id());
    for block in [&own, &persistent] {
        ensure!(
            block.info()?.phys_addr != 0,
            "root sees phys_addr 0 for block {}",
            block.id()
        );
    }
    ensure!(
        dev.list()?.iter().all(|info| info.phys_addr != 0),
        "root sees phys_addr 0 in LIST"
    );
    let (own_id, persistent_id) = (own.id(), persistent.id());
    child::run(|| {
        drop_privileges()?;
        for id in [own_id, persistent_id] {
            let info = dev.info(id).step("INFO without CAP_SYS_ADMIN")?;
            ensure_eq!(
                info.phys_addr,
                0,
                "phys_addr of block {id} without CAP_SYS_ADMIN"
            );
        }
        for info in dev.list().step("LIST without CAP_SYS_ADMIN")? {
            ensure_eq!(info.phys_addr, 0, "LIST phys_addr of block {}", info.id);
        }
        Ok(())
    })?;
    own.free()?;
    persistent.free()?;
    pass()
}
