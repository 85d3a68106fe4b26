#!/usr/bin/python3
"""check_export.py - does an exported graft network mean the same in PyTorch?

    /usr/bin/python3 tests/interop/check_export.py ARCH.yaml WEIGHTS.safetensors \
        --data DIR [--expect ACCURACY] [--tolerance 0.002]

Builds the graft-arch/1 network from the YAML alone (the independent builder
of tests/fixtures/make_net_fixture.py, written from ARCH-FORMAT.md), loads the
safetensors weights by name, and measures its accuracy on the test split of
DIR (IDX files t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]),
normalized as the YAML says.  With --expect (graft's own test accuracy, as
`graft train` printed it) it fails unless the two agree within the tolerance
(0.2 points by default).

Needs Debian's python3-torch and python3-yaml; without them it says so and
exits 77 (the conventional "skipped" status), so a caller can tell a skip
from a pass.
"""
import argparse
import gzip
import os
import struct
import sys

try:
    import torch
    import yaml
except ImportError as e:  # a visible skip, not a silent pass
    print("SKIPPED: the interoperability check needs python3-torch and python3-yaml (%s)" % e)
    sys.exit(77)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures"))
from make_net_fixture import build_from_arch, load_weights, normalize_input  # noqa: E402


def read_idx(path, magic):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    (m,) = struct.unpack(">I", data[:4])
    if m != magic:
        raise ValueError("%s: magic %#x, expected %#x" % (path, m, magic))
    ndim = magic & 0xff
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    body = data[4 + 4 * ndim:]
    return torch.frombuffer(bytearray(body), dtype=torch.uint8).reshape(dims)


def find(dir_, name):
    for candidate in (name, name + ".gz"):
        p = os.path.join(dir_, candidate)
        if os.path.exists(p):
            return p
    raise FileNotFoundError("%s: no %s[.gz]" % (dir_, name))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("arch")
    ap.add_argument("weights")
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--expect", type=float)
    ap.add_argument("--tolerance", type=float, default=0.002)
    a = ap.parse_args()

    with open(a.arch) as f:
        arch = yaml.safe_load(f)
    model = build_from_arch(arch)
    load_weights(model, a.weights)
    model.eval()
    images = read_idx(find(a.data, "t10k-images-idx3-ubyte"), 0x803)
    labels = read_idx(find(a.data, "t10k-labels-idx1-ubyte"), 0x801).long()
    c = arch["input"]["channels"]
    x = images.reshape(images.shape[0], c, images.shape[-2], images.shape[-1]).float() / 255.0
    correct = 0
    with torch.no_grad():
        for i in range(0, x.shape[0], 500):
            logits = model(normalize_input(arch, x[i:i + 500]))
            correct += (logits.argmax(1) == labels[i:i + 500]).sum().item()
    acc = correct / x.shape[0]
    print("PyTorch test accuracy %.4f (%d images)" % (acc, x.shape[0]))
    if a.expect is not None:
        diff = abs(acc - a.expect)
        verdict = "agrees" if diff <= a.tolerance else "DISAGREES"
        print("graft's %.4f %s within %.4f (difference %.4f)" % (a.expect, verdict,
                                                              a.tolerance, diff))
        if diff > a.tolerance:
            sys.exit(1)


if __name__ == "__main__":
    main()
