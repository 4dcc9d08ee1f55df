"""How long a class waits in the playground (issue 16), on this machine:

* Run -> first frame, at the CPU default size (``nstlib.default_size``), with the quick preview
  (the first steps at ``PREVIEW_SIDE`` px) and without it, the VGG network already built
  (the playground builds it once and reuses it);
* a beta slider move during a run -> the first step computed with the new beta (live weights)
  and the first frame shown after it.

    PYTHONPATH=$PWD NSTLIB_OFFLINE=1 python benchmarks/playground_latency.py [--size 256] [--repeats 2]

Prints one line per figure (seconds; the median of ``--repeats`` runs). Random weights are as fast as
pretrained ones, so the figures hold offline.
"""
from __future__ import annotations

import argparse
import statistics
import time

import nstlib
from nstlib.playground.app import CONTENT_CHOICES, STYLE_CHOICES, Playground


def first_frame(pg: Playground, preview: bool) -> float:
    """Seconds from pressing Run to the first frame in the image widget."""
    pg.preview.value = preview
    shown = []
    frame = pg.show_frame
    pg.show_frame = lambda png: (shown.append(time.perf_counter()), frame(png))
    t0 = time.perf_counter()
    pg.run_button.click()
    while not shown:
        time.sleep(0.005)
    pg.stop()
    pg.wait()
    pg.show_frame = frame
    return shown[0] - t0


def slider_latency(pg: Playground) -> tuple[float, float]:
    """Seconds from a beta move during a run to (the first callback whose step ran under it, the next
    frame shown after it). The engine applies it at its next step; the callback (which records the
    history the view sees) comes every ``steps // 100`` steps."""
    pg.preview.value = False
    shown = []
    frame = pg.show_frame
    pg.show_frame = lambda png: (shown.append(time.perf_counter()), frame(png))
    pg.run_button.click()
    while pg.progress.value < 3:
        time.sleep(0.005)
    beta = pg.beta.value * 10
    t0 = time.perf_counter()
    pg.beta.value = beta
    while not any(h["style_weight"] == beta for h in pg._run.history):
        time.sleep(0.002)
    step = time.perf_counter() - t0
    while not [t for t in shown if t > t0 + step]:
        time.sleep(0.002)
    seen = [t for t in shown if t > t0 + step][0] - t0
    pg.stop()
    pg.wait()
    pg.show_frame = frame
    pg.beta.value = beta / 10
    return step, seen


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=nstlib.default_size("cpu"))
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args()
    ext = nstlib.VGGFeatures(layers=list(CONTENT_CHOICES + STYLE_CHOICES), weights="random", device="cpu")
    pg = Playground("tower_bridge", "starry_night", steps=300, size=a.size, extractor=ext, weights="random")
    cold = first_frame(pg, True)  # the first run in a process also pays one-off costs (imports, caches)
    print(f"playground Run -> first frame, first run in the process (cold), {a.size} px, preview on: {cold:.2f} s")
    for preview in (True, False):
        t = [first_frame(pg, preview) for _ in range(a.repeats)]
        print(f"playground Run -> first frame, {a.size} px, preview {'on' if preview else 'off'}: "
              f"{statistics.median(t):.2f} s (runs: {', '.join(f'{x:.2f}' for x in t)})")
    lat = [slider_latency(pg) for _ in range(a.repeats)]
    print(f"playground beta move -> first reported step under it: {statistics.median(x for x, _ in lat):.2f} s; "
          f"-> next frame shown: {statistics.median(y for _, y in lat):.2f} s ({a.size} px, lbfgs, "
          f"{pg.steps.value} steps, a frame every {max(1, pg.steps.value // 100)} steps)")


if __name__ == "__main__":
    main()
