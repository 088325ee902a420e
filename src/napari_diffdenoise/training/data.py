"""Training data: clean patches (natural images + synthetic fluorescence) and on-the-fly noise.

Noise is synthesised in torch, in normalised units, from all four kinds: Gaussian, spatially
variant Gaussian (random smooth σ maps and ramps), Poisson-Gaussian and salt-and-pepper (filled
impulses with their own time). Each sample comes with its true per-pixel noise level τ_y.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..diffusion.impulses import IMPULSE_TIME, fill_missing, gaussian_kernel_1d
from ..noise.estimate import SIGNAL_SMOOTHING
from .config import TrainingConfig

__all__ = [
    "load_clean_images",
    "PatchSampler",
    "corrupt",
    "correlate_noise",
    "observed_poisson_sigma",
    "shift_black_level",
]

_IMAGE_SUFFIXES = {".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp"}


def load_clean_images(folder: str | Path) -> list[np.ndarray]:
    """Read every image in ``folder`` as float32 in [0, 1] (grayscale; RGB uses channel 0)."""
    from skimage import io

    folder = Path(folder)
    if not folder.is_dir():
        raise OSError(f"training image folder {folder} not found")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)
    if not files:
        raise OSError(f"no images ({', '.join(sorted(_IMAGE_SUFFIXES))}) in {folder}")
    out = []
    for f in files:
        img = io.imread(f)
        if img.ndim == 3:
            img = img[..., 0]
        img = img.astype(np.float32)
        top = 255.0 if img.max() <= 255 else float(np.iinfo(np.uint16).max)
        out.append(img / top)
    return out


class PatchSampler:
    """Random patches with the 8 dihedral transforms and a random intensity affine map."""

    def __init__(
        self,
        images: list[np.ndarray],
        patch: int,
        seed: int = 0,
        weights: list[float] | None = None,
    ) -> None:
        """``weights``: relative probability of drawing each image (default: uniform)."""
        if weights is not None and len(weights) != len(images):
            raise ValueError(f"{len(weights)} weights for {len(images)} images")
        keep = [i for i, im in enumerate(images) if min(im.shape) >= patch]
        if not keep:
            raise ValueError(f"no training image is at least {patch}×{patch} pixels")
        self.images = [images[i] for i in keep]
        self.p = None
        if weights is not None:
            w = np.asarray([weights[i] for i in keep], dtype=np.float64)
            if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
                raise ValueError("image weights must be finite, >= 0 and not all zero")
            self.p = w / w.sum()
        self.patch = patch
        self.rng = np.random.default_rng(seed)

    def batch(self, n: int) -> torch.Tensor:
        size = self.patch
        out = np.empty((n, 1, size, size), dtype=np.float32)
        for i in range(n):
            n_im = len(self.images)
            k = self.rng.integers(n_im) if self.p is None else self.rng.choice(n_im, p=self.p)
            im = self.images[k]
            r = self.rng.integers(im.shape[0] - size + 1)
            c = self.rng.integers(im.shape[1] - size + 1)
            crop = im[r : r + size, c : c + size]
            crop = np.rot90(crop, self.rng.integers(4))
            if self.rng.random() < 0.5:
                crop = crop[:, ::-1]
            # a wide intensity affine map: robust-percentile normalisation puts real images'
            # extremes beyond [0, 1], and the network must not pull them back into that range
            gain = self.rng.uniform(0.5, 1.35)
            offset = self.rng.uniform(-0.2, max(-0.2, 1.15 - gain))
            out[i, 0] = crop * gain + offset * (self.rng.random() < 0.7)
        return torch.from_numpy(out)


def _smooth_field(b: int, h: int, w: int, g: torch.Generator) -> torch.Tensor:
    """Random smooth fields in [0, 1]: bicubic-upsampled coarse noise or linear ramps (on the
    generator's device)."""
    device = g.device
    grid = int(torch.randint(2, 7, (1,), generator=g, device=device))
    coarse = torch.rand(b, 1, grid, grid, generator=g, device=device)
    field = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=True).clamp(0, 1)
    yy = torch.linspace(0, 1, h, device=device).view(1, 1, h, 1)
    xx = torch.linspace(0, 1, w, device=device).view(1, 1, 1, w)
    angle = torch.rand(b, 1, 1, 1, generator=g, device=device) * 2 * np.pi
    ramp = torch.cos(angle) * xx + torch.sin(angle) * yy
    ramp = (ramp - ramp.amin((2, 3), keepdim=True)) / (
        ramp.amax((2, 3), keepdim=True) - ramp.amin((2, 3), keepdim=True)
    ).clamp_min(1e-6)
    use_ramp = torch.rand(b, 1, 1, 1, generator=g, device=device) < 0.4
    return torch.where(use_ramp, ramp, field)


