"""The playground's look back: a scrubber over a run's snapshots, GIF export, and compare.

* :class:`Scrubber`: a slider over the snapshots of the last run (the step is shown; the last
  one is the final step), "save this frame", and "export GIF" (an animated GIF of the image
  forming, :func:`gif_bytes`; also an MP4 when ``imageio-ffmpeg`` is installed).
* :class:`Compare`: "pin" keeps the current result and its settings; the next runs show beside it.
"""
from __future__ import annotations

import html
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import torch
from PIL import Image

from ..save import free_path, save_image, to_pil
from .picker import box, image_widget
from .runner import png_bytes

__all__ = ["Scrubber", "Compare", "gif_bytes", "settings_text"]


def gif_bytes(frames: Sequence[tuple[int, torch.Tensor]], ms_per_frame: int = 120, hold_ms: int = 1200) -> bytes:
    """An animated GIF (bytes) of ``frames`` ``[(step, image [1, 3, H, W] in [0, 1])]`` in order,
    looping, the last frame held ``hold_ms``. Raises ValueError for no frames."""
    if not frames:
        raise ValueError("no frames to export: run first")
    pics = [to_pil(img).convert("P", palette=Image.Palette.ADAPTIVE, colors=256) for _, img in frames]
    durations = [ms_per_frame] * (len(pics) - 1) + [hold_ms]
    buf = io.BytesIO()
    pics[0].save(buf, format="GIF", save_all=True, append_images=pics[1:], duration=durations, loop=0)
    return buf.getvalue()


def mp4_path(frames: Sequence[tuple[int, torch.Tensor]], path: Path, fps: int = 8) -> Path | None:
    """Write an MP4 of ``frames`` with imageio-ffmpeg if it is installed; None otherwise."""
    try:
        import imageio.v2 as imageio
        import imageio_ffmpeg  # noqa: F401
        import numpy as np
    except ImportError:
        return None
    with imageio.get_writer(str(path), fps=fps, macro_block_size=1) as writer:
        for _, img in frames:
            writer.append_data(np.asarray(to_pil(img)))
    return path


def settings_text(result: Any) -> str:
    """One line of a result's settings: weights, layers, pooling, optimizer, steps, size."""
    p = result.params
    return (f"α={p['content_weight']:.3g}, β={p['style_weight']:.3g}, γ={p['tv_weight']:.3g}; "
            f"{', '.join(p['content_layers'])} | {len(p['style_layers'])} style layers; {p['pooling']} pooling, "
            f"{p['optimizer']}, {len(result.history)} steps, {p['size']} px, {p['arch']}")


class Scrubber:
    """A slider over ``result.snapshots``; shows the chosen one in the playground's image."""

    def __init__(self, pg: Any) -> None:
        self.pg = pg
        self.snapshots: list[tuple[int, torch.Tensor]] = []
        self.slider = widgets.IntSlider(value=0, min=0, max=0, description="snapshot", readout=False,
                                        continuous_update=True, disabled=True,
                                        layout=widgets.Layout(width="400px"))
        self.step = widgets.Label("no run yet")
        self.save_button = widgets.Button(description="Save this frame", icon="save", disabled=True)
        self.gif_button = widgets.Button(description="Export GIF", icon="film", disabled=True)
        self.slider.observe(lambda ch: self.show(ch["new"]), names="value")
        self.save_button.on_click(lambda b: self.save_frame())
        self.gif_button.on_click(lambda b: self.export())
        self.box = box([self.slider, self.step, self.save_button, self.gif_button], vertical=False)

    def load(self, result: Any) -> None:
        """Take the snapshots of a finished run; the slider ends at its last (the final step)."""
        self.result, self.snapshots = result, list(result.snapshots)
        n = len(self.snapshots)
        for b in (self.slider, self.save_button, self.gif_button):
            b.disabled = n == 0
        self.slider.max = max(0, n - 1)
        if n:
            self.slider.value = n - 1
            self.step.value = f"step {self.snapshots[-1][0]} of {n} snapshots (the final step)"

    def show(self, i: int) -> None:
        if 0 <= i < len(self.snapshots):
            step, img = self.snapshots[i]
            self.pg.show_frame(png_bytes(img))
            last = " (the final step)" if i == len(self.snapshots) - 1 else ""
            self.step.value = f"step {step}{last}"

    @property
    def frame(self) -> tuple[int, torch.Tensor] | None:
        """The snapshot the slider is on: ``(step, image)``."""
        return self.snapshots[self.slider.value] if self.snapshots else None

    def save_frame(self) -> Path | None:
        """Save the snapshot under the slider as ``<result name>_step<N>.png`` in the results folder."""
        if self.frame is None:
            self.pg.set_status("no snapshot to save: run first", error=True)
            return None
        step, img = self.frame
        path = save_image(img, Path(self.pg.results_dir) / f"{Path(self.result.name).stem}_step{step}.png")
        self.pg.set_status(f"saved frame {step}: {path}")
        return path

    def export(self) -> Path | None:
        """Write the run as an animated GIF (and an MP4 when imageio-ffmpeg is installed)."""
        if not self.snapshots:
            self.pg.set_status("no snapshots to export: run first", error=True)
            return None
        folder = Path(self.pg.results_dir)
        folder.mkdir(parents=True, exist_ok=True)
        path = free_path(folder / f"{Path(self.result.name).stem}.gif")
        path.write_bytes(gif_bytes(self.snapshots))
        mp4 = mp4_path(self.snapshots, free_path(path.with_suffix(".mp4")))
        self.pg.set_status(f"exported {len(self.snapshots)} frames to {path}" + (f" and {mp4}" if mp4 else ""))
        return path


class Compare:
    """Pin a result; the pinned one and the current one are shown side by side with their settings."""

    def __init__(self, pg: Any) -> None:
        self.pg = pg
        self.pinned: Any = None
        self.pin_button = widgets.Button(description="Pin for compare", icon="thumb-tack",
                                         layout=widgets.Layout(width="170px"))
        self.pin_button.on_click(lambda b: self.pin())
        self.image = image_widget("360px")
        self.info = widgets.HTML("<small>pin a result, change the settings, run again: the two are shown "
                                 "side by side</small>")
        self.box = box([widgets.HTML("<b>Pinned</b>"), self.image, self.info], width="370px",
                       align_items="flex-start", display="none")  # shown beside the result once pinned
        self.image.add_class("nstlib-pinned")

    def pin(self) -> bool:
        """Pin the last result (False, with a status line, when there is none)."""
        res = self.pg.result
        if res is None:
            self.pg.set_status("nothing to pin yet: press Run first", error=True)
            return False
        self.pinned = res
        self.box.layout.display = "flex"
        self.image.value = png_bytes(res.image)
        self.info.value = f"<small>{html.escape(settings_text(res))}</small>"
        self.pg.set_status("pinned; change the settings and run again to compare")
        return True
