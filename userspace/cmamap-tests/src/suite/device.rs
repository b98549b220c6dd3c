//! The device node, STAT, module parameters and debugfs.

use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use cmamap::{abi, AllocRequest, Strategy};

use crate::check::{pass, skip, Step, TestResult};
use crate::ctx::Ctx;

const PARAMS: &str = "/sys/module/cmamap/parameters";
const DEBUGFS_BLOCKS: &str = "/sys/kernel/debug/cmamap/blocks";

pub fn device_node_opens(ctx: &Ctx) -> TestResult {
    let meta = std::fs::metadata(&ctx.device).step("stat the device node")?;
    ensure!(
        meta.file_type().is_char_device(),
        "{} is not a character device",
        ctx.device.display()
    );
    let dev = ctx.open()?;
    dev.stat().step("STAT on the new file")?;
    ctx.open_readonly()?;
    pass()
}

pub fn stat_reports_abi_version(ctx: &Ctx) -> TestResult {
    let dev = ctx.open()?;
    let stat = dev.stat()?;
    ensure_eq!(stat.abi_version, abi::ABI_VERSION, "abi_version");
    ensure_eq!(stat.page_size, ctx.page as u64, "page_size");
    ensure!(
        Strategy::CONCRETE.contains(&stat.default_strategy()),
        "default_strategy {} is not remap, fault, page or huge",
        stat.default_strategy()
    );
    ensure!(stat.max_bytes_per_file > 0, "max_bytes_per_file is 0");
    ensure!(stat.max_bytes_total > 0, "max_bytes_total is 0");
    ensure_eq!(
        (stat.bytes_file, stat.blocks_file),
        (0, 0),
        "a new file is charged for nothing"
    );
    ensure!(
        stat.bytes_total >= stat.blocks_total as u64 * ctx.page as u64,
        "bytes_total {} is less than {} blocks of a page",
        stat.bytes_total,
        stat.blocks_total
    );
    let mut raw = abi::StatArgs::default();
    dev.stat_raw(&mut raw)?;
    ensure_eq!(raw.reserved, [0, 0], "reserved words on output");
    pass()
}

fn read_param(name: &str) -> Result<String, crate::check::Failure> {
    Ok(std::fs::read_to_string(Path::new(PARAMS).join(name))
        .step(&format!("read parameter {name}"))?
        .trim()
        .to_owned())
}

pub fn module_params_match_stat(ctx: &Ctx) -> TestResult {
    if !Path::new(PARAMS).is_dir() {
        // Rust modules declare their parameters without sysfs entries (perm 0).
        return skip(format!(
            "{PARAMS} absent: the module exposes no parameters in sysfs"
        ));
    }
    let stat = ctx.open()?.stat()?;
    let per_file = read_param("max_bytes_per_file")?;
    ensure_eq!(
        per_file,
        stat.max_bytes_per_file.to_string(),
        "max_bytes_per_file parameter vs STAT"
    );
    let total = read_param("max_bytes_total")?;
    ensure_eq!(
        total,
        stat.max_bytes_total.to_string(),
        "max_bytes_total parameter vs STAT"
    );
    // The parameter may hold the number or the name of the strategy.
    let strategy = read_param("default_strategy")?;
    ensure!(
        strategy == stat.default_strategy().to_raw().to_string()
            || strategy == stat.default_strategy().to_string(),
        "default_strategy parameter is '{strategy}', STAT says {}",
        stat.default_strategy()
    );
    pass()
}

/// Whitespace- and punctuation-separated words of a text.
fn words(text: &str) -> Vec<&str> {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|word| !word.is_empty())
        .collect()
}

pub fn debugfs_lists_blocks(ctx: &Ctx) -> TestResult {
    if !Path::new(DEBUGFS_BLOCKS).exists() {
        return skip(format!(
            "{DEBUGFS_BLOCKS} absent: no debugfs mounted, or the driver does not provide it"
        ));
    }
    let read = || std::fs::read_to_string(DEBUGFS_BLOCKS).step("read debugfs blocks");
    let dev = ctx.open()?;
    let before = read()?;
    let block = dev.alloc(&AllocRequest::new(ctx.pages(3)).strategy(Strategy::Fault))?;
    let during = read()?;
    ensure!(
        during != before,
        "the listing did not change when block {} was allocated",
        block.id()
    );
    let (decimal, hex) = (block.id().to_string(), format!("0x{:x}", block.id()));
    ensure!(
        words(&during).iter().any(|w| *w == decimal || *w == hex),
        "the listing does not mention id {}:\n{during}",
        block.id()
    );
    block.free()?;
    let after = read()?;
    // Whatever lines the block added must be gone again; other lines may carry counters.
    let old_lines: Vec<&str> = before.lines().collect();
    let after_lines: Vec<&str> = after.lines().collect();
    for line in during.lines().filter(|line| !old_lines.contains(line)) {
        ensure!(
            !after_lines.contains(&line),
            "still listed after FREE: {line}"
        );
    }
    pass()
}
