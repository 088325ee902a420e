"""The dask path: ``denoise`` on a dask array, and jobs on a dask.distributed cluster.

:func:`denoise_lazy` (what ``denoise`` returns for a dask array) plans the job once, on the
client, exactly as the in-process engine does (:func:`.plan.make_plan`: one intensity range per
channel from at most 8 planes, the σ / time-map spec), then maps every block of whole YX planes
through :func:`.denoise.iter_denoise` with that plan. The result is a lazy dask array that runs
on any scheduler: threads, a ``distributed.LocalCluster``, dask-jobqueue on an HPC scheduler,
dask-cuda with one worker per GPU. The tasks carry the options (the model's name or weight
file), never the network: each worker process loads the model once and keeps it cached.

:func:`run_distributed` is the command line's ``--workers N`` / ``--scheduler ADDR``: it
denoises a stack block by block on a cluster into a zarr / OME-Zarr store with the same layout,
job records and resume rules as :class:`.sink.ZarrSink`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from .options import DenoiseOptions, Settings
from .plan import Plan
from .source import Source

__all__ = ["denoise_lazy", "run_distributed", "PLANES_PER_BLOCK"]

#: most planes in one block (task) by default; fewer when the input's chunks hold fewer
PLANES_PER_BLOCK = 4


# ---------------------------------------------------------------------------------- lazy array
def denoise_lazy(
    image,
    time_map=None,
    *,
    sigma=None,
    axes: str | None = None,
    options: DenoiseOptions,
    planes_per_block: int | None = None,
):
    """``denoise`` of a dask array (or a napari layer holding one): a lazy dask array.

    The intensity ranges (≤ 8 planes per channel) and the noise inputs are read and checked
    now; the planes are denoised when the result is computed, in blocks of whole YX planes
    (at most ``planes_per_block`` planes, default :data:`PLANES_PER_BLOCK`, never more than
    the input's chunks hold along the other axes). Every plane is normalised and denoised
    exactly as the in-process engine would, so the result equals ``denoise`` on the computed
    array to float rounding. With a ``seed`` and stochastic sampling each block draws its own
    reproducible noise (seeded from the seed and the block's position), which is not the
    in-process run's draw.

    Returns
    -------
    dask.array.Array
        Same shape as ``image``; dtype as ``denoise`` gives (the input's, float32 for float
        inputs, or ``output_dtype``).
    """
    from .plan import make_plan
    from .source import open_source

    source = open_source(image, axes=axes)
    array = _as_dask(source)
    settings = options.resolve()
    plan = make_plan(source, time_map, sigma)
    return _lazy(source, array, plan, settings, planes_per_block)


def _as_dask(source: Source):
    """The source's array as a dask array (zarr and file-backed arrays read lazily)."""
    import dask.array as da

    array = source.array
    if _is_dask_array(array):
        return array
    if source.path is not None and source.path.name.lower().endswith((".tif", ".tiff")):
        # tifffile's zarr view holds an open file: tasks reopen the file by path instead
        view = _FileArray(str(source.path.resolve()), source.shape, str(source.dtype))
        chunks = getattr(array, "chunks", None) or source.shape
        return da.from_array(view, chunks=chunks, asarray=True, lock=False, name=view.token)
    try:
        import zarr

        if isinstance(array, zarr.Array):
            return da.from_zarr(array)
    except ImportError:  # pragma: no cover - zarr is a dependency
        pass
    return da.from_array(array, chunks=getattr(array, "chunks", None) or "auto")


def _is_dask_array(data: Any) -> bool:
    return type(data).__module__.startswith("dask.") and hasattr(data, "map_blocks")


class _FileArray:
    """A picklable, read-only array view of a TIFF file (reopened by path in each process)."""

    def __init__(self, path: str, shape: tuple[int, ...], dtype: str) -> None:
        self.path = path
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.ndim = len(self.shape)
        from dask.base import tokenize

        st = os.stat(path)
        self.token = "diffdenoise-file-" + tokenize(path, st.st_size, st.st_mtime_ns)

    def __getitem__(self, index):
        return np.asarray(_open_file(self.path).array[index])


@lru_cache(maxsize=4)
def _open_file(path: str) -> Source:
    from .source import open_source

    return open_source(path)


def _block_chunks(array, source: Source, planes_per_block: int | None) -> tuple:
    """Chunks of whole YX planes, at most ``planes_per_block`` planes (and no more than the
    input's own chunks) per block."""
    budget = PLANES_PER_BLOCK if planes_per_block is None else int(planes_per_block)
    if budget < 1:
        raise ValueError(f"planes_per_block must be at least 1, got {planes_per_block}")
    sizes: dict[int, int] = {source.y_axis: -1, source.x_axis: -1}
    for axis in reversed(source.plane_axes):
        size = max(1, min(max(array.chunks[axis]), budget))
        sizes[axis] = size
        budget = max(1, budget // size)
    return tuple(sizes[i] for i in range(array.ndim))


def _portable_options(options: DenoiseOptions, settings: Settings) -> DenoiseOptions:
    """``options`` for the tasks: the model by preset name or weight file (never the loaded
    network), and the preset's choices written out so every worker runs the same settings."""
    from ..model.registry import PRESETS, model_path

    loaded = settings.loaded
    model = options.model
    if not isinstance(model, (str, os.PathLike)):
        model = str(Path(loaded.path).resolve())
        if loaded.name in PRESETS:
            try:
                if model_path(loaded.name)[0].resolve() == Path(loaded.path).resolve():
                    model = loaded.name
            except (OSError, LookupError):  # pragma: no cover - the preset's file is there
                pass
    elif not (isinstance(model, str) and model in PRESETS):
        model = str(Path(loaded.path).resolve())
    return replace(
        options,
        model=model,
        sampler=settings.sampler,
        steps=settings.steps,
        ensemble=settings.ensemble,
        wiener="auto" if settings.auto_wiener else settings.wiener,
    )


def _noise_maps(plan: Plan, array) -> tuple[tuple | None, Any]:
    """The plan's noise spec for the tasks, and its map as a dask array shaped and chunked like
    the image (or None: blind mode or one number for the whole stack)."""
    import dask.array as da

    noise = plan.noise
    if noise is None:
        return None, None
    values = noise[1]
    if np.ndim(values) == 0:
        return noise, None
    source = plan.source
    if tuple(np.shape(values)) == source.plane_shape and source.plane_shape != source.shape:
        plane = np.asarray(values)
        if source.x_axis < source.y_axis:
            plane = plane.T
        shape = [1] * len(source.shape)
        shape[source.y_axis], shape[source.x_axis] = source.plane_shape
        lazy_map = da.broadcast_to(da.from_array(plane.reshape(shape)), source.shape)
    else:
        lazy_map = values if _is_dask_array(values) else da.asarray(values)
    return (noise[0], None, *noise[2:]), lazy_map.rechunk(array.chunks)


def _lazy(source: Source, array, plan: Plan, settings: Settings, planes_per_block: int | None):
    from dask.base import tokenize

    from .denoise import _output_dtype

    dtype = _output_dtype(settings, source.dtype)
    array = array.rechunk(_block_chunks(array, source, planes_per_block))
    noise, noise_map = _noise_maps(plan, array)
    options = _portable_options(settings.options, settings)
    kwargs = dict(
        axes=source.axes,
        options=options,
        intensities=tuple(plan.intensities),
        noise=noise,
        channel_axis=source.axes.index("C") if "C" in source.axes else None,
    )
    name = "diffdenoise-" + tokenize(array.name, getattr(noise_map, "name", None), str(kwargs))
    inputs = (array,) if noise_map is None else (array, noise_map)
    return array.map_blocks(
        _denoise_block,
        *inputs[1:],
        dtype=dtype,
        meta=np.empty((0,) * array.ndim, dtype=dtype),
        name=name,
        **kwargs,
    )


def _denoise_block(
    block: np.ndarray,
    *maps: np.ndarray,
    axes: str,
    options: DenoiseOptions,
    intensities: tuple,
    noise: tuple | None,
    channel_axis: int | None,
    block_info: dict | None = None,
) -> np.ndarray:
    """One block of whole YX planes, through the in-process engine with the stack's plan."""
    from .._progress import run_to_end
    from .denoise import iter_denoise
    from .source import open_source

    ranges = list(intensities)
    position: tuple = ()
    if block_info is not None:
        if channel_axis is not None:
            start, stop = block_info[0]["array-location"][channel_axis]
            ranges = ranges[start:stop]
        position = tuple(block_info[None]["chunk-location"])
    if noise is not None and maps:
        noise = (noise[0], maps[0], *noise[2:])
    if options.seed is not None and position:
        state = np.random.SeedSequence([options.seed, *position]).generate_state(1, np.uint64)
        options = replace(options, seed=int(state[0]) & ((1 << 63) - 1))
    source = open_source(block, axes=axes)
    result = run_to_end(iter_denoise(source, plan=Plan(source, ranges, noise), options=options))
    return result.image


# ----------------------------------------------------------------------------- cluster jobs
def run_distributed(
    source_path_or_array,
    out: str | os.PathLike,
    *,
    options: DenoiseOptions,
    axes: str | None = None,
    sigma=None,
    time_map=None,
    workers: int | None = None,
    scheduler=None,
    overwrite: bool = False,
    pyramid: bool = False,
    planes_per_block: int | None = None,
    progress: Callable[[int, int], Any] | None = None,
):
    """Denoise a stack into a zarr store at ``out``, block by block on a dask cluster.

    Parameters
    ----------
    source_path_or_array
        A TIFF, zarr or OME-Zarr path (read lazily; workers read their own blocks, so on a
        cluster the path must be on a filesystem they share), or an array (numpy, zarr, dask).
    out
        The zarr store to write: an OME-Zarr image when the input is one, else a plain zarr
        array, with the job's attributes (``napari_diffdenoise``: model, model_hash,
        parameters, version, status) as :class:`.sink.ZarrSink` writes them. A rerun of the
        same job resumes it (planes already recorded as done are skipped); a store that is not
        this job's is refused (:class:`.sink.JobMismatch`) unless ``overwrite``.
    workers
        Start a ``distributed.LocalCluster`` of that many single-threaded worker processes.
    scheduler
        The address of a running dask.distributed scheduler (``"tcp://host:8786"``), or a
        ``distributed.Client``. With neither ``workers`` nor ``scheduler``, the current
        default client is used if there is one, else the blocks run one after another in this
        process.
    progress
        Called as ``progress(planes_done, planes_total)`` as blocks finish.

    Returns
    -------
    zarr.Array
        The written array (level 0 of an OME-Zarr output).
    """
    from .denoise import _output_dtype
    from .plan import make_plan
    from .sink import ZarrSink
    from .source import open_source

    if workers is not None and scheduler is not None:
        raise ValueError("give workers or scheduler, not both")
    if workers is not None and (
        isinstance(workers, bool) or not isinstance(workers, int) or workers < 1
    ):
        raise ValueError(f"workers must be a whole number >= 1, got {workers!r}")
    source = open_source(source_path_or_array, axes=axes)
    settings = options.resolve()
    plan = make_plan(source, time_map, sigma)  # every check before the store is touched
    dtype = _output_dtype(settings, source.dtype)
    job = {"input": source.describe(), **settings.metadata(noise=plan.describe_noise())}
    sink = ZarrSink(out, source, dtype, job, overwrite=overwrite, pyramid=pyramid)
    lazy = _lazy(source, _as_dask(source), plan, settings, planes_per_block)

    done = sink.done_planes()
    total = source.n_planes
    tasks, sizes = _store_tasks(lazy, source, sink, done)
    planes_done = total - sum(sizes)
    if progress is not None:
        progress(planes_done, total)
    client, cluster, own_client = _connect(workers, scheduler)
    try:
        if client is None:
            for task, size in zip(tasks, sizes):
                task.compute(scheduler="sync")
                planes_done += size
                if progress is not None:
                    progress(planes_done, total)
        else:
            from distributed import as_completed

            futures = client.compute(tasks)
            size_of = {f.key: s for f, s in zip(futures, sizes)}
            try:
                for future in as_completed(futures):
                    future.result()  # a failed block raises here
                    planes_done += size_of[future.key]
                    if progress is not None:
                        progress(planes_done, total)
            except BaseException:
                client.cancel(futures)
                raise
    finally:
        if own_client:
            client.close()
        if cluster is not None:
            cluster.close()
    sink.finish()
    return sink.array


def _connect(workers: int | None, scheduler):
    """``(client, cluster, whether the client is ours to close)``; no client: run here."""
    if workers is not None:
        from distributed import Client, LocalCluster

        cluster = LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        )
        try:
            return Client(cluster), cluster, True
        except BaseException:
            cluster.close()
            raise
    if scheduler is not None:
        from distributed import Client

        if isinstance(scheduler, Client):
            return scheduler, None, False
        return Client(scheduler), None, True
    try:
        from distributed import default_client

        return default_client(), None, False
    except (ImportError, ValueError):
        return None, None, False


def _store_tasks(lazy, source: Source, sink, done: set[int]) -> tuple[list, list[int]]:
    """One delayed task per block with planes still to do: denoise, write, record as done."""
    import dask

    from .sink import JOB_KEY

    blocks = lazy.to_delayed()
    starts = [np.concatenate([[0], np.cumsum(c)]).astype(int) for c in lazy.chunks]
    target = (str(sink.path), "0" if sink.ome else None)
    records = str(sink.path / f".{JOB_KEY}" / "done")
    lead = source.plane_axes
    tasks, sizes = [], []
    for index in np.ndindex(*lazy.numblocks):
        region = tuple(
            slice(int(starts[axis][i]), int(starts[axis][i + 1])) for axis, i in enumerate(index)
        )
        ranges = [range(region[axis].start, region[axis].stop) for axis in lead]
        numbers = (
            [
                int(n)
                for n in np.ravel_multi_index(
                    np.meshgrid(*ranges, indexing="ij"), source.planes_shape
                ).ravel()
            ]
            if lead
            else [0]
        )
        if set(numbers) <= done:
            continue
        task = dask.delayed(_store_block, pure=False)(
            blocks[index], target, region, records, numbers
        )
        tasks.append(task)
        sizes.append(len(numbers))
    return tasks, sizes


def _store_block(
    block: np.ndarray, target: tuple[str, str | None], region: tuple, records: str, numbers
) -> int:
    """Write a denoised block into the store (chunk-aligned: blocks hold whole planes and the
    store's chunks one plane), then record its planes as done."""
    import zarr

    store, path = target
    array = zarr.open_array(store, path=path or "", mode="r+")
    array[region] = block
    for n in numbers:
        Path(records, str(n)).touch()
    return len(numbers)
