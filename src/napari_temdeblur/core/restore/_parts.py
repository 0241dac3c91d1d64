"""The mosaic's parts: stream positions restored one by one from bursts at the solved positions, each
saved atomically as soon as it is restored, so that a restart (or another worker) finds it complete
or not at all."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_temdeblur.core import Progress, atomic_write
from napari_temdeblur.core.models import frames_required
from napari_temdeblur.core.register import positioned_burst

from ._apply import ImageRestored, InputSkipped
from ._options import RestoreOptions
from ._stream import StreamBursts, frame_name, restore_bursts, stream_and_source


@dataclass(frozen=True)
class PositionRestored(Progress):
    """Stream position `position` restored and saved as a part of the mosaic."""

    position: int = 0


@dataclass(frozen=True)
class Part:
    """One restored stream position, saved: ``<parts>/<name>.npz`` with ``image`` (float32 (H, W) in
    [0, 1], the run's GT window), ``raw`` (uint16 (H, W) counts of the position's own frame on the same
    region) and ``yx`` (float64 (2,), the top-left in mosaic coordinates)."""

    position: int
    path: Path
    yx: tuple[float, float]
    shape: tuple[int, int]


def save_part(folder: Path, name: str, position: int, image: np.ndarray, raw: np.ndarray, yx) -> Part:
    """Save one restored position atomically (a restart finds it complete or not at all)."""
    path = Path(folder) / f"{name}.npz"

    def write(tmp: Path):
        with open(tmp, "wb") as handle:
            np.savez(handle, image=image.astype(np.float32), raw=raw.astype(np.uint16), yx=np.asarray(yx, np.float64))

    atomic_write(path, write)
    return Part(position, path, (float(yx[0]), float(yx[1])), tuple(image.shape))


def read_part(path: Path, position: int) -> Part | None:
    """A saved part's header (None when the file is unreadable: it is restored again)."""
    try:
        with np.load(path) as data:
            yx, shape = data["yx"], data["image"].shape
    except (OSError, ValueError, KeyError):
        return None
    return Part(position, Path(path), (float(yx[0]), float(yx[1])), tuple(shape))


def restore_parts(
    model, checkpoint, session, positions, todo: list[int], folder: Path, options: RestoreOptions
) -> Generator[Progress, None, tuple[dict, list[str]]]:
    """Restore stream positions `todo` of `session` one after another and save each as a part in `folder`.

    Each position's burst is the run's frame count of frames around it, resampled at the solved
    `positions` (:func:`~napari_temdeblur.core.register.positioned_burst`).

    Yields
    ------
    Progress
        The restoration's events, and a :class:`PositionRestored` after each part is saved.

    Returns
    -------
    parts : dict of int -> Part
    messages : list of str
        The restoration's notes and the positions skipped.
    """
    stream, source = stream_and_source(session)
    n_frames = int(stream.shape[0])
    required = frames_required(checkpoint.model)

    def burst(position: int, n: int):
        return positioned_burst(stream, position, n, positions, source=source)

    bursts = StreamBursts(stream, todo, checkpoint.burst_frames, required is not None, burst, keep_own=True)
    parts, messages = {}, []
    work = restore_bursts(model, checkpoint, bursts, options)
    try:
        for event in work:
            if isinstance(event, ImageRestored):
                result, t = event.result, todo[event.index]
                own = bursts.own.pop(event.index)
                oy, ox = result.metadata["origin_yx"]
                at = positions.frames[t].yx
                name = frame_name(t, n_frames)
                parts[t] = save_part(folder, name, t, result.image, own, (at[0] + oy, at[1] + ox))
                messages += result.messages
                yield event
                yield PositionRestored("restore", len(parts), len(todo), name, position=t)
            else:
                if isinstance(event, InputSkipped):
                    messages.append(event.message)
                yield event
    finally:
        work.close()
    return parts, messages
