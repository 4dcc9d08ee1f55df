"""The playground's "beyond the paper" controls (notebook 06): network, a second style, a mask.

* **network**: VGG19 or VGG16 (the extractor is rebuilt only when it changes).
* **second style**: ``none`` or an image; with *blend* the two styles' Gram matrices are mixed
  with weights ``w`` and ``1 - w`` (``w`` on the slider, for the first style); with *outside* the
  second style is painted where the mask is 0.
* **mask**: a shape drawn at the content image's proportions; the (first) style applies inside it.
* **tiles**: ``none``, a tile side or ``auto``: the stages larger than one tile (the last one of a
  coarse-to-fine run) compute the same objective tile by tile (:mod:`nstlib.tiling`).
"""
from __future__ import annotations

from typing import Any

import ipywidgets as widgets

from ..masks import MASK_SHAPES
from ..vgg import ARCHS
from .picker import LABEL_STYLE, box

__all__ = ["BeyondControls"]

MODES = ("blend", "outside the mask")
TILES = ("none", "256", "512", "auto")


class BeyondControls:
    """The widgets, and the :func:`nstlib.stylize` arguments they stand for."""

    def __init__(self, arch: str, style_names: list[str]) -> None:
        small = dict(style=LABEL_STYLE, layout=widgets.Layout(width="300px"))
        self.arch = widgets.ToggleButtons(options=list(ARCHS), value=arch, description="network",
                                          style=LABEL_STYLE)
        self.style2 = widgets.Dropdown(options=["none", *style_names], value="none",
                                       description="second style", **small)
        self.mode = widgets.Dropdown(options=list(MODES), value="blend", description="use it to", **small)
        self.blend = widgets.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.05, description="first style w",
                                         continuous_update=False, **small)
        self.mask = widgets.Dropdown(options=list(MASK_SHAPES), value="none", description="style inside",
                                     **small)
        self.tile = widgets.Dropdown(options=list(TILES), value="none", description="tiles (large)", **small)
        self.box = box([widgets.HTML("<b>beyond the paper</b> (notebook 06)"), self.arch, self.style2,
                        self.mode, self.blend, self.mask, self.tile])
        self.widgets = [self.arch, self.style2, self.mode, self.blend, self.mask, self.tile]  # all: a new setup

    @property
    def params(self) -> dict[str, Any]:
        return dict(arch=self.arch.value, style2=None if self.style2.value == "none" else self.style2.value,
                    style2_mode="outside" if self.mode.value == MODES[1] else "blend",
                    blend=float(self.blend.value), mask_shape=self.mask.value,
                    tile=None if self.tile.value == "none" else int(self.tile.value) if self.tile.value.isdigit()
                    else self.tile.value)

