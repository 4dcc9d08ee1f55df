"""The style-transfer playground: ``Playground(content=..., style=...)`` in a notebook.

Controls: content and style pickers (bundled images or your own upload, with thumbnails); the
weights alpha (content), beta (style) and gamma (TV) on log sliders; the style layers with one
weight each; the content layer; pooling, optimizer, init, steps, size and seed; and notebook 06's
options: colour preservation, the style scale, VGG19 or VGG16, a second style (blended, or
outside a mask) and a mask shape (:mod:`nstlib.playground_extras`). Run starts the
optimization in a background thread, so the notebook stays responsive: Stop ends it at the next
step and keeps the best image so far. The image, the loss plot, the progress bar, a strip of
snapshots and a status line update while it runs. Save writes the result into ``images/results/``
under a name that encodes the parameters (never overwriting a file).

**Moving a control during a run changes the next run, not the current one**: the parameters are
read when Run is pressed. ``run(wait=True)`` runs in the calling cell instead (for scripts, tests
and "Run all"). Works with ipywidgets 7.7+ and 8.x.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import torch

from .color import PRESERVE_COLOR
from .config import default_size, resolve_device
from .engine import OPTIMIZERS, Result
from .examples import examples
from .image import ImageSource
from .playground_extras import BeyondControls
from .playground_picker import LABEL_STYLE as _W, ImagePicker, box as _box
from .playground_runner import ExtractorCache, PlaygroundRun, default_results_dir
from .transfer import CONTENT_WEIGHT, INITS, STYLE_WEIGHT, TV_WEIGHT, default_steps
from .vgg import ARCHS, POOLINGS, VGGFeatures

__all__ = ["Playground", "CONTENT_CHOICES", "STYLE_CHOICES"]

CONTENT_CHOICES = ("relu1_2", "relu2_2", "relu3_2", "relu4_2", "relu5_2")
STYLE_CHOICES = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
_ENDED = {"done": "done", "callback": "stopped", "interrupted": "interrupted", "diverged": "diverged"}


class Playground(widgets.VBox):
    """Interactive style transfer; see the module docstring.

    Args:
        content, style: example names, paths or tensors ([1, 3, H, W] in [0, 1]).
        steps, size: initial slider values (default :func:`nstlib.transfer.default_steps` and
            :func:`nstlib.default_size`).
        alpha, beta, gamma: initial content, style and TV weights.
        weights: the VGG weights (``"imagenet"``, a file, ``"random"``), see :class:`nstlib.VGGFeatures`.
        extractor: a built extractor to reuse (it should reach ``relu5_2``); otherwise one is built
            on the first run and rebuilt only when the pooling or ``arch`` changes.
        device: where the optimization runs (default: the extractor's, else the best available).
        results_dir: where Save writes (default ``images/results/`` of the repository).

    After a run: ``result`` (a :class:`nstlib.Result`) or ``error`` (the exception, also shown
    in the status line).
    """

    def __init__(self, content: ImageSource = "tower_bridge", style: ImageSource = "starry_night", *,
                 steps: int | None = None, size: int | None = None, alpha: float = CONTENT_WEIGHT,
                 beta: float = STYLE_WEIGHT, gamma: float = TV_WEIGHT, optimizer: str = "lbfgs",
                 pooling: str | None = None, arch: str | None = None, seed: int = 0,
                 weights: Any = "imagenet", extractor: VGGFeatures | None = None,
                 device: str | torch.device | None = None, results_dir: str | Path | None = None,
                 fps: float = 4.0) -> None:
        dev = extractor.device if extractor is not None else resolve_device(device)
        arch = arch or (extractor.arch if extractor is not None else "vgg19")
        if arch not in ARCHS:
            raise ValueError(f"unknown arch {arch!r}; choose one of {', '.join(ARCHS)}")
        pooling = pooling or (extractor.pooling if extractor is not None else "max")
        self._cache = ExtractorCache(list(CONTENT_CHOICES + STYLE_CHOICES), weights, dev,
                                     extractor=extractor)
        self.fps = fps
        self.results_dir = Path(results_dir) if results_dir is not None else default_results_dir()
        self.result: Result | None = None
        self.error: BaseException | None = None
        self._run: PlaygroundRun | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._busy = False

        self.status = widgets.HTML(value="")
        self.run_info = widgets.HTML(value="")
        self.banner = widgets.HTML(value="")
        self.content_picker = ImagePicker("Content", examples("content"), self.set_status)
        self.style_picker = ImagePicker("Style", examples("style") + examples("texture"), self.set_status)
        self.beyond = BeyondControls(arch, examples("style") + examples("texture"))
        log = dict(base=10, style=_W, readout_format=".2g", continuous_update=False,
                   layout=widgets.Layout(width="420px"))
        self.alpha = widgets.FloatLogSlider(value=alpha, min=-4, max=4, description="α content", **log)
        self.beta = widgets.FloatLogSlider(value=beta, min=-2, max=9, description="β style", **log)
        self.gamma = widgets.FloatLogSlider(value=gamma, min=-4, max=5, description="γ TV", **log)
        small = dict(style=_W, layout=widgets.Layout(width="300px"))
        self.content_layer = widgets.Dropdown(options=list(CONTENT_CHOICES), value="relu4_2",
                                              description="content layer", **small)
        self.pooling = widgets.ToggleButtons(options=list(POOLINGS), value=pooling, description="pooling",
                                             style=_W)
        self.optimizer = widgets.ToggleButtons(options=list(OPTIMIZERS), value=optimizer,
                                               description="optimizer", style=_W)
        self.init = widgets.Dropdown(options=list(INITS), value="content", description="start from", **small)
        self.steps = widgets.IntSlider(value=steps or default_steps(optimizer), min=1, max=1000,
                                       description="steps", continuous_update=False, **small)
        self.size = widgets.IntSlider(value=size or default_size(dev), min=32, max=1024, step=16,
                                      description="size (px)", continuous_update=False, **small)
        self.seed = widgets.BoundedIntText(value=seed, min=0, max=2**31 - 1, description="seed", **small)
        self.preserve_color = widgets.Dropdown(options=["none", *PRESERVE_COLOR], value="none",
                                               description="keep colours", **small)
        self.style_scale = widgets.FloatSlider(value=1.0, min=0.25, max=2.0, step=0.05, description="style scale",
                                               continuous_update=False, **small)
        self.layer_on = {n: widgets.Checkbox(value=True, description=n, indent=False,
                                             layout=widgets.Layout(width="90px")) for n in STYLE_CHOICES}
        self.layer_w = {n: widgets.BoundedFloatText(value=1.0, min=0.0, max=1e6, step=0.1,
                                                    layout=widgets.Layout(width="80px"))
                        for n in STYLE_CHOICES}
        self.run_button = widgets.Button(description="Run", button_style="success", icon="play")
        self.stop_button = widgets.Button(description="Stop", button_style="danger", icon="stop",
                                          disabled=True)
        self.save_button = widgets.Button(description="Save", icon="save", disabled=True)
        self.run_button.on_click(lambda b: self.run())
        self.stop_button.on_click(lambda b: self.stop())
        self.save_button.on_click(lambda b: self.save())
        self.progress = widgets.IntProgress(value=0, min=0, max=1, description="progress", style=_W)
        self.image = widgets.Image(format="png", layout=widgets.Layout(width="320px", height="auto"))
        self.plot = widgets.Image(format="png", layout=widgets.Layout(width="340px", height="auto"))
        self.strip = widgets.HBox([], layout=widgets.Layout(overflow="auto", min_height="20px"))
        layers = _box([widgets.HTML("<b>style layers</b> (weight w<sub>l</sub>)")]
                      + [_box([self.layer_on[n], self.layer_w[n]], vertical=False) for n in STYLE_CHOICES])
        note = widgets.HTML("<small>Controls moved during a run apply to the <b>next</b> run.</small>")
        super().__init__([
            self.banner,
            _box([self.content_picker.box, self.style_picker.box], vertical=False),
            _box([_box([self.alpha, self.beta, self.gamma, self.content_layer, self.init, self.steps,
                        self.size, self.seed, self.preserve_color, self.style_scale]),
                  _box([self.pooling, self.optimizer, layers, self.beyond.box])], vertical=False),
            _box([self.run_button, self.stop_button, self.save_button, self.progress], vertical=False),
            note, self.run_info, _box([self.image, self.plot], vertical=False), self.strip, self.status])
        for name in ("alpha", "beta", "gamma", "steps", "size", "image", "plot", "status", "run_info",
                     "run_button", "stop_button", "save_button", "progress", "strip", "banner"):
            getattr(self, name).add_class(f"nstlib-{name.replace('_', '-')}")  # for the browser test
        self.content_picker.select(content)
        self.style_picker.select(style)

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
        (content, cname), (style, sname) = self.content_picker.current, self.style_picker.current
        on = [n for n in STYLE_CHOICES if self.layer_on[n].value]
        return dict(content=content, content_name=cname, style=style, style_name=sname,
                    alpha=float(self.alpha.value), beta=float(self.beta.value),
                    gamma=float(self.gamma.value), content_layer=self.content_layer.value,
                    style_layers=on, style_layer_weights={n: float(self.layer_w[n].value) for n in on},
                    pooling=self.pooling.value, optimizer=self.optimizer.value, init=self.init.value,
                    steps=int(self.steps.value), size=int(self.size.value), seed=int(self.seed.value),
                    style_scale=float(self.style_scale.value), **self.beyond.params,
                    preserve_color=None if self.preserve_color.value == "none" else self.preserve_color.value)

    # --- actions -----------------------------------------------------------------------------
    def run(self, wait: bool = False) -> Result | None:
        """Start a run with the current settings.

        ``wait=False`` (the Run button): in a background thread; returns None at once.
        ``wait=True``: in the calling thread; returns the Result and re-raises an error (which is
        also shown in the status line).
        """
        with self._lock:
            if self.running:
                self.set_status("a run is in progress: press Stop first", error=True)
                return None
            self._run = PlaygroundRun(self.params, self, fps=self.fps)
            self._busy, self.error = True, None
            p = self._run.params
            self.run_info.value = (f"<small>this run: α={p['alpha']:.3g}, β={p['beta']:.3g}, "
                                   f"γ={p['gamma']:.3g}, content {p['content_layer']}, "
                                   f"{len(p['style_layers'])} style layers, {p['pooling']} pooling, "
                                   f"{p['optimizer']}, {p['steps']} steps, {p['size']} px, {p['arch']}"
                                   + (f", second style {p['style2']} ({p['style2_mode']})" if p["style2"] else "")
                                   + (f", style inside the {p['mask_shape']}" if p["mask_shape"] != "none" else "")
                                   + "</small>")
            self.strip.children = ()
            self.progress.value, self.progress.max = 0, int(self._run.params["steps"])
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

    def stop(self) -> None:
        """Ask the current run to end at its next step (the best image so far is kept)."""
        if self._run is not None and self.running:
            self._run.stop.set()
            self.set_status("stopping...")

    def wait(self, timeout: float | None = None) -> Result | None:
        """Block until the background run ends (or ``timeout`` seconds); returns :attr:`result`."""
        if self._thread is not None:
            self._thread.join(timeout)
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

    def add_snapshot(self, step: int, png: bytes) -> None:
        tile = _box([widgets.Image(value=png, format="png", layout=widgets.Layout(width="72px")),
                     widgets.Label(f"step {step}")], width="80px")
        self.strip.children = tuple(self.strip.children) + (tile,)

    def set_status(self, text: str, error: bool = False) -> None:
        import html
        color = "#b00" if error else "#333"
        self.status.value = f'<span style="color:{color}">{html.escape(text)}</span>'

    # --- internals ---------------------------------------------------------------------------
    def _set_running(self, on: bool) -> None:
        self.run_button.disabled = on
        self.stop_button.disabled = not on
        self.save_button.disabled = on or self.result is None

    def _work(self, run: PlaygroundRun) -> None:
        try:
            res = run.execute(self._cache)
            if res is not None:
                self.result = res
                loss = res.losses.get("total", float("nan"))
                how = _ENDED.get(res.stopped, res.stopped)
                self.set_status(f"{how} after {len(res.history)} steps in {res.seconds:.1f} s; "
                                f"best total loss {loss:.4g} at step {res.best_step}")
        except Exception as e:  # shown in the UI; run(wait=True) re-raises it
            self.error = e
            self.set_status(f"error: {type(e).__name__}: {e}", error=True)
        finally:
            ext = self._cache.ext
            if ext is not None and not ext.pretrained:
                self.banner.value = ('<div style="border:2px solid #c00;background:#fee;color:#900;'
                                     'padding:4px;font-weight:bold">&#9888; RANDOM WEIGHTS '
                                     f'({ext.weights_source}): these images are NOT style-transfer '
                                     'results.</div>')
            self._busy = False
            self._set_running(False)
