"""Sinks: where denoised planes go.

- :class:`ArraySink`: numpy arrays in memory (small inputs; the default without ``out=``).
- :class:`ZarrSink`: a chunked, compressed zarr store on disk, written as planes finish (an
  OME-Zarr image when the input was one, with its axes and scale, and a multiscale pyramid on
  request; with ``samples > 1`` the spread over samples beside it, in the job's records). The
  store's attributes record the model, its hash, the parameters and the package version. Each finished group of planes leaves a completion record *after* its data, so a
  rerun of the same job on the same store skips what is done and gives the same result as an
  uninterrupted run; a store that is not a matching partial job is never touched unless
  ``overwrite=True``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from .source import Source

__all__ = ["ArraySink", "ZarrSink", "JobMismatch", "JOB_KEY"]

#: the attribute (and the folder inside the store) holding the job's records
JOB_KEY = "napari_diffdenoise"
#: largest chunk side written (planes larger than this are split into chunks)
CHUNK_SIDE = 2048
#: the zarr array of the spread over samples, in the job's records folder of a store
STD_NAME = "std.zarr"


class JobMismatch(FileExistsError):
    """``out`` exists and is not a partial result of this job."""


def cast_plane(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``x`` in ``dtype``: integers rounded and clipped to their range, floats as they are."""
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        return np.clip(np.rint(x), info.min, info.max).astype(dtype)
    return x.astype(dtype, copy=False)


class ArraySink:
    """Planes into in-memory arrays of the source's shape (and the time map, and the spread)."""

    def __init__(self, source: Source, dtype: np.dtype, with_std: bool) -> None:
        self.source = source
        self.dtype = dtype
        self.image = np.zeros(source.shape, dtype=dtype)  # (zeros: shown while filling)
        self.tau = np.empty(source.shape, dtype=np.float32)
        self.std = np.empty(source.shape, dtype=np.float32) if with_std else None

    def done_planes(self) -> set[int]:
        return set()

    def layout(self, chosen: dict[str, int]) -> dict[str, int]:
        return chosen

    def _put(
        self,
        target: np.ndarray,
        number: int,
        values: np.ndarray,
        region: tuple[slice, slice] = (slice(None), slice(None)),
    ) -> None:
        """Write ``values`` into ``region`` (rows, columns) of plane ``number`` of ``target``."""
        plane = target[self.source.indexer(self.source.plane_index(number))]  # (a view)
        if self.source.x_axis < self.source.y_axis:
            plane[region[1], region[0]] = values.T
        else:
            plane[region] = values

    def write(
        self, number: int, image: np.ndarray, tau: np.ndarray, std: np.ndarray | None
    ) -> None:
        self._put(self.image, number, cast_plane(image, self.dtype))
        self._put(self.tau, number, tau)
        if self.std is not None and std is not None:
            self._put(self.std, number, std)

    def write_region(self, number: int, region: tuple[slice, slice], image: np.ndarray) -> None:
        """A provisional ``region`` (rows, columns) of plane ``number``, shown while the plane
        runs; the plane's :meth:`write` replaces it."""
        self._put(self.image, number, cast_plane(image, self.dtype), region)

    def mark_done(self, numbers: list[int]) -> None:
        pass

    def finish(self) -> None:
        pass

    def abort(self) -> None:
        pass


def _version() -> str:
    from .. import __version__

    return __version__


