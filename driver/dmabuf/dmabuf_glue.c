// SPDX-License-Identifier: GPL-2.0
/*
 * C half of driver/dmabuf.rs: the dma-buf exporter's ops table and its importers'
 * attachments. C because Rust-for-Linux 7.3 has no dma-buf abstraction: struct dma_buf_ops,
 * dma_buf_export() and the sg_table helpers are not in its bindings.
 *
 * Ownership: the dma-buf's priv is a struct cmamap_exported, which holds one reference of the
 * Rust Export (owner), and through it the block. Its ->release gives that reference back, so
 * the block outlives every fd, mapping and attachment of the dma-buf. The dma-buf holds this
 * module (exp_info.owner), so rmmod is refused while any dma-buf lives.
 *
 * Locks: exported->lock guards the attachments. The dma-buf core may hold the buffer's
 * reservation lock around map and unmap, so it is taken inside that; nothing of cmamap's is
 * taken under it (the crate root's lock order lists it as 10).
 */
#include <linux/dma-buf.h>
#include <linux/dma-mapping.h>
#include <linux/iosys-map.h>
#include <linux/list.h>
#include <linux/minmax.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/scatterlist.h>
#include <linux/sizes.h>
#include <linux/slab.h>

#include "dmabuf_glue.h"
#include "../dma/dma_glue.h"

MODULE_IMPORT_NS("DMA_BUF");

/* The longest scatterlist entry: its length is an unsigned int. */
#define CMAMAP_SG_MAX SZ_1G

struct cmamap_exported {
	void *owner;
	unsigned long pfn;
	size_t size;
	struct mutex lock;
	struct list_head attachments;
};

struct cmamap_attachment {
	struct device *dev;
	struct sg_table table;
	struct list_head node;
	enum dma_data_direction dir;
	bool mapped;
};

static int cmamap_dmabuf_attach(struct dma_buf *dmabuf, struct dma_buf_attachment *attachment)
{
	struct cmamap_exported *exported = dmabuf->priv;
	struct cmamap_attachment *att;
	unsigned long pfn = exported->pfn;
	size_t left = exported->size;
	struct scatterlist *sg;
	unsigned int i;

	att = kzalloc(sizeof(*att), GFP_KERNEL);
	if (!att)
		return -ENOMEM;
	if (sg_alloc_table(&att->table, DIV_ROUND_UP(left, CMAMAP_SG_MAX), GFP_KERNEL)) {
		kfree(att);
		return -ENOMEM;
	}
	for_each_sgtable_sg(&att->table, sg, i) {
		size_t len = min_t(size_t, left, CMAMAP_SG_MAX);

		sg_set_page(sg, pfn_to_page(pfn), len, 0);
		pfn += len >> PAGE_SHIFT;
		left -= len;
	}
	att->dev = attachment->dev;
	INIT_LIST_HEAD(&att->node);
	attachment->priv = att;
	mutex_lock(&exported->lock);
	list_add(&att->node, &exported->attachments);
	mutex_unlock(&exported->lock);
	return 0;
}

static void cmamap_dmabuf_detach(struct dma_buf *dmabuf, struct dma_buf_attachment *attachment)
{
	struct cmamap_exported *exported = dmabuf->priv;
	struct cmamap_attachment *att = attachment->priv;

	mutex_lock(&exported->lock);
	list_del(&att->node);
	mutex_unlock(&exported->lock);
	sg_free_table(&att->table);
	kfree(att);
}

/* Whether every DMA segment of @table reaches the block itself, not a bounce buffer. */
static bool cmamap_dmabuf_reaches(struct device *dev, phys_addr_t phys, struct sg_table *table)
{
	struct scatterlist *sg;
	size_t offset = 0;
	unsigned int i;

	for_each_sgtable_dma_sg(table, sg, i) {
		if (!cmamap_dma_reaches(dev, phys + offset, sg_dma_address(sg), sg_dma_len(sg)))
			return false;
		offset += sg_dma_len(sg);
	}
	return true;
}

/*
 * An importer's mapping: the same no-bounce rule as CMAMAP_IOC_DMA_MAP. Checked here, not at
 * attach, because CPU-only importers (videobuf2's vmalloc allocator) attach and never map.
 */
static struct sg_table *cmamap_dmabuf_map(struct dma_buf_attachment *attachment,
					  enum dma_data_direction dir)
{
	struct cmamap_exported *exported = attachment->dmabuf->priv;
	struct cmamap_attachment *att = attachment->priv;
	phys_addr_t phys = PFN_PHYS(exported->pfn);
	int ret;

	ret = cmamap_dma_reachable(att->dev, phys, exported->size, 0);
	if (!ret) {
		ret = dma_map_sgtable(att->dev, &att->table, dir, 0);
		if (ret)
			return ERR_PTR(ret);
		if (!cmamap_dmabuf_reaches(att->dev, phys, &att->table)) {
			/* A bounce buffer's copy-back would overwrite what the CPU wrote meanwhile. */
			dma_unmap_sgtable(att->dev, &att->table, dir, DMA_ATTR_SKIP_CPU_SYNC);
			ret = -ERANGE;
		}
	}
	if (ret) {
		dev_info_ratelimited(att->dev,
				     "cmamap: dma-buf at %pa not mapped: the device cannot reach it directly (%d)\n",
				     &phys, ret);
		return ERR_PTR(ret);
	}
	mutex_lock(&exported->lock);
	att->dir = dir;
	att->mapped = true;
	mutex_unlock(&exported->lock);
	return &att->table;
}

