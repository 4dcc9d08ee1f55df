"""The text of docs/benchmarks.md, rendered from benchmarks/results.json by benchmarks/run.py."""
from __future__ import annotations

import statistics

med = statistics.median


def _stamp(r: dict) -> str:
    if "note" in r:  # a result recorded from a run outside run.py (see its note)
        return r["note"]
    return f"measured {r['date']}, {r['wall']:.0f} s wall, load average {r['load'][0]} -> {r['load'][1]}"


def _targets(res: dict) -> list[str]:
    out = []
    steps = res.get("steps", {})
    ratios = [(k, med(r["lbfgs"]) / med(r["bound"]), med(r["adam"]) / med(r["bound"])) for k, r in steps.items()]
    if ratios:
        worst = max(max(lb, ad) for _, lb, ad in ratios)
        each = ", ".join(f"{k.split(':')[1]} px {lb:.2f} / {ad:.2f}" for k, lb, ad in ratios if k.startswith("cpu"))
        out.append(f"| Step cost <= 1.15 x the bound | L-BFGS / Adam: {each} | "
                   f"{'met' if worst <= 1.15 else 'not met'} (worst {worst:.2f}) |")
    if "sweep" in res:
        s = res["sweep"]
        speed = med(s["separate"]) / med(s["batch"])
        out.append(f"| 3 x 3 sweep >= 1.5 x faster than nine runs at {s['size']} px | {speed:.2f} x "
                   f"({med(s['separate']):.0f} s vs {med(s['batch']):.0f} s) | "
                   f"{'met' if speed >= 1.5 else 'not met'} |")
    if "multiscale" in res:
        m = res["multiscale"]
        if m["multi_seconds_to_target"] is None:
            out.append(f"| Multi-scale <= 0.5 x the time at {m['size']} px | did not reach the single-scale "
                       f"loss {m['target_loss']:.4g} (ended at {m['multi_final_loss']:.4g}) | not met |")
        else:
            ratio = m["multi_seconds_to_target"] / m["single_seconds"]
            out.append(f"| Multi-scale <= 0.5 x the time at {m['size']} px | {ratio:.2f} x "
                       f"({m['multi_seconds_to_target']:.0f} s vs {m['single_seconds']:.0f} s) | "
                       f"{'met' if ratio <= 0.5 else 'not met'} |")
    plain = sorted(res.get("plain", {}).items())
    for label, name in (("`stylize`, one scale", "fp32"), ("the CLI's default run", "cli")):
        ratios = [(k, med(r.get(f"{name}_ratio") or r["fp32_ratio"])) for k, r in plain if r.get("fp32_ratio")]
        if ratios:
            worst = max(x for _, x in ratios)
            out.append(f"| Time to the same loss <= 0.5 x plain PyTorch: {label} | "
                       f"{', '.join(f'{k.replace(chr(58), chr(32))} px {x:.2f}' for k, x in ratios)} | "
                       f"{'met' if worst <= 0.5 else 'not met'} (worst {worst:.2f}) |")
    big = steps.get("cpu:512")
    if big:
        out.append(f"| Peak RSS at 512 px on CPU <= 2.5 GB | {big['peak_rss_mb'] / 1024:.2f} GB | "
                   f"{'met' if big['peak_rss_mb'] <= 2560 else 'not met'} |")
    elif "rss512_partial_mb" in res:  # an unfinished run's high-water mark (see the notes)
        part = res["rss512_partial_mb"]
        out.append(f"| Peak RSS at 512 px on CPU <= 2.5 GB | {part / 1024:.2f} GiB high-water mark of an "
                   f"unfinished run; + at most 0.59 GiB of L-BFGS history = {(part + 600) / 1024:.1f} GiB "
                   "expected | not confirmed |")
    return out


PLAIN_HEADER = ["config", "px", "plain best loss", "plain s to its best", "plain evals", "plain last / best",
                "nstlib s to it", "nstlib / plain", "nstlib bf16 s to it", "bf16 / plain",
                "CLI default s to it", "CLI / plain", "PSNR dB fp32 vs plain / bf16 vs fp32", "load"]


