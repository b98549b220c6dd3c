//! The subcommands.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use cmamap::units::format_size;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use cmamap::{meminfo, AllocRequest, Device, DmaDevice, ExportRequest, Prot, Strategy};
use cmamap_cli::error::CliError;
use cmamap_cli::json::{json_object, print_json};
use cmamap_cli::report;
use cmamap_cli::share::{self, ShareError};
use cmamap_testkit::pattern;
use serde_json::{json, Value};

use crate::args::{
    AllocCmd, DmaMapCmd, DmaUnmapCmd, ExportCmd, IdCmd, MapCmd, ShareCmd, SyncCmd, SyncFor,
};

type Result<T = ()> = std::result::Result<T, CliError>;

/// Options shared by every subcommand.
pub struct Ctx {
    pub device: PathBuf,
    pub json: bool,
    /// An inherited descriptor of the device to use instead of opening it.
    pub fd: Option<i32>,
}

impl Ctx {
    fn open(&self) -> Result<Device> {
        match self.fd {
            Some(fd) => inherited(fd),
            None => Ok(Device::open_path(&self.device)?),
        }
    }

    fn open_readonly(&self) -> Result<Device> {
        match self.fd {
            Some(fd) => inherited(fd),
            None => Ok(Device::open_path_readonly(&self.device)?),
        }
    }

    /// Prints a line of narration in text mode only.
    fn say(&self, line: impl AsRef<str>) {
        if !self.json {
            println!("{}", line.as_ref());
        }
    }
}

pub fn alloc(ctx: &Ctx, cmd: &AllocCmd) -> Result {
    let dev = ctx.open()?;
    let request = AllocRequest::new(cmd.size)
        .strategy(cmd.strategy)
        .align_order(cmd.align_order)
        .persist(cmd.persist);
    let block = dev.alloc(&request)?;
    let info = block.info()?;
    if ctx.json {
        let mut out = json_object(&info)?;
        out.insert("freed_at_exit".into(), json!(!info.is_persistent()));
        out.insert("hold_seconds".into(), json!(cmd.hold));
        print_json(&out)?;
    } else {
        println!(
            "allocated block {}: {}, strategy {}, mmap offset {:#x}",
            info.id,
            report::size_text(info.size),
            info.strategy,
            info.offset
        );
        println!("  phys addr: {}", report::phys_text(info.phys_addr));
        if info.is_persistent() {
            println!(
                "  persistent: lives until `cmamap free {}` or rmmod",
                info.id
            );
        }
    }
    if let Some(seconds) = cmd.hold {
        ctx.say(format!(
            "holding block {} for {seconds} s (Ctrl-C releases it early)",
            info.id
        ));
        let _ = std::io::stdout().flush();
        std::thread::sleep(Duration::from_secs(seconds));
    } else if !info.is_persistent() && !ctx.json {
        eprintln!(
            "note: block {} belongs to this command's open file and is freed as it exits; \
             use --persist to keep it, or --hold SECONDS to keep it for a while",
            info.id
        );
    }
    // A persistent block stays; a file-owned one is freed here (closing would free it too).
    drop(block);
    Ok(())
}

pub fn free(ctx: &Ctx, cmd: &IdCmd) -> Result {
    let dev = ctx.open()?;
    dev.free(cmd.id)?;
    if ctx.json {
        print_json(&json!({ "freed": cmd.id }))?;
    } else {
        println!("freed block {}", cmd.id);
    }
    Ok(())
}

/// The open file behind inherited descriptor `fd` (a duplicate, so it stays open for its
/// owner too).
fn inherited(fd: i32) -> Result<Device> {
    // SAFETY: only duplicated here; the descriptor itself stays its owner's.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    let owned = borrowed
        .try_clone_to_owned()
        .map_err(|e| CliError::Other(format!("--fd {fd}: {e} (not an open descriptor)")))?;
    Ok(Device::from_fd(owned))
}

