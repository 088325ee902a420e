"""The ``fast`` preset's network: :class:`~.unet.TimeUNet`'s function, run in bfloat16 on CPUs
with native bfloat16 convolutions (oneDNN on Intel AMX / AVX-512 BF16, AMD Zen 4 and later).

:class:`FastTimeUNet` wraps the bundled float32 network and keeps its call,
``net(x_t, y, t) → x̂0`` on ``(B, 1, H, W)`` float32 tensors, its ``config`` and
:meth:`~FastTimeUNet.parameter_count`. On a CPU it runs its own forward pass:

- bfloat16 copies of the convolution weights made once (channels-last, oneDNN's fast layout),
  so no per-call casting as under ``torch.autocast``;
- the time embedding, the first convolution's input and the output subtraction in float32
  (the network predicts ``x_t − residual``: only the residual is bfloat16);
- with one image per call and a spatially uniform time map (the usual case), each block's time
  projection folded into its first convolution's bias; in-place SiLU and additions elsewhere,
  which saves most of the memory traffic of the element-wise steps.

On CPUs with Intel AMX the bfloat16 pass always runs; with native bfloat16 but no AMX a one-off
timing per process decides (:func:`cpu_mode`); without native bfloat16 (AVX2-only CPUs) the
float32 network runs, the same as the ``default`` preset. On CUDA or MPS (after ``.to(device)``) the float32 network runs, under
the engine's autocast as the preset's ``precision`` asks. Why this and not int8, compilation or
a distilled network: ``docs/design/fast_preset.md`` (``benchmarks/bench_fast.py``).
"""

from __future__ import annotations

import threading
import time
from functools import cache
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:  # pragma: no cover
    from .unet import ResBlock, TimeUNet, UNetConfig

__all__ = ["FastTimeUNet", "CPU_MODES", "cpu_bfloat16_native", "cpu_mode"]

#: How :class:`FastTimeUNet` runs on a CPU: ``"auto"`` (bfloat16 where a one-off timing finds
#: it faster than float32), ``"bfloat16"`` (always) or ``"float32"`` (the wrapped network).
CPU_MODES = ("auto", "bfloat16", "float32")

_LOCK = threading.Lock()


def cpu_bfloat16_native() -> bool:
    """Whether oneDNN has native bfloat16 kernels on this CPU (not whether they are faster)."""
    try:
        return bool(
            torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
        )
    except (AttributeError, RuntimeError):
        return False


_P1 = [1, 1]


@cache
def _fused_ops():
    """oneDNN's fused convolution ops (``torch.ops.mkldnn._convolution_pointwise``: conv + SiLU,
    conv + addition), as torch's inductor uses them; ``None`` where this torch lacks them or
    they disagree with the plain ops on a small check (then the plain ops run)."""
    try:
        op = torch.ops.mkldnn._convolution_pointwise
        op_ = torch.ops.mkldnn._convolution_pointwise_
        g = torch.Generator().manual_seed(0)
        x = torch.randn(1, 8, 12, 12, generator=g).to(torch.bfloat16)
        x = x.contiguous(memory_format=torch.channels_last)
        w = (0.2 * torch.randn(8, 8, 3, 3, generator=g)).to(torch.bfloat16)
        w = w.contiguous(memory_format=torch.channels_last)
        b = torch.randn(8, generator=g).to(torch.bfloat16)
        with torch.no_grad():
            conv = F.conv2d(x, w, b, 1, 1).float()
            swish = op(x, w, b, _P1, _P1, _P1, 1, "swish", [], "").float()
            other = x.clone()
            op_.binary(other, x, w, b, _P1, _P1, _P1, 1, "add", 1.0, None, [], None)
            added = op.binary(x, x, w, b, _P1, _P1, _P1, 1, "add", 1.0, None, [], None)
        ok = (
            torch.allclose(swish, F.silu(conv), atol=0.1, rtol=0.02)
            and torch.allclose(other.float(), conv + x.float(), atol=0.1, rtol=0.02)
            and torch.allclose(added.float(), conv + x.float(), atol=0.1, rtol=0.02)
        )
    except (AttributeError, RuntimeError, TypeError):
        return None
    return (op, op_) if ok else None


