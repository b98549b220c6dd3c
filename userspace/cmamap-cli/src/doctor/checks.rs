//! The diagnosis: from [`Facts`] to checks, each with a status and, for a problem, the exact
//! fix. Pure, so that host tests can feed it any system.

use cmamap::abi::ABI_VERSION;
use cmamap::units::{format_size, parse_size};
use serde_json::json;

use super::facts::{Facts, IommuFacts, MODULE};
use super::{Check, Status};

/// The group that the udev rule of `make install` gives the device node.
pub const GROUP: &str = "cmamap";
/// That rule's file and text.
pub const UDEV_RULE_FILE: &str = "/etc/udev/rules.d/60-cmamap.rules";
pub const UDEV_RULE: &str = r#"KERNEL=="cmamap", GROUP="cmamap", MODE="0660""#;
/// The CMA size suggested when there is none.
const SUGGESTED_CMA: &str = "256M";

/// Every check, in the order a person would fix things.
pub fn diagnose(facts: &Facts) -> Vec<Check> {
    vec![
        module(facts),
        device(facts),
        cma(facts),
        kernel_config(facts),
        iommu(&facts.iommu, &facts.cmdline),
        caller(facts),
    ]
}

/// The value of `cma=` on the command line (the last one wins, as in the kernel).
pub fn cma_param(cmdline: &str) -> Option<&str> {
    cmdline
        .split_whitespace()
        .filter_map(|word| word.strip_prefix("cma="))
        .next_back()
}

/// The size part of a `cma=` value (`256M`, `512M@0-4G`, `0`) in bytes.
pub fn cma_param_bytes(value: &str) -> Option<u64> {
    let size = value.split(['@', ',']).next()?;
    parse_size(size).ok()
}

fn grub_fix(size: &str) -> String {
    format!(
        "add `cma={size}` to GRUB_CMDLINE_LINUX in /etc/default/grub, run `sudo update-grub` \
         and reboot (for this boot only: type it at the GRUB menu with `e`)"
    )
}

fn module(facts: &Facts) -> Check {
    let Some(module) = &facts.module else {
        let fix = match &facts.module_file {
            Some(path) => format!(
                "load it: `sudo modprobe {MODULE}` ({} is installed); to load it at every boot: \
                 `echo {MODULE} | sudo tee /etc/modules-load.d/{MODULE}.conf`",
                path.display()
            ),
            None => format!(
                "no {MODULE}.ko is installed for kernel {}: build and install it from the cmamap \
                 tree with `sudo make install` (or `sudo make dkms-install`), then \
                 `sudo modprobe {MODULE}`; or load a built one with `sudo insmod ./cmamap.ko`",
                facts.kernel_release
            ),
        };
        return Check::new("module", Status::Error, format!("{MODULE} is not loaded"))
            .fix(fix)
            .data(json!({ "loaded": false, "installed": facts.module_file }));
    };
    let state = module.initstate.as_deref().unwrap_or("unknown");
    // The ABI version (through STAT) is what userspace depends on; the module has no
    // MODULE_VERSION, so /sys/module/cmamap/version is there only for other builds.
    let mut versions = Vec::new();
    if let Some(abi) = facts.node.abi_version {
        versions.push(format!("ABI {abi}"));
    }
    if let Some(version) = &module.version {
        versions.push(format!("version {version}"));
    }
    if let Some(srcversion) = &module.srcversion {
        versions.push(format!("srcversion {srcversion}"));
    }
    if versions.is_empty() {
        versions.push("ABI unknown: the device did not open".to_owned());
    }
    let mut check = Check::new(
        "module",
        Status::Ok,
        format!("{MODULE} is loaded ({state}), {}", versions.join(", ")),
    );
    if !module.params.is_empty() {
        let params: Vec<String> = module
            .params
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        check = check.detail(format!("parameters: {}", params.join(" ")));
    }
    if let Some(taint) = module.taint.as_deref().filter(|t| !t.is_empty()) {
        check = check.detail(format!(
            "taint {taint} (O: built out of tree, E: unsigned; both expected)"
        ));
    }
    if state != "live" {
        check = check.status(Status::Warn).fix(format!(
            "the module is {state}: wait for it to finish loading or unloading, then run \
             `cmamap doctor` again"
        ));
    }
    if let Some(abi) = facts.node.abi_version.filter(|&abi| abi != ABI_VERSION) {
        check = check.status(Status::Error).fix(format!(
            "the module speaks ABI {abi} and this cmamap tool ABI {ABI_VERSION}: build both from \
             the same tree and install them again (`sudo make install`, then \
             `sudo rmmod {MODULE} && sudo modprobe {MODULE}`)"
        ));
    }
    check.data(json!({
        "loaded": true,
        "initstate": module.initstate,
        "version": module.version,
        "srcversion": module.srcversion,
        "refcnt": module.refcnt,
        "taint": module.taint,
        "abi_version": facts.node.abi_version,
        "tool_abi_version": ABI_VERSION,
        "parameters": module.params,
        "installed": facts.module_file,
    }))
}

