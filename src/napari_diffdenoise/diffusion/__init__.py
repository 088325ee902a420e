"""The diffusion process on the straight path between a clean and a noisy image.

- :mod:`.forward`: the training-time states ``x_t`` (the straight path, and the path with
  fresh noise mixed in).
- :mod:`.schedule`: per-pixel schedules, every pixel from its own start time to 0 in K steps.
- :mod:`.samplers`: the reverse samplers (``direct``, ``origin``, ``cold``, ``indi``).
- :mod:`.impulses`: salt-and-pepper pixels filled and started at their own time.

The equations are in ``docs/method.md``. torch only; no Qt or napari.
"""
