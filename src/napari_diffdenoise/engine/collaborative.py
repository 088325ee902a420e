"""Collaborative Wiener filtering with the network's output as the pilot (a non-local step).

The UNet sees a few dozen pixels around each pixel; images with repeated structure (fabric,
gratings, periodic cell arrangements) hold more information than that: similar patches
elsewhere in the image carry independent noise. BM3D's second stage uses it, with its own
first-stage estimate as the pilot; here the pilot is the network's (better) estimate:

1. block matching on the pilot: for each reference patch (``patch``², on a grid of
   ``stride``), the ``group`` most similar patches within ``radius`` pixels;
2. the noisy and the pilot groups go through a separable 3D transform (2D DCT of each patch,
   1D DCT across the group), and the noisy spectrum is shrunk by the empirical Wiener gain
   ``P² / (P² + σ²)`` of the pilot spectrum ``P``;
3. the filtered patches go back to their places, weighted by ``1 / (σ² Σ gain²)`` and a Kaiser
   window, and are averaged.

The same machinery with hard thresholding instead of the Wiener gain is BM3D's first stage
(:func:`collaborative_threshold`): groups matched on the noisy image itself, coefficients
below ``threshold·σ`` zeroed, groups weighted by ``1 / (σ² · coefficients kept)``. On
periodic structure (gratings, striped fabric, regular cell arrangements) it recovers detail
the network smooths away; ``denoise(..., wiener="auto")`` blends it into the Wiener step's
pilot where Stein's unbiased risk estimate says it helps.

The noise std may vary per pixel (a σ map): each group uses the mean variance over its
reference patch. Everything is torch, on the denoiser's device, and the image is processed in
bands of reference rows so memory stays bounded for large planes. This module has no Qt or
napari dependency; ``denoise(..., wiener=w)`` blends its output with the network's.
"""

from __future__ import annotations

from collections.abc import Generator

import numpy as np

from .._progress import run_to_end
from .._validation import check_int, check_number

__all__ = [
    "collaborative_wiener",
    "iter_collaborative_wiener",
    "collaborative_threshold",
    "iter_collaborative_threshold",
    "wiener_bands",
    "PATCH",
    "STRIDE",
    "RADIUS",
    "GROUP",
    "THRESHOLD",
]

#: BM3D's Wiener-stage settings for σ ≤ 40 (Dabov et al. 2007; the ``bm3d`` package's "np"
#: profile), with a fixed group size
PATCH = 8
STRIDE = 3
RADIUS = 19
GROUP = 16
#: BM3D's hard threshold, in noise stds of the (orthonormal) 3D-transform coefficients
THRESHOLD = 2.7
_KAISER_BETA = 2.0
#: elements of the block-matching distance tensor per band (bounds the memory: 4 bytes each)
_BAND_ELEMENTS = 24_000_000
#: groups filtered at once
_GROUP_CHUNK = 8192


def _dct_matrix(n: int):
    """Orthonormal DCT-II matrix (rows are the basis vectors)."""
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    m = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    m[0] /= np.sqrt(2.0)
    return m


def _grid(length: int, patch: int, stride: int) -> np.ndarray:
    """Reference positions along one axis: every ``stride`` pixels, and the last one, so every
    pixel is covered."""
    pos = list(range(0, length - patch + 1, stride))
    if pos[-1] != length - patch:
        pos.append(length - patch)
    return np.asarray(pos)


