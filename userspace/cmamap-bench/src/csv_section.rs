//! Rows carried as a CSV section of a VM run's output: written between two marker lines by the
//! guest, and read back by the host from `result.txt` or the console (the DMA and scale parts
//! of the benchmark).

use std::io::Write;

use serde::{de::DeserializeOwned, Serialize};

/// `rows` as CSV, with a header.
pub fn to_csv<T: Serialize>(rows: &[T]) -> Result<String, String> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    for row in rows {
        writer.serialize(row).map_err(|e| e.to_string())?;
    }
    let bytes = writer.into_inner().map_err(|e| e.to_string())?;
    String::from_utf8(bytes).map_err(|e| e.to_string())
}

/// Prints `rows` on stdout as a CSV section between `begin` and `end`.
pub fn print<T: Serialize>(rows: &[T], begin: &str, end: &str) -> Result<(), String> {
    let csv = to_csv(rows)?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{begin}\n{csv}{end}").map_err(|e| e.to_string())
}

/// The rows of the section of `what` between `begin` and `end` in `text`.
pub fn read<T: DeserializeOwned>(
    text: &str,
    begin: &str,
    end: &str,
    what: &str,
) -> Result<Vec<T>, String> {
    let start = text
        .find(begin)
        .ok_or_else(|| format!("no {what} section"))?
        + begin.len();
    let stop = start
        + text[start..]
            .find(end)
            .ok_or_else(|| format!("no end of the {what} section"))?;
    // The console may carry carriage returns and blank lines around the rows.
    let csv: String = text[start..stop]
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    csv::Reader::from_reader(csv.as_bytes())
        .deserialize()
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())
}