def plain_rows(res: dict) -> list[list[str]]:
    """One row per configuration and size: medians over the repeats (benchmarks/plain_pytorch.py)."""
    rows = []
    for key, r in sorted(res.get("plain", {}).items(), key=lambda kv: (kv[0].split(":")[0], int(kv[0].split(":")[1]))):
        p = r["plain"]

        def cell(name: str) -> tuple[str, str]:
            runs = r.get(name, [])
            if not runs:
                return "-", "-"
            if any(n["to_target"] is None for n in runs):
                return f"not reached (best {med([n['best'] for n in runs]):.4g})", "-"
            return f"{med([n['to_target'] for n in runs]):.1f}", f"{med(r[name + '_ratio']):.2f}"

        def psnr(runs: list, key: str) -> str:
            vals = [x[key]["psnr_db"] for x in runs if key in x]
            return f"{med(vals):.1f}" if vals else "-"
        rows.append([r["config"] + (" (frozen)" if r.get("frozen") else ""), str(r["size"]),
                     f"{med([x['best'] for x in p]):.4g}", f"{med([x['best_at'] for x in p]):.1f}",
                     str(p[0]["evals"]), f"{med([x['last_over_best'] for x in p]):.2f}", *cell("fp32"), *cell("bf16"),
                     *(cell("cli") if r.get("cli") else ("one scale: as nstlib", "-")),
                     f"{psnr(p, 'fp32_vs_plain')} / {psnr(r.get('bf16', []), 'vs_fp32')}", f"{r['load'][0]}-{r['load'][-1]}"])
    return rows


def _plain(res: dict, plain_table: str) -> str:
    if not res.get("plain"):
        return "Not measured yet (`python benchmarks/run.py --only plain`).\n"
    clock = next(iter(res["plain"].values())).get("clock", "wall")
    return (f"`benchmarks/plain_pytorch.py`: the official PyTorch tutorial's code (torchvision VGG19, weights "
            f"left trainable, loss modules after the tapped layers, `torch.optim.LBFGS` with its defaults, "
            f"clamping in the closure, the last image returned) against `nstlib.stylize`, in one process, "
            f"the same weights and images (the style squashed to the content's size, as the tutorial needs). "
            f"Configurations: **tutorial** = VGG19 cut after conv3_1, content conv2_2, style conv1_1...conv3_1, "
            f"beta 1e6, no TV; **default** = nstlib's relu4_2 / relu1_1...relu5_1, 1 : 1e4 : 44 (TV added to the "
            f"tutorial's loop). The target is the plain loop's best loss; every image of both sides is judged "
            f"by one fp32 evaluator (the tutorial's model) after the run, off the clock. Seconds are {clock} "
            f"time from the start of each loop (model and targets included). **plain last / best**: the loss of "
            f"the image the tutorial returns (its last) over its best; nstlib returns its best. **CLI default**: "
            f"the run `python -m nstlib` makes at that size, from 512 px coarse to fine "
            f"(`nstlib.multiscale.auto_scales`: 4 scales, 120, 80 and 15 L-BFGS steps at 1/8, 1/4 and 1/2 the "
            f"side before the full size), timed from its start, coarse stages included; below 512 px it is "
            f"`stylize`'s one-scale run. **PSNR**: between "
            f"the first images at the target loss, nstlib fp32 vs the plain loop's best (float rounding alone) "
            f"and nstlib bf16 vs nstlib fp32; the threshold for 'no visible difference' used here is 35 dB "
            f"(the mean and max absolute pixel differences are in results.json).\n\n"
            f"{plain_table}\n")


LEVERS = ("before", "gram", "mse", "relu", "direct", "winograd", "now", "bf16")  # benchmarks/levers.py VARIANTS


