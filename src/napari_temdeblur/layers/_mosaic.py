"""A ``temdeblur mosaic`` output folder -> napari layer data (no napari import): the restored mosaic and
the raw one as lazy multiscale layers, and the registered HQ images placed on them, all in nm."""

from __future__ import annotations

import numpy as np

from napari_temdeblur.core.imaging import suggest_window
from napari_temdeblur.core.io import Pyramid, Session

from ._build import physical
from ._kinds import LayerKind, tag


def mosaic_layers(
    record: dict, pyramids: list[Pyramid], hq: dict | None = None, session: Session | None = None
) -> list[tuple]:
    """Layer data for a mosaic folder.

    Parameters
    ----------
    record : dict
        The folder's mosaic.json (windows, session, positions restored).
    pyramids : list of Pyramid
        The OME-Zarr images (restored mosaic, optionally the raw one), opened lazily.
    hq : dict of str -> (float, float), optional
        positions.json's HQ images: top-left in mosaic coordinates, stream px.
    session : Session, optional
        The session the mosaic was made from, for its HQ images (placed only when given).

    Returns
    -------
    list of (data, kwargs, "image")
        The mosaics as multiscale layers (their levels, full resolution first; y, x in nm when the
        pixel size is known; the restored one in the run's GT window, the raw one in a window
        suggested from its coarsest level), then one layer per placed HQ image (hidden), scaled to its
        own pixel size.
    """
    windows = record.get("windows", {})
    title = f"{session.name} " if session is not None else ""
    layers = []
    for pyramid in pyramids:
        restored = pyramid.name == "mosaic"
        window = windows.get("gt") if restored else None
        if not restored:
            # the raw frames' own window (the run's Low window may not fit this sample), from the
            # coarsest level, which is small, without the padding and uncovered zeros
            coarse = np.asarray(pyramid.levels[-1])
            if np.any(coarse > 0):
                window = suggest_window(coarse[coarse > 0][None]).to_dict()
        kwargs = {
            "name": f"{title}{pyramid.name}",
            "multiscale": True,
            **physical(pyramid.pixel_size_nm),
            "metadata": tag(LayerKind.MOSAIC, path=str(pyramid.path), restored=restored, mosaic_record=record),
        }
        if window:
            kwargs["contrast_limits"] = [float(window["low"]), float(window["high"])]
        layers.append((pyramid.levels, kwargs, "image"))
    stream_nm = pyramids[0].pixel_size_nm if pyramids else None
    if session is None or not hq or not stream_nm:
        return layers
    hq_nm = session.meta["hq_pixel_size_nm"]
    corner = (hq_nm - stream_nm) / 2  # HQ pixel (0, 0)'s centre from that of the stream pixel it lies in
    for name, (y, x) in hq.items():
        if name not in session.hq_names:
            continue
        image = session.hq[session.hq_names.index(name)]
        kwargs = {
            "name": f"{title}{name}",
            **physical(hq_nm),
            "translate": (y * stream_nm + corner, x * stream_nm + corner),
            "visible": False,
            "metadata": tag(LayerKind.HQ, session=session.name, path=str(session.path), names=[name]),
        }
        layers.append((image, kwargs, "image"))
    return layers
