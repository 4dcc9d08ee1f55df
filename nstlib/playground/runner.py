"""The engine room of :class:`nstlib.playground.Playground`: one live run, its view, and helpers.

Nothing here imports ipywidgets, so it is tested without a browser. A :class:`PlaygroundRun`
runs one :class:`nstlib.Transfer` with :func:`nstlib.run` and

* **live weights**: ``controls(step)`` (polled by the engine at the top of every step) returns
  the weights the view shows *now* (``live()``), so alpha, beta, gamma and the per-layer style
  weights moved during a run take effect at the next step; every change is recorded in
  :attr:`PlaygroundRun.changes` (the loss plot marks them);
* **progressive preview**: with ``preview_side`` set and a larger image, the first
  ``preview_steps`` steps run at ``preview_side`` px (the first frame in well under a second on a
  CPU), then the run continues at full size from the preview image (coarse to fine);
* pushes a PNG of the current image at most ``fps`` times a second (the first at once), redraws
  the loss plot at most once a second, moves the progress bar; Stop ends it at the next step
  (the best image so far is kept);
* collects the run's warnings (``RandomWeightsWarning``...) and hands each one to the view once
  (``view.warn``) instead of letting them reach stderr under the widget.

The view is any object with the methods of :class:`View` (the Playground's widgets).
"""
from __future__ import annotations

import dataclasses
import io
import threading
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable, Protocol

import torch

from ..engine import Result
from ..image import resize
from ..save import to_pil
from ..spec import Transfer, format_name, option_tags
from ..transfer import run
from ..vgg import VGGFeatures

__all__ = ["png_bytes", "loss_plot_png", "uploaded_files", "PlaygroundRun", "ExtractorCache", "View",
           "LIVE_KEYS", "PREVIEW_SIDE", "PREVIEW_STEPS"]

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
LIVE_KEYS = ("content_weight", "style_weight", "tv_weight", "style_layer_weights")
PREVIEW_SIDE, PREVIEW_STEPS = 64, 10  # the quick first frames: 64 px for 10 steps


class View(Protocol):
    """What a run reports to (all methods are called from the worker thread)."""

    def show_frame(self, png: bytes) -> None: ...
    def show_plot(self, png: bytes) -> None: ...
    def show_progress(self, step: int, steps: int) -> None: ...
    def set_status(self, text: str, error: bool = False) -> None: ...
    def warn(self, text: str) -> None: ...


def png_bytes(img: torch.Tensor, max_side: int | None = None) -> bytes:
    """PNG file bytes of an image [1, 3, H, W] in [0, 1], optionally shrunk to ``max_side``."""
    if max_side is not None and max(img.shape[-2:]) > max_side:
        img = resize(img.detach().float().cpu(), max_side)
    buf = io.BytesIO()
    to_pil(img).save(buf, format="PNG")
    return buf.getvalue()