class _Conv:
    """One convolution's weights for the bfloat16 pass (channels-last bf16 weight and bias)."""

    __slots__ = ("weight", "bias", "bias32", "stride", "padding", "transposed")

    def __init__(self, conv: nn.Conv2d | nn.ConvTranspose2d, dtype: torch.dtype) -> None:
        self.weight = conv.weight.detach().to(dtype).contiguous(memory_format=torch.channels_last)
        self.bias32 = conv.bias.detach().float().clone()
        self.bias = self.bias32.to(dtype)
        self.stride = conv.stride
        self.padding = conv.padding
        self.transposed = isinstance(conv, nn.ConvTranspose2d)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.transposed:
            return F.conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding)
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding)


class _Block:
    """A :class:`~.unet.ResBlock` (no normalisation) for the bfloat16 pass of one image."""

    __slots__ = ("conv1", "conv2", "time")

    def __init__(self, block: ResBlock, dtype: torch.dtype) -> None:
        self.conv1 = _Conv(block.conv1, dtype)
        self.conv2 = _Conv(block.conv2, dtype)
        self.time = _Conv(block.time, dtype)  # 1×1 projection of the time embedding

    def __call__(self, x: torch.Tensor, emb: torch.Tensor, fused) -> torch.Tensor:
        """``x + conv2(silu(conv1(silu(x)) + time(emb)))``; ``x`` (this pass's own
        intermediate, never the caller's tensor) is overwritten with the result when ``fused``."""
        c1, c2 = self.conv1, self.conv2
        s = F.silu(x)
        if emb.shape[-2:] == (1, 1):
            # a uniform time: its projection is a per-channel constant, folded into the bias
            proj = F.conv2d(emb, self.time.weight.float(), self.time.bias32).view(-1)
            bias = (c1.bias32 + proj).to(c1.weight.dtype)
            if fused is not None:
                a = fused[0](s, c1.weight, bias, _P1, _P1, _P1, 1, "swish", [], "")
            else:
                a = F.silu(F.conv2d(s, c1.weight, bias, 1, 1), inplace=True)
        else:
            proj = self.time(emb)
            if fused is not None:
                a = fused[0].binary(
                    s, proj, c1.weight, c1.bias, _P1, _P1, _P1, 1, "add", 1.0, None, [], None
                )
            else:
                a = c1(s).add_(proj)
            a = F.silu(a, inplace=True)
        if fused is not None:
            return fused[1].binary(
                x, a, c2.weight, c2.bias, _P1, _P1, _P1, 1, "add", 1.0, None, [], None
            )
        return c2(a).add_(x)


