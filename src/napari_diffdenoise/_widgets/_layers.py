"""napari layer helpers for the dock widgets: ROI masks from Shapes, σ-map and time-map layers.

Only layer plumbing lives here (names, transforms, colormaps, metadata); every number shown or
stored comes from the public API (:func:`napari_diffdenoise.estimate_noise` and friends).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .._validation import check_int

if TYPE_CHECKING:  # pragma: no cover
    import napari
    import napari.layers
    from napari.utils.colormaps import DirectLabelColormap

__all__ = [
    "image_plane_index",
    "layer_array",
    "shapes_to_mask",
    "add_sigma_map_layer",
    "add_time_map_layer",
    "describe_time_map_layer",
    "time_map_colormap",
    "time_map_features",
    "placement",
    "TIME_MAP_COLORMAP",
]

#: matplotlib colormap sampled per level for the time-map Labels layer.
TIME_MAP_COLORMAP = "viridis"
#: colour of labels above the level count (not a valid time).
INVALID_LEVEL_COLOR = (1.0, 0.0, 1.0, 1.0)


def layer_array(layer: napari.layers.Image) -> Any:
    """The full-resolution data of an Image layer (level 0 of a multiscale pyramid)."""
    return layer.data[0] if getattr(layer, "multiscale", False) else layer.data


def image_plane_index(viewer: napari.Viewer, layer: napari.layers.Image) -> tuple[int, ...]:
    """Data indices of the leading (non-yx) axes of ``layer`` at the viewer's current position.

    Goes through the layer's world→data transform, so layers with a scale or translate (or with
    fewer dimensions than the viewer) map to the plane that is actually on screen.
    """
    data = layer_array(layer)
    lead_shape = data.shape[:-2]
    if not lead_shape:
        return ()
    coords = np.asarray(layer.world_to_data(viewer.dims.point), dtype=float)
    lead = coords[: len(lead_shape)]
    return tuple(int(np.clip(round(c), 0, n - 1)) for c, n in zip(lead, lead_shape))


def _yx_affine(layer: Any) -> tuple[np.ndarray, np.ndarray]:
    """Scale and translate of the last two (y, x) axes of a layer."""
    scale = np.asarray(layer.scale, dtype=float)[-2:]
    translate = np.asarray(layer.translate, dtype=float)[-2:]
    return scale, translate


def shapes_to_mask(shapes: napari.layers.Shapes, image: napari.layers.Image) -> np.ndarray:
    """Rasterise every shape of ``shapes`` into a boolean (rows, cols) mask on ``image``'s grid.

    Shapes drawn on any slice of an nD layer are projected onto the yx plane, so one ROI applies
    to every plane. Scale and translate differences between the two layers are honoured
    (rotation and shear are not). Raises ``ValueError`` when there is no shape or the shapes
    do not overlap the image.
    """
    from napari.layers import Shapes

    plane_shape = tuple(int(n) for n in layer_array(image).shape[-2:])
    if len(shapes.data) == 0:
        raise ValueError(
            f"ROI layer {shapes.name!r} has no shapes: draw a rectangle or polygon on it, "
            "or set ROI to 'none'"
        )
    s_scale, s_translate = _yx_affine(shapes)
    i_scale, i_translate = _yx_affine(image)
    yx_shapes = []
    for vertices in shapes.data:
        yx = np.asarray(vertices, dtype=float)[:, -2:]
        yx_shapes.append((yx * s_scale + s_translate - i_translate) / i_scale)
    flat = Shapes(yx_shapes, shape_type=list(shapes.shape_type), ndim=2)
    masks = np.asarray(flat.to_masks(mask_shape=plane_shape), dtype=bool)
    mask = masks.any(axis=0) if masks.ndim == 3 else masks
    if not mask.any():
        raise ValueError(
            f"the shapes in {shapes.name!r} do not overlap image {image.name!r}; "
            "draw the ROI on top of the image"
        )
    return mask


def placement(source: napari.layers.Image, ndim: int) -> dict[str, Any]:
    """scale/translate/units kwargs that put an ``ndim``-D result on ``source``'s last axes."""
    kwargs = {
        "scale": tuple(source.scale[-ndim:]),
        "translate": tuple(source.translate[-ndim:]),
    }
    units = getattr(source, "units", None)
    if units is not None:
        kwargs["units"] = tuple(units[-ndim:])
    return kwargs


