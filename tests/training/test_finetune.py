"""fine_tune on noisy/clean pairs: the checks, a tiny real run, saving, cancelling, resuming."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
import tifffile

from napari_diffdenoise import fine_tune, list_models, load_model, synthetic_fluorescence
from napari_diffdenoise.training.finetune import checkpoint_dir, iter_fine_tune
from napari_diffdenoise.training.pairs import PairTask, read_pairs
from napari_diffdenoise.training.tasks import WHITE_RANGE

#: small, fast runs: 48² patches, a validation every 10 steps
FAST = {"patch_size": 48, "val_every": 10, "batch_size": 4}


def _pair(seed: int, shape=(96, 96), stripes=0.08):
    """A clean synthetic fluorescence image and a noisy copy with row stripes (float32)."""
    rng = np.random.default_rng(seed)
    clean = synthetic_fluorescence(shape, kind="cells", seed=seed).astype(np.float32)
    noise = 0.05 * rng.standard_normal(shape) + stripes * rng.standard_normal((shape[0], 1))
    return (clean + noise).astype(np.float32), clean


def _pairs(n=4, **kw):
    return [_pair(i, **kw) for i in range(n)]


def _saved(folder, name):
    return sorted(p.name for p in folder.glob(f"{name}*"))


# ---------------------------------------------------------------- pair checks


def test_a_shifted_clean_image_is_reported_with_its_shift():
    noisy, clean = _pair(0, shape=(128, 128), stripes=0.0)
    with pytest.warns(UserWarning, match=r"shifted by \(rows, columns\) = \(\+3\.\d, [+-]0\.\d\)"):
        data = read_pairs([(noisy, np.roll(clean, 3, axis=0))], patch_size=48)
    assert abs(data.pairs[0].shift[0] - 3) < 0.2


def test_an_aligned_pair_gives_no_warning_and_its_gain_and_offset_are_removed():
    noisy, clean = _pair(1, shape=(128, 128))
    scaled = 0.5 * clean + 20.0  # an averaged reference with its own gain and offset
    data = read_pairs([(noisy, scaled)], patch_size=48, validation_fraction=0.0)
    pair = data.pairs[0]
    assert pair.gain == pytest.approx(2.0, rel=0.03)
    assert pair.offset == pytest.approx(-40.0, abs=0.8)
    y, x0 = pair.read(0)
    # the fitted clean image sits on the noisy one's intensities, normalised the same way
    np.testing.assert_allclose(x0, pair.intensity.normalise(clean), atol=0.02)
    assert abs(float(np.mean(y - x0))) < 0.01


def test_stacks_of_equal_shape_give_their_planes_as_samples():
    planes = [_pair(i) for i in range(5)]
    noisy = np.stack([p[0] for p in planes])
    clean = np.stack([p[1] for p in planes])
    data = read_pairs((noisy, clean), patch_size=48, validation_fraction=0.2)
    assert len(data.train) == 4 and len(data.val) == 1 and data.held_out


def test_a_share_of_every_batch_replays_white_noise_at_its_exact_sigma():
    """The pairs task keeps a given σ's meaning: some patches carry white noise whose level is
    their time map, the others the pair's own (striped) noise and its blind estimate."""
    data = read_pairs(_pairs(2, stripes=0.3), patch_size=48, validation_fraction=0.0)
    task = PairTask(data, p_white=0.25, seed=3)
    y, x0, sigma = task._patches(400)
    noise = (y - x0)[:, 0]
    level = sigma[:, 0, 0, 0]
    flat = np.all(sigma[:, 0] == sigma[:, 0, :1, :1], axis=(1, 2))
    replay = flat & (np.abs(noise.std(axis=(1, 2)) / level - 1) < 0.1)
    assert 0.15 < replay.mean() < 0.35
    assert np.all((level[replay] >= WHITE_RANGE[0]) & (level[replay] <= WHITE_RANGE[1]))
    # replayed noise is white: no row or column offsets (patches are rotated: either way)
    assert np.all(_stripes(noise[replay]) < 3 * level[replay] / np.sqrt(48))
    # without the replay, every patch carries the pair's stripes (6x the pixel noise)
    y, x0, sigma = PairTask(data, p_white=0.0, seed=3)._patches(100)
    assert np.all(_stripes((y - x0)[:, 0]) > 0.1)


