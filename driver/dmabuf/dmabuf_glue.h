/* SPDX-License-Identifier: GPL-2.0 */
/* C half of driver/dmabuf.rs (see dmabuf_glue.c); the Rust side is driver/dmabuf/exporter.rs. */
#ifndef CMAMAP_DMABUF_GLUE_H
#define CMAMAP_DMABUF_GLUE_H

#include <linux/fs.h>
#include <linux/mm_types.h>
#include <linux/types.h>

struct file *cmamap_dmabuf_export(void *owner, unsigned long pfn, size_t size, int flags);
/* Implemented in Rust (driver/dmabuf/exporter.rs). */
void cmamap_export_release(void *owner);
int cmamap_export_mmap(void *owner, struct vm_area_struct *vma);
void cmamap_export_sync_devices(void *owner, int dir, bool for_cpu);

#endif
