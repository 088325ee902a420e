"""Export a model as a bioimage.io model package (spec 0.5, a ``.zip``) for the model zoo.

The package holds the network's one-step ("direct") denoiser, ``S_θ(y, y, τ)``: the clean
estimate of a noisy image ``y`` given its per-pixel time map ``τ`` (docs/method.md). Two weight
formats, both run by the zoo's runners (bioimageio.core, ilastik, deepImageJ runs TorchScript):

- ``pytorch_state_dict`` (the original): the weights (a plain tensor state dict) with the
  architecture's source (``TimeUNet`` and a ``DirectDenoiser`` wrapper, one file).
- ``torchscript``: the same wrapper traced, so no Python source is needed to run it.

Nothing in the package is read back through pickle on our side: our own weights stay
safetensors, and the package is validated by ``bioimageio.spec`` before it is moved into place.
torch and bioimageio are imported inside the functions (``pip install
napari-diffdenoise[bioimageio]``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

__all__ = ["export_model", "normalise_like_package", "TEST_IMAGE_SIZE"]

#: side of the package's test image (pixels): small, so that validation runs in seconds
TEST_IMAGE_SIZE = 64
#: the test image's noise: Gaussian, σ rising linearly along x (image units)
_TEST_SIGMA = (10.0, 40.0)

_CITATIONS = (
    (
        "Yang, Liang, Su. Real-World Denoising via Diffusion Model. arXiv 2305.04457 (2023).",
        "10.48550/arXiv.2305.04457",
    ),
    (
        "Pearl et al. SVNR: Spatially-variant Noise Removal with Denoising Diffusion. "
        "arXiv 2306.16052 (2023).",
        "10.48550/arXiv.2306.16052",
    ),
)
_AUTHORS = ({"name": "napari-diffdenoise developers"},)
_LICENSE = "BSD-3-Clause"  # the project's license (pyproject.toml)
_EPS = 1e-6  # scale_range's epsilon: (x - low) / (high - low + eps)

# The package's architecture file: napari_diffdenoise/model/unet.py followed by this wrapper.
_WRAPPER = '''

# ---- napari-diffdenoise: the exported function -------------------------------------------


class DirectDenoiser(nn.Module):
    """One-step ("direct") denoiser: ``denoised = S(image, image, time_map)``.

    ``image`` and ``time_map`` are ``(batch, 1, y, x)`` float32, y and x multiples of
    ``2 ** (len(channels) - 1)``; ``image`` normalised by its robust range (0 and 1 at the
    low and high percentiles), ``time_map`` the per-pixel diffusion time
    ``tau = sigma / sigma_max`` in [0, 1] (values outside are clipped). Pixels with
    ``tau = 0`` are returned unchanged.
    """

    def __init__(
        self,
        channels,
        blocks_per_level=1,
        time_features=16,
        time_dim=32,
        norm="none",
        in_planes=3,
    ):
        super().__init__()
        self.net = TimeUNet(
            UNetConfig(
                channels=tuple(int(c) for c in channels),
                blocks_per_level=int(blocks_per_level),
                time_features=int(time_features),
                time_dim=int(time_dim),
                norm=str(norm),
                in_planes=int(in_planes),
            )
        )

    def forward(self, image: torch.Tensor, time_map: torch.Tensor) -> torch.Tensor:
        tau = time_map.clamp(0.0, 1.0)
        # the per-pixel embedding at every level, with no shortcut for uniform maps (a
        # traced graph must not depend on the data)
        embs = [self.net.embed(tau)]
        for _ in range(len(self.net.down)):
            embs.append(F.avg_pool2d(embs[-1], 2))
        estimate = image - self.net.trunk(torch.cat([image, image, tau], dim=1), embs)
        return torch.where(tau > 0, estimate, image)
'''


def _bioimageio():
    try:
        import bioimageio.spec  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "exporting a bioimage.io package needs bioimageio.spec: "
            "pip install 'napari-diffdenoise[bioimageio]'"
        ) from exc


def normalise_like_package(
    image: np.ndarray, low: float = 0.5, high: float = 99.8
) -> tuple[np.ndarray, float]:
    """The package's preprocessing (bioimage.io ``scale_range`` over y and x).

    ``(image - p_low) / (p_high - p_low + 1e-6)`` with the image's own percentiles; returns the
    normalised float32 image and its scale ``p_high - p_low + 1e-6`` (image units per
    normalised unit, the divisor that turns a σ in image units into normalised units). Unlike
    the library's :func:`~napari_diffdenoise.intensity.robust_range`, no smoothing is applied
    before the percentiles, since the package format cannot express it.
    """
    import numpy as np

    arr = np.asarray(image, dtype=np.float32)
    lo, hi = np.percentile(arr, [low, high])
    scale = np.float32(hi - lo + _EPS)
    return ((arr - np.float32(lo)) / scale).astype(np.float32), float(scale)


def _check_target(path: str | os.PathLike, overwrite: bool) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a file path, got {type(path).__name__}")
    target = Path(path)
    if target.suffix.lower() != ".zip":
        raise ValueError(f"a bioimage.io package is a .zip file; got {target}")
    if target.is_dir():
        raise IsADirectoryError(f"{target} is a folder; give the package's .zip file name")
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists; pass overwrite=True (--overwrite) to replace it")
    return target


def _check_authors(authors: Any) -> list[dict[str, str]]:
    if authors is None:
        return [dict(a) for a in _AUTHORS]
    if isinstance(authors, (str, dict)):
        authors = [authors]
    out = []
    for author in authors:
        entry = {"name": author} if isinstance(author, str) else author
        if not isinstance(entry, dict) or not str(entry.get("name", "")).strip():
            raise ValueError(
                "authors must be names or dicts with a 'name' (and optionally 'affiliation', "
                f"'email', 'orcid', 'github_user'); got {author!r}"
            )
        out.append({k: str(v) for k, v in entry.items()})
    return out


def _package_name(name: str) -> str:
    """A zoo-valid name: letters, digits, ``_+- ()`` only, 5 to 64 characters."""
    text = re.sub(r"[^A-Za-z0-9_+\- ()]", "-", f"napari-diffdenoise {name}")
    return text[:64]


def _test_image(sigma_max: float, low: float, high: float, multiple: int):
    """A real test image: a synthetic fluorescence crop in camera-like units with spatially
    variant Gaussian noise, its time map (from the known σ map), both ``(1, 1, n, n)``."""
    import numpy as np

    from ..noise.simulate import add_noise, sigma_profile
    from ..noise.timemap import time_map_from_sigma
    from ..synthetic import synthetic_fluorescence

    n = max(TEST_IMAGE_SIZE, 2 * multiple)
    n -= n % multiple
    clean = synthetic_fluorescence((2 * n, 2 * n), kind="cells", seed=18)
    clean = 100.0 + 1000.0 * clean[n // 2 : n // 2 + n, n // 2 : n // 2 + n]
    sigma = sigma_profile(clean.shape, "ramp", *_TEST_SIGMA)
    noisy = add_noise(clean.astype(np.float32), "spatially_variant", sigma=sigma, seed=18)
    normalised, scale = normalise_like_package(noisy, low, high)
    tau = time_map_from_sigma(sigma / scale, sigma_max)
    return noisy[None, None], normalised[None, None], tau[None, None]


def _cover(noisy_normalised, denoised, path: Path) -> None:
    """A 2:1 cover: the noisy test image beside the package's output."""
    import numpy as np
    from skimage import io

    pair = np.concatenate([noisy_normalised, denoised], axis=1)
    img = (np.clip(pair, 0.0, 1.0) * 255).round().astype(np.uint8)
    img = np.kron(img, np.ones((4, 4), np.uint8))
    io.imsave(path, img, check_contrast=False)


