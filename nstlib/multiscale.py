"""Coarse to fine: optimize a small image, upsample it, continue at the next size.

``stylize(..., scales=...)`` hands its arguments here. A step at half the side costs about a
quarter, so the coarse stages settle the large structures cheaply and the full-size stage only
refines. Measured in ``docs/benchmarks.md`` (2 CPU cores, 512 px): ``scales=4`` with
``steps=[120, 80, 15, n]`` reached the loss of 40 single-scale L-BFGS steps in 0.44-0.45 x their
time (``[80, 60, 30, n]``: 0.48-0.52 x); too few coarse steps (``[40, 20, n]`` on 3 scales) lose
the advantage (0.78 x). Each stage is a full :func:`nstlib.stylize` run (targets recomputed at
that size) that starts from the previous stage's best image, upsampled.
"""
from __future__ import annotations

import time
from typing import Callable, Sequence

from .config import default_size, resolve_device
from .engine import Result, check_count
from .transfer import default_steps

__all__ = ["scale_sides", "coarse_to_fine"]


def scale_sides(scales: int | Sequence[int], size: int) -> list[int]:
    """The longest side of every stage, ascending, ending at ``size``.

    ``scales=3`` with ``size=512`` -> ``[128, 256, 512]`` (octaves); a list is used as given
    (ascending, its last entry equal to ``size``).
    """
    if isinstance(scales, bool):
        raise ValueError(f"scales must be a number of octaves such as 3 or a list of sides, got {scales!r}")
    if isinstance(scales, int):
        n = check_count("scales", scales)
        return [max(1, round(size / 2 ** k)) for k in range(n - 1, -1, -1)]
    sides = [check_count("scales entry", s) for s in scales]
    if not sides or any(a >= b for a, b in zip(sides, sides[1:])):
        raise ValueError(f"scales must be ascending image sides such as [128, 256, 512], got {scales!r}")
    if sides[-1] != size:
        raise ValueError(f"the last scale ({sides[-1]}) must equal size ({size}); leave size out or match them")
    return sides


def coarse_to_fine(stylize: Callable[..., Result], args: dict) -> Result:
    """Run ``stylize(**args)`` once per scale (``args["scales"]``), each from the last one's image.

    ``args["steps"]``: one count for every stage, or a list with one count per stage. The result
    is the last stage's, with the whole run's history and snapshots (``step`` and ``seconds``
    counted from the start, ``size`` added to each history entry); its ``best_step`` is the best
    step of the last stage (losses at different sizes are not comparable).
    """
    from .vgg import VGGFeatures
    args = dict(args)
    scales = args.pop("scales")
    size = args.get("size")
    if size is None and not isinstance(scales, int):
        size = list(scales)[-1] if len(list(scales)) else None
    dev = args["extractor"].device if args.get("extractor") is not None else resolve_device(args.get("device"))
    size = default_size(dev) if size is None else size
    if not isinstance(size, int) or isinstance(size, bool):
        raise ValueError(f"scales needs size as one int (the longest side), got {size!r}")
    sides = scale_sides(scales, size)
    steps = args.get("steps")
    steps = default_steps(args.get("optimizer", "lbfgs")) if steps is None else steps
    counts = [steps] * len(sides) if isinstance(steps, int) else list(steps)
    if len(counts) != len(sides):
        raise ValueError(f"steps lists {len(counts)} counts for {len(sides)} scales {sides}; give one per scale")
    if args.get("extractor") is None:  # one network for every stage
        args["extractor"] = VGGFeatures(args.get("arch", "vgg19"),
                                        list(args["content_layers"]) + list(args["style_layers"]),
                                        pooling=args.get("pooling", "max"), weights=args.get("weights"),
                                        device=dev, precision=args.get("precision", "fp32"))
    user_cb, init = args.get("callback"), args.get("init", "content")
    history, snapshots, done, t0 = [], [], 0, time.perf_counter()
    result = None
    for k, (side, n) in enumerate(zip(sides, counts)):
        offset = done
        cb = None if user_cb is None else (lambda step, img, losses, o=offset: user_cb(o + step, img, losses))
        result = stylize(**dict(args, size=side, steps=n, init=init, callback=cb))
        shift = time.perf_counter() - t0 - result.seconds  # setup of every stage so far included
        history += [dict(h, step=h["step"] + offset, seconds=h["seconds"] + shift, size=side)
                    for h in result.history]
        snapshots += [(s + offset, img) for s, img in result.snapshots]
        done += len(result.history)
        init = result.image
        if result.stopped != "done":
            break
    result.best_step += offset
    result.history, result.snapshots = history, snapshots
    result.params.update(scales=sides, steps=counts)
    return result