def _stripes(noise: np.ndarray) -> np.ndarray:
    """Per patch, the spread of its row means or of its column means, whichever is larger."""
    return np.maximum(noise.mean(axis=2).std(axis=1), noise.mean(axis=1).std(axis=1))


def test_folders_are_matched_by_file_name_and_read_lazily(tmp_path):
    (tmp_path / "noisy").mkdir()
    (tmp_path / "clean").mkdir()
    for i, (n, c) in enumerate(_pairs(3)):
        tifffile.imwrite(tmp_path / "noisy" / f"im{i}.tif", n)
        tifffile.imwrite(tmp_path / "clean" / f"im{i}.tif", c)
    import zarr

    n, c = _pair(3)
    for folder, image in (("noisy", n), ("clean", c)):
        zarr.open_array(str(tmp_path / folder / "im3.zarr"), mode="w", shape=n.shape,
                        chunks=(32, 32), dtype="f4")[:] = image  # fmt: skip
    data = read_pairs((tmp_path / "noisy", tmp_path / "clean"), patch_size=48)
    assert [p.label for p in data.pairs] == ["im0.tif", "im1.tif", "im2.tif", "im3.zarr"]
    assert isinstance(data.pairs[0].noisy, np.memmap)  # never read whole
    assert not isinstance(data.pairs[3].noisy, np.ndarray)  # a zarr array, read by patches
    np.testing.assert_allclose(data.pairs[3].read(0)[1], data.pairs[3].intensity.normalise(
        data.pairs[3].gain * c + data.pairs[3].offset), atol=1e-5)  # fmt: skip


def test_napari_layers_are_accepted_as_pairs():
    from napari.layers import Image

    noisy, clean = _pair(4)
    data = read_pairs([(Image(noisy, name="frame"), Image(clean))], patch_size=48)
    assert data.pairs[0].label == "pair 0 ('frame')" and data.pairs[0].shape == (96, 96)


def _bad(tmp_path, what):
    noisy, clean = _pair(0)
    if what == "no data":
        return {}, ValueError, "no data"
    if what == "both":
        return {"pairs": [(noisy, clean)], "noisy": [noisy]}, ValueError, "not both"
    if what == "empty list":
        return {"pairs": []}, ValueError, "pairs is empty"
    if what == "shapes":
        return {"pairs": [(noisy, clean[:90])]}, ValueError, "equal shapes"
    if what == "nan":
        bad = clean.copy()
        bad[3, 4] = np.nan
        return {"pairs": [(noisy, bad)]}, ValueError, "NaN"
    if what == "too small":
        return {"pairs": [(noisy[:40], clean[:40])]}, ValueError, "too small to cut one 48"
    if what == "missing folder":
        return {"pairs": (tmp_path / "nope", tmp_path)}, FileNotFoundError, "does not exist"
    (tmp_path / "n").mkdir()
    (tmp_path / "c").mkdir()
    tifffile.imwrite(tmp_path / "n" / "a.tif", noisy)
    tifffile.imwrite(tmp_path / "c" / "a.tif", clean)
    folders = {"pairs": (tmp_path / "n", tmp_path / "c")}
    if what == "unreadable entry":
        (tmp_path / "n" / "b.tif").write_bytes(b"not a tiff")
        (tmp_path / "c" / "b.tif").write_bytes(b"not a tiff")
        return folders, ValueError, "cannot read .*b.tif"
    if what == "foreign file":
        (tmp_path / "n" / "notes.txt").write_text("hello")
        return folders, ValueError, "notes.txt .* not a supported image"
    if what == "unmatched":
        tifffile.imwrite(tmp_path / "n" / "b.tif", noisy)
        return folders, ValueError, "no clean image for b.tif"
    raise AssertionError(what)