def _shareable(value: Any) -> Any:
    """``value`` (a model's JSON record) without this machine's folders: an absolute path keeps
    its file name only, so a shared package does not publish the user's home or data folders."""
    if isinstance(value, dict):
        return {k: _shareable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shareable(v) for v in value]
    if isinstance(value, str) and (Path(value).is_absolute() or value.startswith("~")):
        return Path(value).name
    return value


def _figures(training: dict[str, Any]) -> list[str]:
    """Lines for the README from the model's training record (whatever it holds)."""
    lines = []
    for key in ("base", "method", "data", "steps", "total_steps", "elapsed_s", "validation"):
        if key in training:
            value = training[key]
            if isinstance(value, dict):  # (a fine-tune's per-step history stays in the config)
                value = {k: v for k, v in value.items() if k != "history"}
            if isinstance(value, (dict, list)):
                value = json.dumps(value, sort_keys=True)
            lines.append(f"| {key} | {value} |")
    return lines


def _readme(name: str, info, multiple: int, low: float, high: float, version: str) -> str:
    training = _figures(_shareable(info.training))
    table = ["| field | value |", "|---|---|", *training] if training else ["(no record)"]
    return "\n".join(
        [
            f"# napari-diffdenoise model `{name}`",
            "",
            f"{info.description or 'A napari-diffdenoise denoising model.'}",
            "",
            "A straight-path diffusion denoiser with a per-pixel time map (the noisy image is "
            "both the starting point and the condition; each pixel has its own diffusion time). "
            f"Exported by napari-diffdenoise {version}; this package runs the network's "
            "one-step (*direct*) estimate, the fastest and best-PSNR setting. The multi-step "
            "samplers, self-ensembles and tiling of napari-diffdenoise itself are not part of it.",
            "",
            "## Inputs",
            "",
            f"- `image` (batch, channel=1, y, x): the noisy image, y and x multiples of "
            f"{multiple}. Preprocessing (in the package): `scale_range` over y and x with the "
            f"{low} and {high} percentiles, i.e. `(x - p{low}) / (p{high} - p{low} + 1e-6)`.",
            f"- `time_map` (batch, channel=1, y, x): the per-pixel diffusion time "
            f"`tau = sigma / (sigma_max * (p{high} - p{low} + 1e-6))`, where `sigma` is the "
            f"local noise standard deviation in the image's own units, `p` are the image's "
            f"percentiles as above and `sigma_max = {info.sigma_max}` (the noise level, in "
            "normalised units, that tau = 1 stands for). Values are clipped to [0, 1]; "
            "pixels with tau = 0 are returned unchanged. A constant map suits Gaussian noise; "
            "for Poisson-Gaussian noise use `sigma = sqrt(a * signal + b)`. napari-diffdenoise's "
            "`estimate_noise` gives sigma for an image.",
            "",
            "## Output",
            "",
            "- `denoised` (batch, channel=1, y, x): the clean estimate in the normalised units of "
            f"the input; multiply by `p{high} - p{low} + 1e-6` and add `p{low}` to return to the "
            "image's units.",
            "",
            "## Validation",
            "",
            f"The test tensors are a {TEST_IMAGE_SIZE} x {TEST_IMAGE_SIZE} synthetic "
            "fluorescence image in camera-like units (background about 100, structures up to "
            "1100) with spatially variant Gaussian noise (sigma rising from "
            f"{_TEST_SIGMA[0]:g} to {_TEST_SIGMA[1]:g} along x), its time map from the known "
            "sigma, and this network's output (the cover shows the normalised input and the "
            "output). The model's training record (held-out figures where recorded):",
            "",
            *table,
            "",
            "napari-diffdenoise's benchmarks (docs/bench_denoise.md in its repository) measure "
            "PSNR/SSIM on Set12 with Gaussian, Poisson-Gaussian, salt-and-pepper and spatially "
            "variant noise and on real fluorescence pairs (affine-fitted PSNR).",
            "",
            "## Method",
            "",
            "- Yang, Liang, Su. Real-World Denoising via Diffusion Model. arXiv 2305.04457.",
            "- Pearl et al. SVNR: Spatially-variant Noise Removal with Denoising Diffusion. "
            "arXiv 2306.16052.",
            "",
        ]
    )


