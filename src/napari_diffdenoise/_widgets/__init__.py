"""Qt dock widgets for napari (registered in ``napari.yaml``); no numerics here.

- :class:`~napari_diffdenoise._widgets.noise_inspector.NoiseInspectorWidget`: "Noise inspector".

Modules here import Qt (through ``qtpy``) and napari; nothing in the library imports them.
"""
