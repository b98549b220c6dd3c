//! The error type: an errno plus the name of the operation that returned it.

use std::borrow::Cow;
use std::fmt;

use nix::errno::Errno;

/// A failed system call or ioctl: which operation, and which errno.
///
/// Displays as `CMAMAP_IOC_ALLOC: ENOSPC (No space left on device)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    op: Cow<'static, str>,
    errno: Errno,
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error of operation `op` (an ioctl name such as `CMAMAP_IOC_FREE`, or `mmap`, ...).
    pub fn new(op: impl Into<Cow<'static, str>>, errno: Errno) -> Self {
        Self {
            op: op.into(),
            errno,
        }
    }

    /// The operation that failed.
    pub fn op(&self) -> &str {
        &self.op
    }

    /// The errno it failed with.
    pub fn errno(&self) -> Errno {
        self.errno
    }

    /// The symbolic errno name, such as `ENOSPC`.
    pub fn errno_name(&self) -> String {
        errno_name(self.errno)
    }

    /// The C library's text for the errno, such as `No space left on device`.
    pub fn explanation(&self) -> String {
        explanation(self.errno)
    }
}

/// The symbolic name of an errno, such as `ENOSPC`.
pub fn errno_name(errno: Errno) -> String {
    // nix derives Debug on the errno enum, which yields exactly the C constant's name.
    format!("{errno:?}")
}

/// The C library's `strerror` text for an errno (nix's own table differs, e.g. for ENOTTY).
pub fn explanation(errno: Errno) -> String {
    let code = errno as i32;
    let text = std::io::Error::from_raw_os_error(code).to_string();
    // std appends " (os error N)" to strerror's text.
    match text.strip_suffix(&format!(" (os error {code})")) {
        Some(bare) => bare.to_owned(),
        None => text,
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} ({})",
            self.op,
            self.errno_name(),
            self.explanation()
        )
    }
}

impl std::error::Error for Error {}

impl From<Error> for std::io::Error {
    fn from(err: Error) -> Self {
        let kind = std::io::Error::from_raw_os_error(err.errno as i32).kind();
        std::io::Error::new(kind, err)
    }
}

/// Attaches an operation name to a `nix` result.
pub(crate) trait Context<T> {
    fn context(self, op: impl Into<Cow<'static, str>>) -> Result<T>;
}

impl<T> Context<T> for nix::Result<T> {
    fn context(self, op: impl Into<Cow<'static, str>>) -> Result<T> {
        self.map_err(|errno| Error::new(op, errno))
    }
}

/// Converts an `io::Error` from `std` into an [`Error`]; errors without an errno become `EIO`.
pub(crate) fn from_io(op: impl Into<Cow<'static, str>>, err: &std::io::Error) -> Error {
    let errno = err.raw_os_error().map_or(Errno::EIO, Errno::from_raw);
    Error::new(op, errno)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_op_errno_and_text() {
        let err = Error::new("CMAMAP_IOC_ALLOC", Errno::ENOSPC);
        assert_eq!(
            err.to_string(),
            "CMAMAP_IOC_ALLOC: ENOSPC (No space left on device)"
        );
        assert_eq!(err.op(), "CMAMAP_IOC_ALLOC");
        assert_eq!(err.errno_name(), "ENOSPC");
        assert_eq!(err.explanation(), "No space left on device");
    }

    #[test]
    fn explanations_come_from_the_c_library() {
        assert_eq!(explanation(Errno::ENOTTY), "Inappropriate ioctl for device");
        assert_eq!(explanation(Errno::EINVAL), "Invalid argument");
    }

    #[test]
    fn owned_op_names_work() {
        let err = Error::new(format!("open {}", "/dev/cmamap"), Errno::ENOENT);
        assert_eq!(
            err.to_string(),
            "open /dev/cmamap: ENOENT (No such file or directory)"
        );
    }

    #[test]
    fn converts_to_io_error_keeping_kind() {
        let io: std::io::Error = Error::new("mmap", Errno::EACCES).into();
        assert_eq!(io.kind(), std::io::ErrorKind::PermissionDenied);
        assert!(io.to_string().contains("EACCES"));
    }

    #[test]
    fn io_errors_keep_their_errno() {
        let io = std::io::Error::from_raw_os_error(libc::ENOTTY);
        assert_eq!(from_io("ioctl", &io).errno(), Errno::ENOTTY);
        let no_errno = std::io::Error::other("no errno");
        assert_eq!(from_io("read", &no_errno).errno(), Errno::EIO);
    }
}
