"""Registers the ``browser`` marker: tests that drive JupyterLab in headless Chromium.

Select them with ``pytest -m browser``; leave them out with ``pytest -m "not browser"``.
"""


def pytest_configure(config):
    config.addinivalue_line("markers", "browser: real-browser test (JupyterLab + headless Chromium); "
                            "needs Debian's chromium and the playwright package")
