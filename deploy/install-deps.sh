#!/bin/sh
# Installs every Debian package graft needs to build, test, benchmark and run
# (sqlite3, the command line, is what tests/bench/headline.sh reads stores with).
# Idempotent: packages already present are not touched, so it is cheap to call
# from `make demo`, `make test` and .ci/run.
set -eu

PACKAGES="
build-essential pkg-config
libopenblas-dev zlib1g-dev
libuv1-dev libsqlite3-dev libyaml-dev libcurl4-openssl-dev
libjansson-dev libhttp-parser-dev nettle-dev
libdnnl-dev
libspng-dev libjpeg62-turbo-dev libarchive-dev
protobuf-c-compiler libprotobuf-c-dev libonnx-dev python3-onnx
chromium
libcriterion-dev
sqlite3
dataset-fashion-mnist
python3-torch python3-yaml python3-numpy
"
# Glyphs to pretrain a graft from: FreeType and the Noto fonts (hundreds of
# scripts) besides DejaVu.
PACKAGES="$PACKAGES libfreetype-dev fonts-noto-core fonts-dejavu-core"
# Photos to cut patches from: MATE's wallpapers, scikit-image's sample images.
PACKAGES="$PACKAGES mate-backgrounds python3-skimage"
# A one-node Slurm cluster for the Slurm executor's tests (deploy/slurm/).
PACKAGES="$PACKAGES slurmctld slurmd slurm-client munge"
# clang with its libFuzzer and sanitizer runtimes: for `make fuzz`.
PACKAGES="$PACKAGES clang libclang-rt-14-dev"

# Node runs ONNX Runtime (npm's onnxruntime-node) for the ONNX export's test;
# a machine with a Node of its own (NodeSource's ships npm) keeps it.
command -v npm > /dev/null 2>&1 || PACKAGES="$PACKAGES nodejs npm"
# PyTorch checks that an exported network means the same outside graft (the
# interoperability test and the end of `make demo`; both say so and skip when
# it is missing), regenerates the reference fixtures and runs the benchmark's
# side-by-side comparison.  GRAFT_WITHOUT_TORCH=1 leaves it out.
[ -n "${GRAFT_WITHOUT_TORCH:-}" ] &&
	PACKAGES=$(echo "$PACKAGES" | sed 's/python3-torch python3-yaml python3-numpy//')

missing=""
for p in $PACKAGES; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
# The npm packages of the tests, pinned by their lockfiles: tests/onnx (ONNX
# Runtime, whose install script only fetches GPU libraries: the CPU runtime
# is in the package) and tests/browser (puppeteer-core, which drives Debian's
# Chromium and downloads no browser).  No install scripts are run.
npm_packages() {
	for d in onnx/onnxruntime-node browser/puppeteer-core; do
		[ -d "tests/${d%%/*}/node_modules/${d#*/}" ] && continue
		echo "install-deps: npm ci in tests/${d%%/*}" >&2
		(cd "tests/${d%%/*}" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
	done
}

cd "$(dirname "$0")/.."
if [ -z "$missing" ]; then
	npm_packages
	exit 0
fi

echo "install-deps: installing:$missing" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
# shellcheck disable=SC2086
$SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends $missing
npm_packages
