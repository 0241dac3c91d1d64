"""A bioimage.io model package as a run: ``temdeblur restore MODEL.zip ...`` and the Restore dock take one.

A package that ``temdeblur export --format bioimageio`` wrote carries the run's description under
``config["temdeblur"]`` (the windows, frame count and size multiple); its TorchScript weights restore
like the run. A package from another tool is refused: one whose tensors do not fit a burst
restoration (one input (batch, channel = the burst's frames, y, x), one output (batch, one channel,
y, x) of the same size, TorchScript or ONNX weights) with what does not fit named, one that fits
because nothing in it says which intensity windows its network was trained with (docs/sharing.md).
"""

from __future__ import annotations

import io
import warnings
import zipfile
from pathlib import Path

import torch

from napari_temdeblur.core import DataError, first_line

from ._onnx_network import EXTRA_HINT, FixedNetwork

#: Format of the run description in an exported package's ``config["temdeblur"]``.
BIOIMAGEIO_FORMAT = "temdeblur-bioimageio/1"
#: Extension of the files taken for bioimage.io packages.
BIOIMAGEIO_SUFFIX = ".zip"
_NEEDS = "(batch, channel = the burst's frames, y, x) in, (batch, one channel, y, x) of the same size out"


def _describe(path: Path):
    """The package's model description (spec 0.5, converted from older formats)."""
    try:
        from bioimageio.spec import InvalidDescr, load_model_description
    except ImportError:
        raise DataError(path, f"using a bioimage.io package needs bioimageio.spec: {EXTRA_HINT}") from None
    if not path.is_file():
        raise DataError(path, "no such bioimage.io package")
    if not zipfile.is_zipfile(path):
        raise DataError(path, "not a bioimage.io package (not a zip file)")
    try:
        descr = load_model_description(path, format_version="latest", perform_io_checks=False)
    except Exception as exc:  # bioimageio.spec raises ValueError / ValidationError for what it cannot read
        raise DataError(path, f"not a readable bioimage.io model package: {first_line(exc)[:200]}") from None
    if isinstance(descr, InvalidDescr):
        errors = descr.validation_summary.errors
        detail = f"{'.'.join(map(str, errors[0].loc))}: {errors[0].msg}" if errors else "invalid"
        raise DataError(path, f"not a valid bioimage.io model package ({detail[:200]})")
    return descr


def read_bioimageio_description(path: str | Path) -> dict:
    """The run description a package exported by napari-temdeblur carries (docs/sharing.md).

    Raises
    ------
    DataError
        Not a readable bioimage.io model package, or one that napari-temdeblur did not export (another
        tool's package: what does not fit a burst restoration is named).
    """
    path = Path(path)
    return _ours(path, _describe(path))


def _ours(path: Path, descr) -> dict:
    """napari-temdeblur's description in `descr`'s config; DataError for another tool's package."""
    found = (descr.config.model_extra or {}).get("temdeblur")
    if not isinstance(found, dict):
        problems = _misfits(descr)
        if problems:
            raise DataError(
                path,
                f"the bioimage.io model {descr.name!r} does not fit a burst restoration ({_NEEDS}): "
                + "; ".join(problems),
            )
        raise DataError(
            path,
            f"the bioimage.io model {descr.name!r} fits a burst restoration but was not exported by napari-temdeblur: "
            "nothing in it says which intensity windows its network was trained with, so it cannot restore here",
        )
    if found.get("format") != BIOIMAGEIO_FORMAT:
        raise DataError(path, f"description format is {found.get('format')!r}, expected {BIOIMAGEIO_FORMAT!r}")
    return dict(found)


def _torchscript(path: Path, descr, device) -> torch.jit.ScriptModule:
    entry = descr.weights.torchscript
    if entry is None:
        raise DataError(path, "the package has no TorchScript weights")
    with zipfile.ZipFile(path) as archive:
        data = archive.read(str(entry.source))  # ours: a file in the package (KeyError otherwise)
    with warnings.catch_warnings():  # torch 2.13 deprecates TorchScript, bioimage.io's format for torch weights
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.load(io.BytesIO(data), map_location=device).eval()


def _misfits(descr) -> list[str]:
    """What keeps a foreign package from restoring bursts (empty when it fits)."""
    problems = []
    if len(descr.inputs) != 1 or len(descr.outputs) != 1:
        problems.append(f"{len(descr.inputs)} inputs and {len(descr.outputs)} outputs, not one of each")
        return problems
    (inp,), (out,) = descr.inputs, descr.outputs
    for tensor, kind in ((inp, "input"), (out, "output")):
        types = [a.type for a in tensor.axes]
        ids = [str(a.id) for a in tensor.axes]
        if types[:2] != ["batch", "channel"] or types[2:] != ["space", "space"] or ids[2:] != ["y", "x"]:
            shown = ", ".join(f"{i} ({t})" if i != t else t for i, t in zip(ids, types))
            problems.append(f"its {kind} {tensor.id!s} has axes ({shown}), not (batch, channel, y, x)")
    if not problems and out.axes[1].size != 1:
        problems.append(f"its output {out.id!s} has {out.axes[1].size} channels, not one")
    if not problems:
        for k in (2, 3):
            size = out.axes[k].size
            if not (getattr(size, "tensor_id", None) == inp.id and size.axis_id == inp.axes[k].id and not size.offset):
                problems.append(f"its output's {out.axes[k].id!s} size is {size}, not the input's")
    if descr.weights.torchscript is None and descr.weights.onnx is None:
        formats = ", ".join(f for f, entry in descr.weights if entry is not None)
        problems.append(f"its weights are {formats}: napari-temdeblur runs TorchScript or ONNX weights only")
    return problems


def load_bioimageio(path: str | Path, device: str | torch.device = "cpu") -> tuple[FixedNetwork, dict]:
    """A bioimage.io package for restoration: the network and the run description (docs/sharing.md).

    The package must be one napari-temdeblur exported: its TorchScript weights run on `device`.

    Raises
    ------
    DataError
        The extra missing, an unreadable package, or another tool's package (what does not fit named).
    """
    path = Path(path)
    descr = _describe(path)
    description = _ours(path, descr)
    try:
        network = FixedNetwork(
            _torchscript(path, descr, device), description["size_multiple"], description.get("inference_tile")
        )
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise DataError(path, f"unusable napari-temdeblur package: {type(exc).__name__}: {first_line(exc)}") from None
    return network, description
