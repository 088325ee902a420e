#!/usr/bin/env python
"""Candidates for the ``fast`` preset against ``default``, measured in one run on the CPU.

For each candidate: the network alone on a 528² input (a 512² tile with the engine's padding;
uniform time map), ``denoise`` end to end (blind, Set12 08 at Gaussian σ 25, 512²), both as
the best of ``--repeats`` interleaved runs (the candidates take turns, so load from other
processes hits them alike) and as the ratio of ``default``'s time to the candidate's; then the
blind PSNR on Set12 at σ 25 (all 12 images) and σ 15 / 50 (the first ``--few``), the real
microscopy pairs (affine-fitted PSNR, as ``bench_denoise.py --sections pairs``) and synthetic
Poisson-Gaussian fluorescence (as ``--sections poisson``, peak 50).

Candidates (``--candidates``, comma-separated; the first three by default):

- ``default``: the bundled network in float32 (the baseline).
- ``autocast``: the same under ``torch.autocast("cpu", torch.bfloat16)`` (the old ``fast``).
- ``fast``: the shipped preset, :class:`napari_diffdenoise.model.fast.FastTimeUNet`.
- ``unfused``: ``FastTimeUNet`` without oneDNN's fused convolution ops.
- ``int8``: static int8 post-training quantisation of the convolutions (``torch.ao``
  FX graph mode, x86 backend, calibrated on 16 noisy train400 patches; head and tail float).
- ``compile``: ``torch.compile`` (inductor, freezing) of the bfloat16 network (a compiler is
  needed at run time; compiles once per tile shape).

Markdown goes to stdout (and ``--out``), progress to stderr. ``--check`` exits 1 unless
``fast`` is ≥ 2× faster than ``default`` end to end and loses ≤ 0.3 dB on Set12 at every σ.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # targets.py and the denoise/ package

from denoise.common import (  # noqa: E402
    SET12,
    affine_fit,
    load_pairs,
    log,
    psnr,
    seed_for,
)
from targets import Target, check_report  # noqa: E402

DEFAULT_DATA = HERE.parent.parent / "shared" / "data"
ALL = ("default", "autocast", "fast", "unfused", "int8", "compile")
TARGET_SPEEDUP = 2.0
TARGET_LOSS_DB = 0.3


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--candidates", default="default,autocast,fast", help=f"of {','.join(ALL)}")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--repeats", type=int, default=5, help="timed runs per candidate")
    p.add_argument("--few", type=int, default=4, help="Set12 images at σ 15 and 50")
    p.add_argument("--sigmas", default="15,25,50")
    p.add_argument("--no-pairs", action="store_true", help="skip the real pairs and Poisson")
    p.add_argument("--out", type=Path, help="also write the markdown here")
    p.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    args = p.parse_args(argv)
    args.candidates = [c.strip() for c in args.candidates.split(",") if c.strip()]
    unknown = set(args.candidates) - set(ALL)
    if unknown or "default" not in args.candidates:
        p.error(f"candidates must include default and come from {ALL}; got {args.candidates}")
    args.sigmas = tuple(int(s) for s in args.sigmas.split(","))
    return args


# --------------------------------------------------------------------------- candidates
def _int8(net):
    """FX graph-mode static quantisation of the trunk (the time embedding stays float)."""
    import torch
    from torch import nn
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    class Trunk(nn.Module):
        """The network without its time embedding (FX-traceable: the embeddings come in)."""

        def __init__(self, n):
            super().__init__()
            self.net = n

        def forward(self, inp, e0, e1, e2, e3):
            return self.net.trunk(inp, [e0, e1, e2, e3])

    class Quantised(nn.Module):
        def __init__(self, n, trunk):
            super().__init__()
            self.net, self.trunk, self.config = n, trunk, n.config
            self.parameter_count = n.parameter_count

        def forward(self, x, y, t):
            return x - self.trunk(torch.cat([x, y, t], 1), *self.net.time_embeddings(t))

    torch.backends.quantized.engine = "x86"
    qmap = get_default_qconfig_mapping("x86").set_module_name("head", None)
    qmap = qmap.set_module_name("tail", None)
    trunk = Trunk(copy.deepcopy(net)).eval()
    calib = _calibration(16)
    x0, _, t0 = calib[0]
    example = (torch.cat([x0, x0, t0], 1), *[net.embed(t0[:, :, :1, :1])] * 4)
    q = Quantised(net, prepare_fx(trunk, qmap, example))
    with torch.no_grad():
        for x, y, t in calib:
            q(x, y, t)
    q.trunk = convert_fx(q.trunk)
    return q


def _calibration(n, size=128):
    import torch
    from skimage import io

    rng = np.random.default_rng(0)
    files = sorted((ARGS.data / "train400").glob("*.png"))
    out = []
    for _ in range(n):
        img = io.imread(files[rng.integers(len(files))]).astype(np.float32) / 255.0
        img = img[..., 0] if img.ndim == 3 else img
        r, c = rng.integers(0, img.shape[0] - size + 1), rng.integers(0, img.shape[1] - size + 1)
        s = float(rng.uniform(0.02, 0.3))
        y = img[r : r + size, c : c + size] + rng.normal(0, s, (size, size)).astype(np.float32)
        y = torch.from_numpy(y).view(1, 1, size, size)
        out.append((y, y, torch.full_like(y, s / 0.5)))
    return out


def _compiled(net):
    import torch
    import torch._inductor.config as inductor_config
    from torch import nn

    inductor_config.freezing = True
    bf = copy.deepcopy(net).to(torch.bfloat16)
    compiled = torch.compile(bf, dynamic=False)

    class Compiled(nn.Module):
        def __init__(self):
            super().__init__()
            self.config, self.parameter_count = net.config, net.parameter_count

        def forward(self, x, y, t):
            return x - (x.bfloat16() - compiled(x.bfloat16(), y.bfloat16(), t.bfloat16())).float()

    return Compiled()


def build(name):
    """``(label, LoadedModel, denoise keyword arguments)`` of a candidate."""
    from napari_diffdenoise import load_model
    from napari_diffdenoise.model.fast import FastTimeUNet

    base = load_model("default")
    if name == "default":
        return "default (float32)", base, {}
    if name == "autocast":
        return "bfloat16 autocast (the old fast)", base, {"precision": "bfloat16"}
    if name == "fast":
        return "**fast** (FastTimeUNet: bf16, fused oneDNN ops)", load_model("fast"), {}
    if name == "unfused":
        net = FastTimeUNet(base.net, fused=False)
        return "FastTimeUNet, plain bf16 ops", dataclasses.replace(base, net=net), {}
    if name == "int8":
        t0 = time.perf_counter()
        net = _int8(base.net)
        log(f"int8: quantised in {time.perf_counter() - t0:.0f} s")
        return "int8 static PTQ (FX, x86)", dataclasses.replace(base, net=net), {}
    if name == "compile":
        net = _compiled(base.net)
        return "torch.compile bf16 (inductor)", dataclasses.replace(base, net=net), {}
    raise ValueError(name)


# --------------------------------------------------------------------------- measurements
def _denoise(loaded, kw, noisy):
    from napari_diffdenoise import denoise

    return denoise(noisy, model=loaded, device="cpu", output_dtype=np.float32, **kw)


def speed(cands, repeats):
    import torch
    from skimage import io

    from napari_diffdenoise import add_noise

    img = io.imread(ARGS.data / "set12" / "08.png").astype(np.float64)
    noisy = add_noise(img, "gaussian", sigma=25, seed=seed_for("gaussian", "08", 25))
    noisy = noisy.astype(np.float32)
    x = torch.rand(1, 1, 528, 528, generator=torch.Generator().manual_seed(0))
    t = torch.full_like(x, 25 / 255 / 0.5)
    net_t = {n: [] for n in cands}
    e2e_t = {n: [] for n in cands}
    with torch.no_grad():
        for _, loaded, kw in cands.values():  # warm-up (first calls, timings, compiles)
            _denoise(loaded, kw, noisy)
        for r in range(repeats):
            log(f"speed round {r + 1}/{repeats}")
            for n, (_, loaded, kw) in cands.items():
                ctx = (
                    torch.autocast("cpu", dtype=torch.bfloat16)
                    if kw.get("precision") == "bfloat16"
                    else torch.autocast("cpu", enabled=False)
                )
                with ctx:
                    t0 = time.perf_counter()
                    loaded.net(x, x, t)
                    net_t[n].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                _denoise(loaded, kw, noisy)
                e2e_t[n].append(time.perf_counter() - t0)
    return net_t, e2e_t, img.size / 1e6


def quality(cands, sigmas, few):
    from skimage import io

    from napari_diffdenoise import add_noise, synthetic_fluorescence

    scores: dict[str, dict[str, list[float]]] = {n: {} for n in cands}
    for sigma in sigmas:
        names = SET12 if sigma == 25 else SET12[:few]
        for name in names:
            clean = io.imread(ARGS.data / "set12" / f"{name}.png").astype(np.float64)
            noisy = add_noise(
                clean, "gaussian", sigma=sigma, seed=seed_for("gaussian", name, sigma)
            )
            log(f"set12 σ={sigma} {name}")
            for n, (_, loaded, kw) in cands.items():
                est = np.clip(_denoise(loaded, kw, noisy.astype(np.float32)), 0, 255)
                scores[n].setdefault(f"σ={sigma}", []).append(psnr(clean, est, 255.0))
    if ARGS.no_pairs:
        return scores
    for pname, noisy_u8, clean_u8 in load_pairs(ARGS.data):
        clean = clean_u8.astype(np.float64)
        log(f"pairs {pname}")
        for n, (_, loaded, kw) in cands.items():
            est = affine_fit(_denoise(loaded, kw, noisy_u8), clean)
            scores[n].setdefault("pairs", []).append(psnr(clean, est, np.ptp(clean)))
    for i in range(3):  # as bench_denoise --sections poisson, peak 50
        photons = 50.0 * synthetic_fluorescence((256, 256), kind="mixed", seed=i).astype(float)
        noisy = add_noise(
            photons,
            "poisson_gaussian",
            gain=1.0,
            read_noise=2.0,
            offset=100.0,
            seed=seed_for("poisson", i, 50.0),
        )
        log(f"poisson seed {i}")
        for n, (_, loaded, kw) in cands.items():
            est = _denoise(loaded, kw, noisy.astype(np.float32))
            scores[n].setdefault("poisson", []).append(
                psnr(100.0 + photons, est, float(photons.max()))
            )
    return scores


# --------------------------------------------------------------------------- report
def main(argv=None) -> int:
    global ARGS
    ARGS = parse_args(argv)
    import torch

    from napari_diffdenoise.model.fast import _fused_ops, cpu_bfloat16_native, cpu_mode

    cands = {}
    for n in ARGS.candidates:
        log(f"building {n}")
        cands[n] = build(n)
    net_t, e2e_t, mp = speed(cands, ARGS.repeats)
    scores = quality(cands, ARGS.sigmas, ARGS.few)
    cols = [f"σ={s}" for s in ARGS.sigmas] + ([] if ARGS.no_pairs else ["pairs", "poisson"])
    best = {n: (min(net_t[n]), min(e2e_t[n])) for n in cands}
    med = {n: (float(np.median(net_t[n])), float(np.median(e2e_t[n]))) for n in cands}
    d_net, d_e2e = best["default"]
    m_net, m_e2e = med["default"]
    counts = {c: len(scores["default"].get(c, [])) for c in cols}
    lines = [
        "# The `fast` preset's candidates",
        "",
        f"CPU: {torch.get_num_threads()} torch threads, torch {torch.__version__}, "
        f"oneDNN bf16 native: {cpu_bfloat16_native()}, `cpu_mode`: "
        f"{cpu_mode(torch.get_num_threads())}, fused ops: {_fused_ops() is not None}. "
        f"Times: best of {ARGS.repeats} interleaved runs (median in brackets); ratios are "
        "default's time / the candidate's. Network: one call on 1×1×528² (a 512² tile with "
        "padding). `denoise`: blind, Set12 08 + Gaussian σ 25, 512², end to end (noise "
        "estimate included). PSNR: blind, mean dB over "
        + ", ".join(f"{c} ({counts[c]} images)" for c in cols)
        + "; pairs affine-fitted, poisson: synthetic fluorescence, peak 50 photons.",
        "",
        "| candidate | network s | × | `denoise` s | MP/s | × | "
        + " | ".join(f"{c} dB" for c in cols)
        + " |",
        "|---" * (6 + len(cols)) + "|",
    ]
    for n, (label, _, _) in cands.items():
        bn, be = best[n]
        mn, me = med[n]
        cells = []
        for c in cols:
            v = float(np.mean(scores[n][c]))
            d = v - float(np.mean(scores["default"][c]))
            cells.append(f"{v:.2f}" if n == "default" else f"{v:.2f} ({d:+.2f})")
        lines.append(
            f"| {label} | {bn:.3f} ({mn:.3f}) | {d_net / bn:.2f} ({m_net / mn:.2f}) | "
            f"{be:.3f} ({me:.3f}) | {mp / be:.2f} | {d_e2e / be:.2f} ({m_e2e / me:.2f}) | "
            + " | ".join(cells)
            + " |"
        )
    lines += ["", f"Command: `python benchmarks/bench_fast.py {' '.join(argv or sys.argv[1:])}`"]
    code = 0
    if ARGS.check:
        if "fast" not in cands:
            targets, skipped = [], ["fast is not among the candidates"]
        else:
            targets = [
                Target(
                    "fast: default / fast time, denoise end to end",
                    d_e2e / best["fast"][1],
                    TARGET_SPEEDUP,
                    unit="×",
                ),
            ]
            for s in ARGS.sigmas:
                c = f"σ={s}"
                loss = np.mean(scores["default"][c]) - np.mean(scores["fast"][c])
                targets.append(
                    Target(f"fast: Set12 {c} PSNR loss", float(loss), TARGET_LOSS_DB, "<=", "dB")
                )
            skipped = []
        check_lines, code = check_report(targets, skipped)
        lines += ["", *check_lines]
    text = "\n".join(lines) + "\n"
    print(text)
    if ARGS.out:
        ARGS.out.write_text(text)
    return code


ARGS = None

if __name__ == "__main__":
    sys.exit(main())
