"""PASS/FAIL reporting shared by every exercise check."""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Callable

import torch

__all__ = ["report", "run_check", "not_tensor", "ratio_hint", "seeded_features"]


def report(name: str, ok: bool, hint: str = "", detail: str = "") -> bool:
    """Print ``PASS``/``FAIL`` for exercise ``name`` (with the hint on failure); return ``ok``."""
    if ok:
        print(f"PASS: {name}" + (f" ({detail})" if detail else ""))
    else:
        print(f"FAIL: {name}" + (f": {detail}" if detail else ""))
        if hint:
            print(f"Hint: {hint}")
    return ok


def run_check(name: str, hint: str, body: Callable[[], tuple[bool, str]]) -> bool:
    """Run ``body() -> (ok, detail)``; an exception from the student's code becomes a FAIL."""
    try:
        ok, detail = body()
    except NotImplementedError:
        return report(name, False, hint, "not implemented yet (replace `raise NotImplementedError`)")
    except Exception as e:  # the student's code may raise anything; report it, don't crash
        return report(name, False, hint, f"your function raised {type(e).__name__}: {e}")
    return report(name, bool(ok), hint, detail)


def not_tensor(got: object) -> str | None:
    """A FAIL detail if ``got`` is not a tensor, else None."""
    if not isinstance(got, torch.Tensor):
        return f"it returned {type(got).__name__} {got!r:.60}, not a torch tensor"
    return None


def seeded_features(shapes: Sequence[tuple[int, ...]], uniform: bool = False, with_target: bool = False
                    ) -> Iterator[tuple[tuple[int, ...], torch.Tensor, torch.Tensor | None]]:
    """``(shape, features, target)`` per shape, from one generator seeded 0: features requiring grad
    (uniform in [0, 1) or standard normal), and a normal target of the same shape if ``with_target``."""
    g = torch.Generator().manual_seed(0)
    for shape in shapes:
        feats = (torch.rand if uniform else torch.randn)(shape, generator=g).requires_grad_(True)
        yield shape, feats, torch.randn(shape, generator=g) if with_target else None


def ratio_hint(got: float, want: float, factors: dict[str, float]) -> str:
    """Name the likely mistake when ``got / want`` equals one of the known wrong ``factors``."""
    if want == 0:
        return ""
    for what, f in factors.items():
        if abs(got / want - f) < 1e-3 * max(1.0, abs(f)):
            return f" -- {what}"
    return ""
