"""The plan of a job: intensity normalisation and each plane's noise level.

Computed the same way by every entry point (API, widget, CLI, dask), so that they agree to
float rounding:

- **intensity**: one robust range per channel, from at most 8 planes of that channel evenly
  spread over the stack (``intensity.robust_range``), so a large stack is never read whole;
- **noise**: per plane, from ``sigma`` (image units), a time map (floats in [0, 1], or integer
  levels of a painted napari time-map Labels layer, whose ``levels`` and ``sigma_max`` are in
  ``metadata["napari_diffdenoise"]["time_map"]``: other Labels layers are refused), or, in
  blind mode, ``estimate_noise`` of the plane itself. A 2D map applies to every plane; an nD
  map with the stack's shape is used as is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._validation import is_labels_layer, layer_data, time_map_info
from ..intensity import SIGMA_MAX, IntensityRange, robust_range
from ..noise.stack import pick_planes
from .source import Source

__all__ = ["Plan", "PlaneInput", "make_plan", "SAMPLE_PLANES"]

#: planes per channel read to set the intensity range
SAMPLE_PLANES = 8


@dataclass
class PlaneInput:
    """One plane ready for the network: normalised observation, time map, impulse mask."""

    number: int
    observation: np.ndarray  # float32, normalised
    tau: np.ndarray  # float32 in [0, 1]
    impulses: np.ndarray | None  # bool mask of salt-and-pepper pixels (blind mode)
    report: Any | None  # the NoiseReport (blind mode)
    intensity: IntensityRange
    plane: np.ndarray  # the plane as read (pixels with τ = 0 are copied from it)


@dataclass
class Plan:
    source: Source
    intensities: list[IntensityRange]
    #: ("sigma", array-like) in image units, ("time", float array), ("levels", int array,
    #: levels, sigma_max in image units or None), or None for blind mode
    noise: tuple | None

    def describe_noise(self) -> dict[str, Any]:
        """What identifies the noise input of a job: the kind, a scalar's value or a map's
        shape and SHA-256 (recorded with zarr outputs: a resumed job must use the same)."""
        if self.noise is None:
            return {"kind": "blind"}
        kind, values = self.noise[0], self.noise[1]
        out: dict[str, Any] = {"kind": kind}
        if np.ndim(values) == 0:
            out["value"] = float(values)
        else:
            import hashlib

            array = np.ascontiguousarray(np.asarray(values))
            out["shape"] = list(array.shape)
            out["sha256"] = hashlib.sha256(array.tobytes()).hexdigest()
        if kind == "levels":
            out["levels"], out["sigma_max"] = self.noise[2], self.noise[3]
        return out

    def intensity(self, number: int) -> IntensityRange:
        return self.intensities[self.source.channel(self.source.plane_index(number))]

    def _map_plane(self, values: Any, number: int) -> np.ndarray:
        """The plane of a 2D or full-stack map for plane ``number``."""
        arr = values
        if np.ndim(arr) == 0:
            return np.full(self.source.plane_shape, float(arr), dtype=np.float32)
        if tuple(np.shape(arr)) == self.source.plane_shape:
            return np.asarray(arr)
        plane = np.asarray(arr[self.source.indexer(self.source.plane_index(number))])
        return plane.T if self.source.x_axis < self.source.y_axis else plane

    def sigma_plane(self, number: int) -> np.ndarray | None:
        """The plane's σ map in image units, or None (blind mode: estimated from the plane)."""
        if self.noise is None:
            return None
        kind = self.noise[0]
        if kind == "sigma":
            return self._map_plane(self.noise[1], number).astype(np.float32)
        if kind == "time":
            scale = np.float32(SIGMA_MAX * self.intensity(number).scale)
            return self._map_plane(self.noise[1], number).astype(np.float32) * scale
        from ..noise.timemap import levels_to_time_map

        _, levels_array, levels, sigma_max = self.noise
        t = levels_to_time_map(self._map_plane(levels_array, number), levels)
        if sigma_max is None:
            sigma_max = SIGMA_MAX * self.intensity(number).scale
        return t * sigma_max

    def prepare(self, number: int, plane: np.ndarray, sigma_max_model: float) -> PlaneInput:
        """Normalise a plane read from the source and give it its time map."""
        intensity = self.intensity(number)
        observation = intensity.normalise(plane)
        sigma = self.sigma_plane(number)
        impulses = report = None
        if sigma is None:
            from ..noise.estimate import estimate_noise

            report = estimate_noise(plane)
            sigma = report.start_sigma_map
            if report.kind == "salt_and_pepper" and report.impulse_mask is not None:
                impulses = np.asarray(report.impulse_mask, dtype=bool)
        tau = np.asarray(sigma, dtype=np.float32) / np.float32(intensity.scale * sigma_max_model)
        return PlaneInput(
            number, observation, np.clip(tau, 0.0, 1.0), impulses, report, intensity, plane
        )


