"""The run folder: best.pt, last.pt, config.json and history.csv, and the rules for reusing one."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from napari_temdeblur.core import DataError, atomic_write, write_json
from napari_temdeblur.core.io import check_overwrite, read_json
from napari_temdeblur.core.models import (
    BEST,
    LAST,
    Checkpoint,
    ModelConfig,
    load_checkpoint,
    versions,
)

from ._config import TrainConfig
from ._data import TrainingData

CONFIG, HISTORY = "config.json", "history.csv"
RUN_FORMAT = "temdeblur-run/1"
HISTORY_COLUMNS = ("epoch", "train_loss", "val_ssim", "val_psnr", "seconds")


def check_out_folder(out: Path, resume: bool) -> Checkpoint | None:
    """Refuse to overwrite a trained run, or files another program wrote; on resume, return its last.pt.

    Raises
    ------
    DataError
        `out` already holds a run and `resume` is False; `resume` is True and there is no readable
        last.pt; or (OverwriteRefused) `out` holds a config.json or history.csv that is not a run's.
    """
    check_overwrite(out, [out / CONFIG, out / HISTORY], owned=_written_by_a_run)
    if resume:
        if not (out / LAST).is_file():
            raise DataError(out, f"nothing to resume: no {LAST} in this folder")
        return load_checkpoint(out / LAST)
    # Only weights count: a run stopped before its first epoch leaves just config.json, and neither
    # resume (no last.pt) nor a fresh start could use the folder if that blocked it.
    present = [name for name in (BEST, LAST) if (out / name).exists()]
    if present:
        raise DataError(
            out,
            f"already holds a training run ({', '.join(present)}); resume it (--resume) or choose "
            "another output folder: trained weights are never overwritten",
        )
    return None


def _written_by_a_run(path: Path) -> bool:
    """Whether config.json or history.csv is a run's own (written by :func:`write_config`, :func:`write_history`)."""
    try:
        if path.name == CONFIG:
            return read_json(path).get("format") == RUN_FORMAT
        with path.open() as handle:
            return handle.readline().rstrip("\n") == ",".join(HISTORY_COLUMNS)
    except (DataError, OSError, UnicodeDecodeError):
        return False


def model_words(found: ModelConfig, wanted: ModelConfig) -> tuple[str, str]:
    """The two models in words, e.g. ("bu of width 3", "bdu-uc of width 8"), with the settings that
    differ when name and width are the same: short enough for one line, unlike their dicts."""
    words = [f"{m.name} of width {m.width}" for m in (found, wanted)]
    if words[0] == words[1]:
        a, b = found.to_dict(), wanted.to_dict()
        differ = [key for key in a if a[key] != b[key]]
        words = [f"{w} ({', '.join(f'{k} {d[k]}' for k in differ)})" for w, d in zip(words, (a, b))]
    return words[0], words[1]


def check_resumable(cfg: TrainConfig, checkpoint: Checkpoint) -> None:
    """A run resumes only with the model and frames it was started with, and for epochs still to train.

    Raises
    ------
    DataError
        Another model or frames than the run's, or a last.pt without training state.
    ValueError
        ``cfg.epochs`` is not more than the epochs already trained: nothing would be trained.
    """
    if checkpoint.model != cfg.model:
        found, wanted = model_words(checkpoint.model, cfg.model)
        raise DataError(checkpoint.path, f"was trained as {found}, not {wanted}; resume with the same model")
    if checkpoint.frames != cfg.frame_range:
        raise DataError(checkpoint.path, f"was trained with frames {checkpoint.frames}, not {cfg.frame_range}")
    if not checkpoint.training:
        raise DataError(checkpoint.path, "holds no training state to resume from")
    done = checkpoint.epoch
    if cfg.epochs <= done:
        raise ValueError(
            f"{checkpoint.path.parent}: the run has already trained {done} epochs, so epochs = {cfg.epochs} leaves "
            f"none to train; nothing was changed: ask for more than {done} epochs to continue it"
        )


def write_config(
    out: Path,
    cfg: TrainConfig,
    data: TrainingData,
    *,
    steps_per_epoch: int,
    device: str,
    val_tiles: int,
    input_val: tuple[float, float],
) -> Path:
    """config.json: the training configuration, windows, data and software versions of the run."""
    return write_json(
        out / CONFIG,
        {
            "format": RUN_FORMAT,
            "train": cfg.to_dict(),
            "steps_per_epoch": steps_per_epoch,
            "device": device,
            "windows": {"gt": data.gt_window.to_dict(), "low": data.low_window.to_dict()},
            "data": {
                "sources": data.sources,
                "train": [p.name for p in data.train],
                "val": [p.name for p in data.val],
                "held_out_sessions": data.held_out_sessions,
                "val_tiles": val_tiles,
            },
            "input_val": {"ssim": input_val[0], "psnr": input_val[1]},
            "versions": versions(),
        },
    )


def write_history(out: Path, history: list[dict]) -> Path:
    """history.csv, one row per epoch with :data:`HISTORY_COLUMNS`."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=HISTORY_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    text = buffer.getvalue()
    return atomic_write(out / HISTORY, lambda tmp: tmp.write_text(text))


def read_history(path: str | Path) -> list[dict]:
    """Rows of a history.csv as dicts of numbers (epoch int, others float)."""
    path = Path(path)
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    if rows and set(HISTORY_COLUMNS) - set(rows[0]):
        raise DataError(path, f"not a training history: expected columns {', '.join(HISTORY_COLUMNS)}")
    return [{k: int(r[k]) if k == "epoch" else float(r[k]) for k in HISTORY_COLUMNS} for r in rows]


def best_of(history: list[dict]) -> tuple[int | None, float]:
    """(epoch, val SSIM) of the best epoch so far; the earliest wins a tie. (None, nan) when empty."""
    best = None
    for row in history:
        if best is None or row["val_ssim"] > best["val_ssim"]:
            best = row
    return (None, math.nan) if best is None else (best["epoch"], best["val_ssim"])
