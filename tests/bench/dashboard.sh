#!/bin/sh
# tests/bench/dashboard.sh - the dashboard with a job of 5,000 candidates (a
# benchmark, not a test; issue 14): graftd runs a real random search of
# CANDIDATES candidates, each trained 2 steps on Fashion-MNIST (the page's
# cost grows with the number of candidates, not with their training), then
# tests/browser/measure.js opens the job's page in headless Chromium and
# reports the time to the first full render, the browser's memory, the cost
# of a poll that finds nothing new, and of a click that shows a curve.
#
#   tests/bench/dashboard.sh            DASH_DIR (default build/bench/dashboard),
#                                       CANDIDATES (default 5000)
#
# The job is kept in DASH_DIR/graft.db: a second run only measures.  Measure
# on a quiet machine: the render times are wall-clock.
set -eu
cd "$(dirname "$0")/../.."
DIR=$(mkdir -p "${DASH_DIR:-build/bench/dashboard}" && cd "${DASH_DIR:-build/bench/dashboard}" && pwd)
N=${CANDIDATES:-5000}
OUT=tests/bench/results/issue14-dashboard.txt
mkdir -p tests/bench/results

bin/graftd --data-dir "$DIR" --workers 2 --http 127.0.0.1:0 --log-file "$DIR/graftd.log" &
GRAFTD=$!
trap 'kill $GRAFTD 2>/dev/null; wait $GRAFTD 2>/dev/null' EXIT INT TERM
export GRAFT_SOCKET="$DIR/graftd.sock"
port=
for _ in $(seq 100); do
	port=$(bin/graft --json health 2>/dev/null | tr -d ' \n' |
	       sed -n 's/.*"http":{[^}]*"port":\([0-9]*\).*/\1/p')
	[ -n "$port" ] && break
	sleep 0.1
done
[ -n "$port" ] || { echo "dashboard.sh: graftd did not start (see $DIR/graftd.log)" >&2; exit 1; }

job=$(bin/graft jobs 2>/dev/null | awk '$2 == "dash-'"$N"'" { print $1; exit }')
if [ -z "$job" ]; then
	cat > "$DIR/spec.yaml" <<SPEC
name: dash-$N
dataset: {dir: /usr/share/datasets/fashion-mnist, validation: 500}
search: {strategy: random, candidates: $N, seed: 1}
space: {max_blocks: 6, widths: [8, 16, 24, 32], max_flops: 3000000}
train: {steps: 2, batch: 16}
graft: {source: none}
SPEC
	job=$(bin/graft submit "$DIR/spec.yaml" | sed -n 's/^job \([0-9]*\).*/\1/p')
fi
echo "== job $job: $N candidates ($(date -u +%H:%M:%S))"
bin/graft watch "$job" > /dev/null
node tests/browser/measure.js "http://127.0.0.1:$port" "$job" | tee "$OUT"
