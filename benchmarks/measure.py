"""The measurements of ``benchmarks/run.py``; each runs in its own process and prints one JSON line.

    python benchmarks/measure.py steps 256 --device cpu --steps 15 --repeats 3

Kinds: ``steps`` (one size: the bound, L-BFGS and Adam seconds per step, time to a fixed loss,
peak memory), ``sweep`` (a 3 x 3 grid as one batch vs nine runs), ``multiscale`` (time to the
single-scale loss), ``options`` (channels_last, bf16 autocast, torch.compile), ``plain``
(``benchmarks/plain_pytorch.py``), ``levers`` (``benchmarks/levers.py``). ``--device cuda`` (or
mps) runs any kind there; ``--quick`` runs it at 64 px with a step or two (a smoke run).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import time
import warnings

import torch
from common import add_options, sync  # benchmarks/common.py

import nstlib
from nstlib.allocator import reusing_freed_memory
from nstlib.objective import Objective
from nstlib.transfer import CONTENT_LAYERS, CONTENT_WEIGHT, STYLE_LAYERS, STYLE_WEIGHT, TV_WEIGHT

CONTENT, STYLE = "astronaut", "starry_night"  # a square photo: "512 px" is 512 x 512
LAYERS = list(CONTENT_LAYERS) + list(STYLE_LAYERS)


def extractor(device: str, **kw) -> nstlib.VGGFeatures:
    return nstlib.VGGFeatures(layers=LAYERS, weights=kw.pop("weights", "imagenet"), device=device, **kw)


def bound(ext: nstlib.VGGFeatures, side: int, device: str, n: int, batch: int = 1) -> float:
    """Median seconds of one forward + backward pass of the network cut at its deepest layer,
    for a batch of ``batch`` images, freed memory reused as in a run."""
    deepest = ext.layers_in_body[-1]
    h, w = nstlib.load_image(CONTENT, size=side).shape[-2:]
    x = torch.rand(batch, 3, h, w, device=device, requires_grad=True)
    times = []
    with reusing_freed_memory():  # as the runs it is compared with (nstlib.optimize)
        for _ in range(n + 1):  # the first pass warms up
            sync(device)
            t = time.perf_counter()
            ext(x, [deepest])[deepest].sum().backward()
            sync(device)
            times.append(time.perf_counter() - t)
            x.grad = None
    return statistics.median(times[1:])


def per_step(result: nstlib.Result) -> float:
    """Median seconds between consecutive steps (the first step is warm-up)."""
    t = [h["seconds"] for h in result.history]
    return statistics.median(b - a for a, b in zip(t[1:], t[2:]))


def time_to(result: nstlib.Result, target: float) -> float | None:
    """Seconds until the total loss first reached ``target`` (None if never)."""
    return next((h["seconds"] for h in result.history if h["total"] <= target), None)


def run(ext, side, optimizer, steps, **kw) -> nstlib.Result:
    return nstlib.stylize(CONTENT, STYLE, extractor=ext, size=side, optimizer=optimizer, steps=steps, **kw)


def steps_kind(a) -> dict:
    ext = extractor(a.device)
    out = {"size": a.size, "device": a.device, "steps": a.steps, "weights": ext.weights_source,
           "channels_last": ext.channels_last, "bound": [], "lbfgs": [], "adam": [], "runs": {}}
    for r in range(a.repeats):
        for opt in ("lbfgs", "adam"):
            out["bound"].append(bound(ext, a.size, a.device, 3))
            res = run(ext, a.size, opt, a.steps)
            out[opt].append(per_step(res))
            if r == 0:
                out["runs"][opt] = [(h["seconds"], h["total"]) for h in res.history]
            else:  # the trajectory is the same, only the clock differs: keep the median run's clock
                out["runs"].setdefault(opt + "_seconds", []).append(res.seconds)
    # the fixed loss: the higher of the two final losses, so that both optimizers reach it
    target = max(out["runs"]["lbfgs"][-1][1], out["runs"]["adam"][-1][1])
    out["target_loss"] = target
    for opt in ("lbfgs", "adam"):
        out[f"{opt}_to_target"] = next(s for s, v in out["runs"][opt] if v <= target)
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if a.device.startswith("cuda"):
        out["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2 ** 20
    return out


def sweep_kind(a) -> dict:
    ext = extractor(a.device)
    cw, sw = [0.1, 1.0, 10.0], [1e3, 1e4, 1e5]
    out = {"size": a.size, "steps": a.steps, "optimizer": a.optimizer, "batch": [], "separate": [],
           "bound_1": [], "bound_9": []}
    for _ in range(a.repeats):  # what batching can save at best: the network pass for 9 images vs 1
        out["bound_1"].append(bound(ext, a.size, a.device, 5))
        out["bound_9"].append(bound(ext, a.size, a.device, 5, batch=9))
    for _ in range(a.repeats):
        t = time.perf_counter()
        grid = nstlib.sweep(CONTENT, STYLE, cw, sw, extractor=ext, size=a.size, steps=a.steps,
                            optimizer=a.optimizer)
        out["batch"].append(time.perf_counter() - t)
        t = time.perf_counter()
        sep = [[run(ext, a.size, a.optimizer, a.steps, content_weight=c, style_weight=s) for s in sw] for c in cw]
        out["separate"].append(time.perf_counter() - t)
    out["max_rel_loss_diff"] = max(abs(grid.losses[i][j] - sep[i][j].losses["total"]) / sep[i][j].losses["total"]
                                   for i in range(3) for j in range(3))
    if not a.fresh:
        return out
    t = time.perf_counter()  # what a user does without an extractor: nine stylize calls as they are
    for c in cw:
        for s in sw:
            nstlib.stylize(CONTENT, STYLE, size=a.size, steps=a.steps, optimizer=a.optimizer, device=a.device,
                           content_weight=c, style_weight=s)
    out["separate_fresh"] = time.perf_counter() - t
    return out


def multiscale_kind(a) -> dict:
    """Single scale (``a.steps`` L-BFGS steps) vs coarse to fine until the single-scale loss, in
    ``a.clock`` seconds from each ``stylize`` call (setup and coarse stages included)."""
    from plain_pytorch import CLOCKS
    clock = CLOCKS[a.clock]
    ext = extractor(a.device)
    t0 = clock()
    single = run(ext, a.size, "lbfgs", a.steps)
    single_seconds = clock() - t0
    target = single.history[-1]["total"]
    coarse = [int(s) for s in a.coarse.split(",")]
    sides = [max(16, round(a.size / 2 ** k)) for k in range(len(coarse), 0, -1)] + [a.size]
    reach: list[float] = []

    def stop(step, img, losses):  # stop once the full-size stage reaches the single-scale loss
        if max(img.shape[-2:]) == a.size and losses["total"] <= target:
            reach.append(clock() - t0)
            return False
        return True
    t0 = clock()
    multi = nstlib.stylize(CONTENT, STYLE, extractor=ext, size=a.size, scales=sides,
                           steps=coarse + [a.steps], every=1, callback=stop)
    return {"size": a.size, "steps": a.steps, "sides": sides, "coarse_steps": coarse, "target_loss": target,
            "clock": a.clock, "threads": torch.get_num_threads(),
            "single_seconds": single_seconds, "multi_seconds_to_target": reach[0] if reach else None,
            "multi_wall": clock() - t0, "multi_full_size_steps": sum(1 for h in multi.history if h["size"] == a.size),
            "multi_final_loss": multi.history[-1]["total"]}


def options_kind(a) -> dict:
    out = {"size": a.size, "steps": a.steps}
    # the layouts with oneDNN's direct convolutions; then Winograd's (nstlib's default on the CPU)
    plain = extractor(a.device, channels_last=False, winograd=False)
    nhwc, fast = extractor(a.device, channels_last=True, winograd=False), extractor(a.device)
    out["bound_contiguous"], out["bound_channels_last"], out["bound_winograd"] = [], [], []
    for _ in range(a.repeats):  # interleaved, so that the machine's load hits all alike
        out["bound_contiguous"].append(bound(plain, a.size, a.device, 3))
        out["bound_channels_last"].append(bound(nhwc, a.size, a.device, 3))
        out["bound_winograd"].append(bound(fast, a.size, a.device, 3))
    out["winograd_layers"] = fast.winograd_layers
    ref = run(fast, a.size, "lbfgs", a.steps)
    out["fp32_step"], out["fp32_loss"] = per_step(ref), ref.history[-1]["total"]
    for p in nstlib.precision.iter_precisions():
        r = run(extractor(a.device, precision=p), a.size, "lbfgs", a.steps)
        out[f"{p}_step"], out[f"{p}_loss"] = per_step(r), r.history[-1]["total"]
        out[f"{p}_image_diff"] = float((r.image - ref.image).abs().mean())
    if a.compile:
        comp = extractor(a.device)
        t = time.perf_counter()
        comp.forward = torch.compile(comp.forward)
        first = run(comp, a.size, "lbfgs", 2)
        out["compile_first_run"] = time.perf_counter() - t
        out["compile_step"] = per_step(run(comp, a.size, "lbfgs", a.steps))
        out["compile_overhead"] = out["compile_first_run"] - 2 * out["compile_step"]
        del first
    return out


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("kind", choices=["steps", "sweep", "multiscale", "options", "plain", "levers", "precision"])
    p.add_argument("size", type=int)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--optimizer", default="lbfgs")
    p.add_argument("--coarse", default="100,60", help="steps of the coarse stages, coarsest first")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--fresh", action="store_true", help="sweep: also time nine stylize calls that build their network")
    p.add_argument("--config", default="default", choices=["default", "tutorial"],
                   help="plain/levers: the layers and weights (benchmarks/plain_pytorch.py CONFIGS)")
    p.add_argument("--frozen", action="store_true", help="plain: freeze the baseline's weights (newest tutorial)")
    p.add_argument("--bf16", action="store_true", help="plain: also time nstlib with bf16 autocast")
    p.add_argument("--clock", default="wall", choices=["wall", "cpu"], help="plain/levers: wall or CPU seconds")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    add_options(p)
    a = p.parse_args(argv)
    if a.quick:  # a smoke run: tiny, so that a new machine shows in seconds whether the kind runs
        a.size, a.repeats, a.coarse, a.compile = min(a.size, 64), 1, "2", False
        a.steps = 1 if a.kind == "plain" else min(a.steps, 3)  # plain: one .step() of 20 evaluations
    return a


def precision_kind(a) -> dict:
    """fp32 vs bf16 autocast (an extractor with ``precision="bf16"``), interleaved: seconds per step,
    and every step's image judged afterwards (off the clock) by one fp32 objective, so both are
    scored alike: the fp32-judged losses, bf16's time to fp32's final loss counted from the first
    step (bf16 runs twice the steps, so it can get there if it gets there at all), and the PSNR of
    the two images after ``a.steps`` steps."""
    from plain_pytorch import CLOCKS, difference
    clock = CLOCKS[a.clock]
    ext = extractor(a.device)
    content = nstlib.load_image(CONTENT, size=a.size, device=a.device)
    style = nstlib.load_image(STYLE, size=a.size, device=a.device)
    judge = Objective(ext, content, style, CONTENT_LAYERS, STYLE_LAYERS, CONTENT_WEIGHT, STYLE_WEIGHT, TV_WEIGHT)
    exts = {"fp32": ext, "bf16": extractor(a.device, precision="bf16")}
    out = {"size": a.size, "steps": a.steps, "clock": a.clock, "threads": torch.get_num_threads(),
           "load": [round(os.getloadavg()[0], 2)], **{p: [] for p in exts}}
    for r in range(a.repeats):
        for p in (exts if r % 2 == 0 else list(exts)[::-1]):
            stamps, images = [], []
            res = run(exts[p], a.size, "lbfgs", a.steps * (2 if p == "bf16" else 1), every=1,
                      callback=lambda step, img, losses, s=stamps, i=images: (s.append(clock()), i.append(img)))
            with torch.no_grad():
                judged = [float(judge(img)["total"]) for img in images]
            out[p].append({"s_per_step": statistics.median(b - t for t, b in zip(stamps[1:], stamps[2:])),
                           "own_final": res.history[-1]["total"], "fp32_judged": judged,
                           "seconds": [t - stamps[0] for t in stamps], "step_image": images[a.steps - 1]})
        out["load"].append(round(os.getloadavg()[0], 2))
    target = statistics.median(x["fp32_judged"][-1] for x in out["fp32"])
    out["target"] = target
    for p in exts:
        for x in out[p]:
            x["to_target"] = next((t for t, v in zip(x["seconds"], x["fp32_judged"]) if v <= target), None)
    out["bf16_vs_fp32"] = difference(out["bf16"][0]["step_image"], out["fp32"][0]["step_image"])
    for p in exts:
        for x in out[p]:
            del x["step_image"]
    return out


def main(argv: list[str] | None = None) -> None:
    a = parse(argv)
    warnings.simplefilter("ignore")
    if a.threads:
        torch.set_num_threads(a.threads)
    from levers import VARIANTS, levers_kind  # benchmarks/levers.py
    from plain_pytorch import plain_kind  # benchmarks/plain_pytorch.py
    a.variants = list(VARIANTS)
    out = {"steps": steps_kind, "sweep": sweep_kind, "multiscale": multiscale_kind, "options": options_kind,
           "plain": plain_kind, "levers": levers_kind, "precision": precision_kind}[a.kind](a)
    print("RESULT " + json.dumps(out))


if __name__ == "__main__":
    main()
