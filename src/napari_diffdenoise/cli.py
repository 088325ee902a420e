"""Command line: the same functions as the Python API.

napari-diffdenoise models
napari-diffdenoise inspect noisy.tif
napari-diffdenoise denoise stack.ome.zarr -o denoised.zarr [--sigma 12] [--model fast]
napari-diffdenoise train --config recipes/default.json
napari-diffdenoise export default default.bioimageio.zip
napari-diffdenoise fine-tune --pairs NOISY_DIR CLEAN_DIR --name mine [--minutes 5]
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

__all__ = ["main"]

DENOISE_HELP = """Denoise images and stacks of any size.

  napari-diffdenoise denoise stack.ome.zarr -o stack.denoised.zarr
  napari-diffdenoise denoise "data/*.tif" -o results/      (one output per input)
  napari-diffdenoise denoise small.tif -o small.denoised.tif --sigma 12

A .zarr output is written as planes finish, with the model, its hash and every parameter in
its attributes (an OME-Zarr image when the input is one). If the run is interrupted (Ctrl-C,
a kill, a full disk), the same command again resumes it: finished planes are kept. An
existing output that is not this job's is never touched unless --overwrite. The exit status
is 0 on success, 2 for a usage error, 130 when interrupted.
"""


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

        big = data.nbytes > 2**31  # BigTIFF beyond what classic TIFF offsets address safely
        atomic_write(p, lambda tmp: tifffile.imwrite(tmp, data, bigtiff=big))
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


#: outputs written in memory first, then to one file (small jobs)
_FILE_SUFFIXES = (".tif", ".tiff", ".npy", ".png")
#: inputs read whole (small images); TIFF and zarr are read plane by plane
_SMALL_INPUTS = (".npy", ".png", ".jpg", ".jpeg", ".bmp")


def _expand_inputs(patterns: list[str]) -> list[Path]:
    """Paths from the command line, globs expanded (also when the shell did not)."""
    import glob

    paths: list[Path] = []
    for pattern in patterns:
        if any(c in pattern for c in "*?[") and not Path(pattern).exists():
            matches = sorted(glob.glob(pattern))
            if not matches:
                raise FileNotFoundError(f"{pattern}: no file matches")
            paths += [Path(m) for m in matches]
        else:
            paths.append(Path(pattern))
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file or directory")
    return paths


def _output_for(source: Path, output: Path, many: bool) -> Path:
    if not many:
        return output
    name = source.name
    for suffix in (".ome.zarr", ".zarr", ".ome.tiff", ".ome.tif", ".tiff", ".tif"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    else:
        name = source.stem
    return output / f"{name}.denoised.zarr"


def _time_map_arg(path: str | None):
    """A time map file: one saved by the Time map widget / ``save_time_map`` (its levels and
    σ_max travel with it), else floats in [0, 1] or integer levels of 255."""
    if path is None:
        return None
    if Path(path).suffix.lower() in (".tif", ".tiff") and Path(path).is_file():
        from .noise.timemap import NotATimeMapFile, load_time_map

        try:
            return load_time_map(path)
        except NotATimeMapFile:  # a plain TIFF of times or levels: read below
            pass
    return _read_image(path)


def _denoise_one(args, source: Path, target: Path, options) -> None:
    import time

    from tqdm import tqdm

    from ._progress import run_to_end
    from .engine.denoise import iter_denoise
    from .engine.source import open_source

    is_zarr_out = target.name.lower().endswith(".zarr")
    if not is_zarr_out and target.suffix.lower() not in _FILE_SUFFIXES:
        raise ValueError(
            f"{target}: unknown output type; use .zarr (any size, resumable) or "
            ".tif / .tiff / .npy / .png (small jobs, written at the end)"
        )
    if not target.parent.is_dir():
        raise FileNotFoundError(f"the folder of the output, {target.parent}, does not exist")
    if not is_zarr_out and target.exists() and not args.overwrite:
        raise FileExistsError(f"{target} exists; pass --overwrite to replace it")
    image = _read_image(str(source)) if source.suffix.lower() in _SMALL_INPUTS else source
    if args.workers or args.scheduler:
        if not is_zarr_out:
            raise ValueError("--workers / --scheduler write a .zarr output")
        from .engine.lazy import run_distributed

        bar = tqdm(desc=source.name, unit="plane", file=sys.stderr, dynamic_ncols=True)

        def planes(done, total):
            bar.total = total
            bar.n = done
            bar.refresh()

        run_distributed(
            image,
            target,
            options=options,
            axes=args.axes,
            sigma=args.sigma,
            time_map=_time_map_arg(args.time_map),
            workers=args.workers,
            scheduler=args.scheduler,
            overwrite=args.overwrite,
            pyramid=args.pyramid,
            progress=planes,
        )
        bar.close()
        return
    opened = open_source(image, axes=args.axes, name=source.name)
    steps = iter_denoise(
        opened,
        _time_map_arg(args.time_map),
        sigma=args.sigma,
        out=target if is_zarr_out else None,
        overwrite=args.overwrite,
        pyramid=args.pyramid,
        options=options,
    )
    bar = tqdm(
        desc=source.name,
        unit="step",
        file=sys.stderr,
        dynamic_ncols=True,
        # steps: network passes over a tile (and non-local filter bands)
        bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} steps "
        "[{elapsed}<{remaining}{postfix}]",
    )
    start = first_done = None
    last = None

    def show(step) -> None:
        nonlocal start, first_done, last
        now = time.perf_counter()
        if start is None:
            start, first_done = now, step.done
        last = step
        bar.total = step.total
        bar.n = step.done
        rate = ""
        if now > start and step.planes_total:
            per_plane = step.total / step.planes_total
            pixels = (step.done - first_done) / per_plane * step.plane_pixels
            rate = f"{pixels / (now - start) / 1e6:.2f} MP/s"
        bar.set_postfix_str(
            f"plane {step.planes_done}/{step.planes_total} {rate}".strip(), refresh=False
        )
        bar.refresh()

    try:
        result = run_to_end(steps, show)
    except KeyboardInterrupt:
        steps.close()
        bar.close()
        if is_zarr_out:
            raise KeyboardInterrupt(
                f"interrupted; {target} holds the planes finished so far: run the same "
                "command again to finish it"
            ) from None
        raise
    if last is not None:
        bar.set_postfix_str(f"plane {last.planes_total}/{last.planes_total}", refresh=True)
    bar.close()
    if not is_zarr_out:
        _write_image(str(target), result.image)
    print(f"wrote {target}")


def _return_freed_memory() -> None:
    """Have glibc hand plane-sized buffers back to the system when they are freed.

    Its adaptive mmap threshold grows with the first large frees, after which plane-sized
    buffers are kept in the heap for reuse and the resident size creeps up; a fixed 1 MiB
    threshold keeps a long job's memory flat (peak RSS 1.58 → 1.37 GB on 1024² planes,
    ``benchmarks/bench_stacks.py``). Only for this command's own process; elsewhere a no-op.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):  # not glibc
        pass


