//! The targets, as ratios computed from one run's medians.

use crate::contender::{Contender, Kind};
use crate::summary::{Metric, Summary};

/// The size the single-size targets are read at.
pub const FOCUS: u64 = 64 << 20;

/// What a ratio is held against.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Target {
    /// At least this.
    AtLeast(f64),
    /// At most this.
    AtMost(f64),
    /// Exactly this.
    Exactly(f64),
    /// Reported only.
    None,
}

/// One reported ratio.
#[derive(Clone, Debug, PartialEq)]
pub struct Ratio {
    /// What is divided by what.
    pub what: String,
    /// The value, or `None` when a contender is missing from the run.
    pub value: Option<f64>,
    /// The target.
    pub target: Target,
}

impl Ratio {
    /// "met", "MISSED", "n/a" (no value) or "info" (no target).
    pub fn verdict(&self) -> &'static str {
        let Some(v) = self.value else { return "n/a" };
        let met = match self.target {
            Target::AtLeast(t) => v >= t,
            Target::AtMost(t) => v <= t,
            Target::Exactly(t) => v == t,
            Target::None => return "info",
        };
        if met {
            "met"
        } else {
            "MISSED"
        }
    }

    fn target_text(&self) -> String {
        match self.target {
            Target::AtLeast(t) => format!(">= {t}"),
            Target::AtMost(t) => format!("<= {t}"),
            Target::Exactly(t) => format!("= {t}"),
            Target::None => "-".into(),
        }
    }
}

const CACHED: [Kind; 4] = [Kind::Remap, Kind::Fault, Kind::Page, Kind::Huge];

fn div(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b != 0.0 => Some(a / b),
        _ => None,
    }
}

/// The smallest ratio of `metric` (a over b) over every size both have.
fn worst(
    summary: &Summary,
    a: Contender,
    b: Contender,
    metric: Metric,
    smallest: bool,
) -> Option<f64> {
    let ratios = summary.sizes().into_iter().filter_map(|size| {
        div(
            summary.median(a, size, metric),
            summary.median(b, size, metric),
        )
    });
    if smallest {
        ratios.reduce(f64::min)
    } else {
        ratios.reduce(f64::max)
    }
}

/// Least-squares slope of log(median) against log(size), for sizes from `from` up: 1 is
/// linear growth, below 1 better than linear.
pub fn slope(summary: &Summary, c: Contender, metric: Metric, from: u64) -> Option<f64> {
    let points: Vec<(f64, f64)> = summary
        .sizes()
        .into_iter()
        .filter(|&size| size >= from)
        .filter_map(|size| summary.median(c, size, metric).map(|m| (size as f64, m)))
        .filter(|&(_, m)| m > 0.0)
        .map(|(x, y)| (x.ln(), y.ln()))
        .collect();
    if points.len() < 3 {
        return None;
    }
    let n = points.len() as f64;
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    Some(sxy / sxx)
}

/// Every ratio the issue asks for, from `summary`.
pub fn compute(summary: &Summary) -> Vec<Ratio> {
    let at = |c: Contender, m: Metric| summary.median(c, FOCUS, m);
    let heap = Contender::DmaHeap;
    let mut out = Vec::new();
    for kind in CACHED {
        let c = Contender::Cmamap(kind);
        for (metric, word) in [(Metric::WriteBw, "write"), (Metric::ReadBw, "read")] {
            out.push(Ratio {
                what: format!("memcpy {word} bandwidth, {c} / anon, 64 MiB"),
                value: div(at(c, metric), at(Contender::Anon, metric)),
                target: Target::AtLeast(0.95),
            });
            out.push(Ratio {
                what: format!("memcpy {word} bandwidth, {c} / anon, worst size"),
                value: worst(summary, c, Contender::Anon, metric, true),
                target: Target::AtLeast(0.95),
            });
        }
    }
    for (metric, word) in [(Metric::WriteBw, "write"), (Metric::ReadBw, "read")] {
        out.push(Ratio {
            what: format!("memcpy {word} bandwidth, dma-heap / anon, 64 MiB"),
            value: div(at(heap, metric), at(Contender::Anon, metric)),
            target: Target::None,
        });
    }
    let huge = Contender::Cmamap(Kind::Huge);
    let fault = Contender::Cmamap(Kind::Fault);
    out.push(Ratio {
        what: "touch 64 MiB: faults of fault / faults of huge".into(),
        value: div(
            at(fault, Metric::TouchFaults),
            at(huge, Metric::TouchFaults),
        ),
        target: Target::AtLeast(100.0),
    });
    out.push(Ratio {
        what: "touch 64 MiB: time of dma-heap / time of huge".into(),
        value: div(at(heap, Metric::Touch), at(huge, Metric::Touch)),
        target: Target::AtLeast(1.0),
    });
    let mmap_touch = |c: Contender| Some(at(c, Metric::Mmap)? + at(c, Metric::Touch)?);
    out.push(Ratio {
        what: "mmap + touch 64 MiB: time of dma-heap / time of huge".into(),
        value: div(mmap_touch(heap), mmap_touch(huge)),
        target: Target::AtLeast(1.0),
    });
    out.push(Ratio {
        what: "touch 64 MiB: time of anon / time of huge".into(),
        value: div(at(Contender::Anon, Metric::Touch), at(huge, Metric::Touch)),
        target: Target::None,
    });
    let remap = Contender::Cmamap(Kind::Remap);
    out.push(Ratio {
        what: "remap first-touch faults, most at any size".into(),
        value: summary
            .sizes()
            .into_iter()
            .filter_map(|size| summary.get(remap, size, Metric::TouchFaults).map(|s| s.max))
            .reduce(f64::max),
        target: Target::Exactly(0.0),
    });
    for kind in CACHED {
        let c = Contender::Cmamap(kind);
        out.push(Ratio {
            what: format!("alloc latency, {c} / dma-heap, 64 MiB"),
            value: div(at(c, Metric::Alloc), at(heap, Metric::Alloc)),
            target: Target::AtMost(1.0),
        });
        out.push(Ratio {
            what: format!("alloc latency, {c} / dma-heap, worst size"),
            value: worst(summary, c, heap, Metric::Alloc, false),
            target: Target::AtMost(1.0),
        });
    }
    let io = Contender::DeviceIo;
    out.push(Ratio {
        what: "pwrite bandwidth / remap memcpy write bandwidth, 64 MiB".into(),
        value: div(at(io, Metric::WriteBw), at(remap, Metric::WriteBw)),
        target: Target::None,
    });
    out.push(Ratio {
        what: "pread bandwidth / remap memcpy read bandwidth, 64 MiB".into(),
        value: div(at(io, Metric::ReadBw), at(remap, Metric::ReadBw)),
        target: Target::None,
    });
    for c in summary.contenders() {
        for (metric, word) in [
            (Metric::Alloc, "alloc"),
            (Metric::Touch, "touch"),
            (Metric::Free, "free"),
        ] {
            if let Some(s) = slope(summary, c, metric, 1 << 20) {
                out.push(Ratio {
                    what: format!("growth: log-log slope of {c} {word} time, 1 MiB and up"),
                    value: Some(s),
                    target: Target::AtMost(1.1),
                });
            }
        }
    }
    out
}

