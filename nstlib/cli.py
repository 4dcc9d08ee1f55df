"""``python -m nstlib CONTENT STYLE``: style transfer from the command line, with a progress bar."""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Sequence

from .engine import OPTIMIZERS
from .errors import NSTError
from .transfer import CONTENT_WEIGHT, INITS, STYLE_WEIGHT, TV_WEIGHT, default_steps
from .vgg import ARCHS, POOLINGS

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m nstlib",
        description="Neural style transfer (Gatys et al.): paint CONTENT in the style of STYLE. "
                    "CONTENT and STYLE are image paths, URLs or bundled example names "
                    "(e.g. tower_bridge starry_night).")
    p.add_argument("content", help="content image: path, URL or example name")
    p.add_argument("style", help="style image: path, URL or example name")
    p.add_argument("-o", "--output", help="output file (default: a name encoding the parameters, "
                   "e.g. tower_bridge+starry_night_lbfgs_cw1_sw1e4_tv44_s256.jpg); never overwritten")
    p.add_argument("--content-weight", type=float, default=CONTENT_WEIGHT, help="alpha (default %(default)g)")
    p.add_argument("--style-weight", type=float, default=STYLE_WEIGHT, help="beta (default %(default)g)")
    p.add_argument("--tv-weight", type=float, default=TV_WEIGHT,
                   help="total-variation weight gamma (default %(default)g)")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="lbfgs")
    p.add_argument("--steps", type=int, default=None,
                   help="objective evaluations (default 300 for lbfgs, 500 for adam)")
    p.add_argument("--lr", type=float, default=None, help="step size (default 1 for lbfgs, 0.068 for adam)")
    p.add_argument("--size", type=int, default=None, help="longest side in pixels (default 512 GPU, 256 CPU)")
    p.add_argument("--init", choices=INITS, default="content")
    p.add_argument("--pooling", choices=POOLINGS, default="max")
    p.add_argument("--arch", choices=ARCHS, default="vgg19")
    p.add_argument("--weights", default="imagenet", help="'imagenet' (default), 'random' or a .pth file")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cpu, cuda, mps (default: best available)")
    p.add_argument("--save-every", type=int, default=0, metavar="N",
                   help="also save the image every N steps (name_stepN.jpg)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 an nstlib error, 2 bad arguments)."""
    from tqdm.auto import tqdm

    from .transfer import format_name, stylize
    args = build_parser().parse_args(argv)
    steps = args.steps if args.steps is not None else default_steps(args.optimizer)
    warnings.simplefilter("default")
    bar = tqdm(total=steps, unit="step", disable=args.quiet, file=sys.stderr)
    out_dir = Path(args.output).parent if args.output else Path(".")

    def on_step(step: int, image, losses: dict) -> None:
        bar.update(step - bar.n)
        bar.set_postfix(loss=f"{losses['total']:.4g}")
        if args.save_every and step % args.save_every == 0:
            from .image import save_image
            stem = Path(args.output).stem if args.output else "nst"
            save_image(image, out_dir / f"{stem}_step{step}.jpg")

    try:
        result = stylize(args.content, args.style, content_weight=args.content_weight,
                         style_weight=args.style_weight, tv_weight=args.tv_weight,
                         optimizer=args.optimizer, steps=steps, lr=args.lr, init=args.init,
                         arch=args.arch, pooling=args.pooling, weights=args.weights, size=args.size,
                         seed=args.seed, callback=on_step, every=1, device=args.device)
    except (NSTError, ValueError) as e:
        bar.close()
        print(f"error: {e}", file=sys.stderr)
        return 1
    bar.close()
    path = result.save(args.output) if args.output else result.save()
    loss = result.losses.get("total", float("nan"))
    print(f"saved {path} ({result.stopped} after {len(result.history)} steps, "
          f"{result.seconds:.1f} s, best loss {loss:.4g} at step {result.best_step})")
    if result.params.get("weights", "").startswith("random"):
        print("note: made with RANDOM weights (offline): not a meaningful style transfer", file=sys.stderr)
    return 0


def main_entry() -> None:
    """Console-script entry point (``nstlib CONTENT STYLE``)."""
    sys.exit(main())
