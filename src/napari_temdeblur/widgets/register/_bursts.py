"""Registered bursts of one session -> layer data that browses together with the session layers.

The bursts are stacked like a dataset split (``napari_temdeblur.layers.split_layers``: GT (N, H, W),
Low (F, N, H, W)), one slot per HQ image of the session (zeros where an image is not registered, and
for frames a burst lacks: ``metadata["temdeblur"]["frame_counts"]`` gives each slot's real frames),
and placed along the frame axis like the HQ layer, so scrolling the stream shows the burst of the HQ
image on screen. In y and x they sit beside the session's field of view, in nm like the session.
"""

from __future__ import annotations

import numpy as np

from napari_temdeblur.core.imaging import IntensityWindow
from napari_temdeblur.core.io import BurstPair, DatasetSplit, Session
from napari_temdeblur.core.register import sample_name
from napari_temdeblur.layers import METADATA_KEY, layer_info, split_layers

#: Gap between the session's field of view and the registered bursts, stream px.
GAP_PX = 16
#: The two layers, by the name suffix the training dock looks for.
KINDS = ("GT", "Low")


def layer_name(session: Session, kind: str) -> str:
    """``<session name> registered GT`` or ``... Low``."""
    return f"{session.name} registered {kind}"


def _padded(name: str, burst: BurstPair | None, frames: int) -> BurstPair:
    if burst is None:
        return BurstPair(name, np.zeros((1, 1), np.uint16), np.zeros((frames, 1, 1), np.uint16))
    low = np.zeros((frames, *burst.gt.shape), np.uint16)
    low[: len(burst.low)] = burst.low
    return BurstPair(name, burst.gt, low)


def burst_layers(
    session: Session,
    bursts: dict[str, BurstPair],
    hq_meta: dict,
    stream_meta: dict,
    frame_axis: tuple[float, float],
    field_width: float,
) -> list[tuple]:
    """Layer data (GT, Low) for the registered bursts of a session.

    Parameters
    ----------
    session : Session
        The session; each of its HQ images gets one slot, in scan order.
    bursts : dict of str to BurstPair
        The registered bursts by HQ name (GT uint16 (H, W), low uint16 (F, H, W)); at least one.
    hq_meta, stream_meta : dict
        The ``temdeblur`` metadata of the session layers (for the contrast windows).
    frame_axis : (scale, translate)
        The HQ layer's axis-0 scale and translate: slot i is shown where HQ image i is.
    field_width : float
        Width of the session's field of view in world units (nm); the bursts go right of it.

    Returns
    -------
    list of (data, kwargs, "image")
        Named ``<session name> registered GT`` and ``<session name> registered Low``.
    """
    frames = max(len(b.low) for b in bursts.values())
    pairs = [_padded(name, bursts.get(name), frames) for name in session.hq_names]
    pixel_nm = session.meta["stream_pixel_size_nm"]
    split = DatasetSplit(sample_name(session), "registered", session.path, pairs, pixel_size_nm=pixel_nm)
    windows = (IntensityWindow.from_dict(hq_meta["window"]), IntensityWindow.from_dict(stream_meta["window"]))
    (gt, gt_kwargs, _), (low, low_kwargs, _) = split_layers(split, *windows)
    scale, translate = frame_axis
    offset = field_width + GAP_PX * pixel_nm
    for kwargs, prefix, kind in ((gt_kwargs, (), KINDS[0]), (low_kwargs, (1.0,), KINDS[1])):
        kwargs["name"] = layer_name(session, kind)
        kwargs["scale"] = (*prefix, scale, pixel_nm, pixel_nm)
        kwargs["translate"] = (*(0.0,) * len(prefix), translate, 0.0, offset)
        info = kwargs["metadata"][METADATA_KEY]
        info["registered"] = sorted(bursts)
        # bursts with fewer accepted frames are padded with zero frames: this says how many are real
        info["frame_counts"] = [len(bursts[n].low) if n in bursts else 0 for n in session.hq_names]
    low_kwargs["axis_labels"] = ("burst frame", "frame", "y", "x")
    gt_kwargs["axis_labels"] = ("frame", "y", "x")
    return [(gt, gt_kwargs, "image"), (low, low_kwargs, "image")]


def show_bursts(viewer, session: Session, bursts: dict[str, BurstPair], hq, stream) -> None:
    """(Re)place the registered layers of `session` in `viewer` (napari.Viewer) beside the session layers."""
    width = stream.extent.world[1][-1] - stream.extent.world[0][-1]
    meta = (layer_info(hq), layer_info(stream))
    for data, kwargs, _ in burst_layers(session, bursts, *meta, (hq.scale[0], hq.translate[0]), width):
        if kwargs["name"] in viewer.layers:
            viewer.layers.remove(kwargs["name"])
        viewer.add_image(data, **kwargs)


def follow_hq_stack(viewer, session: Session, hq) -> None:
    """Keep the registered layers on the HQ images' frame positions after the HQ stack moved along axis 0."""
    for kind in KINDS:
        if layer_name(session, kind) in viewer.layers:
            layer = viewer.layers[layer_name(session, kind)]
            scale, translate = list(layer.scale), list(layer.translate)
            scale[-3], translate[-3] = hq.scale[0], hq.translate[0]
            layer.scale, layer.translate = scale, translate
