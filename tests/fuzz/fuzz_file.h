/*
 * fuzz_file.h - for harnesses whose parser only takes a path: the input is
 * written to an in-memory file (memfd) and handed over as /proc/self/fd/N.
 * Nothing lands on disk and nothing is left behind when libFuzzer stops a
 * run on a crash or a timeout; the file is reused from run to run.
 */
#ifndef GRAFT_FUZZ_FILE_H
#define GRAFT_FUZZ_FILE_H

#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

typedef struct fuzz_file {
	int fd;
	char path[32];
} fuzz_file;

/* Makes f hold exactly the len bytes at data; f->path then opens a fresh
 * description of them at offset 0.  A failure here is the machine's, not the
 * parser's, so it ends the run loudly instead of hiding as a finding. */
static void fuzz_file_set(fuzz_file *f, const void *data, size_t len)
{
	if (f->path[0] == '\0') {
		f->fd = memfd_create("graft-fuzz", MFD_CLOEXEC);
		if (f->fd < 0) {
			perror("memfd_create");
			exit(2);
		}
		snprintf(f->path, sizeof(f->path), "/proc/self/fd/%d", f->fd);
	}
	if (ftruncate(f->fd, 0) != 0 ||
	    (len > 0 && pwrite(f->fd, data, len, 0) != (ssize_t)len)) {
		perror("fuzz_file_set");
		exit(2);
	}
}

#endif
