//! Share memory with an unrelated process through a PERSIST block: it belongs to the module,
//! outlives the file that made it, and any opener finds it by id. Making and freeing one needs
//! CAP_SYS_ADMIN.
//!
//! `cargo run --example persist_share` runs itself a second time as the reader.

use std::process::Command;

use cmamap::{AllocRequest, Device, Prot};

const MESSAGE: &[u8] = b"hello from the writer process";

/// The second process: finds the block by id, maps it and checks the message.
fn reader(id: u32) -> Result<(), Box<dyn std::error::Error>> {
    let dev = Device::open()?;
    let block = dev.block(id)?;
    let mapping = block.map(Prot::Read)?;
    if &mapping.as_slice()[..MESSAGE.len()] != MESSAGE {
        return Err(format!("block {id} does not hold the message").into());
    }
    println!(
        "reader {}: block {id} says \"{}\"",
        std::process::id(),
        String::from_utf8_lossy(MESSAGE)
    );
    // Not ours to free: forget the handle instead of dropping it.
    drop(mapping);
    block.into_raw_id();
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if let [_, role, id] = args.as_slice() {
        if role == "reader" {
            return reader(id.parse()?);
        }
    }
    let dev = Device::open()?;
    let block = dev.alloc(&AllocRequest::new(4096).persist(true))?;
    block.pwrite(0, MESSAGE)?;
    let id = block.id();
    println!("writer {}: made persistent block {id}", std::process::id());

    let status = Command::new(std::env::current_exe()?)
        .args(["reader", &id.to_string()])
        .status()?;
    // A persistent block lives until FREE (or rmmod), whoever made it.
    block.free()?;
    if !status.success() {
        return Err(format!("the reader failed: {status}").into());
    }
    println!("rust-persist-share: ok");
    Ok(())
}
