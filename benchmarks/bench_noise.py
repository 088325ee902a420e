"""Benchmark of the noise engine: estimator accuracy, classifier accuracy, speed.

Run from the project root::

    python benchmarks/bench_noise.py            # full run (a few minutes on 2 cores)
    python benchmarks/bench_noise.py --quick    # fewer images, for development
    python benchmarks/bench_noise.py --only map,classifier --check   # some sections, targets

Sections (``--only``): gaussian, poisson, impulses, map, classifier, speed. Prints markdown
tables (docs/noise.md, "Benchmark"). ``--check`` then lists the targets of the sections run
(docs/noise.md, "Against the targets") as PASS/MISS and exits 1 if one was missed.

Set12 is read from ``<repo>/../shared/data/set12``; without it the Set12 rows are skipped
(synthetic fluorescence rows still run; under ``--check`` the skipped sections count as missed).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from targets import Target, check_report  # noqa: E402

from napari_diffdenoise import add_noise, estimate_noise, synthetic_fluorescence
from napari_diffdenoise.noise.simulate import sigma_profile

#: the targets of docs/noise.md ("Against the targets")
GAUSSIAN_MAX_ERROR_PCT = 5.0  # median |relative error| of σ on Set12, every σ ≥ 5
CURVE_MAX_ERROR_PCT = 10.0  # Poisson-Gaussian curve over the data range, median image
IMPULSE_MAX_ERROR_PCT = 10.0  # impulse fraction, worst image, 1-50 %
IMPULSE_FALSE_PCT = 0.05  # impulses found on clean / Gaussian images (reported as 0.0 %)
MAP_MAX_ERROR_PCT = 15.0  # σ map: median relative error per pixel (median over images)
MAP_MIN_PEARSON = 0.9  # σ map: Pearson r (median over images)
CLASSIFIER_MIN_ACCURACY_PCT = 95.0

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
KINDS = ("gaussian", "poisson", "salt_and_pepper", "spatially_variant")


def load_set12(limit: int | None) -> list[np.ndarray]:
    folder = DATA / "set12"
    if not folder.is_dir():
        print(f"> Set12 not found at {folder.resolve()}: Set12 rows skipped.\n")
        return []
    from skimage import io

    files = sorted(folder.glob("*.png"))[:limit]
    return [io.imread(f).astype(np.float64) for f in files]


def fluo(n: int, scale: float = 1000.0) -> list[np.ndarray]:
    return [
        synthetic_fluorescence((256, 256), seed=100 + i).astype(np.float64) * scale
        for i in range(n)
    ]


def table(header: list[str], rows: list[list[str]]) -> None:
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print()


def pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def bench_gaussian(imgs: list[np.ndarray]) -> list[Target]:
    from skimage.restoration import estimate_sigma

    def clean_sigma(img: np.ndarray) -> float:
        report = estimate_noise(img)
        return float(report.details.get("sigma_weak_texture", report.sigma))

    sigma0 = [clean_sigma(img) for img in imgs]
    print("### Gaussian σ on Set12 (median |relative error| over the images)\n")
    print(
        "`report.sigma` against the σ added. The last column compares the float estimate "
        "with sqrt(σ² + σ0²) instead, σ0 being what the same estimator finds on the "
        "'clean' image (weak-texture PCA; Set12 photographs carry their own grain, σ0 = "
        + ", ".join(f"{s:.1f}" for s in sigma0)
        + ").\n"
    )
    rows, targets = [], []
    for sigma in (5, 10, 15, 25, 50):
        errs = {"float": [], "uint8": [], "wavelet": [], "total": []}
        for i, img in enumerate(imgs):
            y = add_noise(img, "gaussian", sigma=sigma, seed=i)
            est = estimate_noise(y).sigma
            errs["float"].append(est / sigma - 1)
            errs["total"].append(est / np.hypot(sigma, sigma0[i]) - 1)
            errs["wavelet"].append(estimate_sigma(y) / sigma - 1)
            y8 = add_noise(img.astype(np.uint8), "gaussian", sigma=sigma, seed=i)
            errs["uint8"].append(estimate_noise(y8).sigma / sigma - 1)
        rows.append(
            [str(sigma)]
            + [
                f"{pct(np.median(np.abs(errs[k])))} (bias {100 * np.mean(errs[k]):+.1f} %)"
                for k in ("float", "uint8", "wavelet", "total")
            ]
        )
        targets += [
            Target(
                f"gaussian σ {sigma}, {k}: median |rel. error|",
                100 * float(np.median(np.abs(errs[k]))),
                GAUSSIAN_MAX_ERROR_PCT,
                "<=",
                "%",
            )
            for k in ("float", "uint8")
        ]
    table(
        [
            "σ",
            "ours, float",
            "ours, uint8 clipped",
            "wavelet MAD (skimage), float",
            "ours, float, vs sqrt(σ² + σ0²)",
        ],
        rows,
    )
    return targets


def curve_error(
    report, clean_obs: np.ndarray, gain: float, read: float, offset: float
) -> tuple[float, float]:
    lo, hi = np.percentile(clean_obs, [1, 99])
    x = np.linspace(lo, hi, 50)
    truth = np.sqrt(gain * np.maximum(x - offset, 0) + read**2)
    est = np.sqrt(np.maximum(report.gain * x + report.baseline_variance, 0))
    err = np.abs(est / truth - 1)
    return float(np.max(err)), float(np.median(err))


def bench_poisson(flu: list[np.ndarray]) -> list[Target]:
    print("### Poisson-Gaussian curve on synthetic fluorescence (0..1000)\n")
    print(
        "Error of the fitted noise-std curve sqrt(gain·x + baseline) against the truth over"
        " the 1-99 % range of the clean signal; median over the images (worst image).\n"
    )
    rows, targets = [], []
    for dtype, offset in (("float", 0.0), ("uint16, offset 100", 100.0)):
        for gain in (0.5, 1, 2, 5):
            for read in (2, 5, 10):
                mx, md, kinds = [], [], Counter()
                for i, x in enumerate(flu):
                    y = add_noise(
                        x, "poisson_gaussian", gain=gain, read_noise=read, offset=offset, seed=i
                    )
                    if dtype != "float":
                        y = np.clip(np.rint(y), 0, 65535).astype(np.uint16)
                    r = estimate_noise(y)
                    a, b = curve_error(r, x + offset, gain, read, offset)
                    mx.append(a)
                    md.append(b)
                    kinds[r.kind] += 1
                rows.append(
                    [
                        dtype,
                        str(gain),
                        str(read),
                        pct(np.median(mx)),
                        pct(np.max(mx)),
                        pct(np.median(md)),
                        f"{kinds['poisson']}/{len(flu)}",
                    ]
                )
                targets.append(
                    Target(
                        f"curve {dtype}, gain {gain}, read noise {read}: max error (median image)",
                        100 * float(np.median(mx)),
                        CURVE_MAX_ERROR_PCT,
                        "<=",
                        "%",
                    )
                )
    table(
        [
            "data",
            "gain",
            "read noise",
            "max error (median img)",
            "max error (worst img)",
            "median error",
            "verdict poisson",
        ],
        rows,
    )
    return targets


def bench_impulses(imgs: list[np.ndarray]) -> list[Target]:
    print("### Salt-and-pepper fraction on Set12 (uint8)\n")
    rows, targets = [], []
    for amount in (0.01, 0.05, 0.1, 0.2, 0.5):
        errs, kinds = [], Counter()
        for i, img in enumerate(imgs):
            r = estimate_noise(
                add_noise(img.astype(np.uint8), "salt_and_pepper", amount=amount, seed=i)
            )
            errs.append(r.impulse_fraction / amount - 1)
            kinds[r.kind] += 1
        rows.append(
            [
                pct(amount),
                pct(np.median(np.abs(errs))),
                pct(np.max(np.abs(errs))),
                f"{kinds['salt_and_pepper']}/{len(imgs)}",
            ]
        )
        targets.append(
            Target(
                f"impulse fraction {pct(amount)}: worst |rel. error|",
                100 * float(np.max(np.abs(errs))),
                IMPULSE_MAX_ERROR_PCT,
                "<=",
                "%",
            )
        )
    for label, sigma in (("clean", 0), ("gaussian σ 25", 25)):
        fr = []
        for i, img in enumerate(imgs):
            y = (
                img.astype(np.uint8)
                if sigma == 0
                else add_noise(img.astype(np.uint8), "gaussian", sigma=sigma, seed=i)
            )
            fr.append(estimate_noise(y).impulse_fraction)
        rows.append([label, f"found {pct(np.median(fr))} (max {pct(np.max(fr))})", "", ""])
        targets.append(
            Target(
                f"impulses found on {label} images (max)",
                100 * float(np.max(fr)),
                IMPULSE_FALSE_PCT,
                "<=",
                "%",
            )
        )
    table(["amount", "median |rel. error|", "worst", "verdict s&p"], rows)
    return targets


def map_errors(report, truth: np.ndarray) -> tuple[float, float]:
    est = report.sigma_map.astype(np.float64)
    rel = float(np.median(np.abs(est / truth - 1)))
    # a constant map (a wrong "gaussian" verdict) has no correlation: count it as 0
    corr = float(np.corrcoef(est.ravel(), truth.ravel())[0, 1]) if est.std() > 0 else 0.0
    return rel, corr


def bench_sigma_map(imgs: list[np.ndarray], flu: list[np.ndarray]) -> list[Target]:
    print("### σ map (median |relative error| per pixel, Pearson r); median over images\n")
    rows = []
    sources = [("Set12", imgs)] if imgs else []
    sources.append(("fluorescence 0..255", [x * 0.255 for x in flu]))
    for name, group in sources:
        for profile in ("ramp", "vignette", "patches"):
            rel, corr, kinds = [], [], Counter()
            for i, img in enumerate(group):
                truth = sigma_profile(img.shape, profile, 5, 50, seed=i)
                y = add_noise(
                    img, "spatially_variant", profile=profile, sigma_min=5, sigma_max=50, seed=i
                )
                r = estimate_noise(y)
                a, b = map_errors(r, truth)
                rel.append(a)
                corr.append(b)
                kinds[r.kind] += 1
            rows.append(
                [
                    name,
                    f"{profile} 5→50",
                    pct(np.median(rel)),
                    f"{np.median(corr):.3f}",
                    f"{np.min(corr):.3f}",
                    f"{kinds['spatially_variant']}/{len(group)}",
                ]
            )
    for gain, read in ((1, 5), (4, 2)):
        rel, corr, kinds = [], [], Counter()
        for i, x in enumerate(flu):
            y = add_noise(x, "poisson_gaussian", gain=gain, read_noise=read, seed=i)
            truth = np.sqrt(gain * x + read**2)
            r = estimate_noise(y)
            a, b = map_errors(r, truth)
            rel.append(a)
            corr.append(b)
            kinds[r.kind] += 1
        rows.append(
            [
                "fluorescence 0..1000",
                f"Poisson-Gaussian gain {gain}, read {read}",
                pct(np.median(rel)),
                f"{np.median(corr):.3f}",
                f"{np.min(corr):.3f}",
                f"{kinds['poisson']}/{len(flu)}",
            ]
        )
    table(
        [
            "images",
            "noise",
            "median rel. error",
            "Pearson r (median)",
            "Pearson r (worst)",
            "verdict right",
        ],
        rows,
    )
    targets = []
    for images, noise, rel, r_median, *_ in rows:
        targets.append(
            Target(
                f"σ map, {images}, {noise}: median rel. error",
                float(rel.removesuffix(" %")),
                MAP_MAX_ERROR_PCT,
                "<=",
                "%",
            )
        )
        targets.append(
            Target(
                f"σ map, {images}, {noise}: Pearson r (median)", float(r_median), MAP_MIN_PEARSON
            )
        )
    return targets


def bench_classifier(imgs: list[np.ndarray], flu: list[np.ndarray]) -> list[Target]:
    print("### Classifier\n")
    cases: list[tuple[str, str, dict]] = []
    for sigma in (5, 10, 25, 50):
        cases.append(("gaussian", "gaussian", {"sigma": sigma}))
    for gain in (1.0, 4.0):
        cases.append(("poisson", "poisson", {"gain": gain}))
    for profile in ("ramp", "vignette", "patches"):
        cases.append(
            (
                "spatially_variant",
                "spatially_variant",
                {"profile": profile, "sigma_min": 5, "sigma_max": 50},
            )
        )
    for amount in (0.01, 0.1, 0.5):
        cases.append(("salt_and_pepper", "salt_and_pepper", {"amount": amount}))
    flu_cases: list[tuple[str, str, dict]] = [
        ("gaussian", "gaussian", {"sigma": 10}),
        ("gaussian", "gaussian", {"sigma": 40}),
        ("poisson", "poisson_gaussian", {"gain": 1.0, "read_noise": 5}),
        ("poisson", "poisson_gaussian", {"gain": 4.0, "read_noise": 2}),
        ("poisson", "poisson_gaussian", {"gain": 2.0, "read_noise": 10, "offset": 100}),
        (
            "spatially_variant",
            "spatially_variant",
            {"profile": "ramp", "sigma_min": 10, "sigma_max": 100},
        ),
        (
            "spatially_variant",
            "spatially_variant",
            {"profile": "patches", "sigma_min": 10, "sigma_max": 100},
        ),
        ("salt_and_pepper", "salt_and_pepper", {"amount": 0.05}),
    ]
    confusion = {k: Counter() for k in KINDS}
    wrong = []
    for group, case_list, label in ((imgs, cases, "Set12"), (flu, flu_cases, "fluo")):
        for truth, kind, params in case_list:
            for i, img in enumerate(group):
                src = (
                    img.astype(np.uint8) if kind == "salt_and_pepper" and label == "Set12" else img
                )
                r = estimate_noise(add_noise(src, kind, seed=i, **params))
                confusion[truth][r.kind] += 1
                if r.kind != truth:
                    wrong.append(f"{label}[{i}] {kind} {params} -> {r.kind} ({r.confidence:.2f})")
    rows = []
    total = correct = 0
    for truth in KINDS:
        n = sum(confusion[truth].values())
        total += n
        correct += confusion[truth][truth]
        rows.append(
            [truth]
            + [str(confusion[truth][k]) for k in KINDS]
            + [pct(confusion[truth][truth] / n) if n else "-"]
        )
    table(["truth \\ verdict", *KINDS, "recall"], rows)
    print(f"Accuracy: {correct}/{total} = {pct(correct / total)}\n")
    if wrong:
        print("Misclassified:\n")
        for w in wrong:
            print(f"- {w}")
        print()
    return [
        Target("classifier accuracy", 100 * correct / total, CLASSIFIER_MIN_ACCURACY_PCT, unit="%")
    ]


def bench_speed() -> None:
    print("### Speed (estimate_noise, median of 3 runs)\n")
    rows = []
    for shape in ((512, 512), (2048, 2048)):
        x = synthetic_fluorescence(shape, seed=0).astype(np.float64) * 1000
        for label, y in (
            ("gaussian σ 20", add_noise(x, "gaussian", sigma=20, seed=0)),
            ("poisson-gaussian", add_noise(x, "poisson_gaussian", gain=2, read_noise=5, seed=0)),
            (
                "spatially variant",
                add_noise(
                    x, "spatially_variant", profile="ramp", sigma_min=5, sigma_max=50, seed=0
                ),
            ),
        ):
            y = y.astype(np.float32)
            estimate_noise(y)
            ts = []
            for _ in range(3):
                t0 = time.perf_counter()
                r = estimate_noise(y)
                ts.append(time.perf_counter() - t0)
            rows.append([f"{shape[0]}×{shape[1]}", label, r.kind, f"{np.median(ts):.3f} s"])
    table(["size", "noise", "verdict", "time"], rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer images")
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated sections: gaussian, poisson, impulses, map, classifier, speed",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="list the targets of the sections run (PASS/MISS); exit 1 if one was missed",
    )
    args = parser.parse_args(argv)
    limit = 4 if args.quick else None
    imgs = load_set12(limit)
    flu = fluo(3 if args.quick else 6)
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    t0 = time.perf_counter()
    print(f"## Noise engine benchmark ({'quick' if args.quick else 'full'})\n")
    targets: list[Target] = []
    not_evaluated: list[str] = []
    for key in ("gaussian", "impulses"):
        if not imgs and (not only or key in only):
            not_evaluated.append(f"{key} (Set12 not found)")
    if imgs and (not only or "gaussian" in only):
        targets += bench_gaussian(imgs)
    if not only or "poisson" in only:
        targets += bench_poisson(flu)
    if imgs and (not only or "impulses" in only):
        targets += bench_impulses(imgs)
    if not only or "map" in only:
        targets += bench_sigma_map(imgs, flu)
    if not only or "classifier" in only:
        targets += bench_classifier(imgs, flu)
    if not only or "speed" in only:
        bench_speed()
    print(f"Total benchmark time: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    if not args.check:
        return 0
    lines, status = check_report(targets, not_evaluated)
    print("\n".join(lines))
    return status


if __name__ == "__main__":
    raise SystemExit(main())
