// SPDX-License-Identifier: GPL-2.0
/*
 * The device memory domain's C side (driver/device_memory/bar.rs and rmap.rs): BAR copies
 * through a short-lived ioremap, and the one address_space that every open file shares.
 */
#include <linux/anon_inodes.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/io.h>
#include <linux/mm.h>

#include "device_memory_glue.h"

/*
 * Copies @len bytes between device memory at @phys and @buf through a temporary uncached
 * mapping, so that the driver holds no long-lived kernel mapping whose cache mode would
 * override what user mappings ask for (x86 PAT keeps one mode per physical range).
 * C: memcpy_toio() and memcpy_fromio() are per-architecture macros.
 */
int cmamap_bar_copy(phys_addr_t phys, void *buf, size_t len, bool to_device)
{
	void __iomem *io = ioremap(phys, len);

	if (!io)
		return -ENOMEM;
	if (to_device)
		memcpy_toio(io, buf, len);
	else
		memcpy_fromio(buf, io, len);
	iounmap(io);
	return 0;
}

/*
 * Whether any task still uses @mm (a plain read: no reference is taken or dropped).
 * C: atomic_read() is a static inline.
 */
bool cmamap_mm_has_users(struct mm_struct *mm)
{
	return atomic_read(&mm->mm_users) > 0;
}

static const struct file_operations cmamap_rmap_fops = {};

/*
 * One anonymous inode whose address_space every open file of /dev/cmamap uses (as DRM does),
 * so that unmap_mapping_range() reaches every VMA of the device, whatever node it was opened
 * through. Returns the holder file or an ERR_PTR.
 * C: the inode's file_operations are a C static that must outlive every open file.
 */
struct file *cmamap_rmap_create(void)
{
	return anon_inode_create_getfile("[cmamap]", &cmamap_rmap_fops, NULL, O_RDWR, NULL);
}

/*
 * Synchronous: the holder's file_operations live in this module, which is being unloaded; a
 * deferred fput() would run __fput() after the module text is gone. Nothing else holds it.
 */
void cmamap_rmap_destroy(struct file *holder)
{
	__fput_sync(holder);
}

/* C: keeps struct file's fields out of Rust, as the rest of the rmap glue does. */
void cmamap_rmap_adopt(struct file *file, struct file *holder)
{
	file->f_mapping = holder->f_mapping;
}

/*
 * Zaps every user PTE of mmap offsets @offset..@offset+@len, in every process.
 * C: reads the holder's f_mapping, as above.
 */
void cmamap_rmap_zap(struct file *holder, u64 offset, u64 len)
{
	unmap_mapping_range(holder->f_mapping, offset, len, 1);
}
