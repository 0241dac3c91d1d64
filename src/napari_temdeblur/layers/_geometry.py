"""Where a layer's images are shown along its first axis (duck-typed napari layers: no napari import).

napari places a stack's image ``i`` at the world position ``layer.data_to_world((i, 0, ...))[0]``;
the viewer's ``dims.point`` is a world point, so the image on screen is found through the layer's own
transforms (scale, translate, affine).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def frame_index(layer: Any, world_point) -> int:
    """Index along axis 0 of `layer` shown at a world point (the viewer's ``dims.point``), clipped."""
    index = int(np.round(layer.world_to_data(world_point)[0]))
    return int(np.clip(index, 0, layer.data.shape[0] - 1))


def frame_world(layer: Any, index: int) -> float:
    """World position along axis 0 where image `index` of `layer` is shown."""
    return float(layer.data_to_world((index,) + (0.0,) * (layer.ndim - 1))[0])
