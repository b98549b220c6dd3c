/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * cmamap userspace ABI: physically contiguous CMA blocks mapped through /dev/cmamap.
 *
 * The Rust view of this ABI is userspace/cmamap-abi/src/abi.rs; host tests keep the two
 * identical (sizes, offsets, ioctl numbers). Every struct has fixed-width fields, explicit
 * padding and reserved words that must be zero on input.
 */
#ifndef _UAPI_CMAMAP_H
#define _UAPI_CMAMAP_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define CMAMAP_IOC_MAGIC 0xBB /* free in Documentation/userspace-api/ioctl/ioctl-number.rst */
#define CMAMAP_ABI_VERSION 2

/* Mapping strategies, chosen per block at allocation. */
#define CMAMAP_STRATEGY_DEFAULT 0 /* the module parameter default_strategy */
#define CMAMAP_STRATEGY_REMAP 1   /* remap_pfn_range of the whole range in mmap */
#define CMAMAP_STRATEGY_FAULT 2   /* one PFN inserted per fault (VM_PFNMAP) */
#define CMAMAP_STRATEGY_PAGE 3    /* vm_insert_page per fault (VM_MIXEDMAP): GUP works */
#define CMAMAP_STRATEGY_HUGE 4    /* 2 MiB PMD entries where aligned, else like FAULT */

/* Allocation flags. */
#define CMAMAP_ALLOC_PERSIST (1U << 0) /* owned by the module, not the file; CAP_SYS_ADMIN to make and to free */
/* For the device that cmamap_alloc.device names: from its own CMA area if it has one, and
 * refused (ERANGE) unless that device can reach the block directly. */
#define CMAMAP_ALLOC_FOR_DEVICE (1U << 1)
#define CMAMAP_ALLOC_FLAGS_ALL (CMAMAP_ALLOC_PERSIST | CMAMAP_ALLOC_FOR_DEVICE)

/* Owners reported by info. */
#define CMAMAP_OWNER_THIS_FILE 1 /* allocated through the file the caller used */
#define CMAMAP_OWNER_MODULE 2    /* a PERSIST block */
#define CMAMAP_OWNER_DEVICE 3    /* device memory (a PCI BAR); gone when the device unbinds */

/*
 * cmamap_info.flags (out only): device memory (a PCI BAR), not CMA RAM. It has no struct page:
 * only the remap and fault views, and CMAMAP_VIEW_REMAP_WC, map it (page and huge: EOPNOTSUPP).
 */
#define CMAMAP_INFO_DEVICE_MEMORY (1U << 16)

/* A view for device memory only: remap, write-combined instead of uncached. */
#define CMAMAP_VIEW_REMAP_WC 5

/* Largest alignment order accepted (2^10 pages = 4 MiB with 4 KiB pages). */
#define CMAMAP_MAX_ALIGN_ORDER 10

/*
 * Each block owns 2^CMAMAP_OFFSET_SHIFT bytes of mmap offset space (DRM-style fake offsets):
 * block @id starts at offset (__u64)id << CMAMAP_OFFSET_SHIFT. Ids are never reused.
 */
#define CMAMAP_OFFSET_SHIFT 36
#define CMAMAP_MAX_ID ((1U << (63 - CMAMAP_OFFSET_SHIFT)) - 1)

/*
 * Bits CMAMAP_VIEW_SHIFT..CMAMAP_OFFSET_SHIFT-1 of the offset inside a block choose the
 * strategy of one mapping (a view): 0 uses the block's own, CMAMAP_STRATEGY_* maps the same
 * memory another way. Blocks are at most CMAMAP_MAX_BLOCK_SIZE bytes.
 */
#define CMAMAP_VIEW_SHIFT 33
#define CMAMAP_MAX_BLOCK_SIZE (1ULL << CMAMAP_VIEW_SHIFT)
#define CMAMAP_MMAP_OFFSET(id, view, byte_offset)                                            \
	(((__u64)(id) << CMAMAP_OFFSET_SHIFT) | ((__u64)(view) << CMAMAP_VIEW_SHIFT) |         \
	 (__u64)(byte_offset))

