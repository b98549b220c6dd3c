//! Unloading and reloading the cmamap module from a test, with busybox `rmmod` and `insmod`.
//!
//! The runner holds no file of the device between tests, and each test runs in a child of its
//! own, so while a reload test runs only the files the test itself opened can pin the module.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use cmamap::{Device, Stat};

use crate::check::{skip, Failure, Step, TestResult};
use crate::ctx::Ctx;

/// The module's name in `/proc/modules`.
pub const NAME: &str = "cmamap";
/// Where the VM runner puts the module.
pub const KO: &str = "/lib/cmamap.ko";
/// Busybox applets.
pub const RMMOD: &str = "/bin/rmmod";
pub const INSMOD: &str = "/bin/insmod";
/// How long the device node may take to come or go.
pub const NODE_WAIT: Duration = Duration::from_secs(2);

/// True when `/proc/modules` lists the module.
pub fn loaded() -> Result<bool, Failure> {
    let modules = std::fs::read_to_string("/proc/modules").step("read /proc/modules")?;
    Ok(modules
        .lines()
        .any(|line| line.split_whitespace().next() == Some(NAME)))
}

/// The module's reference count (CONFIG_MODULE_UNLOAD), as text for messages.
pub fn refcnt() -> String {
    std::fs::read_to_string(format!("/sys/module/{NAME}/refcnt"))
        .map(|text| text.trim().to_owned())
        .unwrap_or_else(|_| "?".to_owned())
}

/// A skip verdict unless this test can unload and reload the module.
pub fn cannot_reload(ctx: &Ctx) -> Option<TestResult> {
    if let Some(skipped) = ctx.needs_root() {
        return Some(skipped);
    }
    for tool in [RMMOD, INSMOD, KO] {
        if !Path::new(tool).exists() {
            return Some(skip(format!("{tool} absent: cannot reload the module")));
        }
    }
    match loaded() {
        Ok(true) => None,
        Ok(false) => Some(skip(format!("module {NAME} is not loaded"))),
        Err(err) => Some(Err(err)),
    }
}

/// The module parameters, as STAT reports them; a reload passes them back to `insmod`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    pub default_strategy: u32,
    pub max_bytes_per_file: u64,
    pub max_bytes_total: u64,
}

impl Params {
    pub fn of(stat: &Stat) -> Self {
        Self {
            default_strategy: stat.default_strategy().to_raw(),
            max_bytes_per_file: stat.max_bytes_per_file,
            max_bytes_total: stat.max_bytes_total,
        }
    }

    /// The running module's, through a file opened and closed for the purpose.
    pub fn current(ctx: &Ctx) -> Result<Self, Failure> {
        Ok(Self::of(&ctx.open()?.stat()?))
    }

    fn insmod_args(&self) -> [String; 3] {
        [
            format!("default_strategy={}", self.default_strategy),
            format!("max_bytes_per_file={}", self.max_bytes_per_file),
            format!("max_bytes_total={}", self.max_bytes_total),
        ]
    }
}

/// Runs `rmmod cmamap`: `Ok` when it unloaded the module, `Err` with its status and
/// message when it did not. Busybox asks for a non-blocking unload, so a module in use
/// makes it fail at once instead of waiting.
pub fn rmmod() -> Result<Result<(), String>, Failure> {
    let output = Command::new(RMMOD)
        .arg(NAME)
        .output()
        .step(&format!("run {RMMOD}"))?;
    if output.status.success() {
        Ok(Ok(()))
    } else {
        Ok(Err(format!(
            "{}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

/// Runs `insmod /lib/cmamap.ko` with `params` and waits for the device node.
pub fn insmod(ctx: &Ctx, params: &Params) -> Result<(), Failure> {
    insmod_with(ctx, params, &[])
}

/// Like [`insmod`], with more `name=value` parameters (test-only ones, which STAT does not
/// report).
pub fn insmod_with(ctx: &Ctx, params: &Params, extra: &[String]) -> Result<(), Failure> {
    let mut args = params.insmod_args().to_vec();
    args.extend_from_slice(extra);
    let output = Command::new(INSMOD)
        .arg(KO)
        .args(&args)
        .output()
        .step(&format!("run {INSMOD}"))?;
    ensure!(
        output.status.success(),
        "insmod {KO} {}: {}: {}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    wait_for_node(ctx, true)
}

/// Polls up to [`NODE_WAIT`] until the device node exists and opens (`present`) or is gone.
pub fn wait_for_node(ctx: &Ctx, present: bool) -> Result<(), Failure> {
    let deadline = Instant::now() + NODE_WAIT;
    loop {
        let now = if present {
            Device::open_path(&ctx.device).is_ok()
        } else {
            !ctx.device.exists()
        };
        if now {
            return Ok(());
        }
        if Instant::now() >= deadline {
            fail!(
                "{} is {} {} s after {}",
                ctx.device.display(),
                if present {
                    "still not usable"
                } else {
                    "still there"
                },
                NODE_WAIT.as_secs(),
                if present { "insmod" } else { "rmmod" }
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Puts the module back as it was (loaded, with `params`) when dropped, so that a test that
/// fails half-way through a reload leaves a usable module to the tests after it. Declare it
/// before the test's own files, so that it drops after they close.
pub struct Restore<'a> {
    ctx: &'a Ctx,
    params: Params,
}

impl<'a> Restore<'a> {
    pub fn new(ctx: &'a Ctx, params: Params) -> Self {
        Self { ctx, params }
    }

    /// Reloads the module with `params`, checking that STAT then reports them.
    pub fn reload_with(&self, params: &Params) -> Result<(), Failure> {
        if loaded()? {
            if let Err(message) = rmmod()? {
                fail!(
                    "rmmod {NAME} before reloading: {message} (refcnt {})",
                    refcnt()
                );
            }
            wait_for_node(self.ctx, false)?;
        }
        insmod(self.ctx, params)?;
        let now = Params::current(self.ctx)?;
        ensure_eq!(now, *params, "module parameters after insmod");
        Ok(())
    }

    /// Reloads the module with the parameters it had, and checks it.
    pub fn restore(&self) -> Result<(), Failure> {
        self.reload_with(&self.params)
    }
}

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        let fine = loaded().unwrap_or(false)
            && Params::current(self.ctx).is_ok_and(|now| now == self.params);
        if !fine {
            let _ = self.restore();
        }
    }
}
