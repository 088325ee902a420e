"""Sources: what the denoiser reads, as planes, lazily.

:func:`open_source` turns numpy, dask and zarr arrays, napari Image layers (level 0 of a
multiscale one), TIFF files (read through tifffile's zarr view, never whole), zarr stores
(v2 and v3) and OME-Zarr images into a :class:`Source`: an array-like with named axes. Every
YX plane is denoised; the other axes (T, Z, C, ...) only index planes, and channels (``C``)
are normalised separately.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._validation import (
    check_image_layout,
    check_not_rgb,
    check_plane_size,
    is_labels_layer,
    is_layer,
    layer_data,
)

__all__ = ["Source", "open_source", "TIFF_SUFFIXES", "ZARR_SUFFIXES"]

TIFF_SUFFIXES = (".tif", ".tiff")
ZARR_SUFFIXES = (".zarr", ".ome.zarr")
#: the axis letters understood (others are accepted as extra plane axes)
KNOWN_AXES = "TCZYX"


@dataclass
class Source:
    """An nD image read plane by plane.

    ``array`` supports ``shape``, ``dtype`` and numpy indexing (numpy, zarr, dask, tifffile's
    zarr view). ``axes`` names every axis (``"TZCYX"``); ``scale`` and ``units`` come from OME
    metadata or the napari layer where known.
    """

    array: Any
    axes: str
    name: str = "image"
    path: Path | None = None
    scale: tuple[float, ...] | None = None
    units: tuple[str | None, ...] | None = None
    channel_names: list[str] | None = None
    ome: dict | None = None
    #: objects kept open as long as the source is used (a TiffFile)
    _keep: list = field(default_factory=list, repr=False)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.array.shape)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.array.dtype)

    @property
    def y_axis(self) -> int:
        return self.axes.index("Y")

    @property
    def x_axis(self) -> int:
        return self.axes.index("X")

    @property
    def plane_shape(self) -> tuple[int, int]:
        return self.shape[self.y_axis], self.shape[self.x_axis]

    @property
    def plane_axes(self) -> list[int]:
        """The axes that index planes (all but Y and X), in order."""
        return [i for i, a in enumerate(self.axes) if a not in "YX"]

    @property
    def planes_shape(self) -> tuple[int, ...]:
        return tuple(self.shape[i] for i in self.plane_axes)

    @property
    def n_planes(self) -> int:
        return int(np.prod(self.planes_shape)) if self.planes_shape else 1

    @property
    def is_lazy(self) -> bool:
        return not isinstance(self.array, np.ndarray)

    def plane_index(self, number: int) -> tuple[int, ...]:
        """The plane-axes coordinates of plane ``number`` (C order over the plane axes)."""
        return (
            tuple(int(i) for i in np.unravel_index(number, self.planes_shape))
            if self.planes_shape
            else ()
        )

    def indexer(self, coords: tuple[int, ...]) -> tuple:
        """A numpy index selecting the YX plane at plane-axes ``coords``."""
        index: list[Any] = [slice(None)] * len(self.axes)
        for axis, c in zip(self.plane_axes, coords):
            index[axis] = c
        return tuple(index)

    def channel(self, coords: tuple[int, ...]) -> int:
        """The channel of the plane at ``coords`` (0 without a C axis)."""
        if "C" not in self.axes:
            return 0
        return int(coords[self.plane_axes.index(self.axes.index("C"))])

    @property
    def n_channels(self) -> int:
        return self.shape[self.axes.index("C")] if "C" in self.axes else 1

    def planes_of_channel(self, channel: int) -> list[int]:
        """Numbers of the planes of one channel."""
        return [n for n in range(self.n_planes) if self.channel(self.plane_index(n)) == channel]

    def read_plane(self, number: int) -> np.ndarray:
        """Plane ``number`` as a 2D numpy array (rows = Y, columns = X); checked for NaN."""
        plane = np.asarray(self.array[self.indexer(self.plane_index(number))])
        if self.x_axis < self.y_axis:
            plane = plane.T
        if plane.dtype.kind == "f" and not np.isfinite(plane).all():
            raise ValueError(
                f"{self.name}: plane {self.plane_index(number)} contains NaN or infinite values; "
                "replace them first (e.g. np.nan_to_num) so they are not mistaken for noise"
            )
        return plane

    def describe(self) -> dict[str, Any]:
        """What identifies the input of a job (recorded with zarr outputs)."""
        return {
            "name": self.name,
            "path": None if self.path is None else str(self.path),
            "shape": list(self.shape),
            "dtype": str(self.dtype),
            "axes": self.axes,
        }


def _check_axes(axes: str, ndim: int, shape: tuple[int, ...]) -> str:
    if not isinstance(axes, str):
        raise TypeError(f"axes must be a string such as 'TZCYX', got {axes!r}")
    axes = axes.upper()
    if len(axes) != ndim:
        raise ValueError(
            f"axes {axes!r} do not fit the data: {len(axes)} letters for {ndim} dimensions (shape {shape})"
        )
    if len(set(axes)) != len(axes):
        raise ValueError(f"axes {axes!r} name an axis twice")
    if "Y" not in axes or "X" not in axes:
        raise ValueError(f"axes {axes!r} must contain Y and X (the plane's rows and columns)")
    return axes


def _default_axes(ndim: int) -> str:
    """The last two axes are YX; before them T, Z, then unnamed plane axes."""
    lead = {0: "", 1: "Z", 2: "TZ"}.get(ndim - 2)
    if lead is None:
        lead = "".join(f"{i}" for i in range(ndim - 4)) + "TZ"
    return lead + "YX"


def _open_tiff(path: Path) -> tuple[Any, str, list]:
    import tifffile
    import zarr

    try:
        tif = tifffile.TiffFile(path)
        series = tif.series[0]
        array = zarr.open(series.aszarr(), mode="r")
    except Exception as exc:
        raise OSError(f"{path}: not a readable TIFF image ({exc})") from exc
    axes = series.axes.upper().replace("S", "C").replace("I", "Z").replace("Q", "Z")
    if len(set(axes)) != len(axes):
        axes = _default_axes(len(axes))
    return array, axes, [tif]


def _ome_metadata(attrs: dict) -> dict | None:
    if "multiscales" in attrs:
        return dict(attrs)
    if isinstance(attrs.get("ome"), dict) and "multiscales" in attrs["ome"]:  # NGFF 0.5
        return dict(attrs["ome"])
    return None


def _open_zarr(path: Path) -> dict[str, Any]:
    import zarr

    try:
        node = zarr.open(str(path), mode="r")
    except Exception as exc:
        raise OSError(f"{path}: not a readable zarr store ({exc})") from exc
    if isinstance(node, zarr.Array):
        return {"array": node}
    ome = _ome_metadata(node.attrs.asdict())
    if ome is None:
        arrays = list(node.array_keys())
        if len(arrays) != 1:
            raise ValueError(
                f"{path}: a zarr group with {len(arrays)} arrays and no OME-Zarr metadata; "
                "pass the array itself (e.g. path/to/store.zarr/<array>)"
            )
        return {"array": node[arrays[0]]}
    multiscale = ome["multiscales"][0]
    dataset = multiscale["datasets"][0]
    array = node[dataset["path"]]
    out: dict[str, Any] = {"array": array, "ome": ome}
    axes = multiscale.get("axes")
    if axes:
        names = [a["name"] if isinstance(a, dict) else str(a) for a in axes]
        out["axes"] = "".join(n[0].upper() for n in names)
        out["units"] = tuple(a.get("unit") if isinstance(a, dict) else None for a in axes)
    for transform in dataset.get("coordinateTransformations", []):
        if transform.get("type") == "scale":
            out["scale"] = tuple(float(s) for s in transform["scale"])
    channels = ome.get("omero", {}).get("channels") or node.attrs.get("omero", {}).get("channels")
    if channels:
        out["channel_names"] = [c.get("label", str(i)) for i, c in enumerate(channels)]
    return out


def _layer_axes(layer: Any) -> str | None:
    labels = [str(a).upper() for a in getattr(layer, "axis_labels", ()) or ()]
    if labels and all(len(a) == 1 for a in labels) and len(set(labels)) == len(labels):
        return "".join(labels)
    return None


def open_source(image: Any, *, axes: str | None = None, name: str | None = None) -> Source:
    """A :class:`Source` for an array, a napari Image layer or a path (TIFF, zarr, OME-Zarr).

    ``axes`` (e.g. ``"TZCYX"``, ``"CYX"``) names the axes; by default they come from OME
    metadata, the TIFF's series or the napari layer's axis labels, else the last two axes are
    YX. Raises ``FileNotFoundError`` for missing paths, ``OSError`` for unreadable files,
    ``TypeError``/``ValueError`` for data that is not a numeric image or axes that do not fit.
    Nothing is read but metadata.
    """
    if isinstance(image, Source):
        return image
    info: dict[str, Any] = {}
    keep: list = []
    path = None
    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file or directory")
        lower = path.name.lower()
        if lower.endswith(TIFF_SUFFIXES):
            array, tiff_axes, keep = _open_tiff(path)
            info = {"array": array, "axes": tiff_axes}
        elif path.is_dir() or lower.endswith(ZARR_SUFFIXES):
            info = _open_zarr(path)
        else:
            raise ValueError(
                f"{path}: unsupported file type; the denoiser reads TIFF (.tif, .tiff) and "
                "zarr / OME-Zarr (.zarr) stacks"
            )
        data = info["array"]
        name = name or path.name
    elif is_labels_layer(image):
        raise TypeError(
            f"{image.name!r} is a Labels layer (a segmentation or a time map), not an image; "
            "pass an Image layer (a time map goes in as time_map=)"
        )
    elif is_layer(image):
        data = layer_data(image)
        check_not_rgb(image, tuple(np.shape(data)), name=repr(image.name))
        info = {"axes": _layer_axes(image), "scale": tuple(float(s) for s in image.scale)}
        units = getattr(image, "units", None)
        if units is not None:
            info["units"] = tuple(str(u) for u in units)
        name = name or image.name
    else:
        data = image
    if data is None or isinstance(data, (str, bytes)):
        raise TypeError(f"image must be a numeric array, got {type(data).__name__}")
    if not (hasattr(data, "shape") and hasattr(data, "dtype") and hasattr(data, "__getitem__")):
        data = np.asarray(data)
    shape = tuple(int(s) for s in data.shape)
    check_image_layout(shape, data.dtype)
    if axes is None:
        given = info.get("axes")
        axes = given if given and len(given) == len(shape) else None
        if axes is None and not is_layer(image) and path is None:
            check_not_rgb(image, shape)
    axes = _check_axes(axes or _default_axes(len(shape)), len(shape), shape)
    source = Source(
        array=data,
        axes=axes,
        name=name or "image",
        path=path,
        scale=info.get("scale") if info.get("scale") and len(info["scale"]) == len(shape) else None,
        units=info.get("units") if info.get("units") and len(info["units"]) == len(shape) else None,
        channel_names=info.get("channel_names"),
        ome=info.get("ome"),
        _keep=keep,
    )
    check_plane_size(
        source.plane_shape,
        extra=f" (image of shape {tuple(shape)}, axes {axes})",
    )
    return source
