//! How the cost of single calls grows with the number of live blocks (in the VM): ALLOC,
//! FREE, INFO, mmap and pread of one block while 1, 1,000, 10,000 and 100,000 blocks live
//! across many files, and close() of a file that holds 65,536 blocks while 100,000 others
//! live.
//!
//! At each level the probe file allocates a fresh target block, the newest of all, so that a
//! driver that scanned one list from its head would meet every other block first. Each row's
//! block counts are checked against STAT; the times are only reported.

use std::fmt::Write as _;

use cmamap::{AllocRequest, Device, Prot, Strategy};
use serde::{Deserialize, Serialize};

use crate::clock;
use crate::csv_section;
use crate::stats::Spread;

/// The line before the CSV section on stdout.
pub const BEGIN: &str = "CMAMAP-BENCH-SCALE-BEGIN";
/// The line after it.
pub const END: &str = "CMAMAP-BENCH-SCALE-END";

/// The operations, in the table's order.
pub const OPS: [&str; 5] = ["alloc", "free", "info", "mmap", "pread"];

/// One figure: an operation's times with `live` blocks alive.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub op: String,
    pub live: u64,
    pub repeats: usize,
    pub median_ns: f64,
    pub min_ns: f64,
    pub max_ns: f64,
}

/// What to measure.
pub struct Plan {
    /// Live block counts, rising.
    pub levels: Vec<u64>,
    /// Filler blocks per file (the default per-file limit holds 65,536 pages).
    pub per_file: u64,
    pub repeats: u32,
    /// Blocks of the file whose close() is timed at the last level (0: none).
    pub close_blocks: u64,
}

fn elapsed_ns(start: u64) -> f64 {
    clock::ticks_to_ns(clock::ticks().saturating_sub(start)) as f64
}

fn row(rows: &mut Vec<Row>, op: &str, live: u64, samples: &[f64]) {
    if let Some(s) = Spread::of(samples) {
        rows.push(Row {
            op: op.to_owned(),
            live,
            repeats: s.count,
            median_ns: s.median.round(),
            min_ns: s.min.round(),
            max_ns: s.max.round(),
        });
    }
}

/// Files full of one-page blocks that stay alive until dropped.
struct Filler {
    files: Vec<Device>,
    in_last: u64,
    per_file: u64,
    page: u64,
}

impl Filler {
    fn add(&mut self, count: u64) -> Result<(), String> {
        for _ in 0..count {
            if self.files.is_empty() || self.in_last >= self.per_file {
                self.files
                    .push(Device::open().map_err(|e| format!("open: {e}"))?);
                self.in_last = 0;
            }
            let dev = self.files.last().ok_or("no file")?;
            dev.alloc(&AllocRequest::new(self.page).strategy(Strategy::Remap))
                .map_err(|e| format!("ALLOC of filler block: {e}"))?
                .into_raw_id();
            self.in_last += 1;
        }
        Ok(())
    }
}

/// The blocks alive, by STAT.
fn live(dev: &Device) -> Result<u64, String> {
    Ok(dev
        .stat()
        .map_err(|e| format!("STAT: {e}"))?
        .blocks_total
        .into())
}

fn expect_live(dev: &Device, want: u64, when: &str) -> Result<(), String> {
    let got = live(dev)?;
    if got != want {
        return Err(format!("{when}: {got} blocks live, expected {want}"));
    }
    Ok(())
}