/// `crw-rw----` for a character device with `mode`.
pub fn mode_text(mode: u32, is_char: bool) -> String {
    let mut text = String::from(if is_char { "c" } else { "-" });
    for shift in [6, 3, 0] {
        let bits = mode >> shift;
        text.push(if bits & 4 != 0 { 'r' } else { '-' });
        text.push(if bits & 2 != 0 { 'w' } else { '-' });
        text.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    text
}

fn udev_fix() -> String {
    format!(
        "give the node to group {GROUP}: `sudo groupadd -f -r {GROUP}`, put \
         `{UDEV_RULE}` in {UDEV_RULE_FILE} (`sudo make install` does both), run \
         `sudo udevadm control --reload && sudo udevadm trigger --action=add --sysname-match=cmamap`; \
         then `sudo usermod -aG {GROUP} $USER` and log in again"
    )
}

fn device(facts: &Facts) -> Check {
    let node = &facts.node;
    let path = node.path.display();
    let mut data = json!({
        "path": node.path,
        "exists": node.exists,
        "char_device": node.is_char,
        "dev": node.rdev.map(|(a, b)| format!("{a}:{b}")),
        "expected_dev": node.expected_rdev.map(|(a, b)| format!("{a}:{b}")),
        "owner": node.owner_name.clone().unwrap_or(node.uid.to_string()),
        "group": node.group_name.clone().unwrap_or(node.gid.to_string()),
        "uid": node.uid,
        "gid": node.gid,
        "mode": format!("{:04o}", node.mode),
        "caller_can_open": node.open_error.is_none(),
        "open_error": node.open_error,
    });
    if !node.exists {
        let (summary, fix) = if facts.module.is_some() {
            (
                format!("{path} does not exist although the module is loaded"),
                format!(
                    "the kernel registered the device ({}); create the node: `sudo mknod -m 0660 \
                     {path} c MAJOR MINOR` with the numbers from /sys/class/misc/cmamap/dev, \
                     or let udev/devtmpfs do it (`mount -t devtmpfs dev /dev`)",
                    node.expected_rdev
                        .map(|(a, b)| format!("{a}:{b}"))
                        .unwrap_or("no /sys/class/misc/cmamap/dev".into())
                ),
            )
        } else {
            (
                format!("{path} does not exist (the module is not loaded)"),
                "load the module (see the module check); the node appears with it".to_owned(),
            )
        };
        return Check::new("device", Status::Error, summary)
            .fix(fix)
            .data(data);
    }
    let owner = node.owner_name.clone().unwrap_or(node.uid.to_string());
    let group = node.group_name.clone().unwrap_or(node.gid.to_string());
    let described = format!(
        "{path} {} {owner}:{group}{}",
        mode_text(node.mode, node.is_char),
        node.rdev
            .map(|(a, b)| format!(" ({a}:{b})"))
            .unwrap_or_default()
    );
    if !node.is_char {
        return Check::new(
            "device",
            Status::Error,
            format!("{described} is not a character device"),
        )
        .fix(format!(
            "remove it (`sudo rm {path}`) and reload the module so that the real node is made"
        ))
        .data(data);
    }
    if let (Some(rdev), Some(expected)) = (node.rdev, node.expected_rdev) {
        if rdev != expected {
            return Check::new(
                "device",
                Status::Error,
                format!(
                    "{described} is not the module's device ({}:{})",
                    expected.0, expected.1
                ),
            )
            .fix(format!(
                "remove the stale node (`sudo rm {path}`) and reload the module"
            ))
            .data(data);
        }
    }
    let caller = &facts.caller;
    let group_rw = node.mode & 0o060 == 0o060;
    let world_rw = node.mode & 0o006 != 0;
    match &node.open_error {
        None => {
            let how = if caller.euid == 0 {
                "as root"
            } else if caller.euid == node.uid {
                "as its owner"
            } else if group_rw && caller.in_group(node.gid) {
                "through group membership"
            } else {
                "through its mode"
            };
            let mut check = Check::new(
                "device",
                Status::Ok,
                format!("{described}; you can open it ({how})"),
            );
            if world_rw {
                check = check.status(Status::Warn).fix(format!(
                    "every user may allocate CMA through it: restrict it to group {GROUP} with \
                     mode 0660 (`{UDEV_RULE}` in {UDEV_RULE_FILE})"
                ));
            } else if node.group_name.as_deref() != Some(GROUP) || !group_rw {
                check = check.detail(format!(
                    "only {owner} may open it; for users without root: {}",
                    udev_fix()
                ));
            }
            check.data(data)
        }
        Some(why) => {
            let user = caller
                .user_name
                .clone()
                .unwrap_or(format!("uid {}", caller.euid));
            let fix = if !why.starts_with("EACCES") && !why.starts_with("EPERM") {
                format!("opening it failed with {why}: see `dmesg` for the driver's messages")
            } else if group_rw && node.group_name.as_deref() == Some(GROUP) {
                if node.group_members.contains(&user) {
                    format!(
                        "{user} is in group {GROUP} but this session predates it: log in again \
                         (or run `newgrp {GROUP}`)"
                    )
                } else {
                    format!(
                        "add yourself to group {GROUP}: `sudo usermod -aG {GROUP} {}` and log in \
                         again (or run `newgrp {GROUP}`)",
                        caller.user_name.as_deref().unwrap_or("$USER")
                    )
                }
            } else {
                udev_fix()
            };
            data["open_error"] = json!(why);
            Check::new(
                "device",
                Status::Error,
                format!("{described}; you ({user}) cannot open it: {why}"),
            )
            .fix(fix)
            .data(data)
        }
    }
}

fn cma(facts: &Facts) -> Check {
    let param = cma_param(&facts.cmdline);
    let areas: Vec<String> = facts
        .cma_areas
        .iter()
        .map(|area| {
            let pages = |p: Option<u64>| p.map_or("?".to_owned(), |p| format_size(p * 4096));
            format!(
                "{}: {} ({} free)",
                area.name,
                pages(area.total_pages),
                pages(area.available_pages)
            )
        })
        .collect();
    let data = json!({
        "cma_total_kib": facts.cma.map(|c| c.total_kib),
        "cma_free_kib": facts.cma.map(|c| c.free_kib),
        "cmdline_cma": param,
        "areas": facts.cma_areas,
    });
    let Some(cma) = facts.cma else {
        return Check::new(
            "cma",
            Status::Error,
            "/proc/meminfo has no CmaTotal: this kernel has no CMA (CONFIG_CMA)",
        )
        .fix(
            "boot a kernel built with CONFIG_CMA=y and CONFIG_DMA_CMA=y (Debian 13's 7.3 kernel \
             has both), with `cma=256M` on its command line",
        )
        .data(data);
    };
    let param_text = match param {
        Some(value) => format!("cma={value} given"),
        None => "no cma= on the command line".to_owned(),
    };
    let mut check = if cma.total_kib == 0 {
        let why = match (param, facts.config.as_ref()) {
            (Some(value), _) if cma_param_bytes(value) == Some(0) => {
                format!("the kernel was booted with cma={value}")
            }
            (Some(value), _) => format!("the kernel could not reserve cma={value}"),
            (None, Some(config)) if config.get("CONFIG_CMA_SIZE_MBYTES") == "0" => {
                "the kernel's default is CONFIG_CMA_SIZE_MBYTES=0 and no cma= was given".to_owned()
            }
            (None, _) => "no cma= was given".to_owned(),
        };
        let fix = match param {
            Some(value) if cma_param_bytes(value) == Some(0) => format!(
                "replace `cma={value}` by `cma={SUGGESTED_CMA}` in GRUB_CMDLINE_LINUX in \
                 /etc/default/grub, run `sudo update-grub` and reboot"
            ),
            Some(value) => format!(
                "ask for less or place it elsewhere: replace `cma={value}` in GRUB_CMDLINE_LINUX \
                 in /etc/default/grub (e.g. `cma={SUGGESTED_CMA}`), run `sudo update-grub` and \
                 reboot; `dmesg | grep -i cma` says why it failed"
            ),
            None => grub_fix(SUGGESTED_CMA),
        };
        Check::new(
            "cma",
            Status::Error,
            format!("no CMA memory (CmaTotal 0 kB): {why}"),
        )
        .fix(fix)
    } else {
        let status = if cma.free_kib == 0 {
            Status::Warn
        } else {
            Status::Ok
        };
        let mut check = Check::new(
            "cma",
            status,
            format!(
                "CmaTotal {}, CmaFree {}; {param_text}",
                format_size(cma.total_kib * 1024),
                format_size(cma.free_kib * 1024)
            ),
        );
        if status == Status::Warn {
            check = check.fix(
                "every CMA page is taken: free blocks (`cmamap list`, `cmamap free ID`) or ask \
                 for a larger area with cma= in GRUB_CMDLINE_LINUX (then `sudo update-grub` and \
                 reboot)",
            );
        }
        if param.is_none() {
            check = check.detail(
                "the area comes from the kernel's CONFIG_CMA_SIZE_MBYTES; `cma=SIZE` on the \
                 command line sets it",
            );
        }
        check
    };
    if areas.is_empty() {
        check = check.detail("no per-area figures (/sys/kernel/mm/cma needs CONFIG_CMA_SYSFS)");
    } else {
        check = check.detail(format!("areas: {}", areas.join("; ")));
    }
    if let Some(total) = facts.node.max_bytes_total {
        check = check.detail(format!(
            "the module lets all blocks together hold {} (max_bytes_total) and one open file {} \
             (max_bytes_per_file)",
            format_size(total),
            format_size(facts.node.max_bytes_per_file.unwrap_or(0))
        ));
    }
    check.data(data)
}

fn kernel_config(facts: &Facts) -> Check {
    const KEYS: [&str; 7] = [
        "CONFIG_RUST",
        "CONFIG_CMA",
        "CONFIG_DMA_CMA",
        "CONFIG_CMA_SIZE_MBYTES",
        "CONFIG_CMA_SYSFS",
        "CONFIG_IOMMU_SUPPORT",
        "CONFIG_MODULE_SIG_FORCE",
    ];
    let Some(config) = &facts.config else {
        return Check::new(
            "kernel",
            Status::Warn,
            format!(
                "kernel {}: its configuration is neither in /proc/config.gz nor in \
                 /boot/config-{}",
                facts.kernel_release, facts.kernel_release
            ),
        )
        .fix("`sudo modprobe configs` provides /proc/config.gz where the kernel has it as a module")
        .data(json!({ "release": facts.kernel_release, "config": null }));
    };
    let values: serde_json::Map<String, serde_json::Value> = KEYS
        .iter()
        .map(|key| (key.to_string(), json!(config.get(key))))
        .collect();
    let data =
        json!({ "release": facts.kernel_release, "source": config.source, "config": values });
    let shown: Vec<String> = KEYS
        .iter()
        .map(|key| format!("{}={}", key.trim_start_matches("CONFIG_"), config.get(key)))
        .collect();
    let summary = format!("kernel {} ({})", facts.kernel_release, config.source);
    let mut lacks = Vec::new();
    let mut fixes = Vec::new();
    if !config.is_y("CONFIG_RUST") {
        lacks.push("Rust support (CONFIG_RUST), so it cannot load cmamap");
        fixes.push(
            "boot a kernel with CONFIG_RUST=y (Debian 13's 7.3 kernel from trixie-backports has it)",
        );
    }
    if !config.is_y("CONFIG_CMA") || !config.is_y("CONFIG_DMA_CMA") {
        lacks.push("CONFIG_CMA or CONFIG_DMA_CMA (the cma= boot area)");
        fixes.push("boot a kernel built with CONFIG_CMA=y and CONFIG_DMA_CMA=y");
    }
    let mut check = if lacks.is_empty() {
        Check::new("kernel", Status::Ok, summary)
    } else {
        Check::new(
            "kernel",
            Status::Error,
            format!("{summary} lacks {}", lacks.join(" and ")),
        )
        .fix(fixes.join("; "))
    };
    check = check.detail(shown.join(" "));
    if config.is_y("CONFIG_MODULE_SIG_FORCE") && facts.module.is_none() {
        check = check.detail(
            "CONFIG_MODULE_SIG_FORCE: only signed modules load; DKMS signs with its MOK key \
             (`mokutil --import /var/lib/dkms/mok.pub`)",
        );
    }
    check.data(data)
}

/// How devices reach memory, from the IOMMU groups' default domains.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IommuMode {
    /// No IOMMU: DMA addresses are physical addresses.
    None,
    /// Identity domains: the same, through an IOMMU.
    Passthrough,
    /// DMA domains: devices use IOVAs.
    Translated,
    /// Some groups of each kind.
    Mixed,
}

