//! Raw samples folded into one spread per contender, size and metric.

use std::collections::BTreeMap;

use crate::contender::Contender;
use crate::sample::Sample;
use crate::stats::Spread;

/// A figure the report shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Metric {
    /// Allocation latency, µs.
    Alloc,
    /// The mmap call, µs.
    Mmap,
    /// Minor faults during mmap.
    MmapFaults,
    /// First touch of every page, µs.
    Touch,
    /// Minor faults during that touch.
    TouchFaults,
    /// One memcpy (or pwrite) of the whole size into the memory, µs.
    Write,
    /// One memcpy (or pread) of the whole size out of it, µs.
    Read,
    /// Write bandwidth, MB/s (10^6 bytes).
    WriteBw,
    /// Read bandwidth, MB/s.
    ReadBw,
    /// munmap and free, µs.
    Free,
}

impl Metric {
    /// Every metric, in the order of the summary CSV.
    pub const ALL: [Metric; 10] = [
        Metric::Alloc,
        Metric::Mmap,
        Metric::MmapFaults,
        Metric::Touch,
        Metric::TouchFaults,
        Metric::Write,
        Metric::Read,
        Metric::WriteBw,
        Metric::ReadBw,
        Metric::Free,
    ];

    /// The column name, with its unit.
    pub const fn name(self) -> &'static str {
        match self {
            Metric::Alloc => "alloc_us",
            Metric::Mmap => "mmap_us",
            Metric::MmapFaults => "mmap_faults",
            Metric::Touch => "touch_us",
            Metric::TouchFaults => "touch_faults",
            Metric::Write => "write_us",
            Metric::Read => "read_us",
            Metric::WriteBw => "write_mb_s",
            Metric::ReadBw => "read_mb_s",
            Metric::Free => "free_us",
        }
    }

    /// This metric's value in one sample, if the contender has the step.
    pub fn of(self, s: &Sample) -> Option<f64> {
        let us = |ns: u64| ns as f64 / 1000.0;
        // Per pass: the copies repeat the size `copy_bytes / size` times.
        let per_pass = |ns: u64| us(ns) * s.size as f64 / s.copy_bytes.max(1) as f64;
        let mb_s = |ns: u64| s.copy_bytes as f64 * 1000.0 / ns.max(1) as f64;
        match self {
            Metric::Alloc => s.alloc_ns.map(us),
            Metric::Mmap => s.mmap_ns.map(us),
            Metric::MmapFaults => s.mmap_faults.map(|f| f as f64),
            Metric::Touch => s.touch_ns.map(us),
            Metric::TouchFaults => s.touch_faults.map(|f| f as f64),
            Metric::Write => Some(per_pass(s.write_ns)),
            Metric::Read => Some(per_pass(s.read_ns)),
            Metric::WriteBw => Some(mb_s(s.write_ns)),
            Metric::ReadBw => Some(mb_s(s.read_ns)),
            Metric::Free => Some(us(s.free_ns)),
        }
    }
}

/// Spreads by contender, size and metric.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    cells: BTreeMap<(Contender, u64, Metric), Spread>,
}

impl Summary {
    /// Folds the samples.
    pub fn of(samples: &[Sample]) -> Self {
        let mut values: BTreeMap<(Contender, u64, Metric), Vec<f64>> = BTreeMap::new();
        for sample in samples {
            for metric in Metric::ALL {
                if let Some(v) = metric.of(sample) {
                    values
                        .entry((sample.contender, sample.size, metric))
                        .or_default()
                        .push(v);
                }
            }
        }
        let cells = values
            .into_iter()
            .filter_map(|(key, v)| Spread::of(&v).map(|s| (key, s)))
            .collect();
        Self { cells }
    }

    /// The spread of `metric` for `contender` at `size`.
    pub fn get(&self, contender: Contender, size: u64, metric: Metric) -> Option<Spread> {
        self.cells.get(&(contender, size, metric)).copied()
    }

