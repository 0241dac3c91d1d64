"""Layer geometry for aligning a stream frame with an HQ image by hand (napari layers, no Qt).

World coordinates are those of the session layers (``napari_temdeblur.layers.session_layers``): y and x
in stream pixels (the stream layer has scale 1, the HQ layer 1/binning), axis 0 the stream frame index
(the HQ layer spreads its N images over the T frames with its own axis-0 scale).

The translation the core wants (``InitialGuess.translation_yx``; docs/design.md, Matrix convention) is
(ty, tx): where the origin of the HQ image resampled to stream pixels lies in the stream frame, in
stream pixels. The resampled image's pixel (0, 0) averages HQ pixels 0 .. binning-1, so its centre is
HQ pixel ((binning - 1) / 2, (binning - 1) / 2); mapping that point HQ data -> world -> stream data
gives (ty, tx) through whatever translate, scale and affine (napari's transform mode) the layers carry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from napari_temdeblur.layers import frame_world

if TYPE_CHECKING:
    from napari.layers import Image


def _resampled_origin(hq: Image, binning: float) -> np.ndarray:
    """World position of the centre of pixel (0, 0) of the HQ image resampled to stream pixels."""
    centre = (binning - 1) / 2
    return np.asarray(hq.data_to_world((0.0,) * (hq.ndim - 2) + (centre, centre)), float)


def translation_yx(hq: Image, stream: Image, binning: float) -> tuple[float, float]:
    """The alignment shown in the viewer as (ty, tx), stream px (see the module docstring).

    Parameters
    ----------
    hq, stream : napari.layers.Image
        The session's HQ stack (N, H, W) and stream (T, h, w).
    binning : float
        Stream pixel size over HQ pixel size (``Session.binning``).
    """
    ty, tx = stream.world_to_data(_resampled_origin(hq, binning))[-2:]
    return float(ty), float(tx)


def _world_per_data_yx(stream: Image) -> np.ndarray:
    """(2, 2) world displacement (y, x) per stream pixel step in y and in x (scale, rotation, affine)."""
    zero = np.zeros(stream.ndim)
    base = np.asarray(stream.data_to_world(zero), float)[-2:]
    steps = []
    for axis in (-2, -1):
        step = zero.copy()
        step[axis] = 1.0
        steps.append(np.asarray(stream.data_to_world(step), float)[-2:] - base)
    return np.stack(steps, axis=1)


def _move_stream(stream: Image, world_shift_yx: np.ndarray) -> None:
    """Shift the stream layer by a world displacement (y, x); translate applies before the affine."""
    linear = np.asarray(stream.affine.linear_matrix, float)[-2:, -2:]
    translate = np.array(stream.translate, float)
    translate[-2:] += np.linalg.solve(linear, world_shift_yx)
    stream.translate = translate


def set_translation_yx(hq: Image, stream: Image, binning: float, yx: tuple[float, float]) -> None:
    """Move the stream layer so that :func:`translation_yx` returns `yx` (ty, tx), stream px."""
    current = np.array(translation_yx(hq, stream, binning))
    # world = M @ data + c: the resampled HQ origin stays put, so c must change by M @ (current - new)
    _move_stream(stream, _world_per_data_yx(stream) @ (current - np.asarray(yx, float)))


def drag_stream(layer: Image, event):
    """napari mouse-drag callback: the stream layer follows the mouse in y and x while the button is down."""
    start = np.asarray(event.position, float)[-2:]
    moved = np.zeros(2)
    yield
    while event.type == "mouse_move":
        step = np.asarray(event.position, float)[-2:] - start - moved
        _move_stream(layer, step)
        moved += step
        yield


def show_hq_at_frame(hq: Image, index: int, frame_position: float) -> None:
    """Shift the HQ stack along axis 0 so image `index` is the one shown at world `frame_position`.

    The reader spreads the HQ images evenly over the stream (a nominal guess); matching says where
    each really was taken, so the shown HQ image follows the stream frames near that place.
    """
    translate = np.array(hq.translate, float)
    exact = translate[0] + frame_position - frame_world(hq, index)
    # napari's slider steps from the lowest start of all layers: a stack starting half a frame before
    # the stream would put every slider position between two stream frames (frame 59 shown as 60).
    # A whole-frame offset keeps the steps on the stream's frames, and image `index` still covers
    # `frame_position` as long as it moves by less than half its pitch.
    whole = float(np.round(exact))
    translate[0] = whole if abs(whole - exact) < abs(hq.scale[0]) / 2 else exact
    hq.translate = translate
