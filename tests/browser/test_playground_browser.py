"""The playground in a real browser: JupyterLab + headless Chromium (Debian's), driven by playwright.

Starts JupyterLab on 127.0.0.1 (a free port, a fixed token) in a temporary folder holding a copy of
notebook 05, with NSTLIB_OFFLINE=1 and NSTLIB_QUICK=1; runs all cells; checks that every widget
renders (no "Error displaying widget"); measures in the DOM that every displayed image keeps its
tensor's aspect ratio (within 2 %) and that the result sits beside content and style; sets more
steps, clicks Run, drags the beta slider *during* the run and checks (in the kernel) that the running
objective switched to the new beta at a step of that run; Stop; pins the result, runs again and
checks the compare view. Screenshots in test-artifacts/: playground-controls.png (after Run all),
playground-live.png (the live run after the beta drag), playground-compare.png (pinned beside the
new result); test-artifacts/browser-aspect.json holds the measurements. Shuts JupyterLab down.

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


_KERNEL = """async (code) => {
  const k = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
  const f = k.requestExecute({code, silent: false, store_history: false});
  let out = '';
  f.onIOPub = (m) => { if (m.header.msg_type === 'stream') out += m.content.text; };
  await f.done;
  return out;
}"""

_ASPECTS = """(classes) => classes.map((c) => {
  const i = document.querySelector('.' + c);
  if (!i || !i.naturalWidth || i.offsetParent === null) return null;
  const r = i.getBoundingClientRect();
  return {cls: c, natural: [i.naturalWidth, i.naturalHeight], shown: [i.clientWidth, i.clientHeight],
          box: [r.x, r.y, r.width, r.height]};
}).filter((x) => x)"""

_SHAPES = """import json
from nstlib.image import load_image
from nstlib.playground.picker import THUMB_SIDE
_s = {"nstlib-image": list(pg.result.image.shape[-2:])}
for _p in (pg.content_picker, pg.style_picker):
    _s[f"nstlib-thumb-{_p.label.lower()}"] = list(load_image(_p.current[0], size=THUMB_SIDE, device="cpu").shape[-2:])
if pg.compare.pinned is not None:
    _s["nstlib-pinned"] = list(pg.compare.pinned.image.shape[-2:])
