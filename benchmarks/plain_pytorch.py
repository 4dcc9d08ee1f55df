"""A plain PyTorch style transfer, as a user following the official PyTorch tutorial writes it
("Neural Transfer Using PyTorch", pytorch.org/tutorials/advanced/neural_style_tutorial.html), and
the side-by-side measurement of ``benchmarks/run.py --only plain``.

The baseline, as the tutorial does it: torchvision's ``vgg19().features`` with its weights left
trainable (``requires_grad`` stays on, so every backward also computes weight gradients; the
newest tutorial adds ``model.requires_grad_(False)``: ``--frozen``), ``ContentLoss`` / ``StyleLoss``
modules inserted after the tapped layers (Gram = F F^T / (a*b*c*d), ``F.mse_loss``), the model cut
after the last loss module, ``torch.optim.LBFGS`` with its defaults (``max_iter=20`` evaluations per
``.step``), clamping in the closure, and the *last* image returned. The weights are nstlib's (the
same seeded random ones offline) loaded into torchvision's network, so both sides compute the same
function; the one thing added to the tutorial is a TV term for nstlib's default configuration.
nstlib runs ``stylize`` at one scale (fp32; bf16 with ``--bf16``) and, where the CLI's default run
differs (coarse to fine from ``nstlib.multiscale.AUTO_SCALES_FROM`` px), that run too ("cli").

    python benchmarks/measure.py plain 256 --config tutorial --steps 100
    python benchmarks/plain_pytorch.py 256 --config tutorial --steps 100 --device cuda   # the same
    python benchmarks/plain_pytorch.py 64 --quick                                        # a smoke run
"""
from __future__ import annotations

import math
import os
import resource
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
import torchvision
from common import sync  # benchmarks/common.py

import nstlib
from nstlib.multiscale import AUTO_COARSE_STEPS, auto_scales

