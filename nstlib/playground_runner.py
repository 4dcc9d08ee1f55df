"""The engine room of :class:`nstlib.widgets.Playground`: one run, its live view, and helpers.

Nothing here imports ipywidgets, so it is tested without a browser. A :class:`PlaygroundRun`
calls :func:`nstlib.stylize` with a shared extractor and a callback that

* checks the stop flag (Stop ends the run at the next callback; the best image is kept),
* pushes a PNG of the current image to the view at most ``fps`` times a second,
* redraws the loss plot at most once a second, moves the progress bar,
* adds a thumbnail to the snapshot strip every ``steps / strip`` steps.

The view is any object with the methods of :class:`View` (the Playground's widgets).
"""
from __future__ import annotations

import io
import threading
import time
from pathlib import Path
from typing import Any, Callable, Protocol

import torch

from .engine import Result
from .image import load_image, resize, to_pil
from .masks import shape_mask
from .transfer import format_name, option_tags, stylize
from .vgg import VGGFeatures

__all__ = ["png_bytes", "loss_plot_png", "uploaded_files", "PlaygroundRun", "ExtractorCache", "View"]

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class View(Protocol):
    """What a run reports to (all methods are called from the worker thread)."""

    def show_frame(self, png: bytes) -> None: ...
    def show_plot(self, png: bytes) -> None: ...
    def show_progress(self, step: int, steps: int) -> None: ...
    def add_snapshot(self, step: int, png: bytes) -> None: ...
    def set_status(self, text: str, error: bool = False) -> None: ...


def png_bytes(img: torch.Tensor, max_side: int | None = None) -> bytes:
    """PNG file bytes of an image [1, 3, H, W] in [0, 1], optionally shrunk to ``max_side``."""
    if max_side is not None and max(img.shape[-2:]) > max_side:
        img = resize(img.detach().float().cpu(), max_side)
    buf = io.BytesIO()
    to_pil(img).save(buf, format="PNG")
    return buf.getvalue()


