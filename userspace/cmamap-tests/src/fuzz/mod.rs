//! The model-based random tester: a seeded sequence of operations (alloc and ALLOC_MAP with
//! every strategy and flag, spoilt requests, free, map through views, partial munmap, mremap
//! shrink and move, writes, byte-for-byte checks, fork-and-check, close, reopen) runs against
//! the device and an in-memory model at once; any errno or byte that differs fails the run.
//!
//! On a failure it prints the seed and shrinks the sequence (dropping chunks of operations
//! and replaying each candidate in a fresh child) to a short one that still fails. The same
//! seed and count always generate the same sequence: `--fuzz-seed S --fuzz-ops N` replays it.

mod model;
mod op;

use std::time::{Duration, Instant};

use crate::check::{pass, Failure, TestResult};
use crate::ctx::Ctx;
use crate::figures;
use cmamap_testkit::progress::Ticker;
use cmamap_testkit::region::Region;
use cmamap_testkit::rng;

use model::Model;
use op::Op;

/// How long shrinking may take, and how many replays it may use.
const SHRINK_TIME: Duration = Duration::from_secs(120);
const SHRINK_REPLAYS: u32 = 300;
/// The most operations of a shrunk sequence printed.
const SHOWN_OPS: usize = 40;

/// Runs `ops` on a fresh model; on a failure, the index of the operation and why. Before each
/// operation its index goes to `progress`, so that a crash still tells where it happened, and
/// to `ticker`, which prints a progress line now and then (on the console, not stdout).
fn run_all(
    ctx: &Ctx,
    ops: &[Op],
    progress: &Progress,
    mut ticker: Option<Ticker>,
) -> Result<model::Tally, (usize, String)> {
    let mut model = Model::new(ctx).map_err(|f| (0, f.0))?;
    for (index, &op) in ops.iter().enumerate() {
        progress.set(index);
        if let Some(ticker) = &mut ticker {
            ticker.tick(index as u64, String::new);
        }
        model.run(op).map_err(|f| (index, f.0))?;
    }
    model.teardown();
    Ok(std::mem::take(&mut model.tally))
}

/// Words of memory shared with forked children: slot 0 is the index of the operation running,
/// the others carry a finished run's tally back.
struct Progress(Region);

const SLOTS: usize = 5;

impl Progress {
    fn new() -> Result<Self, Failure> {
        // SAFETY: a fresh anonymous shared page, owned by the region.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                SLOTS * 8,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            fail!("mmap of the progress page: {}", nix::errno::Errno::last());
        }
        Ok(Self(Region::adopt(ptr as usize, SLOTS * 8)))
    }

    fn set_slot(&self, slot: usize, value: u64) {
        for (i, byte) in value.to_le_bytes().into_iter().enumerate() {
            self.0.write(slot * 8 + i, byte);
        }
    }

    fn slot(&self, slot: usize) -> u64 {
        let bytes: Vec<u8> = (0..8).map(|i| self.0.read(slot * 8 + i)).collect();
        u64::from_le_bytes(bytes.try_into().unwrap_or_default())
    }

    fn set(&self, index: usize) {
        self.set_slot(0, index as u64);
    }

    fn get(&self) -> usize {
        self.slot(0) as usize
    }
}

/// Frees the persistent blocks that are not in `before`: a crashed run leaves its own.
fn sweep_persistent(ctx: &Ctx, before: &[u32]) {
    if let Ok(dev) = ctx.open() {
        for info in dev.list().unwrap_or_default() {
            if info.is_persistent() && !before.contains(&info.id) {
                let _ = dev.free(info.id);
            }
        }
    }
}

/// The persistent blocks that exist now.
fn persistent_ids(ctx: &Ctx) -> Vec<u32> {
    ctx.open()
        .ok()
        .and_then(|dev| dev.list().ok())
        .unwrap_or_default()
        .iter()
        .filter(|info| info.is_persistent())
        .map(|info| info.id)
        .collect()
}