/* CMAMAP_IOC_ALLOC and CMAMAP_IOC_ALLOC_MAP. */
struct cmamap_alloc {
	__u64 size;        /* in: bytes (rounded up to pages); out: rounded size */
	__u32 flags;       /* in: CMAMAP_ALLOC_* */
	__u32 strategy;    /* in: CMAMAP_STRATEGY_*; out: the strategy used */
	__u32 align_order; /* in: alignment as a page order, 0..CMAMAP_MAX_ALIGN_ORDER */
	__u32 id;          /* out: the block's handle */
	__u64 offset;      /* out: the mmap offset that selects the block */
	__u64 addr;        /* out: the user address (ALLOC_MAP only); must be 0 on input */
	__u32 prot;        /* in: ALLOC_MAP: PROT_READ and/or PROT_WRITE; ALLOC: must be 0 */
	__u32 pad0;        /* must be 0 */
	__u64 device;      /* in: CMAMAP_ALLOC_FOR_DEVICE: user pointer to a struct cmamap_device;
			    * else 0 */
	__u64 reserved;    /* must be 0 */
};

/* CMAMAP_IOC_FREE and CMAMAP_IOC_UNMAP_FREE. */
struct cmamap_free {
	__u32 id;          /* in: the block's handle */
	__u32 pad0;        /* must be 0 */
	__u64 addr;        /* in: UNMAP_FREE: the address ALLOC_MAP returned; FREE: must be 0 */
	__u64 reserved[2]; /* must be 0 */
};

/* CMAMAP_IOC_INFO, and each entry of CMAMAP_IOC_LIST. */
struct cmamap_info {
	__u32 id;          /* in: the block's handle */
	__u32 flags;       /* out: CMAMAP_ALLOC_*, CMAMAP_INFO_DEVICE_MEMORY */
	__u64 size;        /* out: bytes */
	__u64 offset;      /* out: mmap offset */
	__u64 phys_addr;   /* out: physical address; 0 unless the caller has CAP_SYS_ADMIN */
	__u32 strategy;    /* out: CMAMAP_STRATEGY_* */
	__u32 map_count;   /* out: live VMAs that map the block */
	__u32 owner;       /* out: CMAMAP_OWNER_* */
	__s32 owner_tgid;  /* out: process that allocated it; 0 for device memory */
	__u32 dma_mappings; /* out: live device mappings (CMAMAP_IOC_DMA_LIST describes them) */
	__u32 pad0;        /* must be 0 on input; 0 on output */
	__u64 reserved;    /* must be 0 on input; 0 on output */
};

/* CMAMAP_IOC_LIST: the blocks the caller can reach (this file's and PERSIST ones). */
struct cmamap_list {
	__u64 entries;     /* in: user pointer to struct cmamap_info[capacity]; 0 with capacity 0 */
	__u32 capacity;    /* in: entries available */
	__u32 count;       /* out: blocks reachable; min(count, capacity) were written */
	__u64 reserved[2]; /* must be 0 */
};

/* CMAMAP_IOC_STAT: device-wide figures and limits. */
struct cmamap_stat {
	__u32 abi_version;      /* out: CMAMAP_ABI_VERSION */
	__u32 default_strategy; /* out: CMAMAP_STRATEGY_* */
	__u64 page_size;        /* out */
	__u64 max_bytes_per_file; /* out: module parameter */
	__u64 max_bytes_total;  /* out: module parameter */
	__u64 bytes_total;      /* out: bytes held by all live blocks */
	__u64 bytes_file;       /* out: bytes charged to the caller's file */
	__u32 blocks_total;     /* out */
	__u32 blocks_file;      /* out */
	__u64 reserved[2];      /* must be 0 on input; 0 on output */
};

/* Directions of a device mapping (the DMA API's enum dma_data_direction). */
#define CMAMAP_DMA_BIDIRECTIONAL 0 /* the device reads and writes */
#define CMAMAP_DMA_TO_DEVICE 1     /* the device reads what the CPU wrote */
#define CMAMAP_DMA_FROM_DEVICE 2   /* the device writes what the CPU reads */

/* Longest device name, with its NUL. */
#define CMAMAP_DEVICE_NAME_MAX 64

/*
 * A device, named as users name it: a PCI address ("0000:00:05.0") or BUS:NAME with BUS one
 * of pci, platform, amba (arm64) and cpu ("platform:a0000000.dma"). The library turns a path
 * under /sys/bus/BUS/devices/ into this form.
 */
