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
    /// For a ratio of two medians: whether the two min-max ranges overlap, i.e. whether the
    /// repeats cannot tell the two apart.
    pub overlap: Option<bool>,
}

impl Ratio {
    fn new(what: String, (value, overlap): (Option<f64>, Option<bool>), target: Target) -> Self {
        Self {
            what,
            value,
            target,
            overlap,
        }
    }

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

/// The ratio of the medians of `metric`, a over b, at `size`, and whether their ranges
/// overlap.
fn pair(
    summary: &Summary,
    a: Contender,
    b: Contender,
    size: u64,
    metric: Metric,
) -> (Option<f64>, Option<bool>) {
    match (summary.get(a, size, metric), summary.get(b, size, metric)) {
        (Some(x), Some(y)) if y.median != 0.0 => (
            Some(x.median / y.median),
            Some(x.min <= y.max && y.min <= x.max),
        ),
        _ => (None, None),
    }
}

/// [`pair`] at the size where the ratio is smallest (or largest, if not `smallest`).
fn worst(
    summary: &Summary,
    a: Contender,
    b: Contender,
    metric: Metric,
    smallest: bool,
) -> (Option<f64>, Option<bool>) {
    summary
        .sizes()
        .into_iter()
        .filter_map(|size| match pair(summary, a, b, size, metric) {
            (Some(v), overlap) => Some((v, overlap)),
            _ => None,
        })
        .reduce(|x, y| if (y.0 < x.0) == smallest { y } else { x })
        .map_or((None, None), |(v, overlap)| (Some(v), overlap))
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
    let focus = |a: Contender, b: Contender, m: Metric| pair(summary, a, b, FOCUS, m);
    let alone = |v: Option<f64>| (v, None);
    let anon = Contender::Anon;
    let heap = Contender::DmaHeap;
    let mut out = Vec::new();
    for kind in CACHED {
        let c = Contender::Cmamap(kind);
        for (metric, word) in [(Metric::WriteBw, "write"), (Metric::ReadBw, "read")] {
            out.push(Ratio::new(
                format!("memcpy {word} bandwidth, {c} / anon, 64 MiB"),
                focus(c, anon, metric),
                Target::AtLeast(0.95),
            ));
            out.push(Ratio::new(
                format!("memcpy {word} bandwidth, {c} / anon, worst size"),
                worst(summary, c, anon, metric, true),
                Target::AtLeast(0.95),
            ));
        }
    }
    for (metric, word) in [(Metric::WriteBw, "write"), (Metric::ReadBw, "read")] {
        out.push(Ratio::new(
            format!("memcpy {word} bandwidth, dma-heap / anon, 64 MiB"),
            focus(heap, anon, metric),
            Target::None,
        ));
    }
    let huge = Contender::Cmamap(Kind::Huge);
    let fault = Contender::Cmamap(Kind::Fault);
    out.push(Ratio::new(
        "touch 64 MiB: faults of fault / faults of huge".into(),
        focus(fault, huge, Metric::TouchFaults),
        Target::AtLeast(100.0),
    ));
    out.push(Ratio::new(
        "touch 64 MiB: time of dma-heap / time of huge".into(),
        focus(heap, huge, Metric::Touch),
        Target::AtLeast(1.0),
    ));
    let mmap_touch = |c: Contender| Some(at(c, Metric::Mmap)? + at(c, Metric::Touch)?);
    out.push(Ratio::new(
        "mmap + touch 64 MiB: time of dma-heap / time of huge".into(),
        alone(div(mmap_touch(heap), mmap_touch(huge))),
        Target::AtLeast(1.0),
    ));
    out.push(Ratio::new(
        "touch 64 MiB: time of anon / time of huge".into(),
        focus(anon, huge, Metric::Touch),
        Target::None,
    ));
    let remap = Contender::Cmamap(Kind::Remap);
    out.push(Ratio::new(
        "remap first-touch faults, most at any size".into(),
        alone(
            summary
                .sizes()
                .into_iter()
                .filter_map(|size| summary.get(remap, size, Metric::TouchFaults).map(|s| s.max))
                .reduce(f64::max),
        ),
        Target::Exactly(0.0),
    ));
    for kind in CACHED {
        let c = Contender::Cmamap(kind);
        out.push(Ratio::new(
            format!("alloc latency, {c} / dma-heap, 64 MiB"),
            focus(c, heap, Metric::Alloc),
            Target::AtMost(1.0),
        ));
        out.push(Ratio::new(
            format!("alloc latency, {c} / dma-heap, worst size"),
            worst(summary, c, heap, Metric::Alloc, false),
            Target::AtMost(1.0),
        ));
    }
    let io = Contender::DeviceIo;
    out.push(Ratio::new(
        "pwrite bandwidth / remap memcpy write bandwidth, 64 MiB".into(),
        focus(io, remap, Metric::WriteBw),
        Target::None,
    ));
    out.push(Ratio::new(
        "pread bandwidth / remap memcpy read bandwidth, 64 MiB".into(),
        focus(io, remap, Metric::ReadBw),
        Target::None,
    ));
    for c in summary.contenders() {
        for (metric, word) in [
            (Metric::Alloc, "alloc"),
            (Metric::Touch, "touch"),
            (Metric::Free, "free"),
        ] {
            if let Some(s) = slope(summary, c, metric, 1 << 20) {
                out.push(Ratio::new(
                    format!("growth: log-log slope of {c} {word} time, 1 MiB and up"),
                    alone(Some(s)),
                    Target::AtMost(1.1),
                ));
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
        let noise = if r.overlap == Some(true) {
            " (min-max ranges overlap)"
        } else {
            ""
        };
        out += &format!(
            "{:width$}  {value:>9}  {:>8}  {}{noise}\n",
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
    fn worst_size_and_overlapping_ranges() {
        let remap = Contender::Cmamap(Kind::Remap);
        let heap = Contender::DmaHeap;
        let samples = [
            sample(remap, 4096, 0, 0, 10),
            sample(remap, 4096, 0, 0, 30),
            sample(heap, 4096, 0, 0, 20),
            sample(remap, FOCUS, 0, 0, 90),
            sample(heap, FOCUS, 0, 0, 30),
        ];
        let summary = Summary::of(&samples);
        // 4 KiB: remap 10-30 (median 20) against 20: overlapping, ratio 1.
        assert_eq!(
            pair(&summary, remap, heap, 4096, Metric::Alloc),
            (Some(1.0), Some(true))
        );
        // The worst (largest) alloc ratio is at 64 MiB: 3, clearly apart.
        assert_eq!(
            worst(&summary, remap, heap, Metric::Alloc, false),
            (Some(3.0), Some(false))
        );
        assert_eq!(
            worst(&summary, remap, heap, Metric::Alloc, true),
            (Some(1.0), Some(true))
        );
        let ratios = compute(&summary);
        let text = table(&ratios);
        let line = text
            .lines()
            .find(|l| l.starts_with("alloc latency, remap / dma-heap, worst size"))
            .unwrap();
        assert!(line.ends_with("MISSED"), "{line}");
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