def _cmd_denoise(args) -> int:
    from .engine.options import DenoiseOptions

    _return_freed_memory()

    if args.output is None:
        # the form of earlier versions: denoise INPUT OUTPUT
        if len(args.inputs) == 2 and not Path(args.inputs[1]).exists():
            args.output = args.inputs.pop()
        else:
            raise ValueError(
                "give the output with -o (a .zarr store, or a folder for several inputs)"
            )
    if args.sigma is not None and args.time_map is not None:
        raise ValueError("give --sigma or --time-map, not both")
    if args.workers is not None and args.scheduler is not None:
        raise ValueError("give --workers or --scheduler, not both")
    options = DenoiseOptions(
        model=args.model,
        sampler=args.sampler,
        steps=args.steps,
        eta=args.eta,
        samples=args.samples,
        wiener=args.wiener,
        device=args.device,
        precision=args.precision,
        seed=args.seed,
        tile_size=args.tile,
        batch_size=args.batch,
        threads=args.threads,
    )
    options.resolve()  # every option checked before any file is touched
    inputs = _expand_inputs(args.inputs)
    output = Path(args.output)
    many = len(inputs) > 1
    if many and not output.is_dir():
        raise NotADirectoryError(
            f"{output}: with several inputs, -o must be an existing folder (one output each)"
        )
    for source in inputs:
        _denoise_one(args, source, _output_for(source, output, many), options)
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


def _cmd_export(args) -> int:
    from .model.export import export_model

    try:
        path = export_model(args.model, args.output, overwrite=args.overwrite)
    except ImportError as exc:  # bioimageio.spec is an extra: say how to get it, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"bioimage.io package written to {path}")
    return 0