/// Replays `ops` in a child (so that its files and mappings go with it, and a crash costs
/// only the child); the failing index and message if it fails.
fn replay(
    ctx: &Ctx,
    ops: &[Op],
    progress: &Progress,
    persistent: &[u32],
) -> Option<(usize, String)> {
    replay_counted(ctx, ops, progress, false, persistent)
}

/// [`replay`], which also puts the tally of a successful run in slots 1..5 of `progress`.
fn replay_counted(
    ctx: &Ctx,
    ops: &[Op],
    progress: &Progress,
    count: bool,
    persistent: &[u32],
) -> Option<(usize, String)> {
    progress.set(0);
    let verdict = cmamap_testkit::process::run_in_child(|| {
        // Only the full run reports progress; shrinking replays are bounded and short.
        let ticker = count
            .then(|| Ticker::from_env("fuzz", "operations", ops.len() as u64))
            .flatten();
        let tally = run_all(ctx, ops, progress, ticker)
            .map_err(|(index, message)| format!("{index}\n{message}"))?;
        if count {
            for (slot, value) in [
                tally.allocs,
                tally.refusals,
                tally.forks,
                tally.bytes_checked,
            ]
            .into_iter()
            .enumerate()
            {
                progress.set_slot(slot + 1, value);
            }
        }
        Ok(())
    });
    sweep_persistent(ctx, persistent);
    match verdict {
        Ok(Ok(())) => None,
        Ok(Err(text)) => match text.split_once('\n') {
            Some((index, message)) if index.parse::<usize>().is_ok() => {
                Some((index.parse().unwrap_or(0), message.to_owned()))
            }
            // Died (a signal): the progress page says where.
            _ => Some((progress.get().min(ops.len().saturating_sub(1)), text)),
        },
        Err(err) => Some((ops.len().saturating_sub(1), format!("fork: {err}"))),
    }
}

/// Drops chunks of `ops` (which fail) while the rest still fails; returns the shortest
/// failing sequence found, its failure, and the replays used.
fn shrink(
    ctx: &Ctx,
    mut ops: Vec<Op>,
    mut message: String,
    progress: &Progress,
    persistent: &[u32],
) -> (Vec<Op>, String, u32) {
    let deadline = Instant::now() + SHRINK_TIME;
    let mut replays = 0;
    let mut chunk = ops.len() / 2;
    while chunk >= 1 && replays < SHRINK_REPLAYS && Instant::now() < deadline {
        let mut start = 0;
        let mut progressed = false;
        while start < ops.len() && replays < SHRINK_REPLAYS && Instant::now() < deadline {
            let end = (start + chunk).min(ops.len());
            let candidate: Vec<Op> = ops[..start].iter().chain(&ops[end..]).copied().collect();
            replays += 1;
            match replay(ctx, &candidate, progress, persistent) {
                Some((index, why)) => {
                    ops = candidate[..=index.min(candidate.len() - 1)].to_vec();
                    message = why;
                    progressed = true;
                }
                None => start += chunk,
            }
        }
        if !progressed {
            chunk /= 2;
        }
    }
    (ops, message, replays)
}

