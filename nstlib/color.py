r"""Colour preservation (Gatys, Bethge, Hertzmann & Shechtman 2016, "Preserving color in neural
artistic style transfer"): two ways to keep the content's colours while taking the style's strokes.

* **Luminance-only transfer** (``preserve_color="luminance"``): the transfer runs on luminance
  images (Y replicated to 3 channels, since VGG takes RGB), the style's luminance first matched to
  the content's mean and standard deviation; the result's Y is then recombined with the content's
  chroma (I and Q) in the **YIQ** colour space (the paper's choice, NTSC):

  .. math:: \begin{pmatrix}Y\\I\\Q\end{pmatrix} =
            \begin{pmatrix}0.299 & 0.587 & 0.114\\ 0.5959 & -0.2746 & -0.3213\\
            0.2115 & -0.5227 & 0.3112\end{pmatrix} \begin{pmatrix}R\\G\\B\end{pmatrix}

* **Colour histogram matching** (``preserve_color="histogram"``): before the transfer, the style's
  pixels are mapped by the affine transform :math:`x' = A(x - \mu_s) + \mu_c` that gives them the
  content's mean colour :math:`\mu_c` and 3x3 colour covariance :math:`\Sigma_c`
  (:math:`A = \Sigma_c^{1/2}\Sigma_s^{-1/2}`, symmetric square roots, the paper's "image analogies"
  variant). It matches the first two moments of the colour distribution, not every histogram bin.

Images are [B, 3, H, W] tensors in [0, 1]; Y lies in [0, 1], I in [-0.596, 0.596], Q in [-0.523, 0.523].
"""
from __future__ import annotations

import torch

__all__ = ["PRESERVE_COLOR", "YIQ_FROM_RGB", "rgb_to_yiq", "yiq_to_rgb", "luminance", "luminance_image",
           "match_luminance", "combine_luminance", "color_stats", "match_color"]

#: The values ``stylize(preserve_color=...)`` accepts (besides None, the default: no preservation).
PRESERVE_COLOR = ("luminance", "histogram")

#: Rows Y, I, Q; columns R, G, B (FCC NTSC coefficients).
YIQ_FROM_RGB = ((0.299, 0.587, 0.114),
                (0.5959, -0.2746, -0.3213),
                (0.2115, -0.5227, 0.3112))


def _apply(matrix: torch.Tensor, img: torch.Tensor) -> torch.Tensor:
    if img.dim() != 4 or img.shape[1] != 3:
        raise ValueError(f"expected an image of shape [B, 3, H, W], got {tuple(img.shape)}")
    return torch.einsum("ij,bjhw->bihw", matrix.to(img.dtype).to(img.device), img)  # cast on the CPU


def rgb_to_yiq(img: torch.Tensor) -> torch.Tensor:
    """RGB [B, 3, H, W] in [0, 1] -> YIQ [B, 3, H, W] (channel 0 is the luminance Y)."""
    return _apply(torch.tensor(YIQ_FROM_RGB, dtype=torch.float64), img)


def yiq_to_rgb(yiq: torch.Tensor) -> torch.Tensor:
    """YIQ [B, 3, H, W] -> RGB [B, 3, H, W] (exact inverse of :func:`rgb_to_yiq`; not clamped)."""
    return _apply(torch.linalg.inv(torch.tensor(YIQ_FROM_RGB, dtype=torch.float64)), yiq)


def luminance(img: torch.Tensor) -> torch.Tensor:
    """Y = 0.299 R + 0.587 G + 0.114 B: [B, 3, H, W] -> [B, 1, H, W] in [0, 1]."""
    return rgb_to_yiq(img)[:, :1]


def luminance_image(img: torch.Tensor) -> torch.Tensor:
    """The grey image VGG sees in luminance-only transfer: Y copied to 3 channels, [B, 3, H, W]."""
    return luminance(img).expand(-1, 3, -1, -1).contiguous()


def match_luminance(style: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    r"""The style's luminance with the content's mean and standard deviation, as a grey image.

    .. math:: Y_s' = \frac{\sigma_c}{\sigma_s}(Y_s - \mu_s) + \mu_c

    Returns:
        [B, 3, H_s, W_s] in [0, 1] (clamped), the three channels equal.
    """
    ys, yc = luminance(style), luminance(content)
    y = (ys - ys.mean()) * (yc.std() / ys.std().clamp_min(1e-6)) + yc.mean()
    return y.clamp(0, 1).expand(-1, 3, -1, -1).contiguous()


def combine_luminance(luma: torch.Tensor, color: torch.Tensor) -> torch.Tensor:
    """RGB from the Y of ``luma`` and the I, Q of ``color`` (both [1, 3, H, W]); clamped to [0, 1].

    Clamping only changes out-of-gamut pixels (a bright Y with a strongly saturated chroma).
    """
    yiq = torch.cat([luminance(luma), rgb_to_yiq(color.to(luma.device))[:, 1:]], dim=1)
    return yiq_to_rgb(yiq).clamp(0, 1)


def color_stats(img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean colour [3] and colour covariance [3, 3] over all pixels of a [1, 3, H, W] image.

    Computed in float64 on the CPU (MPS has no float64), whatever the image's device.
    """
    if img.dim() != 4 or img.shape[:2] != (1, 3):
        raise ValueError(f"color_stats takes one image [1, 3, H, W], got {tuple(img.shape)}")
    x = img.detach().cpu().double().reshape(3, -1)
    mu = x.mean(dim=1)
    d = x - mu[:, None]
    return mu, d @ d.T / x.shape[1]


def _sqrtm(cov: torch.Tensor, power: float, eps: float) -> torch.Tensor:
    vals, vecs = torch.linalg.eigh(cov)
    return vecs @ torch.diag((vals.clamp_min(0) + eps) ** power) @ vecs.T


def match_color(source: torch.Tensor, target: torch.Tensor, eps: float = 1e-5,
                clamp: bool = True) -> torch.Tensor:
    r"""Give ``source`` the mean colour and colour covariance of ``target`` (both [1, 3, H, W]).

    .. math:: x' = \Sigma_t^{1/2}\,\Sigma_s^{-1/2}\,(x - \mu_s) + \mu_t

    ``eps`` is added to the covariances' eigenvalues (a grey image has a singular covariance).
    With ``clamp=False`` the statistics match up to ``eps``; clamping to [0, 1] (the default, so
    the result is a valid image) moves them slightly when colours leave the gamut.

    Returns:
        [1, 3, H_s, W_s], on the source's device (the statistics are computed in float64 on the CPU).
    """
    mu_s, cov_s = color_stats(source)
    mu_t, cov_t = color_stats(target)
    a = _sqrtm(cov_t, 0.5, eps) @ _sqrtm(cov_s, -0.5, eps)
    x = source.cpu().double().reshape(3, -1)
    out = (a @ (x - mu_s[:, None]) + mu_t[:, None]).reshape(source.shape).to(source.dtype).to(source.device)
    return out.clamp(0, 1) if clamp else out
