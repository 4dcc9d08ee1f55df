"""The style-transfer playground: ``Playground(content=..., style=...)`` in a notebook.

Layout: content | style | result side by side at their true aspect ratios (the result largest),
then the controls in three groups: **weights** (alpha, beta, gamma and one weight per style
layer), **layers** (which style layers, the content layer) and **run** (pooling, optimizer,
start image, steps, size, seed, precision, scales, the preview, notebook 06's options), the
buttons, the status line, the loss plot, the snapshots scrubber and the compare box.

**The weights are live**: moving alpha, beta, gamma or a layer weight during a run changes the
objective at the next step of that run (L-BFGS restarts its history, Adam continues; the plot
marks the change). Every other control needs a new setup: **Continue from here** restarts with
the new settings from the current image, **Run** from the chosen start image (both stop a run in
progress first). The run is one :class:`nstlib.Transfer` (:attr:`Playground.spec`) run in a
background thread, so the notebook stays responsive: Stop ends it at the next step and keeps the
best image so far. Save writes the result into ``images/results/`` under a name that encodes the
parameters (never overwriting a file). ``run(wait=True)`` runs in the calling cell instead (for
scripts, tests and "Run all"). Works with ipywidgets 7.7+ and 8.x.
"""
from __future__ import annotations

import html
import threading
import time
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import torch

from ..config import resolve_device
from ..engine import Result
from ..examples import examples
from ..image import ImageSource
from ..transfer import CONTENT_WEIGHT, STYLE_WEIGHT, TV_WEIGHT
from ..vgg import ARCHS, VGGFeatures
from .controls import CONTENT_CHOICES, STYLE_CHOICES, add_buttons, add_controls, layout, read_controls, setup_widgets
from .extras import BeyondControls
from .form import banner_html, build_spec, describe_run
from .live import Compare, Scrubber
from .picker import ImagePicker, image_widget
from .presets import PRESETS, apply_preset
from .runner import (
    PREVIEW_SIDE,
    ExtractorCache,
    PlaygroundRun,
    default_results_dir,
)

__all__ = ["Playground", "CONTENT_CHOICES", "STYLE_CHOICES"]

SNAP = 0.005  # live_weights: a slider closer than 0.5 % to the weight in force has not moved
_ENDED = {"done": "done", "callback": "stopped", "interrupted": "interrupted", "diverged": "diverged"}
_SETUP_NEEDED = "this change needs a new setup: press Continue from here (from the current image) or Run"


