"""Course scaffolding: what the notebooks need around the library, kept apart from it.

* :mod:`.quick` -- quick mode and :func:`pick`; :mod:`.banner` -- :func:`notice`, the random-weights banner
* :mod:`.checks` -- the exercises' automatic checks, ``checks.check_<name>(fn)``
* :mod:`.anatomy` -- VGG's layer table and receptive fields; :mod:`.analysis` -- gradient flow, pooling pairs
* :mod:`.report` -- the environment report of the setup cell
* :mod:`.tool` -- ``python -m nstlib.course``: clean, student version, setup cell, lab;
  :mod:`.setup_cell` -- the setup cell's template

A notebook starts with ``from nstlib.course import checks, notice, pick``.
"""
from . import checks
from .banner import notice
from .quick import QUICK, pick

__all__ = ["checks", "notice", "pick", "QUICK"]
