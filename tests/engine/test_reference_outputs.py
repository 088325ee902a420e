"""The denoiser's outputs against stored references: a refactor must not change results.

``tests/data/reference_outputs.npz`` holds the outputs of the bundled model on small fixed
inputs (blind, known σ, integer input, a tiled stack, stochastic sampling with a seed, the
quality preset, a fixed non-local weight, salt-and-pepper noise) and the noise estimate's time
map. Where the model or the method changes on purpose, regenerate them and say so in the
commit::

    python tests/engine/test_reference_outputs.py --regenerate

On the machine that wrote them the outputs are bit-identical (the test reports how many cases
are); another CPU may round convolutions differently, hence the small tolerance.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

REFERENCE = Path(__file__).resolve().parents[1] / "data" / "reference_outputs.npz"
#: largest difference accepted on another machine, in grey levels of the 0..255 inputs
ATOL = 2e-3


def _inputs() -> dict[str, np.ndarray]:
    from skimage import data

    rng = np.random.default_rng(0)
    clean = data.camera()[200:248, 240:304].astype(np.float32)
    noisy = clean + rng.normal(0, 25, clean.shape).astype(np.float32)
    return {"clean": clean, "noisy": noisy}


def compute_outputs() -> dict[str, np.ndarray]:
    import napari_diffdenoise as dd

    inputs = _inputs()
    clean, noisy = inputs["clean"], inputs["noisy"]
    counts = (np.clip(noisy, 0, 255) * 40 + 100).astype(np.uint16)
    stack = np.stack([np.tile(noisy, (2, 2)), np.tile(noisy[::-1], (2, 2))])
    impulses = dd.add_noise(clean.astype(np.uint8), "salt_and_pepper", amount=0.1, seed=1)
    out = {
        "blind": dd.denoise(noisy),
        "sigma": dd.denoise(noisy, sigma=25.0),
        "uint16": dd.denoise(counts),
        "tiled_stack": dd.denoise(stack, tile_size=64),
        "wiener": dd.denoise(noisy, wiener=0.5),
        "quality": dd.denoise(noisy, model="quality"),
        "impulses": dd.denoise(impulses),
        "estimate_time_map": dd.estimate_noise(noisy).time_map(),
    }
    out["indi_mean"], out["indi_std"] = dd.denoise(
        noisy, sampler="indi", steps=3, eta=0.5, samples=2, seed=0, return_std=True
    )
    return out


@pytest.fixture(scope="module")
def outputs():
    return compute_outputs()


def test_outputs_match_the_references(outputs):
    reference = np.load(REFERENCE)
    assert sorted(reference.files) == sorted(outputs)
    identical = 0
    for name, expected in reference.items():
        got = outputs[name]
        assert got.dtype == expected.dtype and got.shape == expected.shape, name
        if np.array_equal(got, expected):
            identical += 1
            continue
        tol = 1 if got.dtype.kind in "ui" else ATOL
        if name == "estimate_time_map":
            tol = 1e-5  # a time map lies in [0, 1]
        diff = np.abs(got.astype(np.float64) - expected.astype(np.float64)).max()
        assert diff <= tol, f"{name}: differs from its reference by {diff:.3g} (> {tol})"
    print(f"{identical} of {len(reference.files)} outputs bit-identical to the references")


def test_references_are_not_trivial():
    # the references must be denoised images, not the inputs or constants
    reference = np.load(REFERENCE)
    noisy, clean = _inputs()["noisy"], _inputs()["clean"]
    for name in ("blind", "sigma", "wiener", "quality"):
        out = reference[name]
        assert np.mean((out - clean) ** 2) < 0.4 * np.mean((noisy - clean) ** 2), name


if __name__ == "__main__":
    if sys.argv[1:] != ["--regenerate"]:
        raise SystemExit(__doc__)
    REFERENCE.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(REFERENCE, **compute_outputs())
    print(f"wrote {REFERENCE} ({REFERENCE.stat().st_size / 1024:.0f} KiB)")
