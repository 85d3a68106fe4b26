#!/bin/sh
# tests/bench/headline.sh - issue 12's headline benchmark (a benchmark, not a
# test): what graft hands a user per CPU-hour on Fashion-MNIST, beside what
# the parts are worth and what a person gets by hand.
#
#   tests/bench/headline.sh [PART...]        default: every part, in order
#
# Parts (each a `graft search` job in its own store, so a stopped run goes on
# where it stopped when the same command runs again):
#   headline  the job a user would submit: multi-fidelity evolution for at
#             most SEARCH_CPU CPU-hours, then the final stage (top 2, graft:
#             best: three trainings of FINAL_STEPS, about 0.22 CPU-hours per
#             1000 steps of batch 128 on this space), 4 CPU-hours in all
#   random    random search, flat 300-step budget     } ROW_CPU CPU-hours of
#   flat      regularized evolution, flat 300 steps     } search each, then the
#             (issue 4's setting: children inherit)     } same short final stage
#   mf        multi-fidelity regularized evolution      } (top 2, 1500 steps)
#             (rungs 100, 300, 900; eta 3)              }
#   mf4       the same with cheaper rungs (30, 120, 480; eta 4)
#   netm      examples/netm.yaml trained with the headline's final recipe
#   resnet    examples/resnet-small.yaml, the same
#
# Budgets are CPU time (search.max_cpu), which other load cannot cut short;
# still, measure on a quiet machine.  Results: tests/bench/results/headline-*.txt
# and a summary table on stdout.  Environment: HEADLINE_DIR (stores, default
# /work/headline-data), ROW_CPU (default 1h), SEARCH_CPU (default 1.5h),
# FINAL_STEPS (default 3500: 1.5 + 3 x 0.78 = 3.8 CPU-hours; the first run,
# at 1.6 h and 6000 steps, measured 1.33 CPU-hours per final training, which
# would have come to 5.6 in all).
set -eu
cd "$(dirname "$0")/../.."
DIR=${HEADLINE_DIR:-/work/headline-data}
ROW_CPU=${ROW_CPU:-1h}
SEARCH_CPU=${SEARCH_CPU:-1.5h}
FINAL_STEPS=${FINAL_STEPS:-3500}
OUT=tests/bench/results
FMNIST=/usr/share/datasets/fashion-mnist
mkdir -p "$DIR" "$OUT"

# The headline's final recipe, shared by the hand-made baselines.
FINAL_RECIPE="steps: $FINAL_STEPS, batch: 128, lr: 0.1, augment: [crop, flip]"

spec() { # name strategy search-extra train space final
	cat <<SPEC
name: $1
dataset: {dir: $FMNIST, validation: 10000}
search: {strategy: $2, population: 16, sample: 4, candidates: 100000, seed: 1, $3}
space: {$5}
train: {$4}
graft: {source: target, pretrain_steps: 1500}
final: {$6}
workers: 2
SPEC
}

run_job() { # part spec-text
	printf '%s\n' "$2" > "$DIR/$1.yaml"
	echo "== $1: $(date -u +%H:%M:%S), store $DIR/$1.db"
	bin/graft search "$DIR/$1.yaml" --db "$DIR/$1.db" --top 10 > "$OUT/headline-$1.txt" 2>&1 ||
		{ tail -5 "$OUT/headline-$1.txt"; return 1; }
	summarize "$1" "$DIR/$1.db"
}

