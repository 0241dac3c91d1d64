"""A recorded session played back as a live acquisition: its frames written one file at a time into a
new session folder at a given frame rate, each in pieces, as acquisition software writes them, so that
live restoration can be tried and tested without a microscope (docs/live.md, "Replay")."""

from __future__ import annotations

import io
import shutil
import time
from collections.abc import Collection, Generator
from pathlib import Path

import numpy as np
import tifffile

from napari_temdeblur.core import Progress

from ._outputs import check_overwrite
from ._session import read_session_meta, stream_frame_files
from ._tiff import open_stack_lazily, read_image

#: Each frame file is written in this many pieces, over this share of the frame interval.
PIECES, WRITE_SHARE = 4, 0.3


def _frames(session: Path):
    """(T, list of frame readers) of a session's stream.tif or stream/ folder."""
    if (session / "stream.tif").is_file():
        stack = open_stack_lazily(session / "stream.tif")
        return int(stack.shape[0]), lambda t: np.asarray(stack[t])
    files = list(stream_frame_files(session / "stream").values())
    return len(files), lambda t: read_image(files[t])


def replay_session(
    source: str | Path,
    dest: str | Path,
    fps: float,
    *,
    corrupt: Collection[int] = (),
    frames: int | None = None,
) -> Generator[Progress, None, int]:
    """Write the stream of session `source` into the new session folder `dest` as a live acquisition.

    ``session.json`` and the HQ images (when there are any) are copied first; then frame t is written
    as ``dest/stream/<t>.tif`` (five digits) at ``t / fps`` s, in PIECES pieces spread over a part of
    the frame interval, flushed one by one, so a reader finds files half written.

    Parameters
    ----------
    source : str or Path
        A session folder (stream.tif or stream/).
    dest : str or Path
        The folder to write; it must not hold a session.json or stream/ already.
    fps : float
        Frames per second, > 0.
    corrupt : collection of int
        Frames written as half a TIFF file that is never completed (a reader must skip them).
    frames : int, optional
        Write only the first `frames` frames.

    Yields
    ------
    Progress
        ``replay`` after each frame written.

    Returns
    -------
    int
        Frames written.

    Raises
    ------
    ValueError
        `fps` not positive.
    DataError
        `source` is no session; `dest` holds one (OverwriteRefused).
    """
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps!r}")
    source, dest = Path(source), Path(dest)
    read_session_meta(source)
    total, read = _frames(source)
    total = total if frames is None else min(total, int(frames))
    check_overwrite(dest, [dest / "session.json", dest / "hq", dest / "stream"])
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source / "session.json", dest / "session.json")
    if (source / "hq").is_dir():
        shutil.copytree(source / "hq", dest / "hq")
    (dest / "stream").mkdir()
    interval, start = 1.0 / fps, time.monotonic()
    for t in range(total):
        buffer = io.BytesIO()
        tifffile.imwrite(buffer, read(t))
        data = buffer.getvalue()
        time.sleep(max(0.0, start + t * interval - time.monotonic()))
        pieces = np.array_split(np.frombuffer(data, np.uint8), PIECES)
        with open(dest / "stream" / f"{t:05d}.tif", "wb") as handle:
            for k, piece in enumerate(pieces):
                if t in corrupt and k == PIECES // 2:
                    break
                handle.write(piece.tobytes())
                handle.flush()
                if k < PIECES - 1:
                    time.sleep(interval * WRITE_SHARE / PIECES)
        yield Progress("replay", t + 1, total, f"frame {t}")
    return total
