// SPDX-License-Identifier: GPL-2.0
/*
 * A PERSIST block belongs to the module, not to the file: it outlives the process that made
 * it, every opener can find it with CMAMAP_IOC_LIST, and it lives until CMAMAP_IOC_FREE or
 * rmmod. Making and freeing one needs CAP_SYS_ADMIN.
 */
#include <sys/mman.h>

#include "common.h"

static const char message[] = "left here by a process that has closed its file";

/* The persistent block `id` as a new open file sees it; 0 if it is not listed. */
static int find_persistent(int fd, __u32 id, struct cmamap_info *found)
{
	struct cmamap_info entries[64];
	struct cmamap_list list = { .entries = (__u64)(unsigned long)entries, .capacity = 64 };
	__u32 i;

	if (ioctl(fd, CMAMAP_IOC_LIST, &list) < 0)
		die("CMAMAP_IOC_LIST");
	for (i = 0; i < list.count && i < list.capacity; i++) {
		if (entries[i].id == id && entries[i].owner == CMAMAP_OWNER_MODULE) {
			*found = entries[i];
			return 1;
		}
	}
	return 0;
}

int main(void)
{
	int fd = open_cmamap();
	struct cmamap_alloc alloc = { .size = 4096, .flags = CMAMAP_ALLOC_PERSIST };
	struct cmamap_free free_args = { 0 };
	struct cmamap_info info;
	char *p;

	if (ioctl(fd, CMAMAP_IOC_ALLOC, &alloc) < 0) {
		if (errno == EPERM)
			fprintf(stderr, "PERSIST needs CAP_SYS_ADMIN: run as root\n");
		die("CMAMAP_IOC_ALLOC with CMAMAP_ALLOC_PERSIST");
	}
	if (pwrite(fd, message, sizeof(message), alloc.offset) != (ssize_t)sizeof(message))
		die("pwrite");
	close(fd);
	printf("made persistent block %u and closed the file\n", alloc.id);

	/* A new open file, as an unrelated process would have. */
	fd = open_cmamap();
	if (!find_persistent(fd, alloc.id, &info)) {
		fprintf(stderr, "block %u is not listed after its file closed\n", alloc.id);
		return 1;
	}
	p = mmap(NULL, info.size, PROT_READ, MAP_SHARED, fd, info.offset);
	if (p == MAP_FAILED)
		die("mmap");
	if (strcmp(p, message) != 0) {
		fprintf(stderr, "block %u holds \"%.48s\"\n", alloc.id, p);
		return 1;
	}
	printf("a new open file finds block %u and reads: \"%s\"\n", alloc.id, p);
	munmap(p, info.size);

	free_args.id = alloc.id;
	if (ioctl(fd, CMAMAP_IOC_FREE, &free_args) < 0)
		die("CMAMAP_IOC_FREE");
	if (find_persistent(fd, alloc.id, &info)) {
		fprintf(stderr, "block %u is still listed after FREE\n", alloc.id);
		return 1;
	}
	close(fd);
	printf("persist: ok\n");
	return 0;
}
