#!/bin/sh
# The `make bench` driver: graft's training throughput beside PyTorch's.
#
#   sh tests/bench/run.sh build/bench/bench_train
#
# Runs the C benchmark given as $1 (lines `graft net=S batch=64 threads=2
# img_s=... mflop_per_img=...` plus `#` comments, passed through), then
# tests/bench/torch_bench.py under Debian's /usr/bin/python3 if it has torch, then
# a table joining the two by (net, batch).
#
# Environment:
#   BENCH_QUICK=1     shorter measurements (about 1 s each: --seconds 1 to the C
#                     binary, --quick to the PyTorch side)
#   BENCH_THREADS=T   threads for both (--threads T); default: the C binary's own
#                     default, and for PyTorch the threads= of graft's lines, else 2
#   BENCH_PYTHON=P    the Python with torch (default /usr/bin/python3)
#
# PyTorch runs with glibc's malloc told to keep big buffers (no mmap/munmap and
# page faults every step), which makes it 1.2-2x faster and steadier: the fair
# setting to compare against.  See docs in torch_bench.py.
set -u

bin=${1:?usage: sh tests/bench/run.sh PATH/TO/bench_train}
here=$(dirname "$0")
py=${BENCH_PYTHON:-/usr/bin/python3}
torch_tunables=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=17179869184

tmp=$(mktemp -d "${TMPDIR:-/tmp}/graft-bench.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM
: >"$tmp/graft.out"
: >"$tmp/torch.out"

quick=
case ${BENCH_QUICK:-} in ''|0) ;; *) quick=--quick ;; esac
# Arguments for the C binary (set -- keeps them as separate words in POSIX sh).
set -- ${quick:+--seconds 1} ${BENCH_THREADS:+--threads "$BENCH_THREADS"}

cpu=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo 2>/dev/null | head -n 1)
echo "== graft training benchmark"
echo "# date: $(date '+%Y-%m-%d %H:%M:%S %z')"
echo "# nproc: $(nproc 2>/dev/null || echo '?')"
echo "# cpu: ${cpu:-unknown}"
echo "# load average: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null) (other load skews the numbers)"
echo "# OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-(unset)} OPENBLAS_L2_SIZE=${OPENBLAS_L2_SIZE:-(unset)}${quick:+ (BENCH_QUICK: short measurements)}"

status=0

# The value of key=value in a result line, for the tables' awk programs.
awk_field='
function field(line, key,    n, i, a) {
	n = split(line, a, /[ \t]+/)
	for (i = 1; i <= n; i++)
		if (index(a[i], key "=") == 1)
			return substr(a[i], length(key) + 2)
	return ""
}
'

echo
echo "== graft ($bin${1:+ $*})"
if [ -x "$bin" ]; then
	{ "$bin" "$@"; echo $? >"$tmp/graft.rc"; } 2>&1 | tee "$tmp/graft.out"
	rc=$(cat "$tmp/graft.rc" 2>/dev/null || echo 1)
	if [ "$rc" -ne 0 ]; then
		echo "!! $bin exited with status $rc"
		status=1
	fi
	# The reference path (im2col + OpenBLAS sgemm) beside the default oneDNN one.
	echo "== graft again, GRAFT_ENGINE=reference"
	GRAFT_ENGINE=reference "$bin" "$@" 2>&1 | grep -v '^# peak' | tee -a "$tmp/graft.out"
	# The machines pin OpenBLAS to its Haswell (AVX2) kernels; a second run
	# with the pin lifted shows what the AVX-512 kernels would give.  Each
	# line names its kernels, so the table keeps the two apart.
	if [ -n "${OPENBLAS_CORETYPE:-}" ]; then
		echo "== graft again, OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset"
		env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE GRAFT_ENGINE=reference "$bin" "$@" 2>&1 |
			tee -a "$tmp/graft.out"
	fi
	if ! grep -q '^graft ' "$tmp/graft.out"; then
		echo "!! $bin printed no result lines"
		status=1
	fi
else
	echo "!! $bin not found or not executable (build it with: make bench)"
	status=1
fi

# Give PyTorch the same threads and batch sizes graft measured.
threads=${BENCH_THREADS:-$(sed -n 's/^graft .*[[:space:]]threads=\([0-9][0-9]*\).*/\1/p' "$tmp/graft.out" | head -n 1)}
threads=${threads:-2}
batches=$(sed -n 's/^graft .*[[:space:]]batch=\([0-9][0-9]*\).*/\1/p' "$tmp/graft.out" |
	awk '!seen[$0]++' | paste -sd, -)
batches=${batches:-64,128}

