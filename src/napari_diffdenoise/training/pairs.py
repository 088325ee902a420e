"""Noisy/clean pairs for fine-tuning: reading, checks and the supervised :class:`PairTask`.

``pairs`` is one of

- a list of ``(noisy, clean)`` tuples of arrays or napari layers (2D, or nD: planes are samples);
- one ``(noisy, clean)`` tuple of two arrays/layers/stacks of equal shape;
- a ``(noisy_folder, clean_folder)`` tuple of paths, files matched by name (TIFF, PNG, ``.npy``,
  zarr; TIFF, ``.npy`` and zarr are read lazily, a patch at a time).

Checks, before any training: equal shapes, numeric data, planes at least one patch large,
finite values (on every in-memory array; on the sampled planes of a lazy one, and on every
patch read), misalignment (``phase_cross_correlation``, a warning with the shift), and the
clean image's offset and gain, fitted by least squares against the noisy one and removed
(averaged references are often scaled differently).

Intensities are normalised as the inference engine does it (``engine.plan``): one robust range
per noisy stack (``intensity.robust_range`` of at most 8 planes), applied to the noisy image
and to the fitted clean one. The time map of a pair is, by default, the one the engine gives the
noisy image in blind mode (``estimate_noise(plane).start_sigma_map``), so the model is trained
with the time map it is run with; ``time_map="residual"`` uses the σ of ``noisy − clean``
instead (one value per plane).
"""

from __future__ import annotations

import math
import os
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._validation import check_image_layout, is_layer, layer_data, looks_rgb
from ..intensity import SIGMA_MAX, IntensityRange, robust_range
from ..noise.stack import pick_planes
from .tasks import P_WHITE, WHITE_RANGE

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "PairTask",
    "PairSet",
    "open_file",
    "read_pairs",
    "make_pair_task",
    "TIME_MAPS",
    "PAIR_SUFFIXES",
]

#: file types read from pair folders
PAIR_SUFFIXES = (".tif", ".tiff", ".png", ".npy", ".zarr")
#: where a pair's time map comes from (see the module docstring)
TIME_MAPS = ("estimate", "residual")
#: planes read per pair for the intensity range, the gain fit and the alignment check
_SAMPLE_PLANES = 8
#: a shift (pixels) from which a pair is reported as misaligned (on noisy data the estimate
#: of an aligned pair wanders by up to ~0.3 px)
MISALIGNMENT_PX = 0.75
#: side of the held-out validation crops
VAL_CROP = 128
#: at most this many validation crops
VAL_CROPS = 8
#: prepared planes kept in memory (a big stack is read a plane at a time)
_CACHE_PLANES = 32


# --------------------------------------------------------------------------- reading


def open_file(path: Path) -> Any:
    """A lazily indexable array for a TIFF / .npy / zarr file, a numpy array for PNG."""
    suffix = path.suffix.lower()
    try:
        if suffix in (".tif", ".tiff"):
            import tifffile

            try:
                return tifffile.memmap(path, mode="r")
            except ValueError:  # compressed or tiled: read through zarr, still lazily
                import zarr

                return zarr.open(tifffile.imread(path, aszarr=True), mode="r")
        if suffix == ".npy":
            return np.load(path, mmap_mode="r", allow_pickle=False)
        if suffix == ".zarr":
            import zarr

            node = zarr.open(str(path), mode="r")
            if not hasattr(node, "shape"):  # a group (OME-Zarr): its full-resolution array
                node = node["0"]
            return node
        from skimage import io

        image = io.imread(path)
    except Exception as exc:  # noqa: BLE001 - any reader failure is the same user error
        raise ValueError(
            f"cannot read {path} ({type(exc).__name__}: {exc}); fix or remove it from the folder"
        ) from exc
    if image.ndim == 3 and looks_rgb(image.shape):
        channels = [image[..., c] for c in range(min(3, image.shape[-1]))]
        if all(np.array_equal(channels[0], c) for c in channels[1:]):
            return channels[0]  # grey stored as RGB
        raise ValueError(
            f"{path} is a colour (RGB) image; images must be single-channel: save one channel"
        )
    return image


