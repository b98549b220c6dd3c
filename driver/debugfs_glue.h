/* SPDX-License-Identifier: GPL-2.0 */
/* C half of driver/debugfs.rs (see debugfs_glue.c). */
#ifndef CMAMAP_DEBUGFS_GLUE_H
#define CMAMAP_DEBUGFS_GLUE_H

#include <linux/dcache.h>
#include <linux/seq_file.h>
#include <linux/types.h>

struct dentry *cmamap_debugfs_create(const char *const *names, uintptr_t count);
void cmamap_debugfs_remove(struct dentry *dir);
/* Implemented in Rust (driver/debugfs.rs). */
int cmamap_debugfs_show(struct seq_file *m, uintptr_t view);

#endif
