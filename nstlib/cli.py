"""``python -m nstlib CONTENT STYLE``: style transfer from the command line, with a progress bar."""
from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from .cli_exit import Termination, finish
from .color import PRESERVE_COLOR
from .config import default_size, resolve_device
from .errors import NSTError
from .multiscale import AUTO_COARSE_STEPS, AUTO_SCALES_FROM, auto_scales
from .precision import PRECISIONS
from .save import SAVE_SUFFIXES
from .spec import (
    CONTENT_LAYERS,
    CONTENT_WEIGHT,
    INITS,
    LBFGS_HISTORY,
    OPTIMIZERS,
    STYLE_LAYERS,
    STYLE_WEIGHT,
    TILED_LBFGS_HISTORY,
    TV_WEIGHT,
    Transfer,
    default_steps,
)
from .vgg import ARCHS, POOLINGS

__all__ = ["main", "build_parser", "build_spec"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m nstlib",
        description="Neural style transfer (Gatys et al.): paint CONTENT in the style of STYLE. "
                    "CONTENT and STYLE are image paths, URLs or bundled example names "
                    "(e.g. tower_bridge starry_night).")
    p.add_argument("content", help="content image: path, URL or example name")
    p.add_argument("style", nargs="?", default=None,
                   help="style image: path, URL or example name; several: a comma list (a,b)")
    p.add_argument("-o", "--output", help="output file (default: a name encoding the parameters, "
                   "e.g. tower_bridge+starry_night_lbfgs_cw1_sw1e4_tv44_s256.jpg); never overwritten")
    p.add_argument("--content-weight", type=float, default=CONTENT_WEIGHT, help="alpha (default %(default)g)")
    p.add_argument("--style-weight", type=float, default=STYLE_WEIGHT, help="beta (default %(default)g)")
    p.add_argument("--tv-weight", type=float, default=TV_WEIGHT,
                   help="total-variation weight gamma (default %(default)g)")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="lbfgs")
    p.add_argument("--steps", type=_ints, default=None, metavar="N[,N...]",
                   help="objective evaluations (default 300 for lbfgs, 500 for adam); with --scales one "
                        "count per stage may be given, e.g. 120,80,40")
    p.add_argument("--lr", type=float, default=None, help="step size (default 1 for lbfgs, 0.068 for adam)")
    p.add_argument("--size", type=int, default=None, help="longest side in pixels (default 512 GPU, 256 CPU)")
    p.add_argument("--init", choices=INITS, default="content")
    p.add_argument("--pooling", choices=POOLINGS, default="max")
    p.add_argument("--arch", choices=ARCHS, default="vgg19")
    p.add_argument("--weights", default="imagenet", help="'imagenet' (default), 'random' or a .pth file")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N, mps (default: best available)")
    p.add_argument("--content-layers", type=_names, default=CONTENT_LAYERS, metavar="L[,L...]",
                   help=f"content layers (default {','.join(CONTENT_LAYERS)})")
    p.add_argument("--style-layers", type=_names, default=STYLE_LAYERS, metavar="L[,L...]",
                   help=f"style layers (default {','.join(STYLE_LAYERS)})")
    p.add_argument("--style-layer-weights", type=_layer_weights, default=None, metavar="L=W[,L=W...]",
                   help="per-layer style weights, e.g. relu1_1=2,relu5_1=0.5 (default 1 each)")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="the network's precision (default fp32; auto: mixed precision on CUDA)")
    p.add_argument("--scales", type=_ints, default=None, metavar="N | S,S,...",
                   help="coarse to fine: a number of octaves (3: size/4, size/2, size) or ascending sides "
                        f"(128,256,512); default from {AUTO_SCALES_FROM} px with lbfgs: 4, with "
                        f"{','.join(map(str, AUTO_COARSE_STEPS))} steps before --steps at full size; 1: one size")
    p.add_argument("--save-every", type=_save_every, default=0, metavar="N",
                   help="also save the image every N steps (name_stepN.jpg; default 0: never)")
    p.add_argument("--show", action="store_true", help="print the run's specification and exit without running")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    g = p.add_argument_group("beyond the paper (notebook 06)")
    g.add_argument("--style", dest="more_styles", action="append", default=[], metavar="IMG",
                   help="another style image (repeat, or a comma list); their Gram matrices are blended")
    g.add_argument("--style-blend", type=_floats, default=None, metavar="W,W",
                   help="one blend weight per style, e.g. 0.7,0.3 (normalized; default equal)")
    g.add_argument("--style-scale", type=float, default=1.0, metavar="S",
                   help="style's longest side relative to the content's (default 1)")
    g.add_argument("--preserve-color", choices=PRESERVE_COLOR + ("none",), default="none",
                   help="keep the content's colours: luminance-only transfer (YIQ) or the style's "
                        "colour statistics matched to the content's (default none)")
    g.add_argument("--mask", default=None, metavar="IMG",
                   help="black-and-white mask, content's aspect ratio: style only where it is white")
    g.add_argument("--style-outside", default=None, metavar="IMG",
                   help="a second style painted where the mask is black (needs --mask)")
    g = p.add_argument_group("large images (README: Large images)")
    g.add_argument("--tile", type=_tile, default=None, metavar="PX | auto",
                   help="compute the objective in tiles of PX px (exact: global Gram matrices, an 80 px halo), "
                        "or 'auto' (tiles that fit --max-memory); stages that fit in one tile run untiled")
    g.add_argument("--max-memory", default=None, metavar="SIZE",
                   help="memory budget of one tile with --tile auto, e.g. 3GB or 512MB "
                        "(default: half the available memory)")
    g.add_argument("--checkpoint", action="store_true",
                   help="gradient checkpointing through VGG: less memory, more time, the same result")
    g.add_argument("--lbfgs-history", type=int, default=None, metavar="N",
                   help=f"L-BFGS's curvature pairs (default {LBFGS_HISTORY}; {TILED_LBFGS_HISTORY} in tiled stages)")
    return p


