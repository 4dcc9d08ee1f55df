"""Mutation testing of nstlib's core modules with mutmut 3: the kill rate per module.

    python tools/mutation.py                      # every module in MODULES, in order
    python tools/mutation.py losses masks         # some of them
    python tools/mutation.py --max-children 2 --timeout 1800 color

Not run in CI (minutes per module). For each module the repository is copied to a scratch folder
(``--work``, default a temporary one; the working tree is never touched), a ``setup.cfg`` with a
``[mutmut]`` section is written there that mutates that module only and runs only that module's
unit tests (``MODULES``: fast tests, no notebooks, no browser), and ``mutmut run`` is started with
NSTLIB_OFFLINE=1, NSTLIB_QUICK=1 and one torch thread per child. mutmut 3 changes one operator,
constant or call at a time inside the module's functions and runs, in a forked child, the tests
that reach the mutated function; a mutant is *killed* when a test fails (or it times out),
*survived* when every test passes. The report prints, per module, killed / total and the
surviving mutants' names; ``mutmut show NAME`` in the scratch folder (printed) shows a diff.

A survivor is either killed by a new test or listed in ``docs/testing.md`` with the reason it is
equivalent (it cannot change any behaviour a caller can observe).

    python tools/mutation.py --recheck --work /tmp/mut engine    # after writing tests for survivors

re-runs only the survivors ("no tests" and not-checked mutants too) of a kept scratch folder,
without a new ``mutmut run``: the working tree's ``tests/test_mutation_kills*.py`` are copied in
(the other tests stay as they were run), the tests are run once unmutated (they must pass), then
each mutant is switched on in a forked child (``MUTANT_UNDER_TEST``, mutmut's own switch) that
runs the kill tests (a survivor passed the others already; a not-checked mutant runs them all).
It prints which the new tests kill and which still survive (to explain as equivalent), and keeps
the verdicts in ``recheck.json`` there: a later ``--recheck`` runs only the survivors again.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: module -> the unit tests that guard it (fast ones only, narrowed with pytest's -k where a file is
#: slow; -x stops at the first failure)
MODULES = {
    "losses": ["tests/test_losses.py", "tests/test_survivors.py", "tests/test_mutation_kills.py"],
    "color": ["tests/test_survivors.py", "tests/test_mutation_kills_core.py", "tests/test_beyond.py",
              "-k", "(color or yiq or luminance or histogram or preserve_color) and not playground"],
    "masks": ["tests/test_survivors.py", "tests/test_mutation_kills.py", "tests/test_mutation_kills_core.py",
              "tests/test_beyond.py", "-k", "(mask or gram) and not playground and not cli"],
    "styles": ["tests/test_survivors.py", "tests/test_mutation_kills.py", "tests/test_beyond.py",
               "tests/test_mutation_kills_more.py", "-k", "blend or style_scale or styles or target or weights"],
    # the mixed-precision and channels-last tests (10 of the 14 s a mutant costs) never reach the objective's
    # arithmetic in a way the others do not: left out
    "objective": ["tests/test_survivors.py", "tests/test_mutation_kills.py", "tests/test_mutation_kills_core.py",
                  "tests/test_speed.py", "tests/test_transfer.py", "tests/test_mutation_kills_more.py",
                  "-k", "not mixed_precision and not channels_last"],
    "vgg": ["tests/test_vgg.py", "tests/test_mutation_kills.py", "tests/test_mutation_kills_vgg.py"],
    "image": ["tests/test_image.py", "tests/test_mutation_kills.py", "tests/test_mutation_kills_more.py"],
    # rewritten by the run-spec work (issue 14): run these last, against the public API tests
    "engine": ["tests/test_spec.py", "tests/test_survivors.py", "tests/test_hardening_run.py",
               "tests/test_transfer.py", "tests/test_speed.py", "tests/test_mutation_kills_core.py", "-k",
               "test_spec or test_survivors or (test_hardening_run and not cli) or test_transfer"
               " or (test_speed and (sweep or batched or scales)) or (test_mutation_kills_core and engine)"],
    "transfer": ["tests/test_survivors.py", "tests/test_transfer.py", "tests/test_hardening_run.py",
                 "tests/test_mutation_kills_more.py"],
    "multiscale": ["tests/test_survivors.py", "tests/test_speed.py", "tests/test_mutation_kills_more.py"],
}
STATUS = re.compile(r"^\s*(nstlib\.\S+): (.+)$")


def _copy(work: Path) -> None:
    ignore = shutil.ignore_patterns(".git", "__pycache__", "mutants", "*.ipynb", "results")
    for name in ("nstlib", "tests", "images", "benchmarks"):
        shutil.copytree(ROOT / name, work / name, ignore=ignore)
    for name in ("conftest.py", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, work / name)


def _setup_cfg(module: str, tests: list[str]) -> str:
    lines = "\n    ".join
    return (f"[mutmut]\nsource_paths = nstlib\nonly_mutate = nstlib/{module}.py\n"
            f"also_copy =\n    tests\n    images\n    conftest.py\n"
            f"pytest_add_cli_args_test_selection =\n    {lines(tests)}\n"
            "pytest_add_cli_args =\n    -p\n    no:cacheprovider\n    -x\n    -q\n"
            "timeout_multiplier = 10.0\ntimeout_constant = 20.0\n")


def run_module(module: str, base: Path, max_children: int, timeout: float) -> dict:
    work = base / module
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    _copy(work)
    tests = [t for t in MODULES[module] if not t.startswith("tests/") or (work / t).exists()]
    (work / "setup.cfg").write_text(_setup_cfg(module, tests))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # mutmut sets up sys.path itself
    env.update(NSTLIB_OFFLINE="1", NSTLIB_QUICK="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               MPLBACKEND="Agg")
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-m", "mutmut", "run", "--max-children", str(max_children)],
                              cwd=work, env=env, capture_output=True, text=True, timeout=timeout)
        log = proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as e:
        log = f"timed out after {timeout:.0f} s\n{e.stdout or ''}"
    (work / "mutmut_run.log").write_text(log if isinstance(log, str) else log.decode())
    res = subprocess.run([sys.executable, "-m", "mutmut", "results", "--all", "true"], cwd=work, env=env,
                         capture_output=True, text=True, timeout=600)
    status: dict[str, str] = {}
    for line in res.stdout.splitlines():
        m = STATUS.match(line)
        if m:
            status[m.group(1)] = m.group(2).strip()
    return {"module": module, "status": status, "seconds": time.perf_counter() - t0, "work": work,
            "tests": tests}


def summarize(r: dict) -> str:
    counts: dict[str, int] = {}
    for s in r["status"].values():
        counts[s] = counts.get(s, 0) + 1
    killed = counts.get("killed", 0) + counts.get("timeout", 0)
    tested = killed + counts.get("survived", 0)
    rate = 100.0 * killed / tested if tested else float("nan")
    other = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()) if k not in ("killed", "survived", "timeout"))
    head = (f"{r['module']:<11} {killed:>4} / {tested:<4} killed  {rate:5.1f} %   "
            f"({r['seconds']:.0f} s; tests: {' '.join(Path(t).name for t in r['tests'])})"
            + (f"  [{other}]" if other else ""))
    survivors = sorted(n for n, s in r["status"].items() if s == "survived")
    return head + "".join(f"\n    survived: {n}" for n in survivors)


def recheck(module: str, base: Path, max_children: int) -> tuple[int, list[str], list[str]]:
    """Run the survivors, "no tests" and not-checked mutants of ``base/module`` against the current
    tests (the kill tests first): (how many, killed, survived)."""
    import json
    work = base / module / "mutants"
    meta = json.loads((work / "nstlib" / f"{module}.py.meta").read_text())
    names = sorted(n for n, code in meta["exit_code_by_key"].items() if code in (0, 33, None))
    book = base / module / "recheck.json"  # mutants an earlier --recheck killed are not run again
    done = json.loads(book.read_text()) if book.exists() else {}
    killed: list[str] = [n for n in names if done.get(n) == "killed"]
    survived: list[str] = []
    names = [n for n in names if n not in killed]
    for path in (ROOT / "tests").glob("test_mutation_kills*.py"):  # the new kill tests; the rest as run
        shutil.copy(path, work / "tests" / path.name)
    tests = [t for t in MODULES[module] if not t.startswith("tests/") or (work / t).exists()]
    options = [t for t in tests if not t.startswith("tests/")]  # -k ...
    # a survivor passed the other tests already: the kill tests only
    kills = [t for t in tests if t.startswith("tests/") and "mutation_kills" in t] + options
    os.environ.update(NSTLIB_OFFLINE="1", NSTLIB_QUICK="1", OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    os.chdir(work)
    sys.path.insert(0, str(work))
    import pytest
    import torch  # noqa: F401  (imported once, before the children fork)

    import nstlib  # noqa: F401  (the mutated copy, with mutmut's switches: compiled once, shared)
    assert Path(nstlib.__file__).is_relative_to(work), nstlib.__file__
    # once unmutated in this process: the tests must pass, and every lazy import (torch.optim's
    # dynamo check, the test modules) is done before the children fork
    log = work.parent / "recheck_unmutated.log"
    with open(log, "w") as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
        code = pytest.main(["-q", "-p", "no:cacheprovider", "-W", "ignore", *tests])
    if code != 0:
        raise SystemExit(f"the tests fail without a mutant (pytest exit {code}); see {log}")
    running: dict[int, str] = {}

    def reap() -> None:
        pid, status = os.wait()
        name, code = running.pop(pid), os.waitstatus_to_exitcode(status)
        if code not in (0, 1):  # 2-5: interrupted, internal or usage error, nothing collected
            raise SystemExit(f"pytest exited {code} for {name}: the test selection is broken")
        (killed if code == 1 else survived).append(name)
        print(f"{'killed  ' if code == 1 else 'SURVIVED'}  {name}", flush=True)

    for name in names:
        if len(running) >= max_children:
            reap()
        pid = os.fork()
        if pid == 0:
            os.environ["MUTANT_UNDER_TEST"] = name
            if meta["exit_code_by_key"][name] is not None:
                tests = kills
            log = os.open(str(base / module / f"recheck_{name}.log"),
                          os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(log, 1)
            os.dup2(log, 2)
            os._exit(int(pytest.main(["-x", "-q", "-p", "no:cacheprovider", "-W", "ignore", *tests])))
        running[pid] = name
    while running:
        reap()
    book.write_text(json.dumps({**{n: "killed" for n in killed}, **{n: "survived" for n in survived}}, indent=1))
    return len(killed) + len(survived), killed, survived


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("modules", nargs="*", default=list(MODULES), help=f"default: {' '.join(MODULES)}")
    p.add_argument("--max-children", type=int, default=2, help="parallel mutant runs (default 2)")
    p.add_argument("--timeout", type=float, default=3600, help="seconds per module (default 3600)")
    p.add_argument("--work", type=Path, default=None, help="scratch folder (kept, for `mutmut show`)")
    p.add_argument("--recheck", action="store_true",
                   help="re-run the survivors of a kept --work folder against the current tests")
    a = p.parse_args(argv)
    unknown = [m for m in a.modules if m not in MODULES]
    if unknown:
        p.error(f"unknown module(s) {unknown}; choose from {' '.join(MODULES)}")
    if a.recheck:
        if a.work is None or len(a.modules) != 1:
            p.error("--recheck needs --work FOLDER and one module")
        n, killed, survived = recheck(a.modules[0], a.work, a.max_children)
        print(f"{a.modules[0]}: {len(killed)} of {n} earlier survivors / unchecked mutants killed by the "
              f"current tests; {len(survived)} survive")
        return 0
    base = a.work or Path(tempfile.mkdtemp(prefix="nstlib_mutation_"))
    total_k = total_t = 0
    for module in a.modules:
        r = run_module(module, base, a.max_children, a.timeout)
        print(summarize(r), flush=True)
        k = sum(s in ("killed", "timeout") for s in r["status"].values())
        total_k, total_t = total_k + k, total_t + k + sum(s == "survived" for s in r["status"].values())
    if total_t:
        print(f"{'all':<11} {total_k:>4} / {total_t:<4} killed  {100.0 * total_k / total_t:5.1f} %")
    print(f"scratch folder: {base} (cd {base}/MODULE && mutmut show NAME)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
