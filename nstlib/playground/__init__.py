"""The live playground: ``Playground(content=..., style=...)`` in a notebook.

* :mod:`.app` -- :class:`Playground`, the widget and its run loop in a background thread
* :mod:`.controls` -- the sliders and menus, laid out in groups; :mod:`.extras` -- notebook 06's options
* :mod:`.form` -- the controls' values as one :class:`nstlib.Transfer`
* :mod:`.runner` -- previews, the loss plot, progress; :mod:`.live` -- the snapshot scrubber, GIF, compare
* :mod:`.picker` -- image pickers with upload; :mod:`.presets` -- named settings
"""
from .app import Playground

__all__ = ["Playground"]