def _levers(res: dict) -> str:
    if not res.get("levers"):
        return "Not measured yet (`python benchmarks/run.py --only levers`).\n"
    lines = ["`benchmarks/levers.py`, each variant adds one lever to the one before, all interleaved in one "
             "process: **before** = this round's starting point (autograd through `bmm(F, F^T) / N`, "
             "`mean((x - t) ** 2)`, out-of-place ReLUs); **gram** = the Gram matrix's own backward "
             "`(Ḡ + Ḡ^T) F / N` (one bmm); **mse** = fused `F.mse_loss`; **relu** = ReLUs in place where the "
             "convolution's output is not a tap; **direct** = the squared error as one `dot` and its backward as one "
             "scaled difference, oneDNN's direct convolutions (as every variant before it); **winograd** = that with "
             "Winograd's F(4x4, 3x3) from conv2_1 on (`nstlib.winograd`); **now** = that with freed memory kept "
             "for reuse while the run lasts (`nstlib.allocator`; the variants before it leave glibc's allocator "
             "as it is): nstlib as it is; **bf16** = now under "
             "bf16 autocast (its own loss, not fp32's). Step / bound: median seconds per step over the fp32 "
             "network pass cut at the deepest tap (out-of-place ReLUs, direct convolutions); the last column "
             "puts *now* over nstlib's own network pass (in-place ReLUs, Winograd, memory reused: what the step "
             "adds to its own pass).", "",
             "| config | px | clock, threads | " + " | ".join(f"{v} step/bound" for v in LEVERS)
             + " | now / its own pass | load |", "|" + "---|" * (len(LEVERS) + 5)]
    for key, r in sorted(res["levers"].items()):
        b, own_pass = med(r["bound"]), r.get("bound_now") or r.get("bound_winograd")
        cells = [f"{med(r[v]) / b:.3f}" if r.get(v) else "-" for v in LEVERS]
        own = f"{med(r['now']) / med(own_pass):.3f}" if r.get("now") and own_pass else "-"
        lines.append(f"| {r['config']} | {r['size']} | {r['clock']}, {r['threads']} | " + " | ".join(cells)
                     + f" | {own} | {r['load'][0]}-{r['load'][-1]} |")
    return "\n".join(lines) + "\n"


def _sweep(res: dict) -> str:
    if "sweep" not in res:
        return "Not measured yet (`python benchmarks/run.py --only sweep`).\n"
    s = res["sweep"]
    return (f"A 3 x 3 grid (alpha 0.1, 1, 10; beta 1e3, 1e4, 1e5) at {s['size']} px, {s['steps']} "
            f"{s['optimizer']} steps per image ({_stamp(s)}):\n\n"
            f"| run | seconds |\n|---|---|\n"
            f"| `nstlib.sweep`, one batch of 9 | {med(s['batch']):.1f} |\n"
            f"| nine `stylize` calls sharing one extractor | {med(s['separate']):.1f} |\n"
            + (f"| nine `stylize` calls as they come (each builds its network) | {s['separate_fresh']:.1f} |\n"
               if "separate_fresh" in s else "") + "\n"
            + (f"What batching can gain at best, the network pass alone (the bound) in the same process: "
               f"{med(s['bound_9']):.3f} s for a batch of 9 against 9 x {med(s['bound_1']):.3f} = "
               f"{9 * med(s['bound_1']):.3f} s one at a time ({9 * med(s['bound_1']) / med(s['bound_9']):.2f} x). "
               "On a CPU one 128 px image already keeps both cores busy, so a batch does the same "
               "arithmetic in about the same time; on a GPU, where one small image leaves most of the "
               "device idle, the batch is where the speed-up would come from.\n\n" if "bound_9" in s else "")
            + f"The largest relative difference between a grid image's best loss and its separate run's: "
            f"{s['max_rel_loss_diff']:.2g} (float rounding of the batched convolutions, amplified by "
            f"the optimization; a different thread count moves a single run by as much).\n")