pub fn iommu_mode(iommu: &IommuFacts) -> IommuMode {
    let translated = |t: &str| t.starts_with("DMA");
    let all_translated = iommu.groups.iter().all(|(_, t)| translated(t));
    let none_translated = !iommu.groups.iter().any(|(_, t)| translated(t));
    if iommu.groups.is_empty() {
        if iommu.units.is_empty() {
            IommuMode::None
        } else {
            IommuMode::Passthrough
        }
    } else if all_translated {
        IommuMode::Translated
    } else if none_translated {
        IommuMode::Passthrough
    } else {
        IommuMode::Mixed
    }
}

fn iommu(iommu: &IommuFacts, cmdline: &str) -> Check {
    let mode = iommu_mode(iommu);
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for (_, kind) in &iommu.groups {
        *counts.entry(kind.as_str()).or_default() += 1;
    }
    let (name, summary) = match mode {
        IommuMode::None => (
            "none",
            "no IOMMU: a device reaches memory at its physical address, so a block must lie \
             below the device's DMA limit (place CMA with cma=SIZE@BASE-LIMIT); \
             `cmamap dma-map` refuses (ERANGE) what the device cannot reach",
        ),
        IommuMode::Passthrough => (
            "passthrough",
            "IOMMU in passthrough (identity): DMA addresses are physical addresses, as without \
             an IOMMU, and the device's DMA limit applies",
        ),
        IommuMode::Translated => (
            "translated",
            "IOMMU translates: a device must use the IOVA that `cmamap dma-map` \
             (CMAMAP_IOC_DMA_MAP) returns, never the physical address, which faults",
        ),
        IommuMode::Mixed => (
            "mixed",
            "IOMMU groups differ: devices in DMA groups use IOVAs from `cmamap dma-map`, those \
             in identity groups physical addresses; use the dma_addr dma-map prints for each",
        ),
    };
    let mut check = Check::new("iommu", Status::Info, summary);
    if !iommu.units.is_empty() || !counts.is_empty() {
        let groups: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
        check = check.detail(format!(
            "units: {}; groups: {}",
            if iommu.units.is_empty() {
                "none".to_owned()
            } else {
                iommu.units.join(" ")
            },
            if groups.is_empty() {
                "none".to_owned()
            } else {
                groups.join(", ")
            }
        ));
    }
    let flags: Vec<&str> = cmdline
        .split_whitespace()
        .filter(|w| w.starts_with("iommu") || w.contains("_iommu=") || w.starts_with("swiotlb="))
        .collect();
    if !flags.is_empty() {
        check = check.detail(format!("command line: {}", flags.join(" ")));
    }
    check.data(json!({
        "mode": name,
        "units": iommu.units,
        "group_types": counts,
        "cmdline": flags,
    }))
}

