//! What `cmamap doctor` reads from the system, gathered once into plain data so that the
//! diagnosis ([`super::checks`]) is a pure function that host tests can feed.
//!
//! Every path is read under a root directory (`/` on a real system), so that tests can lay out
//! a fake `/proc`, `/sys`, `/etc` and `/boot`.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use cmamap::meminfo::{self, CmaArea, CmaMeminfo};
use cmamap::Device;

/// The module's name in `/sys/module` and `/proc/modules`.
pub const MODULE: &str = "cmamap";

/// Everything the diagnosis looks at.
#[derive(Clone, Debug, Default)]
pub struct Facts {
    /// `uname -r` (`/proc/sys/kernel/osrelease`).
    pub kernel_release: String,
    /// The kernel command line.
    pub cmdline: String,
    /// `/sys/module/cmamap`, when the module is loaded.
    pub module: Option<ModuleFacts>,
    /// A `cmamap.ko*` under `/lib/modules/<release>/`, loaded or not.
    pub module_file: Option<PathBuf>,
    pub node: NodeFacts,
    /// `CmaTotal`/`CmaFree`; `None` when `/proc/meminfo` has no such fields (no CONFIG_CMA).
    pub cma: Option<CmaMeminfo>,
    /// `/sys/kernel/mm/cma/*` (CONFIG_CMA_SYSFS).
    pub cma_areas: Vec<CmaArea>,
    /// The running kernel's configuration, when one could be read.
    pub config: Option<KernelConfig>,
    pub iommu: IommuFacts,
    pub caller: CallerFacts,
}

/// `/sys/module/cmamap/*`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModuleFacts {
    /// `initstate`: live, coming or going.
    pub initstate: Option<String>,
    /// `version` (only with MODULE_VERSION) and `srcversion`.
    pub version: Option<String>,
    pub srcversion: Option<String>,
    pub refcnt: Option<String>,
    /// `taint`: letters the module itself added (O out of tree, E unsigned, ...).
    pub taint: Option<String>,
    /// `parameters/*`.
    pub params: BTreeMap<String, String>,
}

/// The device node and what opening it gave.
#[derive(Clone, Debug, Default)]
pub struct NodeFacts {
    pub path: PathBuf,
    pub exists: bool,
    pub is_char: bool,
    /// The node's device number, and the one the misc class gives the module.
    pub rdev: Option<(u32, u32)>,
    pub expected_rdev: Option<(u32, u32)>,
    pub uid: u32,
    pub gid: u32,
    /// Permission bits (0o7777).
    pub mode: u32,
    pub owner_name: Option<String>,
    pub group_name: Option<String>,
    /// Members listed for the node's group in `/etc/group`.
    pub group_members: Vec<String>,
    /// Why the caller could not open it read-write (errno name and text); `None` if it could.
    pub open_error: Option<String>,
    /// STAT through that open file.
    pub abi_version: Option<u32>,
    pub max_bytes_total: Option<u64>,
    pub max_bytes_per_file: Option<u64>,
}

/// A kernel configuration: `CONFIG_FOO` to `y`, `m`, `n` (not set) or a value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelConfig {
    /// Where it was read (`/proc/config.gz` or `/boot/config-<release>`).
    pub source: String,
    pub values: BTreeMap<String, String>,
}

impl KernelConfig {
    /// Parses `.config` text.
    pub fn parse(source: &str, text: &str) -> Self {
        let mut values = BTreeMap::new();
        for line in text.lines() {
            let line = line.trim();
            if let Some(rest) = line.strip_prefix("# ") {
                if let Some(name) = rest.strip_suffix(" is not set") {
                    values.insert(name.to_owned(), "n".to_owned());
                }
            } else if let Some((name, value)) = line.split_once('=') {
                if name.starts_with("CONFIG_") {
                    values.insert(name.to_owned(), value.trim_matches('"').to_owned());
                }
            }
        }
        Self {
            source: source.to_owned(),
            values,
        }
    }

