//! `cmamap-test`: the in-VM test suite of the cmamap driver. Runs as root with the module loaded
//! and prints KTAP on stdout; exits 0 iff no test failed.

#[macro_use]
mod check;
mod child;
mod cma;
mod ctx;
mod figures;
mod fuzz;
mod ktap;
mod module;
mod suite;

use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use cmamap::units::parse_u64;
use cmamap::Device;

use crate::check::Outcome;
use crate::ctx::Ctx;
use crate::ktap::{Ktap, Verdict};

/// Runs the cmamap driver tests and prints KTAP. A test runs when its name contains any FILTER
/// (all tests without one). Each test must leave CmaFree and the driver's block count as it
/// found them.
///
/// Each test runs in a forked child, so a crash (SIGBUS from a fault handler, say) or a hang
/// fails that test alone.
#[derive(Debug, Parser)]
#[command(name = "cmamap-test")]
struct Options {
    /// Print the test names and exit.
    #[arg(long)]
    list: bool,

    /// The device node.
    #[arg(long, value_name = "PATH", default_value = cmamap::DEFAULT_PATH)]
    device: PathBuf,

    /// Fail a test that runs longer.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    timeout: u32,

    /// Run tests in this process (for a debugger; no crash isolation).
    #[arg(long)]
    no_fork: bool,

    /// Operations of the random tester (fuzz_model).
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    fuzz_ops: usize,

    /// Its seed, decimal or 0x-hex, to replay a run [default: fresh].
    #[arg(long, value_name = "S", value_parser = parse_u64)]
    fuzz_seed: Option<u64>,

    /// Run only shard K (0..N-1) of N: the VMs of `make test` split the suite (long cases
    /// dealt out first, ivshmem cases in shard 0, DMA cases in none: the DMA VMs name them).
    /// Without it, every case runs.
    #[arg(long, value_name = "K/N", value_parser = parse_shard)]
    shard: Option<(usize, usize)>,

    /// Accept CmaFree drifting by KB between before and after a test, for kernels that place
    /// other movable pages in CMA.
    #[arg(long = "cma-tolerance-kb", value_name = "KB", default_value_t = 0)]
    cma_tolerance_kib: u64,

    /// On the host, before boot: create the ivshmem backing FILE with the host pattern in its
    /// first half, and exit.
    #[arg(long, num_args = 2, value_names = ["FILE", "BYTES"], conflicts_with = "host_check")]
    host_fill: Option<Vec<String>>,

    /// On the host, after the VM: check that FILE holds the host pattern in its first half and
    /// the guest's in its second, and exit.
    #[arg(long, value_name = "FILE")]
    host_check: Option<PathBuf>,

    /// In the VM, around the suite: make CmaFree exact for the default CMA area (pages lent
    /// to other allocations migrated out, per-CPU lists drained), print it, and exit.
    #[arg(long, conflicts_with_all = ["host_fill", "host_check"])]
    settle_cma: bool,

    /// Run only the tests whose names contain one of these.
    #[arg(value_name = "FILTER")]
    filters: Vec<String>,
}

fn parse_shard(value: &str) -> Result<(usize, usize), String> {
    value
        .split_once('/')
        .and_then(|(k, n)| Some((k.parse().ok()?, n.parse().ok()?)))
        .filter(|&(k, n)| k < n)
        .ok_or(format!("want K/N with K < N, got {value}"))
}

/// The host-side halves of the ivshmem data test, and the VM's CMA settling.
fn run_host_action(options: &Options) -> Option<ExitCode> {
    let result = if options.settle_cma {
        // The count alone on stdout, for the VM's init; the description on stderr, for its log.
        cma::settle_default_area().map(|settled| {
            eprintln!("{settled}");
            println!("{}", settled.taken_pages);
        })
    } else if let Some(fill) = &options.host_fill {
        host_fill(&fill[0], &fill[1])
    } else if let Some(path) = &options.host_check {
        suite::ivshmem::host_check(path).map(|()| {
            println!(
                "ivshmem: {} holds the host and guest patterns",
                path.display()
            );
        })
    } else {
        return None;
    };
    Some(match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("cmamap-test: {err:#}");
            ExitCode::FAILURE
        }
    })
}

fn host_fill(path: &str, bytes: &str) -> anyhow::Result<()> {
    let size: usize = bytes
        .parse()
        .with_context(|| format!("--host-fill: not a number: {bytes}"))?;
    suite::ivshmem::host_fill(Path::new(path), size).with_context(|| format!("write {path}"))
}