def add_sigma_map_layer(
    viewer: napari.Viewer,
    sigma_map: np.ndarray,
    source: napari.layers.Image,
    *,
    metadata: dict[str, Any] | None = None,
) -> napari.layers.Image:
    """Add the per-pixel noise level map (image units) as an Image layer over ``source``."""
    sigma_map = np.asarray(sigma_map, dtype=np.float32)
    lo, hi = float(sigma_map.min()), float(sigma_map.max())
    if not hi > lo:
        hi = lo + max(abs(lo), 1.0) * 1e-3
    name = f"{source.name} σ map"
    meta = {"source": source.name, "units": "image intensity units"}
    meta.update(metadata or {})
    layer = viewer.add_image(
        sigma_map,
        name=name,
        colormap="magma",
        contrast_limits=(lo, hi),
        metadata=meta,
        **placement(source, sigma_map.ndim),
    )
    return layer


def time_map_colormap(levels: int) -> DirectLabelColormap:
    """A continuous (viridis) colormap for a time-map Labels layer with levels 0..``levels``.

    Level 0 (t = 0, "leave this pixel alone") is transparent; level L maps to viridis(L/levels);
    any other value (above ``levels``, which :func:`~napari_diffdenoise.levels_to_time_map`
    rejects) is drawn in magenta so stray paint stands out.
    """
    from matplotlib import colormaps
    from napari.utils.colormaps import DirectLabelColormap

    levels = check_int(levels, "levels", low=1)
    ramp = colormaps[TIME_MAP_COLORMAP](np.linspace(0.0, 1.0, levels + 1))
    color_dict: dict[int | None, Any] = {
        int(level): tuple(float(c) for c in ramp[level]) for level in range(1, levels + 1)
    }
    color_dict[0] = (0.0, 0.0, 0.0, 0.0)
    color_dict[None] = INVALID_LEVEL_COLOR
    return DirectLabelColormap(color_dict=color_dict, name=f"time map ({TIME_MAP_COLORMAP})")


def time_map_features(levels: int, sigma_max: float, units: str) -> dict[str, np.ndarray]:
    """The features table of a time-map Labels layer: one row per level (``index`` 0..levels)
    with the σ it stands for, so napari's status bar and tooltip show "σ (units): 12.3" for the
    label under the cursor, not a bare number."""
    index = np.arange(int(levels) + 1)
    return {
        "index": index,
        f"σ ({units})": np.round(index / float(levels) * float(sigma_max), 6),
        "τ": np.round(index / float(levels), 6),
    }


def describe_time_map_layer(
    layer: napari.layers.Labels,
    *,
    levels: int,
    sigma_max: float,
    units: str,
    source: str | None = None,
) -> None:
    """Make ``layer`` a time map: its metadata entry (``metadata["napari_diffdenoise"]
    ["time_map"]``, :func:`napari_diffdenoise.noise.timemap.time_map_metadata`), the σ features
    shown on hover and the continuous colormap (level 0 transparent)."""
    from napari_diffdenoise.noise.timemap import time_map_metadata

    meta = dict(layer.metadata)
    meta.update(time_map_metadata(levels, sigma_max, units=units, source=source))
    layer.metadata = meta
    layer.features = time_map_features(levels, sigma_max, units)
    layer.colormap = time_map_colormap(levels)


def add_time_map_layer(
    viewer: napari.Viewer,
    levels_array: np.ndarray,
    source: napari.layers.Image,
    *,
    levels: int,
    sigma_max: float,
    units: str | None = None,
    metadata: dict[str, Any] | None = None,
    name: str | None = None,
) -> napari.layers.Labels:
    """Add an integer time map (τ = level / ``levels``) as a paintable Labels layer over
    ``source`` (its scale, translate and units on the last axes).

    The layer is recognised as a time map by ``metadata["napari_diffdenoise"]["time_map"]``
    (``levels``, ``sigma_max`` in image units, ``units``, ``source``), which is all the denoiser
    needs to read the painted levels back; hovering shows each label's σ in ``units`` (default:
    from the image's dtype, :func:`napari_diffdenoise.noise.timemap.intensity_units`).
    """
    from napari_diffdenoise.noise.timemap import intensity_units, time_map_metadata

    data = np.asarray(levels_array)
    if data.dtype.kind not in "ui":
        raise TypeError(f"time-map levels must be integers, got {data.dtype}")
    if units is None:
        units = intensity_units(layer_array(source).dtype, source.metadata)
    meta = {"source": source.name}
    meta.update(metadata or {})
    # described before it is added, so that pickers see a time map when it is inserted
    meta.update(time_map_metadata(levels, sigma_max, units=units, source=source.name))
    return viewer.add_labels(
        data,
        name=name or f"{source.name} time map",
        opacity=0.6,
        metadata=meta,
        features=time_map_features(levels, sigma_max, units),
        colormap=time_map_colormap(levels),
        **placement(source, data.ndim),
    )
