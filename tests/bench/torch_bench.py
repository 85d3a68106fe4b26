#!/usr/bin/python3
"""PyTorch CPU reference for graft's training benchmark (`make bench`).

Run with /usr/bin/python3 (Debian's python3-torch).  Two modes:

  throughput (default)
      Times training steps (forward, cross-entropy, backward, SGD step) of the
      reference nets S and M on random 1x28x28 input, 10 classes, and prints one
      line per (net, batch):
          torch net=S batch=64 threads=2 img_s=10234.5 mflop_per_img=11.5
      Options: --threads T (or a bare number), --batch 64,128, --nets S,M,
      --seconds (per measurement, default 3), --repeats (default 3, median
      reported), --quick (1 s per measurement).

  --accuracy
      Trains net M on Fashion-MNIST (first 50000 training images; the last 10000
      are the validation set, as graft splits them) for --steps steps at batch 64
      with SGD lr 0.05, momentum 0.9, weight decay 5e-4 and a cosine schedule, then
      prints
          torch-accuracy net=M steps=1000 batch=64 seed=1 test_acc=... val_acc=...

Run it with GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:
glibc.malloc.trim_threshold=17179869184 in the environment (tests/bench/run.sh
does): without it glibc returns PyTorch's large buffers to the kernel every step
and the timings are 1.2-2x slower and noisy.

FLOPs per training image = 3 x forward FLOPs, forward = sum over convolutions of
2*cout*oh*ow*cin/groups*k*k plus 2*in*out per linear layer (graft's formula).
"""

import argparse
import gzip
import os
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

DATA_DIR = "/usr/share/datasets/fashion-mnist"
MEAN, STD = 0.2860, 0.3530
NVAL = 10000


def conv_bn_relu(cin, cout, stride=1):
    return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


ARCH_A = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples",
                      "full.yaml")


def arch_net(path):
    """A graft-arch/1 file as a PyTorch module, built by the fixtures' independent
    reader; its graft frozen as graft trains it (no gradients, BN in eval mode)."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                    "fixtures"))
    import yaml
    from make_net_fixture import build_from_arch
    with open(path) as f:
        arch = yaml.safe_load(f)
    net = build_from_arch(arch)
    if net.graft is not None:
        for p in net.graft.parameters():
            p.requires_grad_(False)
    shape = (arch["input"]["channels"], arch["input"]["height"], arch["input"]["width"])
    return net, shape


def input_shape(name):
    return arch_net(ARCH_A)[1] if name == "A" else (1, 28, 28)


def set_train(net):
    """Training mode, except a frozen graft's batch norms."""
    net.train()
    if getattr(net, "graft", None) is not None:
        net.graft.eval()


def make_net(name):
    if name == "A":
        return arch_net(ARCH_A)[0]
    if name == "S":
        layers = (conv_bn_relu(1, 16) + conv_bn_relu(16, 32, 2)
                  + conv_bn_relu(32, 64, 2))
        width = 64
    elif name == "M":
        layers = (conv_bn_relu(1, 32) + conv_bn_relu(32, 32) + [nn.MaxPool2d(2)]
                  + conv_bn_relu(32, 64) + conv_bn_relu(64, 64) + [nn.MaxPool2d(2)]
                  + conv_bn_relu(64, 128))
        width = 128
    else:
        raise ValueError("unknown net %r (S, M or A)" % name)
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(width, 10))


