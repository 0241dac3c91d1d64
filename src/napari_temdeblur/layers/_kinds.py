"""The plugin's layer metadata: ``layer.metadata["temdeblur"]``, written by the reader, the sample data
and the docks, read back to know what a layer is."""

from __future__ import annotations

from typing import Any


def layer_info(layer: Any) -> dict:
    """A copy of the plugin's ``metadata["temdeblur"]`` of `layer` ({} for None or a foreign layer)."""
    return dict(getattr(layer, "metadata", {}).get("temdeblur", {}))
