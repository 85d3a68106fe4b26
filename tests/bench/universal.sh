#!/bin/sh
# tests/bench/universal.sh - issue 16's measurement (a benchmark, not a test):
# what a graft pretrained on each source does for random candidates of the
# default space, on two domains it was not pretrained on:
#   fmnist   Fashion-MNIST (28x28 grey)
#   glyphs   characters of the fonts the glyphs source never saw
#            (`graft glyphs --fonts-part 2`, 20,000 + 5,000 at 28x28)
# Each row: graft ablation, CANDIDATES candidates, 150 and 600 steps, paired
# 95% confidence intervals against `none`; `target` (pretrained on the
# domain itself) is the reference a universal graft has to approach.
#
#   tests/bench/universal.sh [DOMAIN...]     default: fmnist glyphs
#
# Environment: UNIVERSAL_DIR (default build/bench/universal), CANDIDATES
# (default 16).  Results in tests/bench/results/issue16-<domain>.txt and .jsonl.
# About 2.5 CPU-hours per domain on 2 cores: run it on a quiet machine.
set -eu
cd "$(dirname "$0")/../.."
DIR=${UNIVERSAL_DIR:-build/bench/universal}
N=${CANDIDATES:-16}
SOURCES=none,random,synthetic,glyphs,rotations,exemplars,mixture,target
OUT=tests/bench/results
mkdir -p "$DIR" "$OUT"
for domain in ${*:-fmnist glyphs}; do
	case $domain in
	fmnist) data=/usr/share/datasets/fashion-mnist; val=10000 ;;
	glyphs)
		data=$DIR/glyphs-heldout
		[ -f "$data/train-images-idx3-ubyte" ] ||
			bin/graft glyphs --out "$data" --fonts-part 2 --train 20000 --test 5000
		val=5000 ;;
	*) echo "universal.sh: unknown domain '$domain'" >&2; exit 2 ;;
	esac
	echo "== $domain: $(date -u +%H:%M:%S)"
	bin/graft ablation --data "$data" --validation "$val" --candidates "$N" --steps 150 \
		--long 600 --sources "$SOURCES" --out "$OUT/issue16-$domain.jsonl" \
		| tee "$OUT/issue16-$domain.txt"
done
