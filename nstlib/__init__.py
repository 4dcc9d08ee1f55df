"""nstlib: neural style transfer (Gatys, Ecker & Bethge), small enough to read in class.

The pieces, one module per idea:

* :mod:`nstlib.image` -- images as tensors [1, 3, H, W] in [0, 1]; :mod:`nstlib.examples` -- bundled images
* :mod:`nstlib.vgg` -- the frozen VGG feature extractor with named layers; :mod:`nstlib.weights` -- its weights
* :mod:`nstlib.losses` -- content loss, Gram matrices and style loss, total variation
* :mod:`nstlib.spec` -- :class:`Transfer`, every option of a run, checked once
* :mod:`nstlib.engine` -- the optimizer loop; :mod:`nstlib.transfer` -- ``run``, ``stylize`` and ``reconstruct``
* :mod:`nstlib.multiscale`, :mod:`nstlib.sweep`, :mod:`nstlib.tiling` -- coarse to fine, grids of runs, large images
* :mod:`nstlib.plot` -- figures; :mod:`nstlib.cli` -- ``python -m nstlib``

Around the library, in their own sub-packages: :mod:`nstlib.course` (quick mode, the random-weights
banner, the exercises' checks, the course tool) and :mod:`nstlib.playground` (the live widget).
"""
from .color import match_color, rgb_to_yiq, yiq_to_rgb
from .config import default_device, default_size, offline
from .engine import Result, optimize
from .errors import ImageError, LayerError, NSTError, OutOfMemoryError, WeightsError, WeightsUnavailableError
from .examples import examples
from .image import example, load_image, resize
from .losses import content_loss, gram_matrix, style_loss, tv_loss
from .masks import masked_gram_matrix
from .plot import plot_history, show
from .save import save_image, to_pil
from .spec import Transfer
from .sweep import SweepResult, sweep
from .transfer import Objective, reconstruct, run, stylize
from .vgg import VGGFeatures, layer_names
from .weights import RandomWeightsWarning

__version__ = "0.1.0"

__all__ = [
    "default_device", "default_size", "offline",
    "Transfer", "run", "Result", "optimize", "Objective", "stylize", "reconstruct", "sweep", "SweepResult",
    "NSTError", "ImageError", "WeightsError", "WeightsUnavailableError", "LayerError", "OutOfMemoryError",
    "RandomWeightsWarning",
    "example", "examples", "load_image", "resize", "save_image", "to_pil",
    "content_loss", "gram_matrix", "style_loss", "tv_loss",
    "show", "plot_history", "VGGFeatures", "layer_names",
    "match_color", "rgb_to_yiq", "yiq_to_rgb", "masked_gram_matrix",
]
