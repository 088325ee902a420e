"""bioimage.io export: the package validates, its test tensors are our model's output, refusals."""

from __future__ import annotations

import io
import json
import zipfile

import bioimageio.spec  # noqa: F401  (in the testing extra: a broken install fails here)
import numpy as np
import pytest
import torch

from napari_diffdenoise import export_model, list_models, load_model
from napari_diffdenoise.cli import main
from napari_diffdenoise.diffusion.samplers import sample
from napari_diffdenoise.model.export import normalise_like_package
from napari_diffdenoise.model.unet import TimeUNet, UNetConfig
from napari_diffdenoise.model.weights import ModelInfo, save_model


def _validate(path):
    """Load the package with bioimageio.spec (IO checks on): the description and its errors."""
    from bioimageio.spec import load_description
    from bioimageio.spec.model.v0_5 import ModelDescr

    descr = load_description(path)
    summary = descr.validation_summary
    errors = [f"{e.loc}: {e.msg}" for d in summary.details for e in d.errors]
    assert isinstance(descr, ModelDescr), errors
    assert summary.status in ("valid-format", "passed"), errors
    assert not errors
    return descr


def _arrays(path) -> dict[str, np.ndarray]:
    with zipfile.ZipFile(path) as zf:
        return {
            name: np.load(io.BytesIO(zf.read(name)), allow_pickle=False)
            for name in zf.namelist()
            if name.endswith(".npy")
        }


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    path = tmp_path_factory.mktemp("export") / "default.zip"
    assert export_model("default", path) == path
    return path


def test_default_package_validates(package):
    descr = _validate(package)
    assert [t.id for t in descr.inputs] == ["image", "time_map"]
    assert [t.id for t in descr.outputs] == ["denoised"]
    assert descr.weights.torchscript is not None and descr.weights.pytorch_state_dict is not None
    assert str(descr.license) == "BSD-3-Clause"
    assert {str(c.doi) for c in descr.cite} == {
        "10.48550/arXiv.2305.04457",
        "10.48550/arXiv.2306.16052",
    }
    ours = descr.config.model_extra["napari_diffdenoise"]
    assert ours["sigma_max"] == load_model("default").sigma_max
    assert ours["model"]["training"]["steps"] > 0
    with zipfile.ZipFile(package) as zf:
        names = set(zf.namelist())
        readme = zf.read("README.md").decode()
    assert {"cover.png", "README.md", "weights.pt", "weights_torchscript.pt"} <= names
    assert "## Validation" in readme and "sigma_max = 0.5" in readme
    assert not list(package.parent.glob(".*.tmp")), "atomic write leaves no temporary file"


def test_test_tensors_are_our_models_output(package):
    arrays = _arrays(package)
    raw = arrays["test_input_image.npy"]
    tau = arrays["test_input_time_map.npy"]
    expected = arrays["test_output_denoised.npy"]
    assert raw.shape == tau.shape == expected.shape == (1, 1, 64, 64)
    assert tau.min() >= 0 and tau.max() <= 1 and tau.std() > 0, "a spatially variant time map"
    image, _ = normalise_like_package(raw[0, 0])
    net = load_model("default").net
    with torch.inference_mode():
        ours = sample(
            net, torch.from_numpy(image)[None, None], torch.from_numpy(tau), sampler="direct"
        ).numpy()
    np.testing.assert_allclose(expected, ours, atol=1e-5)
    # it denoises: the output is much smoother than its input
    rough = np.abs(np.diff(image, axis=-1)).mean()
    assert np.abs(np.diff(expected, axis=-1)).mean() < 0.5 * rough


def test_existing_path_refused_unless_overwrite(tmp_path):
    target = tmp_path / "mine.zip"
    target.write_bytes(b"keep me")
    with pytest.raises(FileExistsError, match="overwrite"):
        export_model("default", target)
    assert target.read_bytes() == b"keep me"
    assert export_model("default", target, overwrite=True) == target
    assert zipfile.is_zipfile(target)


def test_bad_arguments(tmp_path):
    with pytest.raises(LookupError, match="default"):
        export_model("no-such-model", tmp_path / "x.zip")
    with pytest.raises(ValueError, match=r"\.zip"):
        export_model("default", tmp_path / "x.tar")
    with pytest.raises(ValueError, match="authors"):
        export_model("default", tmp_path / "x.zip", authors=[{"affiliation": "lab"}])
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "folder.zip").mkdir()
    with pytest.raises(IsADirectoryError):
        export_model("default", tmp_path / "folder.zip", overwrite=True)


def test_user_model_exports(tmp_path):
    """A saved (e.g. fine-tuned) model listed by list_models() exports and validates too."""
    torch.manual_seed(0)
    arch = UNetConfig(channels=(8, 16), time_dim=8, time_features=4)
    net = TimeUNet(arch)
    torch.nn.init.normal_(net.tail.weight, std=0.05)  # (a fresh tail is zero: the identity)
    history = [{"step": 10, "psnr": 30.5}]
    home = str(tmp_path / "home" / "someone")
    training = {
        "base": {"name": "default", "path": f"{home}/weights/default.safetensors"},
        "method": "pairs",
        "validation": {"psnr": 31.2, "history": history},
    }
    info = ModelInfo("my.scope", arch, 0.5, training=training, description="fine-tuned")
    save_model(net, tmp_path / "models" / "my.scope", info)
    assert "my.scope" in list_models()
    out = export_model(
        "my.scope", tmp_path / "my.zip", authors=[{"name": "A. User", "affiliation": "Lab"}]
    )
    descr = _validate(out)
    assert descr.name == "napari-diffdenoise my-scope"
    assert descr.authors[0].affiliation == "Lab"
    shared = descr.config.model_extra["napari_diffdenoise"]["model"]["training"]
    assert shared["validation"] == training["validation"] and shared["method"] == "pairs"
    assert shared["base"] == {"name": "default", "path": "default.safetensors"}  # no home folder
    with zipfile.ZipFile(out) as zf:
        readme = zf.read("README.md").decode()
        assert not any(home in zf.read(n).decode(errors="ignore") for n in zf.namelist())
    assert json.dumps({"psnr": 31.2}) in readme and "pairs" in readme and "30.5" not in readme


def test_cli_export(tmp_path, capsys):
    out = tmp_path / "pkg.zip"
    out.write_bytes(b"old")
    assert main(["export", "default", str(out)]) == 2
    assert "overwrite" in capsys.readouterr().err and out.read_bytes() == b"old"
    assert main(["export", "default", str(out), "--overwrite"]) == 0
    assert str(out) in capsys.readouterr().out
    _validate(out)
    assert main(["export", "nope", str(tmp_path / "n.zip")]) == 2
    assert "default" in capsys.readouterr().err


@pytest.mark.slow
def test_runs_in_bioimageio_core(package):
    """The zoo's own runner reproduces the test outputs with both weight formats."""
    core = pytest.importorskip("bioimageio.core")
    summary = core.test_model(package)
    failed = [(d.name, [e.msg for e in d.errors]) for d in summary.details if d.errors]
    assert summary.status == "passed", failed
    names = " ".join(d.name for d in summary.details)
    assert "(torchscript)" in names and "(pytorch_state_dict)" in names
