//! Compiles a C program against `driver/uapi/cmamap.h`, runs it, and checks that every size,
//! field offset, ioctl number and constant it prints equals the Rust ABI's.

use std::collections::BTreeMap;
use std::mem::{offset_of, size_of, size_of_val};
use std::path::PathBuf;
use std::process::Command;

use cmamap_abi::*;

/// One compared quantity: its key, the C expression that computes it, and the Rust value.
struct Item {
    key: String,
    c_expr: String,
    rust: u64,
}

/// Per struct: the field list drives both the C `offsetof`/`sizeof` lines and the Rust values,
/// so a field cannot be checked on one side only.
struct StructLayout {
    c_name: &'static str,
    size: u64,
    fields: Vec<(&'static str, u64, u64)>, // name, offset, size
}

macro_rules! layout {
    ($rust:ty, $c_name:literal, [$($field:ident),+ $(,)?]) => {{
        let value = <$rust>::default();
        StructLayout {
            c_name: $c_name,
            size: size_of::<$rust>() as u64,
            fields: vec![$((
                stringify!($field),
                offset_of!($rust, $field) as u64,
                size_of_val(&value.$field) as u64,
            )),+],
        }
    }};
}

fn layouts() -> Vec<StructLayout> {
    vec![
        layout!(
            AllocArgs,
            "cmamap_alloc",
            [
                size,
                flags,
                strategy,
                align_order,
                id,
                offset,
                addr,
                prot,
                pad0,
                device,
                reserved
            ]
        ),
        layout!(FreeArgs, "cmamap_free", [id, pad0, addr, reserved]),
        layout!(
            BlockInfo,
            "cmamap_info",
            [
                id,
                flags,
                size,
                offset,
                phys_addr,
                strategy,
                map_count,
                owner,
                owner_tgid,
                dma_mappings,
                pad0,
                reserved
            ]
        ),
        layout!(
            ListArgs,
            "cmamap_list",
            [entries, capacity, count, reserved]
        ),
        layout!(
            StatArgs,
            "cmamap_stat",
            [
                abi_version,
                default_strategy,
                page_size,
                max_bytes_per_file,
                max_bytes_total,
                bytes_total,
                bytes_file,
                blocks_total,
                blocks_file,
                reserved
            ]
        ),
        layout!(DeviceName, "cmamap_device", [name, dma_bits, pad0]),
        layout!(
            DmaMapArgs,
            "cmamap_dma_map",
            [id, direction, offset, length, device, dma_addr, handle, pad1, reserved]
        ),
        layout!(DmaUnmapArgs, "cmamap_dma_unmap", [handle, pad0, reserved]),
        layout!(
            SyncArgs,
            "cmamap_sync",
            [id, flags, offset, length, direction, synced, reserved]
        ),
        layout!(
            DmaInfo,
            "cmamap_dma_info",
            [handle, direction, offset, length, dma_addr, device]
        ),
        layout!(
            DmaListArgs,
            "cmamap_dma_list",
            [id, capacity, entries, count, pad0, reserved]
        ),
        layout!(
            ExportArgs,
            "cmamap_export",
            [id, flags, offset, length, fd, pad0, size, reserved]
        ),
    ]
}

fn constants() -> Vec<(&'static str, u64)> {
    vec![
        ("CMAMAP_IOC_MAGIC", IOC_MAGIC as u64),
        ("CMAMAP_ABI_VERSION", ABI_VERSION as u64),
        ("CMAMAP_STRATEGY_DEFAULT", STRATEGY_DEFAULT as u64),
        ("CMAMAP_STRATEGY_REMAP", STRATEGY_REMAP as u64),
        ("CMAMAP_STRATEGY_FAULT", STRATEGY_FAULT as u64),
        ("CMAMAP_STRATEGY_PAGE", STRATEGY_PAGE as u64),
        ("CMAMAP_STRATEGY_HUGE", STRATEGY_HUGE as u64),
        ("CMAMAP_ALLOC_PERSIST", ALLOC_PERSIST as u64),
        ("CMAMAP_ALLOC_FOR_DEVICE", ALLOC_FOR_DEVICE as u64),
        ("CMAMAP_ALLOC_FLAGS_ALL", ALLOC_FLAGS_ALL as u64),
        ("CMAMAP_OWNER_THIS_FILE", OWNER_THIS_FILE as u64),
        ("CMAMAP_OWNER_MODULE", OWNER_MODULE as u64),
        ("CMAMAP_OWNER_DEVICE", OWNER_DEVICE as u64),
        ("CMAMAP_INFO_DEVICE_MEMORY", INFO_DEVICE_MEMORY as u64),
        ("CMAMAP_VIEW_REMAP_WC", VIEW_REMAP_WC as u64),
        ("CMAMAP_MAX_ALIGN_ORDER", MAX_ALIGN_ORDER as u64),
        ("CMAMAP_OFFSET_SHIFT", OFFSET_SHIFT as u64),
        ("CMAMAP_MAX_ID", MAX_ID as u64),
        ("CMAMAP_VIEW_SHIFT", VIEW_SHIFT as u64),
        ("CMAMAP_MAX_BLOCK_SIZE", MAX_BLOCK_SIZE),
        (
            "CMAMAP_MMAP_OFFSET(7, 3, 0x5000)",
            view_offset(7, 3, 0x5000),
        ),
        ("CMAMAP_IOC_ALLOC", IOC_ALLOC as u64),
        ("CMAMAP_IOC_FREE", IOC_FREE as u64),
        ("CMAMAP_IOC_INFO", IOC_INFO as u64),
        ("CMAMAP_IOC_LIST", IOC_LIST as u64),
        ("CMAMAP_IOC_ALLOC_MAP", IOC_ALLOC_MAP as u64),
        ("CMAMAP_IOC_UNMAP_FREE", IOC_UNMAP_FREE as u64),
        ("CMAMAP_IOC_STAT", IOC_STAT as u64),
        ("CMAMAP_IOC_DMA_MAP", IOC_DMA_MAP as u64),
        ("CMAMAP_IOC_DMA_UNMAP", IOC_DMA_UNMAP as u64),
        ("CMAMAP_IOC_SYNC", IOC_SYNC as u64),
        ("CMAMAP_IOC_DMA_LIST", IOC_DMA_LIST as u64),
        ("CMAMAP_DMA_BIDIRECTIONAL", DMA_BIDIRECTIONAL as u64),
        ("CMAMAP_DMA_TO_DEVICE", DMA_TO_DEVICE as u64),
        ("CMAMAP_DMA_FROM_DEVICE", DMA_FROM_DEVICE as u64),
        ("CMAMAP_DEVICE_NAME_MAX", DEVICE_NAME_MAX as u64),
        ("CMAMAP_DMA_LIST_MAX", DMA_LIST_MAX as u64),
        ("CMAMAP_SYNC_FOR_CPU", SYNC_FOR_CPU as u64),
        ("CMAMAP_SYNC_FOR_DEVICE", SYNC_FOR_DEVICE as u64),
        ("CMAMAP_IOC_EXPORT", IOC_EXPORT as u64),
        ("CMAMAP_EXPORT_RDWR", EXPORT_RDWR as u64),
        ("CMAMAP_EXPORT_CLOEXEC", EXPORT_CLOEXEC as u64),
        ("CMAMAP_EXPORT_FLAGS_ALL", EXPORT_FLAGS_ALL as u64),
        // The export flags are the dma-buf file's own open flags.
        ("O_RDWR", EXPORT_RDWR as u64),
        ("O_CLOEXEC", EXPORT_CLOEXEC as u64),
    ]
}

fn items() -> Vec<Item> {
    let mut items = Vec::new();
    for layout in layouts() {
        let s = layout.c_name;
        items.push(Item {
            key: format!("sizeof {s}"),
            c_expr: format!("sizeof(struct {s})"),
            rust: layout.size,
        });
        for (field, offset, size) in &layout.fields {
            items.push(Item {
                key: format!("offsetof {s}.{field}"),
                c_expr: format!("offsetof(struct {s}, {field})"),
                rust: *offset,
            });
            items.push(Item {
                key: format!("sizeof {s}.{field}"),
                c_expr: format!("sizeof(((struct {s} *)0)->{field})"),
                rust: *size,
            });
        }
    }
    for (name, value) in constants() {
        items.push(Item {
            key: name.to_owned(),
            c_expr: format!("(unsigned long long)({name})"),
            rust: value,
        });
    }
    items
}

fn c_program(items: &[Item]) -> String {
    let mut src = String::from(
        "#define _GNU_SOURCE\n#include <fcntl.h>\n#include <stddef.h>\n#include <stdio.h>\n#include \"cmamap.h\"\n\nint main(void)\n{\n",
    );
    for item in items {
        src.push_str(&format!(
            "\tprintf(\"%s=%llu\\n\", \"{}\", (unsigned long long)({}));\n",
            item.key, item.c_expr
        ));
    }
    src.push_str("\treturn 0;\n}\n");
    src
}

fn header_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../driver/uapi")
}

