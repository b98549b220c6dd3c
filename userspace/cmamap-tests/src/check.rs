//! What a test returns, and the assertions that build it.

use std::fmt::Display;

use cmamap::{errno_name, Errno};

/// Why a test failed; may span several lines (each becomes a KTAP diagnostic).
#[derive(Debug)]
pub struct Failure(pub String);

impl Failure {
    pub fn new(message: impl Into<String>) -> Self {
        Failure(message.into())
    }
}

// Any error converts, so `?` works on library, io, nix and pattern errors alike. Failure itself
// implements no Error trait, which keeps this blanket impl coherent.
impl<E: std::error::Error> From<E> for Failure {
    fn from(err: E) -> Self {
        Failure(err.to_string())
    }
}

/// How a test that did not fail ended.
#[derive(Debug)]
pub enum Outcome {
    Pass,
    Skip(String),
}

pub type TestResult = Result<Outcome, Failure>;

pub fn pass() -> TestResult {
    Ok(Outcome::Pass)
}

pub fn skip(reason: impl Into<String>) -> TestResult {
    Ok(Outcome::Skip(reason.into()))
}

/// Fails the current test with a formatted message.
macro_rules! fail {
    ($($arg:tt)+) => {
        return Err($crate::check::Failure::new(format!($($arg)+)).into())
    };
}

/// Fails the current test unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($arg:tt)+) => {
        if !($cond) {
            fail!($($arg)+);
        }
    };
}

/// Fails the current test unless `actual == expected`.
macro_rules! ensure_eq {
    ($actual:expr, $expected:expr, $($arg:tt)+) => {
        match (&$actual, &$expected) {
            (actual, expected) => {
                if actual != expected {
                    fail!(
                        "{}: got {:?}, expected {:?}",
                        format_args!($($arg)+),
                        actual,
                        expected
                    );
                }
            }
        }
    };
}

/// Adds what was being done to an error.
pub trait Step<T> {
    fn step(self, what: &str) -> Result<T, Failure>;
}

impl<T, E: Display> Step<T> for Result<T, E> {
    fn step(self, what: &str) -> Result<T, Failure> {
        self.map_err(|err| Failure(format!("{what}: {err}")))
    }
}

/// Errors that carry an errno.
pub trait HasErrno {
    fn errno(&self) -> Errno;
    /// How a failure message shows the error.
    fn describe(&self) -> String;
}

impl HasErrno for cmamap::Error {
    fn errno(&self) -> Errno {
        cmamap::Error::errno(self)
    }

    fn describe(&self) -> String {
        self.to_string()
    }
}

impl HasErrno for Errno {
    fn errno(&self) -> Errno {
        *self
    }

    fn describe(&self) -> String {
        format!(
            "{} ({})",
            errno_name(*self),
            cmamap::errno_explanation(*self)
        )
    }
}

/// Passes when `result` failed with `expected`. Anything that unexpectedly succeeded is
/// dropped, which releases it.
pub fn expect_errno<T, E: HasErrno>(
    result: Result<T, E>,
    expected: Errno,
    what: &str,
) -> Result<(), Failure> {
    match result {
        Err(err) if err.errno() == expected => Ok(()),
        Err(err) => Err(Failure(format!(
            "{what}: failed with {}, expected {}",
            err.describe(),
            errno_name(expected)
        ))),
        Ok(_) => Err(Failure(format!(
            "{what}: succeeded, expected {}",
            errno_name(expected)
        ))),
    }
}

/// Like [`expect_errno`] for an allocation: a block the driver wrongly handed out is freed even
/// if it is persistent, so a failing check leaves nothing behind.
pub fn expect_alloc_refused(
    result: cmamap::Result<cmamap::Block<'_>>,
    expected: Errno,
    what: &str,
) -> Result<(), Failure> {
    let result = result.map(|mut block| {
        block.set_free_on_drop(true);
        block
    });
    expect_errno(result, expected, what)
}

/// Passes when `result` failed with any errno, which it returns.
pub fn expect_failure<T, E: HasErrno>(result: Result<T, E>, what: &str) -> Result<Errno, Failure> {
    match result {
        Err(err) => Ok(err.errno()),
        Ok(_) => Err(Failure(format!("{what}: succeeded, expected a failure"))),
    }
}
