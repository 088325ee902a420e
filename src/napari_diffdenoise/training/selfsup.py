"""Noisy-only adaptation: learn a camera's noise from its noisy images alone.

The method (measured against the alternatives in ``docs/design/adaptation.md``):

1. **Fit a structured noise model** to every noisy image (:mod:`.noisemodel`): the pixel noise
   that :func:`~napari_diffdenoise.estimate_noise` describes (Gaussian, Poisson-Gaussian,
   spatially variant) plus per-row and per-column offsets (sCMOS-like stripes).
2. **Pseudo-clean images**: the base model's estimate of each image after a classical destripe
   (rows/columns that the fit found), run at the fitted pixel-noise level.
3. **Training pairs**: a pseudo-clean patch plus *fresh* noise drawn from the fitted model is
   the input, the pseudo-clean patch the target, and the time map is the one the engine's blind
   estimate gives the real image (``denoise`` feeds exactly that), so the model learns the
   noise's structure where it will be used. A share of every batch is replayed with white
   Gaussian noise at its exact time, so a painted σ keeps its meaning.
4. **Quality without ground truth**: Stein's unbiased risk estimate (SURE) of the mean squared
   error on held-out *real* noisy images, with the fitted noise covariance (pixel variance plus
   row and column blocks) and a Monte-Carlo divergence (Ramani et al. 2008), reported as a PSNR.
   It estimates the error of what the user gets (the real image, the blind time map) and decides
   which checkpoint is kept; the base model is scored first, so it wins when nothing is gained.
   Where the fit finds no stripes (plain Gaussian or Poisson-Gaussian pixel noise, which the
   bundled model was trained on) there is no structure to learn and SURE was measured not to
   track the truth on real frames: the task asks the loop to keep the base (``min_gain``).

Torch is imported inside functions; the images are read plane by plane when the task is prepared
(on the first call, with the model the run starts from).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .._validation import looks_rgb
from .tasks import P_WHITE, WHITE_RANGE

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["NoisyOnlyTask", "make_noisy_task", "sure_mse"]

#: side of the training patches (smaller images use their own size, rounded down to 8)
PATCH = 96
#: smallest image side that a patch is cut from
MIN_SIDE = 32
#: validation images are centre-cropped to at most this side (SURE costs three passes)
VAL_SIDE = 256
#: relative size of the SURE probe (a share of the noise itself)
PROBE = 0.01
#: pixels of the planes prepared at most, beyond MIN_PLANES planes (a big stack: planes evenly
#: spread over it)
MAX_PIXELS = 1 << 22
MIN_PLANES = 4
#: a single plane holds out at least this many bottom rows for validation
VAL_MIN_ROWS = 64


@dataclass
class _Image:
    """One prepared noisy plane, normalised: observation, blind time map, the pixel-noise std
    map and stripe levels of the fitted model, the pseudo-clean image (once the base model is
    known) and the rows that training patches come from."""

    y: np.ndarray
    tau: np.ndarray
    white: np.ndarray
    row: float
    col: float
    noise: Any  # StructuredNoise, image units
    intensity: Any  # IntensityRange
    train_rows: int
    clean: np.ndarray | None = None


def _sources(images: Any) -> list[tuple[Any, str]]:
    """``images`` in any accepted form → ``[(array, label)]`` (arrays not yet read)."""
    from pathlib import Path

    from .._validation import check_image_layout, is_layer, layer_data
    from .pairs import _folder_entries, open_file

    if images is None:
        raise ValueError("no data: pass noisy= images (arrays, layers, a folder or a stack)")
    if isinstance(images, (str, os.PathLike)):
        path = Path(images)
        if not path.exists():
            raise FileNotFoundError(f"noisy images: {path} does not exist")
        if path.is_file() or path.suffix.lower() == ".zarr":  # one stack, read lazily
            items = [(open_file(path), path.name)]
        else:
            entries = _folder_entries(path, "noisy")
            if not entries:
                raise ValueError(f"the noisy folder {images} holds no images")
            items = [(open_file(p), name) for name, p in entries.items()]
    elif is_layer(images) or hasattr(images, "shape"):
        items = [(layer_data(images), getattr(images, "name", "image"))]
    elif isinstance(images, (list, tuple)):
        if not images:
            raise ValueError("no data: the list of noisy images is empty")
        items = [
            (layer_data(im), f"image {i}" + (f" ({im.name!r})" if is_layer(im) else ""))
            for i, im in enumerate(images)
        ]
    else:
        raise TypeError(
            "noisy must be an array, a napari layer, a list of them, a folder or a stack; got "
            f"{type(images).__name__}"
        )
    out = []
    for arr, label in items:
        if not hasattr(arr, "shape"):
            arr = np.asarray(arr)
        if looks_rgb(tuple(arr.shape)):
            raise ValueError(f"{label} is a colour (RGB) image; pass one channel")
        check_image_layout(tuple(arr.shape), arr.dtype, name=str(label))
        out.append((arr, str(label)))
    return out


def _read_plane(arr: Any, k: int, label: str) -> np.ndarray:
    lead = np.unravel_index(k, arr.shape[:-2]) if arr.ndim > 2 else ()
    plane = np.array(arr[tuple(int(i) for i in lead)], dtype=np.float64)  # a copy
    if not np.isfinite(plane).all():
        raise ValueError(
            f"{label}: plane {k} contains NaN or infinite values; replace them first "
            "(e.g. np.nan_to_num)"
        )
    if min(plane.shape) < MIN_SIDE:
        raise ValueError(
            f"{label}: planes of {plane.shape[0]} × {plane.shape[1]} pixels are too small "
            f"to adapt on; at least {MIN_SIDE} × {MIN_SIDE}"
        )
    return plane


def _multiple(model) -> int:
    """The size multiple of ``model``'s inputs (8 where it does not say)."""
    return int(getattr(getattr(model, "config", None), "multiple", 8))


