//! `cmamap doctor`: checks what cmamap needs from the system (the module, the device node and
//! who may open it, CMA, the kernel's configuration, the IOMMU, the caller's capabilities) and
//! says how to fix each problem.
//!
//! [`facts`] reads the system into plain data; [`checks`] turns that into [`Check`]s.

pub mod checks;
pub mod facts;

use std::path::Path;

use serde::Serialize;
use serde_json::Value;

/// How a check came out. Only `Error` makes the doctor exit nonzero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    /// Worth knowing, nothing to fix.
    Info,
    /// Works, but something should change.
    Warn,
    /// cmamap cannot work (for this caller) until it is fixed.
    Error,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Info => "info",
            Status::Warn => "WARN",
            Status::Error => "ERROR",
        }
    }
}

/// One check: what was found, and the exact fix for a problem.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub summary: String,
    pub details: Vec<String>,
    pub fix: Option<String>,
    /// The figures behind it, for `--json`.
    pub data: Value,
}

impl Check {
    pub fn new(name: &'static str, status: Status, summary: impl Into<String>) -> Self {
        Self {
            name,
            status,
            summary: summary.into(),
            details: Vec::new(),
            fix: None,
            data: Value::Null,
        }
    }

    pub fn status(mut self, status: Status) -> Self {
        self.status = status;
        self
    }

    pub fn detail(mut self, line: impl Into<String>) -> Self {
        self.details.push(line.into());
        self
    }

    pub fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }

    pub fn data(mut self, data: Value) -> Self {
        self.data = data;
        self
    }
}

/// The whole diagnosis.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// No check is an error.
    pub healthy: bool,
    pub errors: usize,
    pub warnings: usize,
    pub checks: Vec<Check>,
}

impl Report {
    pub fn new(checks: Vec<Check>) -> Self {
        let count = |status| checks.iter().filter(|c| c.status == status).count();
        let errors = count(Status::Error);
        Self {
            healthy: errors == 0,
            errors,
            warnings: count(Status::Warn),
            checks,
        }
    }

    /// The text a person reads: one line per check, its details indented, and each fix.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for check in &self.checks {
            out += &format!(
                "{:<5} {:<7} {}\n",
                check.status.label(),
                check.name,
                check.summary
            );
            for line in &check.details {
                out += &format!("              {line}\n");
            }
            if let Some(fix) = &check.fix {
                out += &format!("      fix:    {fix}\n");
            }
        }
        out += &match (self.errors, self.warnings) {
            (0, 0) => "cmamap doctor: everything cmamap needs is in place\n".to_owned(),
            (0, w) => format!("cmamap doctor: usable, {w} warning(s)\n"),
            (e, w) => format!("cmamap doctor: {e} problem(s) to fix, {w} warning(s)\n"),
        };
        out
    }
}

/// Examines the running system for `device`.
pub fn examine(device: &Path) -> Report {
    Report::new(checks::diagnose(&facts::gather(Path::new("/"), device)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_counts_and_text() {
        let report = Report::new(vec![
            Check::new("module", Status::Ok, "loaded"),
            Check::new("cma", Status::Error, "no CMA")
                .detail("areas: none")
                .fix("add `cma=256M`"),
            Check::new("device", Status::Warn, "world-writable"),
        ]);
        assert!(!report.healthy);
        assert_eq!((report.errors, report.warnings), (1, 1));
        let text = report.text();
        assert!(text.contains("ERROR cma     no CMA\n"), "{text}");
        assert!(text.contains("      fix:    add `cma=256M`\n"), "{text}");
        assert!(
            text.ends_with("1 problem(s) to fix, 1 warning(s)\n"),
            "{text}"
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["checks"][1]["status"], "error");
        assert_eq!(json["healthy"], false);
    }
}