class FastTimeUNet(nn.Module):
    """A :class:`~.unet.TimeUNet` with a bfloat16 forward pass for CPUs (module docstring).

    Parameters
    ----------
    net
        The float32 network (shared, not copied; its weights must not change afterwards).
    cpu
        One of :data:`CPU_MODES`.
    fused
        Use oneDNN's fused convolution + SiLU / + addition ops where this torch has them
        (``False``: plain bfloat16 ops; for comparisons).
    """

    def __init__(self, net: TimeUNet, cpu: str = "auto", *, fused: bool = True) -> None:
        super().__init__()
        if cpu not in CPU_MODES:
            raise ValueError(f"cpu must be one of {', '.join(CPU_MODES)}, got {cpu!r}")
        if net.config.norm != "none":
            raise ValueError("FastTimeUNet needs a network without normalisation layers")
        self.net = net
        self.cpu = cpu
        self.fused = fused
        dt = torch.bfloat16
        with torch.no_grad():
            self._enc = [[_Block(b, dt) for b in blocks] for blocks in net.enc]
            self._down = [_Conv(c, dt) for c in net.down]
            self._mid = [_Block(b, dt) for b in net.mid]
            self._up = [_Conv(c, dt) for c in net.up]
            self._dec = [[_Block(b, dt) for b in blocks] for blocks in net.dec]
            self._tail = _Conv(net.tail, dt)

    @property
    def config(self) -> UNetConfig:
        return self.net.config

    def parameter_count(self) -> int:
        return self.net.parameter_count()

    def uses_bfloat16(self, device: torch.device | str = "cpu") -> bool:
        """Whether a call with inputs on ``device`` takes the bfloat16 pass."""
        if torch.device(device).type != "cpu" or self.cpu == "float32":
            return False
        return self.cpu == "bfloat16" or cpu_mode(torch.get_num_threads()) == "bfloat16"

    def forward(self, x_t: torch.Tensor, y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``x̂0`` from ``(B, 1, H, W)`` float32 inputs, as :meth:`TimeUNet.forward`."""
        if not self.uses_bfloat16(x_t.device):
            return self.net(x_t, y, t)
        with torch.autocast("cpu", enabled=False):
            return self._forward_bfloat16(x_t, y, t)

    def _forward_bfloat16(self, x_t, y, t):
        # One image at a time: each image's result does not depend on what it is batched
        # with (the CPU gains nothing from batching images of this size).
        if x_t.shape[0] > 1:
            return torch.cat(
                [
                    self._forward_one(x_t[i : i + 1], y[i : i + 1], t[i : i + 1])
                    for i in range(len(x_t))
                ]
            )
        return self._forward_one(x_t, y, t)

    def _forward_one(self, x_t, y, t):
        net = self.net
        fused = _fused_ops() if self.fused else None
        embs = net.time_embeddings(
            t, cast=lambda e: e.to(torch.bfloat16, memory_format=torch.channels_last)
        )
        h = net.head(torch.cat([x_t, y, t], dim=1))  # float32: the inputs keep their precision
        h = h.to(torch.bfloat16, memory_format=torch.channels_last)
        skips = []
        for level, (blocks, down) in enumerate(zip(self._enc, self._down)):
            for block in blocks:
                h = block(h, embs[level], fused)
            skips.append(h)
            h = down(h)
        for block in self._mid:
            h = block(h, embs[-1], fused)
        for level in reversed(range(len(self._up))):
            h = self._up[level](h).add_(skips[level])
            for block in self._dec[level]:
                h = block(h, embs[level], fused)
        return x_t - self._tail(h).float()


def _cpu_has_amx() -> bool:
    try:
        return bool(torch.cpu._is_amx_tile_supported())
    except (AttributeError, RuntimeError):
        return False


@cache
def cpu_mode(threads: int) -> str:
    """``"bfloat16"`` or ``"float32"``: how :class:`FastTimeUNet` runs on this CPU with
    ``threads`` threads (decided once per process and thread count).

    No native bfloat16 kernels: float32. Intel AMX tiles: bfloat16 (2.5-3.5× faster on this
    project's 2-core Xeon; a timing there flips with the load of other processes). Native
    bfloat16 without AMX (AVX-512 BF16; CPU flags alone do not tell, see
    :func:`napari_diffdenoise.engine.device.fast_bfloat16`): both passes of a network like the
    bundled one on a 96² input are timed alternately, best of 5 after a warm-up, and bfloat16
    must win by 30 %.
    """
    if not cpu_bfloat16_native():
        return "float32"
    if _cpu_has_amx():
        return "bfloat16"
    with _LOCK:
        from .unet import TimeUNet, UNetConfig

        torch.manual_seed(0)
        net = TimeUNet(UNetConfig(channels=(32, 64, 96, 128))).eval()
        net = net.to(memory_format=torch.channels_last)
        fast = FastTimeUNet(net, cpu="bfloat16")
        x = torch.rand(1, 1, 96, 96)
        t = torch.full_like(x, 0.1)
        best = {"float32": float("inf"), "bfloat16": float("inf")}
        with torch.no_grad():
            for i in range(6):
                for mode, fn in (("float32", net), ("bfloat16", fast)):
                    t0 = time.perf_counter()
                    fn(x, x, t)
                    if i:
                        best[mode] = min(best[mode], time.perf_counter() - t0)
    return "bfloat16" if best["bfloat16"] < best["float32"] / 1.3 else "float32"
