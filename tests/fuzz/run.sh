#!/bin/sh
# Runs one libFuzzer harness for `make fuzz` (see fuzz.mk) and prints one line
# about it: runs done, runs per second, corpus size, and whether it found
# anything.
#
#   sh tests/fuzz/run.sh build-fuzz NAME MAX_LEN SECONDS
#
# The harness build-fuzz/fuzz_NAME runs SECONDS on build-fuzz/corpus/NAME,
# into which the seeds of tests/fuzz/corpus/NAME are copied first.  Its whole
# output goes to build-fuzz/fuzz_NAME.log.  A crash, leak, undefined behaviour,
# timeout (10 s for one input) or out-of-memory (2 GB) leaves its input in
# build-fuzz/artifacts/NAME/ (emptied at the start of each run), shows the
# report, and makes the exit status 1.
set -u

fb=${1:?usage: sh tests/fuzz/run.sh BUILD_DIR NAME MAX_LEN SECONDS}
name=${2:?} maxlen=${3:?} secs=${4:?}
bin=$fb/fuzz_$name
corpus=$fb/corpus/$name
art=$fb/artifacts/$name
log=$fb/fuzz_$name.log

mkdir -p "$corpus" "$art" || exit 1
rm -f "$art"/*
if [ -d "tests/fuzz/corpus/$name" ]; then
	cp tests/fuzz/corpus/"$name"/* "$corpus"/ || exit 1
fi

UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1} "$bin" \
	-max_total_time="$secs" -max_len="$maxlen" -timeout=10 -rss_limit_mb=2048 \
	-artifact_prefix="$art/" -print_final_stats=1 "$corpus" >"$log" 2>&1
rc=$?

stat() { sed -n "s/^stat::$1: *//p" "$log" | tail -n 1; }
execs=$(stat number_of_executed_units)
rate=$(stat average_exec_per_sec)
inputs=$(find "$corpus" -type f | wc -l)
kb=$(( $(find "$corpus" -type f -exec cat {} + | wc -c) / 1024 ))
found=$(find "$art" -type f | sort)
summary="fuzz $name: ${execs:-?} execs, ${rate:-?} exec/s, corpus $inputs inputs ($kb KB)"

if [ "$rc" -eq 0 ] && [ -z "$found" ]; then
	echo "$summary, no crash"
	exit 0
fi
echo "$summary, FOUND (exit $rc): ${found:-no input saved}"
# The report: from the sanitizer's or libFuzzer's first complaint on.
awk '/ERROR: |runtime error|deadly signal|ALARM|out-of-memory|abort/ { on = 1 }
     on && n++ < 60' "$log" | sed 's/^/    /'
echo "    (whole log: $log)"
exit 1
