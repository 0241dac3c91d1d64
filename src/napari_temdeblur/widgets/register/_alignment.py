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

from napari_temdeblur.core import DataError
from napari_temdeblur.core.imaging import IntensityWindow, matching_window
from napari_temdeblur.core.register import hq_at_stream_pixels, overlap_slices
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


def show_hq_at_frame(hq: Image, stream: Image, index: int, frame: int) -> None:
    """Place the HQ stack along axis 0 so that image `index` is the one shown over stream frame `frame`.

    The reader spreads the HQ images evenly over the stream (a nominal guess); matching says where
    each really was taken, so the shown HQ image follows the stream frames near that place. Image
    `index` goes exactly onto the frame; the others keep their pitch where they can, closer together
    where the stack would otherwise reach past the stream's first or last frame: napari's frame slider
    spans every layer, so a stack sticking out would stretch it beyond the stream (and a stack
    starting between two frames would put every slider step between two frames).
    """
    first, last = (frame_world(stream, t) for t in (0, stream.data.shape[0] - 1))
    position = frame_world(stream, frame)
    after = hq.data.shape[0] - 1 - index  # images after `index`, each at least a frame apart
    pitch = float(hq.scale[0])
    if index:
        pitch = min(pitch, (position - first) / index)
    if after:
        pitch = min(pitch, (last - position) / after)
    # a pitch under one frame would make the slider step in fractions of a frame; then the stack
    # sticks out by whole frames instead (more HQ images than frames on one side: rare)
    pitch = max(pitch, 1.0)
    scale, translate = np.array(hq.scale, float), np.array(hq.translate, float)
    scale[0], translate[0] = pitch, position - index * pitch
    hq.scale, hq.translate = scale, translate


#: Below this overlap (stream px, in y or x) the whole images are compared instead.
MIN_OVERLAP_PX = 32


def match_stream_contrast(hq: Image, stream: Image, session, index: int, frame: int) -> None:
    """Set the stream layer's contrast limits so frame `frame` looks as bright as HQ image `index`.

    Green and magenta add up to grey only where both layers reach their colormaps at the same level;
    with each layer's own window the noisy stream looked darker and the whole overlay green. The
    match uses the part of the two images that overlaps at the alignment shown.
    """
    try:
        reference = hq_at_stream_pixels(session, index)
    except DataError:  # a blank or saturated HQ image has nothing to match; registration says so
        return
    image = np.asarray(session.stream[frame], np.float32)  # the shape of `reference`: HQ at stream pixels
    ty, tx = (int(np.round(v)) for v in translation_yx(hq, stream, session.binning))
    seen, shown = overlap_slices(image.shape, (ty, tx))
    if min(s.stop - s.start for s in seen) >= MIN_OVERLAP_PX:
        image, reference = image[seen], reference[shown]
    try:
        window = matching_window(image, reference, IntensityWindow(*hq.contrast_limits))
    except ValueError:  # no contrast in common (a blank frame): keep the stream's own window
        return
    stream.contrast_limits = (window.low, window.high)
