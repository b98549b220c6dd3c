//! Leak checks: CmaFree from /proc/meminfo, the CMA areas' exact `available_pages` from sysfs,
//! and the driver's own totals, compared before and after every test.
//!
//! CmaFree does not count CMA pages parked on per-CPU free lists, where the kernel puts freed
//! chunks of up to 8 pages; every reading therefore goes through
//! [`meminfo::settled_cma_free_kib`], which makes the kernel put them back first.

use std::path::Path;
use std::time::{Duration, Instant};

use cmamap::meminfo::SETTLE;

use cmamap::{meminfo, Device};

/// How far CmaFree may fall across a test without a leak, when the exact figures (the CMA
/// areas' `available_pages`, which only `cma_alloc`/`cma_release` move, and the driver's
/// totals) are back: the kernel lends free CMA pages to other movable allocations (the test
/// runner's own heap, page cache), which come and go on their own schedule. Seen: one page
/// after a fuzz run. A rise is never a leak.
pub const LENT_PAGES_SLACK_KIB: u64 = 64;

/// How much CMA is free, by the most exact figure the kernel offers: the areas' own
/// `available_pages`, which only `cma_alloc`/`cma_release` move, where sysfs has them; the
/// settled CmaFree otherwise, which also moves with pages lent to other movable allocations
/// (a CI run on arm64 saw it 64 kB low with every CMA page back).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    AvailablePages(u64),
    CmaFreeKib(u64),
}

impl Level {
    /// The level now, in the same unit as `self`; `None` if that figure is gone.
    fn now(self, flusher: Option<&Device>) -> Option<Level> {
        match self {
            Level::AvailablePages(_) => meminfo::cma_available_pages().map(Level::AvailablePages),
            Level::CmaFreeKib(_) => meminfo::settled_cma_free_kib(flusher)
                .ok()
                .map(Level::CmaFreeKib),
        }
    }

    /// The level now, from the exact figure where there is one.
    pub fn read(flusher: Option<&Device>) -> Option<Level> {
        match meminfo::cma_available_pages() {
            Some(pages) => Some(Level::AvailablePages(pages)),
            None => meminfo::settled_cma_free_kib(flusher)
                .ok()
                .map(Level::CmaFreeKib),
        }
    }

    /// The free figure in bytes.
    fn bytes(self, page: u64) -> u64 {
        match self {
            Level::AvailablePages(pages) => pages * page,
            Level::CmaFreeKib(kib) => kib * 1024,
        }
    }

    /// Whether the exact figure was read.
    pub fn is_exact(self) -> bool {
        matches!(self, Level::AvailablePages(_))
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Level::AvailablePages(pages) => write!(f, "{pages} CMA pages available"),
            Level::CmaFreeKib(kib) => write!(f, "CmaFree {kib} kB"),
        }
    }
}

/// Whether `now` shows at least `bytes` more taken from CMA than `base`: exactly with the
/// areas' page counts; with CmaFree, at least half of it beyond `tolerance_kib`.
pub fn holds(base: Level, now: Level, bytes: u64, page: u64, tolerance_kib: u64) -> bool {
    let taken = base.bytes(page).saturating_sub(now.bytes(page));
    match base {
        Level::AvailablePages(_) => taken >= bytes,
        Level::CmaFreeKib(_) => taken + tolerance_kib * 1024 >= bytes / 2,
    }
}

/// Whether `now` is back at `base`: exactly with the areas' page counts; with CmaFree, not
/// more than `tolerance_kib` below (a rise is never a leak).
pub fn returned(base: Level, now: Level, page: u64, tolerance_kib: u64) -> bool {
    match base {
        Level::AvailablePages(_) => now == base,
        Level::CmaFreeKib(_) => now.bytes(page) + tolerance_kib * 1024 >= base.bytes(page),
    }
}

