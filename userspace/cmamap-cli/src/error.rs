//! Errors of the command line tool and how they are reported.

use std::fmt;

use cmamap::Errno;

/// A failure that ends the command with exit status 1.
#[derive(Debug)]
pub enum CliError {
    /// A system call or ioctl failed.
    Sys(cmamap::Error),
    /// A check of block contents failed.
    Verify(String),
    /// Anything else, already phrased as `<operation>: <explanation>`.
    Other(String),
}

impl From<cmamap::Error> for CliError {
    fn from(err: cmamap::Error) -> Self {
        CliError::Sys(err)
    }
}

/// A hint for the errors people meet most, keyed by operation and errno.
fn hint(op: &str, errno: Errno) -> Option<&'static str> {
    let hint = match (op, errno) {
        (op, Errno::ENOENT) if op.starts_with("open ") => "is the cmamap module loaded?",
        (op, Errno::EACCES) if op.starts_with("open ") => "the device node needs root",
        ("CMAMAP_IOC_INFO" | "CMAMAP_IOC_FREE", Errno::ENOENT) => {
            "no such block here: a block dies with the process that allocated it unless it was \
             allocated with --persist"
        }
        ("mmap", Errno::EINVAL) => {
            "unknown block, an unaligned offset, or a range past the block's end"
        }
        ("mmap", Errno::EACCES) => "the device was opened read-only",
        ("CMAMAP_IOC_ALLOC", Errno::EPERM) => "--persist needs CAP_SYS_ADMIN",
        ("CMAMAP_IOC_FREE", Errno::EPERM) => {
            "a persistent block needs CAP_SYS_ADMIN to free; device memory goes only when its \
             device unbinds"
        }
        ("CMAMAP_IOC_ALLOC", Errno::ENOSPC) => {
            "over the driver's max_bytes_per_file or max_bytes_total limit; see `cmamap stat`"
        }
        ("CMAMAP_IOC_ALLOC", Errno::ENOMEM | Errno::EBUSY) => {
            "not enough contiguous CMA memory; see CmaFree in `cmamap stat`"
        }
        ("CMAMAP_IOC_ALLOC", Errno::EINVAL) => {
            "bad size, strategy or alignment order; orders go from 0 to 10"
        }
        _ => return None,
    };
    Some(hint)
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Sys(err) => {
                write!(
                    f,
                    "{}: {}: {}",
                    err.op(),
                    err.errno_name(),
                    err.explanation()
                )?;
                if let Some(hint) = hint(err.op(), err.errno()) {
                    write!(f, " ({hint})")?;
                }
                Ok(())
            }
            CliError::Verify(message) => write!(f, "verify: {message}"),
            CliError::Other(message) => f.write_str(message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_errors_read_op_name_explanation() {
        let err = CliError::from(cmamap::Error::new("CMAMAP_IOC_ALLOC", Errno::ENOSPC));
        assert_eq!(
            err.to_string(),
            "CMAMAP_IOC_ALLOC: ENOSPC: No space left on device (over the driver's \
             max_bytes_per_file or max_bytes_total limit; see `cmamap stat`)"
        );
        let err = CliError::from(cmamap::Error::new("pread", Errno::EIO));
        assert_eq!(err.to_string(), "pread: EIO: Input/output error");
    }

    #[test]
    fn open_failures_hint_at_the_module() {
        let err = CliError::from(cmamap::Error::new("open /dev/cmamap", Errno::ENOENT));
        assert_eq!(
            err.to_string(),
            "open /dev/cmamap: ENOENT: No such file or directory (is the cmamap module loaded?)"
        );
    }
}
