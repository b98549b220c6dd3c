//! `cmamap-bench`: measures cmamap's strategies side by side with anonymous memory, the
//! kernel's CMA dma-heap and pread/pwrite (`run`, in the VM), and turns the raw samples into a
//! table, a CSV summary, the ratios of the targets and an SVG chart (`report`, on the
//! host).

mod chart;
mod clock;
mod contender;
mod csv_section;
mod dma;
mod meter;
mod ratios;
mod report;
mod run;
mod sample;
mod scale;
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
    /// Measure (in the VM) DMA_MAP, DMA_UNMAP and SYNC costs for one device.
    Dma(DmaArgs),
    /// Turn DMA runs' outputs into bench/results/dma.csv and dma.txt.
    DmaReport(DmaReportArgs),
    /// Measure (in the VM) ALLOC, FREE, INFO, mmap and pread against the number of live
    /// blocks, and close() of a file full of blocks.
    Scale(ScaleArgs),
    /// Turn a scale run's output into bench/results/scale.csv, scale.txt and scale.svg.
    ScaleReport(ScaleReportArgs),
}

#[derive(Args, Debug)]
struct ScaleArgs {
    /// Live block counts to measure at, comma-separated, rising.
    #[arg(long, value_delimiter = ',', default_value = "1,1000,10000,100000")]
    levels: Vec<u64>,
    /// Blocks per filler file.
    #[arg(long, default_value_t = 10_000)]
    per_file: u64,
    /// Repeats of each call at each level.
    #[arg(long, default_value_t = 21)]
    repeats: u32,
    /// Blocks of the file whose close() is timed at the last level (0: none).
    #[arg(long, default_value_t = 65_536)]
    close_blocks: u64,
    /// The time-stamp counter's rate, measured on the host.
    #[arg(long)]
    tsc_khz: Option<f64>,
}

#[derive(Args, Debug)]
struct ScaleReportArgs {
    /// The run's output (the VM's result.txt).
    #[arg(long)]
    input: PathBuf,
    /// Where scale.csv, scale.txt and scale.svg go.
    #[arg(long)]
    out: PathBuf,
    /// Another module's run to compare with (scale-before.csv, a second table, dashed lines).
    #[arg(long)]
    before: Option<PathBuf>,
    /// How the run was made, for the chart.
    #[arg(long, default_value = "")]
    command: String,
}

#[derive(Args, Debug)]
struct DmaArgs {
    /// The set-up's name in the results (e.g. iommu, direct).
    #[arg(long)]
    setup: String,
    /// The device to map for (a PCI address), or `edu` for the VM's edu device.
    #[arg(long)]
    device: String,
    /// Its DMA address width.
    #[arg(long, default_value_t = 0)]
    dma_bits: u32,
    /// Smallest block size.
    #[arg(long, default_value = "4K", value_parser = size)]
    min_size: u64,
    /// Largest block size; sizes go up in powers of 4.
    #[arg(long, default_value = "64M", value_parser = size)]
    max_size: u64,
    /// Repeats of each measurement.
    #[arg(long, default_value_t = 21)]
    repeats: u32,
    /// The time-stamp counter's rate, measured on the host.
    #[arg(long)]
    tsc_khz: Option<f64>,
}

#[derive(Args, Debug)]
struct DmaReportArgs {
    /// The runs' outputs (result.txt of each VM).
    #[arg(long, required = true)]
    input: Vec<PathBuf>,
    /// Where dma.csv and dma.txt go.
    #[arg(long)]
    out: PathBuf,
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

/// Gathers the DMA runs' sections into dma.csv and a table in dma.txt.
fn dma_report(args: &DmaReportArgs) -> Result<(), String> {
    let mut rows = Vec::new();
    for input in &args.input {
        let text =
            std::fs::read_to_string(input).map_err(|e| format!("read {}: {e}", input.display()))?;
        rows.extend(dma::section(&text).map_err(|e| format!("{}: {e}", input.display()))?);
    }
    std::fs::create_dir_all(&args.out).map_err(|e| e.to_string())?;
    std::fs::write(args.out.join("dma.csv"), csv_section::to_csv(&rows)?)
        .map_err(|e| e.to_string())?;
    let table = dma::table(&rows);
    std::fs::write(args.out.join("dma.txt"), &table).map_err(|e| e.to_string())?;
    print!("{table}");
    Ok(())
}

/// Writes scale.csv, scale.txt and scale.svg from a scale run's output.
fn scale_report(args: &ScaleReportArgs) -> Result<(), String> {
    let text = std::fs::read_to_string(&args.input)
        .map_err(|e| format!("read {}: {e}", args.input.display()))?;
    let rows = scale::section(&text)?;
    std::fs::create_dir_all(&args.out).map_err(|e| e.to_string())?;
    std::fs::write(args.out.join("scale.csv"), csv_section::to_csv(&rows)?)
        .map_err(|e| e.to_string())?;
    let mut table = scale::table(&rows);
    let mut before = Vec::new();
    if let Some(path) = &args.before {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("read {}: {e}", path.display()))?;
        before = scale::section(&text)?;
        std::fs::write(
            args.out.join("scale-before.csv"),
            csv_section::to_csv(&before)?,
        )
        .map_err(|e| e.to_string())?;
        table.push_str("\nBefore (the module with one list and one id space):\n");
        table.push_str(&scale::table(&before));
    }
    std::fs::write(args.out.join("scale.txt"), &table).map_err(|e| e.to_string())?;
    let svg = scale::chart(
        &rows,
        &before,
        "cmamap: call latency against live blocks (median, TCG)",
        &args.command,
    );
    std::fs::write(args.out.join("scale.svg"), svg).map_err(|e| e.to_string())?;
    print!("{table}");
    Ok(())
}

fn set_clock(tsc_khz: Option<f64>) {
    let khz = tsc_khz.unwrap_or_else(|| clock::calibrate(std::time::Duration::from_millis(300)));
    clock::set_khz(khz);
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
        Command::Dma(args) => {
            match args.tsc_khz {
                Some(khz) => {
                    clock::set_khz(khz);
                }
                None => {
                    clock::set_khz(clock::calibrate(std::time::Duration::from_millis(300)));
                }
            }
            let plan = dma::Plan {
                setup: args.setup,
                device: args.device,
                dma_bits: args.dma_bits,
                sizes: sizes(args.min_size, args.max_size),
                repeats: args.repeats.max(1),
            };
            dma::run(&plan).map(|()| (0, ""))
        }
        Command::DmaReport(args) => dma_report(&args).map(|()| (0, "")),
        Command::Scale(args) => {
            set_clock(args.tsc_khz);
            scale::run(&scale::Plan {
                levels: args.levels,
                per_file: args.per_file,
                repeats: args.repeats.max(1),
                close_blocks: args.close_blocks,
            })
            .map(|()| (0, ""))
        }
        Command::ScaleReport(args) => scale_report(&args).map(|()| (0, "")),
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
