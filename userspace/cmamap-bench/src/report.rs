//! The host half: reads a run's output and writes the results folder.

use std::io::Write;
use std::path::Path;

use crate::chart;
use crate::ratios;
use crate::run::{BEGIN, END};
use crate::sample::{header, Sample};
use crate::summary::Summary;
use crate::table;

/// What a run printed between its markers.
#[derive(Debug, Default, PartialEq)]
pub struct Section {
    /// `# key: value` lines.
    pub meta: Vec<String>,
    /// `# error:` lines: samples that failed.
    pub errors: Vec<String>,
    /// The samples.
    pub samples: Vec<Sample>,
}

/// Finds the section in `text` (a result file, a console log or bare CSV) and parses it.
pub fn parse(text: &str) -> Result<Section, String> {
    let lines: Vec<&str> = text.lines().map(|l| l.trim_end_matches('\r')).collect();
    let body: &[&str] = match lines.iter().position(|l| l.trim() == BEGIN) {
        Some(begin) => {
            let rest = &lines[begin + 1..];
            let end = rest
                .iter()
                .position(|l| l.trim() == END)
                .ok_or("the run never printed its end marker: it died or timed out")?;
            &rest[..end]
        }
        None => &lines,
    };
    let mut section = Section::default();
    for line in body.iter().map(|l| l.trim()).filter(|l| !l.is_empty()) {
        if let Some(error) = line.strip_prefix("# error:") {
            section.errors.push(error.trim().to_string());
        } else if let Some(meta) = line.strip_prefix('#') {
            section.meta.push(meta.trim().to_string());
        } else if line != header() {
            section.samples.push(Sample::from_row(line)?);
        }
    }
    if section.samples.is_empty() {
        return Err("no samples in the input".into());
    }
    Ok(section)
}

/// The text report: how it was made, the table and the ratios.
pub fn text(section: &Section, summary: &Summary, command: &str) -> String {
    let mut out = String::from(
        "cmamap benchmark. The VM runs under QEMU TCG emulation: absolute times are not \
         hardware times; compare contenders within one run.\n",
    );
    if !command.is_empty() {
        out += &format!("command: {command}\n");
    }
    for meta in &section.meta {
        out += &format!("{meta}\n");
    }
    out +=
        "cells: median (min-max) over the repeats; times in µs, bandwidth in MB/s (10^6 B/s)\n\n";
    out += &table::render(summary, None);
    out += "\nRatios of medians, from this run (no test gates on them):\n";
    out += &ratios::table(&ratios::compute(summary));
    if !section.errors.is_empty() {
        out += "\nFailed samples:\n";
        for error in &section.errors {
            out += &format!("  {error}\n");
        }
    }
    out
}

fn write_file(dir: &Path, name: &str, contents: &str) -> Result<(), String> {
    let path = dir.join(name);
    std::fs::write(&path, contents).map_err(|e| format!("write {}: {e}", path.display()))
}

/// Reads `input`, writes raw.csv, summary.csv, table.txt and chart.svg into `out`, prints the
/// text report, and returns how many samples failed in the run.
pub fn write(input: &Path, out: &Path, command: &str) -> Result<usize, String> {
    let text_in = std::fs::read(input).map_err(|e| format!("read {}: {e}", input.display()))?;
    let section = parse(&String::from_utf8_lossy(&text_in))?;
    std::fs::create_dir_all(out).map_err(|e| format!("create {}: {e}", out.display()))?;
    let mut raw = format!("{}\n", header());
    for sample in &section.samples {
        raw += &sample.to_row();
        raw.push('\n');
    }
    write_file(out, "raw.csv", &raw)?;
    let summary = Summary::of(&section.samples);
    write_file(out, "summary.csv", &summary.to_csv())?;
    let report = text(&section, &summary, command);
    write_file(out, "table.txt", &report)?;
    let kernel = section
        .meta
        .iter()
        .find_map(|m| m.strip_prefix("kernel: "))
        .unwrap_or("?");
    let note = format!(
        "median with min-max whiskers; log-log; QEMU TCG (emulated: not hardware times); kernel {kernel}"
    );
    write_file(
        out,
        "chart.svg",
        &chart::render(&summary, "cmamap: time against size", &note),
    )?;
    // A closed pipe (`| head`) is no error of the report's.
    let done = format!(
        "\nwrote raw.csv, summary.csv, table.txt and chart.svg to {}\n",
        out.display()
    );
    let _ = std::io::stdout().write_all(format!("{report}{done}").as_bytes());
    Ok(section.errors.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROW: &str = "remap,4096,0,10,20,0,30,0,4096,40,50,60";

    #[test]
    fn the_section_is_found_among_log_lines() {
        let text = format!(
            "boot noise\r\n{BEGIN}\r\n# kernel: 7.3.4\n{}\n{ROW}\n# error: fault size 4096: EIO\n{END}\nCMAMAP-DONE\n",
            header()
        );
        let section = parse(&text).unwrap();
        assert_eq!(section.meta, vec!["kernel: 7.3.4"]);
        assert_eq!(section.errors, vec!["fault size 4096: EIO"]);
        assert_eq!(section.samples.len(), 1);
        assert_eq!(section.samples[0].to_row(), ROW);
    }

    #[test]
    fn bare_csv_is_accepted_and_a_cut_run_is_not() {
        assert_eq!(
            parse(&format!("{}\n{ROW}\n", header()))
                .unwrap()
                .samples
                .len(),
            1
        );
        assert!(parse(&format!("{BEGIN}\n{ROW}\n")).is_err());
        assert!(parse(&format!("{BEGIN}\n{END}\n")).is_err());
    }
}