/// Compiles and runs the C side; returns key → value.
fn c_values(items: &[Item]) -> BTreeMap<String, u64> {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("c_layout");
    std::fs::create_dir_all(&dir).unwrap();
    let source = dir.join("layout.c");
    let binary = dir.join("layout");
    std::fs::write(&source, c_program(items)).unwrap();
    assert!(
        header_dir().join("cmamap.h").exists(),
        "missing {}",
        header_dir().join("cmamap.h").display()
    );
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    // -Wpadded makes the compiler itself reject implicit padding in the header's structs.
    let output = Command::new(&cc)
        .args(["-std=c11", "-Wall", "-Wextra", "-Wpadded", "-Werror", "-I"])
        .arg(header_dir())
        .arg("-o")
        .arg(&binary)
        .arg(&source)
        .output()
        .unwrap_or_else(|err| panic!("cannot run {cc}: {err}"));
    assert!(
        output.status.success(),
        "{cc} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let output = Command::new(&binary).output().unwrap();
    assert!(output.status.success(), "layout program failed");
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let (key, value) = line.split_once('=').unwrap();
            (key.to_owned(), value.parse().unwrap())
        })
        .collect()
}

#[test]
fn rust_abi_matches_c_header() {
    let items = items();
    let c = c_values(&items);
    let mismatches: Vec<String> = items
        .iter()
        .filter(|item| c.get(&item.key) != Some(&item.rust))
        .map(|item| format!("{}: C {:?}, Rust {}", item.key, c.get(&item.key), item.rust))
        .collect();
    assert!(
        mismatches.is_empty(),
        "ABI mismatches:\n{}",
        mismatches.join("\n")
    );
}

