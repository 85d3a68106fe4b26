#!/bin/sh
# nn/grafts/make-universal.sh - makes the universal graft graft ships, used by
# `graft: {source: universal}`: two conv3x3 + BN + ReLU layers of 16 channels,
# pretrained on images graft draws itself from what Debian ships (README.md
# here says which source and why), once for grey images
# (universal-grey.safetensors) and once for RGB (universal-rgb.safetensors).
#
#   nn/grafts/make-universal.sh [SOURCE [STEPS]]   default: glyphs 1500
#
# Deterministic: the same binaries, fonts, photos and threads make the same
# tensors (their sha256 are in README.md; test_universal checks the files
# against it).  The threads are part of it (the engine's reductions split by
# thread): the shipped grey file was made with 2, the RGB one with 1, both on
# an AVX-512 machine (an AVX2 one runs other kernels and makes other bits).
set -eu
cd "$(dirname "$0")/../.."
SOURCE=${1:-glyphs}
STEPS=${2:-1500}
make --no-print-directory bin/graft
for kind in grey:1:2 rgb:3:1; do
	name=${kind%%:*} rest=${kind#*:}
	bin/graft pretrain --source "$SOURCE" --input "${rest%:*}x28x28" --steps "$STEPS" \
		--batch 128 --lr 0.05 --seed 1 --threads "${rest#*:}" \
		--out "nn/grafts/universal-$name.safetensors"
done
