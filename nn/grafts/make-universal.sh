#!/bin/sh
# nn/grafts/make-universal.sh - makes the universal graft graft ships
# (universal.safetensors, used by `graft: {source: universal}`): two conv3x3
# + BN + ReLU layers of 16 channels for RGB images, pretrained on images graft
# draws itself from what Debian ships (README.md says which source and why),
# with the same budget and seed as `graft ablation` pretrains its sources.
# Grey images get it with its first layer summed over the three colours.
#
#   nn/grafts/make-universal.sh [SOURCE]      default: the shipped one's
#
# Deterministic: the same binaries and packages make the same tensors (their
# sha256 is in README.md, and test_universal checks the file against it).
set -eu
cd "$(dirname "$0")/../.."
SOURCE=${1:-mixture}
make --no-print-directory bin/graft
bin/graft pretrain --source "$SOURCE" --input 3x28x28 --steps 1500 --batch 128 --lr 0.05 \
	--seed 1 --out nn/grafts/universal.safetensors
