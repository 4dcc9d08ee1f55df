"""The playground in a real browser: JupyterLab + headless Chromium (Debian's), driven by playwright.

Starts JupyterLab on 127.0.0.1 (a free port, a fixed token) in a temporary folder holding a copy of
notebook 05, with NSTLIB_OFFLINE=1 and NSTLIB_QUICK=1; runs all cells; checks that every widget
renders (no "Error displaying widget"); moves the beta slider, sets more steps, clicks Run, waits for
the image to change, clicks Stop; saves two screenshots to test-artifacts/ (playground-controls.png
after Run all, playground.png after Stop); shuts JupyterLab down.

Skipped when chromium or playwright is missing, except with CI=true, where that is a failure.
Select with ``pytest -m browser``; leave out with ``pytest -m "not browser"``.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "05_style_transfer_playground.ipynb"
ARTIFACTS = ROOT / "test-artifacts"
TOKEN = "nstlib-browser-test"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
RUN_ALL_TIMEOUT = 600  # s: quick mode takes well under a minute alone; CI machines may be shared


def _missing(reason: str) -> None:
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(f"{reason} (CI=true: the browser test must run in CI)")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _api(port: int, path: str, method: str = "GET", timeout: float = 5.0) -> int:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                 headers={"Authorization": f"token {TOKEN}"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status


@pytest.fixture
def chromium():
    """The browser tools, checked before anything is started."""
    if not Path(CHROMIUM).is_file():
        _missing("Debian's chromium is not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright Python package is not installed (pip install playwright)")
    return sync_playwright


@pytest.fixture
def jupyterlab(tmp_path):
    """A JupyterLab server in a temporary workspace; yields its port; always shut down."""
    work = tmp_path / "workspace"
    work.mkdir()
    shutil.copy(NOTEBOOK, work / NOTEBOOK.name)
    settings = tmp_path / "settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)  # every cell in the DOM (no virtual scrolling), so the test can see them
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    apputils = tmp_path / "settings" / "@jupyterlab" / "apputils-extension"
    apputils.mkdir(parents=True)  # no "Jupyter news?" toast over the screenshot
    (apputils / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
    port = _free_port()
    env = dict(os.environ, NSTLIB_OFFLINE="1", NSTLIB_QUICK="1", JUPYTER_RUNTIME_DIR=str(tmp_path / "rt"),
)
    env.pop("MPLBACKEND", None)  # the kernel's inline backend shows the figures
    log = open(tmp_path / "jupyterlab.log", "w")
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.port={port}", "--ServerApp.port_retries=0", "--ServerApp.allow_root=True",
           f"--IdentityProvider.token={TOKEN}",
           f"--ServerApp.root_dir={work}", "--LabApp.expose_app_in_browser=True",
           "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
           f"--LabApp.user_settings_dir={tmp_path / 'settings'}",
           f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}"]
    proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"JupyterLab exited with {proc.returncode}:\n"
                            + (tmp_path / "jupyterlab.log").read_text()[-3000:])
            try:
                if _api(port, "/api/status") == 200:
                    break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                pytest.fail("JupyterLab did not answer within 120 s:\n"
                            + (tmp_path / "jupyterlab.log").read_text()[-3000:])
            time.sleep(0.5)
        yield port
    finally:
        try:  # the clean way: the server stops its kernels and exits
            _api(port, "/api/shutdown", method="POST")
            proc.wait(timeout=30)
        except Exception:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)
        log.close()


_RUN_STATE = """() => {
  const panel = window.jupyterapp.shell.currentWidget;
  if (!panel || !panel.content || !panel.content.model) return null;
  const cells = panel.content.model.cells, errors = [];
  let code = 0, done = 0;
  for (let i = 0; i < cells.length; i++) {
    const c = cells.get(i);
    if (c.type !== 'code') continue;
    code++;
    if (c.executionCount !== null) done++;
    for (const o of c.outputs.toJSON())
      if (o.output_type === 'error') errors.push(o.ename + ': ' + o.evalue);
  }
  const k = panel.sessionContext.session && panel.sessionContext.session.kernel;
  return {code, done, errors, status: k ? k.status : 'none'};
}"""


def _text(page, cls: str) -> str:
    return page.locator(f".{cls}").first.inner_text()


def test_playground_in_jupyterlab(chromium, jupyterlab, tmp_path):
    sync_playwright = chromium
    ARTIFACTS.mkdir(exist_ok=True)
    t0 = time.monotonic()
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1400, "height": 1100})
        page = ctx.pages[0] if ctx.pages else ctx.new_page()
        try:
            page.goto(f"http://127.0.0.1:{jupyterlab}/lab/tree/{NOTEBOOK.name}?token={TOKEN}")
            page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
                                   " && window.jupyterapp.shell.currentWidget.sessionContext"
                                   " && window.jupyterapp.shell.currentWidget.sessionContext.session"
                                   " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel",
                                   timeout=120_000)
            page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
            page.wait_for_function(f"() => {{ const s = ({_RUN_STATE})(); return s && "
                                   "(s.errors.length > 0 || (s.done === s.code && s.status === 'idle')); }",
                                   timeout=RUN_ALL_TIMEOUT * 1000, polling=1000)
            state = page.evaluate(f"({_RUN_STATE})()")
            assert not state["errors"], f"cells raised: {state['errors']}"
            assert state["done"] == state["code"] > 0
            run_all_s = time.monotonic() - t0

            # every widget rendered
            assert page.get_by_text("Error displaying widget").count() == 0
            pg = page.locator(".nstlib-beta").first
            pg.scroll_into_view_if_needed()
            for cls in ("nstlib-alpha", "nstlib-beta", "nstlib-gamma", "nstlib-steps", "nstlib-size"):
                assert page.locator(f".{cls}").first.is_visible(), cls
            for cls, label in (("nstlib-run-button", "Run"), ("nstlib-stop-button", "Stop"),
                               ("nstlib-save-button", "Save")):
                assert label in _text(page, cls)
            img = page.locator(".nstlib-image").first
            assert img.is_visible()
            page.wait_for_function("() => { const i = document.querySelector('.nstlib-image');"
                                   " return i && i.naturalWidth > 0; }", timeout=30_000)
            assert "done after" in _text(page, "nstlib-status")  # the run(wait=True) of Run all
            first_src = img.get_attribute("src")
            page.locator(".nstlib-banner").first.evaluate("e => e.scrollIntoView({block: 'start'})")
            page.screenshot(path=str(ARTIFACTS / "playground-controls.png"))  # the controls, after Run all

            # move the beta slider (drag its handle to the right), give the run more steps
            readout = page.locator(".nstlib-beta .widget-readout").first
            before = readout.inner_text()
            handle = page.locator(".nstlib-beta .noUi-handle, .nstlib-beta .ui-slider-handle").first
            box = handle.bounding_box()
            page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            page.mouse.down()
            page.mouse.move(box["x"] + box["width"] / 2 + 60, box["y"] + box["height"] / 2, steps=6)
            page.mouse.up()
            page.wait_for_function("(b) => document.querySelector('.nstlib-beta .widget-readout')"
                                   ".innerText !== b", arg=before, timeout=10_000)
            steps = page.locator(".nstlib-steps .widget-readout").first
            steps.click()
            page.keyboard.press("Control+A")
            page.keyboard.type("400")
            page.keyboard.press("Enter")
            page.wait_for_function("() => document.querySelector('.nstlib-steps .widget-readout')"
                                   ".innerText.trim() === '400'", timeout=10_000)
            time.sleep(1.0)  # let the kernel receive the new values

            page.locator(".nstlib-run-button").first.click()
            page.wait_for_function("() => document.querySelector('.nstlib-run-info').innerText"
                                   ".includes('400 steps')", timeout=60_000)
            info = _text(page, "nstlib-run-info")
            assert "β=1e+04" not in info, f"the new beta did not reach the run: {info}"
            page.wait_for_function("(s) => document.querySelector('.nstlib-image').src !== s",
                                   arg=first_src, timeout=180_000)
            page.locator(".nstlib-stop-button").first.click()
            page.wait_for_function("() => /stopped after|done after|error/.test("
                                   "document.querySelector('.nstlib-status').innerText)", timeout=120_000)
            status = _text(page, "nstlib-status")
            assert "stopped after" in status, status
            assert page.get_by_text("Error displaying widget").count() == 0
            page.locator(".nstlib-status").first.evaluate("e => e.scrollIntoView({block: 'end'})")
            page.screenshot(path=str(ARTIFACTS / "playground.png"))
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "playground-failure.png"))
            raise
        finally:
            ctx.close()
    total = time.monotonic() - t0
    (ARTIFACTS / "browser-test.txt").write_text(
        f"run all: {run_all_s:.1f} s; whole browser session: {total:.1f} s\n{status}\n")
