"""Fine-tuning benchmark: adaptation to an unseen noise, with pairs and with noisy images alone.

Sections (``--sections``):

- ``stripes``: sCMOS-like row stripes (σ 12 per row, on top of Gaussian σ 10, grey levels) on
  the first ``--adapt`` Train400 images (the adaptation data); scored on Set12 with its own
  seeded noise (held out: never seen in training or tuning). Rows: the bundled model blind,
  a classical row-median destripe in front of it, ``fine_tune(noisy=...)`` and
  ``fine_tune(pairs=...)``, each within ``--minutes``. Every model is run through the product
  path, ``denoise(noisy, model=name)`` blind (the engine estimates the time map itself). Also:
  the Spearman rank correlation of the noisy-only run's validation figure (SURE PSNR, no ground
  truth) with the true PSNR of the same held-out windows over its checkpoints, and what the
  adapted models do to plain Gaussian noise at a *given* σ (a painted σ keeps its meaning).
- ``pairs``: ``../shared/data/microscopy_pairs/``, noisy-only adaptation on each noisy frame
  alone (the clean one only scores: affine-fitted PSNR, as ``bench_denoise.py``'s pairs).

    python benchmarks/bench_finetune.py --check --minutes 5.75   # everything (~15 min, 2 cores)
    python benchmarks/bench_finetune.py --sections stripes --minutes 2 --adapt 60 --out /tmp/f.md

Prints markdown (and writes ``--out``, default ``docs/bench_finetune.md``); ``--check`` adds the
targets (PASS/MISS) and exits 1 on a miss. Models go to a temporary folder (``--keep`` to keep
them in ``NAPARI_DIFFDENOISE_MODELS``).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from targets import Target, check_report  # noqa: E402

ROW_SIGMA, WHITE_SIGMA = 12.0, 10.0
PAIRS = ("fmd_r1", "fmd_bpae_r", "w2s_010")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _load(path: Path) -> np.ndarray:
    from skimage import io

    image = io.imread(path).astype(np.float64)
    return image[..., 0] if image.ndim == 3 else image


def stripes(clean: np.ndarray, seed: int) -> np.ndarray:
    """Gaussian σ 10 plus one Gaussian offset (σ 12) per row, grey levels, not clipped."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(0.0, WHITE_SIGMA, clean.shape)
    return clean + noise + rng.normal(0.0, ROW_SIGMA, (clean.shape[0], 1))


def psnr(x: np.ndarray, ref: np.ndarray) -> float:
    mse = float(np.mean((np.clip(x, 0, 255) - ref) ** 2))
    return 10 * math.log10(255.0**2 / max(mse, 1e-12))


def affine_psnr(x: np.ndarray, ref: np.ndarray) -> float:
    """PSNR after the least-squares affine map of ``x`` onto ``ref`` (CARE's convention), data
    range = ref max − min."""
    design = np.stack([x.ravel(), np.ones(x.size)], axis=1).astype(np.float64)
    coef = np.linalg.lstsq(design, ref.ravel().astype(np.float64), rcond=None)[0]
    mse = float(np.mean((design @ coef - ref.ravel()) ** 2))
    return 10 * math.log10(float(ref.max() - ref.min()) ** 2 / max(mse, 1e-12))


def _run_fine_tune(label: str, **kwargs) -> tuple[str, dict, float]:
    """``fine_tune(**kwargs)``; returns the name, the saved model's training record, wall s."""
    from napari_diffdenoise.model.registry import model_path
    from napari_diffdenoise.model.weights import read_info
    from napari_diffdenoise.training.finetune import fine_tune

    last = [0.0]

    def progress(p) -> None:
        if p.validation is not None or time.perf_counter() - last[0] > 30:
            last[0] = time.perf_counter()
            val = "" if p.validation is None else f" figure {p.validation['figure']:.3f}"
            log(f"  {label}: step {p.step} {p.elapsed_s:.0f}s{val} (best {p.best:.3f})")

    t0 = time.perf_counter()
    name = fine_tune(progress=progress, **kwargs)
    wall = time.perf_counter() - t0
    return name, read_info(model_path(name)[0]).training, wall