def _folder_entries(folder: Path, role: str) -> dict[str, Path]:
    if not folder.is_dir():
        raise FileNotFoundError(
            f"the {role} folder {folder} does not exist; pass (noisy_folder, clean_folder)"
        )
    entries: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.name.startswith("."):
            continue
        if p.suffix.lower() not in PAIR_SUFFIXES or (p.suffix.lower() != ".zarr" and p.is_dir()):
            raise ValueError(
                f"{p} in the {role} folder is not a supported image "
                f"({', '.join(PAIR_SUFFIXES)}); move it out of the folder"
            )
        entries[p.name] = p
    return entries


def _pairs_from_folders(noisy_dir: Path, clean_dir: Path) -> list[tuple[Any, Any, str]]:
    noisy = _folder_entries(noisy_dir, "noisy")
    clean = _folder_entries(clean_dir, "clean")
    if not noisy:
        raise ValueError(
            f"the noisy folder {noisy_dir} holds no images ({', '.join(PAIR_SUFFIXES)})"
        )
    missing = [n for n in noisy if n not in clean]
    extra = [n for n in clean if n not in noisy]
    if missing or extra:
        what = []
        if missing:
            what.append(f"no clean image for {', '.join(missing[:5])}")
        if extra:
            what.append(f"no noisy image for {', '.join(extra[:5])}")
        raise ValueError(
            f"pairs are matched by file name between {noisy_dir} and {clean_dir}: "
            f"{'; '.join(what)}; give each noisy file a clean file of the same name"
        )
    return [(open_file(noisy[n]), open_file(clean[n]), n) for n in noisy]


def _is_path(x: Any) -> bool:
    return isinstance(x, (str, os.PathLike))


def _is_array(x: Any) -> bool:
    return is_layer(x) or hasattr(x, "shape") and hasattr(x, "dtype")


def _normalise_pairs_arg(pairs: Any) -> list[tuple[Any, Any, str]]:
    """``pairs`` in any accepted form → ``[(noisy, clean, label)]`` (arrays not yet read)."""
    if pairs is None:
        raise ValueError("no data: pass pairs=[(noisy, clean), ...] or noisy=...")
    if isinstance(pairs, (tuple, list)) and len(pairs) == 2 and all(_is_path(p) for p in pairs):
        return _pairs_from_folders(Path(pairs[0]), Path(pairs[1]))
    if isinstance(pairs, (tuple, list)) and len(pairs) == 2 and all(_is_array(p) for p in pairs):
        items = [tuple(pairs)]
    elif isinstance(pairs, (tuple, list)):
        items = list(pairs)
    else:
        raise TypeError(
            "pairs must be a list of (noisy, clean) arrays or layers, a (noisy, clean) tuple of "
            f"two stacks, or a (noisy_folder, clean_folder) tuple; got {type(pairs).__name__}"
        )
    if not items:
        raise ValueError("no data: pairs is empty; pass at least one (noisy, clean) pair")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise TypeError(f"pairs[{i}] must be a (noisy, clean) tuple, got {type(item).__name__}")
        noisy, clean = item
        label = f"pair {i}"
        if is_layer(noisy):
            label = f"pair {i} ({noisy.name!r})"
        out.append((layer_data(noisy), layer_data(clean), label))
    return out


# --------------------------------------------------------------------------- one pair


def _planes(shape: tuple[int, ...]) -> int:
    return int(np.prod(shape[:-2], dtype=np.int64)) if len(shape) > 2 else 1


def _plane(arr: Any, k: int, rows: slice = slice(None), cols: slice = slice(None)) -> np.ndarray:
    lead = np.unravel_index(k, arr.shape[:-2]) if arr.ndim > 2 else ()
    return np.asarray(arr[tuple(int(i) for i in lead) + (rows, cols)], dtype=np.float32)


