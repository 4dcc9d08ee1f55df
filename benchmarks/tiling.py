"""Large images: peak memory and time of one objective evaluation, untiled vs checkpointed vs tiled.

    python benchmarks/tiling.py                      # 512, 1024, 2048 px, CPU, prints tables
    python benchmarks/tiling.py --sizes 512 1024 2048 4096 --doc docs/benchmarks.md
    python benchmarks/tiling.py --device cuda        # CUDA peak (torch.cuda.max_memory_allocated) too
    python benchmarks/tiling.py --cli 2048 --cli-args "--scales 512,1024,2048 --steps 2,2,2 --tile 256"
                                                     # peak RSS of one CLI run (python -m nstlib), alone

Every (mode, size) runs in its own process (``--one``), so the peaks do not mix: it builds VGG19
(seeded random weights: memory and speed do not depend on the weights), the objective (targets
included) for astronaut (square: "N px" is N x N) styled by starry_night, then runs ``--evals``
evaluations (loss and gradient) and prints one JSON line: peak RSS of the whole process (torch
itself ~0.3 GB), the setup seconds and the last evaluation's seconds. Untiled and checkpointed
runs whose estimated memory exceeds ``--max-gb`` are skipped. The time overhead is measured in one
process, interleaving untiled and tiled evaluations at ``--overhead-size``. ``--doc`` rewrites the
section "Large images: tiling" of that file (and nothing else).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import warnings

import torch

import nstlib
from nstlib.checkpoint import bytes_per_pixel, checkpointed
from nstlib.objective import Objective
from nstlib.tiling import TiledObjective
from nstlib.transfer import CONTENT_LAYERS, CONTENT_WEIGHT, STYLE_LAYERS, STYLE_WEIGHT, TV_WEIGHT

CONTENT, STYLE = "astronaut", "starry_night"
LAYERS = list(CONTENT_LAYERS) + list(STYLE_LAYERS)
MODES = ("untiled", "checkpointed", "tiled")
SECTION = "## Large images: tiling"
#: Peak RSS per pixel of an untiled evaluation (fit to this script's 512 and 1024 px runs) and of
#: a checkpointed one, for skipping sizes that would not fit; torch's own ~0.4 GB comes on top.
EST_BYTES = {"untiled": 3.4e3, "checkpointed": 1.9e3}


def build(mode: str, side: int, device: str, tile) -> tuple[object, torch.Tensor]:
    ext = nstlib.VGGFeatures("vgg19", LAYERS, weights=None, device=device)
    content = nstlib.load_image(CONTENT, size=side, device=device)
    style = nstlib.load_image(STYLE, size=side, device=device)
    args = (content, style, list(CONTENT_LAYERS), list(STYLE_LAYERS), CONTENT_WEIGHT, STYLE_WEIGHT, TV_WEIGHT)
    if mode == "tiled":
        return TiledObjective(ext, *args, tile=tile), content
    return Objective(checkpointed(ext) if mode == "checkpointed" else ext, *args), content


def evaluate(obj, x: torch.Tensor, device: str) -> tuple[float, float]:
    """One evaluation's seconds and total loss (the engine's contract: x.grad zeroed first)."""
    x.grad.zero_()
    t = time.perf_counter()
    if isinstance(obj, TiledObjective):
        total = obj.loss_and_grad(x)["total"]
    else:
        total = obj(x)["total"]
        total.backward()
    value = float(total.detach())
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - t, value


def one(a) -> dict:
    if a.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    obj, content = build(a.mode, a.size, a.device, a.tile)
    setup = time.perf_counter() - t
    x = content.clone().requires_grad_(True)
    x.grad = torch.zeros_like(x)
    runs = [evaluate(obj, x, a.device) for _ in range(a.evals)]
    out = {"mode": a.mode, "size": a.size, "setup_s": setup, "eval_s": runs[-1][0], "loss": runs[-1][1],
           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if isinstance(obj, TiledObjective):
        out["tile"], out["halo"] = list(obj.tile), obj.halo
    if a.device.startswith("cuda"):
        out["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2 ** 20
    return out


def overhead(a) -> dict:
    """Seconds per evaluation, untiled vs tiled (several tile shapes), interleaved in one process."""
    side, tiles = a.overhead_size, [tuple(int(v) for v in t.split("x")) for t in a.overhead_tiles]
    ext = nstlib.VGGFeatures("vgg19", LAYERS, weights=None, device=a.device)
    content = nstlib.load_image(CONTENT, size=side, device=a.device)
    style = nstlib.load_image(STYLE, size=side, device=a.device)
    args = (ext, content, style, list(CONTENT_LAYERS), list(STYLE_LAYERS), CONTENT_WEIGHT, STYLE_WEIGHT, TV_WEIGHT)
    objs = {"untiled": Objective(*args), "checkpointed": Objective(checkpointed(ext), *args[1:])}
    objs.update({f"tiled {h}x{w}": TiledObjective(*args, tile=(h, w)) for h, w in tiles})
    x = content.clone().requires_grad_(True)
    x.grad = torch.zeros_like(x)
    times: dict[str, list[float]] = {k: [] for k in objs}
    losses = {}
    for i in range(a.overhead_evals + 1):  # round 0 warms up (oneDNN builds kernels per crop shape)
        for k, obj in objs.items():
            s, losses[k] = evaluate(obj, x, a.device)
            if i:
                times[k].append(s)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"size": side, "seconds": med, "ratio": {k: v / med["untiled"] for k, v in med.items()},
            "loss_rel_diff": {k: abs(v - losses["untiled"]) / losses["untiled"] for k, v in losses.items()},
            "evals": a.overhead_evals}


def spawn(*extra: str) -> dict:
    cmd = [sys.executable, __file__, *extra]
    done = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, NSTLIB_OFFLINE="1"))
    if done.returncode:
        return {"error": (done.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def cli_run(side: int, extra: str) -> dict:
    """One ``python -m nstlib astronaut starry_night --size SIDE EXTRA`` run (seeded random
    weights, offline) in a child process: its peak RSS (``ru_maxrss`` of the children), wall
    seconds and the line it printed, with the load average before and after."""
    import shlex
    import tempfile
    out = os.path.join(tempfile.mkdtemp(), f"cli{side}.png")
    cmd = [sys.executable, "-m", "nstlib", CONTENT, STYLE, "--size", str(side), "--weights", "random",
           "--quiet", "-o", out, *shlex.split(extra)]
    load, t = os.getloadavg()[0], time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, NSTLIB_OFFLINE="1"))
    return {"cli": " ".join(cmd[1:]), "rc": done.returncode, "wall_s": time.perf_counter() - t,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
            "load": [load, os.getloadavg()[0]], "printed": (done.stdout.strip().splitlines() or [""])[-1],
            "error": (done.stderr.strip().splitlines() or [""])[-1] if done.returncode else None}


def tables(rows: list[dict], over: dict, a) -> str:
    lines = ["| px | untiled | checkpointed | tiled |", "|---|---|---|---|"] if a.sizes else []
    for side in a.sizes:
        cells = []
        for mode in MODES:
            r = next(r for r in rows if r["size"] == side and r["mode"] == mode)
            if "skipped" in r:
                cells.append(r["skipped"])
            elif "error" in r:
                cells.append(f"failed: {r['error'][:80]}")
            else:
                cuda = f" / CUDA {r['peak_cuda_mb'] / 1024:.2f}" if "peak_cuda_mb" in r else ""
                cells.append(f"{r['peak_rss_mb'] / 1024:.2f} GB{cuda}, {r['eval_s']:.1f} s/eval")
        lines.append(f"| {side} | " + " | ".join(cells) + " |")
    lines += ["", f"Time per evaluation at {over['size']} px, median of {over['evals']} interleaved in one process "
              "(after one warm-up round):", "",
              "| objective | s/eval | x untiled | loss rel. diff |", "|---|---|---|---|"]
    for k, s in over["seconds"].items():
        lines.append(f"| {k} | {s:.2f} | {over['ratio'][k]:.2f} | {over['loss_rel_diff'][k]:.1e} |")
    return "\n".join(lines)


def write_doc(path: str, body: str) -> None:
    text = open(path).read() if os.path.exists(path) else ""
    start = text.find(SECTION)
    if start < 0:
        text = text.rstrip() + "\n\n" + body + "\n"
    else:
        end = text.find("\n## ", start + len(SECTION))
        text = text[:start] + body + ("\n" + text[end:] if end >= 0 else "\n")
    with open(path, "w") as f:
        f.write(text)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="*", default=[512, 1024, 2048],
                   help="sides of the memory table (none: only the time overhead)")
    p.add_argument("--tile", type=int, default=512, help="core side of the tiled runs (px)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--evals", type=int, default=2,
                   help="evaluations per configuration (the last one is timed; the first warms up)")
    p.add_argument("--max-gb", type=float, default=12.0, help="skip untiled/checkpointed runs estimated above this")
    p.add_argument("--overhead-size", type=int, default=1024)
    p.add_argument("--overhead-tiles", nargs="*", default=["512x512", "1024x512", "1024x1024"])
    p.add_argument("--overhead-evals", type=int, default=2)
    p.add_argument("--doc", help="write the section into this markdown file")
    p.add_argument("--cli", type=int, metavar="SIDE", help="only: peak RSS of one CLI run at SIDE px")
    p.add_argument("--cli-args", default="--scales 512,1024,2048 --steps 2,2,2 --tile 256",
                   help="the CLI's other flags for --cli (default %(default)s)")
    p.add_argument("--one", nargs=2, metavar=("MODE", "SIZE"), help=argparse.SUPPRESS)
    p.add_argument("--overhead-only", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    warnings.simplefilter("ignore")
    torch.set_num_threads(os.cpu_count() or 1)
    if a.one:
        a.mode, a.size = a.one[0], int(a.one[1])
        print(json.dumps(one(a)))
        return
    if a.overhead_only:
        print(json.dumps(overhead(a)))
        return
    if a.cli:
        r = cli_run(a.cli, a.cli_args)
        print(json.dumps(r))
        print(f"CLI at {a.cli} px ({a.cli_args}): peak RSS {r['peak_rss_mb'] / 1024:.2f} GB, {r['wall_s']:.0f} s, "
              f"load average {r['load'][0]:.1f} -> {r['load'][1]:.1f}; {r['printed'] or r['error']}")
        return
    rows, t0, load0 = [], time.time(), os.getloadavg()[0]
    for side in a.sizes:
        for mode in MODES:
            need = EST_BYTES.get(mode, 0) * side * side / 2 ** 30 + 0.4
            if mode != "tiled" and need > a.max_gb:
                r = {"skipped": f"skipped: would need ~{need:.0f} GB"}
            else:
                r = spawn("--one", mode, str(side), "--tile", str(a.tile), "--device", a.device,
                          "--evals", str(a.evals))
            rows.append(dict(r, mode=mode, size=side))
            print(json.dumps(rows[-1]), flush=True)
    over = spawn("--overhead-only", "--device", a.device, "--overhead-size", str(a.overhead_size),
                 "--overhead-evals", str(a.overhead_evals), "--overhead-tiles", *a.overhead_tiles)
    print(json.dumps(over), flush=True)
    if "error" in over:
        raise SystemExit(f"overhead run failed: {over['error']}")
    ext = nstlib.VGGFeatures("vgg19", LAYERS, weights=None, device="cpu")
    body = "\n".join([
        SECTION, "",
        f"Produced by `python benchmarks/tiling.py {' '.join(sys.argv[1:])}` on {platform.processor() or 'cpu'}, "
        f"{os.cpu_count()} cores, torch {torch.__version__}, device {a.device}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(t0))} ({time.time() - t0:.0f} s wall, load average "
        f"{load0:.1f} -> {os.getloadavg()[0]:.1f}: the machine was shared, so the seconds are rough). Seeded random "
        "VGG19 weights (speed and memory do not depend on them). One objective evaluation (loss and "
        "gradient) of the default objective (relu4_2; relu1_1 ... relu5_1; TV), each configuration "
        f"in its own process, {a.evals} evaluation(s) each: peak RSS of the whole process (torch itself "
        f"~0.3 GB; targets included), seconds of the last evaluation. Tiled: {a.tile} px cores, halo 80 px "
        f"(exact). The estimate for a tile: {bytes_per_pixel(ext, LAYERS) / 1024:.2f} KB per pixel of "
        "crop with gradients, "
        f"{bytes_per_pixel(ext, LAYERS, grad=False) / 1024:.2f} KB without (`nstlib.checkpoint.bytes_per_pixel`).",
        "", tables(rows, over, a), "",
        "The optimizer's state is not in these figures: L-BFGS keeps 100 pairs of image-sized vectors "
        "(2.4 KB per pixel: 10 GB at 2048 px) untiled and 10 in tiled stages (240 bytes per pixel: 1 GB at "
        "2048 px; `lbfgs_history`), Adam two (24 bytes per pixel).",
    ])
    print("\n" + body)
    if a.doc:
        write_doc(a.doc, body)


if __name__ == "__main__":
    main()
