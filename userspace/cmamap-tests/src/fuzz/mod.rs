//! The model-based random tester: a seeded sequence of operations (alloc and ALLOC_MAP with
//! every strategy and flag, spoilt requests, free, map, partial munmap, writes, byte-for-byte
//! checks, fork-and-check, close, reopen) runs against the device and an in-memory model at
//! once; any errno or byte that differs fails the run.
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
use crate::rng;

use model::Model;
use op::Op;

/// How long shrinking may take, and how many replays it may use.
const SHRINK_TIME: Duration = Duration::from_secs(120);
const SHRINK_REPLAYS: u32 = 300;
/// The most operations of a shrunk sequence printed.
const SHOWN_OPS: usize = 40;

/// Runs `ops` on a fresh model; on a failure, the index of the operation and why.
fn run_all(ctx: &Ctx, ops: &[Op]) -> Result<model::Tally, (usize, String)> {
    let mut model = Model::new(ctx).map_err(|f| (0, f.0))?;
    for (index, &op) in ops.iter().enumerate() {
        model.run(op).map_err(|f| (index, f.0))?;
    }
    model.teardown();
    Ok(std::mem::take(&mut model.tally))
}

/// Replays `ops` in a child (so that its files and mappings go with it); the failing index
/// and message if it fails.
fn replay(ctx: &Ctx, ops: &[Op]) -> Option<(usize, String)> {
    let verdict = cmamap::process::run_in_child(|| {
        run_all(ctx, ops)
            .map(drop)
            .map_err(|(index, message)| format!("{index}\n{message}"))
    });
    match verdict {
        Ok(Ok(())) => None,
        Ok(Err(text)) => {
            let (index, message) = text.split_once('\n').unwrap_or(("", &text));
            Some((
                index.parse().unwrap_or(ops.len().saturating_sub(1)),
                message.to_owned(),
            ))
        }
        Err(err) => Some((ops.len().saturating_sub(1), format!("fork: {err}"))),
    }
}

/// Drops chunks of `ops` (which fail) while the rest still fails; returns the shortest
/// failing sequence found, its failure, and the replays used.
fn shrink(ctx: &Ctx, mut ops: Vec<Op>, mut message: String) -> (Vec<Op>, String, u32) {
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
            match replay(ctx, &candidate) {
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
    let started = Instant::now();
    match run_all(ctx, &ops) {
        Ok(tally) => {
            println!(
                "# fuzz: {} operations in {:.1} s: {} allocations, {} refusals checked, {} forks, \
                 {} KiB compared",
                tally.ops,
                started.elapsed().as_secs_f64(),
                tally.allocs,
                tally.refusals,
                tally.forks,
                tally.bytes_checked / 1024
            );
            figures::record("fuzz_ops", tally.ops);
            figures::record("fuzz_seed", seed);
            pass()
        }
        Err((index, message)) => {
            figures::record("fuzz_ops", index as u64 + 1);
            figures::record("fuzz_seed", seed);
            println!(
                "# fuzz: seed {seed:#x} failed at operation {index} ({:?}): {message}",
                ops[index]
            );
            let prefix = ops[..=index].to_vec();
            let Some((again, first)) = replay(ctx, &prefix) else {
                fail!(
                    "seed {seed:#x}, operation {index}: {message}; replaying the prefix did not fail \
                     again (a non-deterministic failure)"
                );
            };
            let (shortest, why, replays) = shrink(ctx, prefix[..=again].to_vec(), first);
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
