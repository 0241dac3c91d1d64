"""The TEM fast-stream simulator: specimens -> sessions -> raw session folders or a registered dataset.

Output of :func:`simulate` (``OUT`` is the folder given)::

    OUT/simulation.json                          configuration, seed and specimens: enough to re-run
    OUT/<Sample>/sess<k>/...                     --layout session: raw acquisition sessions
    OUT/<Sample>/{Train,Val,Test}/GT|Low/...     --layout dataset: the published registered layout
    OUT/truth/<Sample>/sess<k>.json              true positions (+ sess<k>_kernels.npz, the blur kernels)

The truth lies beside the data, never inside a session folder, so registration cannot peek at it.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from napari_temdeblur.core import DataError, Progress, atomic_write
from napari_temdeblur.core.io import BurstPair, check_overwrite, read_json, write_pair, write_pixel_size, write_session

from ._acquisition import (
    AcquiredSession,
    acquire,
    bin_pixels,
    plan_session,
    render_strip,
)
from ._config import SimulationConfig
from ._specimens import SPECIMENS

#: Folder names of the specimens, as in the published dataset.
SAMPLE_NAMES = {
    "kidney": "Kidney",
    "grid": "CalibrationGrid",
    "spots": "Spots",
    "lines": "Lines",
    "crosslines": "CrossLines",
}
LAYOUTS = ("session", "dataset")
#: The configuration a simulation writes into its output folder.
CONFIG_FILE = "simulation.json"


@dataclass
class SimulationResult:
    """What :func:`simulate` wrote: data folders per sample and every truth file."""

    out: Path
    folders: dict[str, list[Path]] = field(default_factory=dict)
    truth: list[Path] = field(default_factory=list)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)


def session_rng(seed: int, specimen: str, session: int) -> np.random.Generator:
    """Independent, reproducible random stream for one specimen's session."""
    return np.random.default_rng([seed, SPECIMENS.index(specimen), session])


def hq_name(session: int, index: int) -> str:
    """Image name in the published convention, e.g. ``sess2_im5`` (both 1-based)."""
    return f"sess{session}_im{index + 1}"


def true_translations(acq: AcquiredSession, binning: int) -> np.ndarray:
    """(N_hq, T, 2) true (ty, tx) per HQ image and frame, stream px (docs/design.md, Matrix convention):
    where the origin of the HQ image, resampled to stream pixels, lies in the stream frame."""
    return _translations(acq.plan.hq_positions, [e.centroid for e in acq.plan.exposures], binning)


def _translations(hq_positions, frame_positions, binning) -> np.ndarray:
    hq = np.asarray(hq_positions, float)[:, None, :]
    frames = np.asarray(frame_positions, float)[None, :, :]
    return (hq - frames) / binning


def read_true_translations(truth_file: str | Path) -> dict[str, np.ndarray]:
    """True translations from a truth file ``OUT/truth/<Sample>/sess<k>.json``.

    Returns
    -------
    dict
        HQ name -> float64 (T, 2) (ty, tx) per stream frame, stream px, as :func:`true_translations`.
    """
    record = json.loads(Path(truth_file).read_text())
    table = _translations(
        [h["position"] for h in record["hq"]], [f["position"] for f in record["frames"]], record["stream_binning"]
    )
    return {h["name"]: table[i] for i, h in enumerate(record["hq"])}


def session_meta(cfg: SimulationConfig, sample: str, session: int) -> dict:
    return {
        "sample": sample,
        "session": session,
        "hq_pixel_size_nm": cfg.hq_pixel_size_nm,
        "stream_pixel_size_nm": cfg.stream_pixel_size_nm,
        "exposure_ms": cfg.exposure_ms,
        "frame_interval_ms": cfg.frame_interval_ms,
        "scan_direction": "up",
        "hq_overlap": cfg.hq_overlap,
        "simulated": True,
    }


def _truth_record(cfg: SimulationConfig, sample: str, session: int, acq: AcquiredSession) -> dict:
    plan = acq.plan
    return {
        "sample": sample,
        "session": session,
        "units": "HQ pixels of the rendered strip (row, col); translations in stream pixels (ty, tx)",
        "stream_binning": cfg.stream_binning,
        "strip_shape": list(plan.strip_shape),
        "strip_origin_um": list(plan.strip_origin_um),
        "hq": [
            {"name": hq_name(session, i), "position": [int(v) for v in pos]} for i, pos in enumerate(plan.hq_positions)
        ],
        "frames": [
            {
                "index": k,
                "start_ms": e.start_ms,
                "position": [float(v) for v in e.centroid],
                "kernel_corner": [int(v) for v in acq.corners[k]],
            }
            for k, e in enumerate(plan.exposures)
        ],
    }


