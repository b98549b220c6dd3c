//! The cost of device DMA calls (in the VM): DMA_MAP and DMA_UNMAP of a whole block by block
//! size, and SYNC by range size, for one device. The VM's machine decides whether an IOMMU
//! translates; `make bench` runs this once with one and once without.
//!
//! Prints one CSV section of [`Row`]s between the markers, as `run` does. The counts of each
//! row are checked; the times are only reported.

use std::fmt::Write as _;

use cmamap::{AllocRequest, Device, Direction, DmaDevice, Strategy};
use cmamap_testkit::progress::Ticker;
use serde::{Deserialize, Serialize};

use crate::clock;
use crate::csv_section;
use crate::stats::Spread;

/// The line before the CSV section on stdout.
pub const BEGIN: &str = "CMAMAP-BENCH-DMA-BEGIN";
/// The line after it.
pub const END: &str = "CMAMAP-BENCH-DMA-END";
/// One figure: an operation's times at one size, in one set-up.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub setup: String,
    pub op: String,
    pub bytes: u64,
    pub repeats: usize,
    pub median_ns: f64,
    pub min_ns: f64,
    pub max_ns: f64,
}

/// What to measure.
pub struct Plan {
    pub setup: String,
    pub device: String,
    pub dma_bits: u32,
    pub sizes: Vec<u64>,
    pub repeats: u32,
}

fn row(rows: &mut Vec<Row>, setup: &str, op: &str, bytes: u64, samples: &[f64]) {
    if let Some(s) = Spread::of(samples) {
        rows.push(Row {
            setup: setup.to_owned(),
            op: op.to_owned(),
            bytes,
            repeats: s.count,
            median_ns: s.median.round(),
            min_ns: s.min.round(),
            max_ns: s.max.round(),
        });
    }
}

fn elapsed_ns(start: u64) -> f64 {
    clock::ticks_to_ns(clock::ticks().saturating_sub(start)) as f64
}

/// Runs the plan and prints the section; an error ends it early.
pub fn run(plan: &Plan) -> Result<(), String> {
    let dev = Device::open().map_err(|e| e.to_string())?;
    let name = if plan.device == "edu" {
        cmamap_testkit::edu::find_all()
            .into_iter()
            .next()
            .ok_or("no edu device in this VM")?
    } else {
        plan.device.clone()
    };
    let target = DmaDevice::new(&name)
        .map_err(|e| e.to_string())?
        .dma_bits(plan.dma_bits);
    let mut out = Vec::new();
    let setup = plan.setup.as_str();
    // Progress on the console (CMAMAP_PROGRESS): one step per size, for DMA_MAP and for SYNC.
    let mut ticker = Ticker::from_env("bench-dma", "steps", 2 * plan.sizes.len() as u64);
    let mut step = 0u64;
    let mut tick = |what: &str, size: u64| {
        if let Some(ticker) = &mut ticker {
            ticker.tick(step, || {
                format!("{what} {}", cmamap::units::format_size(size))
            });
        }
        step += 1;
    };
    for &size in &plan.sizes {
        tick("DMA_MAP/UNMAP of", size);
        let block = dev
            .alloc(&AllocRequest::new(size).strategy(Strategy::Page))
            .map_err(|e| format!("ALLOC of {size} bytes: {e}"))?;
        let (mut maps, mut unmaps) = (Vec::new(), Vec::new());
        for _ in 0..plan.repeats {
            let start = clock::ticks();
            let mapping = block
                .dma_map(&target, Direction::Bidirectional)
                .map_err(|e| format!("DMA_MAP of {size} bytes: {e}"))?;
            maps.push(elapsed_ns(start));
            let start = clock::ticks();
            mapping
                .unmap()
                .map_err(|e| format!("DMA_UNMAP of {size} bytes: {e}"))?;
            unmaps.push(elapsed_ns(start));
        }
        row(&mut out, setup, "dma_map", size, &maps);
        row(&mut out, setup, "dma_unmap", size, &unmaps);
    }
    // SYNC of growing ranges of the largest block, through one mapping.
    let largest = *plan.sizes.last().ok_or("no sizes")?;
    let block = dev
        .alloc(&AllocRequest::new(largest).strategy(Strategy::Page))
        .map_err(|e| format!("ALLOC of {largest} bytes: {e}"))?;
    let _mapping = block
        .dma_map(&target, Direction::Bidirectional)
        .map_err(|e| format!("DMA_MAP for SYNC: {e}"))?;
    for &size in &plan.sizes {
        tick("SYNC of", size);
        let (mut for_cpu, mut for_device) = (Vec::new(), Vec::new());
        for _ in 0..plan.repeats {
            let start = clock::ticks();
            let synced = block
                .sync_for_cpu(0..size, Direction::FromDevice)
                .map_err(|e| format!("SYNC for the CPU of {size} bytes: {e}"))?;
            for_cpu.push(elapsed_ns(start));
            let start = clock::ticks();
            let synced_too = block
                .sync_for_device(0..size, Direction::ToDevice)
                .map_err(|e| format!("SYNC for the device of {size} bytes: {e}"))?;
            for_device.push(elapsed_ns(start));
            if (synced, synced_too) != (1, 1) {
                return Err(format!(
                    "SYNC of {size} bytes synced ({synced}, {synced_too}) mappings, not one"
                ));
            }
        }
        row(&mut out, setup, "sync_for_cpu", size, &for_cpu);
        row(&mut out, setup, "sync_for_device", size, &for_device);
    }
    csv_section::print(&out, BEGIN, END)
}