/// The ratios as a text table.
pub fn table(ratios: &[Ratio]) -> String {
    let width = ratios.iter().map(|r| r.what.len()).max().unwrap_or(0);
    let mut out = format!(
        "{:width$}  {:>9}  {:>8}  verdict\n",
        "ratio", "value", "target"
    );
    for r in ratios {
        let value = r
            .value
            .map(|v| format!("{v:.3}"))
            .unwrap_or_else(|| "-".into());
        out += &format!(
            "{:width$}  {value:>9}  {:>8}  {}\n",
            r.what,
            r.target_text(),
            r.verdict()
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::Sample;

    fn sample(c: Contender, size: u64, touch_ns: u64, faults: u64, alloc_ns: u64) -> Sample {
        Sample {
            contender: c,
            size,
            repeat: 0,
            alloc_ns: Some(alloc_ns),
            mmap_ns: Some(0),
            mmap_faults: Some(0),
            touch_ns: Some(touch_ns),
            touch_faults: Some(faults),
            copy_bytes: size,
            write_ns: 1000,
            read_ns: 1000,
            free_ns: 10 * size,
        }
    }

    #[test]
    fn targets_from_medians() {
        let huge = Contender::Cmamap(Kind::Huge);
        let fault = Contender::Cmamap(Kind::Fault);
        let samples = [
            sample(huge, FOCUS, 1000, 32, 10),
            sample(fault, FOCUS, 9000, 16384, 10),
            sample(Contender::DmaHeap, FOCUS, 2000, 16384, 20),
        ];
        let ratios = compute(&Summary::of(&samples));
        let find = |what: &str| ratios.iter().find(|r| r.what == what).unwrap();
        let faults = find("touch 64 MiB: faults of fault / faults of huge");
        assert_eq!((faults.value, faults.verdict()), (Some(512.0), "met"));
        let time = find("touch 64 MiB: time of dma-heap / time of huge");
        assert_eq!((time.value, time.verdict()), (Some(2.0), "met"));
        let alloc = find("alloc latency, huge / dma-heap, 64 MiB");
        assert_eq!((alloc.value, alloc.verdict()), (Some(0.5), "met"));
        let missing = find("alloc latency, remap / dma-heap, 64 MiB");
        assert_eq!((missing.value, missing.verdict()), (None, "n/a"));
        assert!(table(&ratios).contains("MISSED") || table(&ratios).contains("met"));
    }

    #[test]
    fn slopes_of_linear_and_constant_curves() {
        let c = Contender::Anon;
        let sizes = [1u64 << 20, 4 << 20, 16 << 20, 64 << 20];
        let samples: Vec<Sample> = sizes.iter().map(|&s| sample(c, s, 7, 0, 5)).collect();
        let summary = Summary::of(&samples);
        let free = slope(&summary, c, Metric::Free, 1 << 20).unwrap();
        assert!((free - 1.0).abs() < 1e-9, "{free}");
        let touch = slope(&summary, c, Metric::Touch, 1 << 20).unwrap();
        assert!(touch.abs() < 1e-9, "{touch}");
        assert_eq!(slope(&summary, c, Metric::Free, 32 << 20), None);
    }
}
