"""nstlib.allocator: while a run optimizes, freed blocks stay in the process and are reused (no
page faults on the next evaluation's tensors); when it ends, the free memory goes back to the
system; the opt-outs and other C libraries change nothing.

Measured from outside: the process's page faults (``ru_minflt``) and resident memory
(``/proc/self/statm``) for 96 MB tensors (above glibc's own mmap ceiling of 32 MB, so that glibc
maps and unmaps them every time), in a fresh interpreter where glibc's state matters.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

import nstlib
from nstlib.allocator import reusing_freed_memory, tunable

PAGES = 3 * (96 << 20) // os.sysconf("SC_PAGE_SIZE")  # the pages of three 96 MB tensors
needs_glibc = pytest.mark.skipif(not tunable(), reason="glibc's allocator only (Linux), and not opted out")

PROBE = r"""
import json, os, resource, torch
from nstlib.allocator import reusing_freed_memory

def faults(times=3, warm=3):  # steady state: glibc may take a block or two to settle
    for _ in range(warm):
        torch.ones(24 << 20)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(times):
        torch.ones(24 << 20)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

def resident_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

out = {"outside": faults()}
with reusing_freed_memory() as tuned:
    out["tuned"], out["inside"] = tuned, faults()
    x = torch.ones(96 << 20)  # 384 MB, freed at once: kept while the run lasts
    del x
    out["kept_mb"] = resident_mb()
out["back_mb"] = resident_mb()
print(json.dumps(out))
"""


def probe(**env: str) -> dict:
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env})
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@needs_glibc
def test_inside_a_run_freed_blocks_are_reused_and_given_back_at_its_end():
    got = probe()
    assert got["tuned"]
    assert got["outside"] > PAGES // 2, got  # mapped afresh every time: a fault per page
    assert got["inside"] < PAGES // 20, got  # kept and reused
    assert got["kept_mb"] - got["back_mb"] > 300, got  # malloc_trim once the run is over


@needs_glibc
@pytest.mark.parametrize("env", [{"NSTLIB_ALLOCATOR": "default"}, {"MALLOC_TRIM_THRESHOLD_": "131072"}])
def test_the_opt_out_and_the_users_own_glibc_settings_are_left_alone(env):
    got = probe(**env)
    assert not got["tuned"] and got["inside"] > PAGES // 2, got


@needs_glibc
def test_optimize_runs_with_the_allocator_tuned(random_vgg, tiny_content, tiny_style):
    import resource
    seen = []

    def callback(step, image, losses):
        for _ in range(3):
            torch.ones(24 << 20)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(3):
            torch.ones(24 << 20)
        seen.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    objective = nstlib.Objective(random_vgg, tiny_content, tiny_style, ["relu4_2"], ["relu1_1"], 1.0, 1e3, 0.0)
    nstlib.optimize(tiny_content.clone(), objective, steps=3, every=1, callback=callback)
    assert len(seen) == 3 and seen[-1] < PAGES // 20, seen


@pytest.mark.parametrize("env", [{"NSTLIB_ALLOCATOR": "default"}, {"NSTLIB_ALLOCATOR": " Default "},
                                 {"MALLOC_TRIM_THRESHOLD_": "131072"}, {"MALLOC_MMAP_THRESHOLD_": "131072"}])
def test_tunable_says_no_for_the_opt_outs(monkeypatch, env):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert not tunable()
    with reusing_freed_memory() as tuned:
        assert not tuned


@pytest.mark.parametrize("platform", ["darwin", "win32"])
def test_other_systems_change_nothing(monkeypatch, platform):
    monkeypatch.setattr(sys, "platform", platform)
    assert not tunable()
    with reusing_freed_memory() as tuned:
        assert not tuned
