"""The control widgets of :class:`nstlib.playground.Playground` and its layout (set as its attributes).

:func:`add_controls` makes the weights (alpha, beta, gamma on log sliders, live; one weight per
style layer), the layers (checkboxes, the content layer) and the run settings (pooling,
optimizer, start image, steps, size, seed, lr, precision, scales, the quick preview, keep
colours, style scale); :func:`layout` places content | style | result (| pinned) in one row, the
buttons, the status line, the loss plot and the scrubber under them, then the control groups.
"""
from __future__ import annotations

from typing import Any

import ipywidgets as widgets

from ..color import PRESERVE_COLOR
from ..config import default_size
from ..engine import OPTIMIZERS
from ..precision import PRECISIONS
from ..transfer import INITS, STYLE_LAYERS, default_steps
from ..vgg import POOLINGS
from .form import SCALES
from .picker import LABEL_STYLE as _W
from .picker import box as _box
from .presets import PRESETS
from .runner import PREVIEW_SIDE

__all__ = ["add_controls", "add_buttons", "read_controls", "setup_widgets", "layout",
           "CONTENT_CHOICES", "STYLE_CHOICES"]

CONTENT_CHOICES = ("relu1_2", "relu2_2", "relu3_2", "relu4_2", "relu5_2")
STYLE_CHOICES = ("relu1_1", "relu1_2", "relu2_1", "relu2_2", "relu3_1", "relu4_1", "relu5_1")


def add_controls(pg: Any, *, alpha: float, beta: float, gamma: float, optimizer: str, pooling: str,
                 steps: int | None, size: int | None, seed: int, preview: bool, dev: Any) -> None:
    """Make the control widgets as attributes of ``pg`` (``pg.alpha``, ``pg.steps``...)."""
    log = dict(base=10, step=0.001, style=_W, readout_format=".3g", continuous_update=True,
               layout=widgets.Layout(width="400px"))
    pg.alpha = widgets.FloatLogSlider(value=alpha, min=-4, max=4, description="α content", **log)
    pg.beta = widgets.FloatLogSlider(value=beta, min=-2, max=9, description="β style", **log)
    pg.gamma = widgets.FloatLogSlider(value=gamma, min=-4, max=5, description="γ TV", **log)
    small = dict(style=_W, layout=widgets.Layout(width="300px"))
    pg.content_layer = widgets.Dropdown(options=list(CONTENT_CHOICES), value="relu4_2",
                                          description="content layer", **small)
    pg.pooling = widgets.ToggleButtons(options=list(POOLINGS), value=pooling, description="pooling", style=_W)
    pg.optimizer = widgets.ToggleButtons(options=list(OPTIMIZERS), value=optimizer,
                                           description="optimizer", style=_W)
    pg.init = widgets.Dropdown(options=list(INITS), value="content", description="start from", **small)
    pg.steps = widgets.IntSlider(value=steps or default_steps(optimizer), min=1, max=1000,
                                   description="steps", continuous_update=False, **small)
    pg.size = widgets.IntSlider(value=size or default_size(dev), min=32, max=1024, step=16,
                                  description="size (px)", continuous_update=False, **small)
    pg.seed = widgets.BoundedIntText(value=seed, min=0, max=2**31 - 1, description="seed", **small)
    pg.lr = widgets.BoundedFloatText(value=0.0, min=0.0, max=100.0, step=0.01,
                                       description="lr (0: default)", **small)
    pg.precision = widgets.Dropdown(options=list(PRECISIONS), value="fp32", description="precision", **small)
    pg.scales = widgets.Dropdown(options=list(SCALES), value="1", description="scales", **small)
    pg.preview = widgets.Checkbox(value=preview, description=f"quick preview ({PREVIEW_SIDE} px first)",
                                    indent=False)
    pg.preserve_color = widgets.Dropdown(options=["none", *PRESERVE_COLOR], value="none",
                                           description="keep colours", **small)
    pg.style_scale = widgets.FloatSlider(value=1.0, min=0.25, max=2.0, step=0.05, description="style scale",
                                           continuous_update=False, **small)
    pg.layer_on = {n: widgets.Checkbox(value=n in STYLE_LAYERS, description=n, indent=False,
                                         layout=widgets.Layout(width="90px")) for n in STYLE_CHOICES}
    pg.layer_w = {n: widgets.BoundedFloatText(value=1.0, min=0.0, max=1e6, step=0.1,
                                                layout=widgets.Layout(width="80px")) for n in STYLE_CHOICES}

    pg.preset = widgets.Dropdown(options=["(your settings)", *PRESETS], value="(your settings)",
                                 description="preset", **small)