def _denoise(noisy: np.ndarray, model: str, **kw) -> np.ndarray:
    from napari_diffdenoise import denoise

    return np.asarray(denoise(noisy, model=model, output_dtype="float32", **kw), np.float64)


def _spread(items: list, n: int) -> list:
    """At most ``n`` items, evenly spread, the first and the last among them."""
    if len(items) <= n:
        return items
    return [items[round(i * (len(items) - 1) / (n - 1))] for i in range(n)]


def _spearman(history: list[dict]) -> tuple[float, int]:
    from scipy.stats import spearmanr

    pts = [(h["figure"], h["true_psnr"]) for h in history if "true_psnr" in h]
    if len(pts) < 3:
        return float("nan"), len(pts)
    a, b = zip(*pts)
    return float(spearmanr(a, b).statistic), len(pts)


def section_stripes(args) -> tuple[list[str], list[Target]]:
    from napari_diffdenoise.training.noisemodel import destripe
    from napari_diffdenoise.training.selfsup import make_noisy_task

    data = Path(args.data)
    train_files = sorted((data / "train400").glob("*.png"))[: args.adapt]
    test_files = sorted((data / "set12").glob("*.png"))[: args.test]
    if not train_files or not test_files:
        raise FileNotFoundError(f"train400/ or set12/ missing under {data}")
    adapt_clean = [_load(f) for f in train_files]
    adapt_noisy = [stripes(x, 1000 + i) for i, x in enumerate(adapt_clean)]
    test_clean = [_load(f) for f in test_files]
    test_noisy = [stripes(x, 2000 + i) for i, x in enumerate(test_clean)]

    rows: list[tuple[str, float, str]] = []
    scores: dict[str, float] = {}

    def score(label: str, outputs: list[np.ndarray], note: str = "") -> None:
        value = float(np.mean([psnr(o, x) for o, x in zip(outputs, test_clean)]))
        scores[label] = value
        rows.append((label, value, note))
        log(f"  {label}: {value:.2f} dB")

    score("noisy input", test_noisy)
    score("bundled model (blind)", [_denoise(y, "default") for y in test_noisy])
    score(
        "row-median destripe + bundled model (blind)",
        [_denoise(destripe(y, columns=False), "default") for y in test_noisy],
    )
    base = scores["bundled model (blind)"]
    runs = {}
    task = make_noisy_task(
        adapt_noisy, validation_fraction=0.1, seed=args.seed, references=adapt_clean
    )
    budget = {"max_minutes": args.minutes} if args.steps is None else {"max_steps": args.steps}
    common = {"device": args.device, "seed": args.seed, "replace": True, **budget}
    if args.val_every:
        common["settings"] = {"val_every": args.val_every}
    log("stripes: noisy-only adaptation")
    name, info, wall = _run_fine_tune("noisy", noisy=task, name="bench-stripes-noisy", **common)
    runs["noisy"] = (name, info, wall)
    score(
        "noisy-only adaptation (ours)",
        [_denoise(y, name) for y in test_noisy],
        f"{info['steps']} steps, {wall / 60:.1f} min, kept base: {info['kept_base']}",
    )
    if not args.no_pairs:
        log("stripes: supervised fine-tune on pairs")
        pairs = list(zip(adapt_noisy, adapt_clean))
        name, info, wall = _run_fine_tune(
            "pairs", pairs=pairs, name="bench-stripes-pairs", **common
        )
        runs["pairs"] = (name, info, wall)
        score(
            "fine-tune on pairs",
            [_denoise(y, name) for y in test_noisy],
            f"{info['steps']} steps, {wall / 60:.1f} min, kept base: {info['kept_base']}",
        )
    # a painted / given σ keeps its meaning: plain Gaussian σ 25 at the known σ
    g_noisy = [
        x + np.random.default_rng(3000 + i).normal(0, 25, x.shape) for i, x in enumerate(test_clean)
    ]
    meaning = []
    for label, model in [("bundled model", "default")] + [
        (f"adapted ({k})", runs[k][0]) for k in runs
    ]:
        value = float(
            np.mean([psnr(_denoise(y, model, sigma=25.0), x) for y, x in zip(g_noisy, test_clean)])
        )
        meaning.append((label, value))
    rho, n_pts = _spearman(runs["noisy"][1]["validation"]["history"])
    hist = runs["noisy"][1]["validation"]["history"]

    lines = [
        "## Stripe noise (sCMOS-like rows) on held-out Set12",
        "",
        f"Adaptation data: the first {len(adapt_clean)} Train400 images (180²) with Gaussian "
        f"σ {WHITE_SIGMA:g} + one Gaussian offset per row, σ {ROW_SIGMA:g} (grey levels, "
        f"seeded per image); scored on {len(test_clean)} Set12 images with their own seeded "
        "noise. Every model runs blind through `denoise(noisy, model=name)`. Budget per run: "
        + (f"{args.minutes:g} min" if args.steps is None else f"{args.steps} steps")
        + f" (device {args.device}, seed {args.seed}).",
        "",
        "| method | PSNR (dB) | gain over bundled | run |",
        "|---|---:|---:|---|",
        *(f"| {lab} | {v:.2f} | {v - base:+.2f} | {note} |" for lab, v, note in rows),
        "",
        "A given σ keeps its meaning: Set12 with plain Gaussian σ 25, `denoise(noisy, sigma=25)`:",
        "",
        "| model | PSNR (dB) |",
        "|---|---:|",
        *(f"| {lab} | {v:.2f} |" for lab, v in meaning),
        "",
        f"Ground-truth-free validation figure (SURE PSNR on the {len(task.val_ids)} held-out "
        f"adaptation images) against their true PSNR over the noisy-only run's {n_pts} "
        f"checkpoints: Spearman ρ = {rho:.3f}.",
        "",
        "| step | SURE PSNR | true PSNR (affine) |",
        "|---:|---:|---:|",
        *(
            f"| {h['step']} | {h['figure']:.3f} | {h.get('true_psnr', float('nan')):.3f} |"
            for h in _spread(hist, 12)
        ),
        *(["", f"({len(hist)} checkpoints: 12 shown, evenly spread.)"] if len(hist) > 12 else []),
        "",
    ]
    targets = [
        Target(
            "stripes, noisy-only: gain over the bundled model on Set12",
            scores["noisy-only adaptation (ours)"] - base,
            3.0,
            unit="dB",
        ),
        Target("stripes, noisy-only: wall time", runs["noisy"][2] / 60, 6.0, "<=", "min"),
    ]
    if "pairs" in runs:
        targets += [
            Target(
                "stripes, pairs: gain over the bundled model on Set12",
                scores["fine-tune on pairs"] - base,
                3.5,
                unit="dB",
            ),
            Target("stripes, pairs: wall time", runs["pairs"][2] / 60, 6.0, "<=", "min"),
        ]
    return lines, targets


