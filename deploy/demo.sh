#!/bin/sh
# deploy/demo.sh - graft end to end, as `make demo` runs it: start graftd on a
# temporary data directory, submit a short Fashion-MNIST search, watch it,
# print the leaderboard, export the best architecture and its weights, train
# it a little further with `graft train`, and stop the daemon.
set -eu

cd "$(dirname "$0")/.."
DATA=$(mktemp -d /tmp/graft-demo.XXXXXX)
export GRAFT_SOCKET="$DATA/graftd.sock"
export GRAFT_CACHE_DIR="$DATA/cache"
OUT=${GRAFT_DEMO_OUT:-/tmp/graft-demo}
mkdir -p "$OUT"

bin/graftd --data-dir "$DATA" --workers 2 --log-file "$DATA/graftd.log" &
DAEMON=$!
stop() { kill -TERM "$DAEMON" 2>/dev/null && wait "$DAEMON" 2>/dev/null || true; }
trap stop EXIT INT TERM
for i in $(seq 50); do [ -S "$GRAFT_SOCKET" ] && break; sleep 0.1; done

echo "== graftd is up (data in $DATA)"
bin/graft health
echo
echo "== submitting examples/demo.yaml: 24 candidates, regularized evolution, target graft"
JOB=$(bin/graft submit examples/demo.yaml --json | sed -n 's/.*"id": *\([0-9]*\).*/\1/p')
bin/graft watch "$JOB"
echo
echo "== leaderboard"
bin/graft leaderboard "$JOB" --limit 5
echo
bin/graft status "$JOB"
echo
echo "== exporting the best architecture and its weights to $OUT"
bin/graft export "$JOB" -o "$OUT/best.yaml" --weights "$OUT/best.safetensors"
cat "$OUT/best.yaml"
echo
echo "== training it further from the exported weights (300 steps), then the test set"
bin/graft train "$OUT/best.yaml" --init "$OUT/best.safetensors" \
	--graft-file "$OUT/best.safetensors" --graft frozen --steps 300 \
	--validation 5000 --out "$OUT/best-trained.safetensors" | tee "$OUT/train.log"
ACC=$(sed -n 's/^test accuracy \([0-9.]*\).*/\1/p' "$OUT/train.log")
echo
echo "== the same network in PyTorch, built from the YAML alone, with the exported weights"
/usr/bin/python3 tests/interop/check_export.py "$OUT/best.yaml" \
	"$OUT/best-trained.safetensors" --expect "$ACC" || [ $? -eq 77 ]
echo
echo "== stopping graftd"
stop
trap - EXIT INT TERM
echo "done: $OUT/best.yaml, $OUT/best.safetensors, $OUT/best-trained.safetensors"