/// Runs the plan and prints the section; an error ends it early.
pub fn run(plan: &Plan) -> Result<(), String> {
    let page = cmamap::page_size() as u64;
    let probe = Device::open().map_err(|e| e.to_string())?;
    let base = live(&probe)?;
    let mut filler = Filler {
        files: Vec::new(),
        in_last: 0,
        per_file: plan.per_file.max(1),
        page,
    };
    let mut targets = 0u64;
    let mut rows = Vec::new();
    let mut buf = vec![0u8; page as usize];
    for &level in &plan.levels {
        // The target block counts towards the level.
        let have = targets + filler_count(&filler);
        filler.add(level.saturating_sub(have + 1))?;
        let target = probe
            .alloc(&AllocRequest::new(page).strategy(Strategy::Remap))
            .map_err(|e| format!("ALLOC of the target: {e}"))?
            .into_raw_id();
        targets += 1;
        let now = base + targets + filler_count(&filler);
        expect_live(&probe, now, &format!("level {level}"))?;
        let offset = probe.info(target).map_err(|e| format!("INFO: {e}"))?.offset;
        let (mut alloc, mut free, mut info, mut mmap, mut pread) =
            (vec![], vec![], vec![], vec![], vec![]);
        for _ in 0..plan.repeats {
            let start = clock::ticks();
            probe.info(target).map_err(|e| format!("INFO: {e}"))?;
            info.push(elapsed_ns(start));

            let start = clock::ticks();
            let mapping = probe
                .map(offset, page as usize, Prot::ReadWrite)
                .map_err(|e| format!("mmap: {e}"))?;
            mmap.push(elapsed_ns(start));
            drop(mapping);

            let start = clock::ticks();
            let read = probe
                .pread(offset, &mut buf)
                .map_err(|e| format!("pread: {e}"))?;
            pread.push(elapsed_ns(start));
            if read != buf.len() {
                return Err(format!("pread read {read} bytes, not {}", buf.len()));
            }

            let start = clock::ticks();
            let id = probe
                .alloc(&AllocRequest::new(page).strategy(Strategy::Remap))
                .map_err(|e| format!("ALLOC: {e}"))?
                .into_raw_id();
            alloc.push(elapsed_ns(start));
            let start = clock::ticks();
            probe.free(id).map_err(|e| format!("FREE: {e}"))?;
            free.push(elapsed_ns(start));
        }
        expect_live(&probe, now, &format!("after the calls at level {level}"))?;
        let shown = now - base;
        row(&mut rows, "alloc", shown, &alloc);
        row(&mut rows, "free", shown, &free);
        row(&mut rows, "info", shown, &info);
        row(&mut rows, "mmap", shown, &mmap);
        row(&mut rows, "pread", shown, &pread);
        eprintln!("scale: {shown} blocks live, measured");
    }
    if plan.close_blocks > 0 {
        let now = live(&probe)?;
        let big = Device::open().map_err(|e| e.to_string())?;
        for _ in 0..plan.close_blocks {
            big.alloc(&AllocRequest::new(page).strategy(Strategy::Remap))
                .map_err(|e| format!("ALLOC into the file to close: {e}"))?
                .into_raw_id();
        }
        expect_live(&probe, now + plan.close_blocks, "before close")?;
        let start = clock::ticks();
        drop(big);
        let took = elapsed_ns(start);
        expect_live(&probe, now, "after close")?;
        row(
            &mut rows,
            &format!("close_{}", plan.close_blocks),
            now - base,
            &[took],
        );
    }
    drop(filler);
    drop(probe);
    csv_section::print(&rows, BEGIN, END)
}

fn filler_count(filler: &Filler) -> u64 {
    match filler.files.len() as u64 {
        0 => 0,
        n => (n - 1) * filler.per_file + filler.in_last,
    }
}

/// The rows of the CSV section of a run's output (the VM's result.txt or console).
pub fn section(text: &str) -> Result<Vec<Row>, String> {
    csv_section::read(text, BEGIN, END, "scale")
}

fn levels(rows: &[Row]) -> Vec<u64> {
    let mut levels: Vec<u64> = rows
        .iter()
        .filter(|r| OPS.contains(&r.op.as_str()))
        .map(|r| r.live)
        .collect();
    levels.sort_unstable();
    levels.dedup();
    levels
}

fn median(rows: &[Row], op: &str, live: u64) -> Option<f64> {
    rows.iter()
        .find(|r| r.op == op && r.live == live)
        .map(|r| r.median_ns)
}

