"""Qt dock widgets for napari (registered in ``napari.yaml``); no numerics here.

- :class:`~napari_diffdenoise._widgets.noise_inspector.NoiseInspectorWidget`: "Noise inspector".
- :class:`~napari_diffdenoise._widgets.denoiser.DenoiserWidget`: "Denoiser".
- :class:`~napari_diffdenoise._widgets.timemap.TimeMapWidget`: "Time map".
- ``_base``: what the dock widgets share (layer pickers, status and errors, workers, progress).
- ``_combo``, ``_layers``, ``_plots``: layer pickers and status lines, layer placement and the
  time-map Labels layer, the variance-versus-mean plot.

Modules here import Qt (through ``qtpy``) and napari; nothing in the library imports them.
"""