pub fn info(ctx: &Ctx, cmd: &IdCmd) -> Result {
    let dev = ctx.open_readonly()?;
    let info = dev.info(cmd.id)?;
    let mappings = if info.dma_mappings > 0 {
        dev.dma_mappings(cmd.id)?
    } else {
        Vec::new()
    };
    if ctx.json {
        let mut out = json_object(&info)?;
        out.insert("dma".into(), json!(mappings));
        print_json(&out)?;
    } else {
        print!("{}", report::aligned(&report::info_lines(&info), ""));
        for m in &mappings {
            println!(
                "  device mapping {}: {} at bus address {:#x}, bytes {:#x}..{:#x}, {}",
                m.handle,
                m.device,
                m.dma_addr,
                m.offset,
                m.offset + m.length,
                m.direction
            );
        }
    }
    Ok(())
}

pub fn dma_map(ctx: &Ctx, cmd: &DmaMapCmd) -> Result {
    let dev = ctx.open()?;
    let block = dev.block(cmd.id)?;
    let mut target = DmaDevice::new(&cmd.target)?;
    if let Some(bits) = cmd.dma_bits {
        target = target.dma_bits(bits);
    }
    let range = cmd
        .range
        .bytes(block.size())
        .ok_or_else(|| CliError::Other("dma-map: --offset plus --length overflows".into()))?;
    let mapping = block.dma_map_range(&target, cmd.range.direction, range.clone())?;
    let phys = block.info()?.phys_addr;
    if ctx.json {
        print_json(&json!({
            "id": cmd.id,
            "device": target.name(),
            "handle": mapping.handle(),
            "dma_addr": mapping.dma_addr(),
            "phys_addr": phys,
            "offset": range.start,
            "length": range.end - range.start,
            "direction": cmd.range.direction,
        }))?;
    } else {
        println!(
            "block {} mapped for {}: bus address {:#x} (physical {}), bytes {:#x}..{:#x}, {}, handle {}",
            cmd.id,
            target.name(),
            mapping.dma_addr(),
            report::phys_text(phys),
            range.start,
            range.end,
            cmd.range.direction,
            mapping.handle()
        );
    }
    if cmd.command.is_empty() {
        if !ctx.json {
            eprintln!(
                "note: the mapping ends as this command exits; give `-- CMD` to run a command \
                 while it lives"
            );
        }
        return Ok(());
    }
    // The command reaches the mapping through this open file, which must survive exec.
    let result = run_inheriting(
        "dma-map",
        &cmd.command,
        dev.as_fd(),
        &[
            ("CMAMAP_FD", dev.as_fd().as_raw_fd().to_string()),
            ("CMAMAP_DMA_HANDLE", mapping.handle().to_string()),
            ("CMAMAP_DMA_ADDR", format!("{:#x}", mapping.dma_addr())),
        ],
    );
    drop(mapping);
    result
}

/// Runs `command` with `fd` inherited (its close-on-exec flag cleared) and `env` set; an
/// error names `what` and the command when it cannot start or exits with a failure.
fn run_inheriting(
    what: &str,
    command: &[String],
    fd: BorrowedFd<'_>,
    env: &[(&str, String)],
) -> Result {
    nix::fcntl::fcntl(
        fd,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
    )
    .map_err(|e| CliError::Other(format!("{what}: fcntl: {e}")))?;
    let _ = std::io::stdout().flush();
    let status = std::process::Command::new(&command[0])
        .args(&command[1..])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .status()
        .map_err(|e| CliError::Other(format!("{what}: run {}: {e}", command[0])))?;
    if !status.success() {
        return Err(CliError::Other(format!(
            "{what}: {} exited with {status}",
            command[0]
        )));
    }
    Ok(())
}

