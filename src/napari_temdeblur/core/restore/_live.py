"""Live restoration: a session's stream restored while it is acquired, into the mosaic folder of
:func:`~napari_temdeblur.core.restore.mosaic` (docs/live.md).

Frames are read as their files ``stream/<index>.tif`` become complete (:class:`~napari_temdeblur.core.io.FrameFolder`);
each is matched to the frames before it and the positions are solved again
(:class:`~napari_temdeblur.core.register.PositionChain`); the position to restore next is the newest at
the front of the scan, or a gap left behind when there is spare time (:func:`._blend.next_live_position`);
each restored position is saved as a part at once, and the OME-Zarr mosaic is rebuilt from all parts
every ``rebuild_every`` seconds and at the end.

Coordinates. Positions are solved with the first placed frame at (0, 0) (a gauge that stays put as the
scan grows in any direction and across restarts), and parts are saved in it. ``positions.json`` and
the mosaic are written shifted by a whole number of px (``origin_yx`` in mosaic.json, the floor of the
smallest position), so that, as for ``temdeblur mosaic``, mosaic pixel (r, c) is positions.json's (r, c).
"""

from __future__ import annotations

import dataclasses
import math
import re
import time
from collections import deque
from collections.abc import Generator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from napari_temdeblur.core import STOP, DataError, Progress, drain, resolve_device, write_json
from napari_temdeblur.core.io import (
    MOSAIC_IMAGE,
    MOSAIC_RECORD,
    FrameFolder,
    Session,
    StreamView,
    folder_lock,
    read_session_meta,
)
from napari_temdeblur.core.models import load_model
from napari_temdeblur.core.register import POSITIONS_FILE, PositionChain, StreamPositions, save_positions

from ._apply import ImageRestored, InputSkipped, restore_with
from ._blend import next_live_position, scan_spans
from ._live_events import RATE_WINDOW, FrameArrived, LiveRate, LiveRestored, LiveResult, MosaicWritten
from ._mosaic import PARTS, claim_folder, mosaic_request, write_mosaic
from ._options import LiveOptions
from ._parts import Part, read_part, restore_parts

#: Frames read from the folder at most per look, so that a restart (or a backlog) yields between them.
READ_AT_ONCE = 8


def live(
    run: str | Path, session: str | Path, out: str | Path, options: LiveOptions | None = None
) -> Generator[Progress, object, LiveResult]:
    """Restore a session's stream while it is acquired, into a mosaic folder that grows with it.

    Parameters
    ----------
    run : str or Path
        Run folder, checkpoint file or ``"pretrained"``.
    session : str or Path
        A session folder with its session.json; frames arrive as ``stream/<index>.tif`` (none need be
        there yet; HQ images need not be). A ``registration.json`` anchors the positions as for a mosaic.
    out : str or Path
        Output folder (OUT of :func:`mosaic`: mosaic.json, positions.json, parts/, mosaic.ome.zarr); a
        folder begun live for the same session and run is continued.
    options : LiveOptions, optional

    Yields
    ------
    Progress
        :class:`FrameArrived` per frame, :class:`LiveRestored` per part saved, :class:`LiveRate`
        about once a second, :class:`MosaicWritten` per rebuild (``blend`` events while it is made),
        :class:`InputSkipped` for a position that cannot be restored. Sending :data:`core.STOP` in
        finishes as the idle timeout does; so does Ctrl-C (KeyboardInterrupt) inside it; closing it
        writes the mosaic of the parts saved (no gap is filled) before it ends.

    Returns
    -------
    LiveResult

    Raises
    ------
    DataError
        Unreadable session.json or run; an OUT begun for another session, run or by ``temdeblur mosaic``.
    """
    options = options or LiveOptions()
    session, out = Path(session), Path(out)
    meta = read_session_meta(session)
    if (session / "stream.tif").is_file() and not (session / "stream").is_dir():
        raise DataError(
            session / "stream.tif",
            "a finished stream: make its mosaic with temdeblur mosaic, or play it into a new folder with "
            "temdeblur replay to restore it live",
        )
    model, checkpoint = load_model(run, resolve_device(options.restore.device))
    count = checkpoint.burst_frames
    with folder_lock(out, "restoring live"):
        asked = mosaic_request(checkpoint, session, None, mode="live")
        record = {**claim_folder(out, asked, (POSITIONS_FILE, PARTS, MOSAIC_IMAGE)), "state": "running"}
        write_json(out / MOSAIC_RECORD, record)
        state = _Live(model, checkpoint, Session(session, meta, [], None, None), out, count, options, record)
        return (yield from state.run())


