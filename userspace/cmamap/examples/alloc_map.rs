//! Allocate a physically contiguous block, map it, write and check it, map the same memory
//! through another strategy's view, and let the handles free everything as they drop.
//!
//! `cargo run --example alloc_map` (on a machine with the module loaded; `cmamap doctor`
//! says what is missing otherwise).

use cmamap::{AllocRequest, Device, Prot, Strategy};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dev = Device::open()?;
    let stat = dev.stat()?;
    println!(
        "cmamap ABI {}, page size {}",
        stat.abi_version, stat.page_size
    );

    // 4 MiB mapped with remap_pfn_range: no page faults after mmap.
    let block = dev.alloc(&AllocRequest::new(4 << 20).strategy(Strategy::Remap))?;
    let info = block.info()?;
    println!(
        "block {}: {} bytes, physical address {:#x} (0 without CAP_SYS_ADMIN)",
        info.id, info.size, info.phys_addr
    );

    let mut mapping = block.map(Prot::ReadWrite)?;
    for (index, byte) in mapping.as_mut_slice().iter_mut().enumerate() {
        *byte = (index % 251) as u8;
    }
    let good = mapping
        .as_slice()
        .iter()
        .enumerate()
        .all(|(index, &byte)| byte == (index % 251) as u8);
    if !good {
        return Err("the block does not read back what was written".into());
    }
    println!("wrote and verified {} bytes", mapping.len());

    // The same memory through the page view, which get_user_pages (O_DIRECT, vmsplice) can pin.
    let len = 1 << 20;
    let pinnable = block.map_view(Strategy::Page, 0, len, Prot::Read)?;
    if pinnable.as_slice() != &mapping.as_slice()[..len] {
        return Err("the page view shows other memory".into());
    }
    println!("the page view of the first MiB shows the same bytes");
    println!("mapped by {} VMAs", block.info()?.map_count);

    // Mappings borrow the block: they unmap first, then the block frees itself.
    drop(pinnable);
    drop(mapping);
    block.free()?;
    println!("rust-alloc-map: ok");
    Ok(())
}
