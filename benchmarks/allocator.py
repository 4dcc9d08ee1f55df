"""What glibc's allocator costs an evaluation, plain PyTorch and nstlib alike (nstlib.allocator).

    python benchmarks/allocator.py --size 512 --config tutorial --rounds 4
    python benchmarks/allocator.py --size 256 --config default
    python benchmarks/allocator.py --quick                  # a smoke run: 64 px, one round

One evaluation (forward + backward) of the PyTorch tutorial's model (``benchmarks/plain_pytorch.py``,
its weights trainable as there) and of nstlib's objective, with the same weights and images, each
with glibc's thresholds as a process has them (outside any run) and inside
``nstlib.allocator.reusing_freed_memory()`` (what ``nstlib.optimize`` does while it runs),
interleaved in one process. Prints the median seconds and page faults per evaluation, so the
share of nstlib's speed that any PyTorch program could have by the same setting is plain to see.
On a machine without glibc (macOS, Windows) both columns are the same allocator.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import resource
import statistics
import time
import warnings

import torch
from common import add_options  # benchmarks/common.py
from plain_pytorch import CONFIGS, get_style_model_and_losses, shared_network, tutorial_name, tv

import nstlib
from nstlib.allocator import reusing_freed_memory, tunable
from nstlib.objective import Objective


def evaluations(size: int, config: str, device: str) -> dict:
    """{"plain": fn, "nstlib": fn}: one evaluation each, of the same objective and weights."""
    cnn, state, _ = shared_network(device)
    content = nstlib.load_image("astronaut", size=size, device=device)
    style = nstlib.load_image("starry_night", size=tuple(content.shape[-2:]), device=device)
    cl, sl, cw, sw, tvw = CONFIGS[config]
    model, style_losses, content_losses = get_style_model_and_losses(
        cnn, style, content, [tutorial_name(n) for n in cl], [tutorial_name(n) for n in sl])
    img, x = content.clone().requires_grad_(True), content.clone().requires_grad_(True)
    objective = Objective(nstlib.VGGFeatures(layers=cl + sl, weights=state, device=device), content, style,
                          content_layers=cl, style_layers=sl, content_weight=cw, style_weight=sw, tv_weight=tvw)

    def plain() -> None:
        model.zero_grad()
        img.grad = None
        model(img)
        loss = sum(s.loss for s in style_losses) * sw + sum(c.loss for c in content_losses) * cw
        (loss + (tvw * tv(img) if tvw else 0)).backward()

    def ours() -> None:
        x.grad = None
        objective.loss_and_grad(x)
    return {"plain": plain, "nstlib": ours}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--config", default="tutorial", choices=list(CONFIGS))
    p.add_argument("--rounds", type=int, default=4, help="interleaved rounds (medians are reported)")
    add_options(p)
    a = p.parse_args()
    if a.device != "cpu":
        p.error("the allocator setting is glibc's (the CPU's memory); other devices keep their own allocators")
    if a.quick:
        a.size, a.rounds = 64, 1
    warnings.simplefilter("ignore")
    fns = evaluations(a.size, a.config, a.device)
    modes = {"as is": contextlib.nullcontext, "reusing": reusing_freed_memory}
    seconds = {(f, m): [] for f in fns for m in modes}
    faults = {(f, m): [] for f in fns for m in modes}
    for f in fns.values():
        f()
    for r in range(a.rounds):
        for f in (fns if r % 2 == 0 else list(fns)[::-1]):
            for m in (modes if r % 2 == 0 else list(modes)[::-1]):
                with modes[m]():
                    fns[f]()  # the first evaluation under a setting warms it up
                    before, t = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
                    fns[f]()
                    seconds[f, m].append(time.perf_counter() - t)
                    faults[f, m].append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    print(f"{a.config} config, {a.size} px, {torch.get_num_threads()} threads, {a.rounds} rounds, "
          f"glibc tunable here: {tunable()}, load average {os.getloadavg()[0]:.2f}")
    med = {k: statistics.median(v) for k, v in seconds.items()}
    for f in fns:
        print(f"  {f:7s} as is {med[f, 'as is']:.3f} s ({statistics.median(faults[f, 'as is']):8.0f} page faults), "
              f"reusing {med[f, 'reusing']:.3f} s ({statistics.median(faults[f, 'reusing']):8.0f}): "
              f"{med[f, 'reusing'] / med[f, 'as is']:.3f} x")
    print(f"  nstlib / plain per evaluation: both as is {med['nstlib', 'as is'] / med['plain', 'as is']:.3f}, "
          f"both reusing {med['nstlib', 'reusing'] / med['plain', 'reusing']:.3f}, "
          f"nstlib reusing / plain as is (what stylize vs the tutorial's loop runs) "
          f"{med['nstlib', 'reusing'] / med['plain', 'as is']:.3f}")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