FINE_TUNE_HELP = """Adapt a model to your microscope; the result is saved as a named model.

  napari-diffdenoise fine-tune --pairs noisy/ clean/ --name my-scope --minutes 5
  napari-diffdenoise fine-tune --noisy frames.tif --name my-scope --minutes 5
  napari-diffdenoise denoise stack.tif -o out.zarr --model my-scope

--pairs takes two folders whose files (TIFF, PNG, .npy, zarr) are matched by name;
--noisy a folder or a stack of noisy images alone (self-supervised). The model is saved in the
user's model folder ('napari-diffdenoise models' lists it). Ctrl-C stops the run and saves the
best model so far; --resume carries the run of that --name on from its checkpoint. The exit
status is 0 on success, 2 for a usage error, 130 when interrupted (the model is saved).
"""


def _cmd_fine_tune(args) -> int:
    from tqdm import tqdm

    from ._progress import run_to_end
    from .training.finetune import FineTuneSettings, _check_name, iter_fine_tune

    if (args.pairs is None) == (args.noisy is None):
        raise ValueError("give --pairs NOISY_DIR CLEAN_DIR or --noisy DIR_OR_STACK (one of them)")
    settings = FineTuneSettings(
        **{
            k: v
            for k, v in (("lr", args.lr), ("batch_size", args.batch), ("patch_size", args.patch))
            if v is not None
        }
    )
    name = _check_name(args.name, args.base)
    steps = iter_fine_tune(
        tuple(args.pairs) if args.pairs else None,
        noisy=args.noisy,
        base=args.base,
        name=name,
        replace=args.replace,
        max_steps=args.steps,
        max_minutes=args.minutes,
        device=args.device,
        validation_fraction=args.validation_fraction,
        seed=args.seed,
        resume=args.resume,
        settings=settings,
    )
    bar = tqdm(
        desc=name,
        total=100,
        file=sys.stderr,
        dynamic_ncols=True,
        bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}{postfix}]",
    )
    last = None

    def show(p) -> None:
        nonlocal last
        last = p
        bar.n = round(100 * p.fraction, 1)
        loss = "" if p.loss is None else f"loss {p.loss:.4f} "
        figure = f"{p.figure_name} base {p.base:.2f} best {p.best:.2f}"
        bar.set_postfix_str(f"step {p.step} {loss}{figure}", refresh=False)
        bar.refresh()

    try:
        saved = run_to_end(steps, show)
    except KeyboardInterrupt:
        bar.close()
        if last is None:  # still reading the data: nothing was trained or saved
            raise KeyboardInterrupt(
                "interrupted before the first step; nothing was saved"
            ) from None
        if steps.gi_frame is not None:
            steps.close()  # saves the best model so far
        raise KeyboardInterrupt(
            f"interrupted; the best model so far is saved as {name!r} (continue the run "
            f"with the same data and --name {name} --resume)"
        ) from None
    bar.close()
    if last is not None and last.best_step == 0:
        print(
            f"no checkpoint beat the base model on the held-out data ({last.figure_name} "
            f"{last.base:.2f}); saved the base model unchanged as {saved!r}"
        )
    elif last is not None:
        print(
            f"saved {saved!r}: {last.figure_name} {last.base:.2f} -> {last.best:.2f} on the "
            f"held-out data (step {last.best_step})"
        )
    print(f"use it with: napari-diffdenoise denoise INPUT -o OUTPUT --model {saved}")
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
    p = sub.add_parser(
        "denoise",
        help="denoise images and stacks of any size (TIFF, zarr, OME-Zarr; also PNG, .npy)",
        description=DENOISE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="image files or stores; globs allowed"
    )
    p.add_argument(
        "-o",
        "--output",
        default=None,
        help="output: a .zarr store (any size; written as planes finish, resumable), a .tif/.tiff "
        "(BigTIFF when large), .npy or .png (small jobs), or a folder for several inputs",
    )
    p.add_argument(
        "--axes",
        default=None,
        help="axis names, e.g. TZCYX or CYX (default: from the "
        "file's metadata, else the last two axes are YX)",
    )
    p.add_argument(
        "--model",
        default="default",
        help="a name from 'napari-diffdenoise models' or a .safetensors path",
    )
    noise = p.add_mutually_exclusive_group()
    noise.add_argument(
        "--sigma",
        type=float,
        default=None,
        help="noise std in image units (default: estimated per plane)",
    )
    noise.add_argument(
        "--time-map",
        default=None,
        help="a time map file: a TIFF saved by the Time map widget (its σ scale travels with it), "
        "or floats in [0, 1] / integer levels of 255; one plane or the stack's shape",
    )
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--sampler", default=None, choices=["direct", "origin", "cold", "indi"])
    p.add_argument(
        "--eta", type=float, default=0.0, help="fresh noise of the indi sampler (0: deterministic)"
    )
    p.add_argument(
        "--samples", type=int, default=1, help="stochastic samples averaged (needs --eta > 0)"
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument(
        "--precision",
        default=None,
        choices=["float32", "bfloat16", "float16"],
        help="network arithmetic (default: the model preset's)",
    )
    p.add_argument(
        "--tile", type=int, default=None, help="tile size in pixels (default: from free memory)"
    )
    p.add_argument(
        "--batch", type=int, default=None, help="tiles per network call (default: from free memory)"
    )
    p.add_argument(
        "--threads", type=int, default=None, help="CPU threads for the network (default: torch's)"
    )
    p.add_argument("--seed", type=int, default=None)
    p.add_argument(
        "--wiener",
        type=_wiener_arg,
        default=None,
        help="weight in [0, 1] of the collaborative Wiener (non-local) estimate blended "
        "with the network's, or 'auto' (weights chosen by SURE); default: the preset's "
        "(quality: auto, others: 0)",
    )
    p.add_argument(
        "--pyramid", action="store_true", help="add a multiscale pyramid to an OME-Zarr output"
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace an existing output that is not this job's"
    )
    cluster = p.add_mutually_exclusive_group()
    cluster.add_argument(
        "--workers",
        type=int,
        default=None,
        help="run on a local dask cluster of N worker processes",
    )
    cluster.add_argument(
        "--scheduler",
        default=None,
        help="run on the dask.distributed scheduler at ADDR (e.g. tcp://host:8786)",
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
    p = sub.add_parser(
        "export", help="write a model as a bioimage.io model package (.zip) for the model zoo"
    )
    p.add_argument("model", help="a name from 'napari-diffdenoise models'")
    p.add_argument("output", help="the package to write, a .zip file")
    p.add_argument("--overwrite", action="store_true", help="replace an existing file")
    p.set_defaults(func=_cmd_export)
    _add_fine_tune_parser(sub)
    return parser


def _add_fine_tune_parser(sub) -> None:
    p = sub.add_parser(
        "fine-tune",
        help="adapt a model to your microscope (noisy/clean pairs or noisy images alone)",
        description=FINE_TUNE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    data = p.add_mutually_exclusive_group(required=True)
    data.add_argument(
        "--pairs",
        nargs=2,
        metavar=("NOISY_DIR", "CLEAN_DIR"),
        default=None,
        help="two folders of noisy and clean images, matched by file name",
    )
    data.add_argument(
        "--noisy",
        metavar="DIR_OR_STACK",
        default=None,
        help="a folder or stack of noisy images alone (self-supervised)",
    )
    p.add_argument("--name", default=None, help="the new model's name (default: base and date)")
    p.add_argument("--base", default="default", help="the model to start from (name or path)")
    p.add_argument("--minutes", type=float, default=None, help="time budget (default: 5)")
    p.add_argument("--steps", type=int, default=None, help="step budget")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--replace", action="store_true", help="replace a model of the same name")
    p.add_argument("--resume", action="store_true", help="continue the run of --name")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument(
        "--validation-fraction",
        type=float,
        default=0.1,
        help="share of the data held out for the validation figure (default: 0.1)",
    )
    p.add_argument("--lr", type=float, default=None, help="peak learning rate")
    p.add_argument("--batch", type=int, default=None, help="patches per step (default: 8)")
    p.add_argument(
        "--patch",
        type=int,
        default=None,
        help="side of the training patches, a multiple of 8 (default: pairs 64, noisy-only 96)",
    )
    p.set_defaults(func=_cmd_fine_tune)


def _terminate(signum, frame):  # pragma: no cover - exercised through a subprocess
    raise KeyboardInterrupt("terminated")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    previous = None
    if threading.current_thread() is threading.main_thread():
        # a scheduler's SIGTERM (an HPC job's time limit) stops like Ctrl-C: the planes
        # finished so far are kept and the same command resumes
        previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt as exc:
        print(f"\n{exc or 'interrupted'}", file=sys.stderr)
        return 130
    except (ValueError, TypeError, OSError, LookupError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