def loss_plot_png(history: list[dict], marks: Sequence[tuple[int, str]] = (), title: str = "") -> bytes:
    """PNG of the loss curves (weighted terms and total | unweighted terms) against step, with
    the weight changes ``marks`` ``[(step, label)]`` drawn as vertical lines. No pyplot: thread-safe."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from ..plot import plot_history
    fig = Figure(figsize=(7.6, 2.9), dpi=80)
    FigureCanvasAgg(fig)
    weighted, raw = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    plot_history({"": history}, keys=("total", "α·content", "β·style", "γ·tv"), ax=weighted, marks=marks)
    plot_history({"": history}, keys=("content", "style", "tv"), ax=raw, marks=marks)
    weighted.set_title(title or "weighted (what is minimized)", fontsize=9)
    raw.set_title("unweighted terms", fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def uploaded_files(value: Any) -> list[tuple[str, bytes]]:
    """``[(file name, bytes)]`` from a ``FileUpload.value`` of ipywidgets 8 or 7.

    ipywidgets 8: a tuple of dicts ``{"name", "type", "size", "content", "last_modified"}`` with
    ``content`` a memoryview. ipywidgets 7: a dict ``{name: {"metadata": {...}, "content": bytes}}``.
    """
    if not value:
        return []
    out = []
    if isinstance(value, dict):  # ipywidgets 7
        for name, item in value.items():
            meta = item.get("metadata", {}) if isinstance(item, dict) else {}
            out.append((str(meta.get("name", name)), bytes(item["content"])))
    else:  # ipywidgets 8
        for item in value:
            out.append((str(item["name"]), bytes(item["content"])))
    return out


class ExtractorCache:
    """One :class:`VGGFeatures`, rebuilt only when the architecture, pooling or precision changes."""

    def __init__(self, layers: list[str], weights: Any, device: torch.device, seed: int = 0,
                 extractor: VGGFeatures | None = None) -> None:
        self.layers, self.weights, self.device, self.seed = list(layers), weights, device, seed
        self.ext = extractor
        self.builds = 0  # how many extractors this cache has built (tests check the reuse)

    def get(self, arch: str, pooling: str, precision: str = "fp32") -> VGGFeatures:
        ext = self.ext
        if ext is None or ext.arch != arch or ext.pooling != pooling or \
                getattr(ext, "precision", "fp32") != precision:
            self.ext = None  # free the old network before building the new one
            seed = ext.seed if ext is not None else self.seed
            ext = VGGFeatures(arch, self.layers, pooling=pooling, weights=self.weights,
                              device=self.device, seed=seed, precision=precision)
            self.ext = ext
            self.builds += 1
        return ext


def weight_label(old: dict, new: dict) -> str:
    """``"β→1e+05"``: what changed between two weight dicts (for the plot's marks)."""
    sym = {"content_weight": "α", "style_weight": "β", "tv_weight": "γ", "style_layer_weights": "w_l"}
    parts = [f"{sym[k]}→{new[k]:.2g}" if k != "style_layer_weights" else "w_l"
             for k in LIVE_KEYS if new.get(k) is not None and new.get(k) != old.get(k)]
    return ", ".join(parts)


class PlaygroundRun:
    """One run of ``spec`` (a :class:`nstlib.Transfer`) shown on ``view``.

    ``live()`` returns the weights in force now (keys :data:`LIVE_KEYS`; None: the spec's);
    ``names`` = (content name, style name) for the result's file name; ``stop`` (an Event) ends
    the run at the next step. :attr:`current` is the latest image (for "continue from here").
    """

    def __init__(self, spec: Transfer, view: View, live: Callable[[], dict | None] | None = None,
                 names: tuple[str, ...] = ("content", "style"), fps: float = 4.0,
                 plot_every_s: float = 1.0, preview_side: int | None = None,
                 preview_steps: int = PREVIEW_STEPS, clock: Callable[[], float] = time.monotonic) -> None:
        self.spec, self.view, self.live, self.names, self.clock = spec, view, live, names, clock
        self.stop = threading.Event()
        self.frame_interval, self.plot_interval = 1.0 / fps, plot_every_s
        self.preview_side, self.preview_steps = preview_side, preview_steps
        steps = spec.resolved().steps  # per stage with scales
        self.steps = steps if isinstance(steps, int) else sum(steps or ())
        self.weights: dict = spec.loss_weights()
        self.history: list[dict] = []  # the full-size stage's steps as the callback saw them
        self.changes: list[tuple[int, str]] = []  # (step, "β→1e+05"): weight changes during the run
        self.current: torch.Tensor | None = None
        self.frames = 0  # PNG frames pushed to the view
        self.first_frame_s: float | None = None  # seconds from execute() to the first frame
        self.stage = "full"
        self._t0 = clock()
        self._last_frame = self._last_plot = -1e9

    def controls(self, step: int) -> dict | None:
        """The engine's live-weights hook: the view's weights now; records each change."""
        new = self.live() if self.live is not None else None
        if not new:
            return None
        new = {k: v for k, v in new.items() if v is not None}
        if any(new.get(k) != self.weights.get(k) for k in new):
            if self.stage == "full":
                self.changes.append((step, weight_label(self.weights, new)))
            self.weights = {**self.weights, **new}
        return new

    def callback(self, step: int, image: torch.Tensor, losses: dict) -> bool:
        """The engine's callback: show the step; returns False (stop) once :attr:`stop` is set."""
        if self.stop.is_set():
            return False
        self.current = image
        w = self.weights
        if self.stage == "full":
            self.history.append({"step": step, **{k: float(losses.get(k, 0.0)) for k in ("total", "content",
                                 "style", "tv")}, **{k: w[k] for k in LIVE_KEYS[:3]}})
            self.view.show_progress(step, self.steps)
        now = self.clock()
        if now - self._last_frame >= self.frame_interval or self.frames == 0:
            self._last_frame = now
            self.view.show_frame(png_bytes(image))
            if self.frames == 0:
                self.first_frame_s = now - self._t0
            self.frames += 1
        if self.stage == "full" and now - self._last_plot >= self.plot_interval:
            self._last_plot = now
            self.view.show_plot(loss_plot_png(self.history, self.changes))
        where = f"preview at {self.preview_side} px, step {step}" if self.stage == "preview" else \
            f"step {step}/{self.steps}"
        self.view.set_status(f"{where}: total loss {losses['total']:.4g} (α={w['content_weight']:.3g}, "
                             f"β={w['style_weight']:.3g}, γ={w['tv_weight']:.3g})")
        return not self.stop.is_set()

    def execute(self, cache: ExtractorCache) -> Result | None:
        """Run to the end (or until stopped); returns the Result (None if stopped before it began).
        Warnings raised meanwhile go to ``view.warn`` (once each), not to stderr."""
        self._t0 = self.clock()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default")
            try:
                return self._execute(cache)
            finally:
                for text in dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in caught):
                    self.view.warn(text)

    def _execute(self, cache: ExtractorCache) -> Result | None:
        spec = self.spec
        self.view.set_status(f"preparing the VGG network ({spec.arch}, {spec.pooling} pooling)...")
        ext = cache.get(spec.arch, spec.pooling, spec.precision)
        if self.stop.is_set():
            self.view.set_status("stopped before the run began")
            return None
        side = spec.resolved().size
        if self.preview_side and spec.scales is None and isinstance(side, int) and side > self.preview_side:
            self.stage = "preview"
            first = run(dataclasses.replace(spec, size=self.preview_side, every=1,
                                            steps=min(self.preview_steps, self.steps)),
                        extractor=ext, callback=self.callback, controls=self.controls)
            if first.stopped != "done" or self.stop.is_set():
                return self._finish(first)
            spec = dataclasses.replace(spec, init=first.image)  # coarse to fine: continue at full size
        self.stage = "full"
        self.view.set_status("computing the targets...")
        return self._finish(run(spec, extractor=ext, callback=self.callback, controls=self.controls))

    def _finish(self, result: Result) -> Result:
        style = self.names[1] + "".join(f"+{s}" for s in self.names[2:])
        p = result.params
        p.update((k, self.weights[k]) for k in LIVE_KEYS[:3])  # the weights in force at the end
        result.name = format_name(self.names[0], style, p["optimizer"], p["content_weight"],
                                  p["style_weight"], p["tv_weight"], p["size"], tags=option_tags(p))
        p.update(content_name=self.names[0], style_name=self.names[1])
        if result.history:  # the final view: the best image, the whole loss curve
            self.view.show_frame(png_bytes(result.image))
            self.view.show_plot(loss_plot_png(result.history, self.changes if self.stage == "full" else []))
            self.view.show_progress(len(result.history), self.steps)
            self.frames += 1
        return result


def default_results_dir() -> Path:
    """``images/results/`` of the course repository (or of the current folder if not in one)."""
    from ..examples import images_dir
    try:
        root = images_dir()
    except Exception:
        return Path.cwd() / "images" / "results"
    if (root.parent / "pyproject.toml").is_file():
        return root / "results"
    return Path.cwd() / "images" / "results"