class _Live:
    """The state of one live run: frames, geometry, parts, timings."""

    def __init__(self, model, checkpoint, session: Session, out: Path, count: int, options: LiveOptions, record):
        self.model, self.checkpoint, self.out, self.count, self.options = model, checkpoint, out, count, options
        self.frames = FrameFolder(session.path / "stream", options.grace, cache=4 * count + 4)
        self.session = dataclasses.replace(session, stream=StreamView(self.frames))
        self.chain = PositionChain(options.neighbours)
        self.positions: StreamPositions | None = None
        self.record = record
        self.arrived: dict[int, float] = {}
        self.parts = self._saved_parts()
        self.resumed = len(self.parts)
        self.failed: set[int] = set()
        self.messages: list[str] = []
        self.stop: str | None = None
        self.stops_sent = 0
        self.changed = True  # new positions or parts since the last choice
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="temdeblur-live")
        self.pending = None  # (position, gap, future) restoring in the worker
        # the network's first pass is slow (allocations, kernel choice): made before any frame waits on it
        self.pool.submit(
            drain, restore_with(model, checkpoint, [np.zeros((count, 128, 128), np.uint16)], options.restore)
        )
        now = time.monotonic()
        self.start = self.last_frame = self.last_rate = self.last_write = now
        self.unwritten = 0
        self.recent_frames: deque = deque()
        self.recent_parts: deque = deque()  # (time, latency or None for a gap)

    def _saved_parts(self) -> dict[int, Part]:
        parts = {}
        for path in sorted((self.out / PARTS).glob("frame_*.npz")):
            match = re.fullmatch(r"frame_(\d+)\.npz", path.name)
            part = read_part(path, int(match.group(1))) if match else None
            if part is not None:
                parts[part.position] = part
        return parts

    def _emit(self, event: Progress) -> Generator[Progress, object, None]:
        if (yield event) == STOP:
            self.stop = self.stop or "stopped"
            self.stops_sent += 1

    def run(self) -> Generator[Progress, object, LiveResult]:
        try:
            while self.stop is None:
                yield from self._step()
        except KeyboardInterrupt:
            self.stop = "interrupted"
        except GeneratorExit:
            self.stop = "closed"
            drain(self._finish(fill=False))
            raise
        return (yield from self._finish(fill=not self.options.leave_gaps))

    def _step(self) -> Generator[Progress, object, None]:
        busy = False
        arrived = self.frames.poll(READ_AT_ONCE)
        for frame in arrived:
            self.arrived[frame.index] = frame.time
            self.recent_frames.append(frame.time)
            self.chain.add(frame.frame, frame.problem)
            if frame.problem:
                self.messages.append(frame.problem)
            message = frame.problem or f"frame {frame.index}"
            yield from self._emit(
                FrameArrived(
                    "frame", frame.index + 1, frame.index + 1, message, frame.index, frame.frame, frame.problem
                )
            )
        if arrived:
            self.last_frame, busy = arrived[-1].time, True
            self._solve()
        yield from self._collect()
        now = time.monotonic()
        if self.pending is None and self.unwritten and now - self.last_write >= self.options.rebuild_every:
            self._start_write()
        if self.pending is None and self.changed:
            t = self._next(final=False)
            self.changed = t is not None
            if t is not None:
                self._start(t)
        if now - self.last_rate >= 1.0:
            yield from self._emit(self._rate(now))
        if not busy:
            timeout = self.options.idle_timeout
            if timeout is not None and time.monotonic() - self.last_frame >= timeout:
                self.stop = self.stop or "idle"
            else:
                time.sleep(self.options.poll)

    def _solve(self) -> None:
        """Positions of the frames so far, in the gauge of the first placed frame (module docstring)."""
        self.changed = True
        if not self.chain.measured:
            self.positions = None
            return
        positions = self.chain.solve(self.session)
        placed = positions.placed
        if not placed:
            self.positions = None
            return
        self.positions = positions.shifted(placed[0].yx)

    def _origin(self) -> tuple[int, int]:
        """Where the mosaic's (0, 0) lies in the gauge: the floor of the smallest placed position."""
        placed = self.positions.placed if self.positions is not None else ()
        yx = [f.yx for f in placed] + [p.yx for p in self.parts.values()]
        return tuple(int(math.floor(min(v[i] for v in yx))) for i in (0, 1)) if yx else (0, 0)

    def _next(self, final: bool) -> int | None:
        if self.positions is None:
            return None
        n, half = self.frames.count, self.count // 2
        ready = [f.index for f in self.positions.placed if final or f.index + half < n]
        spans = scan_spans(self.positions, self.count, self.frames.shape, ready)
        return next_live_position(spans, set(self.parts) | self.failed, final)

    def _start(self, t: int) -> None:
        """Restore position `t` in the worker thread, on the frames and positions as they are now (torch
        computes outside the GIL, so frames go on being read and matched meanwhile)."""
        session = dataclasses.replace(self.session, stream=StreamView(self.frames, self.frames.count))
        gap = bool(self.parts) and t < max(self.parts)
        self.pending = (t, gap, self.pool.submit(self._restore, session, self.positions, t))

    def _restore(self, session: Session, positions, t: int):
        """(parts, notes, restored counts, InputSkipped events) of position `t` (in the worker thread)."""
        work = restore_parts(
            self.model, self.checkpoint, session, positions, [t], self.out / PARTS, self.options.restore
        )
        counts, skipped = None, []
        try:
            while True:
                event = next(work)
                if isinstance(event, ImageRestored):
                    counts = event.result.counts
                elif isinstance(event, InputSkipped):
                    skipped.append(event)
        except StopIteration as done:
            parts, notes = done.value
        finally:
            work.close()
        return parts, notes, counts, skipped

    def _collect(self, wait: bool = False) -> Generator[Progress, object, None]:
        """Take the restored position from the worker when it is done (with `wait`, once it is)."""
        if self.pending is None or not (wait or self.pending[2].done()):
            return
        t, gap, future = self.pending
        self.pending = None
        if t is None:  # a rebuild of the mosaic
            yield from self._written(*gap, future.result())
            return
        parts, notes, counts, skipped = future.result()
        for event in skipped:
            self.messages.append(event.message)
            yield from self._emit(event)
        self.messages += notes
        self.changed = True
        if t not in parts:
            self.failed.add(t)
            return
        now = time.monotonic()
        part = self.parts[t] = parts[t]
        newest = min(t + self.count // 2, self.frames.count - 1)
        latency = now - self.arrived.get(newest, now)
        self.recent_parts.append((now, None if gap else latency))
        self.unwritten += 1
        o = self._origin()
        yx = (part.yx[0] - o[0], part.yx[1] - o[1])
        n = len(self.parts)
        event = LiveRestored(
            "restore", n, n, part.path.stem, position=t, image=counts, yx=yx, latency_s=latency, gap=gap
        )
        yield from self._emit(event)

    def _rate(self, now: float) -> LiveRate:
        self.last_rate = now
        while self.recent_frames and now - self.recent_frames[0] > RATE_WINDOW:
            self.recent_frames.popleft()
        while self.recent_parts and now - self.recent_parts[0][0] > RATE_WINDOW:
            self.recent_parts.popleft()
        span = max(min(RATE_WINDOW, now - self.start), 1e-3)
        latencies = [lat for _, lat in self.recent_parts if lat is not None]
        newest = max(self.parts) if self.parts else -1
        behind = max(0, self.frames.count - 1 - self.count // 2 - newest) if self.parts else self.frames.count
        fps, pps = len(self.recent_frames) / span, len(self.recent_parts) / span
        latency = float(np.median(latencies)) if latencies else math.nan
        message = f"{fps:.1f} frames/s, {pps:.2f} positions/s, latency {latency:.2f} s, {behind} frames behind"
        return LiveRate("rate", len(self.parts), self.frames.count, message, fps, pps, latency, behind)

    def _start_write(self) -> None:
        """Rebuild positions.json and the mosaic of every part saved, shifted to the mosaic's origin, in
        the worker (so frames go on being read meanwhile)."""
        o = self._origin()
        parts = sorted(self.parts.items())
        self.unwritten = 0
        self.pending = (None, (o, [t for t, _ in parts]), self.pool.submit(self._write, self.positions, parts, o))

    def _write(self, positions, parts: list, o: tuple[int, int]):
        """(shape, files) of the mosaic written, or None without parts (in the worker thread)."""
        if positions is not None:
            save_positions(self.out / POSITIONS_FILE, positions.shifted(o))
        if not parts:
            return None
        ordered = [dataclasses.replace(p, yx=(p.yx[0] - o[0], p.yx[1] - o[1])) for _, p in parts]
        size = self.session.meta.get("stream_pixel_size_nm")
        return drain(write_mosaic(self.out, ordered, size, self.checkpoint.gt_window))

    def _written(self, o, positions: list[int], written) -> Generator[Progress, object, None]:
        """Record a rebuild in mosaic.json and say so."""
        self.last_write = time.monotonic()
        if written is None:
            return
        shape, files = written
        window = self.checkpoint.gt_window
        self.record.update(
            shape=list(shape),
            origin_yx=list(o),
            pixel_size_nm=self.session.meta.get("stream_pixel_size_nm"),
            positions=positions,
            stream_frames=self.frames.count,
            windows={"gt": window.to_dict(), "low": self.checkpoint.low_window.to_dict()},
            images=[f.name for f in files],
        )
        write_json(self.out / MOSAIC_RECORD, self.record)
        n = len(positions)
        yield from self._emit(MosaicWritten("mosaic", n, n, str(files[0]), path=files[0], parts=n, shape=shape))

    def _finish(self, fill: bool) -> Generator[Progress, object, LiveResult]:
        """Fill the gaps (with `fill`, until a second STOP or Ctrl-C), then write everything and the record."""
        if fill:
            sent = self.stops_sent
            try:
                yield from self._collect(wait=True)
                while self.stops_sent == sent and (t := self._next(final=True)) is not None:
                    self._start(t)
                    yield from self._collect(wait=True)
            except KeyboardInterrupt:
                self.messages.append("gaps left unfilled: interrupted again")
        yield from self._collect(wait=True)  # the position in the worker, if any (its part is saved)
        self._start_write()
        yield from self._collect(wait=True)
        self.pool.shutdown()
        skipped = (
            sorted(self.chain.problems)
            if self.positions is None
            else [f.index for f in self.positions.frames if f.flag]
        )
        if self.positions is not None:
            self.messages = list(self.positions.messages) + [
                m for m in self.messages if m not in self.positions.messages
            ]
        if not self.parts:
            self.messages.append(
                "no stream position was restored" + ("" if self.frames.count else ": no frame arrived")
            )
        self.record.update(state="done", stopped=self.stop, messages=self.messages)
        write_json(self.out / MOSAIC_RECORD, self.record)
        shape = tuple(self.record["shape"]) if self.parts else None
        return LiveResult(
            self.out, self.frames.count, skipped, sorted(self.parts), self.resumed, shape, self.stop, self.messages
        )
