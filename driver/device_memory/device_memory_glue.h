/* SPDX-License-Identifier: GPL-2.0 */
/* C helpers of device memory, called from driver/device_memory/{bar,rmap}.rs. */
#ifndef CMAMAP_DEVICE_MEMORY_GLUE_H
#define CMAMAP_DEVICE_MEMORY_GLUE_H

#include <linux/fs.h>
#include <linux/mm_types.h>

bool cmamap_bar_copy_uses_ioremap(phys_addr_t phys, u64 len);
int cmamap_bar_copy(phys_addr_t phys, void *buf, size_t len, bool to_device);
bool cmamap_mm_has_users(struct mm_struct *mm);
struct file *cmamap_rmap_create(void);
void cmamap_rmap_destroy(struct file *holder);
void cmamap_rmap_adopt(struct file *file, struct file *holder);
void cmamap_rmap_zap(struct file *holder, u64 offset, u64 len);

#endif
