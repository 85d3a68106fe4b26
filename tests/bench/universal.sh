#!/bin/sh
# tests/bench/universal.sh - issue 16's measurement (a benchmark, not a test):
# what a graft pretrained on each source does for random candidates of the
# default space, on two domains it was not pretrained on:
#   fmnist   Fashion-MNIST (28x28 grey)
#   glyphs   characters of the fonts the glyphs source never saw
#            (`graft glyphs --fonts-part 2`, 20,000 + 5,000 at 28x28)
#   colour   the same in RGB (`graft glyphs --colour`): grey vs RGB
# Each row: graft ablation, CANDIDATES candidates, 150 steps (and LONG), paired
# 95% confidence intervals against `none`; `target` (pretrained on the
# domain itself) is the reference a universal graft has to approach.
#
#   tests/bench/universal.sh DOMAIN [TAG]
#
# Environment: SOURCES (default every source), LONG (steps of the long run,
# default 600; 0: none), CANDIDATES (default 16), UNIVERSAL_DIR (default
# build/bench/universal).  Results in tests/bench/results/issue16-DOMAIN[-TAG]
# .txt and .jsonl.  A source costs about 4 CPU-minutes at 150 steps and 17
# more with the 600-step run: run it on a quiet machine.
set -eu
cd "$(dirname "$0")/../.."
DIR=${UNIVERSAL_DIR:-build/bench/universal}
N=${CANDIDATES:-16}
LONG=${LONG:-600}
SOURCES=${SOURCES:-none,random,synthetic,textures,glyphs,rotations,exemplars,mixture,universal,target}
OUT=tests/bench/results
domain=${1:?usage: universal.sh fmnist|glyphs|colour [TAG]}
name=issue16-$domain${2:+-$2}
mkdir -p "$DIR" "$OUT"
case $domain in
fmnist) data=/usr/share/datasets/fashion-mnist; val=10000 ;;
glyphs)
	data=$DIR/glyphs-heldout
	[ -f "$data/train-images-idx3-ubyte" ] ||
		bin/graft glyphs --out "$data" --fonts-part 2 --train 20000 --test 5000
	val=5000 ;;
colour)
	data=$DIR/glyphs-colour/glyphs.images
	[ -f "$data" ] ||
		bin/graft glyphs --out "$DIR/glyphs-colour" --colour --fonts-part 2 --train 20000 \
			--test 5000
	val=5000 ;;
*) echo "universal.sh: unknown domain '$domain'" >&2; exit 2 ;;
esac
long=
[ "$LONG" = 0 ] || long="--long $LONG"
echo "== $domain ($SOURCES): $(date -u +%H:%M:%S)"
# shellcheck disable=SC2086 # $long is two words or none
bin/graft ablation --data "$data" --validation "$val" --candidates "$N" --steps 150 \
	$long --sources "$SOURCES" --out "$OUT/$name.jsonl" | tee "$OUT/$name.txt"
echo "== done: $(date -u +%H:%M:%S)"
