"""The loud random-weights banner a notebook shows once, before any image made with random weights."""
from __future__ import annotations

from typing import Any

__all__ = ["notice"]


def notice(*extractors: Any) -> bool:
    """Display a loud banner in a notebook (or print one) if any of ``extractors`` has random weights.

    Says it once: each random-weights extractor is marked ``announced``, and the runs that use it
    (:func:`nstlib.stylize`, :func:`nstlib.sweep`) then skip their ``RandomWeightsWarning``.

    Returns:
        True if the banner was shown (some weights are random).
    """
    random = [e for e in extractors if not getattr(e, "pretrained", True)]
    if not random:
        return False
    sources = ", ".join(dict.fromkeys(str(e.weights_source) for e in random))
    text = ("RANDOM WEIGHTS - the pretrained VGG weights are not available here "
            f"({sources}). Every image below shows the algorithm running on an "
            "untrained network: it is NOT a style-transfer result. See README, 'Offline use'.")
    for e in random:
        e.announced = True
    try:
        from IPython import get_ipython
        from IPython.display import HTML, display
        if get_ipython() is not None:
            display(HTML('<div style="border:3px solid #c00;background:#fee;color:#900;padding:8px;'
                         f'font-weight:bold;font-size:1.1em">&#9888; {text}</div>'))
            return True
    except ImportError:
        pass
    print("!" * 72 + "\n" + text + "\n" + "!" * 72)
    return True
