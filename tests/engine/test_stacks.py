"""Stacks of any size: sources (TIFF, zarr, OME-Zarr), axes and channels, tiling, the zarr sink,
resume after a real kill, and the command line job."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from napari_diffdenoise import denoise
from napari_diffdenoise.cli import main
from napari_diffdenoise.engine.source import open_source
from napari_diffdenoise.engine.tiling import plan_tiles

ROOT = Path(__file__).resolve().parents[2]


def _stack(planes=3, h=48, w=64, seed=0, dtype=np.uint16):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    clean = 800 + 300 * np.sin(xx / 5.0) * np.cos(yy / 7.0)
    stack = np.stack([clean * (1 + 0.1 * i) + rng.normal(0, 40, (h, w)) for i in range(planes)])
    return np.clip(stack, 0, 65535).astype(dtype)


def _write_ome(path: Path, data: np.ndarray, axes: str, scale, channels=None):
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    root.create_array("0", shape=data.shape, chunks=data.shape, dtype=data.dtype)[:] = data
    kinds = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}
    axes_meta = [
        {
            "name": a.lower(),
            "type": kinds[a.lower()],
            **({"unit": "micrometer"} if a in "ZYX" else {}),
        }
        for a in axes
    ]
    root.attrs["multiscales"] = [
        {
            "version": "0.4",
            "name": "cells",
            "axes": axes_meta,
            "datasets": [
                {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": scale}]}
            ],
        }
    ]
    if channels:
        root.attrs["omero"] = {"channels": [{"label": c} for c in channels]}


# ---------------------------------------------------------------- tiling
@pytest.mark.parametrize("shape, tile", [((300, 200), 128), ((64, 500), 96), ((50, 50), 64)])
def test_tiles_cover_the_plane_and_weights_normalise(shape, tile):
    tiles = plan_tiles(shape, tile)
    covered = np.zeros(shape, np.int32)
    wsum = np.zeros(shape, np.float32)
    for t in tiles:
        covered[t.keep] += 1
        wsum[t.keep] += t.weight
        assert t.weight.shape == (
            t.keep[0].stop - t.keep[0].start,
            t.keep[1].stop - t.keep[1].start,
        )
        # the kept tile lies inside what is read, at the inner offsets
        assert t.read[0].start <= t.keep[0].start and t.keep[0].stop <= t.read[0].stop
        assert t.inner[0].stop - t.inner[0].start == t.keep[0].stop - t.keep[0].start
        assert max(t.read_shape) <= tile + 2 * 48
    assert covered.min() >= 1 and (wsum > 0).all()
    # blending a constant with the normalised weights gives the constant back
    acc = np.zeros(shape, np.float32)
    for t in tiles:
        acc[t.keep] += t.weight * 3.0
    np.testing.assert_allclose(acc / wsum, 3.0, rtol=1e-6)


def test_result_does_not_depend_on_the_tile_size():
    noisy = _stack(1, 160, 200)[0].astype(np.float32)
    whole = denoise(noisy, sigma=40)
    for tile in (64, 96, 128):
        tiled = denoise(noisy, sigma=40, tile_size=tile)
        assert np.abs(tiled - whole).max() < 0.01, tile  # float rounding, not seams


# ---------------------------------------------------------------- sources
def test_tiff_zarr_and_numpy_inputs_agree(tmp_path):
    stack = _stack(3)
    tifffile.imwrite(tmp_path / "s.tif", stack, metadata={"axes": "ZYX"})
    zarr.create_array(str(tmp_path / "s2.zarr"), data=stack, chunks=(1, 48, 64), zarr_format=2)
    zarr.create_array(str(tmp_path / "s3.zarr"), data=stack, chunks=(1, 48, 64), zarr_format=3)
    expected = denoise(stack)
    for path in ("s.tif", "s2.zarr", "s3.zarr"):
        source = open_source(tmp_path / path)
        assert source.axes == "ZYX" and source.is_lazy
        np.testing.assert_array_equal(denoise(tmp_path / path), expected, err_msg=path)


def test_ome_zarr_axes_scale_and_channels_carry_to_the_output(tmp_path):
    data = np.stack([_stack(2, seed=1), _stack(2, seed=2) // 10])  # C, Z, Y, X
    data = np.moveaxis(data, 0, 1)  # Z, C, Y, X
    _write_ome(tmp_path / "in.ome.zarr", data, "ZCYX", [2.0, 1.0, 0.5, 0.5], ["dapi", "gfp"])
    source = open_source(tmp_path / "in.ome.zarr")
    assert source.axes == "ZCYX" and source.scale == (2.0, 1.0, 0.5, 0.5)
    assert source.channel_names == ["dapi", "gfp"]
    out = denoise(tmp_path / "in.ome.zarr", out=tmp_path / "out.ome.zarr", sigma=None)
    assert isinstance(out, zarr.Array) and out.shape == data.shape and out.dtype == data.dtype
    root = zarr.open_group(str(tmp_path / "out.ome.zarr"), mode="r")
    multiscale = root.attrs["multiscales"][0]
    assert [a["name"] for a in multiscale["axes"]] == ["z", "c", "y", "x"]
    assert multiscale["datasets"][0]["coordinateTransformations"][0]["scale"] == [
        2.0,
        1.0,
        0.5,
        0.5,
    ]
    assert [c["label"] for c in root.attrs["omero"]["channels"]] == ["dapi", "gfp"]
    record = root.attrs["napari_diffdenoise"]
    assert record["status"] == "complete" and record["model_hash"].startswith("sha256:")
    # channels are normalised separately: each equals denoising that channel alone
    for c in range(2):
        np.testing.assert_allclose(
            np.asarray(out[:, c]).astype(float), denoise(data[:, c]).astype(float), atol=1
        )


def test_axes_argument(tmp_path):
    stack = _stack(2)
    cyx = denoise(stack, axes="CYX")
    np.testing.assert_array_equal(cyx[1], denoise(stack[1]))
    with pytest.raises(ValueError, match="do not fit"):
        denoise(stack, axes="YX")
    with pytest.raises(ValueError, match="Y and X"):
        denoise(stack, axes="CZT")
    # X before Y: the planes are transposed, denoised and put back
    np.testing.assert_allclose(
        denoise(stack[0].T, axes="XY").T.astype(float), denoise(stack[0]).astype(float), atol=1
    )


def test_a_2d_time_map_applies_to_every_plane_and_an_nd_one_as_is():
    stack = _stack(2).astype(np.float32)
    t2 = np.full((48, 64), 0.2, np.float32)
    t2[:, :10] = 0
    both = denoise(stack, t2)
    np.testing.assert_array_equal(both[:, :, :10], stack[:, :, :10])  # t = 0: left alone
    tn = np.stack([t2, np.zeros_like(t2)])
    mixed = denoise(stack, tn)
    np.testing.assert_array_equal(mixed[1], stack[1])
    np.testing.assert_array_equal(mixed[0], both[0])
    with pytest.raises(ValueError, match="matches neither a plane"):
        denoise(stack, np.zeros((3, 48, 64), np.float32))


# ---------------------------------------------------------------- sink
def test_zarr_output_equals_the_in_memory_result_and_records_the_job(tmp_path):
    stack = _stack(3)
    out = denoise(stack, out=tmp_path / "o.zarr", sigma=40)
    assert isinstance(out, zarr.Array)
    np.testing.assert_array_equal(np.asarray(out), denoise(stack, sigma=40))
    record = dict(out.attrs)["napari_diffdenoise"]
    assert record["status"] == "complete"
    assert record["model"] == "default" and record["parameters"]["device"] == "auto"
    assert record["version"]
    assert sorted(os.listdir(tmp_path / "o.zarr" / ".napari_diffdenoise" / "done")) == [
        "0",
        "1",
        "2",
    ]


def test_a_store_keeps_the_uncertainty_of_stochastic_samples(tmp_path):
    """samples > 1 with out=: the spread is written into the store beside the job's records,
    equal to the in-memory one, and a rerun of the finished job hands it back."""
    stack = _stack(2, 48, 64)
    kw = {"sigma": 30, "sampler": "indi", "steps": 2, "eta": 0.5, "samples": 2, "seed": 3}
    mean, std = denoise(stack, **kw, return_std=True)
    out, out_std = denoise(stack, out=tmp_path / "o.zarr", **kw, return_std=True)
    assert (
        out_std.store is not None
        and (tmp_path / "o.zarr" / ".napari_diffdenoise" / "std.zarr").is_dir()
    )
    np.testing.assert_allclose(np.asarray(out), mean, atol=1e-3)
    np.testing.assert_allclose(np.asarray(out_std), std, atol=1e-3)
    assert float(np.asarray(out_std).mean()) > 0
    again, again_std = denoise(stack, out=tmp_path / "o.zarr", **kw, return_std=True)
    np.testing.assert_array_equal(np.asarray(again_std), np.asarray(out_std))


def test_outputs_that_are_not_this_job_are_never_touched(tmp_path):
    stack = _stack(2)
    foreign = tmp_path / "foreign.zarr"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not an output"):
        denoise(stack, out=foreign)
    assert (foreign / "keep.txt").read_text() == "mine"
    denoise(stack, out=tmp_path / "a.zarr", sigma=30)
    with pytest.raises(FileExistsError, match="different job"):
        denoise(stack, out=tmp_path / "a.zarr", sigma=31)
    replaced = denoise(stack, out=tmp_path / "a.zarr", sigma=31, overwrite=True)
    assert dict(replaced.attrs)["napari_diffdenoise"]["status"] == "complete"
    (tmp_path / "file.zarr").write_text("x")
    with pytest.raises(FileExistsError, match="is a file"):
        denoise(stack, out=tmp_path / "file.zarr")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        denoise(stack, out=tmp_path / "missing" / "o.zarr")
    zarr.create_array(str(tmp_path / "in.zarr"), data=stack, zarr_format=2)
    with pytest.raises(ValueError, match="inside the input"):
        denoise(tmp_path / "in.zarr", out=tmp_path / "in.zarr" / "o.zarr")


def test_the_input_file_is_never_written(tmp_path):
    stack = _stack(2)
    tifffile.imwrite(tmp_path / "s.tif", stack)
    before = (tmp_path / "s.tif").read_bytes(), os.stat(tmp_path / "s.tif").st_mtime_ns
    denoise(tmp_path / "s.tif", out=tmp_path / "o.zarr")
    assert ((tmp_path / "s.tif").read_bytes(), os.stat(tmp_path / "s.tif").st_mtime_ns) == before


def test_bad_paths(tmp_path):
    with pytest.raises(FileNotFoundError):
        denoise(tmp_path / "missing.tif")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="unsupported file type"):
        denoise(tmp_path / "notes.txt")
    (tmp_path / "broken.tif").write_bytes(b"not a tiff")
    with pytest.raises(OSError, match="not a readable TIFF"):
        denoise(tmp_path / "broken.tif")


# ---------------------------------------------------------------- resume
def _start_job(tmp_path: Path, *, planes: int, wait_for: int):
    """Start the CLI on a zarr stack of ``planes`` planes (one plane per network call, one
    thread) and wait until ``wait_for`` planes are recorded as finished; returns the command,
    the running process and the folder of completion records."""
    stack = _stack(planes, 64, 64)
    zarr.create_array(str(tmp_path / "in.zarr"), data=stack, chunks=(1, 64, 64), zarr_format=2)
    command = [sys.executable, "-m", "napari_diffdenoise.cli", "denoise", str(tmp_path / "in.zarr"),
               "-o", str(tmp_path / "out.zarr"), "--batch", "1", "--threads", "1"]  # fmt: skip
    job = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    done = tmp_path / "out.zarr" / ".napari_diffdenoise" / "done"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and (not done.is_dir() or len(os.listdir(done)) < wait_for):
        time.sleep(0.05)
    return command, job, done


def _uninterrupted(command: list[str], tmp_path: Path) -> np.ndarray:
    """The same job run to the end in one go (same process settings: threads, batch), into
    another store."""
    reference = tmp_path / "reference.zarr"
    command = [
        *command[: command.index("-o") + 1],
        str(reference),
        *command[command.index("-o") + 2 :],
    ]
    subprocess.run(command, check=True, capture_output=True, timeout=300)
    return np.asarray(zarr.open_array(str(reference)))


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_same_result(tmp_path):
    command, job, done = _start_job(tmp_path, planes=12, wait_for=3)
    job.send_signal(signal.SIGKILL)
    job.communicate()
    finished = len(os.listdir(done))
    assert 3 <= finished < 12, "the run was not killed half-way"
    record = zarr.open_array(str(tmp_path / "out.zarr")).attrs["napari_diffdenoise"]
    assert record["status"] == "running"  # never taken for a finished output
    rerun = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    resumed = zarr.open_array(str(tmp_path / "out.zarr"))
    assert resumed.attrs["napari_diffdenoise"]["status"] == "complete"
    np.testing.assert_array_equal(np.asarray(resumed), _uninterrupted(command, tmp_path))


# ---------------------------------------------------------------- command line
def test_cli_job_on_a_stack_matches_the_api(tmp_path, capsys):
    stack = _stack(3)
    tifffile.imwrite(tmp_path / "s.tif", stack, metadata={"axes": "ZYX"})
    assert (
        main(["denoise", str(tmp_path / "s.tif"), "-o", str(tmp_path / "s.zarr"), "--sigma", "40"])
        == 0
    )
    np.testing.assert_array_equal(
        np.asarray(zarr.open_array(str(tmp_path / "s.zarr"))), denoise(stack, sigma=40)
    )
    # a TIFF output for small jobs
    assert (
        main(["denoise", str(tmp_path / "s.tif"), "-o", str(tmp_path / "o.tif"), "--sigma", "40"])
        == 0
    )
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "o.tif"), denoise(stack, sigma=40))


def test_cli_one_output_per_input(tmp_path):
    for i in range(2):
        tifffile.imwrite(tmp_path / f"in{i}.tif", _stack(1, seed=i)[0])
    (tmp_path / "results").mkdir()
    assert (
        main(
            ["denoise", str(tmp_path / "in*.tif"), "-o", str(tmp_path / "results"), "--sigma", "30"]
        )
        == 0
    )
    assert sorted(os.listdir(tmp_path / "results")) == ["in0.denoised.zarr", "in1.denoised.zarr"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["missing.tif", "-o", "o.zarr"], "no such file"),
        (["s.tif", "-o", "o.xyz"], "unknown output type"),
        (["s.tif", "-o", "nowhere/o.zarr"], "does not exist"),
        (["s.tif", "s.tif", "-o", "o.zarr"], "existing folder"),
        (["s.tif", "-o", "o.zarr", "--model", "nope"], "unknown model"),
        (["s.tif", "-o", "o.zarr", "--axes", "CYX"], "do not fit"),
        (["s.tif", "-o", "o.zarr", "--tile", "8"], "tile_size"),
    ],
)
def test_cli_user_mistakes_are_one_line_errors(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    tifffile.imwrite(tmp_path / "s.tif", _stack(1)[0])
    assert main(["denoise", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error:") and message in err
    assert not (tmp_path / "o.zarr").exists()


def test_cli_help_documents_the_job():
    result = subprocess.run(
        [sys.executable, "-m", "napari_diffdenoise.cli", "denoise", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    for flag in (
        "--axes",
        "--sigma",
        "--time-map",
        "--tile",
        "--batch",
        "--overwrite",
        "--workers",
        "--scheduler",
        "resume",
        "-o OUTPUT",
    ):
        assert flag in result.stdout, flag


# ---------------------------------------------------------------- devices
def test_out_of_memory_halves_the_batch_and_gives_the_same_result():
    """A device that runs out of memory for batches above two tiles: the batch is halved and
    retried, and the planes come out as with a batch of one (a real OOM needs a GPU)."""
    import torch

    from napari_diffdenoise import load_model
    from napari_diffdenoise.engine.network import PlaneJob, iter_network, network_call

    net = load_model("default").net
    call = network_call(net, torch.device("cpu"), None)
    sizes = []

    def small_device(x, y, t):
        sizes.append(x.shape[0])
        if x.shape[0] > 2:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return call(x, y, t)

    planes = _stack(4).astype(np.float32) / 2000
    jobs = [
        PlaneJob(torch.from_numpy(p).view(1, 1, 48, 64), torch.full((1, 1, 48, 64), 0.05))
        for p in planes
    ]
    args = dict(
        tile_size=64,
        multiple=net.config.multiple,
        device=torch.device("cpu"),
        sampler="direct",
        steps=1,
        eta=0.0,
        sigma_max=0.5,
    )
    progress = []
    steps = iter_network(jobs, call=small_device, batch_size=8, progress=(0, 4), **args)
    from napari_diffdenoise._progress import run_to_end

    halved = run_to_end(steps, progress.append)
    one = run_to_end(iter_network(jobs, call=call, batch_size=1, progress=(0, 4), **args))
    assert sizes[:3] == [4, 2, 2] and progress[-1] == (4, 4)
    for a, b in zip(halved, one):
        np.testing.assert_allclose(a.mean, b.mean, atol=1e-5)


@pytest.mark.gpu
def test_a_stack_on_the_gpu_matches_the_cpu():
    import torch

    device = "cuda" if torch.cuda.is_available() else "mps"
    stack = _stack(6).astype(np.float32)
    gpu = denoise(stack, sigma=40, device=device)
    cpu = denoise(stack, sigma=40, device="cpu")
    assert np.abs(gpu - cpu).max() < 0.05 * 40
    half = denoise(stack, sigma=40, device=device, precision="bfloat16")
    assert np.abs(half - cpu).max() < 0.5 * 40


def test_ome_output_with_a_pyramid(tmp_path):
    data = _stack(2, 160, 192)
    _write_ome(tmp_path / "in.ome.zarr", data, "ZYX", [1.0, 0.2, 0.2])
    denoise(tmp_path / "in.ome.zarr", out=tmp_path / "out.ome.zarr", sigma=40, pyramid=True)
    root = zarr.open_group(str(tmp_path / "out.ome.zarr"), mode="r")
    datasets = root.attrs["multiscales"][0]["datasets"]
    assert [d["path"] for d in datasets] == ["0", "1"]  # 160 → 80 (the next would be under 64)
    assert datasets[1]["coordinateTransformations"][0]["scale"] == [1.0, 0.4, 0.4]
    level0, level1 = np.asarray(root["0"]).astype(float), np.asarray(root["1"]).astype(float)
    assert level1.shape == (2, 80, 96)
    np.testing.assert_allclose(level1, level0.reshape(2, 80, 2, 96, 2).mean(axis=(2, 4)), atol=0.5)


@pytest.fixture
def small_disk(tmp_path):
    """A 256 KiB tmpfs: a real full disk (needs root; skipped where it cannot be mounted)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True
    )
    if result.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    yield mount
    subprocess.run(["umount", str(mount)], capture_output=True)


