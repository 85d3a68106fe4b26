# tests/fuzz/fuzz.mk - libFuzzer on every parser of outside input (included
# from the Makefile).
#
#   make fuzz                   each harness FUZZ_TIME seconds (default 60), one
#                               after the other; non-zero if any found something
#   make fuzz FUZZ_ONLY="arch job"   only those harnesses
#   make fuzz-build             build the harnesses only
#   make fuzz-clean             remove build-fuzz/ (binaries, grown corpora, artifacts)
#   build-fuzz/fuzz_arch -max_len=4096 build-fuzz/corpus/arch   one by hand
#
# A harness is tests/fuzz/fuzz_NAME.c, its seeds tests/fuzz/corpus/NAME/.  It
# runs on build-fuzz/corpus/NAME, which the seeds are copied into and which
# keeps what the fuzzer adds from run to run (rm -rf build-fuzz to start over),
# so the committed corpus stays small.  Crashes, leaks, timeouts and
# out-of-memory inputs are saved in build-fuzz/artifacts/NAME/.
#
# Everything is compiled with clang into build-fuzz/, never into build/: the
# library sources a parser needs are instrumented for coverage, address and
# undefined-behaviour checks, and linked to each harness with libFuzzer.  The
# parsers use no OpenMP, so neither does this build (no libomp needed).  The
# harnesses always build with -Werror; WERROR=1 (CI) holds the library to it too.

FUZZ_CC   ?= clang
FUZZ_TIME ?= 60
FB        := build-fuzz
FUZZ_SAN  := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS := -O1 -g $(FUZZ_SAN) -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wshadow \
               -Wstrict-prototypes -MMD -MP -I. $(shell pkg-config --cflags $(PKGS))
FUZZ_LDLIBS := $(filter-out -fopenmp,$(LDLIBS))

# What the parsers need of the library, and nothing that trains.
FUZZ_LIB_SRC := nn/err.c nn/rng.c nn/arch_defaults.c nn/dataset.c nn/idx.c nn/cifar.c \
                nn/safetensors.c nn/image.c nn/resize.c nn/images_file.c nn/sha256.c \
                search/space.c \
                $(filter-out proto/onnx.c,$(wildcard proto/*.c))
FUZZ_LIB_OBJ := $(FUZZ_LIB_SRC:%.c=$(FB)/%.o)
FUZZ_NAMES   := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BIN     := $(FUZZ_NAMES:%=$(FB)/fuzz_%)
FUZZ_ONLY    ?= $(FUZZ_NAMES)

# The longest input each harness tries: room for its largest real input (an
# HTTP head may reach its 16 KB limit; a CIFAR input holds three records and
# its leading byte), not much more, since longer inputs mean fewer runs.
FUZZ_MAXLEN_http        := 20000
FUZZ_MAXLEN_job         := 4096
FUZZ_MAXLEN_config      := 4096
FUZZ_MAXLEN_arch        := 4096
FUZZ_MAXLEN_idx         := 4096
FUZZ_MAXLEN_cifar       := 9220
FUZZ_MAXLEN_safetensors := 8192
FUZZ_MAXLEN_worker      := 4096
FUZZ_MAXLEN_image       := 8192

.PHONY: fuzz fuzz-build fuzz-clean

# The library with coverage instrumentation but without libFuzzer's main.
$(FB)/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link $(if $(WERROR),-Werror) -c -o $@ $<

$(FB)/libgraft-fuzz.a: $(FUZZ_LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

# The harnesses themselves are held to -Werror always.
$(FB)/fuzz_%: tests/fuzz/fuzz_%.c $(FB)/libgraft-fuzz.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) -Werror -fsanitize=fuzzer -o $@ $< $(FB)/libgraft-fuzz.a \
		$(FUZZ_LDLIBS)

fuzz-build: $(FUZZ_BIN)

fuzz: deps
	@$(MAKE) --no-print-directory fuzz-build
	@fail=0; $(foreach n,$(FUZZ_ONLY),sh tests/fuzz/run.sh $(FB) $(n) \
		$(or $(FUZZ_MAXLEN_$(n)),4096) $(FUZZ_TIME) || fail=1;) exit $$fail

fuzz-clean:
	rm -rf $(FB)

-include $(shell find $(FB) -name '*.d' 2>/dev/null)