def _write_truth(out: Path, sample: str, session: int, record: dict, acq: AcquiredSession) -> list[Path]:
    folder = out / "truth" / sample
    folder.mkdir(parents=True, exist_ok=True)
    kernels = folder / f"sess{session}_kernels.npz"
    arrays = {f"frame{k}": kern for k, kern in enumerate(acq.kernels)}

    def write_kernels(tmp: Path) -> None:
        with tmp.open("wb") as handle:  # a handle: given a name, numpy would append ".npz" to it
            np.savez_compressed(handle, **arrays)

    atomic_write(kernels, write_kernels)
    record = {**record, "kernels_file": kernels.name}
    path = folder / f"sess{session}.json"
    text = json.dumps(record, indent=1)
    atomic_write(path, lambda tmp: tmp.write_text(text))
    return [path, kernels]


def burst_from_truth(
    cfg: SimulationConfig, acq: AcquiredSession, index: int, rng: np.random.Generator, name: str
) -> tuple[BurstPair, dict]:
    """Register `burst_frames` stream frames to HQ image `index` from the truth, with a realistic residual.

    The frames nearest the HQ image are shifted onto the HQ grid (cubic interpolation) by the true
    translation plus Gaussian error of ``registration_residual_px``; GT and frames are cropped to the
    region all frames cover, as the paper did.

    Returns
    -------
    pair : BurstPair
        GT uint16 (h, w) at stream pixels and Low uint16 (F, h, w).
    record : dict
        The frames used, their true and applied translations and the crop, for the truth file.
    """
    b = cfg.stream_binning
    translations = true_translations(acq, b)[index]
    n_frames, size = len(translations), cfg.stream_size
    best = int(np.argmin(np.abs(translations[:, 0])))
    first = int(np.clip(best - cfg.burst_frames // 2, 0, n_frames - cfg.burst_frames))
    chosen = list(range(first, first + cfg.burst_frames))
    applied = translations[chosen] + rng.normal(0, cfg.registration_residual_px, (len(chosen), 2))
    # rows/cols i with 0 <= i + t <= size - 1 for every frame (and inside the GT)
    low_edge = np.maximum(np.ceil(-applied.min(axis=0)), 0).astype(int)
    high_edge = np.minimum(np.floor(size - 1 - applied.max(axis=0)), size - 1).astype(int)
    if np.any(high_edge - low_edge < 16):
        raise ValueError(
            f"frames {chosen} overlap HQ image {index} by less than 16 px: frame_interval_ms or scan speed too high"
        )
    crop = (slice(low_edge[0], high_edge[0] + 1), slice(low_edge[1], high_edge[1] + 1))
    gt = np.round(bin_pixels(acq.hq[index].astype(np.float64), b)).astype(np.uint16)[crop]
    frames = []
    for k, (ty, tx) in zip(chosen, applied):
        moved = ndimage.shift(acq.stream[k].astype(np.float32), (-ty, -tx), order=3, mode="nearest")
        frames.append(np.clip(np.round(moved[crop]), 0, 65535).astype(np.uint16))
    record = {
        "frames": chosen,
        "true_translation_yx": translations[chosen].round(4).tolist(),
        "applied_translation_yx": applied.round(4).tolist(),
        "crop_rows_cols": [int(low_edge[0]), int(low_edge[1]), int(gt.shape[0]), int(gt.shape[1])],
    }
    return BurstPair(name, gt, np.stack(frames)), record


def assign_splits(cfg: SimulationConfig, plans: list) -> dict[tuple[int, int], str]:
    """Split HQ images as the paper did: the last session for Test; in the first session, up to
    `val_max_images` images of one support-grid cell for Val, dropping the first session's other
    images that overlap them (no field of view may be in two splits); everything else Train.

    Returns
    -------
    dict mapping (session, hq index) -> "Train" | "Val" | "Test"; dropped images are absent.
    """
    splits = {}
    n = len(plans)
    for s, plan in enumerate(plans, start=1):
        for i in range(len(plan.hq_positions)):
            splits[(s, i)] = "Test" if (n >= 2 and s == n) else "Train"
    if n < 2:
        return splits
    plan = plans[0]
    px_um = cfg.hq_pixel_size_nm / 1000.0
    tops = plan.strip_origin_um[0] + plan.hq_positions[:, 0] * px_um
    fov = cfg.hq_size * px_um
    cells = np.floor((tops + fov / 2) / cfg.grid_pitch_um).astype(int)
    values, counts = np.unique(cells, return_counts=True)
    cell = values[np.argmax(counts)]
    val = np.flatnonzero(cells == cell)[: cfg.val_max_images].tolist()
    for i in range(len(tops)):
        if i in val:
            splits[(1, i)] = "Val"
        elif any(abs(tops[i] - tops[j]) < fov for j in val):
            del splits[(1, i)]
    return splits


def simulate(
    out: str | Path,
    cfg: SimulationConfig,
    specimens: Sequence[str] = ("kidney",),
    layout: str = "session",
    seed: int = 0,
    overwrite: bool = False,
) -> Generator[Progress, None, SimulationResult]:
    """Simulate sessions of each specimen and write them in the chosen layout.

    Parameters
    ----------
    out : str or Path
        Output folder (created).
    cfg : SimulationConfig
    specimens : sequence of str
        Any of :data:`SPECIMENS`.
    layout : {"session", "dataset"}
        Raw sessions to register, or the published registered layout (5 frames registered from the
        truth with a residual of ``cfg.registration_residual_px``).
    seed : int
        The same seed and configuration give the same bytes.
    overwrite : bool
        Replace earlier output of the same samples in `out`, and a simulation.json no simulation
        wrote. Without it, existing sample folders are an error (mixing files of two simulations would
        make the truth wrong), and so is such a simulation.json (OverwriteRefused).

    Yields
    ------
    Progress
        One event per stream frame simulated and per session written.

    Returns
    -------
    SimulationResult
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    unknown = [s for s in specimens if s not in SPECIMENS]
    if unknown or not specimens:
        raise ValueError(f"unknown specimen(s) {unknown or specimens}; choose from {', '.join(SPECIMENS)}")
    out = Path(out)
    earlier = [p for s in specimens for p in (out / SAMPLE_NAMES[s], out / "truth" / SAMPLE_NAMES[s]) if p.exists()]
    if earlier and not overwrite:
        raise ValueError(f"{earlier[0]} already exists: choose another output folder or overwrite it")
    check_overwrite(out, [out / CONFIG_FILE], _written_by_simulate, overwrite=overwrite)
    for path in earlier:
        shutil.rmtree(path)
    out.mkdir(parents=True, exist_ok=True)
    result = SimulationResult(out)
    cfg.save(out / CONFIG_FILE, seed=seed, specimens=list(specimens), layout=layout)
    for specimen in specimens:
        sample = SAMPLE_NAMES[specimen]
        acquired, plans = [], []
        for session in range(1, cfg.sessions + 1):
            rng = session_rng(seed, specimen, session)
            plan = plan_session(cfg, rng, session)
            strip = render_strip(cfg, specimen, plan, rng)
            acq = yield from acquire(cfg, strip, plan, rng, stage=f"simulate {sample} sess{session}")
            record = _truth_record(cfg, sample, session, acq)
            if layout == "session":
                folder = out / sample / f"sess{session}"
                names = [hq_name(session, i) for i in range(len(acq.hq))]
                write_session(folder, session_meta(cfg, sample, session), names, acq.hq, acq.stream)
                result.folders.setdefault(sample, []).append(folder)
                result.truth += _write_truth(out, sample, session, record, acq)
                yield Progress(f"write {sample}", session, cfg.sessions, str(folder))
            else:
                acquired.append((session, acq, record, rng))
                plans.append(plan)
        if layout == "dataset":
            yield from _write_dataset(out, cfg, sample, acquired, assign_splits(cfg, plans), result)
    return result


def _written_by_simulate(path: Path) -> bool:
    """Whether `path` is a simulation.json of :meth:`SimulationConfig.save`."""
    try:
        return isinstance(read_json(path).get("simulation"), dict)
    except DataError:
        return False


def _write_dataset(out: Path, cfg, sample: str, acquired: list, splits: dict, result: SimulationResult):
    counts: dict[str, int] = {}
    write_pixel_size(out / sample, cfg.stream_pixel_size_nm)
    for session, acq, record, rng in acquired:
        record["pairs"] = []
        for i in range(len(acq.hq)):
            split = splits.get((session, i))
            if split is None:
                continue
            pair, pair_record = burst_from_truth(cfg, acq, i, rng, hq_name(session, i))
            write_pair(out / sample / split, pair)
            counts[split] = counts.get(split, 0) + 1
            record["pairs"].append({"name": pair.name, "split": split, **pair_record})
        result.truth += _write_truth(out, sample, session, record, acq)
        yield Progress(f"write {sample}", session, len(acquired), f"{len(record['pairs'])} registered pairs")
    result.folders[sample] = [out / sample / s for s in ("Train", "Val", "Test") if s in counts]
    result.counts[sample] = counts
