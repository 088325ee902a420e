"""Section ``impulse``: salt-and-pepper 10/20/50 % on Set12 uint8. Ours blind against the
adaptive (Hwang–Haddad) and 3×3 medians. Target: ours ≥ adaptive median + 2 dB at every
amount."""

from __future__ import annotations

import baselines as B
import numpy as np
from targets import Target

from .cache import cached_baseline
from .common import (
    Config,
    Outcome,
    Scores,
    describe_images,
    fmt_db,
    load_set12,
    log,
    seed_for,
)
from .ours import ours

TITLE = "Salt-and-pepper noise, Set12"
IMPULSE_TARGET_DB = 2.0  # the impulse target: adaptive median + 2 dB


def run(cfg: Config) -> Outcome:
    from napari_diffdenoise import add_noise

    images = load_set12(cfg)
    sc = Scores()
    detect: list[str] = []
    for amount in cfg.impulse_amounts:
        col = f"{100 * amount:g} %"
        for name, img in images:
            clean = img.astype(np.float64)
            noisy = add_noise(
                img, "salt_and_pepper", amount=amount, seed=seed_for("impulse", name, amount)
            )
            log(f"impulse {col} {name}")

            score = sc.scorer(col, name, clean, 255.0, clip=(0.0, 255.0))
            score("noisy input", noisy)
            res, sec = ours(noisy, cfg)
            score("ours blind (default)", res.image, sec)
            if res.report is not None:
                detect.append(
                    f"{col} {name}: {res.report.kind}, "
                    f"impulses {100 * res.report.impulse_fraction:.1f} %"
                )
            est, sec = cached_baseline(B.adaptive_median, noisy, 11)
            score("adaptive median (Hwang–Haddad, 3..11)", est, sec)
            est, sec = cached_baseline(B.median3, noisy)
            score("median 3×3", est, sec)

    cols = [f"{100 * a:g} %" for a in cfg.impulse_amounts]
    lines = [
        f"Images: Set12 {describe_images(images)} as uint8; `add_noise(..., 'salt_and_pepper', "
        "amount=p)` (0/255 impulses), seeds `crc32('impulse/<image>/<p>')`. PSNR on 0..255.",
        "",
        *sc.table(cols),
        "",
        f"Target: ours ≥ adaptive median + {IMPULSE_TARGET_DB} dB:",
    ]
    targets = []
    for c in cols:
        d = sc.mean_psnr("ours blind (default)", c) - sc.mean_psnr(
            "adaptive median (Hwang–Haddad, 3..11)", c
        )
        lines.append(
            f"- {c}: ours − adaptive median = {fmt_db(d)} "
            f"{'✅' if d >= IMPULSE_TARGET_DB else '❌'}"
        )
        targets.append(
            Target(f"impulse {c}: ours − adaptive median", d, IMPULSE_TARGET_DB, unit="dB")
        )
    not_sp = [d for d in detect if "salt_and_pepper" not in d]
    lines += [
        "",
        f"Blind detection: {len(detect) - len(not_sp)}/{len(detect)} images classified "
        "salt_and_pepper" + (f"; others: {'; '.join(not_sp)}" if not_sp else "") + ".",
    ]
    if cfg.per_image:
        lines += sc.per_image_tables(cols)
    return Outcome(lines, targets)
