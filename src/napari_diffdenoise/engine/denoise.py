"""``denoise``: the public entry point of the diffusion denoiser, for images and stacks of any size.

The job is a pipeline of small parts, each in its own module:

- **source** (:mod:`.source`): numpy, dask and zarr arrays, napari Image layers, TIFF, zarr and
  OME-Zarr paths, read plane by plane;
- **plan** (:mod:`.plan`): intensity normalisation per channel and each plane's noise level;
- **tiles → batches → network → blend** (:mod:`.tiling`, :mod:`.network`), with the optional
  non-local step per plane (below);
- **sink** (:mod:`.sink`): numpy arrays, or a zarr / OME-Zarr store written as planes finish and
  resumed where a run stopped.

:func:`iter_denoise` composes them as a generator that yields :class:`Progress` and returns a
:class:`DenoiseResult`; :func:`denoise` drives it synchronously, a widget from a
``thread_worker`` (cancelling between yields). Reading (and the blind noise estimate) of the
next planes and writing of the finished ones run in background threads beside the network.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._progress import relay, run_to_end
from .._validation import as_image, is_labels_layer, layer_data
from ..intensity import SIGMA_MAX
from .options import AUTO_FALLBACK, DenoiseOptions, Settings, check_wiener  # noqa: F401
from .tiling import TILE_CONTEXT, TILE_OVERLAP

__all__ = [
    "denoise",
    "iter_denoise",
    "DenoiseResult",
    "DenoiseOptions",
    "Progress",
    "TILE_OVERLAP",
    "TILE_CONTEXT",
]

#: most planes run through the network together (tiles of several planes share batches)
MAX_GROUP = 16


@dataclass
class DenoiseResult:
    """What ``denoise(..., return_details=True)`` returns."""

    #: the denoised image: a numpy array, or the zarr array written with ``out=``
    image: Any
    std: np.ndarray | None
    #: the time map each pixel started from (in-memory results only)
    time_map: np.ndarray | None
    report: Any | None
    #: ``wiener="auto"``: the Wiener weight chosen for each plane (impulse planes left out)
    wiener_weights: list[float] | None = None
    #: ``wiener="auto"``: the weight of the collaborative hard-thresholding estimate in each
    #: plane's Wiener pilot (same planes)
    threshold_weights: list[float] | None = None
    #: ``wiener="auto"``: the share of the fine-patch (4 × 4) Wiener estimate in each plane's
    #: Wiener estimate (same planes)
    fine_weights: list[float] | None = None
    #: the parameters of the run (model, its hash, every option): ``denoise(image,
    #: **metadata["parameters"])`` reproduces the result
    metadata: dict | None = None


class Progress(tuple):
    """``(done, total)`` progress units (network evaluations of a tile, and non-local filter
    bands), with the planes finished and the pixels per plane for rates (MP/s).

    ``output`` is the array being filled (the numpy array or the zarr array of ``out=``),
    zeros where no plane was written yet: a viewer can show it while the run goes on."""

    def __new__(
        cls,
        done: int,
        total: int,
        planes_done: int = 0,
        planes_total: int = 0,
        plane_pixels: int = 0,
        output: Any = None,
    ):
        self = super().__new__(cls, (int(done), int(total)))
        self.planes_done = planes_done
        self.planes_total = planes_total
        self.plane_pixels = plane_pixels
        self.output = output
        return self

    @property
    def done(self) -> int:
        return self[0]

    @property
    def total(self) -> int:
        return self[1]


def _output_dtype(settings: Settings, input_dtype: np.dtype) -> np.dtype:
    """The input's dtype (integers rounded and clipped; float16/32/64 kept), or the user's."""
    if settings.output_dtype is not None:
        dtype = settings.output_dtype
    else:
        dtype = np.dtype(input_dtype)
    if dtype.kind == "f" and dtype.itemsize == 4:
        return np.dtype(np.float32)
    return dtype


def _noise_generator(settings: Settings, group: int):
    """The torch generator of one group of planes: seeded from (seed, group), so a resumed run
    draws the same noise as an uninterrupted one; fresh where no seed is given."""
    import torch

    if settings.seed is None and settings.eta == 0:
        return None
    generator = torch.Generator(device=settings.device)
    if settings.seed is None:
        generator.seed()
    else:
        state = np.random.SeedSequence([settings.seed, group]).generate_state(1, dtype=np.uint64)
        generator.manual_seed(int(state[0]) & ((1 << 63) - 1))
    return generator


def _in_image_units(estimate: np.ndarray, tau: np.ndarray, plane: np.ndarray, intensity):
    """A network estimate (normalised units) in the image's units, with the pixels whose time
    is 0 ("leave this pixel alone") copied exactly from ``plane`` (the same region)."""
    values = intensity.denormalise(estimate)
    untouched = tau <= 0
    if untouched.any():
        values = np.where(untouched, plane.astype(np.float32), values)
    return values


def _relay(
    steps,
    planes_done: Callable[[], int],
    planes_total: int,
    plane_pixels: int,
    output: Any = None,
):
    """Re-yield ``(done, total)`` steps as :class:`Progress`; returns the generator's value."""
    return relay(
        steps, lambda step: Progress(*step, planes_done(), planes_total, plane_pixels, output)
    )


