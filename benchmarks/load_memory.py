"""Peak memory of ``load_image(path, size=...)`` for a huge image, per PIL mode (issue 15).

    python benchmarks/load_memory.py                      # 9000x9000 RGBA PNG at size=256
    python benchmarks/load_memory.py --modes RGBA I;16 LA P F --side 9000 --size 256
    python benchmarks/load_memory.py --lib /path/to/other/checkout   # the same, another nstlib
    python benchmarks/load_memory.py --quick --device cuda          # a smoke run: 1000 px, onto the GPU

Each load runs in a fresh process that imports nstlib first; the figure is the peak of its resident
set during the load minus the resident set just before it (the baseline). On Linux the peak is
``VmHWM``, reset just before the load: ``ru_maxrss`` is kept across ``exec`` and would start at
the size of the process that launched it. Prints one
JSON line per mode: file and decoded sizes, peak RSS above the baseline (MB), seconds.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from common import add_options  # benchmarks/common.py
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
BYTES_PER_PIXEL = {"1": 1 / 8, "L": 1, "P": 1, "LA": 2, "I;16": 2, "RGB": 3}  # others: 4
LOAD = """
import resource, sys, time
import nstlib
def status(key):  # kB in /proc/self/status (Linux)
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + ":"))
try:  # peak = high-water mark of this process's own memory, reset to now (Linux >= 4.0)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before, peak = status("VmRSS"), lambda: status("VmHWM")
except OSError:  # elsewhere: ru_maxrss (which may count memory from before the load)
    before, peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
img = nstlib.load_image(sys.argv[1], size=int(sys.argv[2]), device=sys.argv[3])
seconds = time.perf_counter() - t0
print(tuple(img.shape), (peak() - before) / 1024, seconds)
"""


def make(mode: str, side: int, folder: Path) -> Path:
    """A side x side image in ``mode`` with non-constant pixels (a diagonal ramp), as PNG or TIFF."""
    ramp = (np.add.outer(np.arange(side, dtype=np.int32), np.arange(side, dtype=np.int32)) % 251).astype(np.uint8)
    if mode == "I;16":
        img = Image.fromarray(ramp.astype(np.uint16) * 257)
    elif mode == "I":
        img = Image.fromarray(ramp.astype(np.int32) * 257)
    elif mode == "F":
        img = Image.fromarray(ramp.astype(np.float32) / 255.0, "F")
    else:
        grey = Image.fromarray(ramp)
        img = Image.merge("RGBA", [grey, grey, grey, Image.fromarray(255 - ramp)])
        img = img.convert("RGB").quantize(64) if mode == "P" else img.convert(mode)
        del grey
    del ramp
    path = folder / f"{side}_{mode.replace(';', '')}.{'tif' if mode in ('I', 'F', 'CMYK') else 'png'}"
    img.save(path, **({"compress_level": 1} if path.suffix == ".png" else {}))
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--modes", nargs="+", default=["RGBA"])
    ap.add_argument("--side", type=int, default=9000)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--lib", default=str(ROOT), help="the checkout whose nstlib is measured")
    add_options(ap)
    args = ap.parse_args()
    if args.quick:
        args.modes, args.side = args.modes[:1], 1000
    env = {**os.environ, "PYTHONPATH": args.lib, "NSTLIB_OFFLINE": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in args.modes:
            path = make(mode, args.side, Path(tmp))
            out = subprocess.run([sys.executable, "-c", LOAD, str(path), str(args.size), args.device], env=env,
                                 capture_output=True, text=True, timeout=1200, cwd=tmp)  # not this folder: -c puts the cwd first on sys.path
            row = {"mode": mode, "side": args.side, "size": args.size, "device": args.device, "lib": args.lib,
                   "file_mb": round(path.stat().st_size / 2**20, 1),
                   "decoded_mb": round(args.side ** 2 * BYTES_PER_PIXEL.get(mode, 4) / 2**20)}
            if out.returncode != 0:
                row["error"] = out.stderr.strip().splitlines()[-1][:200] if out.stderr.strip() else str(out.returncode)
            else:
                shape, grown, seconds = out.stdout.rsplit(")", 1)[0] + ")", *out.stdout.rsplit(")", 1)[1].split()
                row.update(shape=shape, peak_rss_above_baseline_mb=round(float(grown)), seconds=round(float(seconds), 2))
            print(json.dumps(row), flush=True)
            path.unlink()


if __name__ == "__main__":
    main()
