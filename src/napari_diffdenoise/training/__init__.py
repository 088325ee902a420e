"""Training and fine-tuning the denoiser.

- :mod:`.config`: ``TrainingConfig``, the recipe (validated field by field).
- :mod:`.data`: training images, patch sampling and the noise synthesised on them.
- :mod:`.loop`: ``iter_train`` (a progress generator) and ``train_model``.
- :mod:`.checkpoint`: checkpoints (safetensors + JSON) and warm starts.
- :mod:`.references`: ``init_from`` / ``resume_from`` values (model names, paths,
  ``recipe:<name>`` links between the stages of a recipe chain).

How the bundled model was trained: ``docs/training.md``.
"""
