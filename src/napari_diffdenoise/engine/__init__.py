"""Running the denoiser on images and stacks.

- :mod:`.denoise`: :func:`~.denoise.denoise` and its generator form ``iter_denoise`` (plane by
  plane, tiled, with the optional non-local step).
- :mod:`.tiling`: tile positions and blending weights.
- :mod:`.collaborative`: the non-local (BM3D-style) collaborative filters.
- :mod:`.device`: device and precision choice (CUDA, MPS, CPU).

No Qt or napari; torch is imported inside functions.
"""
