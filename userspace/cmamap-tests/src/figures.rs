//! Figures that tests report to the run's summary: fault-injection points visited, random
//! operations run. Tests run in forked children, so they append lines to a file that the runner
//! sums up at the end.

use std::io::Write;

const PATH: &str = "/tmp/cmamap-test-figures";

/// Starts a run with no figures.
pub fn reset() {
    let _ = std::fs::remove_file(PATH);
}

/// Records `value` under `key` (values of one key are summed).
pub fn record(key: &str, value: u64) {
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(PATH)
    {
        let _ = writeln!(file, "{key} {value}");
    }
}

/// Every value recorded under `key`, in order.
pub fn values(key: &str) -> Vec<u64> {
    let text = std::fs::read_to_string(PATH).unwrap_or_default();
    text.lines()
        .filter_map(|line| line.split_once(' '))
        .filter(|(k, _)| *k == key)
        .filter_map(|(_, v)| v.parse::<u64>().ok())
        .collect()
}