@pytest.mark.parametrize(
    "what",
    [
        "no data",
        "both",
        "empty list",
        "shapes",
        "nan",
        "too small",
        "missing folder",
        "unreadable entry",
        "foreign file",
        "unmatched",
    ],
)
def test_bad_input_is_refused_before_anything_is_written(tmp_path, models_dir, what):
    kwargs, error, message = _bad(tmp_path, what)
    with pytest.raises(error, match=message):
        fine_tune(**kwargs, name="bad", max_steps=2, settings=FAST)
    assert not models_dir.exists() or not any(models_dir.rglob("*"))
    assert "bad" not in list_models()


# ---------------------------------------------------------------- a tiny real run


@pytest.mark.slow
def test_a_tiny_fine_tune_raises_the_held_out_psnr_and_is_listed_at_once(models_dir):
    pairs = _pairs(5)
    copies = [(n.copy(), c.copy()) for n, c in pairs]
    records = []
    name = fine_tune(
        pairs,
        name="tiny",
        max_steps=30,
        seed=0,
        validation_fraction=0.2,
        settings=FAST,
        progress=records.append,
    )
    assert name == "tiny" and "tiny" in list_models()
    for (n, c), (n0, c0) in zip(pairs, copies):  # the user's arrays are untouched
        np.testing.assert_array_equal(n, n0)
        np.testing.assert_array_equal(c, c0)
    assert records[0].step == 0 and records[0].validation is not None  # the base first
    assert records[-1].step == 30 and records[-1].stopped == "budget"
    assert [r.step for r in records if r.validation] == [0, 10, 20, 30]
    meta = json.loads((models_dir / "tiny.json").read_text())["training"]
    val = meta["validation"]
    assert val["figure_name"] == "PSNR (dB)"
    assert val["best"] > val["base"] + 1.0  # stripes the base never saw: a clear gain
    assert meta["kept_base"] is False and meta["steps"] == 30
    assert meta["data"]["pairs"] == 5 and meta["data"]["validation_planes"] == 1
    assert meta["method"] == "fine-tune (pairs)" and meta["package_version"]
    assert meta["base"]["name"] == "default"
    # the validation loss went down with the PSNR
    assert val["history"][-1]["loss"] < val["history"][0]["loss"]
    # records hand out the weights of each new best (the base's at step 0), the last ones saved
    handed = [r for r in records if r.best_weights is not None]
    assert handed[0].step == 0 and all(r.step == r.best_step for r in handed)
    saved = load_model("tiny").net.state_dict()
    for key, value in handed[-1].best_weights.items():
        np.testing.assert_array_equal(value.numpy(), saved[key].float().cpu().numpy())