thread_local! {
    // Where the last panic happened; the default hook would print to stderr, away from KTAP.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

fn install_panic_hook() {
    panic::set_hook(Box::new(|info| {
        let message = cmamap_testkit::process::panic_message(info.payload());
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        LAST_PANIC.with(|last| *last.borrow_mut() = Some(format!("panic: {message}{place}")));
    }));
}

/// The `count` slowest cases with their times, leak checks included: where a VM's time went.
fn slowest_cases(mut durations: Vec<(std::time::Duration, &str)>, count: usize) -> String {
    durations.sort_by_key(|(took, _)| std::cmp::Reverse(*took));
    let total: std::time::Duration = durations.iter().map(|(took, _)| *took).sum();
    let slowest: Vec<String> = durations
        .iter()
        .take(count)
        .map(|(took, name)| format!("{name} {:.1}s", took.as_secs_f64()))
        .collect();
    format!(
        "cmamap-test: cases took {:.1}s in all; slowest: {}",
        total.as_secs_f64(),
        slowest.join(", ")
    )
}

fn run_case(case: &suite::Case, ctx: &Ctx) -> Verdict {
    match panic::catch_unwind(AssertUnwindSafe(|| case.run(ctx))) {
        Ok(Ok(Outcome::Pass)) => Verdict::Ok,
        Ok(Ok(Outcome::Skip(reason))) => Verdict::Skip(reason),
        Ok(Err(failure)) => Verdict::NotOk(failure.0),
        Err(payload) => Verdict::NotOk(
            LAST_PANIC
                .with(|last| last.borrow_mut().take())
                .unwrap_or_else(|| {
                    format!(
                        "panic: {}",
                        cmamap_testkit::process::panic_message(&*payload)
                    )
                }),
        ),
    }
}

// How a forked test reports its verdict through the child's message.
const SKIP_TAG: &str = "skip\n";
const FAIL_TAG: &str = "fail\n";

/// Faults in every page this process maps now (text, data, heap, stack) and breaks
/// copy-on-write on the writable ones. A forked child otherwise faults on the first run of
/// each text page and on its first write to each page it shares with the runner, and a test
/// that counts minor faults would count those along with the device's (seen: 2 faults for one
/// PMD, when the touching loop's code sat on a page the child had not run yet).
fn prefault_self() {
    use nix::sys::mman::{mlockall, munlockall, MlockAllFlags};
    // Locking populates; unlocking keeps the pages. Without the privilege to lock, the counts
    // are as exact as before.
    if mlockall(MlockAllFlags::MCL_CURRENT).is_ok() {
        let _ = munlockall();
    }
}

/// Runs `case` in a forked child with an alarm, so that a crash or a hang costs one test.
fn run_case_forked(case: &suite::Case, ctx: &Ctx, timeout_secs: u32) -> Verdict {
    let outcome = cmamap_testkit::process::run_in_child(|| {
        prefault_self();
        // SIGALRM's default action ends the child; the parent reports it as a timeout.
        nix::unistd::alarm::set(timeout_secs);
        match run_case(case, ctx) {
            Verdict::Ok => Ok(()),
            Verdict::Skip(reason) => Err(format!("{SKIP_TAG}{reason}")),
            Verdict::NotOk(reason) => Err(format!("{FAIL_TAG}{reason}")),
        }
    });
    match outcome {
        Ok(Ok(())) => Verdict::Ok,
        Ok(Err(message)) => {
            if let Some(reason) = message.strip_prefix(SKIP_TAG) {
                Verdict::Skip(reason.to_owned())
            } else if let Some(reason) = message.strip_prefix(FAIL_TAG) {
                Verdict::NotOk(reason.to_owned())
            } else if message.contains("SIGALRM") {
                Verdict::NotOk(format!("timed out after {timeout_secs} s"))
            } else {
                Verdict::NotOk(format!("test process died: {message}"))
            }
        }
        Err(err) => Verdict::NotOk(format!("fork: {err}")),
    }
}

/// The run's figures: cases, random operations and seeds, fault-injection points, and CMA
/// before and after.
fn summarize(ktap: &Ktap, cases: usize, (pages_before, kib_before): (Option<u64>, Option<u64>)) {
    ktap.diag(&format!("summary: {cases} cases"));
    let ops = figures::values("fuzz_ops");
    if !ops.is_empty() {
        let seeds: Vec<String> = figures::values("fuzz_seed")
            .iter()
            .map(|s| format!("{s:#x}"))
            .collect();
        ktap.diag(&format!(
            "summary: {} random operations, seed {}",
            ops.iter().sum::<u64>(),
            seeds.join(", ")
        ));
    }
    let points = figures::values("fault_points");
    if !points.is_empty() {
        ktap.diag(&format!(
            "summary: {} fault-injection points visited in {} walks",
            points.iter().sum::<u64>(),
            points.len()
        ));
    }
    let show = |v: Option<u64>| v.map_or("?".to_owned(), |v| v.to_string());
    ktap.diag(&format!(
        "summary: CMA available pages {} before, {} after; CmaFree {} kB before, {} kB after",
        show(pages_before),
        show(cmamap::meminfo::cma_available_pages()),
        show(kib_before),
        show(cmamap::meminfo::cma_free_kib().ok()),
    ));
}

fn main() -> ExitCode {
    // clap exits by itself: status 2 for usage errors, 0 for --help.
    let options = Options::parse();
    if let Some(code) = run_host_action(&options) {
        return code;
    }
    let (shard, shards) = options.shard.unwrap_or((0, 1));
    // Sharded runs leave the DMA cases to the DMA VMs; a plain run has them all.
    let all = suite::cases();
    let cases: Vec<suite::Case> = match options.shard {
        Some(_) => suite::shard(all, shard, shards),
        None => all,
    }
    .into_iter()
    .filter(|case| {
        options.filters.is_empty() || options.filters.iter().any(|f| case.name.contains(f))
    })
    .collect();
    if options.list {
        for case in &cases {
            println!("{}", case.name);
        }
        return ExitCode::SUCCESS;
    }

    install_panic_hook();
    let ctx = Ctx {
        device: options.device,
        page: cmamap::page_size(),
        root: nix::unistd::geteuid().is_root(),
        cma_tolerance_kib: options.cma_tolerance_kib,
        fuzz_ops: options.fuzz_ops,
        fuzz_seed: options.fuzz_seed,
    };
    let mut ktap = Ktap::start(cases.len());
    if shards > 1 {
        ktap.diag(&format!(
            "cmamap-test: {} cases (shard {shard} of {shards})",
            cases.len()
        ));
    } else {
        ktap.diag(&format!("cmamap-test: {} cases", cases.len()));
    }
    figures::reset();
    let cma_at_start = (
        cmamap::meminfo::cma_available_pages(),
        cmamap::meminfo::cma_free_kib().ok(),
    );
    // No file stays open between tests (the leak checks open their own each time): the
    // module-reload tests need the module unused while they run.
    if let Err(err) = Device::open_path(&ctx.device) {
        ktap.diag(&format!("cannot open the device for leak checks: {err}"));
    }
    if cmamap::meminfo::cma_free_kib().is_err() {
        ktap.diag("/proc/meminfo has no CmaFree: CmaFree leak checks are off");
    }
    if cmamap::meminfo::cma_available_pages().is_none() {
        ktap.diag("no /sys/kernel/mm/cma/*/available_pages: exact CMA leak checks are off");
    }
    if !ctx.root {
        ktap.diag("not root: tests that need CAP_SYS_ADMIN will skip");
    }

    let mut durations = Vec::with_capacity(cases.len());
    for case in &cases {
        let started = std::time::Instant::now();
        let before = cma::snapshot(&ctx.device);
        let verdict = if !options.no_fork {
            run_case_forked(case, &ctx, options.timeout)
        } else {
            run_case(case, &ctx)
        };
        let leak = cma::settle(&before, &ctx.device, ctx.cma_tolerance_kib);
        if let Ok(Some(note)) = &leak {
            ktap.diag(note);
        }
        let verdict = match (verdict, leak) {
            (verdict, Ok(_)) => verdict,
            (Verdict::NotOk(reason), Err(leak)) => Verdict::NotOk(format!("{reason}\n{leak}")),
            (_, Err(leak)) => Verdict::NotOk(leak),
        };
        ktap.result(&case.name, verdict);
        durations.push((started.elapsed(), case.name.as_str()));
    }
    ktap.diag(&slowest_cases(durations, 10));
    summarize(&ktap, cases.len(), cma_at_start);
    if ktap.finish() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