pub fn export(ctx: &Ctx, cmd: &ExportCmd) -> Result {
    let dev = ctx.open()?;
    let block = dev.block(cmd.id)?;
    let buf = block.export_with(&ExportRequest {
        offset: cmd.offset,
        length: cmd.length.unwrap_or(0),
        writable: !cmd.read_only,
        close_on_exec: true,
    })?;
    if let Some(name) = &cmd.name {
        buf.set_name(name)?;
    }
    let fd = buf.as_fd().as_raw_fd();
    if ctx.json {
        print_json(&json!({
            "id": cmd.id,
            "fd": fd,
            "offset": cmd.offset,
            "size": buf.size(),
            "writable": !cmd.read_only,
            "name": cmd.name,
        }))?;
    } else {
        println!(
            "block {} exported as a dma-buf: fd {fd}, bytes {:#x}..{:#x}{}",
            cmd.id,
            cmd.offset,
            cmd.offset + buf.size(),
            if cmd.read_only { ", read-only" } else { "" }
        );
    }
    if cmd.command.is_empty() {
        if !ctx.json {
            eprintln!(
                "note: the dma-buf goes as this command exits; give `-- CMD` to hand it to a \
                 command"
            );
        }
        return Ok(());
    }
    run_inheriting(
        "export",
        &cmd.command,
        buf.as_fd(),
        &[
            ("CMAMAP_DMABUF_FD", fd.to_string()),
            ("CMAMAP_DMABUF_SIZE", buf.size().to_string()),
        ],
    )
}

pub fn dma_unmap(ctx: &Ctx, cmd: &DmaUnmapCmd) -> Result {
    let dev = ctx.open()?;
    dev.dma_unmap(cmd.handle)?;
    if ctx.json {
        print_json(&json!({ "unmapped": cmd.handle }))?;
    } else {
        println!("ended device mapping {}", cmd.handle);
    }
    Ok(())
}

pub fn sync(ctx: &Ctx, cmd: &SyncCmd) -> Result {
    let dev = ctx.open()?;
    let block = dev.block(cmd.id)?;
    let range = cmd
        .range
        .bytes(block.size())
        .ok_or_else(|| CliError::Other("sync: --offset plus --length overflows".into()))?;
    let direction = cmd.range.direction;
    let synced = match cmd.sync_for {
        SyncFor::Cpu => block.sync_for_cpu(range, direction)?,
        SyncFor::Device => block.sync_for_device(range, direction)?,
    };
    let whom = match cmd.sync_for {
        SyncFor::Cpu => "cpu",
        SyncFor::Device => "device",
    };
    if ctx.json {
        print_json(&json!({ "id": cmd.id, "for": whom, "synced": synced }))?;
    } else {
        println!(
            "synced {synced} device mappings of block {} for the {whom}",
            cmd.id
        );
    }
    Ok(())
}

pub fn list(ctx: &Ctx) -> Result {
    let dev = ctx.open_readonly()?;
    let infos = dev.list()?;
    if ctx.json {
        print_json(&json!({ "blocks": infos }))?;
    } else if infos.is_empty() {
        println!("no blocks (a new open file reaches only persistent blocks)");
    } else {
        print!("{}", report::list_table(&infos));
    }
    Ok(())
}

