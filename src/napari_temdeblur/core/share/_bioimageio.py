"""A trained run as a bioimage.io model package (model spec 0.5, written with ``bioimageio.spec``).

The package holds the network twice, as TorchScript and as ONNX (the same model, checked against torch),
and describes it so that any bioimage.io consumer can run it on detector counts:

``burst``     input (batch, channel, y, x): the F registered frames of a burst as channels (the run's
              frame count, centre frame at F // 2), uint16 detector counts; pre-processing windows them
              with the run's Low window: ``clip((counts - low) / (high - low), 0, 1)``
``restored``  output (batch, channel, y, x) with one channel: the restored image, post-processed back to
              GT detector counts (float32): ``low + value * (high - low)`` with the run's GT window

y and x must be multiples of the network's size multiple (``ParameterizedSize(min, step)``). The run's
description, as in the ONNX model's metadata, is in the package's ``config`` under ``temdeblur``
(docs/sharing.md); ``core.models.load_model`` takes the package as a run.
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_temdeblur.core import atomic_write, first_line
from napari_temdeblur.core.io import check_overwrite

from ._bioimageio_parts import describe_model, example_burst, write_cover, write_tensors
from ._onnx import TOLERANCE, describe_run, exported_by_us, largest_difference, require_extra, write_onnx

_NEEDED = ("bioimageio.spec", "bioimageio.core", "onnx", "onnxruntime", "onnxscript")


@dataclass(frozen=True)
class BioimageioExport:
    """What :func:`export_bioimageio` wrote and checked.

    Attributes
    ----------
    path : Path
        The package (``.zip``).
    max_abs_difference : float
        Largest |TorchScript or ONNX - torch| over the checks, [0, 1] scale.
    metadata : dict
        The run description stored in the package's ``config["temdeblur"]``.
    test : str or None
        ``"passed"`` when bioimage.io's own model test passed (None when it was not run).
    """

    path: Path
    max_abs_difference: float
    metadata: dict
    test: str | None


def _torchscript(model, cfg, checks: list[np.ndarray], path: Path) -> float:
    """Trace `model` to TorchScript at `path`; the largest difference from torch over `checks`."""
    import torch

    try:
        with warnings.catch_warnings(), torch.no_grad():
            # the tracer warns that shapes turned into constants: the sizes it traces are dynamic
            # multiples (checked below at a second size), the padding branch is never taken; torch 2.13
            # deprecates TorchScript, which bioimage.io's torchscript weights still are
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            traced = torch.jit.trace(model, torch.from_numpy(checks[0]), check_trace=False)
        traced.save(str(path))
    except Exception as exc:  # the tracer names the operation or value it could not record
        raise ValueError(f"{cfg.name} could not be traced to TorchScript: {first_line(exc)}") from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        loaded = torch.jit.load(str(path), map_location="cpu")
    worst = largest_difference(model, lambda burst: loaded(torch.from_numpy(burst)).numpy(), checks)
    if not worst <= TOLERANCE:
        raise ValueError(f"the TorchScript model of {cfg.name} differs from torch by {worst:.2e} (> {TOLERANCE})")
    return worst


def export_bioimageio(
    run: str | Path,
    out: str | Path,
    *,
    sample: str | Path | None = None,
    overwrite: bool = False,
    test: bool = True,
    test_size: int = 256,
) -> BioimageioExport:
    """Export a trained run as a bioimage.io model package and run bioimage.io's model test on it.

    Parameters
    ----------
    run : str or Path
        A run folder (its ``best.pt``), a checkpoint file, or ``"pretrained"``.
    out : str or Path
        The package to write (``.zip``; replaced atomically). An existing file is replaced only when it
        is a package this package exported, or with `overwrite`.
    sample : str or Path, optional
        A registered burst for the package's test tensors and cover (dataset, burst folder or burst
        TIFF: its first burst). Default: the first Val burst of the run's training data (config.json).
    overwrite : bool
        Replace `out` whatever wrote it.
    test : bool
        Run ``bioimageio.core.test_model`` on the package before it replaces `out`.
    test_size : int
        Height and width (px) of the test tensors: a centre crop of the burst, rounded down to the size
        multiple.

    Returns
    -------
    BioimageioExport

    Raises
    ------
    DataError
        The export extra is missing, the run or the sample cannot be read, or (OverwriteRefused) `out`
        exists and is not a package we exported.
    ValueError
        The network could not be traced or exported, a traced model differs from torch by more than
        ``TOLERANCE``, or bioimage.io's model test failed (its report is in the message); nothing is
        written then.
    """
    require_extra("bioimage.io export", _NEEDED)
    import torch
    from bioimageio.core import test_model
    from bioimageio.spec import save_bioimageio_package

    from napari_temdeblur.core.imaging import apply_window
    from napari_temdeblur.core.models import BIOIMAGEIO_FORMAT, load_model, read_bioimageio_description

    check_overwrite(None, [out], exported_by_us(read_bioimageio_description), overwrite=overwrite)  # before the export

    model, checkpoint = load_model(run, "cpu")
    cfg = checkpoint.model
    metadata = describe_run(model, checkpoint, BIOIMAGEIO_FORMAT)
    frames, multiple = metadata["frames"], metadata["size_multiple"]
    burst = example_burst(run, sample, frames, multiple, test_size)  # (F, s, s) counts
    windowed = apply_window(burst, checkpoint.low_window)[None]
    side = windowed.shape[-1]
    # the test burst, and random bursts of another, non-square size and batch: the sizes are dynamic
    checks = [windowed, np.random.default_rng(0).random((2, frames, side + multiple, 2 * side), np.float32)]
    with torch.no_grad():
        restored = model(torch.from_numpy(windowed)).numpy()
    out = Path(out)

    with tempfile.TemporaryDirectory(prefix="temdeblur-bioimageio-") as tmp:
        folder = Path(tmp)
        worst = _torchscript(model, cfg, checks, folder / "weights.torchscript.pt")
        worst = max(worst, write_onnx(model, checkpoint, folder / "weights.onnx")[0])
        gt = checkpoint.gt_window  # the output's post-processing: [0, 1] -> GT counts
        write_tensors(folder, burst, restored[0] * np.float32(gt.high - gt.low) + np.float32(gt.low))
        write_cover(folder / "cover.png", windowed[0, frames // 2], restored[0, 0])
        descr = describe_model(folder, run, metadata, checkpoint)

        package = folder / "package.zip"
        save_bioimageio_package(descr, output_path=package)
        if test:
            with warnings.catch_warnings():  # its TorchScript loader's deprecation under torch 2.13
                warnings.simplefilter("ignore", DeprecationWarning)
                summary = test_model(package)
            if summary.status != "passed":
                raise ValueError(f"the package fails bioimage.io's model test:\n{summary.format()}")
        atomic_write(out, lambda tmp: shutil.copyfile(package, tmp))
    return BioimageioExport(out, worst, metadata, summary.status if test else None)
