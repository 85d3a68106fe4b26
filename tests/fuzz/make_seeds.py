#!/usr/bin/python3
"""Writes the seed corpora of the fuzz harnesses (see fuzz.mk).

    python3 tests/fuzz/make_seeds.py        (from the repository root)

Each harness gets a few valid inputs, taken from the repository's own examples
where it has them, and a few near-valid ones (one field wrong), so that the
fuzzer starts next to the paths that matter.  The output is committed; run
this again only to change the seeds.  Inputs that once crashed a parser are
added by hand, as tests/fuzz/corpus/NAME/regress-*, and are kept.

The leading bytes some harnesses read before the input proper are written out
here; see each fuzz_NAME.c for what they mean.
"""
import gzip
import json
import os
import shutil
import struct

OUT = "tests/fuzz/corpus"


def put(name, seed, data):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, seed), "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)


def copy(name, path):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    shutil.copyfile(path, os.path.join(d, os.path.basename(path)))


# ---- HTTP: first byte is the piece size the stream arrives in (0: at once) ----

def http_seeds():
    spec = open("examples/demo.yaml").read()
    post = ("POST /v1/jobs HTTP/1.1\r\nHost: graftd\r\nContent-Type: application/yaml\r\n"
            "Content-Length: %d\r\n\r\n%s" % (len(spec), spec))
    body = '{"dataset": {"dir": "/data"}, "search": {"candidates": 7}}'
    json_post = ("POST /v1/jobs HTTP/1.1\r\nContent-Type: application/json\r\n"
                 "Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
    seeds = {
        "get-health": "\0GET /v1/health HTTP/1.1\r\nHost: graftd\r\n\r\n",
        "get-leaderboard": "\0GET /v1/jobs/1/leaderboard?limit=10&sort=accuracy&rank "
                           "HTTP/1.1\r\nConnection: keep-alive\r\n\r\n",
        "post-yaml": "\0" + post,
        "post-json-close": "\0" + json_post,
        "post-in-7-byte-pieces": "\x07" + post,
        "pipelined-in-1-byte-pieces": "\x01GET /v1/jobs HTTP/1.1\r\n\r\n"
                                      "GET /v1/metrics HTTP/1.1\r\n\r\n"
                                      "POST /v1/jobs/1/pause HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
        "http10": "\0GET /v1/jobs/1 HTTP/1.0\r\n\r\n",
        "chunked": "\x05POST /v1/jobs HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "5\r\nhello\r\n0\r\n\r\n",
        "near-http2": "\0GET /v1/health HTTP/2.0\r\n\r\n",
        "near-no-colon": "\0GET /v1/health HTTP/1.1\r\nNo colon here\r\n\r\n",
        "near-body-too-big": "\0POST /v1/jobs HTTP/1.1\r\nContent-Length: 1048577\r\n\r\n",
        "near-absolute-url": "\0GET http://h:1/v1/health?x=1#f HTTP/1.1\r\n\r\n",
        "near-star": "\0OPTIONS * HTTP/1.1\r\n\r\n",
    }
    for k, v in seeds.items():
        put("http", k, v)


# ---- job specs: YAML and JSON ---------------------------------------------------

DESIGN = """name: fmnist-evolution
dataset:
  format: idx
  train_images: /d/train-images-idx3-ubyte.gz
  train_labels: /d/train-labels-idx1-ubyte.gz
  test_images:  /d/t10k-images-idx3-ubyte.gz
  test_labels:  /d/t10k-labels-idx1-ubyte.gz
  validation: 10000
search:
  strategy: evolution
  population: 16
  sample: 4
  candidates: 200
  seed: 1
space: {max_blocks: 8, ops: [conv3, conv5, sep3, res3, pool], widths: [16, 32, 64, 96],
        max_params: 1000000}
train: {steps: 300, batch: 128, lr: 0.08, momentum: 0.9, weight_decay: 0.0005,
        augment: [crop, flip]}
graft: {source: target, channels: 16, pretrain_steps: 1500}
workers: 2
"""


def job_seeds():
    for p in ("examples/demo.yaml", "examples/search-evolution.yaml",
              "examples/search-random.yaml"):
        copy("job", p)
    put("job", "design.yaml", DESIGN)
    put("job", "design.json", json.dumps({
        "name": "fmnist-evolution",
        "dataset": {"format": "idx", "train_images": "/d/train-images-idx3-ubyte.gz",
                    "train_labels": "/d/train-labels-idx1-ubyte.gz",
                    "test_images": "/d/t10k-images-idx3-ubyte.gz",
                    "test_labels": "/d/t10k-labels-idx1-ubyte.gz", "validation": 10000},
        "search": {"strategy": "evolution", "population": 16, "sample": 4,
                   "candidates": 200, "seed": 1},
        "space": {"max_blocks": 8, "ops": ["conv3", "conv5", "sep3", "res3", "pool"],
                  "widths": [16, 32, 64, 96], "max_params": 1000000},
        "train": {"steps": 300, "batch": 128, "lr": 0.08, "momentum": 0.9,
                  "weight_decay": 0.0005, "augment": ["crop", "flip"]},
        "graft": {"source": "target", "channels": 16, "pretrain_steps": 1500},
        "workers": 2}, indent=1))
    put("job", "json-random.json",
        '{"dataset": {"dir": "/data", "validation": 500},\n'
        ' "search": {"strategy": "random", "candidates": 7},\n'
        ' "graft": {"source": "none"}, "train": {"inherit": false}}')
    put("job", "minimal.yaml", "dataset: {dir: /data}\n")
    put("job", "urls.yaml",
        "dataset:\n"
        "  train_images: {url: \"https://example.org/train-images-idx3-ubyte.gz\",\n"
        "                 sha256: \"" + "ab" * 32 + "\"}\n"
        "  train_labels: https://example.org/train-labels-idx1-ubyte.gz\n"
        "limits: {time: 600, retries: 1}\n"
        "train: {steps: 40, inherit_steps: 20, warmup: 5, nesterov: true}\n")
    put("job", "stored-graft.yaml", "dataset: {dir: /d}\ngraft: {source: 9680454fccd931a3"
        + "0" * 48 + "}\n")
    put("job", "space.yaml", "dataset: {dir: /d}\nspace: {min_blocks: 2, max_blocks: 6, "
        "min_width: 8, max_width: 64, min_stem: 8, max_stem: 32, max_downsamples: 3}\n")
    put("job", "near-sample.yaml", "dataset: {dir: /d}\nsearch: {population: 4, sample: 9}\n")
    put("job", "near-ops.yaml", "dataset: {dir: /d}\nspace: {ops: [conv3, conv7]}\n")
    put("job", "near-url.yaml", "dataset: {train_images: {url: 'ftp://h/x'}, train_labels: /l}\n")
    put("job", "near-both.yaml", "dataset: {dir: /d, train_images: /a}\n")
    put("job", "near-alias.yaml", "dataset: &a {dir: /d}\nx: *a\n")
    put("job", "near-json-type.json", '{"dataset": {"dir": "/data"}, "workers": "two"}')


# ---- the daemon's config ----------------------------------------------------------

def config_seeds():
    copy("config", "deploy/graftd.yaml")
    put("config", "command.yaml", "workers: 2\nworker_command: [srun, -n1]\nheartbeat: 5\n")
    put("config", "all-keys.yaml",
        "data_dir: /tmp/g\nsocket: /tmp/g/s\nworkers: 4\n"
        "worker_command: [srun, --ntasks=1, --cpus-per-task=2, --quiet]\n"
        "heartbeat: 30.5\nmemory_mb: 4096\ndrain: 0\nlog_level: debug\n"
        "log_file: /var/log/graft/graftd.log\nfetch_max_mb: 10\nfetch_timeout: 60\n")
    put("config", "json.json", '{"workers": 1, "worker_command": ["nice"], "log_level": "error"}')
    put("config", "empty-command.yaml", "worker_command: []\n")
    put("config", "near-key.yaml", "wokers: 2\n")
    put("config", "near-level.yaml", "log_level: loud\n")
    put("config", "near-workers.yaml", "workers: 0\n")
    put("config", "near-command.yaml", "worker_command: srun\n")


# ---- graft-arch/1 --------------------------------------------------------------

FORMAT_EXAMPLE = """format: graft-arch/1
input: {channels: 1, height: 28, width: 28, normalize: {mean: 0.2860, std: 0.3530}}
classes: 10
stem: {op: conv, kernel: 3, channels: 24}
graft:
  channels: 16
  layers: [{kernel: 3, channels: 16}, {kernel: 3, channels: 16}]
  sha256: 9f2c00000000000000000000000000000000000000000000000000000000ABCD
  source: target
blocks:
  - {op: conv3, channels: 32, stride: 2}
  - {op: res3,  channels: 32}
  - {op: sep3,  channels: 48, skip_from: 0}
  - {op: pool,  channels: 64}
head: {op: linear}
train: {steps: 3000, batch: 128, lr: 0.08, momentum: 0.9, nesterov: true,
        weight_decay: 0.0005, schedule: cosine, augment: [crop, flip], seed: 1}
result: {val_accuracy: 0.9123, params: 104522, flops: 12000000}
"""
SMALL = ("format: graft-arch/1\ninput: {channels: 1, height: 28, width: 28}\nclasses: 10\n"
         "stem: {op: conv, kernel: 3, channels: 16}\nblocks:\n"
         "  - {op: conv3, channels: 32, stride: 2}\n  - {op: conv3, channels: 64, stride: 2}\n"
         "head: {op: linear}\n")


def arch_seeds():
    for p in ("examples/netm.yaml", "examples/nets.yaml", "examples/full.yaml",
              "tests/fixtures/net_full.yaml", "tests/fixtures/net_small.yaml"):
        copy("arch", p)
    put("arch", "format-example.yaml", FORMAT_EXAMPLE)
    put("arch", "small.yaml", SMALL)
    put("arch", "near-version.yaml", SMALL.replace("graft-arch/1", "graft-arch/2"))
    put("arch", "near-kernel.yaml", SMALL.replace("kernel: 3", "kernel: 4"))
    put("arch", "near-skip.yaml", SMALL.replace("{op: conv3, channels: 64",
                                                "{skip_from: 5, op: conv3, channels: 64"))


# ---- IDX: two bytes (big-endian) of image-file length, images, labels -----------

def idx_pair(n, h, w, classes):
    images = struct.pack(">BBBBIII", 0, 0, 8, 3, n, h, w) + bytes(
        (i * 37) % 256 for i in range(n * h * w))
    labels = struct.pack(">BBBBI", 0, 0, 8, 1, n) + bytes(i % classes for i in range(n))
    return images, labels


def idx_input(images, labels):
    return struct.pack(">H", len(images)) + images + labels


def idx_seeds():
    im, lb = idx_pair(2, 3, 3, 2)
    put("idx", "pair-2x3x3", idx_input(im, lb))
    im, lb = idx_pair(5, 4, 2, 5)
    put("idx", "pair-5x4x2", idx_input(im, lb))
    gi = gzip.compress(im, mtime=0)
    gl = gzip.compress(lb, mtime=0)
    put("idx", "pair-gz", idx_input(gi, gl))
    put("idx", "pair-gz-images-only", idx_input(gi, lb))
    put("idx", "near-count", idx_input(im, idx_pair(4, 4, 2, 5)[1]))
    put("idx", "near-truncated", idx_input(im[:-3], lb))
    put("idx", "near-trailing", idx_input(im + b"\0", lb))
    put("idx", "near-gz-cut", idx_input(gi[:-4], gl))
    put("idx", "near-type", idx_input(b"\0\0\x09\x03" + im[4:], lb))


# ---- CIFAR-10: one byte (odd: two files, the first of byte >> 1 records), data --

def cifar_record(label, seed):
    return bytes([label]) + bytes((seed * 7 + i) % 256 for i in range(3072))


def cifar_seeds():
    put("cifar", "one-record", b"\0" + cifar_record(3, 1))
    put("cifar", "two-files", b"\x03" + cifar_record(0, 2) + cifar_record(9, 3))
    put("cifar", "three-records", b"\0" + cifar_record(1, 4) + cifar_record(2, 5)
        + cifar_record(7, 6))
    put("cifar", "near-label", b"\0" + cifar_record(10, 7))
    put("cifar", "near-size", b"\0" + cifar_record(4, 8)[:3000])
    put("cifar", "near-empty-second", b"\x05" + cifar_record(5, 9))


# ---- safetensors ---------------------------------------------------------------

def safetensors(entries, meta=None, pad=True):
    """entries: (name, shape, floats) in data order."""
    header, data = {}, b""
    for name, shape, values in entries:
        raw = struct.pack("<%df" % len(values), *values)
        header[name] = {"dtype": "F32", "shape": shape,
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    if meta is not None:
        header["__metadata__"] = meta
    h = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


def safetensors_seeds():
    copy("safetensors", "tests/fixtures/torch_weights.safetensors")
    put("safetensors", "one-tensor", safetensors([("w", [2], [1.0, -2.5])]))
    put("safetensors", "meta", safetensors(
        [("stem.conv.weight", [2, 1, 1, 1], [0.5, 0.25]), ("head.bias", [3], [1, 2, 3])],
        {"format": "pt", "graft.sha256": "ab" * 32, "source": "target"}))
    put("safetensors", "scalar-and-empty", safetensors(
        [("s", [], [7.0]), ("e", [0, 3], []), ("m", [1, 2, 1, 1], [1, 2])], pad=False))
    put("safetensors", "empty-header", struct.pack("<Q", 2) + b"{}")
    put("safetensors", "near-dtype",
        safetensors([("w", [2], [1.0, 2.0])]).replace(b'"F32"', b'"F16"'))
    put("safetensors", "near-offsets",
        safetensors([("w", [2], [1.0, 2.0])]).replace(b"[0,8]", b"[0,9]"))
    put("safetensors", "near-hlen", struct.pack("<Q", 4096) + b"{}")
    put("safetensors", "near-meta",
        safetensors([("w", [1], [1.0])], {"n": 1}))
    put("safetensors", "near-dup", struct.pack("<Q", 80)
        + b'{"w":{"dtype":"F32","shape":[],"data_offsets":[0,4]},"w":{"dtype":"F32"}}   '
        + b"\0" * 4)


# ---- the worker protocol: task lines in, message lines out ----------------------

def worker_seeds():
    def line(o):
        return json.dumps(o, separators=(",", ":")) + "\n"
    arch = open("examples/nets.yaml").read()
    put("worker", "task-full", line({
        "type": "task", "id": 7,
        "data": {"dir": "/usr/share/datasets/fashion-mnist", "validation": 5000},
        "graft": {"path": "/var/lib/graft/grafts/g.safetensors", "sha256": "ab" * 32},
        "threads": 2, "arch": arch, "parent": "/var/lib/graft/weights/3.safetensors",
        "save": "/var/lib/graft/weights/7.safetensors", "report_every": 50}))
    put("worker", "task-files", line({
        "type": "task", "id": 0, "graft": None, "arch": "format: graft-arch/1\n",
        "data": {"train_images": "/d/train-images-idx3-ubyte.gz",
                 "train_labels": "/d/train-labels-idx1-ubyte.gz"}}))
    put("worker", "ready", line({"type": "ready", "pid": 4242}))
    put("worker", "ready-bare", '{"type":"ready"}\r\n')
    put("worker", "loading", line({"type": "loading", "id": 3, "what": "dataset"}))
    put("worker", "progress", line({"type": "progress", "id": 3, "step": 100, "steps": 300,
                                    "loss": 0.6931471805599453}))
    put("worker", "progress-null-loss", line({"type": "progress", "id": 3, "step": 1,
                                              "steps": 300, "loss": None}))
    put("worker", "result", line({
        "type": "result", "id": 3, "val_accuracy": 0.8375, "val_loss": 0.45,
        "train_loss": 0.41, "steps": 300, "wall_s": 12.5, "cpu_s": 24.0, "params": 104522,
        "flops": 12000000, "inherited": 6, "feature_cache": True, "images_per_s": 1536.2,
        "setup_cpu_s": 0.75}))
    put("worker", "error", line({"type": "error", "id": 3,
                                 "message": "arch: line 4, column 12: stem.kernel: \u00e9"}))
    put("worker", "error-no-task", line({"type": "error", "id": -1, "message": "bad line"}))
    put("worker", "near-accuracy", line({
        "type": "result", "id": 3, "val_accuracy": 1.5, "val_loss": 0.45,
        "train_loss": 0.41, "steps": 300, "wall_s": 12.5, "cpu_s": 24.0, "params": 1,
        "flops": 1, "inherited": 0, "feature_cache": False, "images_per_s": 1.0,
        "setup_cpu_s": 0.0}))
    put("worker", "near-unknown-key", line({"type": "loading", "id": 3, "what": "x", "why": 1}))
    put("worker", "near-both-data", line({
        "type": "task", "id": 1, "arch": "a",
        "data": {"dir": "/d", "train_images": "/i", "train_labels": "/l"}}))
    put("worker", "near-sha", line({
        "type": "task", "id": 1, "arch": "a", "data": {"dir": "/d"},
        "graft": {"path": "/g", "sha256": "AB" * 32}}))
    put("worker", "near-type", line({"type": "tasks", "id": 1}))
    put("worker", "near-json", '{"type":"ready",}\n')



def png(w, h, color_type, depth, rows):
    """A PNG of the given rows (bytes each, filter byte 0 added)."""
    import zlib

    def chunk(kind, body):
        c = struct.pack(">I", len(body)) + kind + body
        return c + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    raw = b"".join(b"\0" + r for r in rows)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth,
            color_type, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def image_seeds():
    """fuzz_image: a mode byte (bit 0: graft-images/1, bit 1: its test part,
    bit 2: three channels), then the file.  The JPEG seed (gray8x8.jpg) was
    written once by libjpeg and is kept, like the regress-* inputs."""
    grey = png(4, 4, 0, 8, [bytes(range(i * 4, i * 4 + 4)) for i in range(4)])
    rgb = png(3, 2, 2, 8, [bytes(range(9)), bytes(range(9, 18))])
    put("image", "grey4x4.png", b"\0" + grey)
    put("image", "rgb3x2.png", b"\4" + rgb)
    put("image", "grey-alpha.png", b"\0" + png(2, 2, 4, 8, [b"\1\2\3\4", b"\5\6\7\x08"]))
    put("image", "deep.png", b"\0" + png(1, 1, 0, 16, [b"\1\2"]))
    head = json.dumps({"format": "graft-images/1", "key": "0" * 64, "channels": 1,
                       "height": 2, "width": 2, "classes": ["a", "b"], "train": 2,
                       "test": 1, "skipped": 0}).encode()
    body = bytes(range(8)) + b"\0\1" + bytes(4) + b"\1"
    gimg = b"GRAFTIMG" + struct.pack("<I", len(head)) + head + body
    put("image", "train.gimg", b"\1" + gimg)
    put("image", "test.gimg", b"\3" + gimg)
    put("image", "short.gimg", b"\1" + gimg[:-1])


if __name__ == "__main__":
    http_seeds()
    job_seeds()
    config_seeds()
    arch_seeds()
    idx_seeds()
    cifar_seeds()
    safetensors_seeds()
    worker_seeds()
    image_seeds()