static void cmamap_dmabuf_unmap(struct dma_buf_attachment *attachment, struct sg_table *table,
				enum dma_data_direction dir)
{
	struct cmamap_exported *exported = attachment->dmabuf->priv;
	struct cmamap_attachment *att = attachment->priv;

	mutex_lock(&exported->lock);
	att->mapped = false;
	mutex_unlock(&exported->lock);
	dma_unmap_sgtable(att->dev, table, dir, 0);
}

/* Whether data moving @dir can have passed through a mapping made @mapped (as dma.rs). */
static bool cmamap_dmabuf_overlaps(enum dma_data_direction dir, enum dma_data_direction mapped)
{
	return dir == mapped || dir == DMA_BIDIRECTIONAL || mapped == DMA_BIDIRECTIONAL;
}

/*
 * DMA_BUF_IOCTL_SYNC and the kernel's dma_buf_{begin,end}_cpu_access: every importer's
 * mapping, each with its own direction as the DMA API requires, then every device mapping of
 * the block (CMAMAP_IOC_DMA_MAP), which the importers' own syncs would miss.
 */
static void cmamap_dmabuf_sync(struct dma_buf *dmabuf, enum dma_data_direction dir, bool for_cpu)
{
	struct cmamap_exported *exported = dmabuf->priv;
	struct cmamap_attachment *att;

	mutex_lock(&exported->lock);
	list_for_each_entry(att, &exported->attachments, node) {
		if (!att->mapped || !cmamap_dmabuf_overlaps(dir, att->dir))
			continue;
		if (for_cpu)
			dma_sync_sgtable_for_cpu(att->dev, &att->table, att->dir);
		else
			dma_sync_sgtable_for_device(att->dev, &att->table, att->dir);
	}
	mutex_unlock(&exported->lock);
	cmamap_export_sync_devices(exported->owner, dir, for_cpu);
}

static int cmamap_dmabuf_begin_cpu_access(struct dma_buf *dmabuf, enum dma_data_direction dir)
{
	cmamap_dmabuf_sync(dmabuf, dir, true);
	return 0;
}

static int cmamap_dmabuf_end_cpu_access(struct dma_buf *dmabuf, enum dma_data_direction dir)
{
	cmamap_dmabuf_sync(dmabuf, dir, false);
	return 0;
}

static int cmamap_dmabuf_mmap(struct dma_buf *dmabuf, struct vm_area_struct *vma)
{
	struct cmamap_exported *exported = dmabuf->priv;

	return cmamap_export_mmap(exported->owner, vma);
}

/* CMA memory on 64-bit is never highmem: the linear map already holds it, contiguously. */
static int cmamap_dmabuf_vmap(struct dma_buf *dmabuf, struct iosys_map *map)
{
	struct cmamap_exported *exported = dmabuf->priv;

	iosys_map_set_vaddr(map, page_address(pfn_to_page(exported->pfn)));
	return 0;
}

static void cmamap_dmabuf_vunmap(struct dma_buf *dmabuf, struct iosys_map *map)
{
}

static void cmamap_dmabuf_release(struct dma_buf *dmabuf)
{
	struct cmamap_exported *exported = dmabuf->priv;

	cmamap_export_release(exported->owner);
	mutex_destroy(&exported->lock);
	kfree(exported);
}

static const struct dma_buf_ops cmamap_dmabuf_ops = {
	.attach = cmamap_dmabuf_attach,
	.detach = cmamap_dmabuf_detach,
	.map_dma_buf = cmamap_dmabuf_map,
	.unmap_dma_buf = cmamap_dmabuf_unmap,
	.begin_cpu_access = cmamap_dmabuf_begin_cpu_access,
	.end_cpu_access = cmamap_dmabuf_end_cpu_access,
	.mmap = cmamap_dmabuf_mmap,
	.vmap = cmamap_dmabuf_vmap,
	.vunmap = cmamap_dmabuf_vunmap,
	.release = cmamap_dmabuf_release,
};

/*
 * A dma-buf of @size bytes of CMA pages from @pfn, opened with @flags (O_RDWR, O_CLOEXEC).
 * Returns its file, whose one reference the caller installs in an fd or drops, or an ERR_PTR.
 * On success the dma-buf owns @owner and hands it to cmamap_export_release(); on failure the
 * caller still owns it.
 */
struct file *cmamap_dmabuf_export(void *owner, unsigned long pfn, size_t size, int flags)
{
	DEFINE_DMA_BUF_EXPORT_INFO(info);
	struct cmamap_exported *exported;
	struct dma_buf *dmabuf;

	exported = kzalloc(sizeof(*exported), GFP_KERNEL);
	if (!exported)
		return ERR_PTR(-ENOMEM);
	exported->owner = owner;
	exported->pfn = pfn;
	exported->size = size;
	mutex_init(&exported->lock);
	INIT_LIST_HEAD(&exported->attachments);

	info.exp_name = "cmamap";
	info.ops = &cmamap_dmabuf_ops;
	info.size = size;
	info.flags = flags;
	info.priv = exported;
	dmabuf = dma_buf_export(&info);
	if (IS_ERR(dmabuf)) {
		mutex_destroy(&exported->lock);
		kfree(exported);
		return ERR_CAST(dmabuf);
	}
	return dmabuf->file;
}