pub fn fuzz_model(ctx: &Ctx) -> TestResult {
    let count = ctx.fuzz_ops;
    let seed = ctx.fuzz_seed.unwrap_or_else(rng::fresh_seed);
    // The run's own length plus shrinking: about 2 ms per operation under TCG.
    nix::unistd::alarm::set(u32::try_from(count / 100).unwrap_or(u32::MAX / 2) + 300);
    println!(
        "# fuzz: seed {seed:#x}, {count} operations (replay: make fuzz OPS={count} SEED={seed:#x})"
    );
    let ops = Op::sequence(seed, count, ctx.root);
    let progress = Progress::new()?;
    let persistent = persistent_ids(ctx);
    let started = Instant::now();
    // The run itself goes in a child too: a crash (a mapping the driver took away, say) is
    // then a failure with an operation index, which shrinking can start from.
    match replay_counted(ctx, &ops, &progress, true, &persistent) {
        None => {
            println!(
                "# fuzz: {count} operations in {:.1} s: {} allocations, {} refusals checked, {} \
                 forks, {} KiB compared",
                started.elapsed().as_secs_f64(),
                progress.slot(1),
                progress.slot(2),
                progress.slot(3),
                progress.slot(4) / 1024
            );
            figures::record("fuzz_ops", count as u64);
            figures::record("fuzz_seed", seed);
            pass()
        }
        Some((index, message)) => {
            figures::record("fuzz_ops", index as u64 + 1);
            figures::record("fuzz_seed", seed);
            println!(
                "# fuzz: seed {seed:#x} failed at operation {index} ({:?}): {message}",
                ops[index]
            );
            let prefix = ops[..=index].to_vec();
            let Some((again, first)) = replay(ctx, &prefix, &progress, &persistent) else {
                fail!(
                    "seed {seed:#x}, operation {index}: {message}; replaying the prefix did not fail \
                     again (a non-deterministic failure)"
                );
            };
            let (shortest, why, replays) = shrink(
                ctx,
                prefix[..=again].to_vec(),
                first,
                &progress,
                &persistent,
            );
            println!(
                "# fuzz: shortest failing sequence found ({} operations, {replays} replays):",
                shortest.len()
            );
            for (i, op) in shortest.iter().enumerate().take(SHOWN_OPS) {
                println!("#   {i}: {op:?}");
            }
            if shortest.len() > SHOWN_OPS {
                println!("#   ... {} more", shortest.len() - SHOWN_OPS);
            }
            Err(Failure::new(format!(
                "seed {seed:#x}: operation {index} of {count}: {message}\nshortest failing \
                 sequence: {} operations, ending in: {why}",
                shortest.len()
            )))
        }
    }
}

/// A short `cmamap-test fuzz_model` with progress every 0.2 s into a file: the lines come with
/// operations done, rate and ETA, and never on stdout, which is the result channel in the VM.
pub fn fuzz_progress_lines(ctx: &Ctx) -> TestResult {
    const OPS: usize = 1500;
    let file = "/tmp/fuzz-progress";
    let _ = std::fs::remove_file(file);
    std::fs::write(file, "").map_err(|e| Failure::new(format!("create {file}: {e}")))?;
    let me = std::env::current_exe().map_err(|e| Failure::new(format!("current_exe: {e}")))?;
    let out = std::process::Command::new(me)
        .env(cmamap_testkit::progress::PATH_VAR, file)
        .env(cmamap_testkit::progress::SECS_VAR, "0.2")
        .arg("--device")
        .arg(&ctx.device)
        .args(["--fuzz-ops", &OPS.to_string(), "fuzz_model"])
        .output()
        .map_err(|e| Failure::new(format!("run cmamap-test fuzz_model: {e}")))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let progress = std::fs::read_to_string(file).unwrap_or_default();
    let _ = std::fs::remove_file(file);
    ensure!(
        out.status.success(),
        "cmamap-test fuzz_model: {}\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = progress.lines().collect();
    ensure!(
        lines.len() >= 2,
        "{} progress lines in {file} (wanted 2 or more): {progress:?}",
        lines.len()
    );
    let shape = format!(" of {OPS} operations (");
    for line in &lines {
        ensure!(
            line.starts_with("fuzz: ")
                && line.contains(&shape)
                && line.contains("/s, ")
                && line.contains(" elapsed, ETA "),
            "progress line: {line}"
        );
    }
    ensure!(
        !stdout.contains(&shape) && stdout.contains("ok 1 fuzz_model"),
        "stdout (the result channel) has progress lines or no verdict:\n{stdout}"
    );
    pass()
}
