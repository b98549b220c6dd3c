//! `cmamap doctor` in the VM, healthy and broken: its checks and exit status as root with
//! everything in place, for a user outside the device's group and inside it, without the
//! module (rmmod), and with no CMA (the cma=0 VM of `make test`).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::check::{pass, skip, Failure, Step, TestResult};
use crate::ctx::{Ctx, NOBODY};
use crate::module::{self, Params, Restore};

/// The CLI in the guest.
const CLI: &str = "/bin/cmamap";
/// The group id the tests give the node; the guest has no `cmamap` group of its own.
const TEST_GID: u32 = 4242;
const GROUP_FILE: &str = "/etc/group";

/// What one run of `cmamap --json doctor` gave.
struct Doctor {
    status: Option<i32>,
    report: Value,
    stdout: String,
}

impl Doctor {
    /// Runs it as root, or as `(uid, gid)` with no supplementary groups.
    fn run(ctx: &Ctx, ids: Option<(u32, u32)>) -> Result<Self, Failure> {
        let mut command = Command::new(CLI);
        command
            .arg("--device")
            .arg(&ctx.device)
            .args(["--json", "doctor"]);
        if let Some((uid, gid)) = ids {
            // std drops the supplementary groups when root changes the uid.
            command.uid(uid).gid(gid);
        }
        let out = command.output().step(&format!("run {CLI} doctor"))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let report: Value = serde_json::from_str(stdout.trim()).map_err(|e| {
            Failure::new(format!(
                "doctor --json printed no JSON ({e}): {stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            ))
        })?;
        let doctor = Self {
            status: out.status.code(),
            report,
            stdout,
        };
        // The exit status is 1 exactly when a check is an error.
        let healthy = doctor.report["healthy"].as_bool();
        let errors = doctor.checks().filter(|c| c["status"] == "error").count();
        ensure!(
            healthy == Some(errors == 0) && doctor.status == Some(if errors == 0 { 0 } else { 1 }),
            "doctor exited {:?} with healthy {healthy:?} and {errors} errors: {}",
            doctor.status,
            doctor.stdout
        );
        Ok(doctor)
    }

    fn checks(&self) -> impl Iterator<Item = &Value> {
        self.report["checks"].as_array().into_iter().flatten()
    }

    /// The check called `name`.
    fn check(&self, name: &str) -> Result<&Value, Failure> {
        self.checks()
            .find(|c| c["name"] == name)
            .ok_or_else(|| Failure::new(format!("no {name} check in: {}", self.stdout)))
    }

    /// Fails unless check `name` has `status`.
    fn expect(&self, name: &str, status: &str) -> Result<&Value, Failure> {
        let check = self.check(name)?;
        ensure!(
            check["status"] == status,
            "doctor's {name} check is {}, expected {status}: {check}",
            check["status"]
        );
        Ok(check)
    }

    /// Fails unless check `name`'s fix contains every one of `words`.
    fn expect_fix(&self, name: &str, words: &[&str]) -> Result<(), Failure> {
        let check = self.check(name)?;
        let fix = check["fix"].as_str().unwrap_or_default();
        for word in words {
            ensure!(
                fix.contains(word),
                "doctor's {name} fix lacks `{word}`: {check}"
            );
        }
        Ok(())
    }
}

/// CmaTotal in KiB; 0 when the kernel was booted with cma=0.
fn cma_total_kib() -> Result<u64, Failure> {
    Ok(cmamap::meminfo::read().step("read CmaTotal")?.total_kib)
}

pub fn doctor_healthy(ctx: &Ctx) -> TestResult {
    if let Some(skipped) = ctx.needs_root() {
        return skipped;
    }
    if cma_total_kib()? == 0 {
        return skip("booted with cma=0: doctor_without_cma covers this VM");
    }
    let doctor = Doctor::run(ctx, None)?;
    for name in ["module", "device", "cma", "kernel", "caller"] {
        doctor.expect(name, "ok")?;
    }
    ensure_eq!(doctor.status, Some(0), "doctor's exit status");
    let module = doctor.check("module")?;
    ensure_eq!(
        module["data"]["abi_version"],
        Value::from(cmamap::abi::ABI_VERSION),
        "ABI version doctor read through STAT"
    );
    // The test kernel has IKCONFIG_PROC: the config comes from /proc/config.gz.
    let kernel = doctor.check("kernel")?;
    ensure_eq!(
        kernel["data"]["source"],
        Value::from("/proc/config.gz"),
        "where doctor read the kernel config"
    );
    ensure_eq!(
        kernel["data"]["config"]["CONFIG_RUST"],
        Value::from("y"),
        "CONFIG_RUST as doctor read it"
    );
    let cma = doctor.check("cma")?;
    ensure_eq!(
        cma["data"]["cma_total_kib"],
        Value::from(cma_total_kib()?),
        "CmaTotal in doctor's report"
    );
    ensure!(
        cma["data"]["cmdline_cma"].is_string() && cma["data"]["areas"][0]["total_pages"].is_u64(),
        "doctor's CMA figures lack cma= or the areas: {cma}"
    );
    ensure_eq!(
        doctor.check("caller")?["data"]["cap_sys_admin"],
        Value::Bool(true),
        "CAP_SYS_ADMIN of root"
    );
    // The IOMMU as this VM has it: groups of type DMA on the q35 machine, none on pc.
    let translated =
        std::fs::read_dir("/sys/kernel/iommu_groups").is_ok_and(|mut g| g.next().is_some());
    let iommu = doctor.expect("iommu", "info")?;
    ensure_eq!(
        iommu["data"]["mode"],
        Value::from(if translated { "translated" } else { "none" }),
        "IOMMU mode"
    );
    // The text a person reads.
    let out = Command::new(CLI)
        .arg("--device")
        .arg(&ctx.device)
        .arg("doctor")
        .output()
        .step("run cmamap doctor")?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success()
            && text.contains("everything cmamap needs is in place")
            && text.contains("ok    module  cmamap is loaded (live), ABI "),
        "cmamap doctor said ({}):\n{text}",
        out.status
    );
    pass()
}

/// Puts the device node's owner, group and mode, and /etc/group, back as they were.
struct NodeGuard {
    node: PathBuf,
    uid: u32,
    gid: u32,
    mode: u32,
    group_file: Option<String>,
}

impl NodeGuard {
    fn new(node: &Path) -> Result<Self, Failure> {
        let meta = std::fs::metadata(node).step("stat the device node")?;
        Ok(Self {
            node: node.to_owned(),
            uid: meta.uid(),
            gid: meta.gid(),
            mode: meta.mode() & 0o7777,
            group_file: std::fs::read_to_string(GROUP_FILE).ok(),
        })
    }