struct cmamap_device {
	char name[CMAMAP_DEVICE_NAME_MAX]; /* in: NUL-terminated */
	__u32 dma_bits; /* in: the device's DMA address width, 0 for the kernel's mask. It becomes
			 * the DMA mask of a device that no driver owns (as a probe would set it),
			 * and bounds the bus address in any case. */
	__u32 pad0;     /* must be 0 */
};

/* CMAMAP_IOC_DMA_MAP: maps (part of) a block for a device through the DMA API. */
struct cmamap_dma_map {
	__u32 id;          /* in: the block's handle */
	__u32 direction;   /* in: CMAMAP_DMA_* */
	__u64 offset;      /* in: bytes into the block, page aligned */
	__u64 length;      /* in: bytes, a page multiple; 0 maps to the end of the block */
	struct cmamap_device device; /* in */
	__u64 dma_addr;    /* out: the bus address that this device must use */
	__u32 handle;      /* out: the mapping's handle, for DMA_UNMAP */
	__u32 pad1;        /* must be 0 */
	__u64 reserved[2]; /* must be 0 */
};

/* CMAMAP_IOC_DMA_UNMAP. */
struct cmamap_dma_unmap {
	__u32 handle;      /* in: what DMA_MAP returned through this file */
	__u32 pad0;        /* must be 0 */
	__u64 reserved[2]; /* must be 0 */
};

/* cmamap_sync.flags: exactly one. */
#define CMAMAP_SYNC_FOR_CPU (1U << 0)    /* before the CPU reads what a device wrote */
#define CMAMAP_SYNC_FOR_DEVICE (1U << 1) /* before a device reads what the CPU wrote */

/*
 * CMAMAP_IOC_SYNC: syncs every device mapping of the block that overlaps the range and whose
 * direction overlaps @direction, each with its own direction, as the DMA API requires.
 */
struct cmamap_sync {
	__u32 id;          /* in: the block's handle */
	__u32 flags;       /* in: CMAMAP_SYNC_FOR_CPU or CMAMAP_SYNC_FOR_DEVICE */
	__u64 offset;      /* in: bytes into the block */
	__u64 length;      /* in: bytes; 0 syncs to the end of the block */
	__u32 direction;   /* in: CMAMAP_DMA_* of the data that moved */
	__u32 synced;      /* out: device mappings synced */
	__u64 reserved[2]; /* must be 0 */
};

/* Each entry of CMAMAP_IOC_DMA_LIST: one device mapping of a block. */
#define CMAMAP_DMA_LIST_MAX 1024 /* most entries one call writes */
struct cmamap_dma_info {
	__u32 handle;      /* out */
	__u32 direction;   /* out: CMAMAP_DMA_* */
	__u64 offset;      /* out: bytes into the block */
	__u64 length;      /* out: bytes */
	__u64 dma_addr;    /* out: the device's bus address */
	char device[CMAMAP_DEVICE_NAME_MAX]; /* out: BUS:NAME */
};

/* CMAMAP_IOC_DMA_LIST: the device mappings of one block, made through any file. */
struct cmamap_dma_list {
	__u32 id;          /* in: the block's handle */
	__u32 capacity;    /* in: entries available */
	__u64 entries;     /* in: user pointer to struct cmamap_dma_info[capacity] */
	__u32 count;       /* out: mappings; min(count, capacity) were written */
	__u32 pad0;        /* must be 0 */
	__u64 reserved[2]; /* must be 0 */
};

/*
 * cmamap_export.flags: those of the dma-buf's file. Without CMAMAP_EXPORT_RDWR the dma-buf
 * is read-only: mmap() with PROT_WRITE gives EACCES.
 */
#define CMAMAP_EXPORT_RDWR 02         /* O_RDWR */
#define CMAMAP_EXPORT_CLOEXEC 02000000 /* O_CLOEXEC */
#define CMAMAP_EXPORT_FLAGS_ALL (CMAMAP_EXPORT_RDWR | CMAMAP_EXPORT_CLOEXEC)

/* CMAMAP_IOC_EXPORT: a dma-buf of (part of) a block, for drivers that import dma-bufs. */
struct cmamap_export {
	__u32 id;          /* in: the block's handle */
	__u32 flags;       /* in: CMAMAP_EXPORT_* */
	__u64 offset;      /* in: bytes into the block, page aligned */
	__u64 length;      /* in: bytes, a page multiple; 0 exports to the end of the block */
	__s32 fd;          /* out: the dma-buf's file descriptor */
	__u32 pad0;        /* must be 0 */
	__u64 size;        /* out: the dma-buf's size in bytes */
	__u64 reserved[2]; /* must be 0 */
};