fn caller(facts: &Facts) -> Check {
    let c = &facts.caller;
    let who = c.user_name.clone().unwrap_or(format!("uid {}", c.euid));
    let data = json!({
        "uid": c.uid,
        "euid": c.euid,
        "user": c.user_name,
        "groups": c.groups,
        "cap_eff": format!("{:#x}", c.cap_eff),
        "cap_sys_admin": c.has_sys_admin(),
        "initial_user_namespace": c.initial_userns,
    });
    if c.has_sys_admin() {
        return Check::new(
            "caller",
            Status::Ok,
            format!(
                "{who} has CAP_SYS_ADMIN: physical addresses are shown, PERSIST blocks and \
                 DMA_MAP (`cmamap dma-map`) are allowed"
            ),
        )
        .data(data);
    }
    let mut check = Check::new(
        "caller",
        Status::Info,
        format!(
            "{who} has no CAP_SYS_ADMIN: allocating and mapping work, but INFO and LIST show \
             physical address 0, and PERSIST (`alloc --persist`, freeing persistent blocks) and \
             DMA_MAP (`cmamap dma-map`) are refused with EPERM"
        ),
    )
    .detail("for those, run as root (sudo)");
    if !c.initial_userns && c.cap_eff & (1 << super::facts::CAP_SYS_ADMIN) != 0 {
        check = check.detail(
            "CAP_SYS_ADMIN inside a user namespace does not count: the driver checks it in the \
             initial namespace",
        );
    }
    check.data(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::facts::{CallerFacts, KernelConfig, ModuleFacts, NodeFacts};
    use cmamap::meminfo::{CmaArea, CmaMeminfo};

    /// A healthy system: module loaded, node root:cmamap 0660, caller in the group, CMA set.
    fn healthy() -> Facts {
        Facts {
            kernel_release: "7.3.4+deb13-amd64".into(),
            cmdline: "root=/dev/sda1 cma=256M quiet".into(),
            module: Some(ModuleFacts {
                initstate: Some("live".into()),
                srcversion: Some("0123ABCD".into()),
                ..Default::default()
            }),
            module_file: None,
            node: NodeFacts {
                path: "/dev/cmamap".into(),
                exists: true,
                is_char: true,
                rdev: Some((10, 123)),
                expected_rdev: Some((10, 123)),
                uid: 0,
                gid: 999,
                mode: 0o660,
                owner_name: Some("root".into()),
                group_name: Some("cmamap".into()),
                group_members: vec!["alice".into()],
                open_error: None,
                abi_version: Some(ABI_VERSION),
                max_bytes_total: Some(1 << 30),
                max_bytes_per_file: Some(256 << 20),
            },
            cma: Some(CmaMeminfo {
                total_kib: 262144,
                free_kib: 260000,
            }),
            cma_areas: vec![CmaArea {
                name: "reserved".into(),
                total_pages: Some(65536),
                available_pages: Some(65000),
            }],
            config: Some(KernelConfig::parse(
                "/proc/config.gz",
                "CONFIG_RUST=y\nCONFIG_CMA=y\nCONFIG_DMA_CMA=y\nCONFIG_CMA_SIZE_MBYTES=0\n",
            )),
            iommu: IommuFacts::default(),
            caller: CallerFacts {
                uid: 1000,
                euid: 1000,
                user_name: Some("alice".into()),
                egid: 1000,
                groups: vec![999],
                cap_eff: 0,
                initial_userns: true,
            },
        }
    }

    fn find<'a>(checks: &'a [Check], name: &str) -> &'a Check {
        checks.iter().find(|c| c.name == name).unwrap()
    }

    #[test]
    fn a_healthy_system_has_no_problem() {
        let checks = diagnose(&healthy());
        for check in &checks {
            assert!(
                matches!(check.status, Status::Ok | Status::Info),
                "{check:?}"
            );
            assert!(check.fix.is_none(), "{check:?}");
        }
        assert!(find(&checks, "device")
            .summary
            .contains("through group membership"));
        assert!(find(&checks, "caller").summary.contains("no CAP_SYS_ADMIN"));
    }

    #[test]
    fn no_module_says_how_to_load_it() {
        let mut facts = healthy();
        facts.module = None;
        let check = module(&facts);
        assert_eq!(check.status, Status::Error);
        assert!(check.fix.as_ref().unwrap().contains("sudo make install"));
        facts.module_file = Some("/lib/modules/x/updates/dkms/cmamap.ko.xz".into());
        assert!(module(&facts).fix.unwrap().contains("sudo modprobe cmamap"));
    }

    #[test]
    fn zero_cma_says_how_to_get_some() {
        let mut facts = healthy();
        facts.cma = Some(CmaMeminfo {
            total_kib: 0,
            free_kib: 0,
        });
        facts.cmdline = "root=/dev/sda1 cma=0".into();
        let check = cma(&facts);
        assert_eq!(check.status, Status::Error);
        assert!(check.summary.contains("booted with cma=0"), "{check:?}");
        assert!(check.fix.as_ref().unwrap().contains("`cma=256M`"));
        facts.cmdline = "root=/dev/sda1".into();
        let check = cma(&facts);
        assert!(
            check.summary.contains("CONFIG_CMA_SIZE_MBYTES=0"),
            "{check:?}"
        );
        let fix = check.fix.unwrap();
        assert!(
            fix.contains("add `cma=256M` to GRUB_CMDLINE_LINUX in /etc/default/grub")
                && fix.contains("update-grub"),
            "{fix}"
        );
    }

    #[test]
    fn a_user_outside_the_group_is_told_to_join_it() {
        let mut facts = healthy();
        facts.caller.groups.clear();
        facts.caller.user_name = Some("bob".into());
        facts.node.open_error = Some("EACCES: Permission denied".into());
        let check = device(&facts);
        assert_eq!(check.status, Status::Error);
        assert!(check
            .fix
            .as_ref()
            .unwrap()
            .contains("sudo usermod -aG cmamap bob"));
        // Listed in /etc/group, but the session started before.
        facts.caller.user_name = Some("alice".into());
        assert!(device(&facts).fix.unwrap().contains("log in again"));
        // The default node, root:root 0600: the udev rule is the fix.
        facts.node.gid = 0;
        facts.node.group_name = Some("root".into());
        facts.node.mode = 0o600;
        let fix = device(&facts).fix.unwrap();
        assert!(fix.contains(UDEV_RULE) && fix.contains("groupadd"), "{fix}");
    }

    #[test]
    fn abi_mismatch_is_an_error() {
        let mut facts = healthy();
        facts.node.abi_version = Some(ABI_VERSION + 1);
        assert_eq!(module(&facts).status, Status::Error);
    }

    #[test]
    fn kernel_without_rust_is_an_error() {
        let mut facts = healthy();
        facts.config = Some(KernelConfig::parse("/boot/config-x", "CONFIG_CMA=y\n"));
        let check = kernel_config(&facts);
        assert_eq!(check.status, Status::Error);
        assert!(check.fix.unwrap().contains("CONFIG_RUST=y"));
    }

    #[test]
    fn iommu_modes() {
        let mut iommu = IommuFacts::default();
        assert_eq!(iommu_mode(&iommu), IommuMode::None);
        iommu.units = vec!["dmar0".into()];
        iommu.groups = vec![("0".into(), "DMA".into()), ("1".into(), "DMA-FQ".into())];
        assert_eq!(iommu_mode(&iommu), IommuMode::Translated);
        iommu.groups.push(("2".into(), "identity".into()));
        assert_eq!(iommu_mode(&iommu), IommuMode::Mixed);
        iommu.groups.retain(|(_, t)| t == "identity");
        assert_eq!(iommu_mode(&iommu), IommuMode::Passthrough);
    }

    #[test]
    fn cma_parameter() {
        assert_eq!(cma_param("a cma=0 b"), Some("0"));
        assert_eq!(cma_param("cma=64M cma=512M@0-4G"), Some("512M@0-4G"));
        assert_eq!(cma_param("nocma=1"), None);
        assert_eq!(cma_param_bytes("512M@0-4G"), Some(512 << 20));
        assert_eq!(cma_param_bytes("0"), Some(0));
        assert_eq!(mode_text(0o660, true), "crw-rw----");
    }
}