    /// Gives the node to group `cmamap` (`TEST_GID`) with `mode`, as the udev rule does.
    fn give_to_group(&self, mode: u32) -> Result<(), Failure> {
        let mut groups = self.group_file.clone().unwrap_or("root:x:0:\n".to_owned());
        groups.push_str(&format!("cmamap:x:{TEST_GID}:\n"));
        std::fs::write(GROUP_FILE, groups).step("write /etc/group")?;
        std::os::unix::fs::chown(&self.node, Some(0), Some(TEST_GID)).step("chown the node")?;
        std::fs::set_permissions(&self.node, std::fs::Permissions::from_mode(mode))
            .step("chmod the node")
    }
}

impl Drop for NodeGuard {
    fn drop(&mut self) {
        let _ = std::os::unix::fs::chown(&self.node, Some(self.uid), Some(self.gid));
        let _ = std::fs::set_permissions(&self.node, std::fs::Permissions::from_mode(self.mode));
        let _ = match &self.group_file {
            Some(text) => std::fs::write(GROUP_FILE, text),
            None => std::fs::remove_file(GROUP_FILE),
        };
    }
}

pub fn doctor_user_not_in_group(ctx: &Ctx) -> TestResult {
    if let Some(skipped) = ctx.needs_root() {
        return skipped;
    }
    let guard = NodeGuard::new(&ctx.device)?;
    // The node as the module makes it (root only): nobody cannot open it, and the fix is the
    // udev rule that hands it to group cmamap.
    std::fs::set_permissions(&ctx.device, std::fs::Permissions::from_mode(0o600))
        .step("chmod 0600")?;
    let doctor = Doctor::run(ctx, Some((NOBODY, NOBODY)))?;
    let device = doctor.expect("device", "error")?;
    ensure!(
        device["data"]["caller_can_open"] == false
            && device["data"]["open_error"]
                .as_str()
                .is_some_and(|e| e.starts_with("EACCES")),
        "device check as nobody with a 0600 node: {device}"
    );
    doctor.expect_fix(
        "device",
        &["GROUP=\"cmamap\"", "groupadd", "usermod -aG cmamap"],
    )?;
    ensure_eq!(doctor.status, Some(1), "doctor's exit status for nobody");
    let caller = doctor.expect("caller", "info")?;
    ensure_eq!(
        caller["data"]["cap_sys_admin"],
        Value::Bool(false),
        "CAP_SYS_ADMIN of nobody"
    );
    ensure!(
        caller["summary"]
            .as_str()
            .is_some_and(|s| s.contains("PERSIST")
                && s.contains("DMA_MAP")
                && s.contains("physical address")),
        "the caller check does not say what CAP_SYS_ADMIN is needed for: {caller}"
    );

    // The node as the udev rule leaves it: root:cmamap 0660. Outside the group, the fix is to
    // join it.
    guard.give_to_group(0o660)?;
    let doctor = Doctor::run(ctx, Some((NOBODY, NOBODY)))?;
    doctor.expect("device", "error")?;
    doctor.expect_fix(
        "device",
        &["sudo usermod -aG cmamap nobody", "log in again"],
    )?;

    // Inside the group: it opens, and only what needs CAP_SYS_ADMIN is out of reach.
    let doctor = Doctor::run(ctx, Some((NOBODY, TEST_GID)))?;
    let device = doctor.expect("device", "ok")?;
    ensure!(
        device["summary"].as_str().is_some_and(
            |s| s.contains("crw-rw---- root:cmamap") && s.contains("through group membership")
        ),
        "device check as a member of the group: {device}"
    );
    doctor.expect("caller", "info")?;
    if cma_total_kib()? > 0 {
        ensure_eq!(
            doctor.status,
            Some(0),
            "doctor's exit status for a group member"
        );
    }
    let before = guard.mode;
    drop(guard);
    let mode = std::fs::metadata(&ctx.device).step("stat the node")?.mode() & 0o7777;
    ensure_eq!(mode, before, "node mode after the test put it back");
    pass()
}

/// The case that runs only in the cma=0 VM of `make test`.
pub const NO_CMA_CASE: &str = "doctor_without_cma";

pub fn doctor_without_cma(ctx: &Ctx) -> TestResult {
    if let Some(skipped) = ctx.needs_root() {
        return skipped;
    }
    let total = cma_total_kib()?;
    if total != 0 {
        return skip(format!(
            "CmaTotal is {total} kB: this case needs the cma=0 VM of make test"
        ));
    }
    let doctor = Doctor::run(ctx, None)?;
    let cma = doctor.expect("cma", "error")?;
    ensure!(
        cma["summary"]
            .as_str()
            .is_some_and(|s| s.contains("booted with cma=0")),
        "the cma check does not name cma=0: {cma}"
    );
    doctor.expect_fix(
        "cma",
        &[
            "`cma=256M`",
            "GRUB_CMDLINE_LINUX",
            "/etc/default/grub",
            "update-grub",
        ],
    )?;
    // The rest is fine: the problem is CMA alone.
    doctor.expect("module", "ok")?;
    doctor.expect("device", "ok")?;
    ensure_eq!(doctor.status, Some(1), "doctor's exit status without CMA");
    pass()
}

/// Runs last with the other reloading cases: unloads the module, checks what doctor says, and
/// loads it back.
pub fn doctor_without_module(ctx: &Ctx) -> TestResult {
    if let Some(skipped) = module::cannot_reload(ctx) {
        return skipped;
    }
    let params = Params::current(ctx)?;
    let restore = Restore::new(ctx, params);
    if let Err(message) = module::rmmod()? {
        fail!(
            "rmmod before doctor: {message} (refcnt {})",
            module::refcnt()
        );
    }
    module::wait_for_node(ctx, false)?;
    let doctor = Doctor::run(ctx, None)?;
    let module_check = doctor.expect("module", "error")?;
    ensure_eq!(
        module_check["data"]["loaded"],
        Value::Bool(false),
        "module check without the module"
    );
    // The guest has no /lib/modules tree: doctor says how to build and install it.
    doctor.expect_fix(
        "module",
        &["sudo make install", "modprobe cmamap", "insmod"],
    )?;
    let device = doctor.expect("device", "error")?;
    ensure!(
        device["summary"]
            .as_str()
            .is_some_and(|s| s.contains("does not exist")),
        "device check without the module: {device}"
    );
    ensure_eq!(
        doctor.status,
        Some(1),
        "doctor's exit status without the module"
    );
    restore.restore()?;
    let doctor = Doctor::run(ctx, None)?;
    doctor.expect("module", "ok")?;
    pass()
}
