"""Ship a trained model in the package (a maintainer's step before a release).

    python scripts/bundle_model.py runs/<run>/<name>.safetensors [--half]

The model file (EMA weights + JSON sidecar, as a training run writes it) is copied into
``src/napari_diffdenoise/model/weights/`` under its own name; ``--half`` stores the weights as
float16 (half the wheel size; they load as float32). The file is written atomically; the input
is read, never changed. A bundled file becomes a preset once ``model/registry.py``'s
``PRESETS`` names it (``default`` already does). See docs/training.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="<run>/<name>.safetensors (with its .json)")
    parser.add_argument("--half", action="store_true", help="store float16 weights")
    args = parser.parse_args(argv)

    from napari_diffdenoise.model.registry import bundled_dir
    from napari_diffdenoise.model.weights import load_weights, save_model

    net, info = load_weights(args.model)
    dest = save_model(net, bundled_dir() / info.name, info, half=args.half)
    size = dest.stat().st_size / 2**20
    print(f"{dest} ({size:.2f} MiB, {net.parameter_count():,} parameters)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