print(json.dumps(_s))
"""


def _check_aspects(page, name: str) -> list[dict]:
    """Every displayed image's natural and rendered aspect ratio vs its tensor's (within 2 %)."""
    shapes = json.loads(page.evaluate(_KERNEL, _SHAPES))
    rows = page.evaluate(_ASPECTS, list(shapes) + ["nstlib-plot"])
    assert {r["cls"] for r in rows} >= {"nstlib-image", "nstlib-thumb-content", "nstlib-thumb-style"}, rows
    for r in rows:
        nat, shown = r["natural"][0] / r["natural"][1], r["shown"][0] / r["shown"][1]
        r["natural_ratio"], r["shown_ratio"] = round(nat, 4), round(shown, 4)
        if r["cls"] in shapes:
            h, w = shapes[r["cls"]]
            r["tensor"], r["tensor_ratio"] = [h, w], round(w / h, 4)
            assert abs(nat / (w / h) - 1) < 0.02, r
        assert abs(shown / nat - 1) < 0.02, f"{name}: {r['cls']} is stretched: {r}"
    return rows


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
            stderr = ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
            stderr_before = page.locator(stderr).count()
            page.locator(".nstlib-banner").first.evaluate("e => e.scrollIntoView({block: 'start'})")
            page.screenshot(path=str(ARTIFACTS / "playground-controls.png"))  # the controls, after Run all
            aspects = {"after run all": _check_aspects(page, "after run all")}
            boxes = {r["cls"]: r["box"] for r in aspects["after run all"]}
            res, thumbs = boxes["nstlib-image"], (boxes["nstlib-thumb-content"], boxes["nstlib-thumb-style"])
            for t in thumbs:  # the result is beside content and style (right of them, same band), and larger
                assert res[0] >= t[0] + t[2] - 1, (res, t)
                assert res[1] < t[1] + t[3] and t[1] < res[1] + res[3], (res, t)
                assert res[2] > t[2], (res, t)

            steps = page.locator(".nstlib-steps .widget-readout").first
            steps.click()
            page.keyboard.press("Control+A")
            page.keyboard.type("400")
            page.keyboard.press("Enter")
            page.wait_for_function("() => document.querySelector('.nstlib-steps .widget-readout')"
                                   ".innerText.trim() === '400'", timeout=10_000)
            time.sleep(1.0)  # let the kernel receive the new value

            page.locator(".nstlib-run-button").first.click()
            page.wait_for_function("() => document.querySelector('.nstlib-run-info').innerText"
                                   ".includes('400 steps')", timeout=60_000)
            page.wait_for_function("() => /step [0-9]+\\/400/.test(document.querySelector('.nstlib-status')"
                                   ".innerText)", timeout=180_000)
            # drag the beta slider's handle to the right during the run
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
            live_code = ("import json; _r = pg._run; print(json.dumps({'running': pg.running, 'beta': pg.beta.value, "
                         "'changes': _r.changes, 'betas': sorted({h['style_weight'] for h in _r.history}), "
                         "'steps': len(_r.history)}))")
            deadline = time.monotonic() + 120
            while True:  # the running objective switched to the dragged beta
                live = json.loads(page.evaluate(_KERNEL, live_code))
                if live["beta"] in live["betas"] or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            assert live["running"] and live["changes"], live
            assert any(abs(b / 1e4 - 1) < 1e-6 for b in live["betas"]), live  # before the drag (10**4.0)
            assert live["beta"] in live["betas"] and abs(live["beta"] / 1e4 - 1) > 0.01, live  # after it
            time.sleep(2.5)  # the plot redraws once a second: let it mark the change
            page.locator(".nstlib-banner").first.evaluate("e => e.scrollIntoView({block: 'start'})")
            page.screenshot(path=str(ARTIFACTS / "playground-live.png"))
            aspects["during the live run"] = _check_aspects(page, "live run")
            page.locator(".nstlib-stop-button").first.click()
            page.wait_for_function("() => /stopped after|done after|error/.test("
                                   "document.querySelector('.nstlib-status').innerText)", timeout=120_000)
            status = _text(page, "nstlib-status")
            assert "stopped after" in status, status

            # compare: pin this result, run again (stopped after a few steps), both side by side
            page.get_by_text("Pin for compare").first.click()
            page.wait_for_function("() => { const i = document.querySelector('.nstlib-pinned');"
                                   " return i && i.naturalWidth > 0 && i.offsetParent !== null; }", timeout=30_000)
            page.locator(".nstlib-run-button").first.click()
            page.wait_for_function("() => /step [0-9]+\\/400/.test(document.querySelector('.nstlib-status')"
                                   ".innerText)", timeout=180_000)
            page.locator(".nstlib-stop-button").first.click()
            page.wait_for_function("() => /stopped after|done after/.test("
                                   "document.querySelector('.nstlib-status').innerText)", timeout=120_000)
            aspects["compare view"] = _check_aspects(page, "compare view")
            boxes = {r["cls"]: r["box"] for r in aspects["compare view"]}
            assert boxes["nstlib-pinned"][0] >= boxes["nstlib-image"][0] + boxes["nstlib-image"][2] - 1, boxes
            assert page.get_by_text("Error displaying widget").count() == 0
            assert page.locator(stderr).count() == stderr_before, "new stderr under a cell (warnings go to the banner)"
            page.locator(".nstlib-banner").first.evaluate("e => e.scrollIntoView({block: 'start'})")
            page.screenshot(path=str(ARTIFACTS / "playground-compare.png"))
            (ARTIFACTS / "browser-aspect.json").write_text(json.dumps(aspects, indent=1))
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "playground-failure.png"))
            raise
        finally:
            ctx.close()
    total = time.monotonic() - t0
    (ARTIFACTS / "browser-test.txt").write_text(
        f"run all: {run_all_s:.1f} s; whole browser session: {total:.1f} s\n{status}\n")
