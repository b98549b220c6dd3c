//! Progress lines for long runs (the random tester, the benchmark): work done, rate and ETA,
//! at most every interval, written to a side channel of their own so that the results on
//! stdout stay clean. In the VM that channel is the console (`/dev/console`), while stdout goes
//! to the result port.
//!
//! The environment chooses: `CMAMAP_PROGRESS=PATH` turns the lines on and says where they go;
//! `CMAMAP_PROGRESS_SECS` sets the interval (default [`DEFAULT_INTERVAL`]; fractions allowed).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::time::{Duration, Instant};

/// Where the lines go, and how often.
pub const PATH_VAR: &str = "CMAMAP_PROGRESS";
pub const SECS_VAR: &str = "CMAMAP_PROGRESS_SECS";
/// Under the 30 s a person waits before wondering whether a run hangs.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(15);

/// Prints a progress line when the interval has passed since the last one.
pub struct Ticker {
    what: String,
    unit: String,
    total: u64,
    interval: Duration,
    started: Instant,
    last: Instant,
    sink: Box<dyn Write + Send>,
}

impl Ticker {
    /// A ticker for `total` `unit`s of work named `what`, writing to `sink` every `interval`.
    pub fn new(
        what: impl Into<String>,
        unit: impl Into<String>,
        total: u64,
        interval: Duration,
        sink: Box<dyn Write + Send>,
    ) -> Self {
        let now = Instant::now();
        Self {
            what: what.into(),
            unit: unit.into(),
            total,
            interval,
            started: now,
            last: now,
            sink,
        }
    }

    /// The ticker the environment asks for (see the module docs); `None` when
    /// `CMAMAP_PROGRESS` is unset or its file does not open.
    pub fn from_env(what: impl Into<String>, unit: impl Into<String>, total: u64) -> Option<Self> {
        let path = std::env::var_os(PATH_VAR).filter(|p| !p.is_empty())?;
        let sink: File = OpenOptions::new().append(true).open(path).ok()?;
        let interval = std::env::var(SECS_VAR)
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map_or(DEFAULT_INTERVAL, Duration::from_secs_f64);
        Some(Self::new(what, unit, total, interval, Box::new(sink)))
    }

    /// Reports `done` units (with `detail`, made only when a line is due) if the interval has
    /// passed.
    pub fn tick(&mut self, done: u64, detail: impl FnOnce() -> String) {
        let now = Instant::now();
        if now.duration_since(self.last) < self.interval {
            return;
        }
        self.last = now;
        let line = line(
            &self.what,
            &self.unit,
            done,
            self.total,
            now.duration_since(self.started),
            &detail(),
        );
        let _ = writeln!(self.sink, "{line}");
        let _ = self.sink.flush();
    }
}

/// `1m05s`, `2h03m`, `42s`.
pub fn duration_text(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, s % 3600 / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// One progress line: `fuzz: 12000 of 1000000 operations (1.2%), 410/s, 29s elapsed, ETA 40m10s`.
pub fn line(
    what: &str,
    unit: &str,
    done: u64,
    total: u64,
    elapsed: Duration,
    detail: &str,
) -> String {
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 { done as f64 / secs } else { 0.0 };
    let percent = if total > 0 {
        done as f64 * 100.0 / total as f64
    } else {
        100.0
    };
    let eta = if rate > 0.0 && total >= done {
        duration_text(Duration::from_secs_f64((total - done) as f64 / rate))
    } else {
        "?".to_owned()
    };
    let detail = if detail.is_empty() {
        String::new()
    } else {
        format!(" ({detail})")
    };
    format!(
        "{what}: {done} of {total} {unit} ({percent:.1}%), {rate:.0}/s, {} elapsed, ETA {eta}{detail}",
        duration_text(elapsed)
    )
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[test]
    fn lines_say_done_rate_and_eta() {
        assert_eq!(
            line(
                "fuzz",
                "operations",
                12_000,
                1_000_000,
                Duration::from_secs(30),
                ""
            ),
            "fuzz: 12000 of 1000000 operations (1.2%), 400/s, 30s elapsed, ETA 41m10s"
        );
        assert_eq!(
            line("bench", "samples", 0, 10, Duration::ZERO, "size 4 KiB"),
            "bench: 0 of 10 samples (0.0%), 0/s, 0s elapsed, ETA ? (size 4 KiB)"
        );
        assert_eq!(duration_text(Duration::from_secs(7384)), "2h03m");
    }

    /// A sink the test can read back.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn ticks_only_when_the_interval_passed() {
        let sink = Shared::default();
        let mut ticker = Ticker::new(
            "fuzz",
            "operations",
            100,
            Duration::from_millis(50),
            Box::new(sink.clone()),
        );
        ticker.tick(1, || "not due".into());
        std::thread::sleep(Duration::from_millis(60));
        ticker.tick(50, String::new);
        ticker.tick(51, || "not due again".into());
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(
            text.starts_with("fuzz: 50 of 100 operations (50.0%), "),
            "{text}"
        );
    }
}
