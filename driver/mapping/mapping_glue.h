/* SPDX-License-Identifier: GPL-2.0 */
/* C helpers of the mapping domain, called from driver/mapping/vma.rs. */
#ifndef CMAMAP_MAPPING_GLUE_H
#define CMAMAP_MAPPING_GLUE_H

#include <linux/mm_types.h>

void cmamap_vma_set_flags(struct vm_area_struct *vma, vm_flags_t flags);
void cmamap_vma_set_cache(struct vm_area_struct *vma, bool write_combine);

#endif
