"""Prediction questions: a student commits to an answer before running a cell, then checks it.

``check_prediction(question, prediction)`` prints whether the letter is right, with the
explanation either way (the explanation is the point: a right guess for a wrong reason is common).
"""
from __future__ import annotations

from .common import run_check

__all__ = ["check_prediction", "QUESTIONS"]

#: ``{question id: (valid letters, the right letter, the explanation)}``; the question text itself
#: is in the notebook's markdown cell.
QUESTIONS: dict[str, tuple[str, str, str]] = {
    "00_receptive_field": (
        "ABCD", "B",
        "relu3_1 sits after four 3x3 convolutions and two 2x2 poolings: r = 1+2+2 (block 1), +1 (pool1, "
        "jump 2), +4+4 (block 2), +2 (pool2, jump 4), +8 (conv3_1) = 24 px. 'Most of the image' only "
        "comes at relu5_1 (156 px), and only for a 224 px input."),
    "01_deep_layer": (
        "ABC", "B",
        "relu5_2 keeps fewer numbers than the image (two thirds of it at 224 px) and is blind to exact "
        "pixel values, so many different images satisfy it: its reconstruction drifts furthest from "
        "the photo even though its own loss falls just as much."),
    "02_gram_size": (
        "ABC", "A",
        "A Gram matrix is C_l x C_l whatever the image size: the sum over positions removes H and W. "
        "That is why the painting need not have the photograph's shape, and why nstlib divides by "
        "C*H*W: the entries become averages, comparable across image sizes."),
    "03_max_pool_gradient": (
        "ABC", "C",
        "Each 2x2 window sends its whole gradient to its largest entry and nothing to the other "
        "three, so at most one input in four receives any gradient (fewer where a ReLU is off)."),
    "04_loss_scale": (
        "ABC", "B",
        "Gradient descent moves by eta * gradient, so a loss 100x larger takes a 100x larger step. "
        "Adam divides by the gradient's running RMS and takes the same steps. L-BFGS's later steps are "
        "scale-free too, but torch's first step, min(1, 1/||g||_1) * lr, is not: the loss scale "
        "decides how far it goes before it has any curvature information."),
    "05_ratio": (
        "ABC", "A",
        "alpha/beta is the weight of the content relative to the style: a larger ratio (1e-2 instead "
        "of 1e-5) keeps more of the photograph, a smaller one lets the painting's texture take over."),
    "06_luminance": (
        "ABC", "B",
        "In luminance mode only Y is optimized; the result's I and Q are copied from the photograph, "
        "so its chroma is the photograph's (up to the few pixels clamped back into the RGB cube)."),
    "07_adain_mean": (
        "ABC", "B",
        "AdaIN removes the content features' own channel mean and standard deviation and puts the "
        "style's in their place: sigma(y) * (x - mu(x)) / sigma(x) + mu(y) has channel mean mu(y)."),
    "conventions_size": (
        "ABC", "C",
        "nstlib's losses are means: doubling the side of both images leaves every Gram entry (an "
        "average over positions) about the same, so alpha/beta stays the same. The paper's sums and "
        "its 1/(4 N^2 M^2) factor make the content term grow with M while E_l does not."),
}


def check_prediction(question: str, prediction: object) -> bool:
    """Say whether ``prediction`` answers ``question``; explain why either way.

    ``prediction`` is a letter such as ``"B"``, or a function returning one (the notebooks' form: its
    body is the student's answer, so an unanswered question reports "not implemented yet").
    """
    if question not in QUESTIONS:
        raise ValueError(f"unknown question {question!r}; choose one of {', '.join(map(repr, QUESTIONS))}")
    letters, answer, why = QUESTIONS[question]

    def body() -> tuple[bool, str]:
        got = prediction() if callable(prediction) else prediction
        if not isinstance(got, str) or got.strip().upper() not in letters:
            return False, f"answer with one letter of {', '.join(letters)}, got {got!r:.40}"
        got = got.strip().upper()
        if got == answer:
            return True, f"right, {answer}. {why}"
        return False, f"the answer is {answer}, not {got}. {why}"
    hint = (f"give one letter of {', '.join(letters)}, e.g. return \"{letters[0]}\", "
            "before you run the cells that answer the question")
    return run_check(f"prediction {question}", hint, body)