/// A text table of `rows`: per operation the median in microseconds at each level, and the
/// ratio of the largest level's median to the smallest's (the goal: at most 2); then the
/// close() rows.
pub fn table(rows: &[Row]) -> String {
    let levels = levels(rows);
    let mut out = String::new();
    let _ = write!(out, "{:<8}", "op (us)");
    for live in &levels {
        let _ = write!(out, " {:>20}", format!("{live} live"));
    }
    let _ = writeln!(out, " {:>10}", "last/first");
    for op in OPS {
        let _ = write!(out, "{op:<8}");
        for &live in &levels {
            let cell =
                rows.iter()
                    .find(|r| r.op == op && r.live == live)
                    .map_or("-".to_owned(), |r| {
                        format!(
                            "{:.1} ({:.0}-{:.0})",
                            r.median_ns / 1e3,
                            r.min_ns / 1e3,
                            r.max_ns / 1e3
                        )
                    });
            let _ = write!(out, " {cell:>20}");
        }
        let first = levels.first().and_then(|&l| median(rows, op, l));
        let last = levels.last().and_then(|&l| median(rows, op, l));
        let ratio = match (first, last) {
            (Some(first), Some(last)) if first > 0.0 => format!("{:.2}x", last / first),
            _ => "-".to_owned(),
        };
        let _ = writeln!(out, " {ratio:>10}");
    }
    for r in rows.iter().filter(|r| r.op.starts_with("close_")) {
        let blocks = r.op.trim_start_matches("close_");
        let _ = writeln!(
            out,
            "close() of a file holding {blocks} blocks while {} others live: {:.1} ms",
            r.live,
            r.median_ns / 1e6
        );
    }
    out
}

