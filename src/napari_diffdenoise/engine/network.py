"""Tiles → batches → network → blend.

:func:`iter_network` runs the network over the tiles of several planes at once: tiles of the
same size (from one plane or several) are stacked into batches so that the device stays busy,
each batch is sampled from the tiles' own start times, and the estimates are blended back into
float32 accumulators. On out-of-memory the batch is halved and retried. It yields progress (one
unit per tile, ensemble member, sample and sampler step) and returns each plane's estimate.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .tiling import Tile, plan_tiles

__all__ = ["PlaneJob", "PlaneEstimate", "iter_network", "network_call", "units_per_plane", "PAD"]

#: pixels of reflection padding around every tile (the UNet sees no hard border)
PAD = 8


@dataclass
class PlaneJob:
    """A plane to run: normalised observation and time map (torch tensors ``(1, 1, h, w)``),
    ensemble members, samples, and whether the identity member's estimate is kept."""

    y: Any
    tau: Any
    members: int = 1
    samples: int = 1
    want_first: bool = False


@dataclass
class PlaneEstimate:
    mean: np.ndarray
    spread: np.ndarray | None = None
    first: np.ndarray | None = None
    _acc: dict = field(default_factory=dict, repr=False)


def units_per_plane(n_tiles: int, members: int, samples: int, steps: int) -> int:
    """Progress units of one plane's network pass."""
    return n_tiles * members * samples * steps


def network_call(net, torch_device, amp):
    """``net`` as the sampler's callable: no autograd, and autocast to ``amp`` (a 16-bit dtype)
    if given. The contexts are entered per call, so nothing leaks to the caller between the
    generator's yields."""
    import torch

    def call(x, y, t):
        with torch.inference_mode():
            if amp is None:
                return net(x, y, t)
            with torch.autocast(torch_device.type, dtype=amp):
                return net(x, y, t).float()

    return call


def _dihedral(x, k: int):
    import torch

    x = torch.rot90(x, k % 4, dims=(-2, -1))
    return torch.flip(x, dims=(-1,)) if k >= 4 else x


def _undihedral(x, k: int):
    import torch

    if k >= 4:
        x = torch.flip(x, dims=(-1,))
    return torch.rot90(x, -(k % 4), dims=(-2, -1))


def _padded(t, th: int, tw: int, multiple: int):
    import torch

    ph = (-(th + 2 * PAD)) % multiple + PAD
    pw = (-(tw + 2 * PAD)) % multiple + PAD
    mode = "reflect" if min(th, tw) > max(ph, pw) else "replicate"
    return torch.nn.functional.pad(t, (PAD, pw, PAD, ph), mode=mode)


