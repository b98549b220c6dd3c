// SPDX-License-Identifier: GPL-2.0
/*
 * Share a block between two processes: a block belongs to the open file, which fork (or
 * SCM_RIGHTS) shares, so parent and child map the same physical memory.
 */
#include <sys/mman.h>
#include <sys/wait.h>

#include "common.h"

static const char child_says[] = "written by the child";
static const char parent_says[] = "written by the parent";

int main(void)
{
	int fd = open_cmamap();
	struct cmamap_alloc alloc = { .size = 8192, .strategy = CMAMAP_STRATEGY_DEFAULT };
	int to_child[2], to_parent[2], status;
	char *shared, byte = 0;
	pid_t pid;

	if (ioctl(fd, CMAMAP_IOC_ALLOC, &alloc) < 0)
		die("CMAMAP_IOC_ALLOC");
	shared = mmap(NULL, alloc.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, alloc.offset);
	if (shared == MAP_FAILED)
		die("mmap");
	if (pipe(to_child) < 0 || pipe(to_parent) < 0)
		die("pipe");

	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		/* The child: write, tell the parent, wait for its answer, check it. */
		memcpy(shared, child_says, sizeof(child_says));
		if (write(to_parent[1], "w", 1) != 1 || read(to_child[0], &byte, 1) != 1)
			_exit(2);
		_exit(strcmp(shared + 4096, parent_says) == 0 ? 0 : 3);
	}
	if (read(to_parent[0], &byte, 1) != 1)
		die("read from the child");
	if (strcmp(shared, child_says) != 0) {
		fprintf(stderr, "the parent reads \"%.32s\"\n", shared);
		return 1;
	}
	printf("parent %d sees what child %d wrote: \"%s\"\n", getpid(), pid, shared);
	memcpy(shared + 4096, parent_says, sizeof(parent_says));
	if (write(to_child[1], "w", 1) != 1)
		die("write to the child");
	if (waitpid(pid, &status, 0) < 0)
		die("waitpid");
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "the child did not see the parent's write (status 0x%x)\n", status);
		return 1;
	}
	printf("child %d saw what the parent wrote: \"%s\"\n", pid, shared + 4096);
	munmap(shared, alloc.size);
	/* Closing the last reference to the file frees its blocks. */
	close(fd);
	printf("share: ok\n");
	return 0;
}
