//! The cost of device DMA calls (in the VM): DMA_MAP and DMA_UNMAP of a whole block by block
//! size, and SYNC by range size, for one device. The VM's machine decides whether an IOMMU
//! translates; `make bench` runs this once with one and once without.
//!
//! Prints one CSV section (`setup,op,bytes,repeats,median_ns,min_ns,max_ns`) between the
//! markers, as `run` does. The counts of each row are checked; the times are only reported.

use std::fmt::Write as _;
use std::io::Write as _;

use cmamap::{AllocRequest, Device, Direction, DmaDevice, Strategy};

use crate::clock;
use crate::stats::Spread;

/// The line before the CSV section on stdout.
pub const BEGIN: &str = "CMAMAP-BENCH-DMA-BEGIN";
/// The line after it.
pub const END: &str = "CMAMAP-BENCH-DMA-END";
/// The CSV header.
pub const HEADER: &str = "setup,op,bytes,repeats,median_ns,min_ns,max_ns";

/// What to measure.
pub struct Plan {
    pub setup: String,
    pub device: String,
    pub dma_bits: u32,
    pub sizes: Vec<u64>,
    pub repeats: u32,
}

fn row(out: &mut String, setup: &str, op: &str, bytes: u64, samples: &[f64]) {
    if let Some(s) = Spread::of(samples) {
        let _ = writeln!(
            out,
            "{setup},{op},{bytes},{},{:.0},{:.0},{:.0}",
            s.count, s.median, s.min, s.max
        );
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
    let mut out = String::new();
    let setup = plan.setup.as_str();
    for &size in &plan.sizes {
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
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{BEGIN}\n{HEADER}\n{out}{END}").map_err(|e| e.to_string())
}

/// The CSV section of a run's output (the VM's result.txt or console), without the markers.
pub fn section(text: &str) -> Option<String> {
    let start = text.find(BEGIN)? + BEGIN.len();
    let end = start + text[start..].find(END)?;
    Some(
        text[start..end]
            .lines()
            .map(|l| l.trim_end_matches('\r'))
            .filter(|l| !l.is_empty() && *l != HEADER)
            .map(|l| format!("{l}\n"))
            .collect(),
    )
}

/// A text table of the sections' rows: per operation and size, the median in microseconds for
/// each set-up, and the ratio of the largest size's median to the smallest's.
pub fn table(rows_csv: &str) -> String {
    struct Row<'a> {
        setup: &'a str,
        op: &'a str,
        bytes: u64,
        median_ns: f64,
    }
    let rows: Vec<Row<'_>> = rows_csv
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            Some(Row {
                setup: f.first()?,
                op: f.get(1)?,
                bytes: f.get(2)?.parse().ok()?,
                median_ns: f.get(4)?.parse().ok()?,
            })
        })
        .collect();
    let mut setups: Vec<&str> = rows.iter().map(|r| r.setup).collect();
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
        for bytes in &sizes {
            let _ = write!(out, "{:>10}", cmamap::units::format_size(*bytes));
            for setup in &setups {
                let cell = rows
                    .iter()
                    .find(|r| r.op == op && r.bytes == *bytes && r.setup == *setup)
                    .map_or("-".to_owned(), |r| format!("{:.1}", r.median_ns / 1000.0));
                let _ = write!(out, " {cell:>12}");
            }
            out.push('\n');
        }
        let _ = write!(out, "{:>10}", "last/first");
        for setup in &setups {
            let of = |b: &u64| {
                rows.iter()
                    .find(|r| r.op == op && r.bytes == *b && r.setup == *setup)
                    .map(|r| r.median_ns)
            };
            let ratio = match (sizes.first().and_then(of), sizes.last().and_then(of)) {
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
        let text = format!(
            "noise\n{BEGIN}\n{HEADER}\niommu,dma_map,4096,3,2000,1000,3000\n\
             iommu,dma_map,65536,3,3000,1000,3000\ndirect,dma_map,4096,3,1000,900,1100\n{END}\n"
        );
        let rows = section(&text).unwrap();
        assert_eq!(rows.lines().count(), 3);
        let table = table(&rows);
        assert!(table.contains("dma_map (median us)"), "{table}");
        assert!(table.contains("1.50x"), "{table}");
    }
}
