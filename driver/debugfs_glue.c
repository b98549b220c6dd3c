// SPDX-License-Identifier: GPL-2.0
/*
 * The files of /sys/kernel/debug/cmamap/, made here rather than through the Rust debugfs
 * abstraction: 7.3's sets no .owner on its file_operations, so an open file did not pin the
 * module, and closing it after rmmod read the freed module's operations. With .owner set,
 * opening a file takes a module reference and rmmod is refused until it is closed.
 * The text comes from Rust (driver/debugfs.rs).
 */
#include <linux/debugfs.h>
#include <linux/module.h>
#include <linux/seq_file.h>

#include "debugfs_glue.h"

static int cmamap_debugfs_seq_show(struct seq_file *m, void *unused)
{
	return cmamap_debugfs_show(m, (uintptr_t)m->private);
}

static int cmamap_debugfs_open(struct inode *inode, struct file *file)
{
	return single_open(file, cmamap_debugfs_seq_show, inode->i_private);
}

static const struct file_operations cmamap_debugfs_fops = {
	.owner = THIS_MODULE,
	.open = cmamap_debugfs_open,
	.read = seq_read,
	.llseek = seq_lseek,
	.release = single_release,
};

/* The directory and one file per view; each file's private data is its view number. */
struct dentry *cmamap_debugfs_create(const char *const *names, uintptr_t count)
{
	struct dentry *dir = debugfs_create_dir("cmamap", NULL);
	uintptr_t view;

	for (view = 0; view < count; view++)
		debugfs_create_file(names[view], 0444, dir, (void *)view, &cmamap_debugfs_fops);
	return dir;
}

void cmamap_debugfs_remove(struct dentry *dir)
{
	debugfs_remove(dir);
}
