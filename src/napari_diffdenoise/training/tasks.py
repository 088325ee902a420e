"""What a fine-tuning run adapts the model to: the small interface between the loop and the data.

:func:`~napari_diffdenoise.training.finetune.iter_fine_tune` is one generic loop (AdamW,
warm-up and cosine decay, clipping, mixed precision, early stopping, checkpoints, saving). What
it trains *on* is an :class:`AdaptationTask`:

- ``kind="pairs"``: noisy/clean pairs, supervised (:class:`~.pairs.PairTask`, built by
  :func:`~.pairs.make_pair_task`);
- ``kind="noisy"``: noisy images alone, self-supervised (:class:`~.selfsup.NoisyOnlyTask`,
  built by :func:`~.selfsup.make_noisy_task`).

Contract (what the loop does, what a task must do):

- The task owns its data and samples its own training patches, lazily (a big stack is never
  read whole), with its own augmentation. All randomness goes through the ``generator`` it is
  given (and its own seeded numpy generator), so a seeded run is reproducible.
- Images reach the network normalised exactly as the inference engine normalises them
  (``intensity.robust_range`` per image or stack, ``engine.plan``), with time maps in units of
  the model's ``σ_max`` (``task.sigma_max``, which the loop sets from the base model before the
  first call).
- Optional method ``prepare(model, device)``: called once with the *base* model (eval mode, no
  gradients) before anything else, also when a run resumes from a checkpoint; a task that
  derives targets from the base model (noisy-only: pseudo-clean images) does it here.
- :meth:`AdaptationTask.loss` is called with the model in train mode, inside the loop's autocast
  context (bfloat16/float16 on CUDA, none on the CPU); it returns a scalar float32 tensor on
  ``device`` that the loop back-propagates. Compute the loss in float32 (``pred.float()``).
- :meth:`AdaptationTask.validate` is called with the model in eval mode under
  ``torch.no_grad()``, with no autocast, on the held-out part of the data (fixed crops, fixed
  noise: the same every call, so figures of different checkpoints compare). It returns at least
  ``"figure"``: *higher is better*; the loop keeps the checkpoint with the best figure, stops
  early when it stops improving, and keeps the base model when no checkpoint beats the base's
  figure (computed first, at step 0). Other keys (e.g. ``"loss"``, ``"psnr"``) are reported and
  saved as they are. ``figure_name`` says what the figure is, for plots and the model's JSON
  (``"PSNR (dB)"`` for pairs).
- Optional attribute ``min_gain`` (float, default 0): the improvement of the figure over the
  best so far that a checkpoint needs to count as better (the loop uses the larger of this and
  ``FineTuneSettings.min_gain``); ``math.inf`` keeps the base model whatever the figure says
  (for data where the figure cannot be trusted).
- :meth:`AdaptationTask.summary` is a JSON-able description of the data (number of images,
  shapes, noise estimate, method and its settings), stored in the saved model's JSON.

A task raises ``ValueError`` (what is wrong and what to do) when it is built from bad data, never
later in the loop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["AdaptationTask", "P_WHITE", "WHITE_RANGE"]

#: share of every training batch, in both tasks, trained on white Gaussian noise at its exact
#: time on the same clean patch ("white replay"): the adapted model keeps what a given or
#: painted σ means (measured in ``docs/design/adaptation.md``)
P_WHITE = 0.25
#: the white replay's noise levels (normalised units)
WHITE_RANGE = (0.01, 0.15)


@runtime_checkable
class AdaptationTask(Protocol):
    """Training data and objective of one fine-tuning run (see the module docstring)."""

    #: ``"pairs"`` (supervised) or ``"noisy"`` (self-supervised); a resumed run must be of the
    #: checkpoint's kind
    kind: str
    #: what ``validate()["figure"]`` is, e.g. ``"PSNR (dB)"``; higher is better
    figure_name: str
    #: the model's σ_max in normalised units (set by the loop before the first call)
    sigma_max: float

    def summary(self) -> dict[str, Any]:
        """JSON-able description of the data and method (stored in the model's JSON)."""
        ...

    def loss(
        self,
        model: torch.nn.Module,
        batch_size: int,
        generator: torch.Generator,
        device: torch.device,
    ) -> torch.Tensor:
        """The scalar loss of one training batch of ``batch_size`` patches (sampled here)."""
        ...

    def validate(self, model: torch.nn.Module, device: torch.device) -> dict[str, float]:
        """Figures on the held-out data; ``"figure"`` (higher is better) is required."""
        ...
