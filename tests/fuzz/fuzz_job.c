/*
 * fuzz_job.c - job specs (proto_job_parse), YAML and JSON alike: the bytes
 * come from whoever may write to graftd's socket.  Beyond not crashing, a
 * refusal must leave a one-line message, and an accepted spec must hold
 * terminated strings and the counts the scheduler divides by.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/proto.h"
#include "tests/fuzz/fuzz_msg.h"

#define TERMINATED(s) (memchr((s), '\0', sizeof(s)) != NULL)

static void check_job(const proto_job *j)
{
	if (!TERMINATED(j->name) || !TERMINATED(j->dataset.dir) ||
	    !TERMINATED(j->dataset.train_images) || !TERMINATED(j->dataset.train_labels) ||
	    !TERMINATED(j->dataset.test_images) || !TERMINATED(j->dataset.test_labels) ||
	    !TERMINATED(j->dataset.train_images_sha256) ||
	    !TERMINATED(j->dataset.train_labels_sha256) ||
	    !TERMINATED(j->dataset.test_images_sha256) ||
	    !TERMINATED(j->dataset.test_labels_sha256) || !TERMINATED(j->graft_sha256))
		abort();
	if (j->population < 1 || j->sample < 1 || j->sample > j->population ||
	    j->candidates < 1 || j->workers < 1 || j->threads < 1)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[GRAFT_ERRLEN];
	proto_job j;

	fuzz_msg_poison(err, sizeof(err));
	if (proto_job_parse((const char *)data, size, &j, err, sizeof(err)) == 0)
		check_job(&j);
	else
		fuzz_msg_check(err, sizeof(err));
	return 0;
}