pub fn map(ctx: &Ctx, cmd: &MapCmd) -> Result {
    let writes = cmd.fill.is_some() || cmd.pattern;
    // Read-only when only reading: the driver then refuses writable mappings for us.
    let dev = if writes {
        ctx.open()?
    } else {
        ctx.open_readonly()?
    };
    let block = dev.block(cmd.id)?;
    let length = cmd
        .length
        .unwrap_or_else(|| block.size().saturating_sub(cmd.offset));
    if length == 0 {
        return Err(CliError::Other(format!(
            "map: nothing to map: offset {:#x} is at or past the end of block {}, which is {}",
            cmd.offset,
            cmd.id,
            format_size(block.size())
        )));
    }
    let length = usize::try_from(length)
        .map_err(|_| CliError::Other("map: length does not fit in memory".to_owned()))?;
    let prot = if writes { Prot::ReadWrite } else { Prot::Read };
    let view = cmd.view.unwrap_or(Strategy::Default);
    let mut mapping = block.map_view(view, cmd.offset, length, prot)?;
    // The strategy this mapping actually has: its view's, or the block's own.
    let mapped_as = match view {
        Strategy::Default => block.strategy(),
        other => other,
    };
    let seed = cmd.seed.unwrap_or(u64::from(cmd.id));
    let how = if view == Strategy::Default {
        format!("{mapped_as}, the block's own strategy")
    } else {
        format!("{mapped_as} view of a {} block", block.strategy())
    };
    ctx.say(format!(
        "block {}: mapped {} at block offset {:#x} (address {:#x}, {prot}, {how})",
        cmd.id,
        report::size_text(length as u64),
        cmd.offset,
        mapping.addr()
    ));

    let mut filled = Value::Null;
    if let Some(byte) = cmd.fill {
        mapping.as_mut_slice().fill(byte);
        ctx.say(format!("  filled with {byte:#04x}"));
        filled = json!(format!("{byte:#04x}"));
    } else if cmd.pattern {
        pattern::fill(mapping.as_mut_slice(), seed, cmd.offset);
        ctx.say(format!("  filled with the test pattern, seed {seed}"));
        filled = json!("pattern");
    }

    let checked = if let Some(byte) = cmd.verify {
        pattern::check_filled(mapping.as_slice(), byte, cmd.offset).map(|()| true)
    } else if cmd.verify_pattern {
        pattern::check(mapping.as_slice(), seed, cmd.offset).map(|()| true)
    } else {
        Ok(false)
    };
    let verified =
        checked.map_err(|mismatch| CliError::Verify(format!("block {}: {mismatch}", cmd.id)))?;
    if verified {
        ctx.say(format!(
            "  verified {}: OK",
            report::size_text(length as u64)
        ));
    }

    if let Some(dump) = cmd.dump {
        let shown = (dump as usize).min(length);
        if !ctx.json {
            print!(
                "{}",
                report::hexdump(&mapping.as_slice()[..shown], cmd.offset)
            );
        }
    }

    if ctx.json {
        print_json(&json!({
            "id": cmd.id,
            "offset": cmd.offset,
            "length": length,
            "address": format!("{:#x}", mapping.addr()),
            "prot": prot.to_string(),
            "view": view.to_string(),
            "strategy": mapped_as.to_string(),
            "filled": filled,
            "seed": seed,
            "verified": verified,
        }))?;
    }
    Ok(())
}

pub fn share(ctx: &Ctx, cmd: &ShareCmd) -> Result {
    if cmd.persist {
        share_persistent(ctx, cmd)
    } else {
        share_with_child(ctx, cmd)
    }
}

/// A forked child shares the parent's open file, so it reaches the parent's file-owned block.
fn share_with_child(ctx: &Ctx, cmd: &ShareCmd) -> Result {
    let dev = ctx.open()?;
    let block = dev.alloc(&AllocRequest::new(cmd.size).strategy(cmd.strategy))?;
    let mut mapping = block.map(Prot::ReadWrite)?;
    let (parent_seed, child_seed) = (1, 2);
    ctx.say(format!(
        "allocated block {}: {}, strategy {}",
        block.id(),
        format_size(block.size()),
        block.strategy()
    ));
    pattern::fill(mapping.as_mut_slice(), parent_seed, 0);
    ctx.say(format!(
        "parent {}: mapped it at {:#x} and wrote pattern {parent_seed}",
        std::process::id(),
        mapping.addr()
    ));

    let quiet = ctx.json;
    let child_pid = share::reply_from_child(&block, &mapping, (parent_seed, child_seed), |own| {
        if !quiet {
            println!(
                "child {}: mapped the block through the inherited file at {:#x}, verified the \
                 parent's pattern, wrote pattern {child_seed}",
                std::process::id(),
                own.addr()
            );
        }
    })
    .map_err(|err| match err {
        ShareError::Fork(_) | ShareError::Wait(_) => CliError::Other(err.to_string()),
        ShareError::Child(_) | ShareError::Parent(_) => CliError::Verify(err.to_string()),
    })?;
    ctx.say("parent: sees the child's pattern through its own mapping: OK");
    let id = block.id();
    drop(mapping);
    block.free()?;
    ctx.say(format!("freed block {id}"));
    if ctx.json {
        print_json(&json!({
            "id": id,
            "size": cmd.size,
            "child_pid": child_pid,
            "verified": true,
        }))?;
    }
    Ok(())
}