class Playground(widgets.VBox):
    """Interactive style transfer; see the module docstring.

    Args:
        content, style: example names, paths or tensors ([1, 3, H, W] in [0, 1]).
        steps, size: initial slider values (default :func:`nstlib.transfer.default_steps` and
            :func:`nstlib.default_size`).
        alpha, beta, gamma: initial content, style and TV weights.
        weights: the VGG weights (``"imagenet"``, a file, ``"random"``), see :class:`nstlib.VGGFeatures`.
        extractor: a built extractor to reuse (it should reach ``relu5_2``); otherwise one is built
            on the first run and rebuilt only when the pooling, precision or ``arch`` changes.
        device: where the optimization runs (default: the extractor's, else the best available).
        results_dir: where Save writes (default ``images/results/`` of the repository).
        preview: start each run with :data:`nstlib.playground.runner.PREVIEW_STEPS` steps at
            ``PREVIEW_SIDE`` px (the first frame within about a second on a CPU), then continue at full size.

    After a run: ``result`` (a :class:`nstlib.Result`) or ``error`` (the exception, also shown
    in the status line).
    """

    def __init__(self, content: ImageSource = "tower_bridge", style: ImageSource = "starry_night", *,
                 steps: int | None = None, size: int | None = None, alpha: float = CONTENT_WEIGHT,
                 beta: float = STYLE_WEIGHT, gamma: float = TV_WEIGHT, optimizer: str = "lbfgs",
                 pooling: str | None = None, arch: str | None = None, seed: int = 0,
                 weights: Any = "imagenet", extractor: VGGFeatures | None = None,
                 device: str | torch.device | None = None, results_dir: str | Path | None = None,
                 fps: float = 4.0, preview: bool = True) -> None:
        dev = extractor.device if extractor is not None else resolve_device(device)
        arch = arch or (extractor.arch if extractor is not None else "vgg19")
        if arch not in ARCHS:
            raise ValueError(f"unknown arch {arch!r}; choose one of {', '.join(ARCHS)}")
        pooling = pooling or (extractor.pooling if extractor is not None else "max")
        self._cache = ExtractorCache(list(dict.fromkeys(CONTENT_CHOICES + STYLE_CHOICES)), weights, dev,
                                     extractor=extractor)
        self.weights_spec, self.device, self.fps = weights, dev, fps
        self.results_dir = Path(results_dir) if results_dir is not None else default_results_dir()
        self.result: Result | None = None
        self.error: BaseException | None = None
        self._run: PlaygroundRun | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._busy = False
        self._warnings: list[str] = []

        self.status = widgets.HTML(value="")
        self.run_info = widgets.HTML(value="")
        self.banner = widgets.HTML(value="")
        self.content_picker = ImagePicker("Content", examples("content"), self.set_status)
        self.style_picker = ImagePicker("Style", examples("style") + examples("texture"), self.set_status)
        self.beyond = BeyondControls(arch, examples("style") + examples("texture"))
        add_controls(self, alpha=alpha, beta=beta, gamma=gamma, optimizer=optimizer, pooling=pooling,
                     steps=steps, size=size, seed=seed, preview=preview, dev=dev)
        self.preset.observe(self._on_preset, names="value")
        add_buttons(self)
        self.image = image_widget("480px")
        self.plot = image_widget("610px")
        self.scrubber = Scrubber(self)
        self.compare = Compare(self)

        super().__init__(layout(self))
        self.content_picker.select(content)
        self.style_picker.select(style)
        for w in setup_widgets(self):
            w.observe(self._on_setup_change, names="value")

    @property
    def arch(self) -> str:
        """The network the next run uses (``"vgg19"`` or ``"vgg16"``, the *network* toggle)."""
        return self.beyond.arch.value

    # --- state -------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """True from Run until the run has ended (in the background or in the calling cell)."""
        return self._busy

    @property
    def params(self) -> dict:
        """The run's parameters as the controls show them now."""
        return read_controls(self)

    def spec(self, init: Any = None):
        """The :class:`nstlib.Transfer` the controls describe now (``init``: a tensor to start
        from instead of the *start from* choice). Raises ValueError naming a bad setting."""
        return build_spec(self.params, weights=self.weights_spec, device=self.device, init=init)

    def live_weights(self) -> dict:
        """The weights the sliders show now, for the running spec's style layers (the engine's
        controls). A log slider within :data:`SNAP` (relative) of the weight in force counts as
        unmoved: the browser snaps a log slider's value to its step (44 -> 43.95) when it draws it."""
        run = self._run
        now = run.weights if run is not None else {}
        keep = lambda key, v: now[key] if key in now and abs(v - now[key]) <= SNAP * now[key] else v  # noqa: E731
        layers = run.spec.style_layers if run is not None else ()
        return dict(content_weight=keep("content_weight", float(self.alpha.value)),
                    style_weight=keep("style_weight", float(self.beta.value)),
                    tv_weight=keep("tv_weight", float(self.gamma.value)),
                    style_layer_weights={n: float(self.layer_w[n].value) for n in layers if n in self.layer_w})

    # --- actions -----------------------------------------------------------------------------
    def run(self, wait: bool = False, init: Any = None) -> Result | None:
        """Start a run with the current settings (from ``init``, a tensor, else the start choice).

        ``wait=False`` (the Run button): in a background thread; returns None at once; a run in
        progress is stopped first. ``wait=True``: in the calling thread; returns the Result and
        re-raises an error (which is also shown in the status line).
        """
        with self._lock:
            if self.running:
                if wait:
                    self.set_status("a run is in progress: press Stop first", error=True)
                    return None
                old, current = self._thread, self._run
                if current is not None:
                    current.stop.set()
                self._thread = threading.Thread(target=self._chain, args=(old, init), daemon=True)
                self._thread.start()
                return None
            try:
                spec = self.spec(init)
            except Exception as e:
                self.error = e
                self.set_status(f"error: {type(e).__name__}: {e}", error=True)
                if wait:
                    raise
                return None
            p = self.params
            names = (p["content_name"], p["style_name"]) + ((p["style2"],) if p["style2"] else ())
            self._run = PlaygroundRun(spec, self, live=self.live_weights, names=names, fps=self.fps,
                                      preview_side=PREVIEW_SIDE if self.preview.value else None)
            self._busy, self.error = True, None
            self.run_info.value = "<small>" + html.escape(describe_run(spec, self._run.steps, init)) + "</small>"
            self.progress.value, self.progress.max = 0, self._run.steps
            self._set_running(True)
            if not wait:
                self._thread = threading.Thread(target=self._work, args=(self._run,), daemon=True,
                                                name="nstlib-playground")
                self._thread.start()
                return None
        self._work(self._run)
        if self.error is not None:
            raise self.error
        return self.result

    def continue_from_here(self, wait: bool = False) -> Result | None:
        """Run with the current settings from the current image (the running one, else the last result)."""
        current = self._run.current if self._run is not None and self.running else None
        if current is None and self.result is not None:
            current = self.result.image
        if current is None:
            self.set_status("nothing to continue from yet: press Run first", error=True)
            return None
        return self.run(wait=wait, init=current)

    def stop(self) -> None:
        """Ask the current run to end at its next step (the best image so far is kept)."""
        if self._run is not None and self.running:
            self._run.stop.set()
            self.set_status("stopping...")

    def wait(self, timeout: float | None = None) -> Result | None:
        """Block until the background run ends (or ``timeout`` seconds); returns :attr:`result`."""
        end = None if timeout is None else time.monotonic() + timeout
        while self._thread is not None:  # a restart chains threads: follow them to the last one
            t = self._thread
            t.join(None if end is None else max(0.0, end - time.monotonic()))
            if self._thread is t or t.is_alive():
                break
        return self.result

    def save(self) -> Path | None:
        """Save the last result into :attr:`results_dir` under its parameter-encoded name."""
        if self.result is None:
            self.set_status("nothing to save yet: press Run first", error=True)
            return None
        try:
            path = self.result.save(folder=self.results_dir)
        except Exception as e:
            self.set_status(f"could not save: {e}", error=True)
            return None
        random = str(self.result.params.get("weights", "")).startswith("random")
        self.set_status(f"saved {path}" + (" (random weights: not a real style transfer)" if random else ""))
        return path

    # --- the View protocol (called from the worker thread) -----------------------------------
    def show_frame(self, png: bytes) -> None:
        self.image.value = png

    def show_plot(self, png: bytes) -> None:
        self.plot.value = png

    def show_progress(self, step: int, steps: int) -> None:
        self.progress.max, self.progress.value = steps, min(step, steps)

    def set_status(self, text: str, error: bool = False) -> None:
        color = "#b00" if error else "#333"
        self.status.value = f'<span style="color:{color}">{html.escape(text)}</span>'

    def warn(self, text: str) -> None:
        """Show a warning once, in the banner (not as stderr under the widget)."""
        if text not in self._warnings:
            self._warnings.append(text)
            self._show_banner()

    # --- internals ---------------------------------------------------------------------------
    def _on_preset(self, change: dict) -> None:
        if change["new"] in PRESETS:
            self.set_status(f"preset {change['new']}: {apply_preset(self, change['new'])}")

    def _on_setup_change(self, change: dict) -> None:
        if self.running:
            self.set_status(_SETUP_NEEDED)

    def _show_banner(self) -> None:
        self.banner.value = banner_html(self._cache.ext, self._warnings)

    def _set_running(self, on: bool) -> None:
        self.stop_button.disabled = not on
        self.save_button.disabled = on or self.result is None

    def _chain(self, old: threading.Thread | None, init: Any) -> None:
        if old is not None:
            old.join()
        self.run(init=init)

    def _work(self, run: PlaygroundRun) -> None:
        try:
            res = run.execute(self._cache)
            if res is not None:
                self.result = res
                loss = res.losses.get("total", float("nan"))
                how = _ENDED.get(res.stopped, res.stopped)
                self.set_status(f"{how} after {len(res.history)} steps in {res.seconds:.1f} s; "
                                f"best total loss {loss:.4g} at step {res.best_step}"
                                + (f"; weights changed {len(run.changes)}x during the run" if run.changes else ""))
                self.scrubber.load(res)
        except Exception as e:  # shown in the UI; run(wait=True) re-raises it
            self.error = e
            self.set_status(f"error: {type(e).__name__}: {e}", error=True)
        finally:
            self._show_banner()
            self._busy = False
            self._set_running(False)