/*
 * The ioctls. Each lists its errors; every one of them can also give:
 *
 * ENOTTY: the command is none of these (a wrong size or direction makes another command).
 * EFAULT: the argument cannot be read or, for the _IOWR ones, written back.
 */

/**
 * CMAMAP_IOC_ALLOC - allocate a zeroed block that the caller maps with mmap().
 *
 * Out: size (rounded up to pages), strategy (the default resolved), id and offset. The block
 * becomes visible by id only once the answer is written back; if that fails (EFAULT) the
 * block is freed and its id handed out again.
 *
 * ERRORS:
 *  EINVAL: addr, prot, pad0 or reserved is not 0; flags has bits outside
 *          CMAMAP_ALLOC_FLAGS_ALL; align_order is over CMAMAP_MAX_ALIGN_ORDER; size is 0 or
 *          rounds up past 2^64; strategy is not a CMAMAP_STRATEGY_*.
 *  ENOSPC: size rounds up past CMAMAP_MAX_BLOCK_SIZE; the block would take the caller's file
 *          past max_bytes_per_file (PERSIST blocks are not charged to the file) or all blocks
 *          past max_bytes_total; or every id up to CMAMAP_MAX_ID was handed out.
 *  EPERM:  CMAMAP_ALLOC_PERSIST without CAP_SYS_ADMIN.
 *  ENOMEM: CMA has fewer free pages than the block needs, or no kernel memory for the block.
 *  EBUSY:  CMA has enough free pages but no free run that fits (fragmented or pinned).
 *  ENODEV: the kernel has no default CMA area; with CMAMAP_ALLOC_FOR_DEVICE, no such device
 *          (see CMAMAP_IOC_DMA_MAP for how devices are named).
 *  EFAULT: with CMAMAP_ALLOC_FOR_DEVICE, device does not point to a readable cmamap_device.
 *  With CMAMAP_ALLOC_FOR_DEVICE also (device is 0 without it, else EINVAL):
 *  EINVAL:     the device name or dma_bits is malformed, as for CMAMAP_IOC_DMA_MAP.
 *  EOPNOTSUPP: the device does no DMA.
 *  EPERM:      the device has a CMA pool of its own and the caller lacks CAP_SYS_ADMIN.
 *  ERANGE:     the block CMA gave is out of the device's direct reach (no IOMMU, and above
 *              its DMA mask or dma_bits); it is freed at once. Place CMA lower (cma=).
 */
#define CMAMAP_IOC_ALLOC _IOWR(CMAMAP_IOC_MAGIC, 0x00, struct cmamap_alloc)

/**
 * CMAMAP_IOC_FREE - kill a block's id; its memory goes back once nothing maps it.
 *
 * ERRORS:
 *  EINVAL: addr, pad0 or reserved is not 0.
 *  ENOENT: no live block has this id, or it belongs to another open file.
 *  EPERM:  the block is device memory (it goes when its device unbinds), or a PERSIST block
 *          and the caller lacks CAP_SYS_ADMIN.
 */
#define CMAMAP_IOC_FREE _IOW(CMAMAP_IOC_MAGIC, 0x01, struct cmamap_free)

/**
 * CMAMAP_IOC_INFO - describe one block. Only id, pad0 and reserved are read.
 *
 * ERRORS:
 *  EINVAL: pad0 or reserved is not 0.
 *  ENOENT: no live block has this id, or it belongs to another open file.
 */
#define CMAMAP_IOC_INFO _IOWR(CMAMAP_IOC_MAGIC, 0x02, struct cmamap_info)

/**
 * CMAMAP_IOC_LIST - describe every block the caller can reach.
 *
 * ERRORS:
 *  EINVAL:    reserved is not 0.
 *  EFAULT:    entries cannot hold min(count, capacity) entries (those before the fault are
 *             written; count is not), or does not fit a pointer.
 *  ENOMEM:    no kernel memory for the snapshot of the list.
 *  EOVERFLOW: more than 2^32 - 1 blocks (cannot happen below CMAMAP_MAX_ID).
 */
