"""A trained run as an ONNX model: dynamic height and width, checked against torch after export.

The ONNX model maps a windowed burst to the restored image, both float32 in [0, 1]:

``burst``     (B, F, H, W): B bursts of F registered frames (the run's frame count), each windowed with the
              run's Low window, centre frame at F // 2
``restored``  (B, 1, H, W): the restored images in the run's GT window

H and W must be multiples of the network's size multiple (its downsampling steps); the exporter
records it, with the windows and the model, as JSON under the ``temdeblur`` key of the model's
metadata, so a reader knows how to window, pad and un-window without this package.
"""

from __future__ import annotations

import importlib
import json
import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_temdeblur import __version__
from napari_temdeblur.core import DataError, atomic_write, first_line
from napari_temdeblur.core.io import check_overwrite

#: ONNX opset: supported by onnxruntime >= 1.16 and every current runtime.
OPSET = 18
#: Largest height and width (px) and batch of bursts the exported graph accepts.
MAX_SIZE_PX, MAX_BATCH = 16384, 1024
#: Agreement required between onnxruntime and torch on the check input ([0, 1] scale).
TOLERANCE = 1e-4
_NEEDED = ("onnx", "onnxruntime", "onnxscript")


@dataclass(frozen=True)
class OnnxExport:
    """What :func:`export_onnx` wrote and checked.

    Attributes
    ----------
    path : Path
        The ``.onnx`` file.
    max_abs_difference : float
        Largest |onnxruntime - torch| over the check input, [0, 1] scale.
    metadata : dict
        The JSON stored under ``ONNX_METADATA_KEY``.
    """

    path: Path
    max_abs_difference: float
    metadata: dict


def require_extra(purpose: str = "ONNX export", needed: tuple[str, ...] = _NEEDED) -> None:
    """DataError naming the first of `needed` that is not installed and the extra that installs it."""
    for name in needed:
        try:
            importlib.import_module(name)
        except ImportError:
            raise DataError(
                None,
                f"{purpose} needs {name}, which is not installed: install the export extra "
                '(pip install "napari-temdeblur[export]")',
            ) from None


def describe_run(model, checkpoint, fmt: str) -> dict:
    """What an exported model says of its run (JSON-ready): the model, frames, size multiple, windows,
    epoch, validation SSIM, inference tile and exporter, under format tag `fmt` (docs/sharing.md)."""
    from napari_temdeblur.core.models import size_multiple

    cfg = checkpoint.model
    return {
        "format": fmt,
        "model": cfg.to_dict(),
        "frames": checkpoint.burst_frames,
        "size_multiple": size_multiple(cfg),
        "windows": {"gt": checkpoint.gt_window.to_dict(), "low": checkpoint.low_window.to_dict()},
        "epoch": checkpoint.epoch,
        "val_ssim": checkpoint.val_ssim,
        "inference_tile": getattr(model, "inference_tile", None),
        "exported_by": f"napari-temdeblur {__version__}",
    }


def exported_by_us(read_description) -> Callable[[Path], bool]:
    """`check_overwrite`'s test of an existing file: whether `read_description` (a reader of our own
    exported models, raising DataError for anything else) reads it, so an earlier export may be replaced."""

    def ours(path: Path) -> bool:
        try:
            read_description(path)
        except DataError:
            return False
        return True

    return ours


def largest_difference(model, run: Callable[[np.ndarray], np.ndarray], checks: list[np.ndarray]) -> float:
    """Largest ``|run(burst) - model(burst)|`` over the bursts of `checks` (each float32 (B, F, H, W)):
    how far an exported copy of `model` (`run`, numpy in and out) strays from torch."""
    import torch

    worst = 0.0
    with torch.no_grad():
        for burst in checks:
            expected = model(torch.from_numpy(burst)).numpy()
            worst = max(worst, float(np.abs(np.asarray(run(burst)) - expected).max()))
    return worst