#: (content layers, style layers, content weight, style weight, tv weight), in the paper's names.
CONFIGS = {
    # the tutorial's: content 'conv_4', style 'conv_1'...'conv_5' (VGG19 cut after conv3_1), beta 1e6
    "tutorial": (["conv2_2"], ["conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1"], 1.0, 1e6, 0.0),
    # nstlib's defaults (nstlib.transfer): relu4_2 / relu1_1 ... relu5_1, alpha 1, beta 1e4, gamma 44
    "default": (["relu4_2"], ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"], 1.0, 1e4, 44.0),
}


# ---- the tutorial's code (names as there; the tutorial's conv_4 is the paper's conv2_2) ----

class ContentLoss(nn.Module):
    def __init__(self, target):
        super().__init__()
        self.target = target.detach()

    def forward(self, input):
        self.loss = F.mse_loss(input, self.target)
        return input


def gram_matrix(input):
    a, b, c, d = input.size()
    features = input.view(a * b, c * d)
    G = torch.mm(features, features.t())
    return G.div(a * b * c * d)


class StyleLoss(nn.Module):
    def __init__(self, target_feature):
        super().__init__()
        self.target = gram_matrix(target_feature).detach()

    def forward(self, input):
        G = gram_matrix(input)
        self.loss = F.mse_loss(G, self.target)
        return input


class Normalization(nn.Module):
    def __init__(self, mean, std, device="cpu"):  # the tutorial's mean and std tensors are on its device
        super().__init__()
        self.mean = torch.tensor(mean, device=device).view(-1, 1, 1)
        self.std = torch.tensor(std, device=device).view(-1, 1, 1)

    def forward(self, img):
        return (img - self.mean) / self.std


def tutorial_name(paper: str) -> str:
    """The tutorial's running names (conv_1, relu_1, pool_2, ... counted by convolution)."""
    names, i = {}, 0
    for n in nstlib.layer_names("vgg19"):
        i += n.startswith("conv")
        names[n] = f"{n[:4]}_{i}" if not n.startswith("pool") else f"pool_{i}"
    return names[paper]


def get_style_model_and_losses(cnn, style_img, content_img, content_layers, style_layers):
    normalization = Normalization(nstlib.vgg.IMAGENET_MEAN, nstlib.vgg.IMAGENET_STD, content_img.device)
    content_losses, style_losses = [], []
    model = nn.Sequential(normalization)
    i = 0
    for layer in cnn.children():
        if isinstance(layer, nn.Conv2d):
            i += 1
            name = f"conv_{i}"
        elif isinstance(layer, nn.ReLU):
            name = f"relu_{i}"
            layer = nn.ReLU(inplace=False)
        elif isinstance(layer, nn.MaxPool2d):
            name = f"pool_{i}"
        model.add_module(name, layer)
        if name in content_layers:
            target = model(content_img).detach()
            content_loss = ContentLoss(target)
            model.add_module(f"content_loss_{i}", content_loss)
            content_losses.append(content_loss)
        if name in style_layers:
            target_feature = model(style_img).detach()
            style_loss = StyleLoss(target_feature)
            model.add_module(f"style_loss_{i}", style_loss)
            style_losses.append(style_loss)
    for i in range(len(model) - 1, -1, -1):
        if isinstance(model[i], (ContentLoss, StyleLoss)):
            break
    model = model[:(i + 1)]
    return model, style_losses, content_losses


def tv(img):  # the one addition: nstlib's TV term (its formula written out), for the default configuration
    return 0.5 * ((img[:, :, 1:] - img[:, :, :-1]).abs().mean() + (img[:, :, :, 1:] - img[:, :, :, :-1]).abs().mean())


def run_style_transfer(cnn, content_img, style_img, input_img, config, num_steps, frozen=False, record=None):
    """The tutorial's loop; ``record(image, loss)`` is called after every evaluation."""
    content_layers, style_layers, content_weight, style_weight, tv_weight = CONFIGS[config]
    model, style_losses, content_losses = get_style_model_and_losses(
        cnn, style_img, content_img, [tutorial_name(n) for n in content_layers],
        [tutorial_name(n) for n in style_layers])
    input_img.requires_grad_(True)
    model.eval()
    if frozen:
        model.requires_grad_(False)
    optimizer = optim.LBFGS([input_img])
    run = [0]
    while run[0] <= num_steps:
        def closure():
            with torch.no_grad():
                input_img.clamp_(0, 1)
            optimizer.zero_grad()
            model(input_img)
            style_score = sum(sl.loss for sl in style_losses) * style_weight
            content_score = sum(cl.loss for cl in content_losses) * content_weight
            loss = style_score + content_score + (tv_weight * tv(input_img) if tv_weight else 0)
            loss.backward()
            run[0] += 1
            if record is not None:
                record(input_img, loss)
            return loss
        optimizer.step(closure)
    with torch.no_grad():
        input_img.clamp_(0, 1)
    return input_img


# ---- the measurement ----

def shared_network(device: str = "cpu") -> tuple[nn.Module, dict[str, torch.Tensor], str]:
    """torchvision's ``vgg19().features`` carrying nstlib's weights up to conv5_1 (the pretrained
    ones, or offline the seeded random ones; deeper layers are never used), its whole state dict
    (for nstlib's extractors: the same weights) and where the weights came from."""
    ext = nstlib.VGGFeatures(layers=["relu5_1"], weights="imagenet", device="cpu")
    ours = {f"{i}.{k}": v for i, m in enumerate(ext.body) if isinstance(m, nn.Conv2d)
            for k, v in m.state_dict().items()}
    cnn = torchvision.models.vgg19().features.eval()
    missing, unexpected = cnn.load_state_dict(ours, strict=False)
    assert not unexpected and all(int(k.split(".")[0]) > 28 for k in missing), (missing, unexpected)
    return cnn.to(device), {k: v.detach().clone() for k, v in cnn.state_dict().items()}, ext.weights_source


class Evaluator:
    """The common fp32 judge of both sides' images: the tutorial model's loss (plus TV), no grad."""

    def __init__(self, cnn, content, style, config):
        cl, sl, self.cw, self.sw, self.tvw = CONFIGS[config]
        self.model, self.style_losses, self.content_losses = get_style_model_and_losses(
            cnn, style, content, [tutorial_name(n) for n in cl], [tutorial_name(n) for n in sl])

    @torch.no_grad()
    def __call__(self, img: torch.Tensor) -> float:
        img = img.clamp(0, 1).contiguous()
        self.model(img)
        loss = (self.sw * sum(s.loss for s in self.style_losses) + self.cw * sum(c.loss for c in self.content_losses)
                + (self.tvw * tv(img) if self.tvw else 0))
        return float(loss)


#: the clock of the traces: wall time, or (``--clock cpu``) this process's CPU time, which other
#: jobs on a shared machine disturb far less (with one thread it is the work done)
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def plain_run(cnn, content, style, config, steps, frozen, clock=time.perf_counter) -> dict:
    trace = []
    sync(content.device.type)
    t0 = clock()

    best = {}

    def record(img, loss):
        trace.append((clock() - t0, loss.item()))  # .item() waits for the device
        if trace[-1][1] <= min(v for _, v in trace):
            best["image"] = img.detach().clone()
    last = run_style_transfer(cnn, content, style, content.clone(), config, steps, frozen, record)
    k = min(range(len(trace)), key=lambda j: trace[j][1])
    return {"trace": trace, "best": trace[k][1], "best_at": trace[k][0], "evals": len(trace),
            "last_image": last.detach(), "best_image": best["image"]}


def difference(a: torch.Tensor, b: torch.Tensor) -> dict:
    """How far two images in [0, 1] are apart: PSNR (dB), mean and max absolute pixel difference."""
    mse = float(((a - b) ** 2).mean())
    return {"psnr_db": 10 * math.log10(1 / mse) if mse > 0 else math.inf,
            "mean_abs": float((a - b).abs().mean()), "max_abs": float((a - b).abs().max())}


def nstlib_run(ext, content, style, config, steps, judge, target, clock=time.perf_counter, scales=None) -> dict:
    """nstlib.stylize on the same images; every full-size step's image is judged afterwards (off
    the clock). ``scales``: coarse to fine (``steps`` then counts the full-size steps only)."""
    cl, sl, cw, sw, tvw = CONFIGS[config]
    snaps = []
    side = tuple(content.shape[-2:])
    sync(content.device.type)
    t0 = clock()

    def cb(step, img, losses):
        if tuple(img.shape[-2:]) != side:  # a coarse stage: its losses are at another size
            return True
        snaps.append((clock() - t0, img))
        return not losses["total"] <= 0.97 * target  # stop well past the target (its own loss guides)
    schedule = dict(scales=scales, steps=AUTO_COARSE_STEPS + (steps,)) if scales else dict(steps=steps)
    res = nstlib.stylize(content, style, extractor=ext, size=max(side), content_layers=cl,
                         style_layers=sl, content_weight=cw, style_weight=sw, tv_weight=tvw,
                         every=1, callback=cb, **schedule)
    judged = [(t, judge(img)) for t, img in snaps]
    reach = next((t for t, v in judged if v <= target), None)
    first = next((img for (t, img), (_, v) in zip(snaps, judged) if v <= target), res.image)
    return {"to_target": reach, "image_at_target": first, "best": min(v for _, v in judged), "steps_run": len(snaps),
            "steps_to_target": next((i + 1 for i, (_, v) in enumerate(judged) if v <= target), None),
            "returned": judge(res.image)}


def plain_kind(a) -> dict:
    """Plain PyTorch vs nstlib (fp32, and bf16 where autocast has it) to the plain loop's best loss."""
    torch.manual_seed(0)
    clock = CLOCKS[a.clock]
    cnn, state, source = shared_network(a.device)
    content = nstlib.load_image("astronaut", size=a.size, device=a.device)
    # the tutorial needs the style at the content's size: both sides get the same squashed one
    style = nstlib.load_image("starry_night", size=tuple(content.shape[-2:]), device=a.device)
    cl, sl = CONFIGS[a.config][:2]
    judge = Evaluator(cnn, content, style, a.config)
    variants = {"fp32": nstlib.VGGFeatures(layers=cl + sl, weights=state, device=a.device)}
    if a.bf16:
        variants["bf16"] = nstlib.VGGFeatures(layers=cl + sl, weights=state, device=a.device, precision="bf16")
    # the CLI's default run at this size (`python -m nstlib`): coarse to fine from AUTO_SCALES_FROM px
    scales = {"cli": auto_scales(a.size, 1, "lbfgs")[0]}
    if scales["cli"]:
        variants["cli"] = variants["fp32"]
    out = {"size": a.size, "config": a.config, "steps": a.steps, "frozen": a.frozen, "weights": source,
           "clock": a.clock,
           "load": [round(os.getloadavg()[0], 2)], "plain": [], **{k: [] for k in variants}}
    for r in range(a.repeats):  # interleaved; the order flips every repeat
        plain = plain_run(cnn, content, style, a.config, a.steps, a.frozen, clock)
        last, plain_best = judge(plain.pop("last_image")), plain.pop("best_image")
        out["plain"].append({**{k: v for k, v in plain.items() if k != "trace"}, "last": last,
                             "last_over_best": last / plain["best"]})
        for name in (variants if r % 2 == 0 else reversed(list(variants))):
            out[name].append(nstlib_run(variants[name], content, style, a.config, plain["evals"] + a.steps // 2,
                                        judge, plain["best"], clock, scales.get(name)))
        # the images at the target loss: nstlib fp32 vs the plain loop's best (float rounding alone),
        # bf16 vs fp32 (what bf16 changes)
        images = {name: out[name][-1].pop("image_at_target") for name in variants}
        if "cli" in images:
            out["cli"][-1]["vs_fp32"] = difference(images["cli"], images["fp32"])
        out["plain"][-1]["fp32_vs_plain"] = difference(images["fp32"], plain_best)
        if "bf16" in images:
            out["bf16"][-1]["vs_fp32"] = difference(images["bf16"], images["fp32"])
        out["load"].append(round(os.getloadavg()[0], 2))
    out["threads"] = torch.get_num_threads()
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for name in variants:  # per repeat: nstlib's time to the target / the plain loop's time to it
        out[f"{name}_ratio"] = [n["to_target"] / p["best_at"] if n["to_target"] else math.nan
                                for n, p in zip(out[name], out["plain"])]
    return out


if __name__ == "__main__":  # the 'plain' kind of benchmarks/measure.py, with its options
    from measure import main
    main(["plain", *sys.argv[1:]])