    /// The value of `name` (with its `CONFIG_` prefix); `n` when unset or absent.
    pub fn get(&self, name: &str) -> &str {
        self.values.get(name).map_or("n", String::as_str)
    }

    /// Whether `name` is built in.
    pub fn is_y(&self, name: &str) -> bool {
        self.get(name) == "y"
    }
}

/// `/sys/class/iommu` and `/sys/kernel/iommu_groups`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IommuFacts {
    /// IOMMU units the kernel drives (`dmar0`, `smmu3.0x...`, ...).
    pub units: Vec<String>,
    /// Each group's number and default domain type (`DMA`, `DMA-FQ`, `identity`, ...).
    pub groups: Vec<(String, String)>,
}

/// The calling process.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallerFacts {
    pub uid: u32,
    pub euid: u32,
    pub user_name: Option<String>,
    /// Effective and supplementary group ids.
    pub egid: u32,
    pub groups: Vec<u32>,
    /// `CapEff` of `/proc/self/status`.
    pub cap_eff: u64,
    /// Whether the process is in the initial user namespace, where the driver's
    /// CAP_SYS_ADMIN checks are made.
    pub initial_userns: bool,
}

/// Bit of CAP_SYS_ADMIN in the capability sets.
pub const CAP_SYS_ADMIN: u32 = 21;

impl CallerFacts {
    /// Whether the driver sees CAP_SYS_ADMIN: in the effective set, in the initial namespace.
    pub fn has_sys_admin(&self) -> bool {
        self.initial_userns && self.cap_eff & (1 << CAP_SYS_ADMIN) != 0
    }

    /// Whether the process has group `gid`, as effective or supplementary group.
    pub fn in_group(&self, gid: u32) -> bool {
        self.egid == gid || self.groups.contains(&gid)
    }
}

/// Reads the system under `root` (`/` on a real system); `device` is the node to check
/// (absolute, as the CLI's --device gives it).
pub fn gather(root: &Path, device: &Path) -> Facts {
    let at = |path: &str| root.join(path.trim_start_matches('/'));
    let read = |path: &str| fs::read_to_string(at(path)).ok();
    let kernel_release = read("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let cmdline = read("/proc/cmdline")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let passwd = read("/etc/passwd").unwrap_or_default();
    let group = read("/etc/group").unwrap_or_default();
    Facts {
        module: module_facts(&at(&format!("/sys/module/{MODULE}"))),
        module_file: find_module_file(&at(&format!("/lib/modules/{kernel_release}"))),
        node: node_facts(root, device, &passwd, &group),
        cma: read("/proc/meminfo").and_then(|text| meminfo::parse(&text)),
        cma_areas: cma_areas(&at("/sys/kernel/mm/cma")),
        config: kernel_config(root, &kernel_release),
        iommu: iommu_facts(&at("/sys/class/iommu"), &at("/sys/kernel/iommu_groups")),
        caller: caller_facts(root, &passwd),
        kernel_release,
        cmdline,
    }
}

fn trimmed(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_owned())
}

/// The entries of a directory, sorted; empty if it cannot be read.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|it| {
            it.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn module_facts(dir: &Path) -> Option<ModuleFacts> {
    if !dir.is_dir() {
        return None;
    }
    let params = entries(&dir.join("parameters"))
        .into_iter()
        .filter_map(|name| {
            let value = trimmed(&dir.join("parameters").join(&name))?;
            Some((name, value))
        })
        .collect();
    Some(ModuleFacts {
        initstate: trimmed(&dir.join("initstate")),
        version: trimmed(&dir.join("version")),
        srcversion: trimmed(&dir.join("srcversion")),
        refcnt: trimmed(&dir.join("refcnt")),
        taint: trimmed(&dir.join("taint")),
        params,
    })
}