# One row: test accuracy of the final winner, its size, the job's CPU-hours
# (search evaluations, one-time costs, final trainings), candidates
# evaluated, and how many stopped at each rung.
summarize() { # part db
	sqlite3 -separator ' ' "$2" "
	SELECT '$1', printf('%.4f', f.test_accuracy), f.params, printf('%.1f', f.flops / 1e6),
	  printf('%.2f', ((SELECT coalesce(sum(e.cpu_s), 0) FROM evaluations e JOIN candidates c
	    ON c.id = e.candidate_id WHERE e.cached = 0) + j.overhead_cpu_s +
	    (SELECT sum(cpu_s) FROM finals)) / 3600),
	  (SELECT count(DISTINCT candidate_id) FROM evaluations WHERE rung = 0 AND status = 'done'),
	  (SELECT group_concat(n, '/') FROM (SELECT r, count(*) AS n FROM (SELECT candidate_id,
	    max(rung) AS r FROM evaluations WHERE status = 'done' GROUP BY candidate_id)
	    GROUP BY r ORDER BY r))
	FROM finals f, jobs j WHERE f.winner = 1 AND j.id = f.job_id;" |
	tee -a "$OUT/headline-summary.txt"
}

# A hand-made network trained with the final recipe by `graft train`.
run_hand() { # part arch
	echo "== $1: $(date -u +%H:%M:%S)"
	sed "s/^train: .*/train: {$FINAL_RECIPE, momentum: 0.9, nesterov: false,/; /^        weight_decay/d" \
		"$2" > "$DIR/$1.yaml"
	echo "        weight_decay: 0.0005, schedule: cosine, warmup: 200, seed: 1}" >> "$DIR/$1.yaml"
	/usr/bin/time -f "%U %S" -o "$DIR/$1.time" bin/graft train "$DIR/$1.yaml" --threads 2 \
		--out "$DIR/$1.safetensors" > "$OUT/headline-$1.txt" 2>&1
	acc=$(sed -n 's/^test accuracy \([0-9.]*\).*/\1/p' "$OUT/headline-$1.txt")
	cost=$(sed -n 's/^training .*: \([0-9]*\) parameters, \([0-9.]*\) MFLOP.*/\1 \2/p' \
		"$OUT/headline-$1.txt")
	cpu=$(awk '{ printf "%.2f", ($1 + $2) / 3600 }' "$DIR/$1.time")
	echo "$1 $acc $cost $cpu 1 -" | tee -a "$OUT/headline-summary.txt"
}

SHORT_FINAL="top: 2, steps: 1500, batch: 128, lr: 0.1, augment: [], graft: finetune"
SPACE="max_flops: 40000000"
for part in ${*:-headline random flat mf netm resnet}; do
	case $part in
	headline) run_job headline "$(spec headline evolution \
		"max_cpu: $SEARCH_CPU, fidelity: {rungs: [100, 300, 900], eta: 3, slice: 2000}" \
		"batch: 64, lr: 0.08" "$SPACE" "top: 2, $FINAL_RECIPE, graft: best")" ;;
	random) run_job random "$(spec random random "max_cpu: $ROW_CPU" \
		"steps: 300, batch: 64, lr: 0.08" "$SPACE" "$SHORT_FINAL")" ;;
	flat) run_job flat "$(spec flat evolution "max_cpu: $ROW_CPU" \
		"steps: 300, batch: 64, lr: 0.08" "$SPACE" "$SHORT_FINAL")" ;;
	mf) run_job mf "$(spec mf evolution \
		"max_cpu: $ROW_CPU, fidelity: {rungs: [100, 300, 900], eta: 3, slice: 2000}" \
		"batch: 64, lr: 0.08" "$SPACE" "$SHORT_FINAL")" ;;
	mf4) run_job mf4 "$(spec mf4 evolution \
		"max_cpu: $ROW_CPU, fidelity: {rungs: [30, 120, 480], eta: 4, slice: 2000}" \
		"batch: 64, lr: 0.08" "$SPACE" "$SHORT_FINAL")" ;;
	netm) run_hand netm examples/netm.yaml ;;
	resnet) run_hand resnet examples/resnet-small.yaml ;;
	*) echo "headline.sh: unknown part '$part'" >&2; exit 2 ;;
	esac
done
echo
echo "part test-acc params MFLOPs CPU-h candidates stopped-at-rungs"
cat "$OUT/headline-summary.txt"