#[test]
fn structs_have_no_implicit_padding() {
    for layout in layouts() {
        let sum: u64 = layout.fields.iter().map(|(_, _, size)| size).sum();
        assert_eq!(sum, layout.size, "struct {} has padding", layout.c_name);
        // Fields are listed in declaration order and must tile the struct without gaps.
        let mut end = 0;
        for (field, offset, size) in &layout.fields {
            assert_eq!(*offset, end, "gap before {}.{field}", layout.c_name);
            end = offset + size;
        }
        assert_eq!(end, layout.size, "tail padding in {}", layout.c_name);
    }
}

#[test]
fn sizes_keep_64_bit_alignment() {
    // Sizes that are multiples of 8 lay out the same for 32-bit and 64-bit userspace.
    for layout in layouts() {
        assert_eq!(layout.size % 8, 0, "{}", layout.c_name);
    }
}

#[test]
fn offsets_round_trip() {
    for id in [0, 1, 2, 12345, MAX_ID] {
        let offset = offset_of_id(id);
        assert_eq!(id_of_offset(offset), (id, 0));
        assert_eq!(id_of_offset(offset + 4096 * 3), (id, 4096 * 3));
        // mmap offsets are off_t: every block offset must be a positive i64.
        assert!(i64::try_from(offset + (1 << OFFSET_SHIFT) - 1).is_ok());
    }
}