def _build(name: str, folder: Path, authors: list[dict[str, str]]):
    """Write the package's files into ``folder`` and return its ``ModelDescr``."""
    import importlib.util
    import inspect
    import sys
    import warnings

    import numpy as np
    import tifffile
    import torch
    from bioimageio.spec.model import v0_5 as spec

    from .. import __version__
    from ..diffusion.samplers import sample
    from . import unet
    from .registry import model_path
    from .weights import load_weights

    weights_path, _ = model_path(name)
    net, info = load_weights(weights_path)
    net = net.to(memory_format=torch.contiguous_format)
    multiple = net.config.multiple
    low = float(info.normalisation.get("low", 0.5))
    high = float(info.normalisation.get("high", 99.8))

    # the architecture file, loaded the way the zoo's runners load it
    arch_file = folder / "diffdenoise_unet.py"
    arch_file.write_text(inspect.getsource(unet) + _WRAPPER)
    module_name = f"_diffdenoise_export_{os.getpid()}_{id(arch_file)}"
    module_spec = importlib.util.spec_from_file_location(module_name, arch_file)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_name] = module  # (dataclasses look their module up while defining)
    try:
        module_spec.loader.exec_module(module)
    finally:
        del sys.modules[module_name]
    kwargs = net.config.to_dict()
    wrapper = module.DirectDenoiser(**kwargs)
    wrapper.net.load_state_dict(net.state_dict(), strict=True)
    wrapper.eval()
    state_file = folder / "weights.pt"
    torch.save({k: v.contiguous() for k, v in wrapper.state_dict().items()}, state_file)

    raw, image, tau = _test_image(info.sigma_max, low, high, multiple)
    image_t, tau_t = torch.from_numpy(image), torch.from_numpy(tau)
    with torch.inference_mode():
        denoised = sample(net, image_t, tau_t, sampler="direct").numpy()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit's own notices
        traced = torch.jit.trace(wrapper, (image_t, tau_t), check_trace=False)
        wrapped = wrapper(image_t, tau_t).numpy()
    if not np.allclose(wrapped, denoised, atol=1e-4):  # pragma: no cover - a bug guard
        raise RuntimeError("the exported wrapper does not reproduce the network's output")
    script_file = folder / "weights_torchscript.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(traced, str(script_file))

    files = {
        "image": folder / "test_input_image.npy",
        "time_map": folder / "test_input_time_map.npy",
        "denoised": folder / "test_output_denoised.npy",
    }
    np.save(files["image"], raw.astype(np.float32))
    np.save(files["time_map"], tau.astype(np.float32))
    np.save(files["denoised"], denoised.astype(np.float32))
    samples = {key: folder / f"sample_{key}.tif" for key in files}
    for key, f in files.items():  # the same tensors as TIFF, for people to look at
        tifffile.imwrite(samples[key], np.load(f))
    cover = folder / "cover.png"
    _cover(image[0, 0], denoised[0, 0], cover)
    readme = folder / "README.md"
    readme.write_text(_readme(name, info, multiple, low, high, __version__))

    def space(axis: str, size):
        return spec.SpaceInputAxis(id=spec.AxisId(axis), size=size)

    channel = spec.ChannelAxis(channel_names=[spec.Identifier("intensity")])
    grid = spec.ParameterizedSize(min=2 * multiple, step=multiple)
    inputs = [
        spec.InputTensorDescr(
            id=spec.TensorId("image"),
            description="noisy image (any intensity units; percentile-normalised in the package)",
            axes=[spec.BatchAxis(), channel, space("y", grid), space("x", grid)],
            test_tensor=spec.FileDescr(source=files["image"]),
            sample_tensor=spec.FileDescr(source=samples["image"]),
            preprocessing=[
                spec.EnsureDtypeDescr(kwargs=spec.EnsureDtypeKwargs(dtype="float32")),
                spec.ScaleRangeDescr(
                    kwargs=spec.ScaleRangeKwargs(
                        axes=[spec.AxisId("y"), spec.AxisId("x")],
                        min_percentile=low,
                        max_percentile=high,
                        eps=_EPS,
                    )
                ),
            ],
        ),
        spec.InputTensorDescr(
            id=spec.TensorId("time_map"),
            description="per-pixel diffusion time tau = sigma / (sigma_max * image scale), "
            "in [0, 1] (see README)",
            axes=[
                spec.BatchAxis(),
                channel,
                space("y", spec.SizeReference(tensor_id="image", axis_id="y")),
                space("x", spec.SizeReference(tensor_id="image", axis_id="x")),
            ],
            test_tensor=spec.FileDescr(source=files["time_map"]),
            sample_tensor=spec.FileDescr(source=samples["time_map"]),
            data=spec.IntervalOrRatioDataDescr(type="float32", range=(0.0, 1.0)),
        ),
    ]
    outputs = [
        spec.OutputTensorDescr(
            id=spec.TensorId("denoised"),
            description="clean estimate in the normalised units of the input",
            axes=[
                spec.BatchAxis(),
                channel,
                spec.SpaceOutputAxis(
                    id=spec.AxisId("y"), size=spec.SizeReference(tensor_id="image", axis_id="y")
                ),
                spec.SpaceOutputAxis(
                    id=spec.AxisId("x"), size=spec.SizeReference(tensor_id="image", axis_id="x")
                ),
            ],
            test_tensor=spec.FileDescr(source=files["denoised"]),
            sample_tensor=spec.FileDescr(source=samples["denoised"]),
        )
    ]
    torch_version = spec.Version(torch.__version__.split("+")[0])
    weights = spec.WeightsDescr(
        pytorch_state_dict=spec.PytorchStateDictWeightsDescr(
            source=state_file,
            architecture=spec.ArchitectureFromFileDescr(
                source=arch_file, callable=spec.Identifier("DirectDenoiser"), kwargs=kwargs
            ),
            pytorch_version=torch_version,
            comment="tensors of napari-diffdenoise's safetensors weights, under 'net.'",
        ),
        torchscript=spec.TorchscriptWeightsDescr(
            source=script_file,
            pytorch_version=torch_version,
            parent="pytorch_state_dict",
            comment="DirectDenoiser traced with torch.jit.trace",
        ),
    )
    description = (
        f"Denoises microscopy images with a straight-path diffusion model conditioned on a "
        f"per-pixel noise-level (time) map; one-step estimate of napari-diffdenoise's "
        f"'{name}' model ({info.description or 'TimeUNet'})."
    )
    return spec.ModelDescr(
        name=_package_name(name),
        description=description[:500],
        authors=[spec.Author(**a) for a in authors],
        cite=[spec.CiteEntry(text=text, doi=spec.Doi(doi)) for text, doi in _CITATIONS],
        license=spec.LicenseId(_LICENSE),
        documentation=spec.FileDescr(source=readme),
        covers=[spec.FileDescr(source=cover)],
        tags=["denoising", "diffusion", "fluorescence-light-microscopy", "2d", "pytorch", "napari"],
        version=spec.Version(__version__),
        inputs=inputs,
        outputs=outputs,
        weights=weights,
        config=spec.Config(
            bioimageio=spec.BioimageioConfig(
                reproducibility_tolerance=[
                    spec.ReproducibilityTolerance(relative_tolerance=1e-3, absolute_tolerance=1e-4)
                ],
                architecture_type="UNet",
                architecture_description="UNet with a per-pixel sinusoidal time embedding "
                "added to every residual block (SVNR); predicts x_t minus a residual",
                modality="fluorescence light microscopy",
                task="denoising",
                model_parameter_count=int(net.parameter_count()),
            ),
            napari_diffdenoise={
                "model": _shareable(json.loads(json.dumps(info.to_dict()))),
                "exported_by": f"napari-diffdenoise {__version__}",
                "function": "direct (one step)",
                "sigma_max": info.sigma_max,
                "size_multiple": multiple,
            },
        ),
    )