@pytest.mark.slow
def test_the_saved_model_denoises_in_a_new_process_and_from_the_cli(tmp_path, models_dir):
    fine_tune(_pairs(3), name="mine", max_steps=4, seed=0, settings=FAST)
    noisy, _ = _pair(7)
    np.save(tmp_path / "x.npy", noisy)
    env = {**os.environ, "NAPARI_DIFFDENOISE_MODELS": str(models_dir)}
    code = (
        "import numpy as np, sys; from napari_diffdenoise import denoise, list_models;"
        "assert 'mine' in list_models();"
        f"r = denoise(np.load({str(tmp_path / 'x.npy')!r}), model='mine');"
        "print(r.shape, float(np.std(r)))"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("(96, 96)")
    cli = [sys.executable, "-m", "napari_diffdenoise.cli", "denoise", str(tmp_path / "x.npy")]
    out = subprocess.run(
        [*cli, "-o", str(tmp_path / "y.npy"), "--model", "mine"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert np.load(tmp_path / "y.npy").shape == (96, 96)


def test_when_nothing_is_gained_the_base_is_saved_unchanged(models_dir):
    from napari_diffdenoise.model.registry import bundled_dir
    from napari_diffdenoise.model.weights import read_tensors

    # a learning rate that wrecks the network: no checkpoint beats the base
    wreck = {**FAST, "lr": 1.0, "warmup_steps": 0, "val_every": 5}
    fine_tune(_pairs(3), name="same", max_steps=10, seed=0, settings=wreck)
    meta = json.loads((models_dir / "same.json").read_text())["training"]
    assert meta["kept_base"] is True and meta["validation"]["best_step"] == 0
    assert meta["validation"]["best"] == meta["validation"]["base"]
    ours, base = (
        read_tensors(models_dir / "same.safetensors"),
        read_tensors(bundled_dir() / "default.safetensors"),
    )
    assert ours.keys() == base.keys()
    assert all(np.array_equal(ours[k].float().numpy(), base[k].float().numpy()) for k in ours)


# ---------------------------------------------------------------- cancel, resume, names


def test_a_cancel_flag_stops_the_run_and_saves_the_best_so_far(models_dir):
    cancel = threading.Event()

    def progress(p):
        if p.step == 12:
            cancel.set()

    fine_tune(_pairs(3), name="stopped", max_steps=200, seed=0, settings=FAST, cancel=cancel,
              progress=progress)  # fmt: skip
    meta = json.loads((models_dir / "stopped.json").read_text())["training"]
    assert meta["stopped"] == "cancelled" and meta["steps"] == 12
    assert meta["validation"]["history"][-1]["step"] == 12  # the last steps judged too
    assert "stopped" in list_models()


@pytest.mark.slow
def test_closing_the_generator_saves_the_best_so_far(models_dir):
    steps = iter_fine_tune(_pairs(3), name="closed", max_steps=200, seed=0, settings=FAST)
    for record in steps:
        if record.step == 11:
            break
    assert not (models_dir / "closed.json").exists()
    steps.close()  # what a widget's worker.quit() does
    meta = json.loads((models_dir / "closed.json").read_text())["training"]
    assert meta["stopped"] == "cancelled" and meta["steps"] == 11
    history = meta["validation"]["history"]
    assert history[-1]["step"] == 11  # validated where it stopped
    best = max(history, key=lambda h: h["figure"])
    assert meta["validation"]["best_step"] == best["step"]


def test_ctrl_c_in_the_progress_callback_saves_then_reraises():
    def progress(p):
        if p.step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt, match="saved as 'ctrl-c'"):
        fine_tune(_pairs(3), name="ctrl-c", max_steps=100, seed=0, settings=FAST,
                  progress=progress)  # fmt: skip
    assert "ctrl-c" in list_models()


@pytest.mark.slow
def test_a_run_continues_from_its_checkpoint(models_dir):
    fine_tune(_pairs(3), name="long", max_steps=10, seed=0, settings=FAST)
    assert (checkpoint_dir("long") / "checkpoint.safetensors").is_file()
    records = []
    fine_tune(_pairs(3), name="long", max_steps=20, seed=0, settings=FAST, resume=True,
              progress=records.append)  # fmt: skip
    assert records[0].step == 10 and records[-1].step == 20
    meta = json.loads((models_dir / "long.json").read_text())["training"]
    assert meta["steps"] == 20
    assert [h["step"] for h in meta["validation"]["history"]] == [0, 10, 20]
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        fine_tune(_pairs(3), name="never-ran", max_steps=2, resume=True, settings=FAST)


def test_a_resumed_run_keeps_its_seed_split_and_base(models_dir):
    """Resuming without a seed (the CLI's default: a random one) still holds out the same
    planes, and another base is refused: figures before and after compare."""
    stack = [_pair(i) for i in range(6)]
    pairs = (np.stack([p[0] for p in stack]), np.stack([p[1] for p in stack]))
    fine_tune(pairs, name="split", max_steps=3, seed=5, validation_fraction=0.3, settings=FAST)
    first = json.loads((models_dir / "split.json").read_text())["training"]
    with pytest.raises(ValueError, match="started from 'default'"):
        fine_tune(pairs, name="split", base="quality", max_steps=6, resume=True, settings=FAST)
    fine_tune(pairs, name="split", max_steps=6, validation_fraction=0.1, resume=True,
              settings=FAST)  # fmt: skip
    again = json.loads((models_dir / "split.json").read_text())["training"]
    assert again["seed"] == 5 and again["steps"] == 6
    assert (
        again["data"]["held_out"] == first["data"]["held_out"]
        and len(first["data"]["held_out"]) == 2
    )


def test_an_existing_name_is_refused_unless_replace(models_dir):
    fine_tune(_pairs(3), name="taken", max_steps=2, seed=0, settings=FAST)
    before = (
        (models_dir / "taken.safetensors").read_bytes(),
        (models_dir / "taken.json").read_text(),
    )
    with pytest.raises(FileExistsError, match="replace=True"):
        fine_tune(_pairs(3), name="taken", max_steps=2, seed=1, settings=FAST)
    assert (models_dir / "taken.safetensors").read_bytes() == before[0]
    assert (models_dir / "taken.json").read_text() == before[1]
    fine_tune(_pairs(3), name="taken", max_steps=3, seed=1, settings=FAST, replace=True)
    assert json.loads((models_dir / "taken.json").read_text())["training"]["steps"] == 3
    with pytest.raises(ValueError, match="preset"):
        fine_tune(_pairs(3), name="default", max_steps=2, settings=FAST)
    with pytest.raises(ValueError, match="plain model name"):
        fine_tune(_pairs(3), name="../escape", max_steps=2, settings=FAST)


def _mount_tmpfs(mount, size: str):
    """A real small disk (a tmpfs; needs root: skipped elsewhere)."""
    mount.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], capture_output=True
    )
    if result.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    return mount


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB disk, smaller than a model."""
    yield _mount_tmpfs(tmp_path / "disk", "2m")
    subprocess.run(["umount", str(tmp_path / "disk")], capture_output=True)


@pytest.fixture
def one_model_disk(tmp_path):
    """An 8 MiB disk: room for one bundled-size model (5 MB), not for a second."""
    yield _mount_tmpfs(tmp_path / "disk", "8m")
    subprocess.run(["umount", str(tmp_path / "disk")], capture_output=True)


def test_a_full_disk_leaves_no_model_and_no_listed_entry(small_disk, monkeypatch):
    monkeypatch.setenv("NAPARI_DIFFDENOISE_MODELS", str(small_disk))
    with pytest.warns(RuntimeWarning, match="cannot be resumed"):
        with pytest.raises(OSError, match="could not save the model 'full'.*nothing was saved"):
            fine_tune(_pairs(3), name="full", max_steps=3, seed=0, settings=FAST)
    assert not [p for p in small_disk.iterdir() if not p.name.startswith(".checkpoints")]
    assert "full" not in list_models()


def test_replacing_a_model_on_a_full_disk_keeps_the_old_one(one_model_disk, monkeypatch):
    """replace=True writes the new model beside the old one first: when that fails, the old
    model is still there, byte for byte, and still listed."""
    import shutil

    from napari_diffdenoise.model.registry import bundled_dir

    monkeypatch.setenv("NAPARI_DIFFDENOISE_MODELS", str(one_model_disk))
    for suffix in (".safetensors", ".json"):
        shutil.copy(bundled_dir() / f"default{suffix}", one_model_disk / f"taken{suffix}")
    before = {p.name: p.read_bytes() for p in one_model_disk.glob("taken.*")}
    with pytest.warns(RuntimeWarning, match="cannot be resumed"):
        with pytest.raises(OSError, match="'taken'.*the existing model is unchanged"):
            fine_tune(_pairs(3), name="taken", max_steps=3, seed=0, settings=FAST, replace=True)
    assert {p.name: p.read_bytes() for p in one_model_disk.glob("taken.*")} == before
    assert "taken" in list_models()
    assert not (one_model_disk / ".staging").exists()


@pytest.mark.gpu("cuda")
def test_a_fine_tune_on_cuda_runs_in_mixed_precision_and_saves(models_dir):
    records = []
    fine_tune(_pairs(5), name="gpu", device="cuda", max_steps=40, seed=0,
              validation_fraction=0.2, settings=FAST, progress=records.append)  # fmt: skip
    meta = json.loads((models_dir / "gpu.json").read_text())["training"]
    assert meta["device"].startswith("cuda") and meta["steps"] == 40
    assert meta["validation"]["best"] > meta["validation"]["base"] + 1.0
    assert all(np.isfinite(r.loss) for r in records[1:])
