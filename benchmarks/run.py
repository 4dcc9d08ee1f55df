"""Speed benchmarks of nstlib: prints a table and writes docs/benchmarks.md.

    python benchmarks/run.py                          # everything (about half an hour on 2 cores)
    python benchmarks/run.py --sizes 128 --repeats 2 --only steps    # a quick look

Every measurement runs in a fresh process (``benchmarks/measure.py``) so that each size's peak
memory is its own. Results are kept in ``benchmarks/results.json`` per section, so one section can
be re-run alone; ``docs/benchmarks.md`` is rebuilt from all of them, each with its date and load.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = ("steps", "sweep", "multiscale", "options", "plain", "levers")
DEFAULT_STEPS = {128: 30, 256: 15, 512: 8}
PLAIN_STEPS = {256: 100, 512: 40}  # the plain loop's num_steps (it runs whole .step()s of 20 evaluations)


def machine() -> dict:
    lines = Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []
    cpu = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")),
               platform.processor())
    flags = next((line.split(":", 1)[1].split() for line in lines if line.startswith("flags")), [])
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30 if hasattr(os, "sysconf") else 0
    info = {"cpu": cpu, "cores": os.cpu_count(), "ram_gb": round(mem, 1), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "python": platform.python_version(),
            "os": platform.platform(), "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "half_units": [f for f in ("avx512_bf16", "amx_bf16", "avx512_fp16") if f in flags]}
    return info


def measure(kind: str, size: int, *extra: str) -> dict:
    """Run one measurement in a fresh process; returns its JSON plus when and under what load."""
    cmd = [sys.executable, str(ROOT / "benchmarks" / "measure.py"), kind, str(size), *extra]
    load0, t0 = os.getloadavg()[0], time.time()
    print(f"  running {' '.join(cmd[2:])} ...", flush=True)
    done = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, NSTLIB_OFFLINE="1"))
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if done.returncode or line is None:
        raise SystemExit(f"{kind} {size} failed:\n{done.stdout}\n{done.stderr}")
    out = json.loads(line[len("RESULT "):])
    out.update(date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(t0)), wall=round(time.time() - t0, 1),
               load=[round(load0, 2), round(os.getloadavg()[0], 2)])
    return out


def med(xs: list) -> float:
    return statistics.median(xs)


def steps_rows(results: dict) -> list[list[str]]:
    rows = []
    for key in sorted(results.get("steps", {}), key=lambda k: (k.split(":")[0], int(k.split(":")[1]))):
        r = results["steps"][key]
        b, lb, ad = med(r["bound"]), med(r["lbfgs"]), med(r["adam"])
        cuda = f" / {r['peak_cuda_mb']:.0f}" if "peak_cuda_mb" in r else ""
        rows.append([r["device"], str(r["size"]), f"{b:.3f}", f"{lb:.3f}", f"{lb / b:.2f}", f"{ad:.3f}",
                     f"{ad / b:.2f}", f"{r['peak_rss_mb']:.0f}{cuda}", f"{r['target_loss']:.4g}",
                     f"{r['lbfgs_to_target']:.1f}", f"{r['adam_to_target']:.1f}",
                     f"{len(r['bound'])}x / {r['steps']} steps", f"{r['load'][0]}-{r['load'][1]}"])
    return rows


HEADER = ["device", "px", "bound s", "L-BFGS s/step", "L-BFGS / bound", "Adam s/step", "Adam / bound",
          "peak RSS MB (/ CUDA)", "fixed loss", "L-BFGS s to it", "Adam s to it", "runs", "load"]


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512])
    p.add_argument("--repeats", type=int, default=3, help="runs per measurement (medians are reported)")
    p.add_argument("--steps", type=int, default=None, help="steps per timed run (default 30/15/8 by size)")
    p.add_argument("--only", nargs="+", choices=SECTIONS + ("render",), default=list(SECTIONS),
                   help="sections to measure; 'render' measures nothing and rebuilds the doc")
    p.add_argument("--devices", nargs="+", default=["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    p.add_argument("--sweep-size", type=int, default=128)
    p.add_argument("--sweep-steps", type=int, default=20)
    p.add_argument("--ms-size", type=int, default=512)
    p.add_argument("--ms-steps", type=int, default=40, help="single-scale steps whose final loss is the target")
    p.add_argument("--ms-coarse", default="120,80,15", help="steps of the coarse stages, coarsest first")
    p.add_argument("--options-size", type=int, default=128)
    p.add_argument("--plain-sizes", type=int, nargs="+", default=[256, 512])
    p.add_argument("--plain-configs", nargs="+", default=["tutorial", "default"], choices=["tutorial", "default"])
    p.add_argument("--plain-steps", type=int, default=None, help="the plain loop's num_steps (default 100/40 by size)")
    p.add_argument("--plain-args", default="--bf16",
                   help="more measure.py options for 'plain', e.g. '--bf16 --frozen --clock cpu --threads 1'")
    p.add_argument("--levers-size", type=int, default=256)
    p.add_argument("--levers-steps", type=int, default=8)
    p.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results.json")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    p.add_argument("--no-write", action="store_true", help="print only; keep results.json and the doc")
    p.add_argument("--merge", type=Path, nargs="*", default=[], help="results files of other runs to merge in")
    a = p.parse_args()
    results = json.loads(a.results.read_text()) if a.results.exists() else {}
    for other in a.merge:  # e.g. sections measured in parallel into separate files
        for key, value in json.loads(other.read_text()).items():
            if key == "steps":
                results.setdefault("steps", {}).update(value)
            elif key == "notes":
                results["notes"] = results.get("notes", []) + [n for n in value if n not in results.get("notes", [])]
            elif key != "machine":
                results[key] = value
    results["machine"] = machine()
    rep = ["--repeats", str(a.repeats)]
    if "steps" in a.only:
        results.setdefault("steps", {})
        for dev in a.devices:
            for size in a.sizes:
                n = a.steps or DEFAULT_STEPS.get(size, 10)
                results["steps"][f"{dev}:{size}"] = measure("steps", size, "--device", dev, "--steps", str(n), *rep)
    if "sweep" in a.only:
        results["sweep"] = measure("sweep", a.sweep_size, "--steps", str(a.sweep_steps), "--repeats", "1")
    if "multiscale" in a.only:
        results["multiscale"] = measure("multiscale", a.ms_size, "--steps", str(a.ms_steps), "--coarse", a.ms_coarse)
    if "options" in a.only:
        results["options"] = measure("options", a.options_size, "--steps", "8", "--compile", *rep)
    if "plain" in a.only:
        results.setdefault("plain", {})
        for config in a.plain_configs:
            for size in a.plain_sizes:
                n = a.plain_steps or PLAIN_STEPS.get(size, 40)
                results["plain"][f"{config}:{size}"] = measure("plain", size, "--config", config, "--steps", str(n),
                                                               "--repeats", "1", *a.plain_args.split())
    if "levers" in a.only:
        results.setdefault("levers", {})
        for config in a.plain_configs:
            results["levers"][f"{config}:{a.levers_size}"] = measure(
                "levers", a.levers_size, "--config", config, "--steps", str(a.levers_steps), *rep)
    from report import PLAIN_HEADER, plain_rows, render  # benchmarks/report.py: the document's text
    print(table(PLAIN_HEADER, plain_rows(results)))
    print(table(HEADER, steps_rows(results)))
    text = render(results, table(HEADER, steps_rows(results)), table(PLAIN_HEADER, plain_rows(results)))
    print(text.split("## Steps")[0])
    if not a.no_write:
        a.results.write_text(json.dumps(results, indent=1) + "\n")
        a.out.write_text(text)
        print(f"wrote {a.out} and {a.results}")


if __name__ == "__main__":
    main()