/// A persistent block is reachable from any open file: a new `cmamap map` process opens the
/// device itself and checks the pattern.
fn share_persistent(ctx: &Ctx, cmd: &ShareCmd) -> Result {
    let dev = ctx.open()?;
    let block = share::alloc_persistent(&dev, cmd.size, cmd.strategy)?;
    let id = block.id();
    let seed = u64::from(id);
    share::write_pattern(&block, seed)?;
    ctx.say(format!(
        "allocated persistent block {id}: {}, strategy {}; wrote pattern {seed} and unmapped it",
        format_size(block.size()),
        block.strategy()
    ));

    let mut child = share::this_program_on(&ctx.device)
        .map_err(|e| CliError::Other(format!("current_exe: {e}")))?;
    let exe = PathBuf::from(child.get_program());
    child
        .args(["map", &id.to_string(), "--verify-pattern", "--seed"])
        .arg(seed.to_string());
    if ctx.json {
        child.arg("--json");
    }
    ctx.say(format!(
        "running an unrelated process: {} --device {} map {id} --verify-pattern --seed {seed}",
        exe.display(),
        ctx.device.display()
    ));
    let output = child
        .output()
        .map_err(|e| CliError::Other(format!("spawn {}: {e}", exe.display())))?;
    let _ = std::io::stderr().write_all(&output.stderr);
    let child_stdout = String::from_utf8_lossy(&output.stdout);
    if !ctx.json {
        for line in child_stdout.lines() {
            println!("  | {line}");
        }
    }
    if !output.status.success() {
        return Err(CliError::Verify(format!(
            "the other process could not verify block {id} ({})",
            output.status
        )));
    }
    block.free()?;
    ctx.say(format!("freed block {id}"));
    if ctx.json {
        let reader: Value = serde_json::from_str(child_stdout.trim()).map_err(|e| {
            CliError::Verify(format!("the other process printed no JSON object: {e}"))
        })?;
        print_json(&json!({
            "id": id,
            "size": cmd.size,
            "persistent": true,
            "reader": reader,
            "verified": true,
        }))?;
    }
    Ok(())
}

pub fn stat(ctx: &Ctx) -> Result {
    let dev = ctx.open_readonly()?;
    let stat = dev.stat()?;
    let cma = meminfo::read();
    if ctx.json {
        let (total, free) = match &cma {
            Ok(cma) => (Some(cma.total_kib * 1024), Some(cma.free_kib * 1024)),
            Err(_) => (None, None),
        };
        let mut out = json_object(&stat)?;
        out.insert("cma_total".into(), json!(total));
        out.insert("cma_free".into(), json!(free));
        out.insert("cma_areas".into(), json!(meminfo::cma_areas()));
        return print_json(&out);
    }
    let mut lines = report::stat_lines(&stat);
    match &cma {
        Ok(cma) => {
            lines.push(("CmaTotal", format_size(cma.total_kib * 1024)));
            lines.push(("CmaFree", format_size(cma.free_kib * 1024)));
        }
        Err(err) => lines.push(("CMA", format!("not reported: {err}"))),
    }
    for area in meminfo::cma_areas() {
        let pages = |count: Option<u64>| count.map_or("?".to_owned(), |n| n.to_string());
        lines.push((
            "CMA area",
            format!(
                "{}: {} of {} pages available",
                area.name,
                pages(area.available_pages),
                pages(area.total_pages)
            ),
        ));
    }
    print!("{}", report::aligned(&lines, ""));
    Ok(())
}

/// `cmamap doctor`: exit status 1 when a check is an error (the report says which and how to
/// fix it).
pub fn doctor(ctx: &Ctx) -> std::process::ExitCode {
    let report = cmamap_cli::doctor::examine(&ctx.device);
    if ctx.json {
        if let Err(err) = print_json(&report) {
            eprintln!("cmamap: {err}");
            return std::process::ExitCode::from(1);
        }
    } else {
        print!("{}", report.text());
    }
    if report.healthy {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::from(1)
    }
}
