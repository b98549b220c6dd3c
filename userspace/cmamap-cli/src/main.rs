//! `cmamap`: a command-line front end to /dev/cmamap.

mod args;
mod commands;

use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Command};
use crate::commands::Ctx;

fn main() -> ExitCode {
    // clap exits by itself: status 2 for usage errors, 0 for --help and --version.
    let cli = Cli::parse();
    let ctx = Ctx {
        device: cli.device,
        json: cli.json,
        fd: cli.fd,
    };
    let result = match &cli.command {
        Command::Alloc(cmd) => commands::alloc(&ctx, cmd),
        Command::Free(cmd) => commands::free(&ctx, cmd),
        Command::Info(cmd) => commands::info(&ctx, cmd),
        Command::List => commands::list(&ctx),
        Command::Map(cmd) => commands::map(&ctx, cmd),
        Command::Share(cmd) => commands::share(&ctx, cmd),
        Command::Stat => commands::stat(&ctx),
        Command::DmaMap(cmd) => commands::dma_map(&ctx, cmd),
        Command::Export(cmd) => commands::export(&ctx, cmd),
        Command::DmaUnmap(cmd) => commands::dma_unmap(&ctx, cmd),
        Command::Sync(cmd) => commands::sync(&ctx, cmd),
        // Its own exit status: 1 when a check found a problem.
        Command::Doctor => return commands::doctor(&ctx),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("cmamap: {err}");
            ExitCode::from(1)
        }
    }
}
