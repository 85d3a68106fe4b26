#!/bin/sh
# deploy/demo.sh - graft end to end, as `make demo` runs it: start graftd on a
# temporary data directory, submit a short Fashion-MNIST search with a final
# stage, watch it, print the leaderboard and the final model, export that
# model and its weights, check them in PyTorch, and stop the daemon.
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
echo "== submitting examples/demo.yaml: a 100-second multi-fidelity evolution, then the"
echo "   best architecture trained to the end and scored once on the test split"
JOB=$(bin/graft submit examples/demo.yaml --json | sed -n 's/.*"id": *\([0-9]*\).*/\1/p')
bin/graft watch "$JOB"
echo
echo "== leaderboard of the search (validation accuracy at the rung reached)"
bin/graft leaderboard "$JOB" --limit 5
echo
bin/graft status "$JOB" | tee "$OUT/status.txt"
ACC=$(awk '/<- winner/ { print $6 }' "$OUT/status.txt")
echo
echo "== exporting the final model and its weights to $OUT"
bin/graft export "$JOB" -o "$OUT/best.yaml" --weights "$OUT/best.safetensors"
cat "$OUT/best.yaml"
echo
echo "== the same network in PyTorch, built from the YAML alone, with the exported weights"
/usr/bin/python3 tests/interop/check_export.py "$OUT/best.yaml" \
	"$OUT/best.safetensors" --expect "$ACC" || [ $? -eq 77 ]
echo
echo "== stopping graftd"
stop
trap - EXIT INT TERM
echo "done: test accuracy $ACC; the model is $OUT/best.yaml with $OUT/best.safetensors"
