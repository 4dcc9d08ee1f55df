"""Coarse to fine: optimize a small image, upsample it, continue at the next size.

``stylize(..., scales=...)`` (or a :class:`nstlib.Transfer` with ``scales``) runs here. A step
at half the side costs about a quarter, so the coarse stages settle the large structures
cheaply and the full-size stage only refines. Measured in ``docs/benchmarks.md`` (2 CPU cores,
512 px): ``scales=4`` with ``steps=[120, 80, 15, n]`` reached the loss of 40 single-scale L-BFGS
steps in 0.44-0.45 x their time (``[80, 60, 30, n]``: 0.48-0.52 x); too few coarse steps
(``[40, 20, n]`` on 3 scales) lose the advantage (0.78 x). Each stage is one
:func:`nstlib.stage.run_stage` (targets recomputed at that size) that starts from the previous
stage's best image, upsampled; one network serves every stage.
"""
from __future__ import annotations

import dataclasses
import time

from .engine import Callback, Controls, Result
from .spec import Transfer, scale_sides
from .stage import build_extractor, load_inputs, run_stage
from .vgg import VGGFeatures

__all__ = ["scale_sides", "coarse_to_fine", "auto_scales", "AUTO_SCALES_FROM", "AUTO_COARSE_STEPS"]

#: The CLI runs coarse to fine by default from this side (px) up, with L-BFGS (docs/benchmarks.md:
#: 0.45 x the single-scale time to the same loss at 512 px, 0.70 x at 384 px).
AUTO_SCALES_FROM = 512
#: The default schedule's L-BFGS steps at the coarse sides size/8, size/4, size/2.
AUTO_COARSE_STEPS = (120, 80, 15)


def auto_scales(size: int, steps: int, optimizer: str) -> tuple[int | None, int | tuple[int, ...]]:
    """``(scales, steps)`` for a run of ``steps`` at ``size`` px when the user chose no scales:
    from :data:`AUTO_SCALES_FROM` px with L-BFGS, 4 scales with :data:`AUTO_COARSE_STEPS` before
    the ``steps`` at full size (the coarse steps cost about 11 full-size ones); else one scale."""
    if optimizer == "lbfgs" and size >= AUTO_SCALES_FROM:
        return 4, AUTO_COARSE_STEPS + (steps,)
    return None, steps


def coarse_to_fine(spec: Transfer, extractor: VGGFeatures | None = None, callback: Callback | None = None,
                   controls: Controls | None = None) -> Result:
    """Run ``spec`` (resolved, with ``scales``) once per scale, each stage from the last one's image.

    The result is the last stage's, with the whole run's history and snapshots (``step`` and
    ``seconds`` counted from the start, ``size`` added to each history entry); its ``best_step``
    is the best step of the last stage (losses at different sizes are not comparable).
    """
    sides = scale_sides(spec.scales, int(spec.size))  # type: ignore[arg-type]
    counts = list(spec.steps)  # type: ignore[arg-type]
    history: list[dict] = []
    snapshots: list = []
    done, t0, init = 0, time.perf_counter(), spec.init
    for k, (side, n) in enumerate(zip(sides, counts)):
        stage = dataclasses.replace(spec, size=side, steps=n, init=init, scales=None)
        inputs = load_inputs(stage, spec.device)  # type: ignore[arg-type]
        if k == 0:  # one network for every stage; the warning points at run()'s caller (one frame more
            # than in transfer.run: this function's)
            extractor = build_extractor(spec, spec.device, extractor, stacklevel=6)  # type: ignore[arg-type]
        offset = done
        cb = None if callback is None else (lambda step, img, losses, o=offset: callback(o + step, img, losses))
        ctl = None if controls is None else (lambda step, o=offset: controls(o + step))
        result = run_stage(stage, inputs, extractor, cb, ctl)  # type: ignore[arg-type]
        shift = time.perf_counter() - t0 - result.seconds  # setup of every stage so far included
        history += [dict(h, step=h["step"] + offset, seconds=h["seconds"] + shift, size=side) for h in result.history]
        snapshots += [(s + offset, img) for s, img in result.snapshots]
        done += len(result.history)
        init = result.image
        if result.stopped != "done":
            break
    result.best_step += offset
    result.history, result.snapshots, result.spec = history, snapshots, spec
    result.params.update(scales=sides, steps=counts, init=spec.params(0, "")["init"])
    return result
