//! The chart: time against size per contender, log-log, one panel per step, as SVG.

use std::fmt::Write;

use cmamap::units::format_size;

use crate::contender::Contender;
use crate::summary::{Metric, Summary};

const PANELS: [(Metric, &str); 6] = [
    (Metric::Alloc, "allocate"),
    (Metric::Mmap, "mmap call"),
    (Metric::Touch, "first touch of every page"),
    (Metric::Write, "copy in (memcpy / pwrite), one pass"),
    (Metric::Read, "copy out (memcpy / pread), one pass"),
    (Metric::Free, "munmap + free"),
];

const PANEL_W: f64 = 410.0;
const PANEL_H: f64 = 360.0;
const LEFT: f64 = 58.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 26.0;
const BOTTOM: f64 = 40.0;
const HEADER: f64 = 92.0;

fn colour(c: Contender) -> &'static str {
    match c.name() {
        "remap" => "#1f77b4",
        "fault" => "#ff7f0e",
        "page" => "#2ca02c",
        "huge" => "#d62728",
        "anon" => "#7f7f7f",
        "anon-populate" => "#17becf",
        "dma-heap" => "#9467bd",
        _ => "#8c564b",
    }
}

/// cmamap's own strategies are solid, the others dashed.
fn dash(c: Contender) -> &'static str {
    if matches!(c, Contender::Cmamap(_)) {
        ""
    } else {
        " stroke-dasharray=\"6 3\""
    }
}

/// A power of ten of microseconds, as a time.
fn decade_label(exp: i32) -> String {
    let (unit, base) = match exp {
        i32::MIN..=-1 => ("ns", exp + 3),
        0..=2 => ("µs", exp),
        3..=5 => ("ms", exp - 3),
        _ => ("s", exp - 6),
    };
    format!("{}{unit}", 10i64.pow(base.clamp(0, 9) as u32))
}

struct Axes {
    x0: f64,
    y0: f64,
    w: f64,
    h: f64,
    lx: (f64, f64),
    ly: (i32, i32),
}

impl Axes {
    fn x(&self, size: u64) -> f64 {
        let t = ((size as f64).log2() - self.lx.0) / (self.lx.1 - self.lx.0).max(1.0);
        self.x0 + t * self.w
    }

    fn y(&self, us: f64) -> f64 {
        let (lo, hi) = (f64::from(self.ly.0), f64::from(self.ly.1));
        self.y0 + self.h - (us.log10() - lo) / (hi - lo) * self.h
    }
}

/// The chart of `summary` as an SVG document; `note` goes under the title.
pub fn render(summary: &Summary, title: &str, note: &str) -> String {
    let sizes = summary.sizes();
    let contenders = summary.contenders();
    let width = 3.0 * PANEL_W + 20.0;
    let height = HEADER + 2.0 * PANEL_H + 10.0;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"11\">"
    );
    let _ = writeln!(svg, "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>");
    let _ = writeln!(
        svg,
        "<text x=\"10\" y=\"22\" font-size=\"16\" font-weight=\"bold\">{}</text>",
        escape(title)
    );
    let _ = writeln!(
        svg,
        "<text x=\"10\" y=\"42\" fill=\"#444\">{}</text>",
        escape(note)
    );
    for (i, c) in contenders.iter().enumerate() {
        let x = 10.0 + i as f64 * 150.0;
        let _ = writeln!(
            svg,
            "<line x1=\"{x}\" y1=\"66\" x2=\"{}\" y2=\"66\" stroke=\"{}\" stroke-width=\"2.5\"{}/>\
             <text x=\"{}\" y=\"70\">{c}</text>",
            x + 28.0,
            colour(*c),
            dash(*c),
            x + 34.0
        );
    }
    let (Some(&first), Some(&last)) = (sizes.first(), sizes.last()) else {
        svg.push_str("<text x=\"10\" y=\"120\">no data</text>\n</svg>\n");
        return svg;
    };
    for (index, (metric, name)) in PANELS.iter().enumerate() {
        let px = 10.0 + (index % 3) as f64 * PANEL_W;
        let py = HEADER + (index / 3) as f64 * PANEL_H;
        panel(
            &mut svg,
            summary,
            &contenders,
            &sizes,
            (first, last),
            *metric,
            name,
            (px, py),
            index,
        );
    }
    svg.push_str("</svg>\n");
    svg
}

