//! A KTAP version 1 printer (Documentation/dev-tools/ktap.rst): a header, a plan, then one
//! result line per test with `#` diagnostics before failures.

use std::io::Write;

/// The verdict of one test as KTAP reports it.
pub enum Verdict {
    Ok,
    NotOk(String),
    Skip(String),
}

pub struct Ktap {
    next: usize,
    passed: usize,
    failed: usize,
    skipped: usize,
}

impl Ktap {
    /// Prints the header and the plan.
    pub fn start(planned: usize) -> Self {
        println!("KTAP version 1");
        println!("1..{planned}");
        Self {
            next: 1,
            passed: 0,
            failed: 0,
            skipped: 0,
        }
    }

    /// Prints a diagnostic: one `# ` line per line of `text`.
    pub fn diag(&self, text: &str) {
        for line in text.lines() {
            println!("# {line}");
        }
    }

    /// Prints the result line of the next test.
    pub fn result(&mut self, name: &str, verdict: Verdict) {
        let number = self.next;
        self.next += 1;
        match verdict {
            Verdict::Ok => {
                self.passed += 1;
                println!("ok {number} {name}");
            }
            Verdict::NotOk(reason) => {
                self.failed += 1;
                self.diag(&reason);
                println!("not ok {number} {name}");
            }
            Verdict::Skip(reason) => {
                self.skipped += 1;
                // The directive is one line: fold any others.
                let reason = reason.lines().collect::<Vec<_>>().join("; ");
                println!("ok {number} {name} # SKIP {reason}");
            }
        }
        // The guest's console may be the only record if the kernel dies on the next test.
        let _ = std::io::stdout().flush();
    }

    /// Prints the totals as a diagnostic and returns whether nothing failed.
    pub fn finish(self) -> bool {
        println!(
            "# Totals: pass:{} fail:{} xfail:0 xpass:0 skip:{} error:0",
            self.passed, self.failed, self.skipped
        );
        self.failed == 0
    }
}
