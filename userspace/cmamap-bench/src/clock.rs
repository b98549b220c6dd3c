//! A fine clock for the VM: the CPU's time-stamp counter.
//!
//! Under TCG the plain kernel cannot calibrate its TSC (no PIT reference, no HPET without
//! ACPI), falls back to the jiffies clocksource, and `CLOCK_MONOTONIC` moves in 4 ms steps.
//! QEMU's TCG `rdtsc` reads the host's counter, so the benchmark reads it directly and converts
//! with a rate measured on the host (`--tsc-khz`) or, failing that, in the guest against
//! `CLOCK_MONOTONIC` between two tick edges.
//!
//! # Safety
//! The only `unsafe` is `_rdtsc`, which reads a counter and touches no memory; it needs an
//! x86-64 CPU, which the `cfg` guarantees.
//!
//! # Invariants
//! [`set_khz`] is called at most once, before any [`ticks_to_ns`]; until then the rate is
//! unset and conversions fall back to 1 GHz.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

static KHZ: OnceLock<f64> = OnceLock::new();

/// The time-stamp counter now.
#[cfg(target_arch = "x86_64")]
pub fn ticks() -> u64 {
    // SAFETY: rdtsc has no memory effects, and every x86-64 CPU has it.
    unsafe { std::arch::x86_64::_rdtsc() }
}

/// Elsewhere, nanoseconds since the first call stand in for the counter.
#[cfg(not(target_arch = "x86_64"))]
pub fn ticks() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    u64::try_from(START.get_or_init(Instant::now).elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Sets the counter's rate. Returns false if it was already set.
pub fn set_khz(khz: f64) -> bool {
    KHZ.set(khz).is_ok()
}

/// The counter's rate in use.
pub fn khz() -> f64 {
    KHZ.get().copied().unwrap_or(1e6)
}

/// Counter ticks as nanoseconds.
pub fn ticks_to_ns(ticks: u64) -> u64 {
    (ticks as f64 * 1e6 / khz()) as u64
}

/// Waits for `Instant::now` to change, and returns the new reading with the counter.
fn edge() -> (Instant, u64) {
    let start = Instant::now();
    loop {
        let now = Instant::now();
        if now != start {
            return (now, ticks());
        }
    }
}

/// Measures the counter's rate against the system clock over about `span`. Both ends sit on
/// a clock edge, so a coarse (jiffies) clock costs no accuracy beyond its own drift.
pub fn calibrate(span: Duration) -> f64 {
    let (t0, c0) = edge();
    while t0.elapsed() < span {
        std::hint::spin_loop();
    }
    let (t1, c1) = edge();
    let ns = (t1 - t0).as_nanos().max(1) as f64;
    c1.wrapping_sub(c0) as f64 * 1e6 / ns
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_counter_moves_forward_at_a_plausible_rate() {
        let a = ticks();
        let khz = calibrate(Duration::from_millis(20));
        assert!(ticks() > a);
        // Between 100 MHz and 10 GHz.
        assert!((1e5..1e7).contains(&khz), "{khz} kHz");
    }
}