class ZarrSink:
    """Planes into a zarr store at ``path`` (see the module docstring).

    ``job`` identifies the job (input, model hash, parameters): a store whose recorded job
    differs is refused (``JobMismatch``) unless ``overwrite``.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        source: Source,
        dtype: np.dtype,
        job: dict[str, Any],
        *,
        overwrite: bool = False,
        pyramid: bool = False,
        with_std: bool = False,
    ) -> None:
        import zarr

        self.path = Path(path)
        self.source = source
        self.dtype = dtype
        self.job = json.loads(json.dumps(job))  # plain JSON values
        self.pyramid = pyramid
        self.ome = source.ome is not None
        self._check_path(overwrite)
        self.records = self.path / f".{JOB_KEY}"
        resume = self.path.exists() and self._recorded_job() == self.job
        if self.path.exists() and not resume:
            if not overwrite:
                what = (
                    "a different job's output"
                    if self._recorded_job() is not None
                    else "not an output of this plugin"
                )
                raise JobMismatch(
                    f"{self.path} exists and is {what}; choose another output or pass "
                    "overwrite=True (--overwrite) to replace it"
                )
            shutil.rmtree(self.path)
        self.resumed = resume
        if resume:
            root = zarr.open_group(str(self.path), mode="r+") if self.ome else None
            self.array = (
                root["0"] if root is not None else zarr.open_array(str(self.path), mode="r+")
            )
            self._set_status("running")
        else:
            self.array = self._create()
        (self.records / "done").mkdir(parents=True, exist_ok=True)
        #: the spread over samples (``samples > 1``), float32, beside the job's records:
        #: ``<out>/.napari_diffdenoise/std.zarr``
        self.std = None
        if with_std:
            std_path = self.records / STD_NAME
            self.std = (
                zarr.open_array(str(std_path), mode="r+")
                if resume and std_path.exists()
                else zarr.create_array(
                    str(std_path),
                    shape=self.array.shape,
                    chunks=self.array.chunks,
                    dtype="float32",
                    fill_value=0,
                    zarr_format=2,
                    overwrite=True,
                )
            )

    # ------------------------------------------------------------------ setup
    def _check_path(self, overwrite: bool) -> None:
        path = self.path
        if self.source.path is not None:
            src = self.source.path.resolve()
            if path.resolve() == src or src in path.resolve().parents:
                raise ValueError(
                    f"out {path} is inside the input {self.source.path}; write elsewhere"
                )
            if path.resolve() in src.parents:
                raise ValueError(
                    f"out {path} contains the input {self.source.path}; write elsewhere"
                )
        if not path.parent.is_dir():
            raise FileNotFoundError(f"the folder of out, {path.parent}, does not exist")
        if path.exists() and not path.is_dir():
            raise FileExistsError(f"out {path} exists and is a file, not a zarr store")

    def _recorded_job(self) -> dict | None:
        try:
            return json.loads((self.path / f".{JOB_KEY}" / "job.json").read_text())
        except (OSError, ValueError):
            return None

    def _attrs(self, status: str) -> dict[str, Any]:
        return {**self.job, "status": status, "version": _version()}

    def _create(self):
        import zarr

        from .._atomic import atomic_write

        shape = self.source.shape
        chunks = tuple(
            min(CHUNK_SIDE, s) if axis in "YX" else 1 for axis, s in zip(self.source.axes, shape)
        )
        self.path.mkdir()
        self.records.mkdir()
        text = json.dumps(self.job, indent=1)
        atomic_write(self.records / "job.json", lambda tmp: tmp.write_text(text))
        if self.ome:
            root = zarr.open_group(str(self.path), mode="w", zarr_format=2)
            array = root.create_array(
                "0", shape=shape, chunks=chunks, dtype=self.dtype, fill_value=0
            )
            root.attrs.update(
                {"multiscales": self._multiscales(1), JOB_KEY: self._attrs("running")}
            )
            if "omero" in (self.source.ome or {}):
                root.attrs["omero"] = self.source.ome["omero"]
            return array
        array = zarr.create_array(
            str(self.path),
            shape=shape,
            chunks=chunks,
            dtype=self.dtype,
            fill_value=0,
            zarr_format=2,
        )
        array.attrs.update({JOB_KEY: self._attrs("running")})
        return array

    def _multiscales(self, levels: int) -> list[dict]:
        source = self.source
        axes = []
        kinds = {"T": "time", "C": "channel", "Z": "space", "Y": "space", "X": "space"}
        names = {"T": "t", "C": "c", "Z": "z", "Y": "y", "X": "x"}
        for i, a in enumerate(source.axes):
            entry = {"name": names.get(a, a.lower()), "type": kinds.get(a, "space")}
            if source.units and source.units[i]:
                entry["unit"] = source.units[i]
            axes.append(entry)
        scale = list(source.scale) if source.scale else [1.0] * len(source.axes)
        datasets = []
        for level in range(levels):
            factor = [2.0**level if a in "YX" else 1.0 for a in source.axes]
            datasets.append(
                {
                    "path": str(level),
                    "coordinateTransformations": [
                        {"type": "scale", "scale": [s * f for s, f in zip(scale, factor)]}
                    ],
                }
            )
        name = (source.ome or {}).get("multiscales", [{}])[0].get("name", source.name)
        return [{"version": "0.4", "name": f"{name} denoised", "axes": axes, "datasets": datasets}]

    # ------------------------------------------------------------------ writing
    def _set_status(self, status: str) -> None:
        import zarr

        if self.ome:
            root = zarr.open_group(str(self.path), mode="r+")
            root.attrs[JOB_KEY] = self._attrs(status)
        else:
            self.array.attrs[JOB_KEY] = self._attrs(status)

    def layout(self, chosen: dict[str, int]) -> dict[str, int]:
        """The tiling and batching of the job: recorded when it starts, and on a resume the
        recorded one (free memory may differ; the same layout gives the same result)."""
        from .._atomic import atomic_write

        record = self.records / "layout.json"
        if self.resumed:
            try:
                return {k: int(v) for k, v in json.loads(record.read_text()).items()}
            except (OSError, ValueError):
                pass
        text = json.dumps(chosen)
        atomic_write(record, lambda tmp: tmp.write_text(text))
        return chosen

    def done_planes(self) -> set[int]:
        """Numbers of the planes whose completion is recorded."""
        folder = self.records / "done"
        done = set()
        for entry in folder.iterdir() if folder.is_dir() else ():
            if entry.name.isdigit():
                done.add(int(entry.name))
        return done

    def write(
        self, number: int, image: np.ndarray, tau: np.ndarray, std: np.ndarray | None
    ) -> None:
        plane = cast_plane(image, self.dtype)
        index = self.source.indexer(self.source.plane_index(number))
        flip = self.source.x_axis < self.source.y_axis
        self.array[index] = plane.T if flip else plane
        if self.std is not None and std is not None:
            self.std[index] = np.asarray(std, np.float32).T if flip else std

    def mark_done(self, numbers: list[int]) -> None:
        """Record planes as finished (after their data was written)."""
        for n in numbers:
            (self.records / "done" / str(n)).touch()

    def finish(self) -> None:
        if self.pyramid and self.ome:
            self._write_pyramid()
        self._set_status("complete")

    def abort(self) -> None:
        """Leave the store as a resumable partial job (its status says so)."""

    def _write_pyramid(self, min_side: int = 64) -> None:
        import zarr

        root = zarr.open_group(str(self.path), mode="r+")
        level, previous = 1, root["0"]
        yx = [i for i, a in enumerate(self.source.axes) if a in "YX"]
        while min(previous.shape[i] for i in yx) // 2 >= min_side:
            shape = tuple(s // 2 if i in yx else s for i, s in enumerate(previous.shape))
            chunks = tuple(min(c, s) for c, s in zip(previous.chunks, shape))
            current = root.create_array(
                str(level),
                shape=shape,
                chunks=chunks,
                dtype=previous.dtype,
                fill_value=0,
                overwrite=True,
            )
            lead = [i for i in range(len(shape)) if i not in yx]
            for coords in np.ndindex(*[shape[i] for i in lead]):
                index: list[Any] = [slice(None)] * len(shape)
                for axis, c in zip(lead, coords):
                    index[axis] = c
                plane = np.asarray(previous[tuple(index)], dtype=np.float32)
                h, w = plane.shape[0] // 2 * 2, plane.shape[1] // 2 * 2
                small = plane[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
                current[tuple(index)] = cast_plane(small, np.dtype(previous.dtype))
            previous, level = current, level + 1
        root.attrs["multiscales"] = self._multiscales(level)
