//! Leak checks: CmaFree from /proc/meminfo and the driver's own block count, compared before and
//! after every test.

use std::time::{Duration, Instant};

use cmamap::{meminfo, Device};

/// How long a check waits for figures to settle. Freeing is synchronous at the last munmap or
/// close, so this is slack for robustness, not a delay the driver may rely on.
pub const SETTLE: Duration = Duration::from_secs(1);

/// `CmaFree` in KiB, if the kernel reports it.
pub fn cma_free_kib() -> Option<u64> {
    meminfo::cma_free_kib().ok()
}

/// Waits until `CmaFree` is within `tolerance_kib` of `target_kib`; returns the last reading.
pub fn wait_for_cma_free(target_kib: u64, tolerance_kib: u64) -> Result<u64, u64> {
    let deadline = Instant::now() + SETTLE;
    loop {
        let now = cma_free_kib().unwrap_or(0);
        if now.abs_diff(target_kib) <= tolerance_kib {
            return Ok(now);
        }
        if Instant::now() >= deadline {
            return Err(now);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The figures a test must leave as it found them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub cma_free_kib: Option<u64>,
    pub blocks_total: Option<u32>,
    pub bytes_total: Option<u64>,
}

pub fn snapshot(dev: Option<&Device>) -> Snapshot {
    let stat = dev.and_then(|dev| dev.stat().ok());
    Snapshot {
        cma_free_kib: cma_free_kib(),
        blocks_total: stat.map(|s| s.blocks_total),
        bytes_total: stat.map(|s| s.bytes_total),
    }
}

fn settled(before: &Snapshot, now: &Snapshot, tolerance_kib: u64) -> bool {
    let cma_ok = match (before.cma_free_kib, now.cma_free_kib) {
        (Some(b), Some(n)) => b.abs_diff(n) <= tolerance_kib,
        _ => true,
    };
    cma_ok && before.blocks_total == now.blocks_total && before.bytes_total == now.bytes_total
}

/// Waits up to [`SETTLE`] for the figures to return to `before`; describes what stayed off.
pub fn settle(before: &Snapshot, dev: Option<&Device>, tolerance_kib: u64) -> Result<(), String> {
    let deadline = Instant::now() + SETTLE;
    loop {
        let now = snapshot(dev);
        if settled(before, &now, tolerance_kib) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let mut problems = Vec::new();
            if let (Some(b), Some(n)) = (before.cma_free_kib, now.cma_free_kib) {
                if b.abs_diff(n) > tolerance_kib {
                    problems.push(format!(
                        "CmaFree is {n} kB after the test, {b} kB before (tolerance {tolerance_kib} kB)"
                    ));
                }
            }
            if before.blocks_total != now.blocks_total || before.bytes_total != now.bytes_total {
                problems.push(format!(
                    "driver holds {:?} blocks / {:?} bytes after the test, {:?} / {:?} before",
                    now.blocks_total, now.bytes_total, before.blocks_total, before.bytes_total
                ));
            }
            return Err(format!("leak check: {}", problems.join("; ")));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
