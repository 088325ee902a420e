"""The command line runs the same functions as the API on real files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from napari_diffdenoise import add_noise, denoise, synthetic_fluorescence
from napari_diffdenoise.cli import main
from napari_diffdenoise.noise.timemap import load_time_map, new_time_map, save_time_map


def _noisy_tif(tmp_path):
    clean = (30 + 180 * synthetic_fluorescence((80, 96), kind="cells", seed=0)).astype(np.uint8)
    noisy = add_noise(clean, "gaussian", sigma=15, seed=0)
    path = tmp_path / "noisy.tif"
    tifffile.imwrite(path, noisy)
    return noisy, path


def test_models(capsys):
    assert main(["models"]) == 0
    assert "default" in capsys.readouterr().out.split()


def test_models_long_lists_descriptions_and_survives_a_broken_user_model(
    tmp_path, monkeypatch, capsys
):
    import shutil

    from napari_diffdenoise.model.registry import bundled_dir

    for ext in ("safetensors", "json"):
        shutil.copy(bundled_dir() / f"default.{ext}", tmp_path / f"mine.{ext}")
    (tmp_path / "broken.safetensors").write_bytes(b"not weights")
    (tmp_path / "broken.json").write_text("{not json")
    monkeypatch.setenv("NAPARI_DIFFDENOISE_MODELS", str(tmp_path))
    assert main(["models", "--long"]) == 0
    rows = {line.split("\t")[0]: line.split("\t") for line in capsys.readouterr().out.splitlines()}
    assert {"default", "fast", "quality", "mine", "broken"} <= set(rows)
    assert all(len(r) == 3 for r in rows.values())
    assert "self-ensemble" in rows["quality"][1]
    assert rows["mine"][1].startswith("TimeUNet") and rows["mine"][2] == str(
        tmp_path / "mine.safetensors"
    )
    assert rows["broken"][1].startswith("unreadable: ") and "not valid JSON" in rows["broken"][1]


def test_inspect_json(tmp_path, capsys):
    _, path = _noisy_tif(tmp_path)
    assert main(["inspect", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["kind"] == "gaussian" and 11 < report["sigma"] < 19


def test_denoise_tif_and_npy(tmp_path):
    noisy, path = _noisy_tif(tmp_path)
    before = path.read_bytes()
    out = tmp_path / "out.tif"
    assert main(["denoise", str(path), str(out), "--sigma", "15"]) == 0
    result = tifffile.imread(out)
    np.testing.assert_array_equal(result, denoise(noisy, sigma=15))
    assert path.read_bytes() == before  # the input file is untouched
    npy = tmp_path / "out.npy"
    assert main(["denoise", str(path), str(npy), "--sigma", "15"]) == 0
    np.testing.assert_array_equal(np.load(npy), result)
    png = tmp_path / "out.png"
    assert main(["denoise", str(path), str(png), "--sigma", "15"]) == 0
    assert png.stat().st_size > 0
    nonlocal_out = tmp_path / "wiener.tif"
    assert main(["denoise", str(path), str(nonlocal_out), "--sigma", "15", "--wiener", "0.5"]) == 0
    np.testing.assert_array_equal(
        tifffile.imread(nonlocal_out), denoise(noisy, sigma=15, wiener=0.5)
    )
    # an existing output is replaced only on request
    assert main(["denoise", str(path), "-o", str(nonlocal_out), "--wiener", "auto"]) == 2
    assert (
        main(
            [
                "denoise",
                str(path),
                "-o",
                str(nonlocal_out),
                "--sigma",
                "15",
                "--wiener",
                "auto",
                "--overwrite",
            ]
        )
        == 0
    )
    np.testing.assert_array_equal(
        tifffile.imread(nonlocal_out), denoise(noisy, sigma=15, wiener="auto")
    )


def test_errors_exit_2(tmp_path, capsys):
    assert main(["denoise", str(tmp_path / "missing.tif"), "-o", str(tmp_path / "o.tif")]) == 2
    assert "no such file" in capsys.readouterr().err
    _, path = _noisy_tif(tmp_path)
    assert main(["denoise", str(path), str(tmp_path / "o.tif"), "--model", "nope"]) == 2
    assert "available" in capsys.readouterr().err
    assert main(["denoise", str(path), str(tmp_path / "o.tif"), "--wiener", "2"]) == 2
    assert "wiener" in capsys.readouterr().err
    assert not (tmp_path / "o.tif").exists()


def _two_training_images(folder):
    from skimage import data, io

    folder.mkdir()
    for i in range(2):
        io.imsave(
            folder / f"{i}.png", data.camera()[i * 64 : i * 64 + 64, :64], check_contrast=False
        )
    return folder


def test_train_fine_tunes_from_a_named_model(tmp_path, capsys):
    from napari_diffdenoise import load_model

    train_dir = _two_training_images(tmp_path / "train")
    base = load_model("default")
    recipe = tmp_path / "recipe.json"
    recipe.write_text(
        json.dumps(
            {
                "name": "tuned",
                "channels": list(base.info.architecture.channels),
                "train_dir": str(train_dir),
                "holdout": 0,
                "synthetic_images": 0,
                "steps": 2,
                "batch_size": 2,
                "patch_size": 32,
                "log_every": 1,
                "checkpoint_every": 2,
            }
        )
    )
    out = tmp_path / "run"
    assert (
        main(["train", "--config", str(recipe), "--output", str(out), "--init-from", "default"])
        == 0
    )
    training = json.loads((out / "tuned.json").read_text())["training"]
    assert training["init_from"]["path"] == str(base.path)
    assert (
        training["total_steps"]
        == base.info.training.get("total_steps", base.info.training["steps"]) + 2
    )
    assert (
        main(
            [
                "train",
                "--config",
                str(recipe),
                "--output",
                str(tmp_path / "r2"),
                "--init-from",
                "no_such_model",
            ]
        )
        == 2
    )
    assert "available" in capsys.readouterr().err


def test_train_takes_the_image_folder_and_device_on_the_command_line(tmp_path, capsys):
    train_dir = _two_training_images(tmp_path / "images")
    recipe = tmp_path / "recipe.json"
    recipe.write_text(
        json.dumps(
            {
                "name": "cli",
                "channels": [8, 16],
                "train_dir": str(tmp_path / "elsewhere"),
                "holdout": 0,
                "synthetic_images": 0,
                "steps": 2,
                "batch_size": 2,
                "patch_size": 32,
                "log_every": 1,
                "checkpoint_every": 2,
            }
        )
    )
    out = tmp_path / "run"
    # the recipe's folder does not exist: the command line's wins
    assert (
        main(
            [
                "train",
                "--config",
                str(recipe),
                "--output",
                str(out),
                "--train-dir",
                str(train_dir),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    recipe_used = json.loads((out / "cli.json").read_text())["training"]["recipe"]
    assert recipe_used["train_dir"] == str(train_dir) and recipe_used["device"] == "cpu"
    assert (
        main(
            [
                "train",
                "--config",
                str(recipe),
                "--output",
                str(tmp_path / "r2"),
                "--train-dir",
                str(tmp_path / "none"),
            ]
        )
        == 2
    )
    assert "not found" in capsys.readouterr().err
    assert (
        main(
            [
                "train",
                "--config",
                str(recipe),
                "--output",
                str(tmp_path / "r3"),
                "--train-dir",
                str(train_dir),
                "--device",
                "tpu",
            ]
        )
        == 2
    )
    assert "device" in capsys.readouterr().err


def _pair_folders(tmp_path, n=3):
    """``noisy/`` and ``clean/`` folders of TIFF pairs with the same file names (96², stripes)."""
    (tmp_path / "noisy").mkdir()
    (tmp_path / "clean").mkdir()
    for i in range(n):
        rng = np.random.default_rng(i)
        clean = (30 + 180 * synthetic_fluorescence((96, 96), kind="cells", seed=i)).astype(
            np.float32
        )
        noisy = clean + 10 * rng.standard_normal(clean.shape) + 12 * rng.standard_normal((96, 1))
        tifffile.imwrite(tmp_path / "noisy" / f"frame{i}.tif", noisy.astype(np.float32))
        tifffile.imwrite(tmp_path / "clean" / f"frame{i}.tif", clean)
    return tmp_path / "noisy", tmp_path / "clean"


def test_fine_tune_on_two_folders_then_denoise_with_the_new_model(tmp_path, models_dir, capsys):
    noisy_dir, clean_dir = _pair_folders(tmp_path)
    args = ["fine-tune", "--pairs", str(noisy_dir), str(clean_dir), "--name", "scope"]
    assert main([*args, "--steps", "3", "--seed", "0", "--batch", "2", "--patch", "48"]) == 0
    out = capsys.readouterr()
    assert "'scope'" in out.out and "--model scope" in out.out
    settings = json.loads((models_dir / "scope.json").read_text())["training"]["settings"]
    assert settings["patch_size"] == 48 and settings["batch_size"] == 2
    assert "PSNR (dB) base" in out.err  # the bar shows the validation figure
    assert main(["models"]) == 0
    assert "scope" in capsys.readouterr().out.split()
    np.save(tmp_path / "x.npy", tifffile.imread(noisy_dir / "frame0.tif"))
    out_path = tmp_path / "y.npy"
    assert main(["denoise", str(tmp_path / "x.npy"), "-o", str(out_path), "--model", "scope"]) == 0
    assert np.load(out_path).shape == (96, 96)
    # the same name again: refused with the API's message, the model untouched
    before = (tmp_path / "models" / "scope.safetensors").read_bytes()
    assert main([*args, "--steps", "3"]) == 2
    assert "replace=True (--replace)" in capsys.readouterr().err
    assert (tmp_path / "models" / "scope.safetensors").read_bytes() == before


def test_fine_tune_errors_exit_2_with_the_api_messages(tmp_path, capsys):
    noisy_dir, clean_dir = _pair_folders(tmp_path, n=2)
    (clean_dir / "frame1.tif").unlink()
    assert main(["fine-tune", "--pairs", str(noisy_dir), str(clean_dir), "--name", "x"]) == 2
    assert "no clean image for frame1.tif" in capsys.readouterr().err
    assert main(["fine-tune", "--pairs", str(tmp_path / "no"), str(clean_dir)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["fine-tune", "--pairs", str(noisy_dir), str(clean_dir), "--patch", "50"]) == 2
    assert "multiple of 8" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # neither --pairs nor --noisy: argparse's usage error
        main(["fine-tune", "--name", "x"])
    assert not (tmp_path / "models").exists()


def test_fine_tune_on_a_noisy_stack_alone(tmp_path, capsys):
    noisy_dir, _ = _pair_folders(tmp_path, n=3)
    stack = np.stack([tifffile.imread(p) for p in sorted(noisy_dir.glob("*.tif"))])
    tifffile.imwrite(tmp_path / "stack.tif", stack)
    args = ["fine-tune", "--noisy", str(tmp_path / "stack.tif"), "--name", "alone"]
    assert main([*args, "--steps", "2", "--seed", "0", "--batch", "2"]) == 0
    assert "'alone'" in capsys.readouterr().out
    meta = json.loads((tmp_path / "models" / "alone.json").read_text())["training"]
    assert meta["method"] == "fine-tune (noisy)" and meta["steps"] == 2


def test_a_saved_time_map_keeps_its_sigma_scale(tmp_path):
    """--time-map reads a map saved by the Time map widget with its own σ scale."""
    clean = 20 + 200 * synthetic_fluorescence((64, 96), kind="cells", seed=0)
    noisy = add_noise(clean, "gaussian", sigma=15.0, seed=1).astype(np.float32)
    tifffile.imwrite(tmp_path / "noisy.tif", noisy)
    # σ 15 on the right two thirds, "leave alone" on the left third; σ_max 60 (not the 255
    # levels / the model's σ_max a plain integer map would be read with)
    levels = new_time_map(noisy.shape, sigma=15.0, sigma_max=60.0, levels=100)
    levels[:, :32] = 0
    save_time_map(tmp_path / "map.tif", levels, levels=100, sigma_max=60.0, units="counts")

    out = tmp_path / "out.tif"
    assert main(["denoise", str(tmp_path / "noisy.tif"), "-o", str(out), "--time-map",
                 str(tmp_path / "map.tif")]) == 0  # fmt: skip
    result = tifffile.imread(out)
    expected = denoise(noisy, time_map=load_time_map(tmp_path / "map.tif"))
    np.testing.assert_allclose(result, expected, atol=1e-4)
    np.testing.assert_array_equal(result[:, :32], noisy[:, :32])  # level 0: untouched
    np.testing.assert_allclose(result, denoise(noisy, sigma=np.where(levels > 0, 15.0, 0.0)),
                               atol=1e-4)  # fmt: skip


@pytest.mark.slow
def test_ctrl_c_during_fine_tune_saves_exits_130_and_resumes(tmp_path, models_dir):
    """Ctrl-C (a real SIGINT to the command) once steps are running: the best model so far is
    saved, the exit status is 130, and the message's --resume command carries the run on."""
    import signal
    import subprocess
    import sys

    noisy_dir, clean_dir = _pair_folders(tmp_path)
    command = [sys.executable, "-m", "napari_diffdenoise.cli", "fine-tune", "--pairs",
               str(noisy_dir), str(clean_dir), "--name", "stopped", "--minutes", "5",
               "--seed", "0", "--batch", "2", "--patch", "48"]  # fmt: skip
    job = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen = b""
    while b"step 3 " not in seen:  # (the bar, unbuffered on stderr)
        chunk = job.stderr.read1(4096)
        assert chunk, "the command ended before its third step"
        seen += chunk
    job.send_signal(signal.SIGINT)
    out, err = job.communicate(timeout=120)
    err = (seen + err).decode()
    assert job.returncode == 130, err[-2000:]
    assert "saved as 'stopped'" in err and "--name stopped --resume" in err
    meta = json.loads((models_dir / "stopped.json").read_text())["training"]
    assert meta["stopped"] == "cancelled" and meta["steps"] >= 3
    resumed = [*command[: command.index("--minutes")], "--steps", str(meta["steps"] + 2),
               "--resume"]  # fmt: skip
    assert main(resumed[3:]) == 0
    again = json.loads((models_dir / "stopped.json").read_text())["training"]
    assert again["steps"] == meta["steps"] + 2 and again["seed"] == 0
