"""A run exported to ONNX (``temdeblur export``), run by onnxruntime behind the torch interface that
restoration uses, so ``temdeblur restore MODEL.onnx ...`` and the Restore dock take it as a run.

The model's metadata (JSON under ``ONNX_METADATA_KEY``) gives what a checkpoint gives: the model, the
intensity windows, the frame count and the size multiple (docs/sharing.md).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from napari_temdeblur.core import DataError, first_line

#: Metadata key of an exported model holding the run's JSON description, and that description's format.
ONNX_METADATA_KEY, ONNX_FORMAT = "temdeblur", "temdeblur-onnx/1"
#: Extension of the files taken for exported models.
ONNX_SUFFIX = ".onnx"
EXTRA_HINT = 'install the export extra (pip install "napari-temdeblur[export]")'


class FixedNetwork(torch.nn.Module):
    """An exported network (an ONNX model, a bioimage.io package's TorchScript): (B, F, H, W) windowed
    bursts -> (B, 1, H, W), H and W multiples of ``size_multiple``, computed by `run`.

    Its weights are fixed: batch-norm adaptation does not apply (``adaptable`` is False).
    """

    adaptable = False

    def __init__(self, run, size_multiple: int, inference_tile: int | None = None):
        super().__init__()
        self.run, self.size_multiple = run, int(size_multiple)
        if inference_tile:
            self.inference_tile = int(inference_tile)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(x)


def _onnx_runner(session):
    """`session` as a torch function: onnxruntime computes on the CPU, results go back to the input's device."""

    def run(x: torch.Tensor) -> torch.Tensor:
        out = session.run(None, {"burst": x.detach().cpu().numpy().astype(np.float32, copy=False)})[0]
        return torch.from_numpy(out).to(x.device)

    return run


def _session(path: Path):
    try:
        import onnxruntime
    except ImportError:
        raise DataError(path, f"restoring with an exported ONNX model needs onnxruntime: {EXTRA_HINT}") from None
    try:
        return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail / InvalidGraph for foreign or broken files
        raise DataError(path, f"not a readable ONNX model: {first_line(exc)[:200]}") from None


def read_onnx_description(path: str | Path, session=None) -> dict:
    """The run description an exported model carries (docs/sharing.md).

    Raises
    ------
    DataError
        Not a readable ONNX model, or one that napari-temdeblur did not export (another tool's
        model: its inputs are named).
    """
    path = Path(path)
    session = session or _session(path)
    text = session.get_modelmeta().custom_metadata_map.get(ONNX_METADATA_KEY)
    if text is None:
        inputs = ", ".join(f"{i.name} {i.shape}" for i in session.get_inputs())
        raise DataError(
            path,
            f"an ONNX model without napari-temdeblur's description (inputs {inputs}): only models written by "
            "temdeblur export can restore, as they say how to window and pad the bursts",
        )
    try:
        description = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(path, f"its napari-temdeblur description is not valid JSON ({exc})") from None
    if description.get("format") != ONNX_FORMAT:
        raise DataError(path, f"description format is {description.get('format')!r}, expected {ONNX_FORMAT!r}")
    return description


def load_onnx(path: str | Path) -> tuple[FixedNetwork, dict]:
    """An exported model for restoration: the network and its description (docs/sharing.md).

    Raises
    ------
    DataError
        onnxruntime missing, an unreadable model, or a model we did not export.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "no such ONNX model file")
    session = _session(path)
    description = read_onnx_description(path, session)
    try:
        network = FixedNetwork(_onnx_runner(session), description["size_multiple"], description.get("inference_tile"))
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(path, f"incomplete napari-temdeblur description: {type(exc).__name__}: {exc}") from None
    return network, description
