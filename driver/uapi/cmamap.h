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
#define CMAMAP_ABI_VERSION 1

/* Mapping strategies, chosen per block at allocation. */
#define CMAMAP_STRATEGY_DEFAULT 0 /* the module parameter default_strategy */
#define CMAMAP_STRATEGY_REMAP 1   /* remap_pfn_range of the whole range in mmap */
#define CMAMAP_STRATEGY_FAULT 2   /* one PFN inserted per fault (VM_PFNMAP) */
#define CMAMAP_STRATEGY_PAGE 3    /* vm_insert_page per fault (VM_MIXEDMAP): GUP works */
#define CMAMAP_STRATEGY_HUGE 4    /* 2 MiB PMD entries where aligned, else like FAULT */

/* Allocation flags. */
#define CMAMAP_ALLOC_PERSIST (1U << 0) /* owned by the module, not the file; CAP_SYS_ADMIN to make and to free */
#define CMAMAP_ALLOC_FLAGS_ALL (CMAMAP_ALLOC_PERSIST)

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
	__u64 reserved[2]; /* must be 0 */
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
	__u64 reserved[2]; /* must be 0 on input; 0 on output */
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
 *  ENODEV: the kernel has no default CMA area.
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
 * CMAMAP_IOC_INFO - describe one block. Only id and reserved are read.
 *
 * ERRORS:
 *  EINVAL: reserved is not 0.
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

#endif /* _UAPI_CMAMAP_H */
