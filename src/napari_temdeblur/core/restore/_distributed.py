"""The mosaic's positions restored on a dask.distributed cluster: a LocalCluster of N workers, or a
running scheduler (one worker per GPU on a multi-GPU machine, or a cluster of machines).

Each position is one task. A worker loads the run once (kept for its later tasks), reads the session
and OUT/positions.json itself, restores the position exactly as the in-process path does
(:func:`._parts.restore_parts`, on as many torch threads as the caller uses, so that the numbers are
the same) and saves the part into OUT/parts/; workers never write the same file, and the mosaic is
blended afterwards by the caller from the parts in stream order, so it does not depend on which
worker restored what, or when. The session and OUT must be on a filesystem every worker sees.
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path

from napari_temdeblur.core import DataError, Progress, drain, resolve_device
from napari_temdeblur.core.io import open_session
from napari_temdeblur.core.models import load_model
from napari_temdeblur.core.register import POSITIONS_FILE, load_positions

from ._options import RestoreOptions
from ._parts import Part, PositionRestored, restore_parts

#: The run each worker process holds: (run, device) -> (model, checkpoint).
_LOADED: dict = {}


def _worker_device(device: str):
    """`device` resolved, or on a worker of a machine with several GPUs given plain "cuda" or "auto",
    the GPU of the worker's number (LocalCluster names workers 0 ... N - 1), so that each has its own."""
    import torch
    from distributed import get_worker

    resolved = resolve_device(device)
    count = torch.cuda.device_count() if resolved.type == "cuda" and resolved.index is None else 0
    name = get_worker().name if count > 1 else None
    return torch.device("cuda", name % count) if isinstance(name, int) else resolved


def restore_position(run, session_path, out, position: int, options: dict, threads: int) -> tuple:
    """One position restored and saved on a worker: (position, part or None, messages)."""
    import torch

    torch.set_num_threads(threads)
    options = RestoreOptions(**options)
    key = (str(run), options.device)
    if key not in _LOADED:
        _LOADED.clear()  # one run per worker at a time: a model can be large
        _LOADED[key] = load_model(run, _worker_device(options.device))
    model, checkpoint = _LOADED[key]
    session = open_session(session_path)
    positions = load_positions(Path(out) / POSITIONS_FILE)
    work = restore_parts(model, checkpoint, session, positions, [position], Path(out) / "parts", options)
    parts, messages = drain(work)
    return position, parts.get(position), messages


def restore_distributed(
    run, session, out: Path, todo: list[int], options: RestoreOptions, scheduler: str, workers: int | None
) -> Generator[Progress, None, tuple[dict[int, Part], list[str]]]:
    """Restore positions `todo` on a dask.distributed cluster, as :func:`._parts.restore_parts` does in
    process; yields a :class:`PositionRestored` per part as the workers finish them (in any order).

    Parameters
    ----------
    scheduler : str
        ``"local"`` (a LocalCluster of `workers` processes, one thread each) or a scheduler address
        (``tcp://host:8786``).
    workers : int or None
        Workers of the LocalCluster (default 1); only with ``"local"``.

    Raises
    ------
    ValueError
        `workers` below 1, or given with an address.
    DataError
        The scheduler cannot be reached.
    """
    import torch
    from distributed import Client, LocalCluster, as_completed

    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers must be a whole number of at least 1, got {workers!r}")
    if workers is not None and scheduler != "local":
        raise ValueError("workers is for a LocalCluster (scheduler 'local'); a running cluster has its own")
    cluster = None
    try:
        if scheduler == "local":
            cluster = LocalCluster(n_workers=workers or 1, threads_per_worker=1, dashboard_address=None)
            client = Client(cluster)
        else:
            client = Client(scheduler, timeout="20s")
    except OSError as exc:
        if cluster is not None:
            cluster.close()
        raise DataError(scheduler, f"no dask scheduler answers there ({exc})") from None
    fields = {k: getattr(options, k) for k in ("device", "inference_tile", "overlap", "batch")}
    threads = torch.get_num_threads()
    futures = [
        client.submit(restore_position, run, session.path, out, t, fields, threads, pure=False, key=f"restore-{t}")
        for t in todo
    ]
    parts, messages = {}, []
    try:
        for future in as_completed(futures):
            position, part, notes = future.result()
            messages += notes
            if part is not None:
                parts[position] = part
                yield PositionRestored("restore", len(parts), len(todo), part.path.stem, position=position)
    finally:
        client.cancel(futures)
        client.close()
        if cluster is not None:
            cluster.close()
    # the notes in stream order, whatever order the workers finished in
    return parts, sorted(messages)