/// Waits up to [`SETTLE`] until `returned` holds; the last reading otherwise.
pub fn wait_returned(
    base: Level,
    flusher: Option<&Device>,
    page: u64,
    tolerance_kib: u64,
) -> Result<(), Option<Level>> {
    let deadline = Instant::now() + SETTLE;
    loop {
        let now = base.now(flusher);
        if now.is_some_and(|now| returned(base, now, page, tolerance_kib)) {
            return Ok(());
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
        cma_free_kib: meminfo::settled_cma_free_kib(dev.as_ref()).ok(),
        cma_available_pages: meminfo::cma_available_pages(),
        blocks_total: stat.map(|s| s.blocks_total),
        bytes_total: stat.map(|s| s.bytes_total),
    }
}

/// What differs between `before` and `now`, empty when nothing does.
fn differences(before: &Snapshot, now: &Snapshot, tolerance_kib: u64) -> Vec<String> {
    let mut problems = Vec::new();
    let exact_known = before.cma_available_pages.is_some() && now.cma_available_pages.is_some();
    let slack = tolerance_kib + if exact_known { LENT_PAGES_SLACK_KIB } else { 0 };
    if let (Some(b), Some(n)) = (before.cma_free_kib, now.cma_free_kib) {
        if n + slack < b {
            problems.push(format!(
                "CmaFree is {n} kB after the test, {b} kB before (slack {slack} kB)"
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
/// On success, a note when CmaFree ended below its reading before (within the slack).
pub fn settle(
    before: &Snapshot,
    device: &Path,
    tolerance_kib: u64,
) -> Result<Option<String>, String> {
    let deadline = Instant::now() + SETTLE;
    loop {
        let now = snapshot(device);
        let problems = differences(before, &now, tolerance_kib);
        if problems.is_empty() {
            return Ok(lent_note(before, &now));
        }
        if Instant::now() >= deadline {
            return Err(format!("leak check: {}", problems.join("; ")));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Says how far CmaFree ended below `before`, if it did, though nothing else leaked.
fn lent_note(before: &Snapshot, now: &Snapshot) -> Option<String> {
    let (b, n) = (before.cma_free_kib?, now.cma_free_kib?);
    (n < b).then(|| {
        format!(
            "CmaFree {} kB below its reading before the test, CMA areas' available pages \
             exact: pages lent to other movable allocations",
            b - n
        )
    })
}

/// What one settling of the default CMA area did.
#[derive(Debug)]
pub struct Settled {
    pub area: String,
    /// The area's free pages by its bitmap (`available_pages`) before the settling.
    pub free_pages: u64,
    /// How many of them the heap could allocate and give back.
    pub taken_pages: u64,
}

impl std::fmt::Display for Settled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cmamap-test: CMA area {} settled ({} of {} free pages taken and given back)",
            self.area, self.taken_pages, self.free_pages
        )
    }
}

/// Settles the default CMA area through the kernel's CMA dma-heap
/// ([`cmamap_testkit::dma_heap::settle_cma`]). The VM's init runs this before insmod and after
/// rmmod and compares the pages taken: a page that anyone still holds (a reference the module
/// leaked) cannot be allocated, while pages lent to page cache or parked on per-CPU lists can.
pub fn settle_default_area() -> anyhow::Result<Settled> {
    let areas = meminfo::cma_areas();
    // The heap allocates from the default area: `cma=` names it `reserved`.
    let area = areas
        .iter()
        .find(|area| area.name == "reserved")
        .or(areas.first().filter(|_| areas.len() == 1))
        .ok_or_else(|| anyhow::anyhow!("no default CMA area among {areas:?}"))?;
    let free_pages = area
        .available_pages
        .ok_or_else(|| anyhow::anyhow!("CMA area {} has no available_pages", area.name))?;
    let page = cmamap::page_size() as u64;
    let taken = cmamap_testkit::dma_heap::settle_cma(free_pages * page)
        .map_err(|e| anyhow::anyhow!("settle CMA: {e}"))?;
    Ok(Settled {
        area: area.name.clone(),
        free_pages,
        taken_pages: taken / page,
    })
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
        let before = snap(1000, 25, 1, 4096);
        let fell = 1000 - LENT_PAGES_SLACK_KIB - 4;
        assert_eq!(differences(&before, &snap(fell, 25, 1, 4096), 0).len(), 1);
        assert!(differences(&before, &snap(fell, 25, 1, 4096), 4).is_empty());
        assert_eq!(differences(&before, &snap(1000, 24, 1, 4096), 0).len(), 1);
        let leaked = differences(&before, &snap(fell, 24, 2, 8192), 0);
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

#[cfg(test)]
mod level_tests {
    use super::*;

    const PAGE: u64 = 4096;

    #[test]
    fn exact_levels_count_every_page() {
        let base = Level::AvailablePages(1000);
        assert!(holds(base, Level::AvailablePages(744), 1 << 20, PAGE, 64));
        assert!(!holds(base, Level::AvailablePages(745), 1 << 20, PAGE, 64));
        assert!(returned(base, Level::AvailablePages(1000), PAGE, 64));
        // No slack: one page short is a page held, and one more is someone else's release.
        assert!(!returned(base, Level::AvailablePages(999), PAGE, 64));
        assert!(!returned(base, Level::AvailablePages(1001), PAGE, 64));
    }

    #[test]
    fn cma_free_levels_allow_lent_pages() {
        let base = Level::CmaFreeKib(10_000);
        assert!(holds(base, Level::CmaFreeKib(9_488), 1 << 20, PAGE, 0));
        assert!(!holds(base, Level::CmaFreeKib(9_600), 1 << 20, PAGE, 0));
        assert!(returned(base, Level::CmaFreeKib(9_996), PAGE, 4));
        assert!(!returned(base, Level::CmaFreeKib(9_995), PAGE, 4));
        assert!(returned(base, Level::CmaFreeKib(10_100), PAGE, 0));
    }
}

#[cfg(test)]
mod lent_pages_tests {
    use super::*;

    fn snap(free: Option<u64>, available: Option<u64>) -> Snapshot {
        Snapshot {
            cma_free_kib: free,
            cma_available_pages: available,
            blocks_total: Some(0),
            bytes_total: Some(0),
        }
    }

    #[test]
    fn cma_free_may_fall_a_little_when_the_bitmap_is_exact() {
        let before = snap(Some(1000), Some(25));
        assert!(differences(&before, &snap(Some(996), Some(25)), 0).is_empty());
        assert!(lent_note(&before, &snap(Some(996), Some(25))).is_some());
        // A rise is never a leak, and needs no note.
        assert!(differences(&before, &snap(Some(1100), Some(25)), 0).is_empty());
        assert!(lent_note(&before, &snap(Some(1100), Some(25))).is_none());
        // Past the slack it is a leak.
        let far = 1000 - LENT_PAGES_SLACK_KIB - 4;
        assert_eq!(differences(&before, &snap(Some(far), Some(25)), 0).len(), 1);
    }

    #[test]
    fn without_the_bitmap_cma_free_is_strict() {
        let before = snap(Some(1000), None);
        assert_eq!(differences(&before, &snap(Some(996), None), 0).len(), 1);
        assert!(differences(&before, &snap(Some(996), None), 4).is_empty());
    }
}