#define CMAMAP_IOC_LIST _IOWR(CMAMAP_IOC_MAGIC, 0x03, struct cmamap_list)

/**
 * CMAMAP_IOC_ALLOC_MAP - CMAMAP_IOC_ALLOC, then map the whole block shared into the caller
 * with prot; addr returns where (2 MiB aligned for a huge block that can use PMD entries).
 *
 * The block becomes visible by id only once the answer is written back; if mapping or that
 * fails, the mapping is undone and the block freed (once nothing maps it: a thread may have
 * forked meanwhile; its id then stays dead).
 *
 * ERRORS: those of CMAMAP_IOC_ALLOC, except that prot must be set, and:
 *  EINVAL: prot is 0 or has bits other than PROT_READ and PROT_WRITE.
 *  EACCES: PROT_WRITE on a file opened without write access.
 *  ENOMEM: no free range of the address space is large enough (with 2 MiB of slack for
 *          placement when the block can use PMD entries).
 *  Any other error of mmap(2) for a MAP_SHARED mapping of the file (EINTR, EAGAIN, ...).
 */
#define CMAMAP_IOC_ALLOC_MAP _IOWR(CMAMAP_IOC_MAGIC, 0x04, struct cmamap_alloc)

/**
 * CMAMAP_IOC_UNMAP_FREE - unmap the mapping that CMAMAP_IOC_ALLOC_MAP made at addr, then
 * free its block as CMAMAP_IOC_FREE. Every check is made before anything is unmapped.
 *
 * ERRORS:
 *  EINVAL: addr is 0, or pad0 or reserved is not 0; or no live mapping that
 *          CMAMAP_IOC_ALLOC_MAP made of block id, in this process, starts at addr and covers
 *          the whole block (a plain mmap(), a part of one, another block's, or one since
 *          unmapped, moved or split all count as none); or the block belongs to another
 *          open file.
 *  ENOENT: the block was freed already (its mapping stays).
 *  EPERM:  a PERSIST block and the caller lacks CAP_SYS_ADMIN.
 *  EINTR:  a fatal signal came while waiting to unmap; nothing was freed.
 */
#define CMAMAP_IOC_UNMAP_FREE _IOW(CMAMAP_IOC_MAGIC, 0x05, struct cmamap_free)

/**
 * CMAMAP_IOC_STAT - device-wide figures and the limits. Only reserved is read.
 *
 * ERRORS:
 *  EINVAL: reserved is not 0.
 */
#define CMAMAP_IOC_STAT _IOWR(CMAMAP_IOC_MAGIC, 0x06, struct cmamap_stat)

/**
 * CMAMAP_IOC_DMA_MAP - map (part of) a block for a device through the DMA API. Needs
 * CAP_SYS_ADMIN: a device reaching memory is as sensitive as its physical address.
 *
 * Out: dma_addr, the bus address that device must use (an IOVA behind an IOMMU, never a
 * bounce buffer), and handle. The mapping holds its block; it ends on DMA_UNMAP, FREE of the
 * block, release of this file, removal of the device or a driver binding to or unbinding
 * from it, and rmmod. A device no driver owns keeps its DMA mask: dma_bits applies to this
 * call only. Do not change its iommu_group/type while it has mappings.
 *
 * ERRORS:
 *  EINVAL:     pad1, device.pad0 or reserved is not 0; direction is not a CMAMAP_DMA_*;
 *              device.dma_bits is neither 0 nor 12..64; device.name is empty, unterminated
 *              or too long; offset is not inside the block, or offset/length is not page
 *              aligned, overflows or runs past the block.
 *  EPERM:      the caller lacks CAP_SYS_ADMIN.
 *  ENOENT:     no live block has this id, or it belongs to another open file.
 *  ENODEV:     no such device on that bus (or it is being removed), or the bus is not one of
 *              pci, platform, amba, cpu.
 *  EOPNOTSUPP: the device does no DMA (no DMA mask), its DMA ops cannot be checked for
 *              bounce buffers, or the block is device memory (peer-to-peer is not supported).
 *  EIO:        the device refused dma_bits as its DMA mask.
 *  ERANGE:     the device cannot reach the memory directly: without an IOMMU the block lies
 *              above its DMA mask (or dma_bits), or the DMA API would have used a bounce
 *              buffer (swiotlb=force bounces everything). Logged once per burst. Allocate
 *              below the device's reach (cma=).
 *  ENOSPC:     the file already holds 1024 device mappings.
 *  ENOMEM:     the DMA API failed (no IOVA space) or no kernel memory.
 */
