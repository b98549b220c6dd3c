//! `cmamap-bench`: measures cmamap's strategies side by side with anonymous memory, the
//! kernel's CMA dma-heap and pread/pwrite (`run`, in the VM), and turns the raw samples into a
//! table, a CSV summary, the ratios of the targets and an SVG chart (`report`, on the
//! host).

mod chart;
mod clock;
mod contender;
mod dma_heap;
mod meter;
mod ratios;
mod report;
mod run;
mod sample;
mod stats;
mod summary;
mod table;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use cmamap::units::parse_size;

use crate::contender::Contender;

#[derive(Parser, Debug)]
#[command(name = "cmamap-bench", about = "Benchmark of cmamap against its peers")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Measure (in the VM) and print raw samples as CSV between marker lines.
    Run(RunArgs),
    /// Turn a run's output into a table, CSV files, ratios and a chart.
    Report(ReportArgs),
    /// Print this machine's time-stamp counter rate in kHz (for `run --tsc-khz`).
    TscKhz,
}

fn size(input: &str) -> Result<u64, String> {
    parse_size(input).map_err(|e| e.to_string())
}

#[derive(Args, Debug)]
struct RunArgs {
    /// Smallest size.
    #[arg(long, default_value = "4K", value_parser = size)]
    min_size: u64,
    /// Largest size; sizes go up in powers of 4.
    #[arg(long, default_value = "256M", value_parser = size)]
    max_size: u64,
    /// Repeats of each size below --large-from.
    #[arg(long, default_value_t = 9)]
    repeats: u32,
    /// Repeats of each size from --large-from up.
    #[arg(long, default_value_t = 5)]
    large_repeats: u32,
    /// The first size that gets --large-repeats.
    #[arg(long, default_value = "64M", value_parser = size)]
    large_from: u64,
    /// Copies move at least this many bytes, repeating small sizes.
    #[arg(long, default_value = "16M", value_parser = size)]
    min_copy: u64,
    /// The time-stamp counter's rate, measured on the host (`cmamap-bench tsc-khz`); without
    /// it the guest measures it against its own clock.
    #[arg(long)]
    tsc_khz: Option<f64>,
    /// Contenders to run, comma-separated (default: all).
    #[arg(long, value_delimiter = ',')]
    only: Vec<Contender>,
}

#[derive(Args, Debug)]
struct ReportArgs {
    /// The run's output: the VM's result.txt, a console log, or the bare CSV section.
    #[arg(long)]
    input: PathBuf,
    /// Where raw.csv, summary.csv, table.txt and chart.svg go.
    #[arg(long)]
    out: PathBuf,
    /// How the run was made, for the table and the chart.
    #[arg(long, default_value = "")]
    command: String,
}

fn sizes(min: u64, max: u64) -> Vec<u64> {
    std::iter::successors(Some(min.max(4096)), |&s| s.checked_mul(4))
        .take_while(|&s| s <= max)
        .collect()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => {
            let plan = run::Plan {
                sizes: sizes(args.min_size, args.max_size),
                repeats: args.repeats.max(1),
                large_repeats: args.large_repeats.max(1),
                large_from: args.large_from,
                min_copy: args.min_copy,
                contenders: if args.only.is_empty() {
                    Contender::ALL.to_vec()
                } else {
                    args.only
                },
                tsc_khz: args.tsc_khz,
            };
            run::run(&plan).map(|failed| (failed, "sample(s) failed"))
        }
        Command::Report(args) => report::write(&args.input, &args.out, &args.command)
            .map(|failed| (failed, "error line(s) in the run")),
        Command::TscKhz => {
            println!(
                "{:.0}",
                clock::calibrate(std::time::Duration::from_millis(300))
            );
            Ok((0, ""))
        }
    };
    match result {
        Ok((0, _)) => ExitCode::SUCCESS,
        Ok((n, what)) => {
            eprintln!("cmamap-bench: {n} {what}");
            ExitCode::from(1)
        }
        Err(err) => {
            eprintln!("cmamap-bench: {err}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_go_up_in_powers_of_four() {
        let s = sizes(4096, 256 << 20);
        assert_eq!(s.len(), 9);
        assert_eq!(s[0], 4096);
        assert_eq!(s[8], 256 << 20);
        assert_eq!(
            sizes(4096, 1 << 20),
            vec![4096, 16384, 65536, 262144, 1 << 20]
        );
    }
}
