"""The network and its weights.

- :mod:`.unet`: ``TimeUNet``, the UNet with a per-pixel time embedding.
- :mod:`.weights`: saving and loading weights (safetensors + a JSON sidecar; never pickle).
- :mod:`.registry`: named models (bundled presets, the user's saved models, paths):
  :func:`~.registry.list_models`, :func:`~.registry.load_model`.
- ``weights/``: the bundled model files.
"""