def _multiscale(res: dict) -> str:
    if "multiscale" not in res:
        return "Not measured yet (`python benchmarks/run.py --only multiscale`).\n"
    m = res["multiscale"]
    reach = m["multi_seconds_to_target"]
    return (f"Single scale: {m['steps']} L-BFGS steps at {m['size']} px, final loss {m['target_loss']:.4g} "
            f"in {m['single_seconds']:.1f} s. Coarse to fine: sides {m['sides']}, "
            f"{m['coarse_steps']} steps at the coarse sides, then L-BFGS at {m['size']} px until the loss is at most "
            "the single-scale one: "
            + (f"reached after {m['multi_full_size_steps']} full-size steps, {reach:.1f} s from the start "
               f"(coarse stages and every stage's setup included), {reach / m['single_seconds']:.2f} x the "
               "single-scale time." if reach is not None else "not reached.")
            + f" ({_stamp(m)})\n")


def _options(res: dict) -> str:
    if "options" not in res:
        return "Not measured yet (`python benchmarks/run.py --only options`).\n"
    o = res["options"]
    c, n = med(o["bound_contiguous"]), med(o["bound_channels_last"])
    lines = [f"At {o['size']} px, {o['steps']} L-BFGS steps ({_stamp(o)}):", "",
             f"* **channels_last**: the bound is {c:.3f} s contiguous vs {n:.3f} s channels-last "
             f"({c / n:.2f} x faster); on by default on the CPU.",
             *([f"* **Winograd F(4x4, 3x3)** (`nstlib.winograd`, {o['winograd_layers'][0]} on): the bound is "
                f"{med(o['bound_winograd']):.3f} s vs {n:.3f} s with the direct convolutions "
                f"({n / med(o['bound_winograd']):.2f} x faster); on by default on the CPU in fp32."]
               if o.get("winograd_layers") else []),
             f"* **fp32** (reference): {o['fp32_step']:.3f} s/step, final loss {o['fp32_loss']:.4g}."]
    flags = res["machine"].get("half_units")
    units = (f"This CPU has {', '.join(flags)}; whether torch uses such units for each operation shows in "
             "the speed." if flags else "This CPU has no bf16/fp16 units (or they were not recorded): "
             "torch emulates the type.")
    for p in ("bf16", "fp16"):
        if f"{p}_step" in o:
            lines.append(f"* **{p} autocast on the CPU**: {o[f'{p}_step']:.3f} s/step, final loss "
                         f"{o[f'{p}_loss']:.4g} ({abs(o[f'{p}_loss'] / o['fp32_loss'] - 1):.1%} from fp32), "
                         f"mean absolute pixel difference {o[f'{p}_image_diff']:.3f}; {o['fp32_step'] / o[f'{p}_step']:.2f} x "
                         f"the fp32 speed. {units}")
    if "compile_step" in o:
        gain = o["fp32_step"] - o["compile_step"]
        pays = gain > 0 and o["compile_overhead"] < 300 * gain
        lines.append(f"* **torch.compile** of the extractor: first run (compilation) costs "
                     f"{o['compile_overhead']:.0f} s more than its steps; then {o['compile_step']:.3f} s/step vs "
                     f"{o['fp32_step']:.3f}. Over a 300-step run it "
                     + (f"pays (saves {300 * gain - o['compile_overhead']:.0f} s)." if pays else
                        "does not pay (the compiled steps are slower), so nstlib does not offer it." if gain <= 0 else
                        f"does not pay (300 steps save {300 * gain:.0f} s at most, against "
                        f"{o['compile_overhead']:.0f} s of compilation), so nstlib does not offer it."))
    return "\n".join(lines) + "\n"