echo
echo "== PyTorch ($py, $threads threads, GLIBC_TUNABLES=$torch_tunables)"
if "$py" -c 'import torch' >/dev/null 2>&1; then
	{ GLIBC_TUNABLES=$torch_tunables "$py" "$here/torch_bench.py" \
		--threads "$threads" --batch "$batches" $quick; echo $? >"$tmp/torch.rc"; } 2>&1 |
		tee "$tmp/torch.out"
	rc=$(cat "$tmp/torch.rc" 2>/dev/null || echo 1)
	[ "$rc" -eq 0 ] || echo "!! torch_bench.py exited with status $rc"
else
	echo "!! PyTorch not installed: install python3-torch to compare (apt-get install python3-torch)"
fi

echo
echo "== graft vs PyTorch (training images/s; GFLOP/s = img/s x MFLOP per image / 1000)"
awk "$awk_field"'
# One row per graft result line (several lines for one (net, batch), e.g. two
# OpenBLAS settings, each get a row, told apart by their extra key=value fields),
# then a row for each (net, batch) only PyTorch measured.
function extras(line,    n, i, a, out) {
	n = split(line, a, /[ \t]+/); out = ""
	for (i = 2; i <= n; i++)
		if (a[i] !~ /^(net|batch|threads|img_s|mflop_per_img)=/ && a[i] != "")
			out = out (out == "" ? "" : " ") a[i]
	return out
}
function num(v, fmt) { return v == "" ? "-" : sprintf(fmt, v) }
$1 == "graft" || $1 == "torch" {
	net = field($0, "net"); batch = field($0, "batch")
	if (net == "" || batch == "") next
	k = net SUBSEP batch
	if ($1 == "graft") {
		n = ++ng
		gk[n] = k; gnet[n] = net; gbat[n] = batch
		gips[n] = field($0, "img_s"); gmf[n] = field($0, "mflop_per_img")
		gext[n] = extras($0); hasg[k] = 1
	} else if (!(k in tips)) {
		tk[++nt] = k; tnet[k] = net; tbat[k] = batch
		tips[k] = field($0, "img_s"); tmf[k] = field($0, "mflop_per_img")
	}
}
function row(net, batch, g, gm, t, tm, ext,    ratio, gg, tg) {
	ratio = (g != "" && t != "" && t + 0 > 0) ? sprintf("%.2f", g / t) : "-"
	gg = (g != "" && gm != "") ? g * gm / 1000 : ""
	tg = (t != "" && tm != "") ? t * tm / 1000 : ""
	printf fmt, net, batch, num(g, "%.1f"), num(t, "%.1f"), ratio,
		num(gg, "%.1f"), num(tg, "%.1f"), ext == "" ? "" : "  " ext
}
END {
	if (ng + nt == 0) { print "(no results to compare)"; exit }
	fmt = "%-4s %6s %12s %12s %12s %13s %13s%s\n"
	printf fmt, "net", "batch", "graft img/s", "torch img/s", "graft/torch",
		"graft GFLOP/s", "torch GFLOP/s", ""
	for (i = 1; i <= ng; i++) {
		k = gk[i]
		row(gnet[i], gbat[i], gips[i], gmf[i], tips[k], tmf[k], gext[i])
	}
	for (i = 1; i <= nt; i++)
		if (!(tk[i] in hasg))
			row(tnet[tk[i]], tbat[tk[i]], "", "", tips[tk[i]], tmf[tk[i]], "")
}' "$tmp/graft.out" "$tmp/torch.out"

echo
echo "== inference (evaluation mode, images/s)"
awk "$awk_field"'
$1 == "graft-infer" { g[++ng] = $0 }
$1 == "torch-infer" { t[field($0, "net") SUBSEP field($0, "batch")] = field($0, "img_s") }
END {
	fmt = "%-4s %6s %12s %12s %12s  %s\n"
	printf fmt, "net", "batch", "graft img/s", "torch img/s", "graft/torch", ""
	for (i = 1; i <= ng; i++) {
		net = field(g[i], "net"); b = field(g[i], "batch"); v = field(g[i], "img_s")
		tv = t[net SUBSEP b]
		printf fmt, net, b, v, tv == "" ? "-" : tv,
			tv == "" ? "-" : sprintf("%.2f", v / tv), "engine=" field(g[i], "engine")
	}
}' "$tmp/graft.out" "$tmp/torch.out"

echo
echo "== the conv-only ceiling (the net's convolutions alone on oneDNN, forward and both backwards)"
awk "$awk_field"'
$1 == "graft-ceiling" {
	printf "%-4s %6s  conv-only %9.1f img/s; the whole step at %4.1f%% of it\n",
		field($0, "net"), field($0, "batch"), field($0, "conv_only_img_s"),
		100 * field($0, "step_fraction")
}' "$tmp/graft.out"

exit $status