def loss_plot_png(history: list[dict], title: str = "") -> bytes:
    """PNG of the unweighted content, style and TV losses against step (no pyplot: thread-safe)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from .plot import plot_history
    fig = Figure(figsize=(4.2, 2.8), dpi=80)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    keys = tuple(k for k in ("content", "style", "tv") if any(h[k] > 0 for h in history)) or ("total",)
    plot_history({"": history}, keys=keys, ax=ax)
    ax.set_title(title or "losses (unweighted)", fontsize=9)
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
    """One :class:`VGGFeatures`, rebuilt only when the architecture or the pooling changes."""

    def __init__(self, layers: list[str], weights: Any, device: torch.device, seed: int = 0,
                 extractor: VGGFeatures | None = None) -> None:
        self.layers, self.weights, self.device, self.seed = list(layers), weights, device, seed
        self.ext = extractor
        self.builds = 0  # how many extractors this cache has built (tests check the reuse)

    def get(self, arch: str, pooling: str) -> VGGFeatures:
        ext = self.ext
        if ext is None or ext.arch != arch or ext.pooling != pooling:
            self.ext = None  # free the old network before building the new one
            seed = ext.seed if ext is not None else self.seed
            ext = VGGFeatures(arch, self.layers, pooling=pooling, weights=self.weights,
                              device=self.device, seed=seed)
            self.ext = ext
            self.builds += 1
        return ext


class PlaygroundRun:
    """One optimization with frozen parameters ``params`` (a dict, see ``Playground.params``).

    ``stop`` (a :class:`threading.Event`) ends it at the next callback. The parameters are copied
    when the run is made: widgets moved during the run affect only the next run.
    """

    def __init__(self, params: dict, view: View, fps: float = 4.0, plot_every_s: float = 1.0,
                 strip: int = 8, clock: Callable[[], float] = time.monotonic) -> None:
        self.params = dict(params)
        self.clock = clock
        self.view = view
        self.stop = threading.Event()
        self.frame_interval = 1.0 / fps
        self.plot_interval = plot_every_s
        self.history: list[dict] = []
        self.frames = 0  # PNG frames pushed to the view
        steps = int(self.params["steps"])
        self.every = max(1, steps // 100)  # callback period (also the engine's snapshot period)
        self.strip_every = max(self.every, -(-steps // strip))
        self._last_frame = self._last_plot = -1e9
        self._next_strip = self.strip_every

    def callback(self, step: int, image: torch.Tensor, losses: dict) -> bool:
        """The engine's callback: returns False (stop) once :attr:`stop` is set."""
        if self.stop.is_set():
            return False
        steps = int(self.params["steps"])
        self.history.append({"step": step, **{k: float(losses.get(k, 0.0))
                                               for k in ("total", "content", "style", "tv")}})
        self.view.show_progress(step, steps)
        now = self.clock()
        if now - self._last_frame >= self.frame_interval:
            self._last_frame = now
            self.view.show_frame(png_bytes(image))
            self.frames += 1
        if now - self._last_plot >= self.plot_interval:
            self._last_plot = now
            self.view.show_plot(loss_plot_png(self.history))
        if step >= self._next_strip and step < steps:
            self._next_strip += self.strip_every
            self.view.add_snapshot(step, png_bytes(image, max_side=96))
        self.view.set_status(f"step {step}/{steps}: total loss {losses['total']:.4g}")
        return not self.stop.is_set()

    def execute(self, cache: ExtractorCache) -> Result | None:
        """Run to the end (or until stopped); returns the Result (None if stopped before it began)."""
        p = self.params
        self.view.set_status(f"preparing the VGG network ({p['arch']}, {p['pooling']} pooling)...")
        ext = cache.get(p["arch"], p["pooling"])
        if self.stop.is_set():
            self.view.set_status("stopped before the run began")
            return None
        self.view.set_status("computing the targets...")
        content = load_image(p["content"], size=int(p["size"]), device="cpu")  # loaded once; sizes the mask
        result = stylize(content, content_weight=p["alpha"], style_weight=p["beta"],
                         tv_weight=p["gamma"], content_layers=[p["content_layer"]],
                         style_layers=p["style_layers"], style_layer_weights=p["style_layer_weights"],
                         optimizer=p["optimizer"], steps=int(p["steps"]), init=p["init"],
                         extractor=ext, size=int(p["size"]), seed=int(p["seed"]),
                         callback=self.callback, every=self.every, preserve_color=p.get("preserve_color"),
                         style_scale=float(p.get("style_scale", 1.0)),
                         **stylize_options(p, tuple(content.shape[-2:])))
        style_name = p["style_name"] + (f"+{p['style2']}" if p.get("style2") else "")
        result.name = format_name(p["content_name"], style_name, p["optimizer"], p["alpha"],
                                  p["beta"], p["gamma"], result.params["size"],
                                  tags=option_tags(result.params))
        result.params.update(content_name=p["content_name"], style_name=p["style_name"])
        if result.history:  # the final view: the best image, the whole loss curve
            self.view.show_frame(png_bytes(result.image))
            self.view.show_plot(loss_plot_png(result.history))
            self.view.show_progress(len(result.history), int(p["steps"]))
            self.frames += 1
        return result


def stylize_options(p: dict, content_shape: tuple[int, int]) -> dict[str, Any]:
    """The :func:`nstlib.stylize` arguments for the style(s) and mask of a playground run ``p``."""
    style2, mask = p.get("style2"), shape_mask(p.get("mask_shape", "none"), *content_shape)
    if style2 is not None and p.get("style2_mode") == "outside" and mask is None:
        raise ValueError(f"the second style ({style2}) goes outside the mask, and no mask is chosen: "
                         "pick a shape under 'style inside', or use the second style to blend")
    if style2 is not None and p.get("style2_mode") == "blend":
        return dict(style=[p["style"], style2], style_blend=[p["blend"], 1.0 - p["blend"]], mask=mask)
    return dict(style=p["style"], mask=mask, style_outside=style2)


def default_results_dir() -> Path:
    """``images/results/`` of the course repository (or of the current folder if not in one)."""
    from .examples import images_dir
    try:
        root = images_dir()
    except Exception:
        return Path.cwd() / "images" / "results"
    if (root.parent / "pyproject.toml").is_file():
        return root / "results"
    return Path.cwd() / "images" / "results"
