"""The image picker of the playground: a dropdown of images with a thumbnail and an upload button."""
from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from ..image import ImageSource, load_image
from ..save import free_path
from .runner import png_bytes, uploaded_files

__all__ = ["ImagePicker", "box", "image_widget", "LABEL_STYLE", "THUMB_SIDE"]

LABEL_STYLE = {"description_width": "110px"}
THUMB_SIDE = 200  # px: the pickers' previews (longest side of the PNG; shown at this width)


def image_widget(width: str, png: bytes = b"") -> widgets.Image:
    """An Image shown at ``width`` with its height following the picture's aspect ratio: never
    stretched (``height: auto``; ``align_self: flex-start`` stops a flex row or column from
    stretching it; ``object_fit: contain`` as a last guard)."""
    layout = widgets.Layout(width=width, height="auto", max_width="100%", align_self="flex-start")
    try:
        layout.object_fit = "contain"
    except Exception:  # an ipywidgets without the trait: the rules above already keep the ratio
        pass
    return widgets.Image(value=png, format="png", layout=layout)


def box(children: list, vertical: bool = True, **layout: str) -> widgets.Box:
    cls = widgets.VBox if vertical else widgets.HBox
    return cls(children, layout=widgets.Layout(**layout))


class ImagePicker:
    """A dropdown of images (bundled ones plus uploads) with a thumbnail and an upload button."""

    def __init__(self, label: str, names: list[str], status: Any) -> None:
        self.label, self.status = label, status
        self.sources: dict[str, tuple[ImageSource, str]] = {n: (n, n) for n in names}
        self.dropdown = widgets.Dropdown(options=list(names), description=label,
                                         style={"description_width": "55px"},
                                         layout=widgets.Layout(width=f"{THUMB_SIDE + 10}px"))
        self.thumb = image_widget(f"{THUMB_SIDE}px")
        self.thumb.add_class(f"nstlib-thumb-{label.lower()}")  # for the browser test
        self.upload = widgets.FileUpload(accept="image/*", multiple=False, description="Upload",
                                         layout=widgets.Layout(width="110px"))
        self.box = box([self.dropdown, self.thumb, self.upload], width=f"{THUMB_SIDE + 20}px",
                       align_items="flex-start")
        self.upload_dir: Path | None = None
        self.dropdown.observe(lambda ch: self.refresh(), names="value")
        self.upload.observe(self._on_upload, names="value")

    def add(self, key: str, src: ImageSource, name: str) -> None:
        """Add a source (tensor, path) under ``key`` and select it; a bad image raises ImageError."""
        thumb = png_bytes(load_image(src, size=THUMB_SIDE, device="cpu"))
        self.sources[key] = (src, name)
        self.dropdown.options = [(k, k) for k in self.sources]
        self.dropdown.value = key
        self.thumb.value = thumb

    def select(self, src: ImageSource) -> None:
        if isinstance(src, str) and src in self.sources:
            self.dropdown.value = src
            self.refresh()
        elif isinstance(src, (str, Path)):
            self.add(f"file: {Path(src).name}", str(src), _safe(Path(src).stem))
        else:
            self.add(f"your {self.label.lower()} image", src, self.label.lower())

    def refresh(self) -> None:
        src = self.sources[self.dropdown.value][0]
        try:
            self.thumb.value = png_bytes(load_image(src, size=THUMB_SIDE, device="cpu"))
        except Exception as e:  # shown in the UI, not raised into the widget machinery
            self.status(f"{self.label}: {e}", error=True)

    def _on_upload(self, change: dict) -> None:
        for name, data in uploaded_files(change["new"]):
            if self.upload_dir is None:
                self.upload_dir = Path(tempfile.mkdtemp(prefix="nstlib-uploads-"))
            path = free_path(self.upload_dir / (_safe(Path(name).stem) + Path(name).suffix.lower()))
            path.write_bytes(data)
            try:
                self.add(f"upload: {name}", str(path), path.stem)
                self.status(f"{self.label}: loaded your upload {name!r}")
            except Exception as e:
                path.unlink(missing_ok=True)
                self.status(f"{self.label}: could not use {name!r}: {e}", error=True)

    @property
    def current(self) -> tuple[ImageSource, str]:
        return self.sources[self.dropdown.value]


def _safe(stem: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", stem).strip("_")[:40] or "image"
