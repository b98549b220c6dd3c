//! Leak checks: CmaFree from /proc/meminfo, the CMA areas' exact `available_pages` from sysfs,
//! and the driver's own totals, compared before and after every test.
//!
//! CmaFree does not count CMA pages parked on per-CPU free lists, where the kernel puts freed
//! chunks of up to 8 pages; every reading therefore goes through
//! [`meminfo::settled_cma_free_kib`], which makes the kernel put them back first.

use std::path::Path;
use std::time::{Duration, Instant};

use cmamap::{meminfo, Device};

/// How long a check waits for figures to settle. Freeing is synchronous at the last munmap or
/// close, so this is slack for robustness, not a delay the driver may rely on.
pub const SETTLE: Duration = Duration::from_secs(1);

/// `CmaFree` in KiB, settled through `flusher` when there is one.
pub fn cma_free_kib(flusher: Option<&Device>) -> Option<u64> {
    match flusher {
        Some(dev) => meminfo::settled_cma_free_kib(dev).ok(),
        None => meminfo::cma_free_kib().ok(),
    }
}

/// Waits until `CmaFree` is within `tolerance_kib` of `target_kib`; returns the last reading.
pub fn wait_for_cma_free(
    flusher: Option<&Device>,
    target_kib: u64,
    tolerance_kib: u64,
) -> Result<u64, u64> {
    let deadline = Instant::now() + SETTLE;
    loop {
        let now = cma_free_kib(flusher).unwrap_or(0);
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
    pub cma_available_pages: Option<u64>,
    pub blocks_total: Option<u32>,
    pub bytes_total: Option<u64>,
}

/// The figures now, read through a file of `device` that is opened for the purpose and closed
/// again: the runner holds no file of its own between tests, so that a test can unload the
/// module. Without the device only the CMA figures are taken.
pub fn snapshot(device: &Path) -> Snapshot {
    let dev = Device::open_path(device).ok();
    let stat = dev.as_ref().and_then(|dev| dev.stat().ok());
    Snapshot {
        cma_free_kib: cma_free_kib(dev.as_ref()),
        cma_available_pages: meminfo::cma_available_pages(),
        blocks_total: stat.map(|s| s.blocks_total),
        bytes_total: stat.map(|s| s.bytes_total),
    }
}

/// What differs between `before` and `now`, empty when nothing does.
fn differences(before: &Snapshot, now: &Snapshot, tolerance_kib: u64) -> Vec<String> {
    let mut problems = Vec::new();
    if let (Some(b), Some(n)) = (before.cma_free_kib, now.cma_free_kib) {
        if b.abs_diff(n) > tolerance_kib {
            problems.push(format!(
                "CmaFree is {n} kB after the test, {b} kB before (tolerance {tolerance_kib} kB)"
            ));
        }
    }
    if let (Some(b), Some(n)) = (before.cma_available_pages, now.cma_available_pages) {
        if b != n {
            problems.push(format!(
                "CMA areas have {n} pages available after the test, {b} before"
            ));
        }
    }
    if before.blocks_total != now.blocks_total || before.bytes_total != now.bytes_total {
        problems.push(format!(
            "driver holds {:?} blocks / {:?} bytes after the test, {:?} / {:?} before",
            now.blocks_total, now.bytes_total, before.blocks_total, before.bytes_total
        ));
    }
    problems
}

/// Waits up to [`SETTLE`] for the figures to return to `before`; describes what stayed off.
pub fn settle(before: &Snapshot, device: &Path, tolerance_kib: u64) -> Result<(), String> {
    let deadline = Instant::now() + SETTLE;
    loop {
        let problems = differences(before, &snapshot(device), tolerance_kib);
        if problems.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("leak check: {}", problems.join("; ")));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(free: u64, available: u64, blocks: u32, bytes: u64) -> Snapshot {
        Snapshot {
            cma_free_kib: Some(free),
            cma_available_pages: Some(available),
            blocks_total: Some(blocks),
            bytes_total: Some(bytes),
        }
    }

    #[test]
    fn equal_snapshots_have_no_differences() {
        assert!(differences(&snap(100, 25, 1, 4096), &snap(100, 25, 1, 4096), 0).is_empty());
    }

    #[test]
    fn each_figure_is_checked() {
        let before = snap(100, 25, 1, 4096);
        assert_eq!(differences(&before, &snap(96, 25, 1, 4096), 0).len(), 1);
        assert!(differences(&before, &snap(96, 25, 1, 4096), 4).is_empty());
        assert_eq!(differences(&before, &snap(100, 24, 1, 4096), 0).len(), 1);
        let leaked = differences(&before, &snap(96, 24, 2, 8192), 0);
        assert_eq!(leaked.len(), 3, "{leaked:?}");
        assert!(leaked[2].contains("driver holds Some(2) blocks"));
    }

    #[test]
    fn missing_cma_figures_are_not_checked() {
        let without_cma = Snapshot {
            cma_free_kib: None,
            cma_available_pages: None,
            blocks_total: Some(1),
            bytes_total: Some(4096),
        };
        assert!(differences(&without_cma, &snap(7, 7, 1, 4096), 0).is_empty());
        assert!(differences(&snap(7, 7, 1, 4096), &without_cma, 0).is_empty());
    }
}
