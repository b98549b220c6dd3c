//! The library's plumbing and the test kit's probes against /dev/zero, which every host has:
//! ioctls come back ENOTTY with the right operation names, and shared mappings of it exercise
//! the mapping code for real.

use std::os::fd::AsFd;

use cmamap_testkit::{pattern, probe};

use cmamap::{abi, AllocRequest, Device, Errno, Prot, Sharing};

const ZERO: &str = "/dev/zero";

#[test]
fn ioctls_report_their_names() {
    let dev = Device::open_path(ZERO).unwrap();
    let err = dev.alloc(&AllocRequest::new(4096)).unwrap_err();
    assert_eq!(err.errno(), Errno::ENOTTY);
    assert_eq!(
        err.to_string(),
        "CMAMAP_IOC_ALLOC: ENOTTY (Inappropriate ioctl for device)"
    );
    assert_eq!(dev.stat().unwrap_err().op(), "CMAMAP_IOC_STAT");
    assert_eq!(dev.info(1).unwrap_err().op(), "CMAMAP_IOC_INFO");
    assert_eq!(dev.list().unwrap_err().op(), "CMAMAP_IOC_LIST");
    assert_eq!(dev.free(1).unwrap_err().op(), "CMAMAP_IOC_FREE");
    let err = dev
        .alloc_map(&AllocRequest::new(4096), Prot::ReadWrite)
        .unwrap_err();
    assert_eq!(err.op(), "CMAMAP_IOC_ALLOC_MAP");
}

#[test]
fn probes_are_harmless() {
    let dev = Device::open_path(ZERO).unwrap();
    assert_eq!(
        probe::ioctl_with_inaccessible_arg_probe(dev.as_fd(), abi::IOC_ALLOC),
        Err(Errno::ENOTTY)
    );
    assert_eq!(
        probe::list_into_inaccessible_probe(dev.as_fd(), 4),
        Err(Errno::ENOTTY)
    );
    let mut buf = [0u8; 256];
    assert_eq!(
        probe::ioctl_with_buffer(dev.as_fd(), abi::IOC_STAT, &mut buf),
        Err(Errno::ENOTTY)
    );
}

#[test]
fn shared_mappings_read_write_resize_and_protect() {
    let page = cmamap::page_size();
    let dev = Device::open_path(ZERO).unwrap();
    let mut mapping = dev.map(0, 4 * page, Prot::ReadWrite).unwrap();
    assert_eq!(mapping.len(), 4 * page);
    assert_eq!(mapping.addr() % page, 0);
    pattern::check_filled(mapping.as_slice(), 0, 0).unwrap();
    pattern::fill(mapping.as_mut_slice(), 9, 0);
    pattern::check(mapping.as_slice(), 9, 0).unwrap();
    mapping.write_volatile(page, 0x42);
    assert_eq!(mapping.read_volatile(page), 0x42);

    // /dev/zero (shmem) lets shared mappings grow; the contents move along.
    mapping.resize(8 * page).unwrap();
    assert_eq!(mapping.len(), 8 * page);
    assert_eq!(mapping.read_volatile(page), 0x42);

    mapping.protect(Prot::Read).unwrap();
    assert_eq!(mapping.prot(), Prot::Read);
    assert_eq!(mapping.as_slice()[page], 0x42);
    assert_eq!(
        mapping.resize(0).unwrap_err().errno(),
        Errno::EINVAL,
        "zero length is refused before the kernel sees it"
    );

    // A detached mapping outlives the device it came from.
    let detached = mapping.detach();
    drop(dev);
    assert_eq!(detached.as_slice()[page], 0x42);
}

#[test]
#[should_panic(expected = "not readable and writable")]
fn read_only_mappings_refuse_mutable_slices() {
    let dev = Device::open_path(ZERO).unwrap();
    let mut mapping = dev.map(0, cmamap::page_size(), Prot::Read).unwrap();
    mapping.as_mut_slice();
}

#[test]
fn mapping_errors_name_mmap() {
    let page = cmamap::page_size();
    let ro = Device::open_path_readonly(ZERO).unwrap();
    let err = ro.map(0, page, Prot::ReadWrite).unwrap_err();
    assert_eq!((err.op(), err.errno()), ("mmap", Errno::EACCES));
    assert_eq!(ro.map(0, 0, Prot::Read).unwrap_err().errno(), Errno::EINVAL);
    assert_eq!(
        ro.map(u64::MAX, page, Prot::Read).unwrap_err().errno(),
        Errno::EOVERFLOW
    );
    ro.map_with(0, page, Prot::Read, Sharing::Private).unwrap();
}

#[test]
fn pread_and_pwrite_go_to_the_file() {
    let dev = Device::open_path(ZERO).unwrap();
    let mut buf = [0xffu8; 64];
    assert_eq!(dev.pread(4096, &mut buf).unwrap(), 64);
    assert!(buf.iter().all(|&b| b == 0));
    assert_eq!(dev.pwrite(0, &buf).unwrap(), 64);
    let ro = Device::open_path_readonly(ZERO).unwrap();
    let err = ro.pwrite(0, &buf).unwrap_err();
    assert_eq!((err.op(), err.errno()), ("pwrite", Errno::EBADF));
}