def export_model(
    name: str,
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
    authors: Any = None,
) -> Path:
    """Write a model as a bioimage.io model package (spec 0.5) for sharing in the model zoo.

    Parameters
    ----------
    name
        A name from :func:`~napari_diffdenoise.list_models`: a bundled preset ("default"; the
        other presets share its network) or a saved, e.g. fine-tuned, model.
    path
        The package to write, a ``.zip`` file. Written atomically (a temporary file in the
        same folder, validated, then renamed).
    overwrite
        Replace an existing file at ``path`` (refused otherwise).
    authors
        The package's authors: names or dicts (``name``, optional ``affiliation``, ``email``,
        ``orcid``, ``github_user``); default: the napari-diffdenoise developers. Give your own
        when you share a model you fine-tuned; uploading to the zoo needs an author with a
        ``github_user`` (checked online while the package is validated).

    Returns
    -------
    pathlib.Path
        ``path``.

    Notes
    -----
    The package runs the network's one-step ("direct") estimate with two inputs, ``image``
    (normalised in the package by its 0.5 and 99.8 percentiles, bioimage.io ``scale_range``)
    and ``time_map`` (``τ = σ / (σ_max · scale)`` per pixel, σ the noise level in image units,
    scale the percentile range, σ_max in the package's config), and one output, ``denoised``
    (normalised units). Weights come as ``pytorch_state_dict`` (with the architecture source)
    and ``torchscript`` (traced); test inputs and outputs (a 64 × 64 synthetic fluorescence
    image with spatially variant noise) and a README with these details are included.

    Raises
    ------
    LookupError
        ``name`` is not listed by ``list_models()`` (the message lists them).
    FileExistsError
        ``path`` exists and ``overwrite`` is False.
    ValueError
        ``path`` is not a ``.zip``, the authors are malformed, or the package does not validate.
    OSError
        An author's ``github_user`` could not be checked online (no network).
    ImportError
        ``bioimageio.spec`` is not installed (``pip install napari-diffdenoise[bioimageio]``).
    """
    from .registry import list_models

    if not isinstance(name, str):
        raise TypeError(f"name must be a model name (str), got {type(name).__name__}")
    available = list_models()
    if name not in available:
        raise LookupError(
            f"unknown model {name!r}; export one of: {', '.join(available) or 'none'}"
        )
    target = _check_target(path, overwrite)
    people = _check_authors(authors)
    _bioimageio()
    import httpx
    from bioimageio.spec import save_bioimageio_package

    from .._atomic import atomic_write

    with tempfile.TemporaryDirectory(prefix="diffdenoise-export-") as tmp:
        folder = Path(tmp)
        (folder / "files").mkdir()
        package = folder / "package.zip"
        try:
            descr = _build(name, folder / "files", people)
            # writes the zip and loads it back: a ValueError if it does not validate
            save_bioimageio_package(descr, output_path=package)
        except httpx.HTTPError as exc:
            raise OSError(
                f"validating the package needed the network and failed ({exc}); an author's "
                "github_user is checked online: leave it out or export where GitHub is reachable"
            ) from exc
        atomic_write(target, lambda p: shutil.copyfile(package, p))
    return target
