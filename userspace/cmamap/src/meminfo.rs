//! CMA figures: `CmaTotal` and `CmaFree` from `/proc/meminfo`, and the per-area counters of
//! `/sys/kernel/mm/cma` (CONFIG_CMA_SYSFS).

use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::{AllocRequest, Device, Strategy};

const CMA_SYSFS: &str = "/sys/kernel/mm/cma";

/// The CMA figures of `/proc/meminfo`, in KiB.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CmaMeminfo {
    /// `CmaTotal`.
    pub total_kib: u64,
    /// `CmaFree`.
    pub free_kib: u64,
}

/// The value of `field` (such as `CmaFree`) in meminfo-formatted `text`, in KiB.
pub fn parse_field(text: &str, field: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (name, rest) = line.split_once(':')?;
        if name.trim() != field {
            return None;
        }
        let mut words = rest.split_whitespace();
        let value = words.next()?.parse().ok()?;
        match words.next() {
            None | Some("kB") => Some(value),
            Some(_) => None,
        }
    })
}

/// Parses both CMA fields out of meminfo-formatted `text`.
pub fn parse(text: &str) -> Option<CmaMeminfo> {
    Some(CmaMeminfo {
        total_kib: parse_field(text, "CmaTotal")?,
        free_kib: parse_field(text, "CmaFree")?,
    })
}

/// Reads `/proc/meminfo`; a kernel without CONFIG_CMA has no such fields (`NotFound`).
pub fn read() -> io::Result<CmaMeminfo> {
    let text = std::fs::read_to_string("/proc/meminfo")?;
    parse(&text).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            "/proc/meminfo has no CmaTotal/CmaFree (kernel without CONFIG_CMA?)",
        )
    })
}

/// `CmaFree` in KiB.
pub fn cma_free_kib() -> io::Result<u64> {
    read().map(|cma| cma.free_kib)
}

/// `CmaFree` after making the kernel put back CMA pages parked on per-CPU free lists, when a
/// device to do it through is given; the plain figure otherwise.
///
/// Freed CMA chunks of up to 8 pages (and 2 MiB ones with THP) go to per-CPU lists, which
/// `CmaFree` does not count, so a just-freed small block can look leaked. Allocating a
/// 16-page, 16-page-aligned block drains those lists (`alloc_contig_range` does), and its
/// order-4 release bypasses them. Without CMA room the plain figure is returned.
///
/// ```no_run
/// let dev = cmamap::Device::open()?;
/// let free_kib = cmamap::meminfo::settled_cma_free_kib(Some(&dev))?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn settled_cma_free_kib(settle_through: Option<&Device>) -> io::Result<u64> {
    const FLUSH_ORDER: u32 = 4;
    if let Some(dev) = settle_through {
        let size = (crate::page_size() as u64) << FLUSH_ORDER;
        let request = AllocRequest::new(size)
            .strategy(Strategy::Remap)
            .align_order(FLUSH_ORDER);
        if let Ok(block) = dev.alloc(&request) {
            let _ = block.free();
        }
    }
    cma_free_kib()
}

/// How long [`wait_for_cma_free`] waits. Freeing is synchronous at the last munmap or close,
/// so this is slack for robustness, not a delay the driver may rely on.
pub const SETTLE: Duration = Duration::from_secs(1);

/// Whether a `CmaFree` reading of `now_kib` shows memory back at `target_kib`: not more than
/// `tolerance_kib` below it. Above it is never a leak: pages that other movable allocations
/// had borrowed from CMA when `target_kib` was read come back free once a CMA allocation
/// migrates them out (seen as 64 kB on the ACPI test kernel). The exact figure of what the
/// driver holds is the CMA areas' `available_pages`, which the test harness checks too.
pub fn cma_free_returned(now_kib: u64, target_kib: u64, tolerance_kib: u64) -> bool {
    now_kib + tolerance_kib >= target_kib
}

/// Waits up to [`SETTLE`] until the settled `CmaFree` is back at `target_kib` (see
/// [`cma_free_returned`]); returns the last reading either way (0 when there was none).
pub fn wait_for_cma_free(
    settle_through: Option<&Device>,
    target_kib: u64,
    tolerance_kib: u64,
) -> Result<u64, u64> {
    let deadline = Instant::now() + SETTLE;
    loop {
        let now = settled_cma_free_kib(settle_through).unwrap_or(0);
        if cma_free_returned(now, target_kib, tolerance_kib) {
            return Ok(now);
        }
        if Instant::now() >= deadline {
            return Err(now);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// One CMA area, from `/sys/kernel/mm/cma/<name>/`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct CmaArea {
    /// The area's name (`reserved` for the `cma=` boot area).
    pub name: String,
    /// `total_pages`, where the kernel has it.
    pub total_pages: Option<u64>,
    /// `available_pages`: free in the area's bitmap, exact at every release.
    pub available_pages: Option<u64>,
}

fn read_number(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Every CMA area the kernel describes in sysfs, sorted by name; empty without CONFIG_CMA_SYSFS.
pub fn cma_areas() -> Vec<CmaArea> {
    let Ok(entries) = std::fs::read_dir(CMA_SYSFS) else {
        return Vec::new();
    };
    let mut areas: Vec<CmaArea> = entries
        .filter_map(Result::ok)
        .map(|entry| {
            let dir = entry.path();
            CmaArea {
                name: entry.file_name().to_string_lossy().into_owned(),
                total_pages: read_number(&dir.join("total_pages")),
                available_pages: read_number(&dir.join("available_pages")),
            }
        })
        .collect();
    areas.sort_by(|a, b| a.name.cmp(&b.name));
    areas
}

/// The sum of `available_pages` over all areas, if every area reports it.
pub fn cma_available_pages() -> Option<u64> {
    let areas = cma_areas();
    if areas.is_empty() {
        return None;
    }
    areas.iter().map(|area| area.available_pages).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cma_free_returned_allows_a_rise_not_a_fall() {
        assert!(cma_free_returned(524160, 524160, 0));
        // Borrowed pages evicted during the test: the reading after is higher.
        assert!(cma_free_returned(524224, 524160, 0));
        assert!(!cma_free_returned(524156, 524160, 0));
        assert!(cma_free_returned(524156, 524160, 4));
    }

    const SAMPLE: &str = "MemTotal:        2030000 kB\n\
                          MemFree:         1500000 kB\n\
                          CmaTotal:          65536 kB\n\
                          CmaFree:           61440 kB\n\
                          HugePages_Total:       0\n";

    #[test]
    fn parses_cma_fields() {
        assert_eq!(
            parse(SAMPLE),
            Some(CmaMeminfo {
                total_kib: 65536,
                free_kib: 61440
            })
        );
        assert_eq!(parse_field(SAMPLE, "HugePages_Total"), Some(0));
        assert_eq!(parse_field(SAMPLE, "Cma"), None);
    }

    #[test]
    fn missing_fields() {
        assert_eq!(parse("MemTotal: 1 kB\n"), None);
    }
}
