"""pytest configuration for the notebooks: the reference outputs of ``# NBVAL_CHECK_OUTPUT`` cells.

The notebooks are committed clean, with no outputs and no execution counts. nbval compares a cell
with the outputs stored in the notebook, so ``python -m nstlib.course clean`` records the text
such a cell printed in its metadata (``metadata.nstlib.expected_output``). This hook gives that text
back to nbval as the cell's reference output before the tests run. A marked cell with no recorded
text stops the run, so no check is silently skipped.
"""
from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    from nstlib.course.tool import expected_output, is_check_output

    for item in items:
        cell = getattr(item, "cell", None)
        if cell is None or not type(item).__module__.startswith("nbval") or not is_check_output(cell):
            continue
        text = expected_output(cell)
        if text is None:
            raise pytest.UsageError(
                f"{item.nodeid}: a '# NBVAL_CHECK_OUTPUT' cell without a recorded expected output; "
                "run the notebook, save it, then run `python -m nstlib.course clean`")
        import nbformat

        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=text)]
        cell.execution_count = 1  # nbval compares only cells that were run in the reference