def _sample_ranges(source: Source) -> list[IntensityRange]:
    ranges = []
    for channel in range(source.n_channels):
        numbers = source.planes_of_channel(channel)
        picks = pick_planes(np.asarray(numbers), SAMPLE_PLANES)
        sample = np.stack([source.read_plane(int(n)) for n in picks])
        ranges.append(robust_range(sample if len(picks) > 1 else sample[0]))
    return ranges


def _check_map(values: Any, source: Source, name: str) -> None:
    shape = tuple(np.shape(values))
    if shape in ((), source.plane_shape, source.shape):
        return
    raise ValueError(
        f"{name} of shape {shape} matches neither a plane {source.plane_shape} nor the stack "
        f"{source.shape} (axes {source.axes})"
    )


def _noise_spec(source: Source, time_map: Any, sigma: Any) -> tuple | None:
    if time_map is not None and sigma is not None:
        raise ValueError("pass either time_map or sigma, not both")
    if time_map is not None:
        from ..noise.timemap import DEFAULT_TIME_LEVELS, TimeMapFile

        if isinstance(time_map, (str, bytes)):
            raise TypeError("time_map must be an array, a napari Labels layer or None")
        # a Labels layer must say it is a time map (levels, sigma_max), or it is refused; a
        # map read from a TIFF (load_time_map) carries the same description
        info = time_map_info(time_map) if is_labels_layer(time_map) else None
        if isinstance(time_map, TimeMapFile):
            info = {"levels": time_map.levels, "sigma_max": time_map.sigma_max}
            time_map = time_map.data
        data = layer_data(time_map)
        if not hasattr(data, "dtype"):
            data = np.asarray(data)
        kind = np.dtype(data.dtype).kind
        _check_map(data, source, "time_map")
        if info is not None:
            return ("levels", data, info["levels"], info["sigma_max"])
        if kind in "ui":
            return ("levels", data, DEFAULT_TIME_LEVELS, None)
        if kind != "f":
            raise TypeError(
                f"time_map must hold floats in [0, 1] or integer levels, got {data.dtype}"
            )
        values = np.asarray(data)
        if not np.isfinite(values).all():
            raise ValueError("time_map contains NaN or infinite values")
        if values.size and (values.min() < 0 or values.max() > 1):
            raise ValueError(
                f"time_map values must lie in [0, 1], got [{values.min():.3g}, {values.max():.3g}]"
            )
        return ("time", values)
    if sigma is not None:
        values = np.asarray(sigma)
        if values.dtype.kind not in "fiu" or isinstance(sigma, bool):
            raise TypeError("sigma must be a number or a numeric array")
        values = values.astype(np.float64)
        if not np.isfinite(values).all():
            raise ValueError("sigma contains NaN or infinite values")
        if np.any(values < 0):
            raise ValueError("sigma must be >= 0 (a noise standard deviation in image units)")
        _check_map(values, source, "sigma")
        return ("sigma", values.astype(np.float32))
    return None


def make_plan(source: Source, time_map: Any = None, sigma: Any = None) -> Plan:
    """Check the noise inputs against the source, then set the intensity ranges."""
    noise = _noise_spec(source, time_map, sigma)
    return Plan(source, _sample_ranges(source), noise)