def section_pairs(args) -> tuple[list[str], list[Target]]:
    from napari_diffdenoise.training.selfsup import make_noisy_task

    folder = Path(args.data) / "microscopy_pairs"
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} missing")
    budget = {"max_minutes": args.pair_minutes} if args.steps is None else {"max_steps": args.steps}
    rows, gains, rhos = [], [], []
    for pname in PAIRS:
        noisy = _load(folder / f"{pname}_noisy.png").astype(np.uint8)
        clean = _load(folder / f"{pname}_clean.png")
        log(f"pairs: {pname}")
        before = affine_psnr(_denoise(noisy, "default"), clean)
        task = make_noisy_task([noisy], validation_fraction=0.1, seed=args.seed, references=[clean])
        name, info, wall = _run_fine_tune(
            pname,
            noisy=task,
            name=f"bench-{pname}-noisy",
            device=args.device,
            seed=args.seed,
            replace=True,
            **budget,
        )
        after = affine_psnr(_denoise(noisy, name), clean)
        val = info["validation"]
        rho, _ = _spearman(val["history"])
        rhos.append(rho)
        gains.append(after - before)
        rows.append(
            f"| {pname} | {affine_psnr(noisy.astype(np.float64), clean):.2f} | {before:.2f} | "
            f"{after:.2f} | {after - before:+.2f} | {info['kept_base']} | {info['steps']} | "
            f"{wall / 60:.1f} | {val['base']:.2f} → {val['best']:.2f} | "
            f"{'—' if math.isnan(rho) else f'{rho:.2f}'} | "
            f"{info['data']['noise']} |"
        )
    lines = [
        "## Real microscopy frames, noisy-only",
        "",
        "Each noisy frame adapted on alone (its bottom rows held out for the SURE figure), "
        "budget "
        + (f"{args.pair_minutes:g} min" if args.steps is None else f"{args.steps} steps")
        + "; the clean frame only scores: affine-fitted PSNR of the whole frame (as "
        "`bench_denoise.py`'s pairs section), blind `denoise(noisy, model=name)`. Where the "
        "noise fit finds no stripes the task keeps the base by rule (its SURE figure was "
        "measured not to track the truth on plain pixel noise: `docs/design/adaptation.md`).",
        "",
        "| frame | noisy | bundled | adapted | gain | kept base | steps | min | SURE PSNR "
        "base → best | Spearman (SURE vs true, held-out rows) | fitted noise (image units) |",
        "|---|---:|---:|---:|---:|---|---:|---:|---|---:|---|",
        *rows,
        "",
    ]
    targets = [
        Target(
            "pairs, noisy-only: worst gain (never below the bundled model)",
            min(gains),
            -0.005,
            unit="dB",
        ),
        Target("pairs, noisy-only: frames improved (> 0.01 dB)", sum(g > 0.01 for g in gains), 2),
    ]
    return lines, targets


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sections", default="stripes,pairs")
    p.add_argument("--minutes", type=float, default=6.0, help="budget per stripe run")
    p.add_argument("--pair-minutes", type=float, default=1.5, help="budget per microscopy frame")
    p.add_argument("--steps", type=int, default=None, help="a step budget instead of minutes")
    p.add_argument("--adapt", type=int, default=100, help="Train400 images to adapt on")
    p.add_argument("--test", type=int, default=12, help="Set12 images to score")
    p.add_argument("--no-pairs", action="store_true", help="skip the supervised pairs row")
    p.add_argument(
        "--val-every", type=int, default=None, help="steps between validations (loop default)"
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", default=str(HERE.parent.parent / "shared" / "data"))
    p.add_argument("--out", default=str(HERE.parent / "docs" / "bench_finetune.md"))
    p.add_argument("--keep", action="store_true", help="keep the models in the user folder")
    p.add_argument("--check", action="store_true")
    args = p.parse_args(argv)

    if not args.keep:
        os.environ["NAPARI_DIFFDENOISE_MODELS"] = tempfile.mkdtemp(prefix="bench_finetune_")
    import torch

    torch.set_num_threads(min(2, os.cpu_count() or 1) if args.device == "cpu" else 8)
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    header = [
        "# Fine-tuning benchmark",
        "",
        "Command: `python benchmarks/bench_finetune.py " + " ".join(argv or sys.argv[1:]) + "`",
        "",
        f"Machine: {os.cpu_count()} CPU threads, torch {torch.__version__}, device "
        f"{args.device}; load average at start {load0[0]:.1f}"
        + (
            " (other jobs ran beside this one: minute budgets bought fewer steps than on an "
            "idle machine)."
            if load0[0] > 1.5
            else "."
        ),
        "",
    ]
    body, targets, skipped = [], [], []
    for section in args.sections.split(","):
        fn = {"stripes": section_stripes, "pairs": section_pairs}[section]
        try:
            lines, tg = fn(args)
        except FileNotFoundError as exc:
            log(f"{section}: skipped ({exc})")
            skipped.append(f"{section} ({exc})")
            continue
        body += lines
        targets += tg
    load1 = os.getloadavg()
    footer = [
        f"Total {(time.perf_counter() - t0) / 60:.1f} min; load average at the end {load1[0]:.1f}.",
        "",
    ]
    text_lines = header + body + footer
    status = 0
    if args.check:
        lines, status = check_report(targets, skipped)
        text_lines += lines + [""]
    text = "\n".join(text_lines)
    print(text)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(out.suffix + ".tmp")
        tmp.write_text(text)
        tmp.replace(out)
    return status


if __name__ == "__main__":
    sys.exit(main())
