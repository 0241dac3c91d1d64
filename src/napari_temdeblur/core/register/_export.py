"""Registered bursts as images: the GT crop and its frames on the GT grid, and the dataset export.

The GT is the HQ image area-averaged to stream pixels (as the published GT); each accepted frame is
resampled onto that grid with ``cv2.warpAffine(frame, A, WARP_INVERSE_MAP)``, i.e.
``low(x, y) = frame(A @ [x, y, 1])``. Both are cropped to the bounding box of the region every accepted
frame covers; pixels of that box that some frame does not cover are 0 in the GT and in every frame
(with a translation-only registration the box is exactly that region, so there is no padding).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import cv2
import numpy as np

from napari_temdeblur.core.io import BurstPair, session_of, write_pair, write_pixel_size

from ._file import PairRegistration
from ._matching import hq_at_stream_pixels, stream_frame

#: Where a warped frame is valid: the bilinear weight of in-frame pixels is (almost) 1.
_VALID = 1 - 1e-4


def _warp(image: np.ndarray, matrix: np.ndarray, shape: tuple[int, int], interpolation: int) -> np.ndarray:
    h, w = shape
    return cv2.warpAffine(
        image, matrix, (w, h), flags=interpolation | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT
    )


def _to_uint16(image: np.ndarray) -> np.ndarray:
    return np.clip(np.round(image), 0, 65535).astype(np.uint16)


def warp_frames(
    frames: Iterable[np.ndarray], matrices: Iterable[np.ndarray], shape: tuple[int, int]
) -> tuple[list[np.ndarray], np.ndarray, tuple[slice, slice] | None]:
    """Resample frames onto a reference grid and find the region they all cover.

    Parameters
    ----------
    frames : iterable of numpy.ndarray
        float32 (h, w) stream frames.
    matrices : iterable of numpy.ndarray
        float64 (2, 3) each, docs/design.md's matrix convention: ``frame(A @ [x, y, 1])`` is the reference's
        (x, y).
    shape : (int, int)
        (H, W) of the reference grid.

    Returns
    -------
    warped : list of numpy.ndarray
        float32 (H, W) per frame (bicubic; the edge replicated outside the frame).
    valid : numpy.ndarray
        bool (H, W), where every frame is valid.
    box : (slice, slice) or None
        The bounding box of `valid` (None when no pixel is valid in all frames).
    """
    ones = np.ones(0)
    valid = np.ones(shape, bool)
    warped = []
    for frame, matrix in zip(frames, matrices):
        if ones.shape != frame.shape:
            ones = np.ones(frame.shape, np.float32)
        valid &= _warp(ones, matrix, shape, cv2.INTER_LINEAR) >= _VALID
        # cubic interpolation reads one pixel beyond; replicate the edge there, the mask cuts it off
        warped.append(
            cv2.warpAffine(
                frame,
                matrix,
                (shape[1], shape[0]),
                flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                borderMode=cv2.BORDER_REPLICATE,
            )
        )
    if not valid.any():
        return warped, valid, None
    rows, cols = np.flatnonzero(valid.any(axis=1)), np.flatnonzero(valid.any(axis=0))
    return warped, valid, (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))


def cropped_uint16(images: Iterable[np.ndarray], valid: np.ndarray, box: tuple[slice, slice]) -> np.ndarray:
    """uint16 (F, h, w): `images` cut to `box`, rounded, 0 where `valid` is False (as in the dataset)."""
    keep = valid[box]
    return np.stack([np.where(keep, _to_uint16(image[box]), 0).astype(np.uint16) for image in images])


def extract_burst(session, pair: PairRegistration, name: str | None = None) -> BurstPair:
    """The registered burst of one pair, on the GT's grid.

    Parameters
    ----------
    session : Session
        The session `pair` was registered in.
    pair : PairRegistration
        Only its accepted frames are used.
    name : str, optional
        Name of the result (default: the HQ name).

    Returns
    -------
    BurstPair
        gt uint16 (H, W), low uint16 (F, H, W) with F the accepted frames in stream order; 0 where
        not every frame is valid.

    Raises
    ------
    ValueError
        When no frame is accepted, the HQ image is unknown, or the accepted frames share no pixel.
    """
    if pair.hq not in session.hq_names:
        raise ValueError(f"{session.path}: no HQ image {pair.hq!r} for the registration")
    frames = pair.accepted
    if not frames:
        raise ValueError(f"{pair.hq}: no accepted frame to extract ({len(pair.frames)} frames, all flagged)")
    gt = hq_at_stream_pixels(session, session.hq_names.index(pair.hq))
    low, valid, box = warp_frames(
        (stream_frame(session, f.index) for f in frames), (f.matrix for f in frames), gt.shape
    )
    if box is None:
        raise ValueError(f"{pair.hq}: the accepted frames {[f.index for f in frames]} share no pixel with it")
    return BurstPair(name or pair.hq, cropped_uint16([gt], valid, box)[0], cropped_uint16(low, valid, box))


def pair_name(session, hq: str) -> str:
    """Dataset name of an HQ image: the HQ name when it carries a session number (``sess2_im5``),
    else prefixed with the session folder's name so images of two sessions cannot collide."""
    return hq if session_of(hq) is not None else f"{session.path.name}_{hq}"


def sample_name(session) -> str:
    """The dataset's ``<Sample>`` folder: session.json's ``sample``, else the session's parent folder."""
    return str(session.meta.get("sample") or session.path.parent.name)


def export_dataset(
    sessions_and_pairs: Iterable[tuple[object, Iterable[PairRegistration]]],
    out: str | Path,
    split_for: Callable[[object, str], str | None],
) -> list[Path]:
    """Write registered bursts in the published layout ``<out>/<Sample>/<Split>/GT|Low``.

    Parameters
    ----------
    sessions_and_pairs : iterable of (Session, iterable of PairRegistration)
    out : str or Path
        Dataset root.
    split_for : callable (session, hq name) -> "Train" | "Val" | "Test" | None
        The split of each image; None leaves the image out.

    Returns
    -------
    list of Path
        Files written.

    Raises
    ------
    ValueError
        A pair with no accepted frame, or a split name other than Train, Val or Test.
    """
    out = Path(out)
    written = []
    for session, pairs in sessions_and_pairs:
        for pair in pairs:
            split = split_for(session, pair.hq)
            if split is None:
                continue
            if split not in ("Train", "Val", "Test"):
                raise ValueError(f"split of {pair.hq} must be Train, Val or Test, got {split!r}")
            burst = extract_burst(session, pair, pair_name(session, pair.hq))
            sample_dir = out / sample_name(session)
            record = write_pixel_size(sample_dir, session.meta["stream_pixel_size_nm"])  # the viewer's scale bar
            if record not in written:
                written.append(record)
            written += write_pair(sample_dir / split, burst)
    return written
