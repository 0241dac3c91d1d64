"""Speed of ``temdeblur live`` (issue 13, section 3 and its done-when check).

Simulates one full-size session (the paper's geometry: 1024 x 1024 stream frames, 240 ms apart at
25 um/s, so consecutive frames lie about 190 px apart), then

1. *per position*: the steps of one stream position timed side by side on this machine: registering a
   new frame (:class:`PositionChain.add`: prepared, matched to its 3 predecessors; and the solve),
   restoring the newest burst at the solved positions (``restore_parts``: the burst resampled, the
   network, the part saved) and rebuilding the mosaic (per rebuild, and per position at one rebuild
   every 20 s); positions/s end to end is one over their sum with one frame registered per position;
2. *replay*: the session replayed at ``--fps`` (10) into a folder while ``live`` runs on it (gaps left
   unfilled, ``--leave-gaps``, so what it kept up with is what it placed), and reports frames/s read,
   the delay from a frame's file being written to its being read, positions/s, latency, and the
   fraction of frames placed in the mosaic while the stream ran: frames in the burst of a restored
   position (their pixels are in the mosaic), frames whose footprint's centre (along the scan) a
   restored part covers, and the mean share of their footprint covered.

    python benchmarks/bench_live.py [--images 8] [--fps 10] [--threads 2] [--device auto] [--run pretrained]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

from napari_temdeblur.core import drain, resolve_device
from napari_temdeblur.core.io import open_session, replay_session
from napari_temdeblur.core.models import frames_required, load_model
from napari_temdeblur.core.register import PositionChain, load_positions
from napari_temdeblur.core.restore import FrameArrived, LiveOptions, LiveRestored, RestoreOptions, live
from napari_temdeblur.core.restore._mosaic import write_mosaic
from napari_temdeblur.core.restore._parts import restore_parts
from napari_temdeblur.core.simulate import SAMPLE_NAMES, SimulationConfig, simulate


def per_position(run: str, session_path: Path, out: Path, device: str) -> dict:
    session = open_session(session_path)
    stream = session.stream
    chain, adds, solves = PositionChain(3), [], []
    for t in range(int(stream.shape[0])):
        frame = np.asarray(stream[t])
        start = time.perf_counter()
        chain.add(frame)
        adds.append(time.perf_counter() - start)
        if t >= 1:
            start = time.perf_counter()
            positions = chain.solve(session)
            solves.append(time.perf_counter() - start)
    model, checkpoint = load_model(run, resolve_device(device))
    count = frames_required(checkpoint.model) or checkpoint.frames[1]
    todo = [f.index for f in positions.placed][count // 2 : -(count // 2)][::2][:6]
    options = RestoreOptions(device=device)
    drain(restore_parts(model, checkpoint, session, positions, todo[:1], out / "parts", options))  # warm-up
    restores, parts = [], {}
    for t in todo[1:]:
        start = time.perf_counter()
        done, _ = drain(restore_parts(model, checkpoint, session, positions, [t], out / "parts", options))
        restores.append(time.perf_counter() - start)
        parts.update(done)
    ordered = [parts[t] for t in sorted(parts)]
    start = time.perf_counter()
    shape, _ = drain(write_mosaic(out, ordered, 31.25, checkpoint.gt_window))
    rebuild = time.perf_counter() - start
    region = next(iter(parts.values())).shape
    return {
        "register": float(np.median(adds[1:])),
        "solve": float(np.median(solves[-5:])),
        "restore": float(np.median(restores)),
        "rebuild": rebuild,
        "mosaic": shape,
        "region": region,
        "frames": int(stream.shape[0]),
    }


def replayed(run: str, session_path: Path, root: Path, fps: float, device: str) -> dict:
    sess, out = root / "live-session", root / "live-out"
    written = {}

    def play():
        for event in replay_session(session_path, sess, fps):
            written[event.done - 1] = time.monotonic()

    thread = threading.Thread(target=play, daemon=True)
    thread.start()
    while not (sess / "session.json").is_file():
        time.sleep(0.01)
    read, restored = {}, []
    options = LiveOptions(idle_timeout=2.0, leave_gaps=True, restore=RestoreOptions(device=device))

    def note(event):
        if isinstance(event, FrameArrived):
            read[event.index] = time.monotonic()
        elif isinstance(event, LiveRestored):
            restored.append((time.monotonic(), event))

    start = time.monotonic()
    result = drain(live(run, sess, out, options), note)
    thread.join()
    stream_s = max(read.values()) - min(read.values())
    # kept up: the positions restored while frames arrived (the spare-time gap fills after it are not counted)
    last = max(read.values())
    during = [e for when, e in restored if when <= last]
    positions = load_positions(out)
    record = json.loads((out / "mosaic.json").read_text())
    origin = record["origin_yx"]
    h = open_session(session_path).stream.shape[1]
    covered = []  # restored parts' row ranges in mosaic coordinates (the scan is vertical)
    for t in [e.position for e in during]:
        with np.load(out / "parts" / f"frame_{t:04d}.npz") as data:
            y, rows = float(data["yx"][0]) - origin[0], data["image"].shape[0]
        covered.append((y, y + rows))
    used = set()  # frames whose pixels a restored position's burst took (the placed ones of its burst)
    count = json.loads((out / "mosaic.json").read_text())["frames"]
    for e in during:
        first = int(np.clip(e.position - count // 2, 0, max(len(positions.frames) - count, 0)))
        used.update(range(first, first + count))
    centre, share = [], []
    for f in positions.placed:
        lo, hi = f.yx[0], f.yx[0] + h
        inside = sum(max(0.0, min(b, hi) - max(a, lo)) for a, b in _merged(covered))
        share.append(inside / h)
        centre.append(any(a <= (lo + hi) / 2 <= b for a, b in covered))
    front = [e.latency_s for e in during if not e.gap]
    return {
        "frames": result.frames,
        "read_fps": (len(read) - 1) / stream_s if stream_s else float("nan"),
        "delay": float(np.median([read[t] - written[t] for t in read if t in written])),
        "delay_max": float(max(read[t] - written[t] for t in read if t in written)),
        "positions": len(during),
        "positions_per_s": len(during) / (last - start),
        "latency": float(np.median(front)) if front else float("nan"),
        "placed_burst": float(np.mean([f.index in used for f in positions.placed])),
        "placed_centre": float(np.mean(centre)),
        "placed_share": float(np.mean(share)),
        "wall": time.monotonic() - start,
    }


def _merged(spans):
    out = []
    for lo, hi in sorted(spans):
        if out and lo <= out[-1][1]:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", default="pretrained")
    parser.add_argument("--images", type=int, default=8, help="HQ images in the simulated session")
    parser.add_argument("--fps", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = str(resolve_device(args.device))
    gpu = f" ({torch.cuda.get_device_name(0)})" if device.startswith("cuda") else ""
    print(
        f"{os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f}; torch {torch.__version__} on "
        f"{torch.get_num_threads()} threads; device {device}{gpu}"
    )
    cfg = dataclasses.replace(SimulationConfig(), sessions=1, hq_per_session=args.images)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        drain(simulate(root / "sim", cfg, ["kidney"], layout="session", seed=args.seed))
        session = root / "sim" / SAMPLE_NAMES["kidney"] / "sess1"
        steps = per_position(args.run, session, root / "steps", device)
        total = steps["register"] + steps["restore"] + steps["rebuild"] / max(1, round(20 / steps["restore"]))
        print(
            f"per position ({steps['frames']} frames of 1024 x 1024, restored region {steps['region']}): register "
            f"a frame {steps['register'] * 1e3:.0f} ms, solve {steps['solve'] * 1e3:.0f} ms, restore "
            f"{steps['restore'] * 1e3:.0f} ms, mosaic rebuild {steps['rebuild']:.2f} s ({steps['mosaic']}); "
            f"end to end {1 / total:.2f} positions/s (load {os.getloadavg()[0]:.1f})"
        )
        r = replayed(args.run, session, root, args.fps, device)
        print(
            f"replay at {args.fps:g} frames/s: {r['frames']} frames read at {r['read_fps']:.1f} frames/s, "
            f"file-to-read delay median {r['delay']:.2f} s (max {r['delay_max']:.2f}); {r['positions']} positions "
            f"restored while frames arrived, at {r['positions_per_s']:.2f} positions/s, front latency median "
            f"{r['latency']:.2f} s; frames placed: {r['placed_burst']:.0%} (in a restored burst), "
            f"{r['placed_centre']:.0%} (centre covered), {r['placed_share']:.0%} of their area on average "
            f"({r['wall']:.1f} s in all; load {os.getloadavg()[0]:.1f})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