def export_onnx(
    run: str | Path, out: str | Path, *, overwrite: bool = False, check_size: int = 64, seed: int = 0
) -> OnnxExport:
    """Export a trained run to ONNX and check onnxruntime against torch.

    Parameters
    ----------
    run : str or Path
        A run folder (its ``best.pt``), a checkpoint file, or ``"pretrained"``.
    out : str or Path
        The ``.onnx`` file to write (replaced atomically, only once the check passed). An existing
        file is replaced only when it is a model this package exported, or with `overwrite`.
    overwrite : bool
        Replace `out` whatever wrote it.
    check_size : int
        Height and width (px, rounded up to the size multiple) of the random check burst; a second
        check uses a larger, non-square size so the dynamic axes are exercised.
    seed : int
        Seed of the check bursts.

    Returns
    -------
    OnnxExport

    Raises
    ------
    DataError
        The export extra is missing, the run cannot be read, or (OverwriteRefused) `out` exists and
        is not a model we exported.
    ValueError
        The network could not be exported, or onnxruntime disagrees with torch by more than
        ``TOLERANCE``; nothing is written then.
    """
    require_extra()
    from napari_temdeblur.core.models import load_model, read_onnx_description

    check_overwrite(None, [out], exported_by_us(read_onnx_description), overwrite=overwrite)  # before the export
    model, checkpoint = load_model(run, "cpu")
    out = Path(out)
    result = {}
    atomic_write(out, lambda tmp: result.setdefault("done", write_onnx(model, checkpoint, tmp, check_size, seed)))
    return OnnxExport(out, *result["done"])


def write_onnx(model, checkpoint, path: Path, check_size: int = 64, seed: int = 0) -> tuple[float, dict]:
    """Export loaded `model` (of `checkpoint`) to ONNX at `path` and check onnxruntime against torch
    (:func:`export_onnx` without its overwrite rule and atomic replace; the bioimage.io package's
    ONNX weights). Returns the largest difference ([0, 1] scale) and the metadata stored.

    Raises
    ------
    ValueError
        The network could not be exported, or onnxruntime disagrees with torch by more than ``TOLERANCE``.
    """
    import onnx
    import onnxruntime
    import torch

    from napari_temdeblur.core.models import ONNX_FORMAT, ONNX_METADATA_KEY

    cfg = checkpoint.model
    metadata = describe_run(model, checkpoint, ONNX_FORMAT)
    metadata["input"] = "burst (B, F, H, W) float32 [0, 1], frames windowed with windows.low"
    metadata["output"] = "restored (B, 1, H, W) float32 [0, 1] in windows.gt"
    frames, multiple = metadata["frames"], metadata["size_multiple"]
    side = -(-check_size // multiple) * multiple
    rng = np.random.default_rng(seed)
    # traced with 2 bursts: torch.export would fix a batch of 1 (a size it specialises on)
    checks = [
        rng.random((2, frames, side, side), np.float32),
        rng.random((1, frames, side + multiple, 2 * side), np.float32),
    ]
    # height and width as whole multiples, so the network's own padding branch is never traced
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    rows = torch.export.Dim("rows", min=1, max=MAX_SIZE_PX // multiple)
    cols = torch.export.Dim("cols", min=1, max=MAX_SIZE_PX // multiple)
    shapes = ({0: batch, 2: multiple * rows, 3: multiple * cols},)
    # the exporter logs a warning per torchvision operator it cannot register (nothing we use)
    # and raises torch.export's own deprecations: neither is the user's to act on
    onnx_log = logging.getLogger("torch.onnx")
    level = onnx_log.level
    onnx_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            program = torch.onnx.export(
                model,
                (torch.from_numpy(checks[0]),),
                dynamo=True,
                dynamic_shapes=shapes,
                input_names=["burst"],
                output_names=["restored"],
                opset_version=OPSET,
                verbose=False,
            )
    except Exception as exc:  # torch.export names the operation it could not trace
        raise ValueError(f"{cfg.name} could not be exported to ONNX: {first_line(exc)}") from None
    finally:
        onnx_log.setLevel(level)
    proto = program.model_proto
    entry = proto.metadata_props.add()
    entry.key, entry.value = ONNX_METADATA_KEY, json.dumps(metadata)
    onnx.save(proto, str(path))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = largest_difference(model, lambda burst: session.run(None, {"burst": burst})[0], checks)
    if not worst <= TOLERANCE:
        raise ValueError(f"the ONNX model of {cfg.name} differs from torch by {worst:.2e} (> {TOLERANCE}): not written")
    return worst, metadata
