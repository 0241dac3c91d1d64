"""Weights shipped in the package, trained on the simulator (``scripts/make_pretrained.py``), so that a
user can restore at once and training starts from them.

``pretrained/<model>.pt`` is a checkpoint like any run's best.pt; ``pretrained/<model>.json`` is its
manifest: size, SHA-256, the commands that made it and its Test scores. The file is checked against the
manifest before every use, so a damaged or replaced file is refused with a clear message.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from napari_temdeblur.core import DataError

from ._registry import DEFAULT_MODEL, MODELS, model_spec

#: Folder of the shipped weights and their manifests.
PRETRAINED_DIR = Path(__file__).parent / "pretrained"
#: What a user types for a run (``temdeblur restore pretrained ...``, ``--init pretrained``).
PRETRAINED = "pretrained"


def has_pretrained(name: str) -> bool:
    """Whether model `name` ships pretrained weights (a manifest in the package)."""
    return (PRETRAINED_DIR / f"{model_spec(name).name}.json").is_file()


def pretrained_manifest(name: str = DEFAULT_MODEL) -> dict:
    """The manifest of model `name`'s shipped weights (size, sha256, commands, test scores).

    Raises
    ------
    ValueError
        The model ships no weights (the message names those that do).
    DataError
        An unreadable manifest.
    """
    if not has_pretrained(name):
        shipped = [m for m in MODELS if has_pretrained(m)]
        raise ValueError(
            f"no pretrained weights for {name}: they ship for {', '.join(shipped) or 'no model'}; "
            "train from scratch (--init scratch)"
        )
    path = PRETRAINED_DIR / f"{name}.json"
    try:
        manifest = json.loads(path.read_text())
        if not (isinstance(manifest.get("bytes"), int) and isinstance(manifest.get("sha256"), str)):
            raise ValueError("no bytes and sha256")
    except (OSError, ValueError, AttributeError) as exc:
        raise DataError(
            path, f"unreadable manifest of the pretrained weights ({exc}); reinstall napari-temdeblur"
        ) from None
    return manifest


def pretrained_checkpoint(name: str = DEFAULT_MODEL) -> Path:
    """The shipped checkpoint of model `name`, after checking its size and SHA-256 against the manifest.

    Raises
    ------
    ValueError
        The model ships no weights.
    DataError
        The file is missing, truncated or changed: the message says so and how to go on (reinstall, or
        train from scratch with ``--init scratch``).
    """
    manifest = pretrained_manifest(name)
    path = PRETRAINED_DIR / manifest.get("file", f"{name}.pt")
    advice = "reinstall napari-temdeblur, or train from scratch (--init scratch)"
    if not path.is_file():
        raise DataError(path, f"the pretrained weights are missing; {advice}")
    data = path.read_bytes()
    if len(data) != manifest["bytes"] or hashlib.sha256(data).hexdigest() != manifest["sha256"]:
        raise DataError(
            path,
            f"the pretrained weights are damaged ({len(data):,} bytes, expected "
            f"{manifest['bytes']:,} with the SHA-256 of their manifest); {advice}",
        )
    return path


def resolve_run(run: str | Path) -> Path:
    """A run folder or checkpoint path as given, or the default model's shipped checkpoint for the word
    ``pretrained`` (unless a folder of that name exists here)."""
    if str(run).strip().lower() == PRETRAINED and not Path(run).exists():
        return pretrained_checkpoint()
    return Path(run)