def _load(res: dict) -> str:
    """Say whether other work shared the machine: the benchmark alone keeps the load near the core count."""
    loads = [x for r in [*res.get("steps", {}).values(), *(res.get(k) for k in ("sweep", "multiscale", "options"))]
             if r and "load" in r for x in r["load"]]
    cores = res["machine"]["cores"] or 1
    if loads and max(loads) > 1.25 * cores:
        return (f"**The machine was shared**: other jobs ran during some measurements (load average up to "
                f"{max(loads):g} on {cores} cores; see each section's stamp), so their absolute seconds are pessimistic.")
    return (f"The machine was otherwise idle: the load average stayed at or below {max(loads, default=0):g} on "
            f"{cores} cores, which is the benchmark itself.")


def render(res: dict, steps_table: str, plain_table: str = "") -> str:
    m = res["machine"]
    steps = res.get("steps", {})
    stamps = "; ".join(f"{k}: {_stamp(r)}" for k, r in steps.items())
    return f"""# Benchmarks

Produced by `python benchmarks/run.py` (options: `--sizes`, `--repeats`, `--steps`, `--only`, `--device`;
`--help`): it rewrites the part of this file between the two `generated by benchmarks/run.py`
markers and keeps the sections after them. Do not edit that part by hand: re-run it. Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gb']} GB,
torch {m['torch']} ({m['threads']} threads), Python {m['python']}, {m['os']}, CUDA: {m['cuda'] or 'none'}.

{_load(res)} Each timing is a median, and each ratio compares two medians measured
interleaved in the same process, so that load hits both sides alike. The VGG weights were seeded random ones (no download here): speed and memory
do not depend on the weights, the loss values do.

## Targets

| target | reached | |
|---|---|---|
{chr(10).join(_targets(res))}

## Steps

Per size, in a fresh process: **bound** = one forward + backward pass of the frozen VGG19 cut at relu5_1 (the
deepest layer in use), channels-last, freed memory reused as in a run (`nstlib.allocator`), median of 3 per repeat;
**L-BFGS / Adam s/step** = median time between consecutive steps of `stylize` (one step = one forward + backward of
the objective, plus the optimizer); **fixed loss** = the higher of the two optimizers' final losses, so both reach
it, and the seconds each took. Peak RSS covers the whole process (torch itself takes about 0.3 GB).

{steps_table}

{stamps}

## Plain PyTorch vs nstlib: time to the same loss

{_plain(res, plain_table)}
## Levers of the step

{_levers(res)}
## Sweep: a grid as one batch

{_sweep(res)}
`nstlib.sweep` minimizes the sum of the per-image objectives. The sum is separable, so Adam on
the batch is the separate runs done together. L-BFGS on a batch would couple the images through
its shared dot products and step scalars, so the engine gives a batch one L-BFGS history per
image (`nstlib/lbfgs.py`): the separate runs in lockstep. Any speed-up comes from running one
batched pass instead of nine small ones and from building the network and the targets once.

## Multi-scale

{_multiscale(res)}
## Speed options

{_options(res)}
## Notes on this run

{chr(10).join("* " + n for n in res.get("notes", [])) or "None."}

## What the speed work consists of

* The network is frozen (`requires_grad_(False)`) and cut after the deepest layer in use; the
  content features and style Gram matrices are computed once per run.
* The step has one host synchronization: the losses, the per-image totals and finiteness probes
  of the gradient and the image travel in one tensor (`engine._fetch`); no image-sized
  temporaries besides the gradient copy L-BFGS keeps; snapshots only every `every` steps.
* Gram matrices of channels-last features are computed from an NHWC view without a copy, with
  their own backward `(Ḡ + Ḡ^T) F / N` (one bmm); the squared errors of the content and style
  terms are one `dot` forward and one scaled difference backward (`nstlib/losses.py`).
* Mixed precision (`precision="bf16" | "fp16" | "auto"`, `nstlib/precision.py`): the network
  under autocast, features and losses in float32, fp16 gradients scaled by 2^12. Off by default:
  it could not be tested on a GPU here, and it changes the losses by the amounts above, so
  "auto" (bf16/fp16 on CUDA only) and "bf16" on a CPU with bf16 units are opt-in.
"""