def _is_oom(exc: BaseException) -> bool:
    import torch

    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def iter_network(
    jobs: list[PlaneJob],
    *,
    call,
    tile_size: int,
    batch_size: int,
    multiple: int,
    device,
    sampler: str,
    steps: int,
    eta: float,
    sigma_max: float,
    generator=None,
    progress: tuple[int, int] = (0, 0),
    on_tile: Callable[[int, Tile, np.ndarray], None] | None = None,
) -> Generator[tuple[int, int], None, list[PlaneEstimate]]:
    """Run ``jobs`` (planes of one shape) through the network; yields ``(done, total)`` starting
    from ``progress``; returns one :class:`PlaneEstimate` per job.

    ``on_tile(j, tile, estimate)``, when given, is called as soon as every member and sample of
    a tile of job ``j`` is in, with the tile's mean estimate over its ``keep`` region
    (normalised units): a provisional view of the plane while it runs (the returned estimate
    blends the overlaps; it is not changed by this)."""
    import torch

    from ..diffusion.samplers import iter_sample

    done, total = progress
    h, w = jobs[0].y.shape[-2:]
    tiles: list[Tile] = plan_tiles((h, w), tile_size)
    acc = [np.zeros((h, w), np.float32) for _ in jobs]
    wsum = np.zeros((h, w), np.float32)
    for tile in tiles:
        wsum[tile.keep] += tile.weight
    acc2 = [np.zeros((h, w), np.float32) if j.samples > 1 else None for j in jobs]
    acc0 = [np.zeros((h, w), np.float32) if j.want_first else None for j in jobs]

    # work items: (job, tile, member); members of one tile share a (rotated) shape only when
    # the tile is square, so items are grouped by their padded input shape
    items: dict[tuple[int, int], list[tuple[int, int, int]]] = {}
    for j, job in enumerate(jobs):
        for t, tile in enumerate(tiles):
            for k in range(job.members):
                th, tw = tile.read_shape
                shape = (tw, th) if k % 2 else (th, tw)
                items.setdefault(shape, []).append((j, t, k))

    # per (job, tile): sum and sum of squares over samples of the member-averaged estimate
    tile_sum: dict[tuple[int, int], Any] = {}
    tile_first: dict[tuple[int, int], Any] = {}
    tile_parts: dict[tuple[int, int], int] = {}  # contributions in, per (job, tile)
    n_samples = max(j.samples for j in jobs)
    batch = max(1, int(batch_size))
    for group in items.values():
        for sample in range(n_samples):
            todo = [it for it in group if sample < jobs[it[0]].samples]
            start = 0
            while start < len(todo):
                chunk = todo[start : start + batch]
                done_before = done
                try:
                    ys, ts = [], []
                    for j, t, k in chunk:
                        rs, cs = tiles[t].read
                        yt = jobs[j].y[..., rs, cs]
                        tt = jobs[j].tau[..., rs, cs]
                        ys.append(_dihedral(_padded(yt, *yt.shape[-2:], multiple), k))
                        ts.append(_dihedral(_padded(tt, *tt.shape[-2:], multiple), k))
                    yb = torch.cat(ys).to(device)
                    tb = torch.cat(ts).to(device)
                    xb = None
                    for _, _, xb in iter_sample(  # noqa: B007 (the last state is the estimate)
                        call,
                        yb,
                        tb,
                        sampler=sampler,
                        steps=steps,
                        eta=eta,
                        sigma_max=sigma_max,
                        generator=generator,
                    ):
                        done += len(chunk)
                        yield done, total
                except Exception as exc:
                    if not _is_oom(exc) or len(chunk) == 1:
                        raise
                    if device.type == "cuda":
                        torch.cuda.empty_cache()
                    batch = max(1, len(chunk) // 2)
                    done = done_before
                    continue
                xb = xb.float().cpu()
                for i, (j, t, k) in enumerate(chunk):
                    th, tw = tiles[t].read_shape
                    est = _undihedral(xb[i : i + 1], k)[0, 0, PAD : PAD + th, PAD : PAD + tw]
                    key = (j, t)
                    member_share = est / jobs[j].members
                    if k == 0 and jobs[j].want_first and key not in tile_first:
                        tile_first[key] = est.clone()
                    skey = (j, t, sample)
                    tile_sum[skey] = tile_sum.get(skey, 0) + member_share
                    tile_parts[key] = tile_parts.get(key, 0) + 1
                    if on_tile is not None and tile_parts[key] == jobs[j].members * jobs[j].samples:
                        tile_mean = sum(tile_sum[(j, t, s)] for s in range(jobs[j].samples))
                        tile_mean = tile_mean / jobs[j].samples
                        on_tile(j, tiles[t], tile_mean[tiles[t].inner].numpy())
                start += len(chunk)

    for j, job in enumerate(jobs):
        for t, tile in enumerate(tiles):
            estimates = [tile_sum.pop((j, t, s)) for s in range(job.samples)]
            inner = tile.inner
            mean = sum(estimates) / job.samples
            kept = mean[inner].numpy()
            acc[j][tile.keep] += tile.weight * kept
            if acc2[j] is not None:
                sq = sum(e * e for e in estimates) / job.samples
                var = np.maximum((sq[inner] - mean[inner] ** 2).numpy(), 0.0)
                var = var * job.samples / (job.samples - 1)
                acc2[j][tile.keep] += tile.weight * np.sqrt(var)
            if acc0[j] is not None:
                acc0[j][tile.keep] += tile.weight * tile_first.pop((j, t))[inner].numpy()
    return [
        PlaneEstimate(
            acc[j] / wsum,
            None if acc2[j] is None else acc2[j] / wsum,
            None if acc0[j] is None else acc0[j] / wsum,
        )
        for j in range(len(jobs))
    ]
