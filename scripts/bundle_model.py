"""Ship a trained model in the package, and keep a compact copy of its training checkpoint.

    python scripts/bundle_model.py runs/<run>/<name>.safetensors [--half]
    python scripts/bundle_model.py runs/<run>/<name>.safetensors --keep-checkpoint training_runs/<run>

The model file (EMA weights + JSON sidecar, as a training run writes it) is copied into
``src/napari_diffdenoise/model/weights/`` under its own name; ``--half`` stores the weights as
float16 (half the wheel size; they load as float32). ``--keep-checkpoint DIR`` copies the run's
``checkpoint.{safetensors,json}`` there with the raw and EMA weights only (no optimiser
moments: a third of the size; enough for ``init_from``, not for an exact resume). Every file is
written atomically; the inputs are read, never changed.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", type=Path, help="<run>/<name>.safetensors (with its .json)")
    p.add_argument("--half", action="store_true", help="store float16 weights")
    p.add_argument("--keep-checkpoint", type=Path, default=None, metavar="DIR")
    a = p.parse_args(argv)

    from safetensors.torch import save_file

    from napari_diffdenoise._atomic import atomic_write
    from napari_diffdenoise.model.registry import bundled_dir
    from napari_diffdenoise.model.weights import load_weights, read_tensors, save_model

    net, info = load_weights(a.model)
    dest = save_model(net, bundled_dir() / info.name, info, half=a.half)
    print(f"{dest} ({dest.stat().st_size / 2**20:.2f} MiB, {net.parameter_count():,} parameters)")
    if a.keep_checkpoint is not None:
        src = a.model.parent / "checkpoint.safetensors"
        tensors = {k: v for k, v in read_tensors(src).items()
                   if k.startswith(("model.", "ema."))}
        out = a.keep_checkpoint
        out.mkdir(parents=True, exist_ok=True)
        meta = json.loads(src.with_suffix(".json").read_text())
        meta["optimizer"] = "not kept (model and EMA weights only)"
        atomic_write(out / "checkpoint.safetensors",
                     lambda f: save_file(tensors, str(f), metadata={"format": "napari-diffdenoise"}))
        atomic_write(out / "checkpoint.json",
                     lambda f: f.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n"))
        size = (out / "checkpoint.safetensors").stat().st_size / 2**20
        print(f"{out / 'checkpoint.safetensors'} ({size:.2f} MiB, {len(tensors)} tensors)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
