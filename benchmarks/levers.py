"""The speed levers of issue 18, each measured against the step before it, interleaved in one process.

    python benchmarks/levers.py --size 256 --steps 12 --repeats 3 --config default
    python benchmarks/levers.py --size 128 --config tutorial --threads 1 --clock cpu
    python benchmarks/levers.py --device cuda --size 512         # on a GPU (wall clock, synchronized)
    python benchmarks/levers.py --quick                          # a smoke run: 64 px, 3 steps

Variants (each one a step of the objective with the optimizer, as ``stylize`` runs it):

* ``before``: the Gram matrix and the losses as they were (autograd through ``bmm(F, F^T) / N``,
  ``mean((x - t) ** 2)``), patched back into ``nstlib.losses`` for the run;
* ``gram``: the Gram matrix's own symmetric backward (``nstlib.losses._Gram``), losses as before;
* ``mse``: that plus the fused ``F.mse_loss`` of the content and style terms;
* ``relu``: that plus the ReLUs whose input is not a tap run in place (``VGGFeatures.forward``;
  ``before``, ``gram`` and ``mse`` run their ReLUs out of place);
* ``direct``: that plus the mean squared error as one ``dot`` forward and one scaled difference
  backward (``nstlib.losses._MeanSquaredError``), the convolutions still oneDNN's direct ones
  (``winograd=False``, as every variant above);
* ``winograd``: that plus Winograd's F(4x4, 3x3) for the convolutions from conv2_1 on
  (:mod:`nstlib.winograd`);
* ``now``: that plus freed memory kept for reuse while the run lasts (:mod:`nstlib.allocator`;
  every variant above runs with ``NSTLIB_ALLOCATOR=default``, glibc's allocator as it is): nstlib as it is;
* ``bf16``: ``now`` under bf16 autocast (``precision="bf16"``; its loss is not the fp32 one: see
  ``run.py --only plain`` for the time to an fp32-judged loss).

Prints per variant the median seconds per step, the step over the bound (one forward + backward
of the fp32 network cut at the deepest tap with out-of-place ReLUs and direct convolutions, as
before this round, measured between the variants' runs), the step over the same pass with
Winograd's convolutions (``bound_winograd``) and, for ``now``, over nstlib's own network pass
(in-place ReLUs, Winograd, inside ``reusing_freed_memory``: ``bound_now``, what the step adds to
its own pass) and the load average.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import time
import warnings
from unittest import mock

import torch
from common import add_options, sync  # benchmarks/common.py
from plain_pytorch import CONFIGS

import nstlib
import nstlib.losses as L
from nstlib.allocator import reusing_freed_memory

CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def old_gram(features: torch.Tensor) -> torch.Tensor:
    """The Gram matrix before this round (autograd does its backward: two bmm and an add)."""
    b, c, h, w = features.shape
    if c > 1 and features.is_contiguous(memory_format=torch.channels_last):
        f = features.permute(0, 2, 3, 1).reshape(b, h * w, c)
        return torch.bmm(f.transpose(1, 2), f) / (c * h * w)
    f = features.reshape(b, c, h * w)
    return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)


def old_mse(x: torch.Tensor, target: torch.Tensor, reduction: str) -> torch.Tensor:
    return L._reduce((x - target) ** 2, reduction)


def fused_mse(x: torch.Tensor, target: torch.Tensor, reduction: str) -> torch.Tensor:
    """The ``mse`` lever: ``F.mse_loss``, one kernel forward and one backward."""
    out = torch.nn.functional.mse_loss(x, target.expand_as(x), reduction="none" if reduction == "none" else "mean")
    return out if reduction == "mean" else L._reduce(out, reduction)


@contextlib.contextmanager
def patched(gram=None, mse=None, allocator="default"):
    """The losses of an earlier variant patched back in, and glibc's allocator left as it is
    (``NSTLIB_ALLOCATOR=default``) unless ``allocator`` is None (nstlib's reuse of freed memory)."""
    saved = L.gram_matrix, L._mse
    L.gram_matrix, L._mse = gram or saved[0], mse or saved[1]
    try:
        with mock.patch.dict(os.environ, {} if allocator is None else {"NSTLIB_ALLOCATOR": allocator}):
            yield
    finally:
        L.gram_matrix, L._mse = saved


class OutOfPlaceReLU(torch.nn.Module):
    """Not an ``nn.ReLU``, so ``VGGFeatures.forward`` does not run it in place (as before this round)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x)


def relu_out_of_place(ext: nstlib.VGGFeatures) -> nstlib.VGGFeatures:
    for name in list(ext.body._modules):
        if name.startswith("relu"):
            ext.body._modules[name] = OutOfPlaceReLU()
    return ext


def bound(ext, x, clock, n=3) -> float:
    deepest = ext.layers_in_body[-1]
    times = []
    for _ in range(n + 1):
        sync(x.device.type)
        t = clock()
        ext(x, [deepest])[deepest].sum().backward()
        sync(x.device.type)
        times.append(clock() - t)
        x.grad = None
    return statistics.median(times[1:])


VARIANTS = ("before", "gram", "mse", "relu", "direct", "winograd", "now", "bf16")


def levers_kind(a) -> dict:
    """The measurement (``a``: size, steps, repeats, config, clock, variants, device); also run.py's 'levers'.
    Each step's time stamp comes after the engine's one host synchronization per step."""
    clock = CLOCKS[a.clock]
    cl, sl, cw, sw, tvw = CONFIGS[a.config]
    layers = cl + sl
    dev = a.device
    content = nstlib.load_image("astronaut", size=a.size, device=dev)
    style = nstlib.load_image("starry_night", size=a.size, device=dev)
    plain = relu_out_of_place(nstlib.VGGFeatures(layers=layers, weights="imagenet", device=dev, winograd=False))
    fast = relu_out_of_place(nstlib.VGGFeatures(layers=layers, weights="imagenet", device=dev))
    direct = nstlib.VGGFeatures(layers=layers, weights="imagenet", device=dev, winograd=False)
    ours = nstlib.VGGFeatures(layers=layers, weights="imagenet", device=dev)
    exts = {"before": plain, "gram": plain, "mse": plain, "relu": direct, "direct": direct, "winograd": ours,
            "now": ours,
            "bf16": nstlib.VGGFeatures(layers=layers, weights="imagenet", device=dev, precision="bf16")}
    patches = {"before": dict(gram=old_gram, mse=old_mse), "gram": dict(mse=old_mse), "mse": dict(mse=fused_mse),
               "relu": dict(mse=fused_mse), "now": dict(allocator=None), "bf16": dict(allocator=None)}
    # the rest: as nstlib is, glibc's allocator as it is
    x = torch.rand(1, 3, *content.shape[-2:], device=dev, requires_grad=True)
    out = {"size": a.size, "steps": a.steps, "config": a.config, "clock": a.clock, "device": dev,
           "threads": torch.get_num_threads(), "load": [round(os.getloadavg()[0], 2)], "bound": [],
           "bound_winograd": [], "bound_now": [],
           **{v: [] for v in a.variants}, "final_loss": {}}
    for r in range(a.repeats):
        for v in (a.variants if r % 2 == 0 else a.variants[::-1]):  # interleaved, the order flipped
            out["bound"].append(bound(plain, x, clock))
            out["bound_winograd"].append(bound(fast, x, clock))
            with reusing_freed_memory():
                out["bound_now"].append(bound(ours, x, clock))
            stamps = []
            with patched(**patches.get(v, {})):
                res = nstlib.stylize(content, style, extractor=exts[v], size=a.size, content_layers=cl,
                                     style_layers=sl, content_weight=cw, style_weight=sw, tv_weight=tvw,
                                     steps=a.steps, every=1, callback=lambda *_: stamps.append(clock()))
            out[v].append(statistics.median(b - a_ for a_, b in zip(stamps[1:], stamps[2:])))
            out["final_loss"][v] = res.history[-1]["total"]
        out["load"].append(round(os.getloadavg()[0], 2))
    return out


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--config", default="default", choices=list(CONFIGS))
    p.add_argument("--clock", default="wall", choices=list(CLOCKS))
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS))
    add_options(p)
    a = p.parse_args(argv)
    if a.quick:
        a.size, a.steps, a.repeats = 64, 3, 1
    if a.device != "cpu" and a.clock == "cpu":
        p.error("--clock cpu times this process's CPU, not the device's work; use the wall clock on a GPU")
    return a


def main() -> None:
    a = parse()
    warnings.simplefilter("ignore")
    if a.threads:
        torch.set_num_threads(a.threads)
    out = levers_kind(a)
    b, bw, bn = (statistics.median(out[k]) for k in ("bound", "bound_winograd", "bound_now"))
    print(f"{a.config} config, {a.size} px, {a.steps} steps x {a.repeats}, {a.clock} clock, "
          f"{out['threads']} threads, load average {out['load']}")
    print(f"  bound (fp32 network pass, direct convolutions, median of {len(out['bound'])}): {b:.4f} s; "
          f"with Winograd's: {bw:.4f} s; nstlib's own (in-place ReLUs, Winograd, memory reused): {bn:.4f} s")
    a.variants = list(out["final_loss"])
    for v in a.variants:
        s = statistics.median(out[v])
        print(f"  {v:13s} {s:.4f} s/step  step/bound {s / b:.3f}  step/bound_winograd {s / bw:.3f}  "
              f"final loss {out['final_loss'][v]:.5g}" + (f"  step/bound_now {s / bn:.3f}" if v == "now" else ""))
    print("RESULT " + json.dumps(out))


if __name__ == "__main__":
    main()