def _tile(text: str) -> int | str:
    """``"512"`` -> 512, ``"auto"`` -> "auto" (checked by the spec)."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a tile side in px such as 512, or auto; got {text!r}") from None


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, e.g. 0.7,0.3; got {text!r}") from None


def _ints(text: str) -> int | tuple[int, ...]:
    """``"3"`` -> 3, ``"128,256"`` -> (128, 256) (checked by the spec)."""
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number or a comma list such as 128,256; got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError(f"expected a whole number; got {text!r}")
    return values[0] if len(values) == 1 and "," not in text else values


def _names(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def _layer_weights(text: str) -> dict[str, float]:
    try:
        return {k.strip(): float(w) for k, w in (item.split("=") for item in text.split(",") if item.strip())}
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected layer=weight pairs such as relu1_1=2,relu5_1=0.5; got {text!r}") from None


def _save_every(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = -1
    if n < 0:
        raise argparse.ArgumentTypeError(f"expected 0 (never) or a positive number of steps; got {text!r}")
    return n


def build_spec(args: argparse.Namespace, styles: Sequence[str]) -> Transfer:
    """The :class:`nstlib.Transfer` of the parsed arguments (ValueError/NSTError for bad values).
    Without ``--scales``, a run from :data:`nstlib.multiscale.AUTO_SCALES_FROM` px goes coarse to fine
    (:func:`nstlib.multiscale.auto_scales`)."""
    scales, steps = args.scales, args.steps
    if scales is None and not isinstance(steps, tuple):
        size = args.size if args.size is not None else default_size(resolve_device(args.device))
        auto, auto_steps = auto_scales(size, steps or default_steps(args.optimizer), args.optimizer)
        if auto is not None:
            scales, steps = auto, auto_steps
    return Transfer(args.content, styles[0] if len(styles) == 1 else tuple(styles),
                    content_weight=args.content_weight, style_weight=args.style_weight, tv_weight=args.tv_weight,
                    content_layers=args.content_layers, style_layers=args.style_layers,
                    style_layer_weights=args.style_layer_weights, arch=args.arch, pooling=args.pooling,
                    weights=args.weights, precision=args.precision, optimizer=args.optimizer, steps=steps,
                    lr=args.lr, init=args.init, size=args.size, scales=scales, seed=args.seed, every=1,
                    device=args.device,
                    preserve_color=None if args.preserve_color == "none" else args.preserve_color,
                    style_blend=args.style_blend, style_scale=args.style_scale, mask=args.mask,
                    style_outside=args.style_outside, tile=args.tile, max_memory=args.max_memory,
                    checkpoint=args.checkpoint, lbfgs_history=args.lbfgs_history)


def _styles(args: argparse.Namespace) -> list[str]:
    """The style images: the positional STYLE and every --style, comma lists split."""
    given = ([args.style] if args.style else []) + list(args.more_styles)
    return [s.strip() for item in given for s in item.split(",") if s.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 an nstlib error, 2 bad arguments)."""
    from tqdm.auto import tqdm

    from . import transfer
    parser = build_parser()
    args = parser.parse_intermixed_args(argv)
    styles = _styles(args)
    if not styles:
        parser.error("give a style image: STYLE or --style IMG")
    if args.output and Path(args.output).suffix.lower() not in SAVE_SUFFIXES:
        parser.error(f"-o {args.output}: the file name must end in one of {', '.join(SAVE_SUFFIXES)}")
    try:
        spec = build_spec(args, styles)
        steps = spec.resolved().steps
    except (NSTError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if args.show:
        print(spec.resolved().describe())
        return 0
    bar = tqdm(total=sum(steps) if isinstance(steps, tuple) else steps, unit="step", disable=args.quiet,
               file=sys.stderr)
    out_dir = Path(args.output).parent if args.output else Path(".")

    def on_step(step: int, image, losses: dict) -> None:
        bar.update(step - bar.n)
        bar.set_postfix(loss=f"{losses['total']:.4g}")
        if args.save_every and step % args.save_every == 0:
            from .save import save_image
            stem = Path(args.output).stem if args.output else "nst"
            save_image(image, out_dir / f"{stem}_step{step}.jpg")

    with Termination() as term:
        try:
            result = transfer.run(spec, callback=on_step)
        except (NSTError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:  # before the optimization started (it keeps its best image itself)
            print(f"{term.word} before any step ran; nothing to save", file=sys.stderr)
            return term.code
        finally:
            bar.close()
        term.raising = False  # from here on a SIGTERM is only noted: the save must finish
        return finish(result, args.output, term)


def main_entry() -> None:
    """Program entry point (``python -m nstlib``, ``nstlib``): shows each warning once, as
    ``Category: message`` without the library's source lines, then runs."""
    warnings.simplefilter("default")  # the process is ours here; main() leaves callers' filters alone
    warnings.formatwarning = lambda message, category, *args, **kwargs: f"{category.__name__}: {message}\n"
    sys.exit(main())
