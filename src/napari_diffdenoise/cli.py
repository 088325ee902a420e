"""Command line: the same functions as the Python API.

napari-diffdenoise models
napari-diffdenoise inspect noisy.tif
napari-diffdenoise denoise noisy.tif denoised.tif [--sigma 12] [--model fast] [--steps 4]
napari-diffdenoise train --config recipes/default.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["main"]


def _read_image(path: str):
    import numpy as np

    p = Path(path)
    if not p.is_file():
        raise OSError(f"input file {p} not found")
    if p.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        return tifffile.imread(p)
    if p.suffix.lower() == ".npy":
        return np.load(p, allow_pickle=False)
    from skimage import io

    return io.imread(p)


def _write_image(path: str, data) -> None:
    from ._atomic import atomic_write

    p = Path(path)
    if p.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        atomic_write(p, lambda tmp: tifffile.imwrite(tmp, data))
    elif p.suffix.lower() == ".npy":
        import numpy as np

        def _save(tmp):
            with open(tmp, "wb") as fh:
                np.save(fh, data)

        atomic_write(p, _save)
    else:
        from skimage import io

        atomic_write(p, lambda tmp: io.imsave(tmp, data, check_contrast=False, extension=p.suffix))


def _cmd_models(args) -> int:
    from .model.registry import list_models, model_path
    from .model.weights import read_info

    for name in list_models():
        if not args.long:
            print(name)
            continue
        path, preset = model_path(name)
        try:
            about = read_info(path).description
        except (OSError, ValueError) as exc:  # a broken user model: say so, list the rest
            about = f"unreadable: {exc}"
        print(f"{name}\t{preset.description if preset else about}\t{path}")
    return 0


def _cmd_inspect(args) -> int:
    from .noise.estimate import estimate_noise

    report = estimate_noise(_read_image(args.input))
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.summary())
    return 0


def _wiener_arg(text: str):
    """``--wiener``: ``auto`` or a number (its range is checked by ``denoise``)."""
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a weight in [0, 1] or 'auto', got {text!r}"
        ) from None


def _cmd_denoise(args) -> int:
    from .engine.denoise import denoise

    image = _read_image(args.input)

    def progress(done, total):
        print(f"\rstep {done}/{total}", end="", file=sys.stderr, flush=True)

    out = denoise(
        image,
        sigma=args.sigma,
        model=args.model,
        steps=args.steps,
        sampler=args.sampler,
        device=args.device,
        precision=args.precision,
        seed=args.seed,
        wiener=args.wiener,
        progress=progress,
    )
    print(file=sys.stderr)
    _write_image(args.output, out)
    print(f"wrote {args.output}")
    return 0


def _cmd_train(args) -> int:
    from .training.config import TrainingConfig
    from .training.loop import train_model

    cfg = TrainingConfig.from_json(args.config) if args.config else TrainingConfig()
    overrides = {
        k: v
        for k, v in (
            ("output", args.output),
            ("steps", args.steps),
            ("max_minutes", args.max_minutes),
            ("init_from", args.init_from),
            ("resume_from", args.resume_from),
            ("train_dir", args.train_dir),
            ("device", args.device),
        )
        if v is not None
    }
    if args.init_from is not None:  # the command line's start replaces the recipe's
        overrides.setdefault("resume_from", None)
    elif args.resume_from is not None:
        overrides["init_from"] = None
    if overrides:
        cfg = cfg.replace(**overrides)  # (recipe: references still resolve next to the recipe)

    def progress(p):
        if p.step % cfg.log_every == 0 or p.val_psnr:
            val = f"  val {p.val_psnr}" if p.val_psnr else ""
            print(
                f"step {p.step}/{p.total} loss {p.loss:.5f} lr {p.lr:.2e} "
                f"{p.elapsed_s / 60:.1f} min{val}",
                flush=True,
            )

    train_model(cfg, resume=not args.fresh, stop_at_step=args.stop_at_step, progress=progress)
    print(f"model written to {Path(cfg.output) / cfg.name}.safetensors")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="napari-diffdenoise",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    pm = sub.add_parser("models", help="list the available models")
    pm.add_argument(
        "-l",
        "--long",
        action="store_true",
        help="also print each model's description and weight file (tab-separated)",
    )
    pm.set_defaults(func=_cmd_models)
    p = sub.add_parser("inspect", help="estimate the noise of an image file")
    p.add_argument("input")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=_cmd_inspect)
    p = sub.add_parser("denoise", help="denoise an image file (TIFF, PNG, .npy)")
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument(
        "--sigma", type=float, default=None, help="noise std in image units (default: estimated)"
    )
    p.add_argument("--model", default="default")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--sampler", default=None, choices=["direct", "origin", "cold", "indi"])
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--precision",
        default=None,
        choices=["float32", "bfloat16", "float16"],
        help="network arithmetic (default: the model preset's)",
    )
    p.add_argument("--seed", type=int, default=None)
    p.add_argument(
        "--wiener",
        type=_wiener_arg,
        default=None,
        help="weight in [0, 1] of the collaborative Wiener (non-local) estimate blended "
        "with the network's, or 'auto' (a hard-thresholding estimate blended "
        "into the Wiener step's pilot, a 4x4-patch Wiener estimate mixed with "
        "the 8x8 one, the weights chosen by SURE); default: "
        "the preset's (quality: auto, others: 0)",
    )
    p.set_defaults(func=_cmd_denoise)
    p = sub.add_parser("train", help="train a model from a recipe (JSON TrainingConfig)")
    p.add_argument("--config", default=None)
    p.add_argument("--output", default=None)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--max-minutes", type=float, default=None)
    p.add_argument(
        "--init-from",
        default=None,
        help="start from these weights (model name such as default, .safetensors "
        "model or checkpoint, or recipe:<name>) with a fresh schedule, unless "
        "the output holds a checkpoint",
    )
    p.add_argument(
        "--resume-from",
        default=None,
        help="carry on another run's checkpoint (path or recipe:<name>: weights, "
        "optimiser, step) under this recipe, unless the output holds one",
    )
    p.add_argument(
        "--train-dir",
        default=None,
        help="folder of clean training images (default: the recipe's, else "
        "../shared/data/train400 of a source checkout)",
    )
    p.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint")
    p.add_argument(
        "--stop-at-step",
        type=int,
        default=None,
        help="pause at this step (checkpoint written, schedule unchanged)",
    )
    p.set_defaults(func=_cmd_train)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, TypeError, OSError, LookupError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
