//! The C examples of examples/c and the library's cargo examples, which `make test` builds
//! statically and puts in the guest's /bin: each must exit 0 and say what it showed, so that
//! what users copy first never rots.

use std::path::Path;
use std::process::Command;

use crate::check::{pass, skip, Step, TestResult};
use crate::ctx::Ctx;
use crate::suite::dma;

/// Runs `/bin/cmamap-example-NAME ARGS`; fails unless it exits 0 and prints every line of
/// `expect` (substrings) and `NAME: ok` last.
fn run_example(name: &str, args: &[&str], expect: &[&str]) -> TestResult {
    let path = format!("/bin/cmamap-example-{name}");
    if !Path::new(&path).exists() {
        return skip(format!(
            "{path} absent: `make examples` builds examples/c and `make test` passes them in"
        ));
    }
    let out = Command::new(&path)
        .args(args)
        .output()
        .step(&format!("run {path}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(
        out.status.success(),
        "{path} {}: {}\n{stdout}{stderr}",
        args.join(" "),
        out.status
    );
    for line in expect {
        ensure!(
            stdout.contains(line),
            "{path} did not print `{line}`:\n{stdout}"
        );
    }
    ensure_eq!(
        stdout.lines().last(),
        Some(format!("{name}: ok").as_str()),
        "{path}'s last line"
    );
    pass()
}

pub fn example_c_alloc_map(_ctx: &Ctx) -> TestResult {
    run_example(
        "alloc-map",
        &[],
        &[
            "allocated block",
            "wrote and verified 1048576 words",
            "mapped by 1 VMA(s)",
        ],
    )
}

pub fn example_c_share(_ctx: &Ctx) -> TestResult {
    run_example(
        "share",
        &[],
        &[
            "sees what child",
            "written by the child",
            "saw what the parent wrote",
        ],
    )
}

pub fn example_c_persist(ctx: &Ctx) -> TestResult {
    if let Some(skipped) = ctx.needs_root() {
        return skipped;
    }
    run_example(
        "persist",
        &[],
        &["a new open file finds block", "left here by a process"],
    )
}

/// The edu example in a DMA VM, with the DMA width of that VM's edu.
pub fn dma_example_c_edu(ctx: &Ctx) -> TestResult {
    if let Some(skipped) = ctx.needs_root() {
        return skipped;
    }
    let Some((address, bits)) = dma::edu_for_example() else {
        return skip("no edu device in this VM (the DMA VMs of make test have one)");
    };
    let bits = bits.to_string();
    run_example(
        "edu-dma",
        &[&address, &bits],
        &["bus address for", "edu copied page 0 to page 1 by DMA"],
    )
}

pub fn example_rust_alloc_map(_ctx: &Ctx) -> TestResult {
    run_example(
        "rust-alloc-map",
        &[],
        &[
            "wrote and verified 4194304 bytes",
            "the page view of the first MiB shows the same bytes",
            "mapped by 2 VMAs",
        ],
    )
}

pub fn example_rust_persist_share(ctx: &Ctx) -> TestResult {
    if let Some(skipped) = ctx.needs_root() {
        return skipped;
    }
    run_example(
        "rust-persist-share",
        &[],
        &[
            "made persistent block",
            "says \"hello from the writer process\"",
        ],
    )
}
