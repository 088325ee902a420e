"""The dask path: ``denoise`` on dask arrays, and ``run_distributed`` on a real cluster."""

from __future__ import annotations

import contextlib
import json
import pickle

import dask.array as da
import numpy as np
import pytest
import zarr

from napari_diffdenoise import denoise
from napari_diffdenoise.engine import network
from napari_diffdenoise.engine.lazy import _as_dask, _FileArray, denoise_lazy, run_distributed
from napari_diffdenoise.engine.options import DenoiseOptions
from napari_diffdenoise.engine.sink import JOB_KEY, JobMismatch
from napari_diffdenoise.engine.source import open_source


def _stack(n=4, h=64, w=80, seed=0, dtype=np.uint16, offset=1500.0, amp=800.0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    planes = [offset + amp * np.sin(yy / (5.0 + k)) * np.cos(xx / 7.0) + 40.0 * k for k in range(n)]
    noisy = np.stack(planes) + rng.normal(0, 0.05 * amp, (n, h, w))
    return np.clip(noisy, 0, None).astype(dtype)


def _zarr(path, data, chunks=None):
    chunks = chunks or (1,) * (data.ndim - 2) + data.shape[-2:]
    array = zarr.create_array(str(path), shape=data.shape, chunks=chunks, dtype=data.dtype)
    array[...] = data
    return path


def _close(got, ref):
    """Equal to float rounding: integers within one level, floats within 1e-3 of the range."""
    integer = np.issubdtype(np.asarray(ref).dtype, np.integer)
    got = np.asarray(got, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() <= (1.0 if integer else 1e-3 * np.ptp(ref))


def test_result_is_lazy_until_computed(tmp_path, monkeypatch):
    data = _stack()
    reads = []

    def counted(block):
        if block.size > 1:  # not dask's meta probes
            reads.append(block.shape)
        return block

    source = da.from_zarr(str(_zarr(tmp_path / "in.zarr", data))).map_blocks(counted)
    calls = []
    real = network.iter_network

    def spy(*args, **kwargs):
        calls.append(1)
        return (yield from real(*args, **kwargs))

    monkeypatch.setattr(network, "iter_network", spy)
    lazy = denoise(source, sigma=50)
    assert isinstance(lazy, da.Array)
    assert lazy.shape == data.shape and lazy.dtype == np.uint16
    assert calls == []  # no plane denoised yet
    assert len(reads) <= data.shape[0]  # only the plan's intensity sample was read
    result = lazy.compute()
    assert calls and isinstance(result, np.ndarray) and result.dtype == np.uint16


@pytest.mark.parametrize(
    ("dtype", "noise"),
    [(np.uint16, {}), (np.uint16, {"sigma": 60.0}), (np.float32, {})],
    ids=["blind-uint16", "sigma-uint16", "blind-float32"],
)
def test_equals_in_process(tmp_path, dtype, noise):
    data = _stack(dtype=dtype)
    lazy = denoise(da.from_zarr(str(_zarr(tmp_path / "in.zarr", data))), **noise)
    ref = denoise(data, **noise)
    got = lazy.compute()
    assert got.dtype == ref.dtype
    _close(got, ref)


def test_channels_are_normalised_like_in_process(tmp_path):
    a = _stack(n=2, seed=1, offset=300.0, amp=200.0)
    b = _stack(n=2, seed=2, offset=20000.0, amp=9000.0)
    data = np.stack([a[0], b[0]])  # CYX: two channels of very different ranges
    lazy = denoise(da.from_zarr(str(_zarr(tmp_path / "in.zarr", data))), axes="CYX")
    ref = denoise(data, axes="CYX")
    _close(lazy.compute(), ref)


def test_noise_maps_follow_the_blocks(tmp_path):
    data = _stack(n=3).astype(np.float32)
    stack_map = np.linspace(0.02, 0.1, data.size, dtype=np.float32).reshape(data.shape)
    lazy = denoise(da.from_array(data, chunks=(1, 32, 40)), stack_map)
    _close(lazy.compute(), denoise(data, stack_map))
    # X before Y, with a plane-shaped σ map in (rows = Y, columns = X) order
    zxy = np.ascontiguousarray(data.transpose(0, 2, 1))  # (Z, X, Y)
    sigma = np.linspace(20, 90, 64 * 80, dtype=np.float32).reshape(64, 80)
    lazy = denoise(da.from_array(zxy, chunks=(2, 80, 64)), sigma=sigma, axes="ZXY")
    _close(lazy.compute(), denoise(zxy, sigma=sigma, axes="ZXY"))


def test_blocks_hold_whole_planes():
    data = da.zeros((6, 64, 80), dtype=np.float32, chunks=(6, 32, 40)) + 1
    options = DenoiseOptions()
    assert denoise_lazy(data, sigma=1, options=options).chunks[1:] == ((64,), (80,))
    assert denoise_lazy(data, sigma=1, options=options, planes_per_block=2).chunks[0] == (2,) * 3
    assert denoise_lazy(data.rechunk((1, 64, 80)), sigma=1, options=options).chunks[0] == (1,) * 6


def test_tasks_carry_options_not_the_network(tmp_path):
    from napari_diffdenoise import load_model

    cloudpickle = pytest.importorskip("cloudpickle")
    data = _stack(n=2)
    lazy = denoise(da.from_zarr(str(_zarr(tmp_path / "in.zarr", data))), model=load_model())
    size = len(cloudpickle.dumps(dict(lazy.__dask_graph__())))
    assert size < 200_000  # the weights alone are 5 MB


def test_tiff_blocks_reopen_the_file(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    data = _stack(n=3)
    path = tmp_path / "in.tif"
    tifffile.imwrite(path, data, metadata={"axes": "ZYX"})
    view = pickle.loads(pickle.dumps(_as_dask(open_source(path))))
    np.testing.assert_array_equal(view.compute(), data)
    assert isinstance(pickle.loads(pickle.dumps(_FileArray(str(path), data.shape, "u2"))), object)


def test_run_distributed_in_process_writes_resumes_and_refuses(tmp_path):
    data = _stack(n=3)
    src = _zarr(tmp_path / "in.zarr", data)
    out = tmp_path / "out.zarr"
    steps = []
    options = DenoiseOptions()
    written = run_distributed(src, out, options=options, progress=lambda *s: steps.append(s))
    _close(written[...], denoise(data))
    assert steps[0] == (0, 3) and steps[-1] == (3, 3)
    attrs = zarr.open_array(str(out)).attrs[JOB_KEY]
    assert attrs["status"] == "complete" and attrs["model"] == "default"
    assert attrs["model_hash"].startswith("sha256:") and "parameters" in attrs and attrs["version"]
    # the same job again: nothing left to do
    steps.clear()
    run_distributed(src, out, options=options, progress=lambda *s: steps.append(s))
    assert steps == [(3, 3)]
    # another job's store, and a folder that is no output at all: refused, untouched
    with pytest.raises(JobMismatch, match="different job"):
        run_distributed(src, out, options=DenoiseOptions(ensemble=2))
    with pytest.raises(JobMismatch, match="different job"):  # another noise input
        run_distributed(src, out, options=options, sigma=25)
    foreign = tmp_path / "foreign.zarr"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not an output"):
        run_distributed(src, foreign, options=options)
    assert (foreign / "keep.txt").read_text() == "mine"
    run_distributed(src, foreign, options=options, sigma=10, overwrite=True)
    assert not (foreign / "keep.txt").exists()
    # bad noise input: an error before any store is made
    with pytest.raises(ValueError, match="matches neither"):
        run_distributed(src, tmp_path / "never.zarr", options=options, sigma=np.ones((3, 3)))
    assert not (tmp_path / "never.zarr").exists()
    with pytest.raises(ValueError, match="workers"):
        run_distributed(src, tmp_path / "never.zarr", options=options, workers=0)


def test_run_distributed_ome_zarr_layout(tmp_path):
    data = _stack(n=2)
    src = tmp_path / "in.ome.zarr"
    root = zarr.open_group(str(src), mode="w", zarr_format=2)
    root.create_array("0", shape=data.shape, chunks=(1, 64, 80), dtype=data.dtype)[...] = data
    axes = [{"name": "z", "type": "space"}] + [
        {"name": n, "type": "space", "unit": "micrometer"} for n in "yx"
    ]
    transform = [{"type": "scale", "scale": [2.0, 0.5, 0.5]}]
    root.attrs["multiscales"] = [
        {
            "version": "0.4",
            "axes": axes,
            "datasets": [{"path": "0", "coordinateTransformations": transform}],
        }
    ]
    out = tmp_path / "out.ome.zarr"
    run_distributed(src, out, options=DenoiseOptions(), sigma=50)
    group = zarr.open_group(str(out), mode="r")
    meta = group.attrs["multiscales"][0]
    assert [a["name"] for a in meta["axes"]] == ["z", "y", "x"]
    assert meta["datasets"][0]["coordinateTransformations"] == transform
    assert group.attrs[JOB_KEY]["status"] == "complete"
    _close(group["0"][...], denoise(data, sigma=50))
    json.dumps(dict(group.attrs))  # plain JSON


@pytest.mark.slow
@pytest.mark.parametrize("connect", ["workers", "scheduler"])
def test_run_distributed_on_a_local_cluster(tmp_path, connect):
    """``--workers 2`` (a LocalCluster of its own) and ``--scheduler ADDR`` (a running one)."""
    distributed = pytest.importorskip("distributed")
    data = _stack(n=4)
    src = _zarr(tmp_path / "in.zarr", data)
    steps = []
    with contextlib.ExitStack() as stack:
        if connect == "workers":
            where = {"workers": 2}
        else:
            cluster = stack.enter_context(
                distributed.LocalCluster(
                    n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
                )
            )
            where = {"scheduler": cluster.scheduler_address}
        out = run_distributed(
            src,
            tmp_path / "out.zarr",
            options=DenoiseOptions(),
            planes_per_block=1,
            progress=lambda *s: steps.append(s),
            **where,
        )
    _close(out[...], denoise(data))
    assert steps[-1] == (4, 4) and len(steps) == 5
    attrs = zarr.open_array(str(tmp_path / "out.zarr")).attrs[JOB_KEY]
    assert attrs["status"] == "complete" and attrs["input"]["shape"] == [4, 64, 80]
    done = sorted(p.name for p in (tmp_path / "out.zarr" / f".{JOB_KEY}" / "done").iterdir())
    assert done == ["0", "1", "2", "3"]
