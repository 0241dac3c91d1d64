"""The plugin's layer metadata: ``layer.metadata["temdeblur"]``, written by the reader, the sample data
and the docks, read back to know what a layer is (docs/design.md, Layer metadata).

Every layer the plugin makes carries ``{"temdeblur": {"kind": <LayerKind value>, ...}}``; the other keys
depend on the kind (names, windows, valid shapes, ...). Layers without it are the user's own.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

#: The key of the plugin's entry in ``layer.metadata``.
METADATA_KEY = "temdeblur"


class LayerKind(str, Enum):
    """What a plugin layer holds (its value is what the metadata records)."""

    GT = "gt"  #: sharp images, (image, y, x) or (y, x)
    LOW = "low"  #: registered stream frames, (frame, image, y, x) or (frame, y, x)
    HQ = "hq"  #: a session's sharp HQ images, (image, y, x), lazy
    STREAM = "stream"  #: a session's raw stream, (frame, y, x), lazy
    RESTORED = "restored"  #: the Restore dock's restored images
    INPUT = "input"  #: the Restore dock's centre input frames
    SSIM_MAP = "ssim-map"  #: the Restore dock's SSIM maps
    TRUST = "trust"  #: the Restore dock's calibrated interval widths (docs/trust.md)
    FLAGS = "flags"  #: the Restore dock's hallucination flags (labels: 1 where flagged)
    MOSAIC = "mosaic"  #: a ``temdeblur mosaic`` overview (restored or raw), multiscale, lazy


def tag(kind: LayerKind, **info: Any) -> dict:
    """The ``metadata`` of a plugin layer of `kind`, with `info` (JSON-ready values)."""
    return {METADATA_KEY: {**info, "kind": LayerKind(kind).value}}


def layer_info(layer: Any) -> dict:
    """A copy of the plugin's ``metadata["temdeblur"]`` of `layer` ({} for None or a foreign layer)."""
    return dict(getattr(layer, "metadata", {}).get(METADATA_KEY, {}))


def kind_of(layer: Any) -> LayerKind | None:
    """The :class:`LayerKind` of a plugin layer; None for a foreign layer (or an unknown kind)."""
    try:
        return LayerKind(layer_info(layer).get("kind"))
    except ValueError:
        return None