    /// The median of `metric` for `contender` at `size`.
    pub fn median(&self, contender: Contender, size: u64, metric: Metric) -> Option<f64> {
        self.get(contender, size, metric).map(|s| s.median)
    }

    /// Every size measured, ascending.
    pub fn sizes(&self) -> Vec<u64> {
        let mut sizes: Vec<u64> = self.cells.keys().map(|k| k.1).collect();
        sizes.dedup();
        sizes.sort_unstable();
        sizes.dedup();
        sizes
    }

    /// Every contender measured, in [`Contender::ALL`] order.
    pub fn contenders(&self) -> Vec<Contender> {
        Contender::ALL
            .into_iter()
            .filter(|c| self.cells.keys().any(|k| k.0 == *c))
            .collect()
    }

    /// The summary as CSV: one row per contender, size and metric.
    pub fn to_csv(&self) -> String {
        let mut writer = csv::Writer::from_writer(Vec::new());
        for ((contender, size, metric), s) in &self.cells {
            let row = SummaryRow {
                contender: *contender,
                size: *size,
                metric: metric.name(),
                median: s.median,
                min: s.min,
                max: s.max,
                repeats: s.count,
            };
            // Names and numbers into memory: nothing to fail.
            writer.serialize(row).expect("a summary row serializes");
        }
        let bytes = writer.into_inner().expect("memory takes every byte");
        String::from_utf8(bytes).expect("CSV of names and numbers is UTF-8")
    }
}

/// One line of `summary.csv`; its fields are the columns.
#[derive(serde::Serialize)]
struct SummaryRow {
    contender: Contender,
    size: u64,
    metric: &'static str,
    // Shortest form, as people write them (2, not 2.0).
    #[serde(serialize_with = "shortest")]
    median: f64,
    #[serde(serialize_with = "shortest")]
    min: f64,
    #[serde(serialize_with = "shortest")]
    max: f64,
    repeats: usize,
}

fn shortest<S: serde::Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contender::Kind;

    fn sample(repeat: u32, touch_ns: u64) -> Sample {
        Sample {
            contender: Contender::Cmamap(Kind::Fault),
            size: 4096,
            repeat,
            alloc_ns: Some(2000),
            mmap_ns: Some(1000),
            mmap_faults: Some(0),
            touch_ns: Some(touch_ns),
            touch_faults: Some(1),
            copy_bytes: 4 * 4096,
            write_ns: 4000,
            read_ns: 8000,
            free_ns: 500,
        }
    }

    #[test]
    fn medians_and_units() {
        let samples = [sample(0, 1000), sample(1, 3000), sample(2, 2000)];
        let summary = Summary::of(&samples);
        let c = Contender::Cmamap(Kind::Fault);
        let touch = summary.get(c, 4096, Metric::Touch).unwrap();
        assert_eq!(
            (touch.median, touch.min, touch.max, touch.count),
            (2.0, 1.0, 3.0, 3)
        );
        // 16 KiB in 4 µs is 4096 MB/s; one pass of 4 KiB takes 1 µs.
        assert_eq!(summary.median(c, 4096, Metric::WriteBw), Some(4096.0));
        assert_eq!(summary.median(c, 4096, Metric::Write), Some(1.0));
        assert_eq!(summary.median(c, 4096, Metric::Read), Some(2.0));
        assert_eq!(summary.sizes(), vec![4096]);
        assert_eq!(summary.contenders(), vec![c]);
        assert!(summary.to_csv().contains("fault,4096,touch_us,2,1,3,3\n"));
        assert!(summary
            .to_csv()
            .starts_with("contender,size,metric,median,min,max,repeats\n"));
    }

    #[test]
    fn missing_steps_stay_missing() {
        let io = Sample {
            contender: Contender::DeviceIo,
            mmap_ns: None,
            touch_ns: None,
            ..sample(0, 0)
        };
        let summary = Summary::of(&[io]);
        assert_eq!(summary.get(Contender::DeviceIo, 4096, Metric::Touch), None);
        assert!(summary
            .get(Contender::DeviceIo, 4096, Metric::Alloc)
            .is_some());
    }
}
