"""Qt dock widgets for napari (registered in ``napari.yaml``); no numerics here.

- :class:`~napari_diffdenoise._widgets.noise_inspector.NoiseInspectorWidget`: "Noise inspector".
- :class:`~napari_diffdenoise._widgets.denoiser.DenoiserWidget`: "Denoiser".
- :class:`~napari_diffdenoise._widgets.timemap.TimeMapWidget`: "Time map".
- :class:`~napari_diffdenoise._widgets.finetune.FineTuneWidget`: "Fine-tune".
- ``_base``: what the dock widgets share: layer pickers (``LayerPicker``) and the image-input
  filter, status and errors, workers and progress, viewer connections, preview layers.
- ``_layers``: where a layer goes (``Placement``), the roles of the layers the plugin adds, ROI
  masks, the σ-map and time-map layers; ``_combo``: combo-box refill, layer lookup and the
  status line; ``_plots``: the variance-versus-mean plot.

Modules here import Qt (through ``qtpy``) and napari; nothing in the library imports them.
"""