#[allow(clippy::too_many_arguments)]
fn panel(
    svg: &mut String,
    summary: &Summary,
    contenders: &[Contender],
    sizes: &[u64],
    span: (u64, u64),
    metric: Metric,
    name: &str,
    origin: (f64, f64),
    index: usize,
) {
    let values: Vec<f64> = contenders
        .iter()
        .flat_map(|&c| sizes.iter().filter_map(move |&s| summary.get(c, s, metric)))
        .flat_map(|s| [s.min, s.max])
        .filter(|v| *v > 0.0)
        .collect();
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(0.0, f64::max);
    let (lo, hi) = if values.is_empty() {
        (0, 1)
    } else {
        let lo = lo.log10().floor() as i32;
        (lo, (hi.log10().ceil() as i32).max(lo + 1))
    };
    let axes = Axes {
        x0: origin.0 + LEFT,
        y0: origin.1 + TOP,
        w: PANEL_W - LEFT - RIGHT,
        h: PANEL_H - TOP - BOTTOM,
        lx: ((span.0 as f64).log2(), (span.1 as f64).log2()),
        ly: (lo, hi),
    };
    let (x0, y0, w, h) = (axes.x0, axes.y0, axes.w, axes.h);
    let _ = writeln!(svg, "<g>");
    let _ = writeln!(
        svg,
        "<text x=\"{x0}\" y=\"{}\" font-weight=\"bold\">{}</text>",
        y0 - 8.0,
        escape(name)
    );
    let _ = writeln!(svg, "<clipPath id=\"clip{index}\"><rect x=\"{x0}\" y=\"{y0}\" width=\"{w}\" height=\"{h}\"/></clipPath>");
    let _ = writeln!(
        svg,
        "<rect x=\"{x0}\" y=\"{y0}\" width=\"{w}\" height=\"{h}\" fill=\"none\" stroke=\"#888\"/>"
    );
    for exp in lo..=hi {
        let y = axes.y(10f64.powi(exp));
        let _ = writeln!(
            svg,
            "<line x1=\"{x0}\" y1=\"{y:.1}\" x2=\"{}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            x0 + w,
            x0 - 4.0,
            y + 4.0,
            decade_label(exp)
        );
    }
    for &size in sizes {
        let x = axes.x(size);
        let _ = writeln!(
            svg,
            "<line x1=\"{x:.1}\" y1=\"{y0}\" x2=\"{x:.1}\" y2=\"{}\" stroke=\"#eee\"/>\
             <text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\" font-size=\"9\">{}</text>",
            y0 + h,
            y0 + h + 13.0,
            format_size(size).replace(' ', "").replace("iB", "")
        );
    }
    let _ = writeln!(
        svg,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#444\">size (log)</text>",
        x0 + w / 2.0,
        y0 + h + 30.0
    );
    // A line of slope 1 from the top right corner: anything parallel grows linearly.
    let (xa, xb) = (axes.x(span.0), axes.x(span.1));
    let drop = (span.1 as f64 / span.0 as f64).log10() / f64::from(hi - lo) * h;
    let _ = writeln!(
        svg,
        "<line x1=\"{xb:.1}\" y1=\"{y0:.1}\" x2=\"{xa:.1}\" y2=\"{:.1}\" stroke=\"#bbb\" \
         stroke-dasharray=\"2 3\" clip-path=\"url(#clip{index})\"/>",
        y0 + drop
    );
    let _ = writeln!(
        svg,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#999\" font-size=\"9\">∝ size</text>",
        xb - 4.0,
        y0 + 12.0
    );
    for &c in contenders {
        let points: Vec<(f64, f64, f64, f64)> = sizes
            .iter()
            .filter_map(|&s| summary.get(c, s, metric).map(|v| (s, v)))
            .filter(|(_, v)| v.median > 0.0)
            .map(|(s, v)| {
                (
                    axes.x(s),
                    axes.y(v.median),
                    axes.y(v.min.max(v.median / 1e9)),
                    axes.y(v.max),
                )
            })
            .collect();
        if points.is_empty() {
            continue;
        }
        let path: Vec<String> = points
            .iter()
            .map(|p| format!("{:.1},{:.1}", p.0, p.1))
            .collect();
        let _ = writeln!(
            svg,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"1.8\"{} clip-path=\"url(#clip{index})\"><title>{c}</title></polyline>",
            path.join(" "),
            colour(c),
            dash(c)
        );
        for (x, y, ymin, ymax) in points {
            let _ = writeln!(
                svg,
                "<line x1=\"{x:.1}\" y1=\"{ymin:.1}\" x2=\"{x:.1}\" y2=\"{ymax:.1}\" stroke=\"{0}\" clip-path=\"url(#clip{index})\"/>\
                 <circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"2.2\" fill=\"{0}\" clip-path=\"url(#clip{index})\"/>",
                colour(c)
            );
        }
    }
    let _ = writeln!(svg, "</g>");
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::Sample;

    #[test]
    fn decades_read_as_times() {
        assert_eq!(decade_label(-3), "1ns");
        assert_eq!(decade_label(-1), "100ns");
        assert_eq!(decade_label(0), "1µs");
        assert_eq!(decade_label(4), "10ms");
        assert_eq!(decade_label(6), "1s");
    }

    #[test]
    fn a_chart_has_a_line_per_contender_and_panel() {
        let samples: Vec<Sample> = [4096u64, 65536, 1 << 20]
            .iter()
            .flat_map(|&size| {
                [Contender::Anon, Contender::DmaHeap].map(|c| Sample {
                    contender: c,
                    size,
                    repeat: 0,
                    alloc_ns: Some(size),
                    mmap_ns: Some(1000),
                    mmap_faults: Some(0),
                    touch_ns: Some(size * 3),
                    touch_faults: Some(size / 4096),
                    copy_bytes: size,
                    write_ns: size,
                    read_ns: size,
                    free_ns: 500 + size,
                })
            })
            .collect();
        let svg = render(&Summary::of(&samples), "t & t", "n");
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("t &amp; t"));
        assert_eq!(svg.matches("<polyline").count(), 2 * PANELS.len());
        assert_eq!(svg.matches("<g>").count(), svg.matches("</g>").count());
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
    }

    #[test]
    fn an_empty_summary_still_renders() {
        let svg = render(&Summary::default(), "t", "n");
        assert!(svg.contains("no data") && svg.trim_end().ends_with("</svg>"));
    }
}