def iter_denoise(
    image,
    time_map=None,
    *,
    sigma=None,
    axes: str | None = None,
    out=None,
    overwrite: bool = False,
    pyramid: bool = False,
    options: DenoiseOptions | None = None,
    plan: Any = None,
    **option_values: Any,
) -> Generator[Progress, None, DenoiseResult]:
    """Generator form of :func:`denoise`: yields :class:`Progress` ``(done, total)``, returns a
    :class:`DenoiseResult`. Closing it (a cancelled worker) stops between two network calls;
    a zarr output is left as a resumable partial job.

    ``plan`` (a :class:`.plan.Plan` of ``image``, instead of ``time_map``/``sigma``) is for the
    dask path (:mod:`.lazy`): blocks of a stack denoised with the whole stack's plan."""
    import torch

    from ..diffusion.impulses import IMPULSE_TIME, fill_missing
    from .collaborative import wiener_bands
    from .network import PAD, PlaneJob, iter_network, network_call, units_per_plane
    from .plan import make_plan
    from .sink import ArraySink, ZarrSink
    from .source import open_source
    from .tiling import plan_tiles

    if options is None:
        options = DenoiseOptions.from_kwargs(**option_values)
    elif option_values:
        raise TypeError("pass either options= or keyword options, not both")
    if not isinstance(image, (str, os.PathLike)) and not is_labels_layer(image):
        data = layer_data(image)
        if isinstance(data, np.ndarray) or not hasattr(data, "shape"):
            as_image(image)  # in-memory input: every check (NaN included) before any work
    source = open_source(image, axes=axes)
    settings = options.resolve()
    if plan is None:
        plan = make_plan(source, time_map, sigma)
    elif time_map is not None or sigma is not None:
        raise ValueError("pass time_map / sigma or plan=, not both")
    dtype = _output_dtype(settings, source.dtype)
    metadata = settings.metadata(noise=plan.describe_noise())
    if out is None:
        sink = ArraySink(source, dtype, with_std=settings.samples > 1)
    else:
        job = {"input": source.describe(), **metadata}
        sink = ZarrSink(
            out,
            source,
            dtype,
            job,
            overwrite=overwrite,
            pyramid=pyramid,
            with_std=settings.samples > 1,
        )
    output = sink.image if out is None else sink.array  # (filled as planes finish)
    if settings.threads is not None:
        torch.set_num_threads(settings.threads)

    net = settings.loaded.net
    if options.precision == "float32":
        from ..model.fast import FastTimeUNet

        if isinstance(net, FastTimeUNet):  # float32 asked for: the network underneath
            net = net.net
    if settings.device.type != "cpu":
        import copy

        net = copy.deepcopy(net).to(settings.device)
    call = network_call(net, settings.device, settings.amp)
    sig_max = settings.sigma_max
    h, w = source.plane_shape
    members, samples, steps = settings.ensemble, settings.samples, settings.steps
    tile_size = settings.choose_tile_size((h, w))
    tiles = plan_tiles((h, w), tile_size)
    read_h, read_w = tiles[0].read_shape
    # (a tile's padded size: PAD on each side and the rounding to the network's multiple, with a
    # margin)
    padded = (read_h + 2 * PAD + 2 * settings.multiple) * (read_w + 2 * PAD + 2 * settings.multiple)
    batch = settings.choose_batch_size(padded)
    group_size = int(max(1, min(MAX_GROUP, batch // max(1, len(tiles) * members))))
    layout = sink.layout({"tile_size": tile_size, "batch_size": batch, "group_size": group_size})
    if layout["tile_size"] != tile_size:  # a resumed job keeps its recorded layout
        tiles = plan_tiles((h, w), layout["tile_size"])
    tile_size, batch, group_size = layout["tile_size"], layout["batch_size"], layout["group_size"]
    auto, wiener = settings.auto_wiener, settings.wiener
    wiener_on = auto or wiener > 0
    n_bands = wiener_bands(h, w) if wiener_on else 0
    # progress units of the non-local step per plane: its bands, and for "auto" the
    # hard-thresholding pass, the 4 × 4 Wiener pass and the SURE probes (one more network
    # pass, thresholding and both Wiener steps); counted whether a plane runs it or skips it
    n_fine = wiener_bands(h, w, patch=FINE_PATCH) if auto else 0
    probe_units = len(tiles) * steps + 3 * n_bands + 2 * n_fine if auto else 0
    wiener_units = n_bands + probe_units
    per_plane = units_per_plane(len(tiles), members, samples, steps) + wiener_units
    n_planes = source.n_planes
    total = n_planes * per_plane
    groups = [list(range(g, min(g + group_size, n_planes))) for g in range(0, n_planes, group_size)]
    finished = sink.done_planes()
    todo = [(g, numbers) for g, numbers in enumerate(groups) if not set(numbers) <= finished]
    done = (n_planes - sum(len(numbers) for _, numbers in todo)) * per_plane
    planes_done = n_planes - sum(len(numbers) for _, numbers in todo)
    weights: list[float] = []
    ht_weights: list[float] = []
    fine_weights: list[float] = []
    report = None
    net_args = dict(
        call=call,
        tile_size=tile_size,
        batch_size=batch,
        multiple=settings.multiple,
        device=settings.device,
        sampler=settings.sampler,
        steps=steps,
        eta=settings.eta,
        sigma_max=sig_max,
    )

    def prepare(numbers: list[int]):
        return [plan.prepare(n, source.read_plane(n), sig_max) for n in numbers]

    def counted():
        return planes_done

    # background threads pay off when there is a next group to read while the network runs,
    # and a store to write to; a single group in memory runs inline (no hand-over latency)
    reader = (
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="diffdenoise-read")
        if len(todo) > 1
        else _Inline()
    )
    writer = (
        _Inline()
        if out is None
        else ThreadPoolExecutor(max_workers=1, thread_name_prefix="diffdenoise-write")
    )
    pending_writes: list = []
    complete = False
    try:
        upcoming = reader.submit(prepare, todo[0][1]) if todo else None
        for position, (group, numbers) in enumerate(todo):
            inputs = upcoming.result()
            upcoming = (
                reader.submit(prepare, todo[position + 1][1]) if position + 1 < len(todo) else None
            )
            generator = _noise_generator(settings, group)
            jobs, impulse_planes, group_writes = [], [], []
            for item in inputs:
                report = item.report if item.report is not None else report
                y_t = torch.from_numpy(np.ascontiguousarray(item.observation)).view(1, 1, h, w)
                tau_t = torch.from_numpy(np.ascontiguousarray(item.tau)).view(1, 1, h, w)
                has_impulses = item.impulses is not None and bool(item.impulses.any())
                if has_impulses:
                    miss = torch.from_numpy(item.impulses).view(1, 1, h, w)
                    y_t = fill_missing(y_t, miss)
                    tau_t = torch.where(
                        miss, torch.full_like(tau_t, IMPULSE_TIME * SIGMA_MAX / sig_max), tau_t
                    )
                impulse_planes.append(has_impulses)
                # ("auto" keeps the identity copy's estimate: the probe's pass is compared with it)
                jobs.append(PlaneJob(y_t, tau_t, members, samples, want_first=auto))
            on_tile = None
            if out is None and len(tiles) > 1:  # in memory: tiles shown as they finish

                def on_tile(j, tile, estimate, inputs=inputs, jobs=jobs):
                    item, region = inputs[j], tile.keep
                    tau = jobs[j].tau[0, 0].numpy()[region]
                    values = _in_image_units(estimate, tau, item.plane[region], item.intensity)
                    sink.write_region(item.number, region, values)

            estimates = yield from _relay(
                iter_network(
                    jobs, generator=generator, progress=(done, total), on_tile=on_tile, **net_args
                ),
                counted,
                n_planes,
                h * w,
                output,
            )
            done += len(numbers) * units_per_plane(len(tiles), members, samples, steps)
            for item, job, estimate, has_impulses in zip(inputs, jobs, estimates, impulse_planes):
                tau = job.tau[0, 0].numpy()
                mean = estimate.mean
                if wiener_on and not has_impulses:
                    mean, plane_weights = yield from _relay(
                        _iter_nonlocal(
                            item.observation,
                            tau,
                            mean,
                            estimate.first,
                            job.tau,
                            auto=auto,
                            wiener=wiener,
                            sig_max=sig_max,
                            n_bands=n_bands,
                            n_fine=n_fine,
                            progress=(done, total),
                            run_probe=lambda y_probe, t, at, generator=generator: iter_network(
                                [PlaneJob(y_probe, t)],
                                generator=generator,
                                progress=at,
                                **net_args,
                            ),
                            probe_units=len(tiles) * steps,
                            device=settings.device,
                        ),
                        counted,
                        n_planes,
                        h * w,
                        output,
                    )
                    if plane_weights is not None:
                        weights.append(plane_weights[0])
                        ht_weights.append(plane_weights[1])
                        fine_weights.append(plane_weights[2])
                done += wiener_units
                image_plane = _in_image_units(mean, tau, item.plane, item.intensity)
                std = None
                if estimate.spread is not None:
                    std = estimate.spread * np.float32(item.intensity.scale)
                group_writes.append(writer.submit(sink.write, item.number, image_plane, tau, std))
                planes_done += 1
            pending_writes += group_writes
            pending_writes.append(writer.submit(_mark_done, group_writes, sink, numbers))
        for future in pending_writes:
            future.result()
        sink.finish()
        complete = True
    finally:
        reader.shutdown(wait=True, cancel_futures=True)
        writer.shutdown(wait=True, cancel_futures=not complete)
        if not complete:
            sink.abort()
    return DenoiseResult(
        output,
        getattr(sink, "std", None),
        getattr(sink, "tau", None),
        report,
        weights if auto else None,
        ht_weights if auto else None,
        fine_weights if auto else None,
        metadata,
    )


class _Inline:
    """An executor that runs each task at once, in the calling thread."""

    def submit(self, fn, *args, **kwargs) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as exc:
            future.set_exception(exc)
        return future

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        pass


def _mark_done(writes: list, sink, numbers: list[int]) -> None:
    """After the planes' data are written (the writes before it in the same queue), record them
    as finished."""
    for future in writes:
        error = future.exception()
        if error is not None:
            raise error
    sink.mark_done(numbers)


def _iter_nonlocal(
    yn,
    tau,
    mean,
    first,
    tau_t,
    *,
    auto,
    wiener,
    sig_max,
    n_bands,
    n_fine,
    progress,
    run_probe,
    probe_units,
    device,
):
    """The non-local step of one plane: a collaborative Wiener filter of the observation,
    guided by a pilot (the network's estimate; for "auto", blended with a hard-thresholding
    estimate), blended in. Yields ``(done, total)``; returns the plane and, for "auto", its
    ``(wiener, thresholding, fine-patch)`` weights."""
    import torch

    from .collaborative import PATCH, iter_collaborative_threshold, iter_collaborative_wiener

    done, total = progress
    h, w = yn.shape

    def filter_pass(filter_steps, bands: int = n_bands):
        nonlocal done
        value = yield from _counted(filter_steps, done, total)
        done += bands
        return value

    s_n = tau * np.float32(sig_max)
    noisy_px = s_n[s_n > 0]
    if not auto:
        cw = yield from filter_pass(iter_collaborative_wiener(yn, mean, s_n, device=device))
        return (1.0 - wiener) * mean + wiener * cw, None
    if noisy_px.size == 0 or min(h, w) < PATCH:
        # nothing is noisy (the network's pixels are the unchanged ones), or the plane is
        # smaller than one patch (nothing to match): the network's estimate
        return mean, (0.0, 0.0, 0.0)
    # 1. collaborative hard thresholding (BM3D's first stage), blended into the pilot by SURE:
    #    where the image repeats itself (stripes, lattices) it keeps detail the network smooths;
    # 2. the collaborative Wiener filter guided by that pilot, with 8 × 8 and with 4 × 4
    #    patches (finer detail where the noise allows), mixed by SURE;
    # 3. that Wiener estimate blended in by SURE.
    # SURE's divergence terms come from one ±1 probe, the pipeline rerun on a perturbed
    # observation: one network pass at ±SURE_EPSILON·σ (the ensemble's estimate moved by that
    # pass's change, scaled up to the filters' step), the filters at ±SURE_EPSILON_FILTERS·σ, a
    # larger step since block matching and thresholds make them jump
    probe = np.random.default_rng(SURE_PROBE_SEED).choice(np.float32([-1.0, 1.0]), size=(h, w))
    scale = float(np.median(noisy_px))
    eps = np.float32(max(SURE_EPSILON * scale, 1e-5))
    eps_f = np.float32(max(SURE_EPSILON_FILTERS * scale, 1e-5))
    yn_f = yn + eps_f * probe  # (the observation itself: impulse planes skip the step)
    ht = yield from filter_pass(iter_collaborative_threshold(yn, s_n, device=device))
    ht_f = yield from filter_pass(iter_collaborative_threshold(yn_f, s_n, device=device))
    (moved,) = yield from run_probe(
        torch.from_numpy(yn + eps * probe).view(1, 1, h, w), tau_t, (done, total)
    )
    done += probe_units
    mean_f = mean + (moved.mean - first) * (eps_f / eps)
    b = float(
        np.clip(sure_blend_weight(yn, mean, ht, mean_f, ht_f, probe, eps_f, s_n)[0], 0.0, 1.0)
    )
    pilot = (1.0 - b) * mean + b * ht
    pilot_f = (1.0 - b) * mean_f + b * ht_f
    passes = []
    for patch, bands in ((PATCH, n_bands), (FINE_PATCH, n_fine)):
        for obs, guide in ((yn, pilot), (yn_f, pilot_f)):
            passes.append(
                (
                    yield from filter_pass(
                        iter_collaborative_wiener(obs, guide, s_n, patch=patch, device=device),
                        bands,
                    )
                )
            )
    coarse, coarse_f, fine, fine_f = passes
    c = fine_patch_share(*sure_blend_weight(yn, coarse, fine, coarse_f, fine_f, probe, eps_f, s_n))
    cw = (1.0 - c) * coarse + c * fine
    cw_f = (1.0 - c) * coarse_f + c * fine_f
    weight = auto_wiener_weight(*sure_blend_weight(yn, pilot, cw, pilot_f, cw_f, probe, eps_f, s_n))
    return (1.0 - weight) * pilot + weight * cw, (weight, b, c)


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
AUTO_PRIOR = AUTO_FALLBACK
#: the least weight ``"auto"`` gives (SURE assumes white noise of a known σ, which real
#: detector noise is not; docs/design/denoiser.md)
AUTO_MIN = 0.25
#: how many variances a deviation from the prior must exceed before it counts
#: (:func:`_james_stein`)
AUTO_SHRINK = 2.0


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
    """Re-yield a ``(k, n)``-yielding generator's steps as ``(done + k, total)``; returns its
    value."""
    return relay(progress_steps, lambda step: (done + step[0], total))


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
    tile_size: int | None = None,
    batch_size: int | None = None,
    threads: int | None = None,
    output_dtype=None,
    axes: str | None = None,
    out=None,
    overwrite: bool = False,
    pyramid: bool = False,
    return_std: bool = False,
    return_details: bool = False,
):
    """Remove noise from a 2D image (or a small stack, plane by plane) with the diffusion model.

    Parameters
    ----------
    image : array, napari Image layer or path
        2D ``(rows, cols)`` or an nD stack; any integer or float dtype. numpy, dask and zarr
        arrays, napari Image layers (level 0 of a multiscale one), or a path to a TIFF, zarr or
        OME-Zarr file, read plane by plane (never whole). Every YX plane is denoised; channels
        (a ``C`` axis) are normalised separately. A dask array gives a lazy dask array back.
    time_map : array, napari Labels layer or TimeMapFile, optional
        Per-pixel diffusion start time. Floats in [0, 1] mean a noise std of
        ``t · SIGMA_MAX · scale`` (image units, ``scale`` the robust intensity range, as made by
        ``NoiseReport.time_map()``); a time-map Labels layer (Time map widget, Noise inspector)
        carries its ``levels`` and ``sigma_max`` in ``metadata["napari_diffdenoise"]
        ["time_map"]`` (other Labels layers are refused), as does a map read by
        ``noise.timemap.load_time_map``; integer arrays are levels out of 255.
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
        the preset's choice when omitted (``"fast"``: bfloat16 autocast on GPUs; on CPUs with
        native bfloat16 its own fused bfloat16 network, docs/design/fast_preset.md; everything
        else float32). Sampling arithmetic stays float32.
    seed : int, optional
        Seed for stochastic sampling (results are reproducible with a seed).
    progress : callable, optional
        Called as ``progress(done, total)`` after each network evaluation.
    tile_size : int, optional
        Largest tile processed at once (overlapping tiles are blended); default: the whole
        plane when one pass of it fits in memory, else the largest tile that does.
    batch_size : int, optional
        Tiles per network call (tiles of several planes share a call); default: from free
        memory (``torch.cuda.mem_get_info`` on CUDA); halved and retried on out-of-memory.
    threads : int, optional
        CPU threads for the network (``torch.set_num_threads``; for the whole process).
    output_dtype : dtype, optional
        Output dtype; default: the input's dtype (integers rounded and clipped).
    axes : str, optional
        Axis names such as ``"TZCYX"`` or ``"CYX"``; default: from OME metadata, the TIFF or
        the napari layer's axis labels, else the last two axes are YX.
    out : path, optional
        Write the result to this zarr store (an OME-Zarr image when the input is one) as planes
        finish, and return the zarr array. Rerunning the same job on the same store resumes
        it; a store that is not this job's is refused unless ``overwrite``.
    overwrite : bool
        Replace an existing ``out`` that is not a partial result of this job.
    pyramid : bool
        With an OME-Zarr ``out``, add downsampled levels (a multiscale pyramid).
    return_std : bool
        Also return the per-pixel std over ``samples`` (uncertainty, image units); with
        ``out``, a zarr array kept in the store (``<out>/.napari_diffdenoise/std.zarr``).
    return_details : bool
        Return a :class:`DenoiseResult` (image, std, time map used, noise report).

    Returns
    -------
    numpy.ndarray, or ``(image, std)`` with ``return_std``, or :class:`DenoiseResult`.
    """
    if return_std and samples < 2:
        raise ValueError("return_std needs samples > 1 with sampler='indi' and eta > 0")
    options = DenoiseOptions(
        model=model,
        sampler=sampler,
        steps=steps,
        eta=eta,
        samples=samples,
        ensemble=ensemble,
        wiener=wiener,
        device=device,
        precision=precision,
        seed=seed,
        tile_size=tile_size,
        batch_size=batch_size,
        output_dtype=output_dtype,
        threads=threads,
    )
    if out is None and _is_dask(layer_data(image)):
        from .lazy import denoise_lazy

        if return_std or return_details or progress is not None:
            raise ValueError(
                "a dask input gives a lazy dask result: return_std, return_details and progress "
                "are for computed results (compute the input first, or pass out= to write a store)"
            )
        return denoise_lazy(image, time_map, sigma=sigma, axes=axes, options=options)
    steps_of_work = iter_denoise(
        image,
        time_map,
        sigma=sigma,
        axes=axes,
        out=out,
        overwrite=overwrite,
        pyramid=pyramid,
        options=options,
    )
    result: DenoiseResult = run_to_end(
        steps_of_work, None if progress is None else (lambda step: progress(step[0], step[1]))
    )
    if return_details:
        return result
    if return_std:
        return result.image, result.std
    return result.image


def _is_dask(data: Any) -> bool:
    module = type(data).__module__
    return module.startswith("dask.") and hasattr(data, "map_blocks")
