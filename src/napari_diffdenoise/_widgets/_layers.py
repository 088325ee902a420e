"""napari layer helpers for the dock widgets: where a result goes (:class:`Placement`), the
roles of the layers the plugin adds, ROI masks from Shapes, σ-map and time-map layers.

Only layer plumbing lives here (names, transforms, colormaps, metadata); every number shown or
stored comes from the public API (:func:`napari_diffdenoise.estimate_noise` and friends).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .._validation import METADATA_KEY, check_int

if TYPE_CHECKING:  # pragma: no cover
    import napari
    import napari.layers
    from napari.utils.colormaps import DirectLabelColormap

__all__ = [
    "HELPER_ROLES",
    "Placement",
    "ROLE_KEY",
    "TIME_MAP_COLORMAP",
    "add_sigma_map_layer",
    "add_time_map_layer",
    "image_plane_index",
    "layer_array",
    "layer_role",
    "shapes_to_mask",
    "tagged",
    "time_map_colormap",
    "time_map_features",
]

#: matplotlib colormap sampled per level for the time-map Labels layer.
TIME_MAP_COLORMAP = "viridis"
#: colour of labels above the level count (not a valid time).
INVALID_LEVEL_COLOR = (1.0, 0.0, 1.0, 1.0)

#: ``layer.metadata[METADATA_KEY][ROLE_KEY]``: what a layer the plugin added is
ROLE_KEY = "role"
#: roles of the layers the plugin adds: a denoised result (a valid input again), and helper
#: layers that are views of another image and never an input (:data:`HELPER_ROLES`)
ROLE_DENOISED = "denoised"
ROLE_PREVIEW = "preview"
ROLE_FINE_TUNE_PREVIEW = "fine_tune_preview"
ROLE_SIGMA_MAP = "sigma_map"
ROLE_UNCERTAINTY = "uncertainty"
HELPER_ROLES = frozenset({ROLE_PREVIEW, ROLE_FINE_TUNE_PREVIEW, ROLE_SIGMA_MAP, ROLE_UNCERTAINTY})


def tagged(role: str, entry: dict[str, Any] | None = None) -> dict[str, Any]:
    """``{METADATA_KEY: {"role": role, **entry}}``: the metadata entry of a layer the plugin
    adds."""
    return {METADATA_KEY: {ROLE_KEY: role, **(entry or {})}}


def layer_role(layer: Any) -> str | None:
    """The role of a layer the plugin added (:func:`tagged`), else ``None``; layers of older
    versions carry ``"preview": True`` instead."""
    entry = (getattr(layer, "metadata", None) or {}).get(METADATA_KEY)
    if not isinstance(entry, dict):
        return None
    role = entry.get(ROLE_KEY)
    if role is None and entry.get("preview"):
        role = ROLE_PREVIEW
    return None if role is None else str(role)


@dataclass
class Placement:
    """Where a layer made from a source layer goes (scale, translate, units, axis labels,
    contrast limits), captured from the source when a run starts (so it survives the source
    being removed or moved during the run)."""

    name: str
    scale: tuple[float, ...]
    translate: tuple[float, ...]
    units: tuple[str, ...] | None
    axis_labels: tuple[str, ...] | None
    contrast_limits: tuple[float, float] | None
    #: ``unique_id`` of the source layer
    source_id: Any = None

    @classmethod
    def of(cls, layer: Any) -> Placement:
        units = getattr(layer, "units", None)
        labels = getattr(layer, "axis_labels", None)
        limits = getattr(layer, "contrast_limits", None)
        return cls(
            name=str(layer.name),
            scale=tuple(float(s) for s in layer.scale),
            translate=tuple(float(t) for t in layer.translate),
            units=None if units is None else tuple(str(u) for u in units),
            axis_labels=None if labels is None else tuple(str(a) for a in labels),
            contrast_limits=None if limits is None else (float(limits[0]), float(limits[1])),
            source_id=getattr(layer, "unique_id", None),
        )

    def kwargs(
        self, offset: tuple[float, ...] | None = None, *, ndim: int | None = None
    ) -> dict[str, Any]:
        """``add_image``/``add_labels`` keyword arguments for a layer on the source's last
        ``ndim`` axes (default: all of them), shifted by ``offset`` pixels per axis (a region
        or a plane of the source)."""
        n = len(self.scale) if ndim is None else int(ndim)
        scale = np.asarray(self.scale[-n:], dtype=float)
        translate = np.asarray(self.translate[-n:], dtype=float)
        if offset is not None:
            translate = translate + np.asarray(offset, dtype=float) * scale
        kwargs: dict[str, Any] = {
            "scale": tuple(scale.tolist()),
            "translate": tuple(translate.tolist()),
        }
        if self.units is not None:
            kwargs["units"] = self.units[-n:]
        if self.axis_labels is not None:
            kwargs["axis_labels"] = self.axis_labels[-n:]
        return kwargs


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
    meta.update(tagged(ROLE_SIGMA_MAP, {"source": source.name}))  # a view, never an input
    return viewer.add_image(
        sigma_map,
        name=name,
        colormap="magma",
        contrast_limits=(lo, hi),
        metadata=meta,
        **Placement.of(source).kwargs(ndim=sigma_map.ndim),
    )


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
    ``source`` (its scale, translate, units and axis labels on the last axes).

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
        **Placement.of(source).kwargs(ndim=data.ndim),
    )