def _uniform(b: int, lo: float, hi: float, g: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(b, 1, 1, 1, generator=g, device=g.device)


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian filter of ``(B, 1, H, W)``, truncated as scipy's
    ``gaussian_filter(truncate=3.0)`` that ``curve_sigma_map`` uses at inference (mirrored
    borders)."""
    radius = max(1, int(3.0 * sigma + 0.5))
    k = gaussian_kernel_1d(sigma, radius, x.device, x.dtype)
    x = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1))
    return F.conv2d(x, k.view(1, 1, -1, 1))


def observed_poisson_sigma(
    y: torch.Tensor,
    photons: torch.Tensor,
    read: torch.Tensor,
    smoothing: float = SIGNAL_SMOOTHING,
    photon_floor: float = 0.0,
) -> torch.Tensor:
    """Per-pixel Poisson-Gaussian noise std as the blind estimator computes it at inference:
    ``sqrt(x / photons + read²)`` at the *smoothed noisy* signal ``x`` (floored at the darkest
    percentile, variance floored at a quarter of its value there; ``curve_sigma_map``).

    It must not be computed from the clean signal: a σ map equal to ``sqrt(x0 / photons)``
    hands the network the clean image, which it learns to read off the time map (the first
    models scored 48 dB with such an oracle map and 36 dB with the map they get in practice).
    """
    b = y.shape[0]
    smooth = _gaussian_blur(y, smoothing)
    darkest = torch.quantile(smooth.reshape(b, -1), 0.01, dim=1).clamp_min(0.0).view(b, 1, 1, 1)
    var = torch.maximum(smooth, darkest) / photons + read**2
    floor = 0.25 * (darkest / photons + read**2)
    sigma = torch.sqrt(torch.maximum(var, floor.clamp_min(1e-8)))
    if photon_floor > 0:  # the start map's floor at inference (NoiseReport.start_sigma_map)
        sigma = torch.maximum(sigma, photon_floor / photons)
    return sigma


def _taps(a: torch.Tensor) -> torch.Tensor:
    """``(B,)`` tap weights → ``(B, 3)`` kernels ``[a, 1, a] / sqrt(1 + 2a²)`` (unit energy)."""
    k = torch.stack([a, torch.ones_like(a), a], dim=1)
    return k / k.square().sum(1, keepdim=True).sqrt()


def correlate_noise(
    noise: torch.Tensor, a_rows: torch.Tensor, a_cols: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Spatially correlated noise from white noise ``(B, 1, H, W)``: a separable 3-tap filter
    ``[a, 1, a]`` (unit energy, so white noise keeps its variance) along rows and columns, one
    ``a`` per sample (``(B, 1, 1, 1)`` or ``(B,)``, in [0, 0.5]).

    Also returns, per sample ``(B, 1, 1, 1)``, the share of the variance that the blind noise
    estimator reads off such noise (1 for white noise; lower, since correlation takes energy
    out of the high frequencies it looks at), for its two paths: the mean energy of the high
    DCT band of 7×7 patches (``noise.bands``: the Poisson curve and the local σ map) and the
    eigenvalue tail of the 7×7 patch covariance (``noise.patches.eigen_tail_variance``: the
    global Gaussian σ). Both are computed exactly from the kernel, not sampled.
    """
    from scipy.signal import correlate2d

    from ..noise.bands import bands_for
    from ..noise.patches import PATCH_SIZE, eigen_tail_variance

    b = noise.shape[0]
    kr, kc = _taps(a_rows.reshape(b)), _taps(a_cols.reshape(b))
    x = noise.reshape(1, b, *noise.shape[2:])
    x = F.pad(x, (0, 0, 1, 1), mode="reflect")
    x = F.conv2d(x, kr.to(x.dtype).view(b, 1, 3, 1), groups=b)
    x = F.pad(x, (1, 1, 0, 0), mode="reflect")
    x = F.conv2d(x, kc.to(x.dtype).view(b, 1, 1, 3), groups=b)

    p = PATCH_SIZE
    high = bands_for(p).high  # (p*p, kh), orthonormal columns
    yy, xx = np.divmod(np.arange(p * p), p)
    dy, dx = yy[:, None] - yy[None, :], xx[:, None] - xx[None, :]
    inside = (np.abs(dy) <= 2) & (np.abs(dx) <= 2)
    band, pca = np.empty(b), np.empty(b)
    for i, (r, c) in enumerate(zip(kr.cpu().double().numpy(), kc.cpu().double().numpy())):
        k = np.outer(r, c)
        auto = correlate2d(k, k, mode="full")  # (5, 5): the noise autocovariance
        cov = np.where(inside, auto[np.clip(dy + 2, 0, 4), np.clip(dx + 2, 0, 4)], 0.0)
        band[i] = float(np.einsum("pk,pq,qk->", high, cov, high)) / high.shape[1]
        pca[i] = eigen_tail_variance(cov)
    as_t = lambda v: torch.as_tensor(v, dtype=noise.dtype, device=noise.device).view(b, 1, 1, 1)  # noqa: E731
    return x.reshape(noise.shape), as_t(band), as_t(pca)


def shift_black_level(x0: torch.Tensor, cfg: TrainingConfig, g: torch.Generator) -> torch.Tensor:
    """Lower a share ``cfg.p_black_shift`` of the clean patches towards black (a new tensor;
    ``x0`` is not modified): ``max(x0 − u·q, 0)`` with ``q`` the patch's 1st percentile and
    ``u ~ U[cfg.black_shift_range]``. Returns ``x0`` itself, drawing no random numbers, when
    the share is 0 (so recipes without it are unchanged)."""
    if cfg.p_black_shift <= 0:
        return x0
    b = x0.shape[0]
    device = x0.device
    pick = torch.rand(b, 1, 1, 1, generator=g, device=device) < cfg.p_black_shift
    u = _uniform(b, *cfg.black_shift_range, g)
    q = torch.quantile(x0.reshape(b, -1), 0.01, dim=1).clamp_min(0.0).view(b, 1, 1, 1)
    return torch.where(pick, (x0 - u * q).clamp_min(0.0), x0)


def corrupt(
    x0: torch.Tensor, cfg: TrainingConfig, g: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy observations ``y`` and their per-pixel time ``τ_y = σ_y / σ_max`` for a clean batch.

    Runs on ``x0``'s device, which must be the generator's (a GPU synthesises the noise of a
    large batch far faster than the CPU feeding it); on the CPU the stream of random numbers,
    and so every result, is the same as ever.
    """
    b, _, h, w = x0.shape
    device = x0.device
    if g.device.type != device.type:  # ("cuda" and "cuda:0" are the same device here)
        raise ValueError(f"the generator is on {g.device}, the batch on {device}")
    probs = torch.tensor(
        [cfg.p_gaussian, cfg.p_spatially_variant, cfg.p_poisson, cfg.p_salt_and_pepper],
        device=device,
    )
    kind = torch.multinomial(probs / probs.sum(), b, replacement=True, generator=g)
    kind = kind.view(b, 1, 1, 1)
    lo, hi = cfg.sigma_range
    eps = torch.randn(x0.shape, generator=g, device=device)

    # Gaussian, constant σ
    sig_const = _uniform(b, lo, hi, g).expand(b, 1, h, w)
    # spatially variant: σ between two random levels along a smooth field
    s1, s2 = _uniform(b, lo, hi, g), _uniform(b, lo, hi, g)
    sig_map = torch.minimum(s1, s2) + (s1 - s2).abs() * _smooth_field(b, h, w, g)
    # Poisson-Gaussian: photons at signal 1, read noise
    log_p = _uniform(b, np.log(cfg.photons_range[0]), np.log(cfg.photons_range[1]), g)
    photons = torch.exp(log_p)
    read = _uniform(b, 0.0, cfg.read_noise_max, g)
    signal = x0.clamp_min(0.0)
    y_pois = torch.poisson(signal * photons, generator=g) / photons + read * eps
    sig_pois = observed_poisson_sigma(y_pois, photons, read, photon_floor=cfg.photon_floor)
    # salt-and-pepper on top of mild Gaussian noise, impulses filled from neighbours
    sig_sp = _uniform(b, 0.0, 0.05, g) * (torch.rand(b, 1, 1, 1, generator=g, device=device) < 0.5)
    amount = _uniform(b, *cfg.impulse_range, g)
    hit = torch.rand(x0.shape, generator=g, device=device) < amount
    salt = torch.rand(x0.shape, generator=g, device=device) < 0.5
    hi_v = torch.maximum(x0.amax((2, 3), keepdim=True), torch.ones(b, 1, 1, 1, device=device))
    lo_v = torch.minimum(x0.amin((2, 3), keepdim=True), torch.zeros(b, 1, 1, 1, device=device))
    y_sp = torch.where(hit, torch.where(salt, hi_v, lo_v), x0 + sig_sp * eps)
    y_sp = fill_missing(y_sp, hit)
    sig_sp_map = torch.where(hit, IMPULSE_TIME * cfg.sigma_max, sig_sp.expand(b, 1, h, w))

    sigma = torch.where(kind == 0, sig_const, torch.where(kind == 1, sig_map, sig_pois))
    y = torch.where(kind == 2, y_pois, x0 + sigma * eps)
    if cfg.p_correlated > 0:  # (no random numbers drawn otherwise: older recipes unchanged)
        corr = torch.rand(b, 1, 1, 1, generator=g, device=device) < cfg.p_correlated
        taps = _uniform(b, 0.0, cfg.correlation_max, g), _uniform(b, 0.0, cfg.correlation_max, g)
        noise, band, pca = correlate_noise(y - x0, *taps)
        y = torch.where(corr, x0 + noise, y)
        # what the estimator will say: its global PCA σ for constant Gaussian noise, its DCT
        # band for the local σ map and the Poisson curve
        reading = torch.where(kind == 0, pca, band)
        sigma = torch.where(corr, sigma * reading.sqrt(), sigma)
    if cfg.p_clip_black > 0:  # (no random numbers drawn otherwise: older recipes unchanged)
        clip = (torch.rand(b, 1, 1, 1, generator=g, device=device) < cfg.p_clip_black) & (
            (kind == 0) | (kind == 2)
        )
        dark = torch.quantile(x0.reshape(b, -1), 0.02, dim=1).view(b, 1, 1, 1)
        s_dark = torch.where(
            kind == 2, torch.sqrt(dark.clamp_min(0.0) / photons + read**2), sig_const[:, :, :1, :1]
        )
        black = dark + _uniform(b, *cfg.clip_black_range, g) * s_dark
        y_clip = torch.maximum(y, black)
        y = torch.where(clip, y_clip, y)
        # the Poisson map as the estimator sees the clipped data (its reading of correlated
        # noise kept); the Gaussian σ is the unclipped one (the estimator leaves clipped level
        # sets out)
        sig_clip = observed_poisson_sigma(y_clip, photons, read, photon_floor=cfg.photon_floor)
        if cfg.p_correlated > 0:
            sig_clip = torch.where(corr, sig_clip * reading.sqrt(), sig_clip)
        sigma = torch.where(clip & (kind == 2), sig_clip, sigma)
    is_sp = kind == 3
    y = torch.where(is_sp, y_sp, y)
    sigma = torch.where(is_sp, sig_sp_map, sigma)
    tau_y = (sigma / cfg.sigma_max).clamp(0.0, 1.0)
    return y, tau_y
