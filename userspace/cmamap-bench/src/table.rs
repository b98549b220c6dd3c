//! The results table for the terminal (and the README).

use cmamap::units::format_size;

use crate::stats::Spread;
use crate::summary::{Metric, Summary};

/// Three significant digits: `0.512`, `12.3`, `4560`, `1.23e6`.
pub fn num(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if a >= 1e6 {
        format!("{v:.2e}")
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// `median (min-max)`, or `-` for a step the contender does not have. Fault counts are
/// whole numbers (a median of two may end in .5).
fn cell(s: Option<Spread>, metric: Metric) -> String {
    let fmt = |v: f64| match metric {
        Metric::MmapFaults | Metric::TouchFaults => format!("{v}"),
        _ => num(v),
    };
    match s {
        Some(s) if s.min == s.max => fmt(s.median),
        Some(s) => format!("{} ({}-{})", fmt(s.median), fmt(s.min), fmt(s.max)),
        None => "-".into(),
    }
}

const COLUMNS: [(&str, Metric); 8] = [
    ("alloc us", Metric::Alloc),
    ("mmap us", Metric::Mmap),
    ("mmap flt", Metric::MmapFaults),
    ("touch us", Metric::Touch),
    ("touch flt", Metric::TouchFaults),
    ("write MB/s", Metric::WriteBw),
    ("read MB/s", Metric::ReadBw),
    ("free us", Metric::Free),
];

/// One row per contender and size: `median (min-max)` of each step.
pub fn render(summary: &Summary, sizes: Option<&[u64]>) -> String {
    let columns = &COLUMNS;
    let mut rows: Vec<Vec<String>> = vec![std::iter::once("size".to_string())
        .chain(std::iter::once("contender".to_string()))
        .chain(columns.iter().map(|(name, _)| name.to_string()))
        .collect()];
    for size in summary.sizes() {
        if sizes.is_some_and(|only| !only.contains(&size)) {
            continue;
        }
        for c in summary.contenders() {
            let mut row = vec![format_size(size).replace(' ', ""), c.to_string()];
            row.extend(
                columns
                    .iter()
                    .map(|&(_, m)| cell(summary.get(c, size, m), m)),
            );
            rows.push(row);
        }
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for (index, row) in rows.iter().enumerate() {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (text, &w))| {
                if i < 2 {
                    format!("{text:<w$}")
                } else {
                    format!("{text:>w$}")
                }
            })
            .collect();
        out += line.join("  ").trim_end();
        out.push('\n');
        if index == 0 {
            out += &"-".repeat(widths.iter().sum::<usize>() + 2 * (widths.len() - 1));
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contender::Contender;
    use crate::sample::Sample;

    #[test]
    fn numbers_keep_three_digits() {
        assert_eq!(num(0.0), "0");
        assert_eq!(num(0.01234), "0.012");
        assert_eq!(num(1.234), "1.23");
        assert_eq!(num(12.34), "12.3");
        assert_eq!(num(1234.4), "1234");
        assert_eq!(num(1.5e7), "1.50e7");
    }

    #[test]
    fn rows_show_medians_and_ranges() {
        let s = |repeat, touch_ns| Sample {
            contender: Contender::Anon,
            size: 4096,
            repeat,
            alloc_ns: None,
            mmap_ns: Some(2000),
            mmap_faults: Some(0),
            touch_ns: Some(touch_ns),
            touch_faults: Some(1),
            copy_bytes: 4096,
            write_ns: 1000,
            read_ns: 1000,
            free_ns: 1000,
        };
        let text = render(&Summary::of(&[s(0, 1000), s(1, 3000), s(2, 2000)]), None);
        let row = text.lines().nth(2).unwrap();
        assert!(row.starts_with("4KiB  anon"), "{text}");
        assert!(row.contains("2.00 (1.00-3.00)"), "{text}");
        assert!(row.contains(" - "), "{text}");
        assert_eq!(render(&Summary::default(), Some(&[])).lines().count(), 2);
    }
}
