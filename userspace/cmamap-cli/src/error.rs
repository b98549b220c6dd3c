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

/// Where the causes of an ioctl's errors are written down, per errno.
const UAPI_HEADER: &str = "<cmamap.h>";

/// The fix for the errors people meet most, where this tool knows it.
fn fix(op: &str, errno: Errno) -> Option<&'static str> {
    let fix = match (op, errno) {
        (op, Errno::ENOENT) if op.starts_with("open ") => {
            "is the cmamap module loaded? `cmamap doctor` checks"
        }
        (op, Errno::EACCES) if op.starts_with("open ") => {
            "the node's group and mode decide who may open it: `cmamap doctor` says how"
        }
        ("mmap", Errno::EINVAL) => "offsets are whole pages; `cmamap info ID` shows the size",
        ("mmap", Errno::EACCES) => "the device was opened read-only",
        ("CMAMAP_IOC_INFO" | "CMAMAP_IOC_FREE" | "CMAMAP_IOC_EXPORT", Errno::ENOENT) => {
            "allocate with --persist to keep a block past its process"
        }
        ("CMAMAP_IOC_ALLOC" | "CMAMAP_IOC_FREE", Errno::EPERM) => "run as root",
        ("CMAMAP_IOC_ALLOC", Errno::ENOSPC) => "`cmamap stat` shows the limits",
        ("CMAMAP_IOC_ALLOC", Errno::ENOMEM | Errno::EBUSY) => "`cmamap stat` shows CmaFree",
        ("CMAMAP_IOC_ALLOC", Errno::EINVAL) => "--align-order takes 0 to 10",
        ("CMAMAP_IOC_DMA_MAP", Errno::EPERM) => "run as root: a device reaching memory needs it",
        ("CMAMAP_IOC_DMA_MAP", Errno::ENODEV) => {
            "name the device as 0000:00:05.0, BUS:NAME or /sys/bus/BUS/devices/NAME"
        }
        ("CMAMAP_IOC_DMA_MAP", Errno::EOPNOTSUPP) => "this device does no DMA",
        ("CMAMAP_IOC_DMA_MAP" | "CMAMAP_IOC_ALLOC", Errno::ERANGE) => {
            "the device cannot reach this memory without a bounce buffer: place CMA below its \
             limit (cma=SIZE@BASE-LIMIT) or put it behind an IOMMU"
        }
        ("CMAMAP_IOC_EXPORT", Errno::EOPNOTSUPP) => {
            "device memory (a PCI BAR) has no pages to export; export a CMA block"
        }
        ("CMAMAP_IOC_DMA_UNMAP", Errno::ENOENT) => {
            "mappings belong to the open file that made them: run this under \
             `cmamap dma-map ... -- CMD` with --fd $CMAMAP_FD"
        }
        (op, Errno::EINVAL) if op.starts_with("device ") => "not a device path under /sys",
        _ => return None,
    };
    Some(fix)
}

/// What to read and do about `errno` from `op`: the ioctl's ERRORS in the uAPI header, and
/// the fix where this tool knows it.
fn hint(op: &str, errno: Errno) -> Option<String> {
    let errors = op
        .starts_with("CMAMAP_IOC_")
        .then(|| format!("see ERRORS of {op} in {UAPI_HEADER}"));
    match (errors, fix(op, errno)) {
        (Some(errors), Some(fix)) => Some(format!("{errors}; {fix}")),
        (Some(errors), None) => Some(errors),
        (None, fix) => fix.map(str::to_owned),
    }
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
            "CMAMAP_IOC_ALLOC: ENOSPC: No space left on device (see ERRORS of \
             CMAMAP_IOC_ALLOC in <cmamap.h>; `cmamap stat` shows the limits)"
        );
        let err = CliError::from(cmamap::Error::new("pread", Errno::EIO));
        assert_eq!(err.to_string(), "pread: EIO: Input/output error");
    }

    #[test]
    fn every_ioctl_error_points_at_the_header() {
        let err = CliError::from(cmamap::Error::new("CMAMAP_IOC_LIST", Errno::EFAULT));
        assert_eq!(
            err.to_string(),
            "CMAMAP_IOC_LIST: EFAULT: Bad address (see ERRORS of CMAMAP_IOC_LIST in <cmamap.h>)"
        );
        let err = CliError::from(cmamap::Error::new("CMAMAP_IOC_FREE", Errno::EPERM));
        assert!(err.to_string().contains("EPERM"), "{err}");
        assert!(err.to_string().ends_with("; run as root)"), "{err}");
    }

    #[test]
    fn dma_errors_say_what_to_do() {
        let err = CliError::from(cmamap::Error::new("CMAMAP_IOC_DMA_MAP", Errno::ERANGE));
        assert!(
            err.to_string().starts_with("CMAMAP_IOC_DMA_MAP: ERANGE"),
            "{err}"
        );
        assert!(err.to_string().contains("cma=SIZE@BASE-LIMIT"), "{err}");
        let err = CliError::from(cmamap::Error::new("CMAMAP_IOC_DMA_UNMAP", Errno::ENOENT));
        assert!(err.to_string().contains("--fd $CMAMAP_FD"), "{err}");
    }

    #[test]
    fn open_failures_hint_at_the_module() {
        let err = CliError::from(cmamap::Error::new("open /dev/cmamap", Errno::ENOENT));
        assert_eq!(
            err.to_string(),
            "open /dev/cmamap: ENOENT: No such file or directory (is the cmamap module loaded? \
             `cmamap doctor` checks)"
        );
    }
}
