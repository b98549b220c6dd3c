//! Human-readable descriptions of blocks and device figures, shared by `cmamap` and
//! `cmamap-demo`.

use cmamap::units::format_size;
use cmamap::{Info, Stat};

/// A physical address, or why it is not shown.
pub fn phys_text(phys_addr: u64) -> String {
    if phys_addr == 0 {
        "hidden (needs CAP_SYS_ADMIN)".to_owned()
    } else {
        format!("{phys_addr:#x}")
    }
}

/// `4 KiB (4096 bytes)`.
pub fn size_text(bytes: u64) -> String {
    format!("{} ({bytes} bytes)", format_size(bytes))
}

/// `persist` or `-`.
pub fn flags_text(info: &Info) -> &'static str {
    if info.is_persistent() {
        "persist"
    } else if info.is_device_memory() {
        "device-memory"
    } else {
        "-"
    }
}

/// The fields of one block as label/value pairs.
pub fn info_lines(info: &Info) -> Vec<(&'static str, String)> {
    vec![
        ("id", info.id.to_string()),
        ("size", size_text(info.size)),
        ("strategy", info.strategy.to_string()),
        ("mmap offset", format!("{:#x}", info.offset)),
        ("phys addr", phys_text(info.phys_addr)),
        (
            "owner",
            format!("{} (allocated by pid {})", info.owner, info.owner_tgid),
        ),
        ("flags", flags_text(info).to_owned()),
        ("mappings", info.map_count.to_string()),
    ]
}

/// The device figures as label/value pairs.
pub fn stat_lines(stat: &Stat) -> Vec<(&'static str, String)> {
    vec![
        ("ABI version", stat.abi_version.to_string()),
        ("page size", format_size(stat.page_size)),
        ("default strategy", stat.default_strategy().to_string()),
        (
            "live blocks",
            format!("{}, {}", stat.blocks_total, size_text(stat.bytes_total)),
        ),
        ("limit per file", size_text(stat.max_bytes_per_file)),
        ("limit total", size_text(stat.max_bytes_total)),
    ]
}

/// Label/value pairs aligned in two columns, each line prefixed with `indent`.
pub fn aligned(lines: &[(&str, String)], indent: &str) -> String {
    let width = lines
        .iter()
        .map(|(label, _)| label.len())
        .max()
        .unwrap_or(0)
        + 1;
    lines
        .iter()
        .map(|(label, value)| format!("{indent}{:<width$} {value}\n", format!("{label}:")))
        .collect()
}

/// A table of blocks, one line each.
pub fn list_table(infos: &[Info]) -> String {
    let mut out = format!(
        "{:>6}  {:>10}  {:<8}  {:<7}  {:>7}  {:>4}  {:<18}  {}\n",
        "ID", "SIZE", "STRATEGY", "OWNER", "PID", "MAPS", "PHYS", "OFFSET"
    );
    for info in infos {
        let phys = if info.phys_addr == 0 {
            "-".to_owned()
        } else {
            format!("{:#x}", info.phys_addr)
        };
        out.push_str(&format!(
            "{:>6}  {:>10}  {:<8}  {:<7}  {:>7}  {:>4}  {:<18}  {:#x}\n",
            info.id,
            format_size(info.size),
            info.strategy.to_string(),
            info.owner.to_string(),
            info.owner_tgid,
            info.map_count,
            phys,
            info.offset
        ));
    }
    out
}

/// A classic hex dump: block offset, 16 bytes in hex, and their printable characters.
pub fn hexdump(bytes: &[u8], base_offset: u64) -> String {
    let mut out = String::new();
    for (row, chunk) in bytes.chunks(16).enumerate() {
        let hex: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
        let text: String = chunk
            .iter()
            .map(|&b| {
                if b.is_ascii_graphic() || b == b' ' {
                    b as char
                } else {
                    '.'
                }
            })
            .collect();
        out.push_str(&format!(
            "{:08x}  {:<47}  |{text}|\n",
            base_offset + row as u64 * 16,
            hex.join(" ")
        ));
    }
    out
}

/// A persistent 2 MiB page block, for tests of what is printed about blocks.
#[cfg(test)]
pub(crate) fn sample_info() -> Info {
    Info {
        id: 3,
        flags: cmamap::abi::ALLOC_PERSIST,
        size: 2 << 20,
        offset: cmamap::abi::offset_of_id(3),
        phys_addr: 0,
        strategy: cmamap::Strategy::Page,
        map_count: 1,
        owner: cmamap::Owner::Module,
        owner_tgid: 77,
        dma_mappings: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_text() {
        let text = aligned(&info_lines(&sample_info()), "");
        assert!(
            text.contains("size:        2 MiB (2097152 bytes)\n"),
            "{text}"
        );
        assert!(text.contains("phys addr:   hidden (needs CAP_SYS_ADMIN)\n"));
        assert!(text.contains("owner:       module (allocated by pid 77)\n"));
        assert!(text.contains("mmap offset: 0x3000000000\n"));
    }

    #[test]
    fn table_has_a_row_per_block() {
        let table = list_table(&[sample_info(), sample_info()]);
        assert_eq!(table.lines().count(), 3);
        assert!(table.lines().nth(1).unwrap().contains("page"));
    }

    #[test]
    fn hexdump_rows() {
        let dump = hexdump(b"ABCDEFGHIJKLMNOPq\x00", 0x1000);
        let lines: Vec<&str> = dump.lines().collect();
        assert_eq!(
            lines[0],
            "00001000  41 42 43 44 45 46 47 48 49 4a 4b 4c 4d 4e 4f 50  |ABCDEFGHIJKLMNOP|"
        );
        assert_eq!(lines[1], format!("00001010  71 00{}  |q.|", " ".repeat(42)));
        // The text columns line up.
        assert_eq!(lines[0].find('|'), lines[1].find('|'));
    }
}
