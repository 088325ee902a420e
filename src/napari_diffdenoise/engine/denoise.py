"""``denoise``: the public entry point of the diffusion denoiser (2D images and small stacks).

The work is done by the generator :func:`iter_denoise`, which yields ``(done, total)`` progress
and returns the result; :func:`denoise` drives it synchronously, a widget can drive it from a
``thread_worker`` and cancel between yields.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._progress import run_to_end
from .._validation import (
    as_image,
    check_choice,
    check_dtype,
    check_int,
    check_not_rgb,
    check_number,
    is_layer,
    layer_data,
)
from ..intensity import SIGMA_MAX, IntensityRange, robust_range

__all__ = ["denoise", "iter_denoise", "DenoiseResult", "TILE_SIZE", "TILE_OVERLAP", "TILE_CONTEXT"]

TILE_SIZE = 512
TILE_OVERLAP = 32
TILE_CONTEXT = 48
_PAD = 8


@dataclass
class DenoiseResult:
    """What ``denoise(..., return_details=True)`` returns."""

    image: np.ndarray
    std: np.ndarray | None
    time_map: np.ndarray
    report: Any | None
    #: ``wiener="auto"``: the Wiener weight chosen for each plane (impulse planes left out)
    wiener_weights: list[float] | None = None
    #: ``wiener="auto"``: the weight of the collaborative hard-thresholding estimate in each
    #: plane's Wiener pilot (same planes)
    threshold_weights: list[float] | None = None
    #: ``wiener="auto"``: the share of the fine-patch (4 × 4) Wiener estimate in each plane's
    #: Wiener estimate (same planes)
    fine_weights: list[float] | None = None


def _time_levels_to_sigma(t_levels, image, intensity: IntensityRange) -> np.ndarray:
    """A napari Labels time map (levels 0..L, metadata) → σ map in image units."""
    from ..noise.timemap import DEFAULT_TIME_LEVELS, levels_to_time_map

    meta = getattr(t_levels, "metadata", None) or {}
    levels = int(meta.get("time_levels", DEFAULT_TIME_LEVELS))
    sigma_max = float(meta.get("sigma_max", SIGMA_MAX * intensity.scale))
    t = levels_to_time_map(np.asarray(layer_data(t_levels)), levels)
    return t * sigma_max


def _sigma_from_inputs(arr, time_map, sigma, intensity: IntensityRange) -> np.ndarray | None:
    """σ map in image units from ``time_map`` or ``sigma`` (None: estimate it)."""
    if time_map is not None and sigma is not None:
        raise ValueError("pass either time_map or sigma, not both")
    if time_map is not None:
        data = np.asarray(layer_data(time_map))
        if is_layer(time_map) or data.dtype.kind in "ui":
            sig = _time_levels_to_sigma(time_map, arr, intensity)
        else:
            if data.dtype.kind != "f":
                raise TypeError(
                    f"time_map must hold floats in [0, 1] or integer levels, got {data.dtype}"
                )
            if not np.isfinite(data).all():
                raise ValueError("time_map contains NaN or infinite values")
            if data.size and (data.min() < 0 or data.max() > 1):
                raise ValueError(
                    f"time_map values must lie in [0, 1], got [{data.min():.3g}, {data.max():.3g}]"
                )
            sig = data.astype(np.float32) * np.float32(SIGMA_MAX * intensity.scale)
        name = "time_map"
    elif sigma is not None:
        sig = np.asarray(sigma, dtype=np.float64) if not np.isscalar(sigma) else np.float64(sigma)
        if np.asarray(sig).dtype.kind not in "fiu":
            raise TypeError("sigma must be a number or a numeric array")
        if not np.isfinite(sig).all():
            raise ValueError("sigma contains NaN or infinite values")
        if np.any(np.asarray(sig) < 0):
            raise ValueError("sigma must be >= 0 (a noise standard deviation in image units)")
        name = "sigma"
    else:
        return None
    sig = np.asarray(sig, dtype=np.float32)
    try:
        sig = np.broadcast_to(sig, arr.shape)
    except ValueError:
        raise ValueError(
            f"{name} of shape {sig.shape} does not match the image shape {arr.shape}"
        ) from None
    return sig


def _dihedral(x, k: int):
    import torch

    x = torch.rot90(x, k % 4, dims=(-2, -1))
    return torch.flip(x, dims=(-1,)) if k >= 4 else x


def _undihedral(x, k: int):
    import torch

    if k >= 4:
        x = torch.flip(x, dims=(-1,))
    return torch.rot90(x, -(k % 4), dims=(-2, -1))


def _plane_tau_and_input(plane, sigma_plane, intensity, sigma_max_model):
    """Normalised observation, τ map and the noise report (blind mode) for one plane."""
    report = None
    yn = intensity.normalise(plane)
    impulse = None
    if sigma_plane is None:
        from ..noise.estimate import estimate_noise

        report = estimate_noise(plane)
        sigma_plane = report.start_sigma_map
        if report.kind == "salt_and_pepper" and report.impulse_mask is not None:
            impulse = np.asarray(report.impulse_mask, dtype=bool)
    tau = np.asarray(sigma_plane, dtype=np.float32) / np.float32(intensity.scale * sigma_max_model)
    return yn, np.clip(tau, 0.0, 1.0), impulse, report


def iter_denoise(
    image,
    time_map=None,
    *,
    sigma=None,
    model="default",
    steps: int | None = None,
    sampler: str | None = None,
    eta: float = 0.0,
    samples: int = 1,
    ensemble: int | None = None,
    wiener: float | str | None = None,
    device="auto",
    precision: str | None = None,
    seed: int | None = None,
    tile_size: int = TILE_SIZE,
    output_dtype=None,
) -> Generator[tuple[int, int], None, DenoiseResult]:
    """Generator form of :func:`denoise`: yields ``(done, total)`` network evaluations."""
    import torch

    from ..diffusion.impulses import IMPULSE_TIME, fill_missing
    from ..diffusion.samplers import check_sampler_args, iter_sample
    from ..model.registry import load_model
    from .collaborative import (
        PATCH,
        iter_collaborative_threshold,
        iter_collaborative_wiener,
        wiener_bands,
    )
    from .device import resolve_device, resolve_precision
    from .tiling import blend_weight, tile_slices

    arr = as_image(image)
    check_not_rgb(image, arr.shape)
    loaded = load_model(model)
    sampler = loaded.sampler if sampler is None else sampler
    steps = check_sampler_args(sampler, loaded.steps if steps is None else steps, eta)
    ensemble = loaded.ensemble if ensemble is None else ensemble
    check_choice(ensemble, "ensemble (flip/rotation copies)", (1, 2, 4, 8))
    wiener, auto = _check_wiener(loaded.wiener if wiener is None else wiener)
    samples = check_int(samples, "samples", low=1)
    if samples > 1 and eta == 0:
        raise ValueError("samples > 1 needs a stochastic sampler: use sampler='indi' with eta > 0")
    tile_size = check_int(tile_size, "tile_size", low=64)
    if output_dtype is not None:
        output_dtype = check_dtype(output_dtype, "output_dtype")
    if auto and (eta > 0 or samples > 1):  # SURE needs a deterministic estimate
        auto, wiener = False, AUTO_FALLBACK
    torch_device = resolve_device(device)
    amp = resolve_precision(
        loaded.precision if precision is None else precision,
        torch_device,
        preferred=precision is None,
    )
    intensity = robust_range(arr)
    sigma_map = _sigma_from_inputs(arr, time_map, sigma, intensity)

    net = loaded.net
    if torch_device.type != "cpu":
        import copy

        net = copy.deepcopy(net).to(torch_device)
    mult = net.config.multiple
    sig_max = loaded.sigma_max
    call = _network_call(net, torch_device, amp)
    noise_generator = None
    if seed is not None:
        noise_generator = torch.Generator(device=torch_device).manual_seed(int(seed))
    elif eta > 0:
        noise_generator = torch.Generator(device=torch_device)
        noise_generator.seed()

    planes_shape = arr.shape[:-2]
    n_planes = int(np.prod(planes_shape)) if planes_shape else 1
    h, w = arr.shape[-2:]
    overlap = min(TILE_OVERLAP, tile_size // 4)
    context = 0 if max(h, w) <= tile_size else min(TILE_CONTEXT, tile_size // 4)
    tiles = list(tile_slices((h, w), tile_size, overlap))
    wiener_on = auto or wiener > 0
    n_bands = wiener_bands(h, w) if wiener_on else 0
    # progress steps of the non-local step per plane: its bands, and for "auto" the
    # hard-thresholding pass, the 4 × 4 Wiener pass and the SURE probes (one more network
    # pass, thresholding and both Wiener steps); counted whether a plane runs it or skips it
    n_fine = wiener_bands(h, w, patch=FINE_PATCH) if auto else 0
    probe_steps = len(tiles) * steps + 3 * n_bands + 2 * n_fine if auto else 0
    wiener_steps = n_bands + probe_steps
    per_plane = len(tiles) * ensemble * samples * steps + wiener_steps
    total = n_planes * per_plane
    weights: list[float] = []
    ht_weights: list[float] = []
    fine_weights: list[float] = []
    done = 0
    flat = arr.reshape((n_planes, h, w))
    sig_flat = None if sigma_map is None else sigma_map.reshape((n_planes, h, w))
    out = np.empty((n_planes, h, w), dtype=np.float32)
    std_out = np.empty((n_planes, h, w), dtype=np.float32) if samples > 1 else None
    tau_out = np.empty((n_planes, h, w), dtype=np.float32)
    report = None

    def run_plane(y_t, tau_t, members: int, n_samples: int, want_first: bool):
        """The network over the tiles of one plane (``members`` flip/rotation copies,
        ``n_samples`` samples); yields progress, returns (mean, spread or None, the
        identity copy's estimate or None)."""
        nonlocal done
        acc = np.zeros((h, w), dtype=np.float64)
        acc2 = np.zeros((h, w), dtype=np.float64) if n_samples > 1 else None
        acc0 = np.zeros((h, w), dtype=np.float64) if want_first else None
        wsum = np.zeros((h, w), dtype=np.float64)
        for rs, cs in tiles:
            # run each tile with up to `context` pixels of real image around it, then keep the
            # tile itself: the network sees the same neighbourhood as in a whole-image run
            r0, r1 = max(rs.start - context, 0), min(rs.stop + context, h)
            c0, c1 = max(cs.start - context, 0), min(cs.stop + context, w)
            yt = y_t[..., r0:r1, c0:c1]
            tt = tau_t[..., r0:r1, c0:c1]
            th, tw = yt.shape[-2:]
            keep_r = slice(rs.start - r0, rs.start - r0 + (rs.stop - rs.start))
            keep_c = slice(cs.start - c0, cs.start - c0 + (cs.stop - cs.start))
            ph = (-(th + 2 * _PAD)) % mult + _PAD
            pw = (-(tw + 2 * _PAD)) % mult + _PAD
            mode = "reflect" if min(th, tw) > max(ph, pw) else "replicate"
            pad = (_PAD, pw, _PAD, ph)
            yp = torch.nn.functional.pad(yt, pad, mode=mode).to(torch_device)
            tp = torch.nn.functional.pad(tt, pad, mode=mode).to(torch_device)
            tile_sum = torch.zeros((th, tw), dtype=torch.float64)
            tile_sq = torch.zeros((th, tw), dtype=torch.float64)
            tile_first = None
            for _ in range(n_samples):
                est = torch.zeros((th, tw), dtype=torch.float64)
                for k in range(members):
                    yk, tk = _dihedral(yp, k), _dihedral(tp, k)
                    for _, _, xk in iter_sample(  # noqa: B007 (the last state is the estimate)
                        call,
                        yk,
                        tk,
                        sampler=sampler,
                        steps=steps,
                        eta=eta,
                        sigma_max=sig_max,
                        generator=noise_generator,
                    ):
                        done += 1
                        yield done, total
                    xk = _undihedral(xk, k)[0, 0, _PAD : _PAD + th, _PAD : _PAD + tw]
                    est += xk.double().cpu()
                    if k == 0 and tile_first is None:
                        tile_first = xk.double().cpu()
                est /= members
                tile_sum += est
                tile_sq += est**2
            tile_sum, tile_sq = tile_sum[keep_r, keep_c], tile_sq[keep_r, keep_c]
            th, tw = tile_sum.shape
            wgt = blend_weight(th, tw, overlap if len(tiles) > 1 else 0)
            mean = (tile_sum / n_samples).numpy()
            acc[rs, cs] += wgt * mean
            wsum[rs, cs] += wgt
            if acc2 is not None:
                var = (
                    np.maximum((tile_sq / n_samples).numpy() - mean**2, 0.0)
                    * n_samples
                    / (n_samples - 1)
                )
                acc2[rs, cs] += wgt * np.sqrt(var)
            if acc0 is not None:
                acc0[rs, cs] += wgt * tile_first[keep_r, keep_c].numpy()
        mean = (acc / wsum).astype(np.float32)
        spread = None if acc2 is None else (acc2 / wsum).astype(np.float32)
        first = None if acc0 is None else (acc0 / wsum).astype(np.float32)
        return mean, spread, first

    def filter_pass(filter_steps, bands: int = n_bands):
        """One pass of a non-local filter (a ``(bands done, bands)`` generator); its bands
        count as progress. Returns the filtered plane."""
        nonlocal done
        value = yield from _counted(filter_steps, done, total)
        done += bands
        return value

    for i in range(n_planes):
        yn, tau, impulse, rep = _plane_tau_and_input(
            flat[i], None if sig_flat is None else sig_flat[i], intensity, sig_max
        )
        report = rep if rep is not None else report
        y_t = torch.from_numpy(np.ascontiguousarray(yn)).view(1, 1, h, w)
        tau_t = torch.from_numpy(np.ascontiguousarray(tau)).view(1, 1, h, w)
        has_impulses = impulse is not None and bool(impulse.any())
        if has_impulses:
            miss = torch.from_numpy(impulse).view(1, 1, h, w)
            y_t = fill_missing(y_t, miss)
            tau_t = torch.where(
                miss, torch.full_like(tau_t, IMPULSE_TIME * SIGMA_MAX / sig_max), tau_t
            )
        tau_out[i] = tau_t[0, 0].numpy()
        # ("auto" keeps the identity copy's estimate: the probe's pass is compared with it)
        mean, spread, first = yield from run_plane(y_t, tau_t, ensemble, samples, auto)
        out[i] = mean
        if std_out is not None:
            std_out[i] = spread
        if wiener_on and not has_impulses:
            # the non-local step: a collaborative Wiener filter of the observation, guided by
            # a pilot (the network's estimate; for "auto", blended with a hard-thresholding
            # estimate), blended in (not on impulse noise, whose observation is not
            # Gaussian-like); its bands count as progress
            s_n = tau_out[i] * np.float32(sig_max)
            noisy_px = s_n[s_n > 0]
            if not auto:
                cw = yield from filter_pass(
                    iter_collaborative_wiener(yn, mean, s_n, device=torch_device)
                )
                pilot, weight = mean, wiener
            elif noisy_px.size == 0 or min(h, w) < PATCH:
                # nothing is noisy (the network's pixels are the unchanged ones), or the plane
                # is smaller than one patch (nothing to match): the network's estimate
                pilot, cw, weight = mean, mean, 0.0
                done += wiener_steps
                weights.append(weight)
                ht_weights.append(0.0)
                fine_weights.append(0.0)
            else:
                # 1. collaborative hard thresholding (BM3D's first stage), blended into the
                #    pilot by SURE: where the image repeats itself (stripes, lattices) it keeps
                #    detail the network smooths away;
                # 2. the collaborative Wiener filter guided by that pilot, with 8 × 8 and with
                #    4 × 4 patches (finer detail where the noise allows), mixed by SURE;
                # 3. that Wiener estimate blended in by SURE.
                # SURE's divergence terms come from one ±1 probe, the pipeline rerun on a
                # perturbed observation: one network pass at ±SURE_EPSILON·σ (the ensemble's
                # estimate moved by that pass's change, scaled up to the filters' step), the
                # filters at ±SURE_EPSILON_FILTERS·σ, a larger step since block matching and
                # thresholds make them jump
                probe = np.random.default_rng(SURE_PROBE_SEED).choice(
                    np.float32([-1.0, 1.0]), size=(h, w)
                )
                scale = float(np.median(noisy_px))
                eps = np.float32(max(SURE_EPSILON * scale, 1e-5))
                eps_f = np.float32(max(SURE_EPSILON_FILTERS * scale, 1e-5))
                yn_f = yn + eps_f * probe  # (y_t is yn here: impulse planes skip the step)
                ht = yield from filter_pass(
                    iter_collaborative_threshold(yn, s_n, device=torch_device)
                )
                ht_f = yield from filter_pass(
                    iter_collaborative_threshold(yn_f, s_n, device=torch_device)
                )
                moved, _, _ = yield from run_plane(
                    torch.from_numpy(yn + eps * probe).view(1, 1, h, w), tau_t, 1, 1, False
                )
                mean_f = mean + (moved - first) * (eps_f / eps)
                b = float(
                    np.clip(
                        sure_blend_weight(yn, mean, ht, mean_f, ht_f, probe, eps_f, s_n)[0],
                        0.0,
                        1.0,
                    )
                )
                pilot = (1.0 - b) * mean + b * ht
                pilot_f = (1.0 - b) * mean_f + b * ht_f
                passes = []
                for patch, bands in ((PATCH, n_bands), (FINE_PATCH, n_fine)):
                    for obs, guide in ((yn, pilot), (yn_f, pilot_f)):
                        passes.append(
                            (
                                yield from filter_pass(
                                    iter_collaborative_wiener(
                                        obs, guide, s_n, patch=patch, device=torch_device
                                    ),
                                    bands,
                                )
                            )
                        )
                coarse, coarse_f, fine, fine_f = passes
                c = fine_patch_share(
                    *sure_blend_weight(yn, coarse, fine, coarse_f, fine_f, probe, eps_f, s_n)
                )
                cw = (1.0 - c) * coarse + c * fine
                cw_f = (1.0 - c) * coarse_f + c * fine_f
                weight = auto_wiener_weight(
                    *sure_blend_weight(yn, pilot, cw, pilot_f, cw_f, probe, eps_f, s_n)
                )
                weights.append(weight)
                ht_weights.append(b)
                fine_weights.append(c)
            out[i] = (1.0 - weight) * pilot + weight * cw
        else:
            done += wiener_steps

    result = intensity.denormalise(out).reshape(arr.shape)
    # τ = 0 means "leave this pixel alone": copy it exactly (no normalisation round-off)
    untouched = tau_out.reshape(arr.shape) <= 0
    if untouched.any():
        result = np.where(untouched, arr.astype(np.float32), result)
    result = _cast(result, arr.dtype if output_dtype is None else output_dtype)
    std = None if std_out is None else (std_out * np.float32(intensity.scale)).reshape(arr.shape)
    return DenoiseResult(
        result,
        std,
        tau_out.reshape(arr.shape),
        report,
        weights if auto else None,
        ht_weights if auto else None,
        fine_weights if auto else None,
    )


#: the Monte-Carlo probe's step for the network, relative to the median noise std (SURE's
#: divergence term)
SURE_EPSILON = 0.02
#: the same for the non-local filters (thresholding, Wiener steps), which jump where block
#: matching picks other patches or a coefficient crosses the threshold, so they need a larger
#: step than the network (why 0.1: docs/design/denoiser.md)
SURE_EPSILON_FILTERS = 0.1
#: the patch size of ``"auto"``'s second Wiener estimate (the first uses ``PATCH``, 8)
FINE_PATCH = 4
#: the probe's ±1 pattern is drawn from this seed (results do not depend on a user seed)
SURE_PROBE_SEED = 0
#: the Wiener weight ``"auto"`` falls back to with stochastic sampling (no SURE there), and
#: the weight SURE's estimate is shrunk towards where it is uncertain
AUTO_FALLBACK = AUTO_PRIOR = 0.5
#: the least weight ``"auto"`` gives (SURE assumes white noise of a known σ, which real
#: detector noise is not; docs/design/denoiser.md)
AUTO_MIN = 0.25
#: how many variances a deviation from the prior must exceed before it counts
#: (:func:`_james_stein`)
AUTO_SHRINK = 2.0


def _check_wiener(wiener) -> tuple[float, bool]:
    """``(weight, auto)`` from a ``wiener`` argument: a weight in [0, 1] or ``"auto"``."""
    if isinstance(wiener, str) and wiener == "auto":
        return 0.0, True
    try:
        return check_number(wiener, "wiener", low=0.0, high=1.0), False
    except ValueError:
        raise ValueError(f"wiener must be a weight in [0, 1] or 'auto', got {wiener!r}") from None


def sure_blend_weight(
    y, f, g, f_p, g_p, probe, eps, sigma, *, blocks: int = 8
) -> tuple[float, float]:
    """The weight ``a`` of ``(1 − a)·f + a·g`` that minimises Stein's unbiased risk estimate
    of its mean squared error against the clean image, for 2D observations ``y`` with
    independent Gaussian(-like) noise of per-pixel std ``sigma``, and its uncertainty.

    ``f_p`` and ``g_p`` are the two estimates recomputed from ``y + eps·probe`` (``probe`` ±1
    per pixel): their change gives the divergence of ``g − f`` (Ramani et al. 2008's
    Monte-Carlo SURE). Returns ``(a, variance)``: ``a`` unclipped (0 when the estimates agree),
    the variance a delete-one-block jackknife over a ``blocks × blocks`` grid (the single probe
    and the image's own variety both show there). Pixels with ``sigma = 0`` are left out.
    """
    keep = (np.asarray(sigma) > 0) & np.ones(np.shape(y), bool)
    f64 = np.asarray(f, np.float64)
    d = np.where(keep, np.asarray(g, np.float64) - f64, 0.0)
    r = np.asarray(y, np.float64) - f64
    div = np.asarray(probe, np.float64) * ((np.asarray(g_p, np.float64) - f_p) - d) / eps
    s2 = np.broadcast_to(np.asarray(sigma, np.float64) ** 2, d.shape)
    num = np.where(keep, r * d - s2 * div, 0.0)
    den = d * d
    total_den = float(den.sum())
    if total_den <= 0:
        return 0.0, 0.0
    a = float(num.sum()) / total_den
    rows = np.array_split(np.arange(d.shape[0]), min(blocks, d.shape[0]))
    cols = np.array_split(np.arange(d.shape[1]), min(blocks, d.shape[1]))
    nb = np.array([[num[np.ix_(rr, cc)].sum() for cc in cols] for rr in rows]).ravel()
    db = np.array([[den[np.ix_(rr, cc)].sum() for cc in cols] for rr in rows]).ravel()
    rest = total_den - db
    ok = rest > 0
    if ok.sum() < 2:
        return a, float("inf")
    loo = (num.sum() - nb[ok]) / rest[ok]
    k = int(ok.sum())
    return a, float((k - 1) / k * np.sum((loo - loo.mean()) ** 2))


def _james_stein(a: float, variance: float, prior: float) -> float:
    """SURE's ``a`` moved back towards ``prior`` by the positive-part James-Stein factor
    ``max(0, 1 − AUTO_SHRINK·variance / (a − prior)²)`` (a deviation within √2 standard errors
    of the prior counts for nothing); ``prior`` itself where ``a`` equals it or the variance is
    not finite."""
    deviation = a - prior
    if deviation == 0 or not np.isfinite(variance):
        return prior
    return prior + max(0.0, 1.0 - AUTO_SHRINK * variance / (deviation * deviation)) * deviation


def fine_patch_share(a: float, variance: float) -> float:
    """``wiener="auto"``'s share of the 4 × 4-patch Wiener estimate from SURE's ``a`` and its
    variance: shrunk towards 0 (the 8 × 8 estimate alone, :func:`_james_stein`), then kept in
    ``[0, 1]``."""
    share = _james_stein(a, variance, 0.0)
    return 0.0 if share <= 0 else float(min(share, 1.0))


def auto_wiener_weight(a: float, variance: float) -> float:
    """``wiener="auto"``'s weight from SURE's ``a`` and its variance: shrunk towards
    ``AUTO_PRIOR`` (:func:`_james_stein`), then kept in ``[AUTO_MIN, 1]``."""
    return float(np.clip(_james_stein(a, variance, AUTO_PRIOR), AUTO_MIN, 1.0))


def _counted(progress_steps, done: int, total: int):
    """Drive a ``(k, n)``-yielding generator, re-yielding ``(done + k, total)``; returns its
    value."""
    while True:
        try:
            k, _ = next(progress_steps)
        except StopIteration as stop:
            return stop.value
        yield done + k, total


def _network_call(net, torch_device, amp):
    """``net`` as the sampler's callable: no autograd, and autocast to ``amp`` (a 16-bit dtype)
    if given. The contexts are entered per call, so nothing leaks to the caller between the
    generator's yields."""
    import torch

    def call(x, y, t):
        with torch.no_grad():
            if amp is None:
                return net(x, y, t)
            with torch.autocast(torch_device.type, dtype=amp):
                return net(x, y, t).float()

    return call


def _cast(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    dtype = np.dtype(dtype)
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        return np.clip(np.rint(x), info.min, info.max).astype(dtype)
    if dtype.kind == "f" and dtype.itemsize < 4:
        return x.astype(dtype)
    return x.astype(np.float32 if dtype.itemsize <= 4 else dtype)


def denoise(
    image,
    time_map=None,
    *,
    sigma=None,
    model="default",
    steps: int | None = None,
    sampler: str | None = None,
    eta: float = 0.0,
    samples: int = 1,
    ensemble: int | None = None,
    wiener: float | str | None = None,
    device="auto",
    precision: str | None = None,
    seed: int | None = None,
    progress: Callable[[int, int], Any] | None = None,
    tile_size: int = TILE_SIZE,
    output_dtype=None,
    return_std: bool = False,
    return_details: bool = False,
):
    """Remove noise from a 2D image (or a small stack, plane by plane) with the diffusion model.

    Parameters
    ----------
    image : array or napari Image layer
        2D ``(rows, cols)`` or a stack ``(..., rows, cols)``; any integer or float dtype.
    time_map : array or napari Labels layer, optional
        Per-pixel diffusion start time. Floats in [0, 1] mean a noise std of
        ``t · SIGMA_MAX · scale`` (image units, ``scale`` the robust intensity range, as made by
        ``NoiseReport.time_map()``); a Labels layer made by the Noise inspector carries its own
        ``time_levels`` and ``sigma_max`` in ``metadata``; integer arrays are levels out of 255.
        Pixels with t = 0 are returned unchanged.
    sigma : float or array, optional
        Noise std in image units (scalar or per-pixel map), instead of ``time_map``.
        With neither, the noise is estimated (``estimate_noise``), salt-and-pepper included.
    model : str, path or LoadedModel
        A name from ``list_models()`` (presets ``"default"``, ``"fast"``, ``"quality"`` or a saved
        fine-tuned model) or a ``.safetensors`` path.
    steps, sampler : optional
        Sampling steps and sampler (``"direct"``, ``"origin"``, ``"cold"``, ``"indi"``);
        the preset's defaults when omitted.
    eta : float
        Fresh-noise level of the stochastic ``indi`` sampler (0 = deterministic).
    samples : int
        Number of stochastic samples (needs ``eta > 0``); the mean is returned.
    ensemble : int, optional
        Flip/rotation self-ensemble size (1, 2, 4 or 8); the preset's default when omitted.
    wiener : float or "auto", optional
        Weight in [0, 1] of a collaborative Wiener estimate blended with the network's output:
        a BM3D-style non-local filter of the observation, guided by the network's estimate,
        that draws on similar patches across the image (repeated structure: stripes,
        lattices), about 2.5 s per 512² plane on 2 CPU cores. ``"auto"``: the Wiener filter's
        pilot is the network's estimate blended with a collaborative hard-thresholding one
        (BM3D's first stage, strong on periodic structure), the Wiener estimate mixes 8 × 8
        and 4 × 4 patches (finer detail), and the weights are picked per plane by Stein's
        unbiased risk estimate (one more network pass, and six filter passes where a fixed
        weight runs one; the weights are in ``DenoiseResult.wiener_weights``,
        ``threshold_weights`` and ``fine_weights``; a fixed 0.5 guided by the network with
        stochastic sampling).
        Skipped on planes with salt-and-pepper impulses. 0 turns it off; the preset's default
        (``quality``: ``"auto"``, else 0) when omitted.
    device : str
        ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.
    precision : str, optional
        Arithmetic of the network: ``"float32"``, ``"bfloat16"`` or ``"float16"`` (GPUs only);
        the preset's choice when omitted (``"fast"`` uses bfloat16 on CUDA GPUs with bf16 and
        on CPUs where a one-off timing finds it faster; everything else float32). Sampling
        arithmetic stays float32.
    seed : int, optional
        Seed for stochastic sampling (results are reproducible with a seed).
    progress : callable, optional
        Called as ``progress(done, total)`` after each network evaluation.
    tile_size : int
        Largest tile processed at once (overlapping tiles are blended).
    output_dtype : dtype, optional
        Output dtype; default: the input's dtype for integers, float32 for floats.
    return_std : bool
        Also return the per-pixel std over ``samples`` (uncertainty, image units).
    return_details : bool
        Return a :class:`DenoiseResult` (image, std, time map used, noise report).

    Returns
    -------
    numpy.ndarray, or ``(image, std)`` with ``return_std``, or :class:`DenoiseResult`.
    """
    if return_std and samples < 2:
        raise ValueError("return_std needs samples > 1 with sampler='indi' and eta > 0")
    steps_of_work = iter_denoise(
        image,
        time_map,
        sigma=sigma,
        model=model,
        steps=steps,
        sampler=sampler,
        eta=eta,
        samples=samples,
        ensemble=ensemble,
        wiener=wiener,
        device=device,
        precision=precision,
        seed=seed,
        tile_size=tile_size,
        output_dtype=output_dtype,
    )
    result: DenoiseResult = run_to_end(
        steps_of_work, None if progress is None else (lambda step: progress(*step))
    )
    if return_details:
        return result
    if return_std:
        return result.image, result.std
    return result.image