@dataclass
class Pair:
    """One checked pair (two equal-shape arrays, read lazily) and what was fitted on it."""

    noisy: Any
    clean: Any
    label: str
    intensity: IntensityRange
    gain: float
    offset: float
    shift: tuple[float, float]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.noisy.shape)

    @property
    def n_planes(self) -> int:
        return _planes(self.shape)

    def read(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Plane ``k``: normalised noisy, and clean mapped onto it (float32)."""
        y = _plane(self.noisy, k)
        c = _plane(self.clean, k)
        if not (np.isfinite(y).all() and np.isfinite(c).all()):
            raise ValueError(
                f"{self.label}: plane {k} contains NaN or infinite values; replace them first "
                "(e.g. np.nan_to_num)"
            )
        x0 = c * np.float32(self.gain) + np.float32(self.offset)
        return self.intensity.normalise(y), self.intensity.normalise(x0)


def _check_pair(noisy: Any, clean: Any, label: str, patch: int) -> Pair:
    for arr, role in ((noisy, "noisy"), (clean, "clean")):
        if not hasattr(arr, "shape"):
            arr = np.asarray(arr)
        check_image_layout(arr.shape, arr.dtype, name=f"{label} {role} image")
    if not hasattr(noisy, "shape"):
        noisy = np.asarray(noisy)
    if not hasattr(clean, "shape"):
        clean = np.asarray(clean)
    if tuple(noisy.shape) != tuple(clean.shape):
        raise ValueError(
            f"{label}: the noisy image has shape {tuple(noisy.shape)} and the clean one "
            f"{tuple(clean.shape)}; a pair must have equal shapes (crop or resample one of them)"
        )
    h, w = noisy.shape[-2:]
    if min(h, w) < patch:
        raise ValueError(
            f"{label}: planes of {h} × {w} pixels are too small to cut one {patch} × {patch} "
            f"training patch from; use larger images or a smaller patch_size"
        )
    for arr, role in ((noisy, "noisy"), (clean, "clean")):
        if isinstance(arr, np.ndarray) and not isinstance(arr, np.memmap):
            if arr.dtype.kind == "f" and not np.isfinite(arr).all():
                raise ValueError(
                    f"{label}: the {role} image contains NaN or infinite values; replace them "
                    "first (e.g. np.nan_to_num)"
                )
    picks = pick_planes(np.arange(_planes(noisy.shape)), _SAMPLE_PLANES)
    ys = [_plane(noisy, int(k)) for k in picks]
    cs = [_plane(clean, int(k)) for k in picks]
    for k, y, c in zip(picks, ys, cs):
        if not (np.isfinite(y).all() and np.isfinite(c).all()):
            raise ValueError(
                f"{label}: plane {int(k)} contains NaN or infinite values; replace them first "
                "(e.g. np.nan_to_num)"
            )
    shift = _misalignment(ys[len(ys) // 2], cs[len(cs) // 2])
    if max(abs(s) for s in shift) >= MISALIGNMENT_PX:
        warnings.warn(
            f"{label}: the clean image looks shifted by (rows, columns) = "
            f"({shift[0]:+.1f}, {shift[1]:+.1f}) pixels against the noisy one; register the "
            "pair first (e.g. scipy.ndimage.shift), or the model learns to blur",
            UserWarning,
            stacklevel=4,
        )
    gain, offset = _fit_gain(ys, cs, label)
    intensity = robust_range(np.stack(ys) if len(ys) > 1 else ys[0])
    return Pair(noisy, clean, label, intensity, gain, offset, shift)


def _misalignment(y: np.ndarray, c: np.ndarray) -> tuple[float, float]:
    """Shift of ``c`` against ``y`` (pixels, rows then columns) by phase cross-correlation on
    the central 512² (at most)."""
    from skimage.registration import phase_cross_correlation

    h, w = y.shape
    r0, c0 = max(0, (h - 512) // 2), max(0, (w - 512) // 2)
    crop = (slice(r0, r0 + 512), slice(c0, c0 + 512))
    if np.ptp(c[crop]) == 0:
        return (0.0, 0.0)
    # (the shift that registers ``c`` onto ``y``; ``c`` itself is displaced by its opposite)
    # (plain cross-correlation: the phase-normalised one is thrown off by strong noise)
    shift, _, _ = phase_cross_correlation(y[crop], c[crop], upsample_factor=10, normalization=None)
    return -float(shift[0]) + 0.0, -float(shift[1]) + 0.0


def _fit_gain(ys: list[np.ndarray], cs: list[np.ndarray], label: str) -> tuple[float, float]:
    """``gain, offset`` with ``noisy ≈ gain · clean + offset`` (least squares on a sample)."""
    y = np.concatenate([a.ravel() for a in ys]).astype(np.float64)
    c = np.concatenate([a.ravel() for a in cs]).astype(np.float64)
    if y.size > 1 << 20:
        idx = np.random.default_rng(0).choice(y.size, 1 << 20, replace=False)
        y, c = y[idx], c[idx]
    var_c = c.var()
    if not var_c > 0:
        raise ValueError(f"{label}: the clean image is constant; it cannot be a reference")
    gain = float(((c - c.mean()) * (y - y.mean())).mean() / var_c)
    if not gain > 0:
        raise ValueError(
            f"{label}: the clean image does not match the noisy one (fitted gain {gain:.3g}); "
            "check that the pairs are in the right order and belong together"
        )
    return gain, float(y.mean() - gain * c.mean())


# --------------------------------------------------------------------------- the set


class PairSet:
    """Checked pairs, their planes split into training and validation, read lazily."""

    def __init__(
        self,
        pairs: Any,
        *,
        patch_size: int,
        validation_fraction: float,
        seed: int,
    ) -> None:
        items = _normalise_pairs_arg(pairs)
        self.pairs = [_check_pair(n, c, label, patch_size) for n, c, label in items]
        self.patch_size = patch_size
        planes = [(i, k) for i, p in enumerate(self.pairs) for k in range(p.n_planes)]
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(planes))
        n_val = math.ceil(validation_fraction * len(planes)) if validation_fraction > 0 else 0
        self.split_rows = False
        self.val_rows = 0
        if n_val and len(planes) - n_val < 1:
            # one plane: the bottom rows (a share ``validation_fraction``, at least one crop
            # high) are held out when the plane is tall enough, else it validates on itself
            self.train, self.val = planes, planes
            h = self.pairs[0].shape[-2]
            self.val_rows = max(patch_size, round(validation_fraction * h))
            self.split_rows = h - self.val_rows >= patch_size
        else:
            self.val = [planes[j] for j in order[:n_val]]
            self.train = [planes[j] for j in order[n_val:]]
        self.held_out = n_val > 0 and (self.split_rows or self.val != self.train)
        if not self.val:  # validation_fraction=0: the figure comes from the training planes
            self.val = list(self.train)

    def train_rows(self, i: int, k: int) -> int:
        """Rows of plane ``(i, k)`` that training patches come from."""
        h = self.pairs[i].shape[-2]
        return h - self.val_rows if self.split_rows else h

    def summary(self) -> dict[str, Any]:
        return {
            "pairs": len(self.pairs),
            "planes": sum(p.n_planes for p in self.pairs),
            "shapes": [list(p.shape) for p in self.pairs][:20],
            "training_planes": len(self.train),
            "validation_planes": len(self.val) if self.held_out else 0,
            # (pair, plane) of the held-out planes (a resumed run holds out the same)
            "held_out": [[int(i), int(k)] for i, k in self.val][:50] if self.held_out else [],
            "validation": (
                "bottom rows held out"
                if self.split_rows
                else ("held-out planes" if self.held_out else "training data (no hold-out)")
            ),
            "clean_gain": [round(p.gain, 4) for p in self.pairs][:20],
            "clean_offset": [round(p.offset, 4) for p in self.pairs][:20],
            "shift_px": [[round(s, 2) for s in p.shift] for p in self.pairs][:20],
        }


# --------------------------------------------------------------------------- the task


class PairTask:
    """Supervised fine-tuning on noisy/clean pairs (an :class:`~.tasks.AdaptationTask`).

    Loss: Charbonnier between the network's ``x0`` estimate and the clean patch, on points of
    the straight path from clean (t = 0) to noisy (t = τ_y) as in training (``method.md``), with
    extra mass at ``t = τ_y`` (the direct sampler's only step). A share ``p_white`` of every
    batch replaces the pair's noise by white Gaussian noise at its exact time on the same clean
    patch (as the noisy-only task), so a given or painted σ keeps its meaning after the model
    has learnt the pairs' noise. Validation: PSNR (normalised units, range 1) of the direct
    sampler on fixed held-out crops of the real pairs.
    """

    kind = "pairs"
    figure_name = "PSNR (dB)"

    def __init__(
        self,
        data: PairSet,
        *,
        time_map: str = "estimate",
        p_at_observation: float = 0.5,
        p_white: float = P_WHITE,
        seed: int = 0,
    ) -> None:
        if time_map not in TIME_MAPS:
            raise ValueError(f"unknown time_map {time_map!r}; choose one of {TIME_MAPS}")
        self.data = data
        self.time_map = time_map
        self.p_at_observation = p_at_observation
        if not 0.0 <= p_white < 1.0:
            raise ValueError(f"p_white must be in [0, 1), got {p_white}")
        self.p_white = float(p_white)
        self.sigma_max = SIGMA_MAX
        self.rng = np.random.default_rng(seed + 1)
        self._cache: OrderedDict[tuple[int, int], tuple[np.ndarray, ...]] = OrderedDict()
        self._val: list[tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None
        self._sigma_note: list[float] = []

    # planes, prepared once (LRU): normalised noisy, clean, σ map (normalised units)
    def _prepared(self, i: int, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        key = (i, k)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        pair = self.data.pairs[i]
        y, x0 = pair.read(k)
        if self.time_map == "estimate":
            from ..noise.estimate import estimate_noise

            raw = _plane(pair.noisy, k)
            sigma = np.asarray(estimate_noise(raw).start_sigma_map, np.float32)
            sigma = sigma / np.float32(pair.intensity.scale)
        else:
            sigma = np.full(y.shape, np.std(y - x0), np.float32)
        if len(self._sigma_note) < 64:
            self._sigma_note.append(float(np.median(sigma)))
        entry = (y, x0, np.broadcast_to(sigma, y.shape).astype(np.float32))
        self._cache[key] = entry
        if len(self._cache) > _CACHE_PLANES:
            self._cache.popitem(last=False)
        return entry

    def summary(self) -> dict[str, Any]:
        out = {
            "kind": self.kind,
            "method": "supervised fine-tune on noisy/clean pairs",
            "white_replay": self.p_white,
        }
        out.update(self.data.summary())
        out["time_map"] = (
            "blind estimate of the noisy image (as at inference)"
            if self.time_map == "estimate"
            else "σ of noisy − clean per plane"
        )
        if self._sigma_note:
            out["median_sigma_normalised"] = round(float(np.median(self._sigma_note)), 5)
        return out

    def _patches(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        p = self.data.patch_size
        out = np.empty((3, n, 1, p, p), np.float32)
        train = self.data.train
        for j in range(n):
            i, k = train[self.rng.integers(len(train))]
            y, x0, sigma = self._prepared(i, k)
            rows, w = self.data.train_rows(i, k), y.shape[1]
            r = self.rng.integers(rows - p + 1)
            c = self.rng.integers(w - p + 1)
            rot, flip = self.rng.integers(4), self.rng.random() < 0.5
            for a, arr in enumerate((y, x0, sigma)):
                crop = np.rot90(arr[r : r + p, c : c + p], rot)
                out[a, j, 0] = crop[:, ::-1] if flip else crop
            if self.rng.random() < self.p_white:  # replay: white noise at its exact time
                level = self.rng.uniform(*WHITE_RANGE)
                out[0, j, 0] = out[1, j, 0] + level * self.rng.standard_normal((p, p))
                out[2, j, 0] = level
        return out[0], out[1], out[2]

    def loss(self, model, batch_size, generator, device) -> torch.Tensor:
        import torch

        from ..diffusion.forward import sample_train_time, straight_path

        y, x0, sigma = (
            torch.from_numpy(a).to(device, non_blocking=True) for a in self._patches(batch_size)
        )
        tau = (sigma / self.sigma_max).clamp(0.0, 1.0)
        if generator.device.type != tau.device.type:
            generator = None  # (a CPU generator with a GPU batch: torch's own stream)
        t = sample_train_time(
            tau, p_at_observation=self.p_at_observation, p_smooth_field=0.2, generator=generator
        )
        x_t = straight_path(x0, y, t, tau)
        pred = model(x_t, y, t)
        return torch.sqrt((pred.float() - x0) ** 2 + 1e-6).mean()

    def _validation_crops(self) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        if self._val is not None:
            return self._val
        crops = []
        planes = self.data.val
        rng = np.random.default_rng(12345)
        per_plane = max(1, VAL_CROPS // max(1, len(planes)))
        for i, k in planes[:VAL_CROPS]:
            y, x0, sigma = self._prepared(i, k)
            h, w = y.shape
            top = self.data.train_rows(i, k) if self.data.split_rows else 0
            size_r = min(VAL_CROP, h - top) // 8 * 8
            size_c = min(VAL_CROP, w) // 8 * 8
            corners = {
                (top + int(rng.integers(h - top - size_r + 1)), int(rng.integers(w - size_c + 1)))
                for _ in range(per_plane)
            }
            for r, c in sorted(corners):  # (one crop where it covers the whole plane)
                window = (slice(r, r + size_r), slice(c, c + size_c))
                crops.append(tuple(a[window].copy() for a in (y, x0, sigma)))
        self._val = crops
        return crops

    def validate(self, model, device) -> dict[str, float]:
        import torch

        psnrs, losses = [], []
        for y, x0, sigma in self._validation_crops():
            yt = torch.from_numpy(y)[None, None].to(device)
            tau = (torch.from_numpy(sigma)[None, None].to(device) / self.sigma_max).clamp(0, 1)
            err = model(yt, yt, tau).double().cpu().numpy()[0, 0] - x0
            with np.errstate(over="ignore", invalid="ignore"):  # (a diverged network: NaN)
                mse = float(np.mean(err**2))
                losses.append(float(np.mean(np.sqrt(err**2 + 1e-6))))
            psnrs.append(10 * math.log10(1.0 / max(mse, 1e-12)) if math.isfinite(mse) else math.nan)
        psnr = float(np.mean(psnrs))
        return {"figure": psnr, "psnr": psnr, "loss": float(np.mean(losses))}


def read_pairs(
    pairs: Any, *, patch_size: int = 64, validation_fraction: float = 0.1, seed: int = 0
) -> PairSet:
    """Read and check ``pairs`` (any accepted form; see the module docstring)."""
    return PairSet(pairs, patch_size=patch_size, validation_fraction=validation_fraction, seed=seed)


def make_pair_task(
    pairs: Any,
    *,
    validation_fraction: float = 0.1,
    seed: int = 0,
    patch_size: int = 64,
    time_map: str = "estimate",
    p_at_observation: float = 0.8,
    p_white: float = P_WHITE,
) -> PairTask:
    """The supervised :class:`PairTask` for ``pairs`` (checked here: ``ValueError`` /
    ``FileNotFoundError`` naming the pair and what to do)."""
    data = read_pairs(
        pairs, patch_size=patch_size, validation_fraction=validation_fraction, seed=seed
    )
    return PairTask(
        data, time_map=time_map, p_at_observation=p_at_observation, p_white=p_white, seed=seed
    )