/// The first `cmamap.ko` (possibly compressed) below `dir`, searched a few levels deep
/// (`updates/`, `extra/`, `updates/dkms/`, `kernel/drivers/...`).
fn find_module_file(dir: &Path) -> Option<PathBuf> {
    fn walk(dir: &Path, depth: u32) -> Option<PathBuf> {
        let mut subdirs = Vec::new();
        for entry in fs::read_dir(dir).ok()?.filter_map(Result::ok) {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == "cmamap.ko" || name.starts_with("cmamap.ko.") {
                return Some(path);
            }
            // `build` and `source` point at whole kernel trees.
            if depth > 0 && entry.file_type().is_ok_and(|t| t.is_dir()) {
                subdirs.push(path);
            }
        }
        subdirs.sort();
        subdirs.iter().find_map(|sub| walk(sub, depth - 1))
    }
    walk(dir, 6)
}

/// The name of `id` in `/etc/passwd`- or `/etc/group`-formatted text, and the group's members.
pub fn lookup(text: &str, id: u32) -> Option<(String, Vec<String>)> {
    text.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.len() < 3 || fields[2].parse::<u32>().ok()? != id {
            return None;
        }
        let members = fields
            .get(3)
            .filter(|_| fields.len() == 4)
            .map(|m| {
                m.split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        Some((fields[0].to_owned(), members))
    })
}

/// `"MAJOR:MINOR"` as in sysfs `dev` files.
fn parse_dev(text: &str) -> Option<(u32, u32)> {
    let (major, minor) = text.trim().split_once(':')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

fn node_facts(root: &Path, device: &Path, passwd: &str, group: &str) -> NodeFacts {
    // A relative --device is relative to the working directory, not to the root.
    let path = match device.strip_prefix("/") {
        Ok(inside) => root.join(inside),
        Err(_) => device.to_owned(),
    };
    let expected_rdev = trimmed(&root.join("sys/class/misc").join(MODULE).join("dev"))
        .and_then(|text| parse_dev(&text));
    let mut node = NodeFacts {
        path: device.to_owned(),
        expected_rdev,
        open_error: Some("ENOENT: No such file or directory".to_owned()),
        ..Default::default()
    };
    let Ok(meta) = fs::metadata(&path) else {
        return node;
    };
    node.exists = true;
    node.is_char = meta.file_type().is_char_device();
    if node.is_char {
        let rdev = meta.rdev();
        node.rdev = Some((libc::major(rdev), libc::minor(rdev)));
    }
    node.uid = meta.uid();
    node.gid = meta.gid();
    node.mode = meta.mode() & 0o7777;
    node.owner_name = lookup(passwd, node.uid).map(|(name, _)| name);
    if let Some((name, members)) = lookup(group, node.gid) {
        node.group_name = Some(name);
        node.group_members = members;
    }
    match Device::open_path(&path) {
        Ok(dev) => {
            node.open_error = None;
            if let Ok(stat) = dev.stat() {
                node.abi_version = Some(stat.abi_version);
                node.max_bytes_total = Some(stat.max_bytes_total);
                node.max_bytes_per_file = Some(stat.max_bytes_per_file);
            }
        }
        Err(err) => {
            node.open_error = Some(format!("{}: {}", err.errno_name(), err.errno().desc()));
        }
    }
    node
}

fn cma_areas(dir: &Path) -> Vec<CmaArea> {
    let number = |path: PathBuf| trimmed(&path).and_then(|s| s.parse().ok());
    entries(dir)
        .into_iter()
        .map(|name| CmaArea {
            total_pages: number(dir.join(&name).join("total_pages")),
            available_pages: number(dir.join(&name).join("available_pages")),
            name,
        })
        .collect()
}

/// `/proc/config.gz` (CONFIG_IKCONFIG_PROC), else `/boot/config-<release>`.
fn kernel_config(root: &Path, release: &str) -> Option<KernelConfig> {
    let gz = root.join("proc/config.gz");
    if let Ok(file) = fs::File::open(&gz) {
        let mut text = String::new();
        if flate2::read::GzDecoder::new(file)
            .read_to_string(&mut text)
            .is_ok()
        {
            return Some(KernelConfig::parse("/proc/config.gz", &text));
        }
    }
    let boot = format!("/boot/config-{release}");
    let text = fs::read_to_string(root.join(boot.trim_start_matches('/'))).ok()?;
    Some(KernelConfig::parse(&boot, &text))
}

fn iommu_facts(class: &Path, groups_dir: &Path) -> IommuFacts {
    let groups = entries(groups_dir)
        .into_iter()
        .map(|group| {
            let kind = trimmed(&groups_dir.join(&group).join("type")).unwrap_or_default();
            (group, kind)
        })
        .collect();
    IommuFacts {
        units: entries(class),
        groups,
    }
}

/// The value of `field` (`Uid`, `CapEff`, ...) in `/proc/PID/status` text.
fn status_field<'a>(status: &'a str, field: &str) -> Option<&'a str> {
    status.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        (name == field).then_some(value.trim())
    })
}

