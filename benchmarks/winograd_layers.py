"""Winograd's F(4x4, 3x3) against oneDNN's direct convolution, layer by layer (nstlib.winograd).

    python benchmarks/winograd_layers.py --size 256        # VGG19's layer shapes for a 256 px image
    python benchmarks/winograd_layers.py --size 512 --threads 2
    python benchmarks/winograd_layers.py --quick           # a smoke run: 64 px, one repeat

Per layer of VGG19 up to conv5_1: the median seconds of one forward pass plus the backward pass
to the input (the weights frozen, as in style transfer), direct and by Winograd, and their ratio;
then the sums, and the sum when each layer takes the faster path. ``nstlib.winograd.MIN_CHANNELS``
is chosen from these figures. CPU only (other devices keep their own convolutions).
"""
from __future__ import annotations

import argparse
import functools
import statistics
import time

import torch
from common import add_options  # benchmarks/common.py

from nstlib.vgg import WIDTHS
from nstlib.weights import BLOCKS
from nstlib.winograd import MIN_CHANNELS, Winograd


def layers(size: int) -> list[tuple[str, int, int, int]]:
    """(name, C_in, C_out, side) of every VGG19 convolution up to conv5_1 for a size x size image."""
    out, c_in = [], 3
    for b, (n, width) in enumerate(zip(BLOCKS["vgg19"], WIDTHS), start=1):
        for i in range(1, n + 1):
            out.append((f"conv{b}_{i}", c_in, width, size >> (b - 1)))
            c_in = width
            if b == 5:
                return out
    return out


def seconds(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def fwd_bwd(conv, x: torch.Tensor, g: torch.Tensor) -> None:
    x.grad = None
    conv(x).backward(g)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=None)
    add_options(p)
    a = p.parse_args()
    if a.device != "cpu":
        p.error("Winograd runs on the CPU only; other devices keep their own convolutions")
    if a.quick:
        a.size, a.repeats = 64, 1
    if a.threads:
        torch.set_num_threads(a.threads)
    print(f"{a.size} px, {torch.get_num_threads()} threads, median of {a.repeats}; forward + backward to the input")
    totals = {"direct": 0.0, "winograd": 0.0, "best": 0.0}
    for name, c_in, c_out, side in layers(a.size):
        conv = torch.nn.Conv2d(c_in, c_out, 3, padding=1).to(memory_format=torch.channels_last).requires_grad_(False)
        plan = Winograd(conv)
        x = torch.rand(1, c_in, side, side).contiguous(memory_format=torch.channels_last).requires_grad_(True)
        g = torch.randn(1, c_out, side, side).contiguous(memory_format=torch.channels_last)

        d, w = (seconds(functools.partial(fwd_bwd, f, x, g), a.repeats) for f in (conv, plan))
        totals["direct"] += d
        totals["winograd"] += w
        totals["best"] += min(d, w)
        used = "winograd" if c_out >= MIN_CHANNELS else "direct"
        print(f"  {name:8s} {c_in:3d} -> {c_out:3d} at {side:4d} px: direct {d * 1e3:7.1f} ms, "
              f"winograd {w * 1e3:7.1f} ms, ratio {w / d:.2f}  (nstlib uses: {used})")
    print("  sums: " + ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in totals.items()))


if __name__ == "__main__":
    main()
