"""How a CLI run ends: SIGTERM handled like Ctrl-C, the result saved wherever it can be, the exit code."""
from __future__ import annotations

import signal
import sys
import tempfile
import threading
from pathlib import Path
from types import FrameType
from typing import Any, Callable

__all__ = ["Termination", "save_result", "finish"]


class Termination:
    """While active, SIGTERM (a closed terminal, a job scheduler's kill) is raised as
    KeyboardInterrupt, like Ctrl-C, so the run stops and returns its best image; with
    ``raising`` False it is only noted. The exit code then is 143 (128 + SIGTERM)."""

    def __init__(self) -> None:
        self.received, self.raising = False, True
        self._old: Callable[[int, FrameType | None], Any] | int | signal.Handlers | None = None

    def _handle(self, signum: int, frame: object) -> None:
        self.received = True
        if self.raising:
            raise KeyboardInterrupt

    @property
    def word(self) -> str:
        return "terminated (SIGTERM)" if self.received else "interrupted"

    @property
    def code(self) -> int:
        return 143 if self.received else 130

    def __enter__(self) -> Termination:
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGTERM, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._old is not None:
            signal.signal(signal.SIGTERM, self._old)


def save_result(result, output: str | None) -> tuple[Path | None, list[str]]:
    """Save ``result`` to ``output`` (default: its own name here); if that fails, under its own
    name here, then in the system's temporary folder. Returns the path (None if every place
    failed) and one line per failed attempt. Never raises."""
    tries = ([Path(output)] if output else []) + [Path(result.name), Path(tempfile.gettempdir()) / result.name]
    failed: list[str] = []
    for target in dict.fromkeys(tries):
        try:
            return result.save(target), failed
        except Exception as e:  # NSTError, OSError, anything: the next place may work
            failed.append(f"could not save to {str(target)!r}: {e}")
    return None, failed


def finish(result, output: str | None, term: Termination) -> int:
    """Save and report a finished run; returns the exit code (0 saved; 1 nothing useful made
    or nothing could be saved; 143 stopped by SIGTERM, after saving). Never raises."""
    if not result.history:  # no step succeeded: the image is the initial one
        why = (f"{term.word} before any step finished" if result.stopped == "interrupted" else
               f"no optimization step succeeded (the run ended {result.stopped!r}: the loss was NaN/inf "
               "from the first step); lower --style-weight, --content-weight or --lr")
        print(f"error: nothing useful was made: {why}. No image was saved", file=sys.stderr)
        return term.code if result.stopped == "interrupted" else 1
    path, failed = save_result(result, output)
    for line in failed:
        print(f"error: {line}", file=sys.stderr)
    if path is None:
        print("error: the result could not be saved anywhere (see above); free some disk space or "
              "pass -o with a writable folder and run again", file=sys.stderr)
        return 1
    if failed:
        print(f"saved the result as {path} instead", file=sys.stderr)
    loss = result.losses.get("total", float("nan"))
    print(f"saved {path} ({result.stopped} after {len(result.history)} steps, "
          f"{result.seconds:.1f} s, best loss {loss:.4g} at step {result.best_step})")
    if str(result.params.get("weights", "")).startswith("random"):
        print("note: made with RANDOM weights (offline): not a meaningful style transfer", file=sys.stderr)
    if result.stopped == "diverged":
        print("note: the run diverged; the image saved is the best one before that", file=sys.stderr)
    if term.received:
        print(f"terminated (SIGTERM) at step {len(result.history)}: the best image so far is saved",
              file=sys.stderr)
        return 143
    return 0