fn caller_facts(root: &Path, passwd: &str) -> CallerFacts {
    let status = fs::read_to_string(root.join("proc/self/status")).unwrap_or_default();
    let ids = |field: &str| -> Vec<u32> {
        status_field(&status, field)
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|s| s.parse().ok())
            .collect()
    };
    let uids = ids("Uid");
    let gids = ids("Gid");
    let uid = uids.first().copied().unwrap_or(u32::MAX);
    // The initial namespace maps every id to itself: "0 0 4294967295". A kernel without
    // CONFIG_USER_NS has no uid_map and no other namespace.
    let initial_userns = fs::read_to_string(root.join("proc/self/uid_map")).map_or(true, |map| {
        map.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"]
    });
    CallerFacts {
        uid,
        euid: uids.get(1).copied().unwrap_or(uid),
        user_name: lookup(passwd, uid).map(|(name, _)| name),
        egid: gids.get(1).copied().unwrap_or(u32::MAX),
        groups: ids("Groups"),
        cap_eff: status_field(&status, "CapEff")
            .and_then(|hex| u64::from_str_radix(hex, 16).ok())
            .unwrap_or(0),
        initial_userns,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_config_lines() {
        let config = KernelConfig::parse(
            "/boot/config-x",
            "CONFIG_RUST=y\n# CONFIG_CMA is not set\nCONFIG_CMA_SIZE_MBYTES=0\n\
             CONFIG_LOCALVERSION=\"-amd64\"\n# comment\n",
        );
        assert!(config.is_y("CONFIG_RUST"));
        assert_eq!(config.get("CONFIG_CMA"), "n");
        assert_eq!(config.get("CONFIG_DMA_CMA"), "n");
        assert_eq!(config.get("CONFIG_CMA_SIZE_MBYTES"), "0");
        assert_eq!(config.get("CONFIG_LOCALVERSION"), "-amd64");
    }

    #[test]
    fn looks_up_names_and_members() {
        let group = "root:x:0:\ncmamap:x:999:alice,bob\nvideo:x:44:";
        assert_eq!(lookup(group, 0), Some(("root".into(), vec![])));
        assert_eq!(
            lookup(group, 999),
            Some(("cmamap".into(), vec!["alice".into(), "bob".into()]))
        );
        assert_eq!(lookup(group, 5), None);
        let passwd = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh";
        assert_eq!(lookup(passwd, 65534).map(|(n, _)| n), Some("nobody".into()));
    }

    #[test]
    fn parses_dev_numbers() {
        assert_eq!(parse_dev("10:123\n"), Some((10, 123)));
        assert_eq!(parse_dev("10"), None);
    }

    /// A fake root with every file doctor reads, laid out in a temporary directory.
    struct FakeRoot(PathBuf);

    impl FakeRoot {
        fn new(tag: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("cmamap-doctor-{tag}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }

        fn write(&self, path: &str, text: &[u8]) {
            let path = self.0.join(path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        }
    }

    impl Drop for FakeRoot {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn gathers_a_fake_system() {
        use std::io::Write;
        let root = FakeRoot::new("gather");
        root.write("proc/sys/kernel/osrelease", b"7.3.4+deb13-amd64\n");
        root.write(
            "proc/cmdline",
            b"BOOT_IMAGE=/vmlinuz root=/dev/sda1 cma=256M quiet\n",
        );
        root.write(
            "proc/meminfo",
            b"MemTotal: 100 kB\nCmaTotal: 262144 kB\nCmaFree: 200000 kB\n",
        );
        root.write("sys/kernel/mm/cma/reserved/total_pages", b"65536\n");
        root.write("sys/kernel/mm/cma/reserved/available_pages", b"50000\n");
        root.write("sys/module/cmamap/initstate", b"live\n");
        root.write("sys/module/cmamap/srcversion", b"ABCDEF\n");
        root.write("sys/module/cmamap/parameters/default_strategy", b"1\n");
        root.write("sys/class/misc/cmamap/dev", b"10:123\n");
        root.write("sys/class/iommu/dmar0/.keep", b"");
        root.write("sys/kernel/iommu_groups/0/type", b"DMA-FQ\n");
        root.write("sys/kernel/iommu_groups/1/type", b"identity\n");
        root.write(
            "lib/modules/7.3.4+deb13-amd64/updates/dkms/cmamap.ko.xz",
            b"",
        );
        root.write("etc/group", b"root:x:0:\n");
        root.write("dev/cmamap", b"not a device");
        root.write(
            "proc/self/status",
            b"Name:\tcmamap\nUid:\t1000\t1000\t1000\t1000\nGid:\t1000\t1000\t1000\t1000\n\
              Groups:\t24 999 \nCapEff:\t0000000000200000\n",
        );
        root.write("proc/self/uid_map", b"         0          0 4294967295\n");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"CONFIG_RUST=y\nCONFIG_CMA=y\n").unwrap();
        root.write("proc/config.gz", &gz.finish().unwrap());

        let facts = gather(&root.0, Path::new("/dev/cmamap"));
        assert_eq!(facts.kernel_release, "7.3.4+deb13-amd64");
        assert!(facts.cmdline.contains("cma=256M"));
        let module = facts.module.unwrap();
        assert_eq!(module.initstate.as_deref(), Some("live"));
        assert_eq!(module.params.get("default_strategy").unwrap(), "1");
        assert!(facts
            .module_file
            .unwrap()
            .ends_with("updates/dkms/cmamap.ko.xz"));
        assert!(facts.node.exists && !facts.node.is_char);
        assert_eq!(facts.node.expected_rdev, Some((10, 123)));
        assert_eq!(facts.cma.unwrap().total_kib, 262144);
        assert_eq!(facts.cma_areas[0].total_pages, Some(65536));
        let config = facts.config.unwrap();
        assert_eq!(config.source, "/proc/config.gz");
        assert!(config.is_y("CONFIG_CMA"));
        assert_eq!(facts.iommu.units, ["dmar0"]);
        assert_eq!(
            facts.iommu.groups,
            [
                ("0".into(), "DMA-FQ".into()),
                ("1".into(), "identity".into())
            ]
        );
        assert_eq!(facts.caller.uid, 1000);
        assert_eq!(facts.caller.groups, [24, 999]);
        assert!(facts.caller.has_sys_admin());
        assert!(facts.caller.in_group(999));
        // A kernel without user namespaces has no uid_map: the initial namespace.
        fs::remove_file(root.0.join("proc/self/uid_map")).unwrap();
        assert!(
            gather(&root.0, Path::new("/dev/cmamap"))
                .caller
                .initial_userns
        );
        root.write("proc/self/uid_map", b"0 1000 1\n");
        let caller = gather(&root.0, Path::new("/dev/cmamap")).caller;
        assert!(!caller.initial_userns && !caller.has_sys_admin());
    }
}
