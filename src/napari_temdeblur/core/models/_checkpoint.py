"""Checkpoints: a trained network with everything needed to use it (and, for last.pt, to resume).

A checkpoint is a ``torch.save`` of plain data (tensors, numbers, strings, lists, dicts), read back with
``weights_only=True``, so loading one never runs code from the file:

``format``            ``"temdeblur-checkpoint/1"``
``model``             :meth:`ModelConfig.to_dict` (name and widths)
``state_dict``        the network's parameters and buffers
``epoch``             the epoch (1-based) after which it was saved
``windows``           ``{"gt": {"low", "high"}, "low": {"low", "high"}}`` intensity windows (counts)
``frames``            ``[min, max]`` frames per burst in training; restore with ``max``
``val_ssim``          validation SSIM of this state, or None
``versions``          package / torch / numpy / python versions that wrote it
``training``          (last.pt only) optimiser, scheduler and RNG states, history: see core.train
"""

from __future__ import annotations

import pickle
import platform
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from napari_temdeblur import __version__
from napari_temdeblur.core import DataError, atomic_write, first_line
from napari_temdeblur.core.imaging import IntensityWindow

from ._bioimageio_network import BIOIMAGEIO_SUFFIX, load_bioimageio
from ._onnx_network import ONNX_SUFFIX, load_onnx
from ._pretrained import resolve_run
from ._registry import MODEL_NAMES, ModelConfig, build_model, frames_required

CHECKPOINT_FORMAT = "temdeblur-checkpoint/1"
BEST, LAST = "best.pt", "last.pt"


@dataclass
class Checkpoint:
    """A loaded checkpoint (see the module docstring for the stored fields)."""

    path: Path
    model: ModelConfig
    state_dict: dict
    epoch: int
    gt_window: IntensityWindow
    low_window: IntensityWindow
    frames: tuple[int, int]
    val_ssim: float | None
    versions: dict
    training: dict | None = None

    @property
    def burst_frames(self) -> int:
        """Frames of each burst it restores: the exact count a frames-as-channels network takes
        (deblurgan), else the most it trained with."""
        return frames_required(self.model) or self.frames[1]


