/*
 * fuzz_arch.c - graft-arch/1 (proto_arch_parse), and the promise of
 * proto.h that emit and parse are inverses: whatever parses is emitted,
 * the emitted text must parse again, and emitting that must give the very
 * same text.  A break in that chain aborts, as a finding: an exported
 * architecture that graft cannot read back is a lost result.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/proto.h"
#include "tests/fuzz/fuzz_msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static nn_arch a, b;
	char err[GRAFT_ERRLEN];
	char *first, *second;

	fuzz_msg_poison(err, sizeof(err));
	if (proto_arch_parse((const char *)data, size, &a, err, sizeof(err)) != 0) {
		fuzz_msg_check(err, sizeof(err));
		return 0;
	}
	first = proto_arch_emit(&a);
	if (first == NULL)
		return 0;
	if (proto_arch_parse(first, strlen(first), &b, err, sizeof(err)) != 0) {
		fprintf(stderr, "emitted text does not parse: %s\n--- emitted:\n%s---\n",
		        err, first);
		abort();
	}
	second = proto_arch_emit(&b);
	if (second != NULL && strcmp(first, second) != 0) {
		fprintf(stderr, "emit(parse(emit(a))) differs from emit(a)\n"
		        "--- first:\n%s--- second:\n%s---\n", first, second);
		abort();
	}
	free(first);
	free(second);
	return 0;
}
