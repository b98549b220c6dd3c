/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What every cmamap C example shares: opening the device and failing loudly. Plain C against
 * the uAPI header (installed as <cmamap.h>; in the tree it is driver/uapi/cmamap.h).
 */
#ifndef CMAMAP_EXAMPLE_COMMON_H
#define CMAMAP_EXAMPLE_COMMON_H

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cmamap.h>

/* Prints what failed and why, and exits 1. */
static inline void die(const char *what)
{
	fprintf(stderr, "%s: %s\n", what, strerror(errno));
	exit(1);
}

/* Opens /dev/cmamap read-write and checks that the module speaks this header's ABI. */
static inline int open_cmamap(void)
{
	struct cmamap_stat stat = { 0 };
	int fd = open("/dev/cmamap", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		die("open /dev/cmamap (is the module loaded? `cmamap doctor` checks)");
	if (ioctl(fd, CMAMAP_IOC_STAT, &stat) < 0)
		die("CMAMAP_IOC_STAT");
	if (stat.abi_version != CMAMAP_ABI_VERSION) {
		fprintf(stderr, "module ABI %u, header ABI %u\n", stat.abi_version,
			CMAMAP_ABI_VERSION);
		exit(1);
	}
	return fd;
}

#endif