def _bands(h: int, w: int, patch: int, stride: int, radius: int) -> list[np.ndarray]:
    """The reference rows, split into bands that bound the block-matching memory."""
    rows, nc = _grid(h, patch, stride), len(_grid(w, patch, stride))
    per_band = max(1, _BAND_ELEMENTS // ((2 * radius + 1) ** 2 * nc))
    return [rows[i : i + per_band] for i in range(0, len(rows), per_band)]


def wiener_bands(
    h: int, w: int, *, patch: int = PATCH, stride: int = STRIDE, radius: int = RADIUS
) -> int:
    """How many ``(done, total)`` steps :func:`iter_collaborative_wiener` yields for an
    ``h × w`` plane."""
    if h < patch or w < patch:
        return 1
    return len(_bands(h, w, patch, stride, radius))


def _patch_sums(x, dim: int, starts: np.ndarray, patch: int):
    """Sums of ``patch`` consecutive samples of ``x`` along ``dim`` from each start (``starts``
    as made by :func:`_grid`: a progression, the last one possibly off it), by strided views."""
    import torch

    n = len(starts)
    step = int(starts[1] - starts[0]) if n > 1 else 1
    regular = n if n < 2 or starts[-1] - starts[-2] == step else n - 1
    index = [slice(None)] * x.ndim
    out = None
    for i in range(patch):
        a = int(starts[0]) + i
        index[dim] = slice(a, a + step * (regular - 1) + 1, step)
        part = x[tuple(index)]
        out = part.clone() if out is None else out.add_(part)
    if regular < n:
        index[dim] = slice(int(starts[-1]), int(starts[-1]) + patch)
        out = torch.cat([out, x[tuple(index)].sum(dim, keepdim=True)], dim)
    return out


def iter_collaborative_wiener(
    noisy,
    pilot,
    sigma,
    *,
    patch: int = PATCH,
    stride: int = STRIDE,
    radius: int = RADIUS,
    group: int = GROUP,
    device=None,
) -> Generator[tuple[int, int], None, np.ndarray]:
    """Generator form of :func:`collaborative_wiener`: yields ``(bands done, bands)``."""
    return (
        yield from _iter_collaborative(
            noisy,
            pilot,
            sigma,
            patch=patch,
            stride=stride,
            radius=radius,
            group=group,
            device=device,
            threshold=None,
        )
    )


def iter_collaborative_threshold(
    noisy,
    sigma,
    *,
    threshold: float = THRESHOLD,
    patch: int = PATCH,
    stride: int = STRIDE,
    radius: int = RADIUS,
    group: int = GROUP,
    device=None,
) -> Generator[tuple[int, int], None, np.ndarray]:
    """Generator form of :func:`collaborative_threshold`: yields ``(bands done, bands)``."""
    threshold = check_number(threshold, "threshold", low=0.0)
    return (
        yield from _iter_collaborative(
            noisy,
            noisy,
            sigma,
            patch=patch,
            stride=stride,
            radius=radius,
            group=group,
            device=device,
            threshold=float(threshold),
        )
    )


def _iter_collaborative(noisy, pilot, sigma, *, patch, stride, radius, group, device, threshold):
    """The shared loop: groups matched on ``pilot``, the noisy groups shrunk by the pilot's
    Wiener gain (``threshold`` None) or hard-thresholded at ``threshold·σ``."""
    import torch
    import torch.nn.functional as F

    y = np.asarray(noisy, dtype=np.float32)
    p0 = np.asarray(pilot, dtype=np.float32)
    if y.ndim != 2 or p0.shape != y.shape:
        raise ValueError(
            f"noisy and pilot must be 2D arrays of one shape, got {y.shape} and {p0.shape}"
        )
    if not (np.isfinite(y).all() and np.isfinite(p0).all()):
        raise ValueError(
            "noisy must be finite" if threshold is not None else "noisy and pilot must be finite"
        )
    s2 = np.broadcast_to(np.asarray(sigma, dtype=np.float32), y.shape) ** 2
    if not np.isfinite(s2).all() or (np.asarray(sigma) < 0).any():
        raise ValueError("sigma must be finite and >= 0")
    patch = check_int(patch, "patch", low=2)
    stride = check_int(stride, "stride", low=1)
    radius = check_int(radius, "radius", low=1)
    group = check_int(group, "group", low=1)
    h, w = y.shape
    if h < patch or w < patch:  # nothing to match: the pilot is the answer
        yield 1, 1
        return p0.copy()
    dev = torch.device("cpu") if device is None else torch.device(device)
    n_disp = (2 * radius + 1) ** 2
    # never more patches than every reference has candidates inside the image
    group = min(group, min(radius + 1, h - patch + 1) * min(radius + 1, w - patch + 1))

    cols = _grid(w, patch, stride)
    nc = len(cols)
    bands = _bands(h, w, patch, stride, radius)

    t2 = torch.from_numpy(np.kron(_dct_matrix(patch), _dct_matrix(patch))).float().to(dev)
    t1 = torch.from_numpy(_dct_matrix(group)).float().to(dev)
    kw = np.kaiser(patch, _KAISER_BETA)
    kaiser = torch.from_numpy(np.outer(kw, kw).ravel()).float().to(dev)
    offs = (
        torch.arange(patch, device=dev)[:, None] * w + torch.arange(patch, device=dev)[None, :]
    ).ravel()
    cols_t = torch.from_numpy(cols).to(dev)

    y_t = torch.from_numpy(np.ascontiguousarray(y)).to(dev)
    p_t = torch.from_numpy(np.ascontiguousarray(p0)).to(dev)
    s2_t = torch.from_numpy(np.ascontiguousarray(s2)).to(dev)
    num = torch.zeros(h * w, device=dev)
    den = torch.zeros(h * w, device=dev)
    ar = torch.arange(2 * radius + 1, device=dev)
    # each group's noise variance: the mean over its reference patch
    s2_ref = F.avg_pool2d(s2_t[None, None], patch, stride=1)[0, 0]

    for b, band_rows in enumerate(bands):
        r_lo = max(0, int(band_rows[0]) - radius)
        r_hi = min(h, int(band_rows[-1]) + patch + radius)
        hb = r_hi - r_lo
        # the pilot region, zero-padded; candidates that leave the image are masked below
        reg = F.pad(p_t[r_lo:r_hi][None, None], (radius,) * 4)[0, 0]
        ref = reg[radius : radius + hb, radius : radius + w]
        dist = torch.empty((2 * radius + 1, 2 * radius + 1, len(band_rows), nc), device=dev)
        for iy in range(2 * radius + 1):
            shifted = reg[iy : iy + hb].unfold(1, w, 1)  # (hb, dx, w): the region moved by (dy, dx)
            d2 = (ref[:, None, :] - shifted).square_()
            # patch sums at the reference rows, then at the reference columns
            rs = _patch_sums(d2, 0, band_rows - r_lo, patch)  # (refs in band, dx, w)
            dist[iy] = _patch_sums(rs, 2, cols, patch).transpose(0, 1)
        band_r = torch.from_numpy(band_rows).to(dev)
        ok_r = ((band_r[None, :] + ar[:, None] - radius) >= 0) & (
            (band_r[None, :] + ar[:, None] - radius) <= h - patch
        )
        ok_c = ((cols_t[None, :] + ar[:, None] - radius) >= 0) & (
            (cols_t[None, :] + ar[:, None] - radius) <= w - patch
        )
        dist.masked_fill_(~(ok_r[:, None, :, None] & ok_c[None, :, None, :]), float("inf"))
        dist[radius, radius] = -1.0  # every group holds its reference patch (ties: flat pilots)
        dist = dist.reshape(n_disp, -1)
        idx = torch.topk(
            dist, group, dim=0, largest=False
        ).indices.T  # (refs, group), nearest first
        del dist
        dy, dx = idx // (2 * radius + 1) - radius, idx % (2 * radius + 1) - radius
        ref_r = torch.from_numpy(band_rows).to(dev).repeat_interleave(nc)[:, None]
        ref_c = cols_t.repeat(len(band_rows))[:, None]
        top = (ref_r + dy) * w + (ref_c + dx)  # absolute flat index of each patch's corner
        s2_g = s2_ref[ref_r[:, 0], ref_c[:, 0]].clamp_min(1e-12)
        for c0 in range(0, top.shape[0], _GROUP_CHUNK):
            pix = top[c0 : c0 + _GROUP_CHUNK, :, None] + offs  # (n, group, patch²)
            gy = y_t.reshape(-1)[pix]
            sy = t1 @ gy @ t2.T
            v = s2_g[c0 : c0 + _GROUP_CHUNK, None, None]
            if threshold is None:  # the empirical Wiener gain of the pilot's spectrum
                gp = p_t.reshape(-1)[pix]
                sp = t1 @ gp @ t2.T
                gain = sp.square() / (sp.square() + v)
            else:  # hard thresholding: keep the coefficients above threshold·σ
                gain = (sy.square() > (threshold * threshold) * v).to(sy.dtype)
            est = t1.T @ (gain * sy) @ t2
            # (at least one coefficient's worth: a group whose pilot is flat zero, or whose
            # coefficients all fall under the threshold, keeps a weight)
            wg = 1.0 / (v[:, 0, 0] * gain.square().sum((1, 2)).clamp_min(1.0))
            wk = (wg[:, None, None] * kaiser).expand_as(est)
            num.index_add_(0, pix.reshape(-1), (wk * est).reshape(-1))
            den.index_add_(0, pix.reshape(-1), wk.reshape(-1))
        yield b + 1, len(bands)

    out = (num / den.clamp_min(1e-30)).reshape(h, w)
    out = torch.where(den.reshape(h, w) > 0, out, p_t)
    return out.cpu().numpy()


def collaborative_wiener(
    noisy,
    pilot,
    sigma,
    *,
    patch: int = PATCH,
    stride: int = STRIDE,
    radius: int = RADIUS,
    group: int = GROUP,
    device=None,
) -> np.ndarray:
    """Collaborative (BM3D-style) Wiener filter of ``noisy`` guided by the estimate ``pilot``.

    Parameters
    ----------
    noisy, pilot : 2D arrays of one shape
        The noisy image and a denoised estimate of it (any units; float32 is used).
    sigma : float or 2D array
        Noise std in the same units (scalar or per-pixel map; 0 keeps the noisy pixels).
    patch, stride, radius, group : int
        Patch size, reference-grid stride, search radius and patches per group.
    device : str or torch.device, optional
        Where to compute (default: CPU).

    Returns
    -------
    numpy.ndarray (float32), the filtered image. The inputs are not modified.
    """
    return run_to_end(
        iter_collaborative_wiener(
            noisy,
            pilot,
            sigma,
            patch=patch,
            stride=stride,
            radius=radius,
            group=group,
            device=device,
        )
    )


def collaborative_threshold(
    noisy,
    sigma,
    *,
    threshold: float = THRESHOLD,
    patch: int = PATCH,
    stride: int = STRIDE,
    radius: int = RADIUS,
    group: int = GROUP,
    device=None,
) -> np.ndarray:
    """Collaborative hard thresholding of ``noisy`` (BM3D's first stage, with a DCT in place of
    its biorthogonal and Haar transforms): groups of similar patches matched on the noisy image,
    their 3D-transform coefficients below ``threshold·σ`` zeroed.

    Parameters
    ----------
    noisy : 2D array
        The noisy image (any units; float32 is used).
    sigma : float or 2D array
        Noise std in the same units (scalar or per-pixel map; 0 keeps the noisy pixels).
    threshold : float
        The threshold in noise stds (BM3D's 2.7).
    patch, stride, radius, group : int
        Patch size, reference-grid stride, search radius and patches per group.
    device : str or torch.device, optional
        Where to compute (default: CPU).

    Returns
    -------
    numpy.ndarray (float32), the filtered image. The input is not modified.
    """
    return run_to_end(
        iter_collaborative_threshold(
            noisy,
            sigma,
            threshold=threshold,
            patch=patch,
            stride=stride,
            radius=radius,
            group=group,
            device=device,
        )
    )
