"""Restoring a raw session stream: per position, the frames around it registered on the fly, then restored."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Generator, Sequence
from pathlib import Path

import numpy as np

from napari_temdeblur.core import DataError, Progress, resolve_device
from napari_temdeblur.core.io import BurstPair, Session, open_session
from napari_temdeblur.core.models import Checkpoint, frames_required, load_model
from napari_temdeblur.core.register import RegistrationSettings, positioned_burst, register_stream_burst

from ._apply import ImageRestored, InputSkipped, Restored, restore_with
from ._options import RestoreOptions


def frame_name(position: int, n_frames: int) -> str:
    """Name of a restored stream position, ``frame_0123`` (zero-padded so names sort in stream order)."""
    return f"frame_{position:0{max(4, len(str(n_frames - 1)))}d}"


class StreamBursts(Sequence):
    """The registered burst of each position, made on access (``[k]`` calls ``make(position, count)``,
    e.g. registering the frames around position k), so only the image being restored is in memory;
    what registration found waits in `info` until :func:`_finish` takes it.

    The frames are ordered so that the position's own frame is the network's centre frame
    ``x[:, N // 2]``: burst networks pool over frames in any order, so it is moved to the middle;
    a frames-as-channels model (`ordered`, deblurgan) keeps time order, and near the stream's ends
    its centre is a neighbour (a message says so).
    """

    def __init__(self, stream, positions: list[int], count: int, ordered: bool, make, keep_own: bool = False):
        self.stream, self.positions, self.count, self.make = stream, positions, count, make
        self.ordered, self.keep_own = ordered, keep_own
        self.info: dict[int, tuple] = {}
        #: k -> uint16 (H, W): the position's own frame on the burst's region (its raw counts), kept
        #: with `keep_own` until the caller takes it
        self.own: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, k: int) -> BurstPair:
        position = self.positions[k]
        burst = self.make(position, self.count)
        order = list(range(len(burst.frames)))
        own = burst.frames.index(position)  # the position is always in its own burst
        if self.keep_own:
            self.own[k] = burst.low[own]
        notes = list(burst.messages)
        if not self.ordered:
            order.insert(len(order) // 2, order.pop(own))
        elif own != len(order) // 2:
            notes.append(
                f"the network's centre frame is {burst.frames[len(order) // 2]}, not {position}: "
                "this model takes its frames in time order"
            )
        frames = [burst.frames[i] for i in order]
        self.info[k] = (frames, burst.origin_yx, burst.registrations, notes)
        return BurstPair(frame_name(position, len(self.stream)), None, burst.low[order])


def stream_and_source(session_or_stream) -> tuple[object, Path | None]:
    """(stream array, its file for messages) of a Session, a session folder or a (T, h, w) array."""
    if isinstance(session_or_stream, (str, Path)):
        session_or_stream = open_session(session_or_stream)
    if isinstance(session_or_stream, Session):
        path = session_or_stream.path
        return session_or_stream.stream, path / "stream.tif" if (path / "stream.tif").is_file() else path / "stream"
    stream = session_or_stream
    if len(getattr(stream, "shape", ())) != 3:
        raise ValueError(f"a stream must be (frames, rows, cols), got shape {getattr(stream, 'shape', None)}")
    return stream, None


def _finish(result: Restored, k: int, bursts: StreamBursts) -> Restored:
    """Stream frame indices and the registration in the metadata."""
    frames, origin, registrations, notes = bursts.info.pop(k)
    used = [frames[i] for i in result.frames]
    result.frames = used
    result.messages = [f"{result.name}: {note}" for note in notes] + result.messages
    result.metadata.update(
        frames=used,
        position=bursts.positions[k],
        origin_yx=list(origin),
        input_frames=len(frames),
        registration=[
            {
                "index": r.index,
                "translation_yx": [round(v, 3) for v in r.translation_yx],
                # None, not NaN, for a frame never compared: restore.json stays strict JSON
                "correlation": round(r.correlation, 4) if math.isfinite(r.correlation) else None,
                "method": r.method,
                "flag": r.flag,
            }
            for r in registrations
        ],
    )
    return result


def restore_stream(
    run: str | Path,
    session_or_stream,
    positions: Sequence[int] | None = None,
    options: RestoreOptions | None = None,
    *,
    settings: RegistrationSettings | None = None,
) -> Generator[Progress, None, int]:
    """Restore positions of a raw stream, each position's frames registered on the fly, handing each
    result over in an :class:`ImageRestored` event as :func:`restore` does (and keeping none).

    For each position t, the run's frame count of consecutive frames around t (shifted to fit at the
    stream's ends) is registered onto frame t (:func:`napari_temdeblur.core.register.register_stream_burst`:
    cross-correlation, then ECC; poorly registered frames are left out with a message), cut to the
    region all frames cover, and restored as :func:`restore` restores a registered burst.

    Parameters
    ----------
    run : str or Path
        Run folder (``best.pt``) or checkpoint file.
    session_or_stream : Session, str, Path or array-like
        An opened session, a session folder, or a (T, h, w) stream in counts.
    positions : sequence of int, optional
        Frames to restore (default: every frame).
    options : RestoreOptions, optional
        As for :func:`restore`.
    settings : RegistrationSettings, optional
        ECC and quality control of the on-the-fly registration.

    Yields
    ------
    Progress
        As :func:`restore`; an :class:`InputSkipped` for a position that cannot be registered (e.g. a
        blank frame), the others go on. Each :class:`ImageRestored` holds a :class:`Restored` named
        ``frame_0123`` whose ``image`` covers the region of frame t that all burst frames show
        (``metadata["origin_yx"]`` is its top-left in frame t); ``frames`` are stream indices in the
        network's order, with t in the middle (a burst network pools over frames in any order; a
        frames-as-channels model keeps time order, so near the stream's ends its middle frame is a
        neighbour, with a message); ``centre`` is that middle frame on that region; ``metadata`` also
        holds ``position`` and the per-frame ``registration``; ``messages`` say which frames were
        left out.

    Returns
    -------
    int
        Number of positions restored.

    Raises
    ------
    ValueError
        No positions, or positions outside the stream.
    DataError
        Unreadable session or checkpoint.
    """
    options = options or RestoreOptions()
    stream, source = stream_and_source(session_or_stream)
    n_frames = int(stream.shape[0])
    positions = list(range(n_frames)) if positions is None else [int(p) for p in positions]
    if not positions:
        raise ValueError("nothing to restore: no stream positions given")
    outside = [p for p in positions if not 0 <= p < n_frames]
    if outside:
        raise ValueError(f"positions {outside[:5]} are outside the stream (frames 0-{n_frames - 1})")
    model, checkpoint = load_model(run, resolve_device(options.device))
    required = frames_required(checkpoint.model)
    settings = settings or RegistrationSettings()

    def register(position: int, count: int):
        return register_stream_burst(stream, position, count, settings, source=source)

    bursts = StreamBursts(stream, positions, checkpoint.burst_frames, required is not None, register)
    return (yield from restore_bursts(model, checkpoint, bursts, options))


def restore_bursts(model, checkpoint, bursts: StreamBursts, options: RestoreOptions) -> Generator[Progress, None, int]:
    """:func:`restore_with` over stream bursts, each result completed by :func:`_finish`; the position's
    own raw frame stays in ``bursts.own`` for the caller."""
    work = restore_with(model, checkpoint, bursts, options)
    try:
        while True:
            event = next(work)
            if isinstance(event, ImageRestored):
                event = dataclasses.replace(event, result=_finish(event.result, event.index, bursts))
            yield event
    except StopIteration as done:
        return done.value
    finally:
        work.close()


def restore_position(
    model,
    checkpoint: Checkpoint,
    stream,
    position: int,
    options: RestoreOptions | None = None,
    *,
    positions=None,
    settings: RegistrationSettings | None = None,
    source: str | Path | None = None,
) -> Generator[Progress, None, Restored]:
    """Restore one stream position with a run already loaded, for callers that restore position after
    position with one model (the Restore dock's preview follows napari's frame slider).

    The burst is made as :func:`restore_stream` makes it: the run's frame count of frames around
    `position`, registered onto it on the fly (:func:`~napari_temdeblur.core.register.register_stream_burst`),
    or, with solved `positions`, resampled at them (:func:`~napari_temdeblur.core.register.positioned_burst`,
    no registration: faster).

    Parameters
    ----------
    model : torch.nn.Module
        The network, in eval mode (:func:`~napari_temdeblur.core.models.load_model`).
    checkpoint : Checkpoint
        Its checkpoint (windows, frame counts, model).
    stream : array-like
        (T, h, w) stream frames in counts (numpy, memmap or dask array; only the burst's frames are read).
    position : int
        The stream position, 0 <= position < T.
    options : RestoreOptions, optional
        Tiling as for :func:`restore`; ``adapt_bn`` must be off (the adaptation would change `model`
        for every later position).
    positions : StreamPositions, optional
        Solved positions of this stream (``positions.json``); None: register on the fly.
    settings : RegistrationSettings, optional
        ECC and quality control of the on-the-fly registration.
    source : str or Path, optional
        The stream's file, named in errors.

    Yields
    ------
    Progress
        As :func:`restore` for one input: tile progress (where closing the generator stops the work)
        and one :class:`ImageRestored`.

    Returns
    -------
    Restored
        Named ``frame_0123``, as a :func:`restore_stream` result: ``image`` float32 (H, W) in [0, 1]
        covers the region of frame `position` that all burst frames show, ``metadata["origin_yx"]``
        (row, col, stream px) is its top-left in that frame.

    Raises
    ------
    ValueError
        `position` outside the stream or flagged in `positions`; batch-norm adaptation asked for.
    DataError
        The position's own frame is unusable (blank, saturated, ...) or its frames share no region.
    """
    options = options or RestoreOptions()
    if options.adapt_bn:
        raise ValueError("a single stream position is restored without batch-norm adaptation (it changes the model)")
    required = frames_required(checkpoint.model)
    refused: list[DataError] = []

    def make(t: int, count: int):
        try:
            if positions is not None:
                return positioned_burst(stream, t, count, positions, source=source)
            return register_stream_burst(stream, t, count, settings, source=source)
        except DataError as exc:  # restore_with skips such an input; one position alone must say why
            refused.append(exc)
            raise

    bursts = StreamBursts(stream, [position], checkpoint.burst_frames, required is not None, make)
    results = []
    work = restore_bursts(model, checkpoint, bursts, options)
    try:
        for event in work:
            if isinstance(event, InputSkipped):
                raise refused[0]
            if isinstance(event, ImageRestored):
                results.append(event.result)
            yield event
    finally:
        work.close()
    return results[0]
