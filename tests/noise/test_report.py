"""NoiseReport: derived quantities, time maps, serialisation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_diffdenoise import NoiseReport
from napari_diffdenoise.intensity import SIGMA_MAX, IntensityRange
from napari_diffdenoise.noise.report import IMPULSE_TIME, NOISE_REPORT_KINDS


def make_report(kind="gaussian", impulse_mask=None, sigma_map=None, gain=0.0, base=100.0):
    shape = (6, 8)
    return NoiseReport(
        kind=kind,
        scores={k: (1.0 if k == kind else 0.0) for k in NOISE_REPORT_KINDS},
        confidence=1.0,
        sigma=10.0,
        gain=gain,
        baseline_variance=base,
        impulse_fraction=0.0 if impulse_mask is None else float(impulse_mask.mean()),
        impulse_mask=impulse_mask,
        sigma_map=np.full(shape, 10.0, np.float32) if sigma_map is None else sigma_map,
        curve_means=np.array([10.0, 20.0]),
        curve_variances=np.array([100.0, 100.0]),
        intensity_range=IntensityRange(0.0, 200.0),
        shape=shape,
        dtype="uint8",
    )


def test_sigma_max_default_and_time_map():
    rep = make_report()
    assert rep.sigma_max_default == pytest.approx(SIGMA_MAX * 200.0)
    tau = rep.time_map()
    assert tau.dtype == np.float32 and tau.shape == (6, 8)
    np.testing.assert_allclose(tau, 10.0 / (SIGMA_MAX * 200.0))
    np.testing.assert_allclose(rep.time_map(sigma_max=20.0), 0.5)
    np.testing.assert_allclose(rep.time_map(sigma_max=5.0), 1.0)  # clipped
    with pytest.raises(ValueError):
        rep.time_map(sigma_max=0.0)


def test_shot_noise_starts_at_least_one_photon_up():
    """For ``"poisson"`` the denoiser's σ map (and the time map) is floored at one photon's step,
    ``PHOTON_FLOOR · gain``; the reported σ map stays the estimate; other verdicts unchanged."""
    from napari_diffdenoise.noise.report import PHOTON_FLOOR

    sig = np.linspace(0.5, 12.0, 48, dtype=np.float32).reshape(6, 8)
    rep = make_report("poisson", sigma_map=sig, gain=4.0, base=-8.0)
    start = rep.start_sigma_map
    np.testing.assert_allclose(start, np.maximum(sig, PHOTON_FLOOR * 4.0))
    assert start.dtype == np.float32 and float(start.min()) == pytest.approx(4.0 * PHOTON_FLOOR)
    np.testing.assert_array_equal(rep.sigma_map, sig)  # the estimate is not changed
    np.testing.assert_allclose(rep.time_map(sigma_max=20.0), np.clip(start / 20.0, 0, 1))
    for kind, gain in (("gaussian", 4.0), ("spatially_variant", 4.0), ("poisson", 0.0)):
        other = make_report(kind, sigma_map=sig, gain=gain)
        np.testing.assert_array_equal(other.start_sigma_map, sig)
        np.testing.assert_allclose(other.time_map(sigma_max=20.0), sig / 20.0)


def test_impulse_pixels_get_impulse_time():
    mask = np.zeros((6, 8), dtype=bool)
    mask[2, 3] = True
    rep = make_report("salt_and_pepper", impulse_mask=mask)
    tau = rep.time_map(sigma_max=100.0)
    assert tau[2, 3] == pytest.approx(IMPULSE_TIME)
    assert tau[0, 0] == pytest.approx(0.1)
    assert rep.time_map(sigma_max=100.0, impulse_time=0.0)[2, 3] == 0.0
    with pytest.raises(ValueError):
        rep.time_map(impulse_time=2.0)


def test_noise_std_follows_the_verdict():
    poisson = make_report("poisson", gain=2.0, base=-20.0)
    np.testing.assert_allclose(poisson.noise_std([10.0, 50.0, 0.0]), [0.0, np.sqrt(80.0), 0.0])
    gauss = make_report("gaussian")
    np.testing.assert_allclose(gauss.noise_std(np.array([1.0, 1000.0])), [10.0, 10.0])
    assert gauss.noise_std(5.0).shape == ()


@pytest.mark.parametrize("kind", NOISE_REPORT_KINDS)
def test_summary_and_dict(kind):
    rep = make_report(
        kind, gain=1.5, base=4.0, sigma_map=np.linspace(1, 20, 48, dtype=np.float32).reshape(6, 8)
    )
    text = rep.summary()
    assert kind.replace("_", " ") in text and "\n" in text
    assert ("at least one photon up (σ ≥ 1.5)" in text) == (kind == "poisson")
    assert "sigma" not in text  # σ in user-facing text
    d = rep.to_dict()
    json.dumps(d)  # scalars only
    assert d["kind"] == kind and d["shape"] == [6, 8] and d["dtype"] == "uint8"
    assert sum(d["scores"].values()) == pytest.approx(1.0)
    assert "NoiseReport(kind=" in repr(rep) and len(repr(rep)) < 400