def forward_flops(net, shape):
    """Forward FLOPs for one image, counted from the layers' actual output shapes."""
    total = [0]

    def hook(mod, inp, out):
        if isinstance(mod, nn.Conv2d):
            _, cout, oh, ow = out.shape
            kh, kw = mod.kernel_size
            total[0] += 2 * cout * oh * ow * (mod.in_channels // mod.groups) * kh * kw
        elif isinstance(mod, nn.Linear):
            total[0] += 2 * mod.in_features * mod.out_features

    hooks = [m.register_forward_hook(hook) for m in net.modules()
             if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = net.training
    net.eval()
    with torch.no_grad():
        net(torch.zeros(shape))
    net.train(was_training)
    for h in hooks:
        h.remove()
    return total[0]


def conv_kernel():
    """The ATen convolution implementation a training step of net S runs
    (mkldnn_convolution = oneDNN), found with the autograd profiler."""
    net = make_net("S")
    try:
        with torch.autograd.profiler.profile() as prof:
            net(torch.randn(2, 1, 28, 28)).sum().backward()
        names = {e.name for e in prof.function_events}
    except Exception as e:  # the profiler is only a diagnostic
        return "unknown (%s)" % e
    impl = sorted(n for n in names if n.endswith("_convolution") and n != "aten::_convolution")
    return ",".join(impl) if impl else "aten::_convolution only"


def make_sgd(net):
    return torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9,
                           weight_decay=5e-4, nesterov=False)


def train_step(net, opt, x, y):
    opt.zero_grad(set_to_none=True)
    loss = F.cross_entropy(net(x), y)
    loss.backward()
    opt.step()
    return loss


def bench(name, batch, seconds, repeats, warmup):
    torch.manual_seed(0)
    net = make_net(name)
    set_train(net)
    opt = make_sgd(net)
    g = torch.Generator().manual_seed(1234)
    x = torch.randn(batch, *input_shape(name), generator=g)
    y = torch.randint(0, 10, (batch,), generator=g)
    for _ in range(warmup):
        train_step(net, opt, x, y)
    rates, cpu_share = [], []
    for _ in range(repeats):
        steps = 0
        c0 = time.process_time()
        t0 = time.perf_counter()
        while True:
            train_step(net, opt, x, y)
            steps += 1
            el = time.perf_counter() - t0
            if el >= seconds:
                break
        rates.append(steps * batch / el)
        # CPU time over wall time x threads: well below 1 means other processes
        # had the cores (PyTorch's threads then wait for each other at every op).
        cpu_share.append((time.process_time() - c0) / (el * torch.get_num_threads()))
    loss = train_step(net, opt, x, y).item()
    if not np.isfinite(loss):
        print("# warning: net %s batch %d loss is %r" % (name, batch, loss),
              file=sys.stderr)
    return statistics.median(rates), rates, cpu_share


def bench_infer(name, batch, seconds, repeats, warmup):
    """Forward passes in evaluation mode without autograd, images per second."""
    torch.manual_seed(0)
    net = make_net(name)
    net.eval()
    x = torch.randn(batch, *input_shape(name), generator=torch.Generator().manual_seed(1))
    rates = []
    with torch.no_grad():
        for _ in range(warmup):
            net(x)
        for _ in range(repeats):
            steps, t0 = 0, time.perf_counter()
            while True:
                net(x)
                steps += 1
                el = time.perf_counter() - t0
                if el >= seconds:
                    break
            rates.append(steps * batch / el)
    return statistics.median(rates)


# ---- Fashion-MNIST ---------------------------------------------------------

def read_idx(path, magic, ndim):
    with gzip.open(path, "rb") as f:
        data = f.read()
    m = int.from_bytes(data[0:4], "big")
    if m != magic:
        raise ValueError("%s: bad IDX magic 0x%x" % (path, m))
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(dims)):
        raise ValueError("%s: expected %d bytes of data, found %d"
                         % (path, int(np.prod(dims)), arr.size))
    return arr.reshape(dims)


def load_split(prefix):
    x = read_idx(os.path.join(DATA_DIR, prefix + "-images-idx3-ubyte.gz"), 0x803, 3)
    y = read_idx(os.path.join(DATA_DIR, prefix + "-labels-idx1-ubyte.gz"), 0x801, 1)
    if len(x) != len(y):
        raise ValueError("%s: %d images but %d labels" % (prefix, len(x), len(y)))
    x = (torch.from_numpy(x.astype(np.float32)) / 255.0 - MEAN) / STD
    return x.unsqueeze(1).contiguous(), torch.from_numpy(y.astype(np.int64))


