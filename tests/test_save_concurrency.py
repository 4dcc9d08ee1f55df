"""Issue 15: results that can be lost when saving. "Never overwrites" under concurrency (8 threads,
4 processes x 25 saves), no 0-byte file after a failed save, names too long for the filesystem.
The CLI's run-and-save wrapper: tests/test_cli_results.py.
"""
from __future__ import annotations

import errno
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

import nstlib
from nstlib import ImageError, save_image

LIB = Path(nstlib.__file__).resolve().parents[1]  # the nstlib under test, also in subprocesses


def _img(seed: int) -> torch.Tensor:
    return torch.rand(1, 3, 24, 32, generator=torch.Generator().manual_seed(seed))


def _all_distinct_and_valid(folder: Path, pattern: str = "*.png") -> list[Path]:
    files = sorted(folder.glob(pattern))
    for f in files:
        with Image.open(f) as im:
            im.load()  # a complete, decodable file
    return files


def test_eight_threads_saving_to_one_name_leave_eight_files(tmp_path):
    barrier = threading.Barrier(8)
    written, errors = [], []

    def save(i: int) -> None:
        try:
            barrier.wait()
            written.append(save_image(_img(i), tmp_path / "out.png"))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)
    threads = [threading.Thread(target=save, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    files = _all_distinct_and_valid(tmp_path)
    assert len(set(written)) == 8 and len(files) == 8, [f.name for f in files]
    assert {f.name for f in files} == {"out.png"} | {f"out_{i}.png" for i in range(1, 8)}
    # each file holds the image of the save that reported it (nothing was overwritten afterwards)
    for path in written:
        back = nstlib.load_image(path, device="cpu")
        assert any(torch.equal(back, (_img(i) * 255).round() / 255) for i in range(8))


def test_four_processes_saving_25_times_each_leave_100_files(tmp_path):
    start = time.time() + 6  # every process starts saving at the same moment, after importing
    code = ("import sys, time, torch, nstlib\n"
            "start, folder, me = float(sys.argv[1]), sys.argv[2], int(sys.argv[3])\n"
            "img = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(me))\n"
            "time.sleep(max(0.0, start - time.time()))\n"
            "for _ in range(25):\n"
            "    nstlib.save_image(img, folder + '/same.png')\n")
    env = {**os.environ, "PYTHONPATH": str(LIB), "NSTLIB_OFFLINE": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", code, str(start), str(tmp_path), str(i)], env=env,
                              stderr=subprocess.PIPE, text=True) for i in range(4)]
    for p in procs:
        _, err = p.communicate(timeout=240)
        assert p.returncode == 0, err
    files = _all_distinct_and_valid(tmp_path)
    assert len(files) == 100, f"{len(files)} files for 100 saves"


def _failing_encoder(monkeypatch, exc: BaseException):
    real = Image.Image.save

    def save(self, fp, *args, **kwargs):
        (fp.write if hasattr(fp, "write") else Path(fp).write_bytes)(b"\x89PNG partial")
        raise exc
    monkeypatch.setattr(Image.Image, "save", save)
    return real


@pytest.mark.parametrize("exc", [OSError(errno.ENOSPC, "No space left on device"), ValueError("encoder error")])
def test_a_failed_save_leaves_no_file_and_does_not_push_the_next_to_1(tmp_path, monkeypatch, exc):
    real = _failing_encoder(monkeypatch, exc)
    with pytest.raises(ImageError, match="could not write") as err:
        save_image(_img(0), tmp_path / "out.png")
    assert "out.png" in str(err.value)
    assert list(tmp_path.iterdir()) == [], "a failed save left a file"
    monkeypatch.setattr(Image.Image, "save", real)
    assert save_image(_img(0), tmp_path / "out.png") == tmp_path / "out.png"


def test_a_failed_overwrite_keeps_the_old_file(tmp_path, monkeypatch):
    old = save_image(_img(1), tmp_path / "keep.png")
    before = old.read_bytes()
    _failing_encoder(monkeypatch, OSError(errno.ENOSPC, "No space left on device"))
    with pytest.raises(ImageError):
        save_image(_img(2), old, overwrite=True)
    assert old.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["keep.png"]


def test_an_interrupted_save_leaves_no_file(tmp_path, monkeypatch):
    _failing_encoder(monkeypatch, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        save_image(_img(0), tmp_path / "out.jpg")
    assert list(tmp_path.iterdir()) == []


def test_overwrite_replaces_the_file(tmp_path):
    path = save_image(_img(1), tmp_path / "o.png")
    assert save_image(_img(2), path, overwrite=True) == path
    assert torch.equal(nstlib.load_image(path, device="cpu"), (_img(2) * 255).round() / 255)
    assert [p.name for p in tmp_path.iterdir()] == ["o.png"]


# ---------------------------------------------------------------- names too long for the filesystem
def test_a_name_too_long_for_the_filesystem_is_shortened_keeping_start_and_end(tmp_path):
    limit = os.pathconf(tmp_path, "PC_NAME_MAX")
    content = "a_very_long_photo_name_" * 20
    names = [f"{content}{i}+starry_night_lbfgs_cw1_sw1e4_tv44_s256.jpg" for i in (1, 2)]
    paths = [save_image(_img(i), tmp_path / n) for i, n in enumerate(names)]
    for p in paths:
        assert p.is_file() and len(p.name.encode()) <= limit
        assert p.name.startswith("a_very_long_photo_name_") and p.name.endswith("_tv44_s256.jpg")
    assert paths[0] != paths[1]  # different long names stay different (a hash of the full name)
    again = save_image(_img(0), tmp_path / names[0])  # and "never overwrite" still holds
    assert again != paths[0] and again.stem == paths[0].stem + "_1"
    wide = save_image(_img(0), tmp_path / ("ü" * 200 + ".png"))  # multi-byte characters
    assert len(wide.name.encode()) <= limit and wide.is_file()


def test_result_save_with_a_long_default_name(tmp_path):
    res = nstlib.Result(image=_img(0), name="x" * 400 + "+starry_night_lbfgs_cw1_sw1e4_tv44_s256.jpg")
    path = res.save(folder=tmp_path)
    assert path.is_file() and path.parent == tmp_path and path.name.endswith("_s256.jpg")