/// The rows of the CSV section of a run's output (the VM's result.txt or console).
pub fn section(text: &str) -> Result<Vec<Row>, String> {
    csv_section::read(text, BEGIN, END, "DMA")
}

/// A text table of `rows`: per operation and size, the median in microseconds for each
/// set-up, and the ratio of the largest size's median to the smallest's.
pub fn table(rows: &[Row]) -> String {
    let mut setups: Vec<&str> = rows.iter().map(|r| r.setup.as_str()).collect();
    setups.dedup();
    let mut out = String::new();
    for op in ["dma_map", "dma_unmap", "sync_for_cpu", "sync_for_device"] {
        let _ = writeln!(out, "{op} (median us)");
        let _ = write!(out, "{:>10}", "bytes");
        for setup in &setups {
            let _ = write!(out, " {setup:>12}");
        }
        out.push('\n');
        let mut sizes: Vec<u64> = rows
            .iter()
            .filter(|r| r.op == op)
            .map(|r| r.bytes)
            .collect();
        sizes.sort_unstable();
        sizes.dedup();
        let median = |bytes: u64, setup: &str| {
            rows.iter()
                .find(|r| r.op == op && r.bytes == bytes && r.setup == setup)
                .map(|r| r.median_ns)
        };
        for &bytes in &sizes {
            let _ = write!(out, "{:>10}", cmamap::units::format_size(bytes));
            for setup in &setups {
                let cell =
                    median(bytes, setup).map_or("-".to_owned(), |ns| format!("{:.1}", ns / 1000.0));
                let _ = write!(out, " {cell:>12}");
            }
            out.push('\n');
        }
        let _ = write!(out, "{:>10}", "last/first");
        for setup in &setups {
            let first = sizes.first().and_then(|&b| median(b, setup));
            let last = sizes.last().and_then(|&b| median(b, setup));
            let ratio = match (first, last) {
                (Some(first), Some(last)) if first > 0.0 => format!("{:.2}x", last / first),
                _ => "-".to_owned(),
            };
            let _ = write!(out, " {ratio:>12}");
        }
        out.push_str("\n\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn section_and_table() {
        let small = Row {
            setup: "iommu".into(),
            op: "dma_map".into(),
            bytes: 4096,
            repeats: 3,
            median_ns: 2000.0,
            min_ns: 1000.0,
            max_ns: 3000.0,
        };
        let large = Row {
            bytes: 65536,
            median_ns: 3000.0,
            ..small.clone()
        };
        let direct = Row {
            setup: "direct".into(),
            median_ns: 1000.0,
            ..small.clone()
        };
        let rows = vec![small, large, direct];
        let text = format!(
            "noise\n{BEGIN}\n{}{END}\n",
            csv_section::to_csv(&rows).unwrap()
        );
        assert_eq!(section(&text).unwrap(), rows);
        let table = table(&rows);
        assert!(table.contains("dma_map (median us)"), "{table}");
        assert!(table.contains("1.50x"), "{table}");
    }
}