def add_buttons(pg: Any) -> None:
    """Run, Continue from here, Stop, Save and the progress bar, wired to ``pg``'s methods."""
    pg.run_button = widgets.Button(description="Run", button_style="success", icon="play",
                                   tooltip="start from the chosen start image (stops a run in progress)")
    pg.continue_button = widgets.Button(description="Continue from here", icon="forward",
                                        layout=widgets.Layout(width="190px"),
                                        tooltip="restart with the current settings from the current image")
    pg.stop_button = widgets.Button(description="Stop", button_style="danger", icon="stop", disabled=True)
    pg.save_button = widgets.Button(description="Save", icon="save", disabled=True)
    pg.run_button.on_click(lambda b: pg.run())
    pg.continue_button.on_click(lambda b: pg.continue_from_here())
    pg.stop_button.on_click(lambda b: pg.stop())
    pg.save_button.on_click(lambda b: pg.save())
    pg.progress = widgets.IntProgress(value=0, min=0, max=1, description="progress", style=_W)


def read_controls(pg: Any) -> dict:
    """The run's parameters as ``pg``'s controls show them now (a plain dict, for :mod:`.form`)."""
    (content, cname), (style, sname) = pg.content_picker.current, pg.style_picker.current
    on = [n for n in STYLE_CHOICES if pg.layer_on[n].value]
    return dict(content=content, content_name=cname, style=style, style_name=sname,
                alpha=float(pg.alpha.value), beta=float(pg.beta.value),
                gamma=float(pg.gamma.value), content_layer=pg.content_layer.value,
                style_layers=on, style_layer_weights={n: float(pg.layer_w[n].value) for n in on},
                pooling=pg.pooling.value, optimizer=pg.optimizer.value, init=pg.init.value,
                steps=int(pg.steps.value), size=int(pg.size.value), seed=int(pg.seed.value),
                lr=float(pg.lr.value) or None, precision=pg.precision.value,
                scales=pg.scales.value, style_scale=float(pg.style_scale.value), **pg.beyond.params,
                preserve_color=None if pg.preserve_color.value == "none" else pg.preserve_color.value)


def setup_widgets(pg: Any) -> list:
    """The controls whose change needs a new setup (everything but the live weights)."""
    pickers = [pg.content_picker.dropdown, pg.style_picker.dropdown]
    return pickers + [pg.content_layer, pg.pooling, pg.optimizer, pg.init, pg.steps, pg.size,
                      pg.seed, pg.lr, pg.precision, pg.scales, pg.preserve_color, pg.style_scale,
                      *pg.layer_on.values(), *pg.beyond.widgets]


def layout(pg: Any) -> list:
    """The playground's rows, top to bottom; tags the main widgets with the CSS class
    ``nstlib-<name>`` (the browser test finds them by it)."""
    for name in ("alpha", "beta", "gamma", "steps", "size", "image", "plot", "status", "run_info",
                 "run_button", "stop_button", "save_button", "continue_button", "progress", "banner"):
        getattr(pg, name).add_class(f"nstlib-{name.replace('_', '-')}")
    result_box = _box([widgets.HTML("<b>Result</b>"), pg.image, pg.run_info], width="490px")
    weights = _box([widgets.HTML("<b>weights</b> (live: they act on the running optimization)"),
                    pg.preset, pg.alpha, pg.beta, pg.gamma, widgets.HTML("style layer weights w<sub>l</sub>")]
                   + [_box([widgets.Label(n, layout=widgets.Layout(width="70px")), pg.layer_w[n]],
                           vertical=False) for n in STYLE_CHOICES], width="420px", min_width="420px")
    layers = _box([widgets.HTML("<b>layers</b> (new setup)"), pg.content_layer,
                   widgets.HTML("style layers")] + [pg.layer_on[n] for n in STYLE_CHOICES],
                  width="170px", min_width="170px")
    setup = _box([widgets.HTML("<b>run</b> (new setup)"), pg.pooling, pg.optimizer, pg.init,
                  pg.steps, pg.size, pg.seed, pg.lr, pg.precision, pg.scales, pg.preview,
                  pg.preserve_color, pg.style_scale], width="320px", min_width="320px")
    return [
        pg.banner,
        _box([pg.content_picker.box, pg.style_picker.box, result_box, pg.compare.box],
             vertical=False, align_items="flex-start"),
        _box([pg.run_button, pg.continue_button, pg.stop_button, pg.save_button,
              pg.compare.pin_button, pg.progress], vertical=False),
        pg.status, pg.plot, pg.scrubber.box,
        _box([weights, layers, setup, pg.beyond.box], vertical=False, align_items="flex-start",
             flex_flow="row wrap")]
