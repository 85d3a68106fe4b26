# graft - build, test, benchmark and demo.
#
#   make              build bin/graft and bin/graftd
#   make test         build and run every test (installs missing Debian packages first)
#   make bench        graft beside PyTorch (training, inference, per op), a candidate's
#                     fixed cost, graftd's API latency, image folder decoding,
#                     the dashboard with 5,000 candidates; about 30 minutes
#   make demo         the quick start: install, build, run a short search with graftd
#   make SAN=address,undefined test     the same under sanitizers
#   make fuzz FUZZ_TIME=60   libFuzzer on every parser, FUZZ_TIME seconds each
#   make WERROR=1     warnings are errors (CI)

CC      ?= cc
PKGS    := openblas zlib jansson yaml-0.1 nettle sqlite3 libuv libcurl spng libjpeg freetype2 \
           libprotobuf-c libarchive
CFLAGS  ?= -O2 -g -march=native
CFLAGS  += -fopenmp -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wshadow -Wstrict-prototypes \
           -Wno-unused-parameter -MMD -MP -I. -I$(B)/gen $(shell pkg-config --cflags $(PKGS))
# Source "universal" reads the graft shipped in nn/grafts/ where the sources are.
CFLAGS  += -DSEARCH_GRAFTS_DIR='"$(CURDIR)/nn/grafts"'
LDLIBS  += $(shell pkg-config --libs $(PKGS)) -ldnnl -lhttp_parser -lpthread -lm -fopenmp
ifneq ($(WERROR),)
CFLAGS  += -Werror
endif
ifneq ($(SAN),)
CFLAGS  += -fsanitize=$(SAN) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS += -fsanitize=$(SAN)
endif

B := build
# The ONNX writer's message types, generated from the onnx.proto that
# libonnx-dev ships.
ONNX_PROTO := /usr/include/onnx/onnx.proto
GEN       := $(B)/gen
ONNX_GEN  := $(GEN)/onnx/onnx.pb-c.c
LIB_SRC   := $(wildcard nn/*.c proto/*.c search/*.c store/*.c)
LIB_OBJ   := $(LIB_SRC:%.c=$(B)/%.o) $(ONNX_GEN:.c=.o)
# daemon/ in three rooms: the job runtime both programs share (runtime/),
# graftd itself (graftd/, its main apart), and the graft command line (cli/).
RT_SRC    := $(wildcard daemon/runtime/*.c)
RT_OBJ    := $(RT_SRC:%.c=$(B)/%.o)
GD_SRC    := $(filter-out daemon/graftd/graftd.c,$(wildcard daemon/graftd/*.c))
# The dashboard's files, embedded in graftd as C arrays.
DASH_FILES := $(wildcard daemon/graftd/dashboard/*.html daemon/graftd/dashboard/*.js \
                         daemon/graftd/dashboard/*.css)
DASH_GEN  := $(GEN)/dashboard_assets.c
GD_OBJ    := $(GD_SRC:%.c=$(B)/%.o) $(DASH_GEN:.c=.o)
CLI_SRC   := $(wildcard daemon/cli/*.c)
CLI_OBJ   := $(CLI_SRC:%.c=$(B)/%.o)
TEST_SRC  := $(wildcard tests/test_*.c)
TEST_BIN  := $(TEST_SRC:tests/%.c=$(B)/tests/%)
TEST_LIB  := $(wildcard tests/support/*.c)
TEST_LIB_OBJ := $(TEST_LIB:%.c=$(B)/%.o)
BENCH_BIN := $(B)/bench/bench_train
BENCH_API := $(B)/bench/bench_api
BENCH_CAND := $(B)/bench/bench_candidate
BENCH_FOLDER := $(B)/bench/bench_folder

.PHONY: all test bench demo clean deps fixtures
all: bin/graft bin/graftd

deps:
	@deploy/install-deps.sh

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(ONNX_GEN) $(ONNX_GEN:.c=.h): $(ONNX_PROTO)
	@mkdir -p $(GEN)
	protoc-c --proto_path=/usr/include --c_out=$(GEN) $(ONNX_PROTO)

$(ONNX_GEN:.c=.o): $(ONNX_GEN)
	$(CC) $(CFLAGS) -Wno-error -c -o $@ $<

$(B)/proto/onnx.o: $(ONNX_GEN:.c=.h)

$(DASH_GEN): $(DASH_FILES) daemon/graftd/dashboard/embed.sh
	@mkdir -p $(GEN)
	sh daemon/graftd/dashboard/embed.sh $@ $(DASH_FILES)

$(DASH_GEN:.c=.o): $(DASH_GEN)
	$(CC) $(CFLAGS) -c -o $@ $<

$(B)/libgraft.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(B)/libgraftrt.a: $(RT_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(B)/libgraftd.a: $(GD_OBJ)
	@rm -f $@
	ar rcs $@ $^

bin/graft: $(CLI_OBJ) $(B)/libgraftrt.a $(B)/libgraft.a
	@mkdir -p bin
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

bin/graftd: $(B)/daemon/graftd/graftd.o $(B)/libgraftd.a $(B)/libgraftrt.a $(B)/libgraft.a
	@mkdir -p bin
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(B)/tests/%: $(B)/tests/%.o $(TEST_LIB_OBJ) $(B)/libgraftd.a $(B)/libgraftrt.a $(B)/libgraft.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(shell pkg-config --libs criterion)

$(BENCH_BIN): $(B)/tests/bench/bench_train.o $(B)/libgraft.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BENCH_CAND): $(B)/tests/bench/bench_candidate.o $(B)/libgraft.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BENCH_FOLDER): $(B)/tests/bench/bench_folder.o $(B)/libgraft.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BENCH_API): $(B)/tests/bench/bench_api.o
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Each test binary runs every test in its own process with a timeout (Criterion);
# the outer timeout catches a binary that hangs before its tests start.
test: deps
	@$(MAKE) --no-print-directory all $(TEST_BIN)
	@fail=0; for t in $(TEST_BIN); do \
		echo "== $$t"; \
		GRAFT_TEST_DATA=$(CURDIR)/tests/fixtures timeout 600 $$t --jobs 1 || fail=1; \
	done; \
	exit $$fail

bench: deps
	@$(MAKE) --no-print-directory $(BENCH_BIN) $(BENCH_CAND) $(BENCH_API) $(BENCH_FOLDER) all
	@sh tests/bench/run.sh $(BENCH_BIN)
	@echo "== a candidate's fixed cost (default space, 300 steps, Fashion-MNIST)"
	@$(BENCH_CAND)
	@echo "== graftd API latency while workers train"
	@$(BENCH_API)
	@echo "== image folders: decoding, finding again, loading"
	@$(BENCH_FOLDER)
	@echo "== the dashboard in Chromium with a job of 5,000 candidates"
	@sh tests/bench/dashboard.sh

demo: deps
	@$(MAKE) --no-print-directory all
	@deploy/demo.sh

# Regenerates the PyTorch reference fixtures (needs python3-torch).
fixtures:
	/usr/bin/python3 tests/fixtures/make_fixtures.py tests/fixtures
	/usr/bin/python3 tests/fixtures/make_safetensors.py tests/fixtures
	/usr/bin/python3 tests/fixtures/make_net_fixture.py tests/fixtures

clean:
	rm -rf $(B) bin

-include $(shell find $(B) -name '*.d' 2>/dev/null)
include tests/fuzz/fuzz.mk