#define CMAMAP_IOC_DMA_MAP _IOWR(CMAMAP_IOC_MAGIC, 0x07, struct cmamap_dma_map)

/**
 * CMAMAP_IOC_DMA_UNMAP - end a device mapping this file made. Behind an IOMMU in strict mode
 * the device can no longer reach the memory when this returns; in lazy mode (iommu.strict=0)
 * the IOTLB may keep the translation until the next flush (a few milliseconds).
 *
 * ERRORS:
 *  EINVAL: pad0 or reserved is not 0.
 *  ENOENT: no live mapping of this file has the handle (never made, ended already, made
 *          through another file, or ended by FREE or the device's removal).
 */
#define CMAMAP_IOC_DMA_UNMAP _IOW(CMAMAP_IOC_MAGIC, 0x08, struct cmamap_dma_unmap)

/**
 * CMAMAP_IOC_SYNC - cache maintenance around device access: FOR_CPU before the CPU reads what
 * a device wrote, FOR_DEVICE before a device reads what the CPU wrote. Every device mapping
 * of the block (through any file) that overlaps the range and whose direction overlaps
 * direction is synced over the overlap; synced says how many. Cheap on coherent hardware.
 *
 * ERRORS:
 *  EINVAL: reserved is not 0; flags is not exactly one of the two; direction is not a
 *          CMAMAP_DMA_*; offset is not inside the block, or offset + length overflows or
 *          runs past it.
 *  ENOENT: no live block has this id, or it belongs to another open file.
 */
#define CMAMAP_IOC_SYNC _IOWR(CMAMAP_IOC_MAGIC, 0x09, struct cmamap_sync)

/**
 * CMAMAP_IOC_DMA_LIST - describe the device mappings of one block: count is all of them;
 * min(count, capacity, CMAMAP_DMA_LIST_MAX) entries are written. dma_addr is 0 unless the
 * caller has CAP_SYS_ADMIN (without an IOMMU it is the physical address).
 *
 * ERRORS:
 *  EINVAL: pad0 or reserved is not 0.
 *  ENOENT: no live block has this id, or it belongs to another open file.
 *  EFAULT: entries cannot hold the entries written.
 *  ENOMEM: no kernel memory for the snapshot.
 */
#define CMAMAP_IOC_DMA_LIST _IOWR(CMAMAP_IOC_MAGIC, 0x0a, struct cmamap_dma_list)

/**
 * CMAMAP_IOC_EXPORT - export (part of) a block as a dma-buf: V4L2 (V4L2_MEMORY_DMABUF),
 * DRM (PRIME), RDMA and other importers take its fd. The dma-buf holds the block: FREE and
 * the release of this file kill the id, but the memory stays until the last dma-buf
 * reference, mapping and attachment are gone, and rmmod is refused until then.
 *
 * An importer's mapping is made with the DMA API for its device, as one contiguous range, and
 * refused (ERANGE, logged) when the device cannot reach the block without a bounce buffer.
 * DMA_BUF_IOCTL_SYNC syncs every importer's mapping and every CMAMAP_IOC_DMA_MAP mapping of
 * the block. mmap() of the dma-buf must be MAP_SHARED and maps with the block's strategy;
 * the kernel's vmap gives importers the block's kernel address.
 *
 * ERRORS:
 *  EINVAL:     pad0 or reserved is not 0; flags has bits outside CMAMAP_EXPORT_FLAGS_ALL;
 *              offset is not inside the block, or offset/length is not page aligned,
 *              overflows or runs past the block.
 *  ENOENT:     no live block has this id, or it belongs to another open file.
 *  EOPNOTSUPP: the block is device memory (a PCI BAR): exporting it is not supported.
 *  EMFILE:     the process has no free file descriptor.
 *  ENFILE:     the system has no free file.
 *  ENOMEM:     no kernel memory.
 */
#define CMAMAP_IOC_EXPORT _IOWR(CMAMAP_IOC_MAGIC, 0x0b, struct cmamap_export)

#endif /* _UAPI_CMAMAP_H */
