"""The noise engine: simulate noise, estimate it, derive per-pixel diffusion-time maps.

Pure numpy/scipy (no Qt, napari or torch). Public entry points, re-exported lazily by
:mod:`napari_diffdenoise`: :func:`.simulate.add_noise`, :func:`.estimate.estimate_noise`,
:class:`.report.NoiseReport` and the time-map helpers of :mod:`.timemap`. The method is
described in ``docs/noise.md``.
"""