def versions() -> dict:
    """Versions of the software that trained a model, recorded in checkpoints and config.json."""
    return {
        "napari-temdeblur": __version__,
        "torch": str(torch.__version__),  # a TorchVersion object would need code to unpickle
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def save_checkpoint(
    path: str | Path,
    *,
    model: ModelConfig,
    state_dict: dict,
    epoch: int,
    gt_window: IntensityWindow,
    low_window: IntensityWindow,
    frames: tuple[int, int],
    val_ssim: float | None = None,
    training: dict | None = None,
) -> Path:
    """Write a checkpoint atomically (temporary file + rename): `path` is never left half-written.

    Parameters
    ----------
    path : str or Path
        Destination, e.g. ``<run>/best.pt``.
    model : ModelConfig
    state_dict : dict
        ``module.state_dict()``; tensors are copied to the CPU so any device can load it.
    epoch : int
    gt_window, low_window : IntensityWindow
    frames : (int, int)
        Frames per burst used in training (min, max).
    val_ssim : float, optional
    training : dict, optional
        Resume state (plain data only).
    """
    payload = {
        "format": CHECKPOINT_FORMAT,
        "model": model.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
        "epoch": int(epoch),
        "windows": {"gt": gt_window.to_dict(), "low": low_window.to_dict()},
        "frames": [int(frames[0]), int(frames[1])],
        "val_ssim": None if val_ssim is None else float(val_ssim),
        "versions": versions(),
        "training": training,
    }
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


def _unreadable(exc: BaseException) -> str:
    """Why torch could not load a file. When its weights_only loader refuses a file, torch advises
    loading it with weights_only=False (which would run code from the file): never passed on."""
    text = str(exc)
    found = re.search(r"GLOBAL ([\w.]+)", text)
    if "Weights only load failed" in text and found:
        return (
            f"not a napari-temdeblur checkpoint: it holds Python objects ({found.group(1)}) that only running "
            "code from the file could rebuild, and napari-temdeblur never runs code from a file"
        )
    detail = first_line(exc)
    if "Weights only load failed" in text:  # e.g. "Unsupported operand 110": not a checkpoint's data
        advice = ("weights_only", "Weights only", "Please", "Check the documentation", "trust")
        lines = [line.replace("WeightsUnpickler error:", "").strip() for line in text.splitlines()]
        detail = next((line for line in lines if line and not any(a in line for a in advice)), type(exc).__name__)
    return f"not a readable napari-temdeblur checkpoint (truncated, corrupt or foreign file): {detail[:300]}"


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Raises
    ------
    DataError
        Missing, truncated or corrupt file, a file that is not a napari-temdeblur checkpoint, or one
        whose model configuration this version does not know.
    """
    path = Path(path)
    try:
        exists = path.is_file()
        data = torch.load(path, map_location="cpu", weights_only=True) if exists else None
    except PermissionError:
        raise DataError.no_permission(path) from None
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DataError(path, _unreadable(exc)) from None
    if not exists:
        raise DataError(path, "no such checkpoint file")
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise DataError(
            path, f"not a napari-temdeblur checkpoint (expected format {CHECKPOINT_FORMAT!r}, found {found!r})"
        )
    name = data["model"].get("name") if isinstance(data.get("model"), dict) else None
    if isinstance(name, str) and name not in MODEL_NAMES:
        versions = data.get("versions") if isinstance(data.get("versions"), dict) else {}
        raise DataError(
            path,
            f"holds a {name!r} network (written by napari-temdeblur "
            f"{versions.get('napari-temdeblur', '?')}), which this version ({__version__}) does "
            f"not know (it knows {', '.join(MODEL_NAMES)}); update napari-temdeblur to use it",
        )
    try:
        return Checkpoint(
            path=path,
            model=ModelConfig.from_dict(data["model"]),
            state_dict=data["state_dict"],
            epoch=int(data["epoch"]),
            gt_window=IntensityWindow.from_dict(data["windows"]["gt"]),
            low_window=IntensityWindow.from_dict(data["windows"]["low"]),
            frames=(int(data["frames"][0]), int(data["frames"][1])),
            val_ssim=data["val_ssim"],
            versions=dict(data["versions"]),
            training=data.get("training"),
        )
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise DataError(path, f"incomplete or invalid checkpoint: {type(exc).__name__}: {exc}") from None


def load_model(run_or_path: str | Path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, Checkpoint]:
    """Build the network of a checkpoint and load its weights, in eval mode on `device`.

    Parameters
    ----------
    run_or_path : str or Path
        A run folder (its ``best.pt`` is used), a ``.pt`` file, a model exported to ``.onnx``
        (:func:`load_onnx`) or to a bioimage.io package ``.zip`` (:func:`load_bioimageio`), or
        ``"pretrained"`` (the default model's shipped weights, :func:`pretrained_checkpoint`).
    device : str or torch.device

    Returns
    -------
    (torch.nn.Module, Checkpoint)

    Raises
    ------
    DataError
        No checkpoint there, an unreadable one, or weights that do not fit the recorded model.
    """
    path = checkpoint_path(run_or_path)
    if path.suffix.lower() == ONNX_SUFFIX:  # computed by onnxruntime, on the CPU
        network, description = load_onnx(path)
        return network, _exported_checkpoint(path, description)
    if path.suffix.lower() == BIOIMAGEIO_SUFFIX:  # a bioimage.io package: its TorchScript weights
        network, description = load_bioimageio(path, device)
        return network, _exported_checkpoint(path, description)
    checkpoint = load_checkpoint(path)
    model = build_model(checkpoint.model, pretrained=False)  # the weights come from the checkpoint
    load_weights(model, checkpoint)
    return model.to(device).eval(), checkpoint


def _exported_checkpoint(path: Path, description: dict) -> Checkpoint:
    """What restoration needs of a checkpoint, from an exported model's description (no weights)."""
    try:
        frames = int(description["frames"])
        return Checkpoint(
            path=path,
            model=ModelConfig.from_dict(description["model"]),
            state_dict={},
            epoch=int(description["epoch"]),
            gt_window=IntensityWindow.from_dict(description["windows"]["gt"]),
            low_window=IntensityWindow.from_dict(description["windows"]["low"]),
            frames=(frames, frames),
            val_ssim=description.get("val_ssim"),
            versions={"exported_by": str(description.get("exported_by"))},
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(path, f"incomplete napari-temdeblur description: {type(exc).__name__}: {exc}") from None


def checkpoint_path(run_or_path: str | Path) -> Path:
    """The checkpoint file of a run folder (its ``best.pt``), a ``.pt`` file, or ``"pretrained"`` (the
    default model's shipped weights, checked against their manifest)."""
    path = resolve_run(run_or_path)
    return path / BEST if path.is_dir() else path


def load_weights(model: torch.nn.Module, checkpoint: Checkpoint) -> None:
    """Load a checkpoint's weights into a network built for its model.

    Raises
    ------
    DataError
        The weights do not fit the network (another model or width), named without torch's key lists.
    """
    try:
        model.load_state_dict(checkpoint.state_dict)
    except RuntimeError as exc:
        cfg = checkpoint.model
        raise DataError(
            checkpoint.path,
            f"the weights do not fit model {cfg.name} of width {cfg.width} that the "
            f"checkpoint records ({first_line(exc)[:120]}); the file was changed or "
            "written by another program",
        ) from None