def evaluate(net, x, y, batch=1000):
    net.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            correct += (net(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum().item()
    net.train()
    return correct / len(x)


def accuracy(args):
    xtr, ytr = load_split("train")
    xte, yte = load_split("t10k")
    ntrain = len(xtr) - NVAL
    xval, yval = xtr[ntrain:], ytr[ntrain:]
    xtr, ytr = xtr[:ntrain], ytr[:ntrain]

    torch.manual_seed(args.seed)
    if args.arch:
        # The very network graft trains from the same YAML, built by the
        # independent PyTorch reader of graft-arch/1 the fixtures use.
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                        "..", "fixtures"))
        import yaml
        from make_net_fixture import build_from_arch
        with open(args.arch) as f:
            net = build_from_arch(yaml.safe_load(f))
    else:
        net = make_net("M")
    net.train()
    opt = make_sgd(net)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.steps)
    gen = torch.Generator().manual_seed(args.seed)
    bs = args.acc_batch
    # Batches are consecutive slices of a permutation drawn anew every epoch; a
    # final partial batch is dropped (50000 = 781 x 64 + 16).
    perm, pos = torch.randperm(ntrain, generator=gen), 0
    t0 = time.perf_counter()
    for step in range(args.steps):
        if pos + bs > ntrain:
            perm, pos = torch.randperm(ntrain, generator=gen), 0
        idx = perm[pos:pos + bs]
        pos += bs
        loss = train_step(net, opt, xtr[idx], ytr[idx])
        sched.step()
        if args.verbose and (step + 1) % 100 == 0:
            print("# step %d loss %.4f lr %.5f" % (step + 1, loss.item(),
                                                    sched.get_last_lr()[0]),
                  file=sys.stderr)
    train_s = time.perf_counter() - t0
    test_acc = evaluate(net, xte, yte)
    val_acc = evaluate(net, xval, yval)
    print("torch-accuracy net=%s steps=%d batch=%d seed=%d test_acc=%.4f "
          "val_acc=%.4f train_s=%.1f" % (args.arch or "M", args.steps, bs, args.seed, test_acc,
                                         val_acc, train_s), flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("threads_pos", nargs="?", type=int, help="threads (same as --threads)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default 2)")
    p.add_argument("--batch", default="64,128", help="comma-separated batch sizes")
    p.add_argument("--nets", default="S,M,A",
                   help="comma-separated nets (S, M, A: examples/full.yaml, every op)")
    p.add_argument("--seconds", type=float, default=None,
                   help="minimum seconds per measurement (default 3, 1 with --quick)")
    p.add_argument("--repeats", type=int, default=3, help="measurements; median reported")
    p.add_argument("--warmup", type=int, default=10, help="untimed steps first")
    p.add_argument("--quick", action="store_true", help="shorter measurements")
    p.add_argument("--accuracy", action="store_true", help="train net M on Fashion-MNIST")
    p.add_argument("--steps", type=int, default=1000, help="--accuracy: training steps")
    p.add_argument("--acc-batch", type=int, default=64, help="--accuracy: batch size")
    p.add_argument("--seed", type=int, default=1, help="--accuracy: seed")
    p.add_argument("--arch", default=None,
                   help="--accuracy: a graft-arch/1 file to train instead of net M")
    p.add_argument("--verbose", action="store_true", help="--accuracy: loss every 100 steps")
    args = p.parse_args()

    threads = args.threads if args.threads is not None else (args.threads_pos or 2)
    torch.set_num_threads(threads)
    print("# torch %s, mkldnn available=%s enabled=%s, conv kernel=%s, threads=%d, "
          "GLIBC_TUNABLES=%s"
          % (torch.__version__, torch.backends.mkldnn.is_available(),
             torch.backends.mkldnn.enabled, conv_kernel(), torch.get_num_threads(),
             os.environ.get("GLIBC_TUNABLES", "(unset)")), file=sys.stderr, flush=True)

    if args.accuracy:
        accuracy(args)
        return

    seconds = args.seconds if args.seconds is not None else (1.0 if args.quick else 3.0)
    batches = [int(b) for b in args.batch.split(",") if b.strip()]
    nets = [n.strip().upper() for n in args.nets.split(",") if n.strip()]
    for name in nets:
        mflop = 3 * forward_flops(make_net(name), (1,) + tuple(input_shape(name))) / 1e6
        for batch in batches:
            med, rates, share = bench(name, batch, seconds, args.repeats, args.warmup)
            print("# torch net=%s batch=%d runs img/s: %s (cpu share %s)" % (
                name, batch, " ".join("%.1f" % r for r in rates),
                " ".join("%.2f" % c for c in share)), file=sys.stderr)
            if len(rates) > 1 and min(rates) < 0.85 * max(rates):
                print("# warning: torch net=%s batch=%d runs differ by %.0f%%: "
                      "other load on the machine?" % (
                          name, batch, 100 * (1 - min(rates) / max(rates))),
                      file=sys.stderr)
            if min(share) < 0.8:
                print("# warning: torch net=%s batch=%d got as little as %.0f%% of "
                      "%d cores: other load on the machine?" % (
                          name, batch, 100 * min(share), threads), file=sys.stderr)
            print("torch net=%s batch=%d threads=%d img_s=%.1f mflop_per_img=%.1f"
                  % (name, batch, threads, med, mflop), flush=True)
            inf = bench_infer(name, batch, seconds / 2, args.repeats, args.warmup)
            print("torch-infer net=%s batch=%d threads=%d img_s=%.1f"
                  % (name, batch, threads, inf), flush=True)


if __name__ == "__main__":
    main()