/// The chart: median time against live blocks, log-log, one line per operation, as SVG;
/// `before` (another module's run, if any) dashed.
pub fn chart(rows: &[Row], before: &[Row], title: &str, note: &str) -> String {
    const W: f64 = 640.0;
    const H: f64 = 420.0;
    const LEFT: f64 = 70.0;
    const TOP: f64 = 70.0;
    const PW: f64 = 420.0;
    const PH: f64 = 300.0;
    let colours = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"];
    let levels = levels(rows);
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" \
         viewBox=\"0 0 {W} {H}\" font-family=\"sans-serif\" font-size=\"11\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"10\" y=\"22\" font-size=\"16\" font-weight=\"bold\">{}</text>\n\
         <text x=\"10\" y=\"42\" fill=\"#444\">{}</text>",
        escape(title),
        escape(note)
    );
    let medians: Vec<f64> = rows
        .iter()
        .chain(before)
        .filter(|r| OPS.contains(&r.op.as_str()) && r.median_ns > 0.0)
        .map(|r| r.median_ns / 1e3)
        .collect();
    let (Some(&lo_l), Some(&hi_l)) = (levels.first(), levels.last()) else {
        svg.push_str("<text x=\"10\" y=\"120\">no data</text>\n</svg>\n");
        return svg;
    };
    let lo_y = medians
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min)
        .log10()
        .floor() as i32;
    let hi_y = medians
        .iter()
        .copied()
        .fold(0.0, f64::max)
        .log10()
        .ceil()
        .max(f64::from(lo_y + 1)) as i32;
    let lx = ((lo_l.max(1) as f64).log10(), (hi_l.max(10) as f64).log10());
    let x = |live: u64| LEFT + ((live.max(1) as f64).log10() - lx.0) / (lx.1 - lx.0).max(1.0) * PW;
    let y =
        |us: f64| TOP + PH - (us.log10() - f64::from(lo_y)) / f64::from(hi_y - lo_y).max(1.0) * PH;
    let _ = writeln!(
        svg,
        "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{PW}\" height=\"{PH}\" fill=\"none\" stroke=\"#999\"/>"
    );
    for exp in lo_y..=hi_y {
        let yy = y(10f64.powi(exp));
        let label = match exp {
            i32::MIN..=2 => format!("{} µs", 10i64.pow(exp.max(0) as u32)),
            3..=5 => format!("{} ms", 10i64.pow((exp - 3) as u32)),
            _ => format!("{} s", 10i64.pow((exp - 6).clamp(0, 9) as u32)),
        };
        let _ = writeln!(
            svg,
            "<line x1=\"{LEFT}\" y1=\"{yy:.1}\" x2=\"{:.1}\" y2=\"{yy:.1}\" stroke=\"#eee\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{label}</text>",
            LEFT + PW,
            LEFT - 6.0,
            yy + 4.0
        );
    }
    for &live in &levels {
        let xx = x(live);
        let _ = writeln!(
            svg,
            "<text x=\"{xx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{live}</text>",
            TOP + PH + 16.0
        );
    }
    let _ = writeln!(
        svg,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">live blocks</text>",
        LEFT + PW / 2.0,
        TOP + PH + 34.0
    );
    for (i, op) in OPS.iter().enumerate() {
        let colour = colours[i % colours.len()];
        let line = |rows: &[Row]| -> String {
            levels
                .iter()
                .filter_map(|&l| median(rows, op, l).map(|ns| (l, ns / 1e3)))
                .filter(|&(_, us)| us > 0.0)
                .map(|(l, us)| format!("{:.1},{:.1}", x(l), y(us)))
                .collect::<Vec<_>>()
                .join(" ")
        };
        if !before.is_empty() {
            let _ = writeln!(
                svg,
                "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\" \
                 stroke-dasharray=\"6 3\" points=\"{}\"/>",
                line(before)
            );
        }
        let _ = writeln!(
            svg,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>\
             <line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"{colour}\" stroke-width=\"2.5\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\">{op}</text>",
            line(rows),
            LEFT + PW + 20.0,
            TOP + 10.0 + i as f64 * 18.0,
            LEFT + PW + 44.0,
            TOP + 10.0 + i as f64 * 18.0,
            LEFT + PW + 50.0,
            TOP + 14.0 + i as f64 * 18.0
        );
    }
    let mut line = TOP + 10.0 + OPS.len() as f64 * 18.0 + 10.0;
    if !before.is_empty() {
        let _ = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{line:.1}\" fill=\"#444\">dashed: before</text>",
            LEFT + PW + 20.0
        );
        line += 24.0;
    }
    for (label, rows) in [("", rows), ("before: ", before)] {
        for r in rows.iter().filter(|r| r.op.starts_with("close_")) {
            let _ = writeln!(
                svg,
                "<text x=\"{:.1}\" y=\"{line:.1}\">{label}close of {}</text>\
                 <text x=\"{:.1}\" y=\"{:.1}\">blocks: {:.1} ms</text>",
                LEFT + PW + 20.0,
                r.op.trim_start_matches("close_"),
                LEFT + PW + 20.0,
                line + 14.0,
                r.median_ns / 1e6
            );
            line += 34.0;
        }
    }
    svg.push_str("</svg>\n");
    svg
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Vec<Row> {
        let mut rows = Vec::new();
        for (live, ns) in [(1, 2000.0), (100_000, 3000.0)] {
            for op in OPS {
                rows.push(Row {
                    op: op.into(),
                    live,
                    repeats: 3,
                    median_ns: ns,
                    min_ns: ns - 1.0,
                    max_ns: ns + 1.0,
                });
            }
        }
        rows.push(Row {
            op: "close_65536".into(),
            live: 100_000,
            repeats: 1,
            median_ns: 5e6,
            min_ns: 5e6,
            max_ns: 5e6,
        });
        rows
    }

    #[test]
    fn section_table_and_chart() {
        let rows = rows();
        let text = format!(
            "noise\n{BEGIN}\n{}{END}\n",
            csv_section::to_csv(&rows).unwrap()
        );
        assert_eq!(section(&text).unwrap(), rows);
        let table = table(&rows);
        assert!(table.contains("1.50x"), "{table}");
        assert!(
            table.contains("holding 65536 blocks while 100000 others live: 5.0 ms"),
            "{table}"
        );
        let svg = chart(&rows, &[], "t", "n");
        assert_eq!(svg.matches("<polyline").count(), OPS.len());
        let svg = chart(&rows, &rows, "t", "n");
        assert_eq!(svg.matches("<polyline").count(), 2 * OPS.len());
        assert!(svg.contains("close of 65536"), "{svg}");
    }
}
