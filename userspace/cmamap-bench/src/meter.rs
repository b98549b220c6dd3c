//! Measuring one step: wall time (from [`crate::clock`]) and the minor faults it took
//! (`getrusage`).

use crate::clock;

/// What one step cost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cost {
    /// Nanoseconds of wall time.
    pub ns: u64,
    /// Minor faults of this process during the step. The benchmark is single-threaded, so
    /// `RUSAGE_SELF` sees only its own.
    pub faults: u64,
}

fn minor_faults() -> u64 {
    // getrusage(RUSAGE_SELF) cannot fail with a valid `who`; 0 keeps the meter total.
    cmamap_testkit::minor_faults().map_or(0, |faults| u64::try_from(faults).unwrap_or(0))
}

/// Runs `step` and returns its result with its cost.
pub fn measure<T>(step: impl FnOnce() -> T) -> (T, Cost) {
    let faults = minor_faults();
    let start = clock::ticks();
    let value = step();
    let ns = clock::ticks_to_ns(clock::ticks().wrapping_sub(start));
    let faults = minor_faults().saturating_sub(faults);
    (value, Cost { ns, faults })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn touching_fresh_anonymous_memory_faults() {
        let pages = 64;
        let (_, cost) = measure(|| {
            let mut buf = vec![0u8; pages * 4096 + 4096];
            for i in (0..buf.len()).step_by(4096) {
                buf[i] = 1;
            }
            std::hint::black_box(&buf);
        });
        // calloc'd memory comes from a fresh mapping or the heap: some pages fault, never more
        // than one per page plus the allocator's own.
        assert!(cost.faults <= pages as u64 + 16, "{cost:?}");
        assert!(cost.ns > 0);
    }
}
