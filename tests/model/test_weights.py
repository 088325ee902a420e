"""Weight files: safetensors + JSON sidecar round trip, corrupt and mismatched files."""

from __future__ import annotations

import json

import pytest
import torch

from napari_diffdenoise import list_models, load_model
from napari_diffdenoise.model.unet import TimeUNet, UNetConfig
from napari_diffdenoise.model.weights import ModelInfo, load_weights, read_info, save_model

TINY = UNetConfig(channels=(8, 16), time_dim=8, time_features=4)


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    net = TimeUNet(TINY)
    info = ModelInfo(name="tiny", architecture=TINY, sigma_max=0.5, description="test")
    path = save_model(net, tmp_path / "tiny", info)
    return net, path


def test_round_trip(saved):
    net, path = saved
    assert path.suffix == ".safetensors" and path.with_suffix(".json").is_file()
    loaded, info = load_weights(path)
    assert info.architecture == TINY and info.sigma_max == 0.5 and info.name == "tiny"
    for (k, a), (_, b) in zip(net.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k
    assert not list(path.parent.glob(".*.tmp")), "atomic writes leave no temporary files"


def test_saved_files_get_umask_permissions(tmp_path):
    """Atomic writes go through mkstemp (0600); the saved model must be readable like any file
    the user writes (a model shared on a group drive, a bundled model in a wheel)."""
    import os

    old = os.umask(0o022)
    try:
        info = ModelInfo(name="tiny", architecture=TINY, sigma_max=0.5)
        path = save_model(TimeUNet(TINY), tmp_path / "perm", info)
    finally:
        os.umask(old)
    for p in (path, path.with_suffix(".json")):
        assert (p.stat().st_mode & 0o777) == 0o644, (p.name, oct(p.stat().st_mode))


def test_half_precision_weights_load_as_float32(tmp_path):
    net = TimeUNet(TINY)
    path = save_model(net, tmp_path / "half", ModelInfo("half", TINY, 0.5), half=True)
    loaded, _ = load_weights(path)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())


def test_pickle_file_is_refused(tmp_path, saved):
    _, path = saved
    bad = tmp_path / "pickled.safetensors"
    torch.save(TimeUNet(TINY).state_dict(), bad)  # a pickle, not safetensors
    bad.with_suffix(".json").write_text(path.with_suffix(".json").read_text())
    with pytest.raises(OSError, match="not a valid safetensors"):
        load_weights(bad)


def test_truncated_file(tmp_path, saved):
    _, path = saved
    bad = tmp_path / "trunc.safetensors"
    bad.write_bytes(path.read_bytes()[:200])
    bad.with_suffix(".json").write_text(path.with_suffix(".json").read_text())
    with pytest.raises(OSError):
        load_weights(bad)


def test_missing_or_broken_sidecar(tmp_path, saved):
    _, path = saved
    lone = tmp_path / "lone.safetensors"
    lone.write_bytes(path.read_bytes())
    with pytest.raises(OSError, match="sidecar"):
        load_weights(lone)
    lone.with_suffix(".json").write_text("{not json")
    with pytest.raises(OSError, match="not valid JSON"):
        load_weights(lone)
    meta = json.loads(path.with_suffix(".json").read_text())
    meta["architecture"]["channels"] = [8, 32]
    lone.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(OSError, match="does not match"):
        load_weights(lone)
    meta["format_version"] = 99
    lone.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(OSError, match="format version"):
        read_info(lone)


def test_unknown_model_name_lists_available():
    with pytest.raises(LookupError, match="default"):
        load_model("no-such-model")


def test_missing_path():
    with pytest.raises(OSError, match="not found"):
        load_model("/nonexistent/model.safetensors")


def test_bundled_model_loads_offline():
    names = list_models()
    assert names[:3] == ["default", "fast", "quality"]
    m = load_model("default")
    assert m.sigma_max > 0 and m.net.parameter_count() > 100_000
    assert m.path.stat().st_size < 8 * 1024 * 1024, "the bundled model must stay small"
    quality = load_model("quality")
    assert quality.path == m.path and (m.ensemble, quality.ensemble) == (1, 8)


def test_user_models_are_listed(tmp_path, monkeypatch, saved):
    net, path = saved
    monkeypatch.setenv("NAPARI_DIFFDENOISE_MODELS", str(path.parent))
    assert "tiny" in list_models()
    m = load_model("tiny")
    assert m.name == "tiny" and m.sampler == "direct"


def test_non_finite_weights_are_refused(tmp_path):
    net = TimeUNet(TINY)
    with torch.no_grad():
        net.tail.weight[0, 0, 0, 0] = float("nan")
    path = save_model(net, tmp_path / "nan", ModelInfo("nan", TINY, 0.5))
    before = path.read_bytes()
    with pytest.raises(OSError, match="non-finite"):
        load_weights(path)
    assert path.read_bytes() == before


def test_model_path_rules(tmp_path, monkeypatch, saved):
    from napari_diffdenoise.model.registry import PRESETS, model_path

    _, path = saved
    p, preset = model_path("default")
    assert preset is PRESETS["default"] and p.name == "default.safetensors"
    # a path without the suffix, a sidecar path and the weights path name the same file
    for key in (str(path.with_suffix("")), str(path.with_suffix(".json")), path):
        assert model_path(key) == (path, None)
    monkeypatch.setenv("NAPARI_DIFFDENOISE_MODELS", str(path.parent))
    assert model_path("tiny") == (path, None)
    with pytest.raises(LookupError, match="available: default"):
        model_path("no-such-model")
    other = tmp_path / "weights.pt"
    other.write_bytes(b"x")
    with pytest.raises(OSError, match="not a .safetensors"):
        model_path(other)
    with pytest.raises(OSError, match="not found"):
        model_path(tmp_path / "gone" / "model")
    with pytest.raises(TypeError):
        model_path(3)