def _run(model, y: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    """One direct pass of ``model`` over whole images ``(B, 1, H, W)``, padded to the network's
    size multiple as the engine pads its tiles."""
    from ..engine.network import PAD, _padded

    h, w = y.shape[-2:]
    yp, tp = (_padded(t, h, w, _multiple(model)) for t in (y, tau))
    out = model(yp, yp, tp)
    return out[..., PAD : PAD + h, PAD : PAD + w]


def sure_mse(
    model,
    y: torch.Tensor,
    tau: torch.Tensor,
    probe: torch.Tensor,
    trace: float,
) -> float:
    """SURE estimate of the mean squared error of ``model``'s one-step estimate of ``y``.

    ``probe`` is one draw of the noise (its covariance Σ is the noise model's) and ``trace`` is
    ``tr(Σ)``: ``(‖f(y) − y‖² − tr Σ + 2·tr(Σ J_f)) / N``, with ``tr(Σ J_f)`` estimated as
    ``bᵀ(f(y + εb) − f(y − εb)) / 2ε`` (unbiased for Gaussian noise of covariance Σ).
    """
    import torch

    with torch.no_grad():
        f = _run(model, y, tau).double()
        eps = PROBE
        plus = _run(model, y + eps * probe, tau).double()
        minus = _run(model, y - eps * probe, tau).double()
        div = float((probe.double() * (plus - minus)).sum()) / (2 * eps)
        residual = float(((f - y.double()) ** 2).sum())
    return (residual - trace + 2.0 * div) / y.numel()


def _dihedral(arrays: list[np.ndarray], k: int, flip: bool) -> list[np.ndarray]:
    out = [np.rot90(a, k) for a in arrays]
    return [np.ascontiguousarray(a[:, ::-1] if flip else a) for a in out]


class NoisyOnlyTask:
    """Adaptation to noisy images alone (see the module docstring for the method).

    An :class:`~.tasks.AdaptationTask`: :meth:`loss` gives the training loss of one batch,
    :meth:`validate` the ground-truth-free figure (``"figure"``, a SURE PSNR in dB of the
    held-out noisy data: higher is better). The data are read and checked, and the noise models
    fitted, when the task is built; the pseudo-clean images are computed on the first call,
    with the model the run starts from.

    Parameters
    ----------
    images
        2D or nD arrays (planes are samples), napari layers, a list of them, or a folder
        (TIFF, PNG, ``.npy``, zarr). Never modified.
    validation_fraction
        Share of the planes held out for the SURE figure; a single plane holds out its bottom
        rows (at least ``VAL_MIN_ROWS``).
    seed
        Seeds the split, the SURE probes and (with the loop's generator) the patches.
    device
        Where the pseudo-clean images are computed (the loop passes its device).
    patch
        Side of the training patches (smaller planes use their own size, rounded to 8).
    p_white
        Share of the patches trained on white Gaussian noise at its exact time.
    max_pixels
        Pixels prepared at most (beyond ``MIN_PLANES`` planes); planes evenly spread.
    references
        Clean images, one per plane (benchmarks, tests): ``validate`` then also reports
        ``"true_psnr"`` (affine-fitted) of the held-out windows. Never used for training.
    """

    kind = "noisy"
    figure_name = "SURE PSNR (dB)"

    def __init__(
        self,
        images: Any,
        *,
        validation_fraction: float = 0.1,
        seed: int | None = 0,
        patch_size: int = PATCH,
        p_white: float = P_WHITE,
        max_pixels: int = MAX_PIXELS,
        references: list[Any] | None = None,
    ) -> None:
        from ..intensity import SIGMA_MAX
        from ..noise.stack import pick_planes

        if not 0.0 <= float(validation_fraction) < 1.0:
            raise ValueError(f"validation_fraction must lie in [0, 1), got {validation_fraction}")
        if not 0.0 <= p_white <= 1.0:
            raise ValueError(f"p_white must lie in [0, 1], got {p_white}")
        self.sigma_max = SIGMA_MAX  # the loop sets the base model's
        self.seed = 0 if seed is None else int(seed)
        self.p_white = float(p_white)
        self.patch = int(patch_size)
        self.multiple = 8  # the base network's size multiple (prepare() reads it)
        sources = _sources(images)
        planes = [
            (arr, int(k), label)
            for arr, label in sources
            for k in range(int(np.prod(arr.shape[:-2], dtype=np.int64)) if arr.ndim > 2 else 1)
        ]
        plane_px = max(int(np.prod(arr.shape[-2:])) for arr, _ in sources)
        max_planes = max(MIN_PLANES, int(max_pixels) // plane_px)
        picks = np.arange(len(planes))
        if len(planes) > max_planes:  # a big stack: planes evenly spread over it
            picks = pick_planes(picks, max_planes)
            planes = [planes[int(j)] for j in picks]
        n = len(planes)
        order = np.random.default_rng(self.seed).permutation(n)
        n_val = 0 if validation_fraction == 0 else max(1, math.ceil(validation_fraction * n))
        self.split_rows = n_val >= n
        self.images: list[_Image] = []
        for arr, k, label in planes:
            self.images.append(self._prepare_plane(_read_plane(arr, k, label)))
        if self.split_rows:  # one plane: its bottom rows are held out when it is tall enough
            item = self.images[0]
            h = item.y.shape[0]
            val_rows = max(VAL_MIN_ROWS, round(validation_fraction * h))
            if h - val_rows >= min(self.patch, MIN_SIDE):
                item.train_rows = h - val_rows
            self.train_ids, self.val_ids = list(range(n)), [int(order[0])]
        elif n_val == 0:  # nothing held out: the figure is computed on the training planes
            self.train_ids = self.val_ids = list(range(n))
        else:
            self.val_ids = sorted(int(i) for i in order[:n_val])
            self.train_ids = sorted(int(i) for i in order[n_val:])
        self.held_out = n_val > 0 and (
            not self.split_rows or self.images[0].train_rows < self.images[0].y.shape[0]
        )
        #: the figure gain a checkpoint needs over the base (the loop reads it): none where
        #: the fit found stripes; infinite (the base is kept) where it found plain pixel noise,
        #: which the bundled model was trained on and where SURE was measured not to track
        #: the true PSNR (docs/design/adaptation.md)
        self.structured = any(it.row > 0 or it.col > 0 for it in self.images)
        self.min_gain = 0.0 if self.structured else math.inf
        self._n_sources = len(sources)
        self._val: list[tuple[Any, Any, Any, float]] | None = None
        self._references = None
        if references is not None:
            references = (
                [references[int(j)] for j in picks]
                if len(references) > len(picks)
                else list(references)
            )
            if len(references) != len(planes) or any(
                np.shape(r) != it.y.shape for r, it in zip(references, self.images)
            ):
                raise ValueError("references must be one clean 2D image per noisy plane")
            self._references = [np.asarray(r, dtype=np.float64) for r in references]

    # --- preparation -------------------------------------------------------------------
    def _prepare_plane(self, plane: np.ndarray) -> _Image:
        from ..intensity import robust_range
        from ..noise.estimate import estimate_noise
        from .noisemodel import fit_structured_noise

        intensity = robust_range(plane)
        scale = np.float32(intensity.scale)
        blind = estimate_noise(plane.astype(np.float32))  # what denoise() feeds the model
        noise = fit_structured_noise(plane)
        return _Image(
            y=intensity.normalise(plane),
            tau=np.asarray(blind.start_sigma_map, dtype=np.float32) / scale,  # σ, normalised
            white=np.asarray(noise.white.start_sigma_map, dtype=np.float32) / scale,
            row=noise.row_sigma / float(scale),
            col=noise.col_sigma / float(scale),
            noise=noise,
            intensity=intensity,
            train_rows=plane.shape[0],
        )

    def prepare(self, model, device) -> None:
        """The pseudo-clean targets: the base model's estimate of every destriped plane, at the
        fitted pixel-noise level (the loop calls this once with the base model, before a
        resumed run loads its checkpoint; ``loss``/``validate`` call it with the model they
        are given if nobody did)."""
        import torch

        from .noisemodel import destripe

        if self.images[0].clean is not None:
            return
        self.multiple = _multiple(model)
        with torch.no_grad():
            for item in self.images:
                noise, intensity = item.noise, item.intensity
                flat = destripe(
                    intensity.denormalise(item.y),
                    rows=noise.row_sigma > 0,
                    columns=noise.col_sigma > 0,
                )
                y = torch.from_numpy(intensity.normalise(flat))[None, None].to(device)
                tau = torch.from_numpy(np.clip(item.white / self.sigma_max, 0.0, 1.0))
                clean = _run(model, y, tau[None, None].to(device))
                item.clean = clean.float().cpu().numpy()[0, 0]
                if noise.white.kind == "poisson":  # the pixel noise follows the signal
                    std = noise.white_std(intensity.denormalise(item.clean)) / intensity.scale
                    item.white = std.astype(np.float32)

    def _validation(self) -> list[tuple[Any, Any, Any, float]]:
        """Fixed held-out windows with their fixed SURE probes and the probes' trace."""
        import torch

        if self._val is not None:
            return self._val
        rng = np.random.default_rng(self.seed + 7)
        out = []
        self._truth: list[np.ndarray] = []
        for i in self.val_ids:
            item = self.images[i]
            h, w = item.y.shape
            top = item.train_rows if item.train_rows < h else 0
            s0, s1 = min(h - top, VAL_SIDE), min(w, VAL_SIDE)
            r0, c0 = top + (h - top - s0) // 2, (w - s1) // 2
            window = (slice(r0, r0 + s0), slice(c0, c0 + s1))
            white = item.white[window].astype(np.float64)
            probe = white * rng.standard_normal((s0, s1))
            probe += item.row * rng.standard_normal((s0, 1))
            probe += item.col * rng.standard_normal((1, s1))
            trace = float((white**2).sum() + s0 * s1 * (item.row**2 + item.col**2))

            def tensor(a: np.ndarray) -> Any:
                return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))[None, None]

            tau = np.clip(item.tau[window] / self.sigma_max, 0.0, 1.0)
            out.append((tensor(item.y[window]), tensor(tau), tensor(probe), trace))
            if self._references is not None:
                self._truth.append(self._references[i][window])
        self._val = out
        return out

    # --- the AdaptationTask protocol -----------------------------------------------------
    def summary(self) -> dict[str, Any]:
        rows = [float(it.noise.row_sigma) for it in self.images]
        cols = [float(it.noise.col_sigma) for it in self.images]
        return {
            "kind": self.kind,
            "method": (
                "structured noise model (pixel noise + row/column stripes) fitted per plane; "
                "pseudo-clean targets (base model on the destriped plane) with fresh noise "
                f"from the fitted model ({1 - self.p_white:.0%}) and white Gaussian noise at "
                f"its exact time ({self.p_white:.0%}); figure: SURE PSNR on held-out noisy data"
            ),
            "sources": self._n_sources,
            "planes": len(self.images),
            "training_planes": len(self.train_ids),
            "validation": (
                "training data (no hold-out)"
                if not self.held_out
                else "bottom rows held out"
                if self.split_rows
                else f"{len(self.val_ids)} held-out planes"
            ),
            "noise": self.images[0].noise.describe(),
            "structured_noise": self.structured,
            "note": (
                "stripes found: the checkpoint with the best SURE PSNR is kept"
                if self.structured
                else "no stripes found: plain pixel noise, which the base model already "
                "covers; the base is kept"
            ),
            "pixel_noise_kind": self.images[0].noise.white.kind,
            "row_sigma_median": round(float(np.median(rows)), 5),
            "col_sigma_median": round(float(np.median(cols)), 5),
        }

    def _batch(self, batch_size: int, rng: np.random.Generator):
        x0s, ys, taus = [], [], []
        sizes = [min(self.images[i].train_rows, self.images[i].y.shape[1]) for i in self.train_ids]
        p = min(self.patch, min(sizes) // self.multiple * self.multiple)
        for _ in range(int(batch_size)):
            item = self.images[self.train_ids[rng.integers(len(self.train_ids))]]
            assert item.clean is not None
            r = rng.integers(item.train_rows - p + 1)
            c = rng.integers(item.y.shape[1] - p + 1)
            crop = (slice(r, r + p), slice(c, c + p))
            clean, sigma, white = _dihedral(
                [item.clean[crop], item.tau[crop], item.white[crop]],
                int(rng.integers(4)),
                bool(rng.random() < 0.5),
            )
            if rng.random() < self.p_white:  # replay: white noise at its exact time
                level = rng.uniform(*WHITE_RANGE)
                noise = level * rng.standard_normal((p, p))
                sigma = np.full((p, p), level, dtype=np.float32)
            else:  # the fitted model; stripes along the camera's own rows and columns
                noise = white * rng.standard_normal((p, p))
                noise += item.row * rng.standard_normal((p, 1))
                noise += item.col * rng.standard_normal((1, p))
            x0s.append(clean)
            ys.append(clean + noise)
            taus.append(np.clip(sigma / self.sigma_max, 1e-4, 1.0))
        return (np.stack(a)[:, None].astype(np.float32) for a in (x0s, ys, taus))

    def loss(self, model, batch_size: int, generator: torch.Generator, device) -> torch.Tensor:
        """Charbonnier loss of ``model`` on one batch of synthesised pairs (see the module
        docstring), on points of the straight path with extra mass at the observation."""
        import torch

        from ..diffusion.forward import sample_train_time, straight_path

        self.prepare(model, device)
        seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
        x0, y, tau = (
            torch.from_numpy(a).to(device)
            for a in self._batch(batch_size, np.random.default_rng(seed))
        )
        if generator.device.type != tau.device.type:
            generator = None  # (a CPU generator with a GPU batch: torch's own stream)
        t = sample_train_time(tau, p_at_observation=0.8, p_smooth_field=0.2, generator=generator)
        pred = model(straight_path(x0, y, t, tau), y, t)
        return torch.sqrt((pred.float() - x0) ** 2 + 1e-6).mean()

    def validate(self, model, device) -> dict[str, float]:
        """SURE PSNR (dB, normalised units) of ``model``'s one-step estimate on the held-out
        noisy windows, as ``{"figure": ..., "sure_mse": ...}``."""
        self.prepare(model, device)
        mses = [
            sure_mse(model, y.to(device), tau.to(device), probe.to(device), trace)
            for y, tau, probe, trace in self._validation()
        ]
        mse = float(np.mean(mses))  # (one PSNR of the mean: a window whose estimate is near
        # or below zero cannot pin the figure, as a mean of per-window PSNRs would let it)
        out = {"figure": 10.0 * math.log10(1.0 / max(mse, 1e-10)), "sure_mse": mse}
        if self._references is not None:
            out["true_psnr"] = self._true_psnr(model, device)
        return out

    def _true_psnr(self, model, device) -> float:
        """Affine-fitted PSNR of the held-out windows against the references (benchmarks and
        tests: where the truth is known), data range = the reference's max − min."""
        import torch

        psnrs = []
        with torch.no_grad():
            for (y, tau, _, _), ref in zip(self._validation(), self._truth):
                f = _run(model, y.to(device), tau.to(device)).double().cpu().numpy()[0, 0]
                design = np.stack([f.ravel(), np.ones(f.size)], axis=1)
                coef = np.linalg.lstsq(design, ref.ravel(), rcond=None)[0]
                mse = float(np.mean((design @ coef - ref.ravel()) ** 2))
                span = float(ref.max() - ref.min()) or 1.0
                psnrs.append(10.0 * math.log10(span**2 / max(mse, 1e-20)))
        return float(np.mean(psnrs))


def make_noisy_task(
    images: Any,
    *,
    validation_fraction: float = 0.1,
    seed: int | None = 0,
    **options: Any,
) -> NoisyOnlyTask:
    """The noisy-only adaptation task for ``images``: 2D or nD arrays (planes are samples),
    napari layers, a list of them, or a folder (TIFF, PNG, ``.npy``, zarr). Read and checked
    here (``ValueError`` / ``TypeError`` naming the image and what to do); ``options`` go to
    :class:`NoisyOnlyTask`. A task built beforehand (a :class:`NoisyOnlyTask`, e.g. with
    ``references=`` for a benchmark) is returned as it is."""
    if isinstance(images, NoisyOnlyTask):
        return images
    return NoisyOnlyTask(images, validation_fraction=validation_fraction, seed=seed, **options)