def test_a_full_disk_fails_cleanly_and_leaves_a_resumable_job(tmp_path, small_disk):
    rng = np.random.default_rng(0)
    stack = rng.integers(0, 65535, (16, 128, 128), dtype=np.uint16)  # incompressible, 512 KiB
    with pytest.raises(OSError):
        denoise(stack, out=small_disk / "o.zarr", sigma=0.5)  # (σ ≪ the noise: kept as is)
    record = json.loads((small_disk / "o.zarr" / ".zattrs").read_text())["napari_diffdenoise"]
    assert record["status"] == "running"  # never taken for a finished output
    done = os.listdir(small_disk / "o.zarr" / ".napari_diffdenoise" / "done")
    assert len(done) < 16


@pytest.mark.slow
def test_sigterm_stops_like_ctrl_c_and_the_same_command_resumes(tmp_path):
    command, job, _ = _start_job(tmp_path, planes=10, wait_for=2)
    job.send_signal(signal.SIGTERM)
    _, err = job.communicate(timeout=120)
    assert job.returncode == 130, err
    assert "run the same command again" in err
    assert (
        zarr.open_array(str(tmp_path / "out.zarr")).attrs["napari_diffdenoise"]["status"]
        == "running"
    )
    assert subprocess.run(command, capture_output=True, timeout=300).returncode == 0
    np.testing.assert_array_equal(
        np.asarray(zarr.open_array(str(tmp_path / "out.zarr"))), _uninterrupted(command, tmp_path)
    )


def test_napari_layers_multiscale_and_lazy():
    """A multiscale Image layer is denoised at level 0; a dask-backed one gives a lazy result;
    a Labels layer is refused as an image."""
    import dask.array as da
    from napari.layers import Image, Labels

    stack = _stack(2)
    small = stack[:, ::2, ::2]
    layer = Image([stack, small], multiscale=True, name="cells")
    np.testing.assert_array_equal(denoise(layer, sigma=40), denoise(stack, sigma=40))
    lazy = denoise(Image(da.from_array(stack, chunks=(1, 48, 64)), name="lazy"), sigma=40)
    assert isinstance(lazy, da.Array)
    np.testing.assert_allclose(
        lazy.compute().astype(float), denoise(stack, sigma=40).astype(float), atol=1
    )
    with pytest.raises(TypeError, match="Labels layer"):
        denoise(Labels(np.zeros((48, 64), np.uint8), name="mask"))
