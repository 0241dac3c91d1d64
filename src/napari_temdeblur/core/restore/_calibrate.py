"""Calibrating a run's trust intervals on images with truth (docs/trust.md): at the end of training on
its Val split, or on demand (``temdeblur calibrate RUN DATA``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Generator, Sequence
from pathlib import Path

import numpy as np

from napari_temdeblur.core import DataError, Progress, resolve_device
from napari_temdeblur.core.imaging import window_pair
from napari_temdeblur.core.io import BurstPair, folder_lock, read_dataset
from napari_temdeblur.core.models import PRETRAINED_DIR, Checkpoint, load_model

from ._apply import ImageRestored, InputSkipped, restore_with
from ._options import CalibrateOptions
from ._trust import Calibration, conformal_quantile, write_calibration


def calibrate_with(
    model,
    checkpoint: Checkpoint,
    pairs: Sequence[BurstPair],
    options: CalibrateOptions,
    *,
    data: Sequence[str] = (),
) -> Generator[Progress, None, Calibration]:
    """Calibrate a loaded run on `pairs` (not written: see :func:`write_calibration`).

    Each pair is restored with its spread (:func:`restore_with`), its GT windowed with the run's GT
    window; on up to ``options.pixels // len(pairs)`` pixels of its sample mask (no grid bar, no
    registration padding), drawn with ``options.seed``, the conformity score ``|y - yhat| / u`` is
    computed; the scale is their :func:`conformal_quantile` for ``options.coverage``.

    Raises
    ------
    ValueError
        No pair, a pair without GT, or too few sample pixels for the coverage.
    """
    if not pairs:
        raise ValueError("nothing to calibrate on: no images with truth given")
    missing = [p.name for p in pairs if p.gt is None]
    if missing:
        raise ValueError(f"calibration needs the truth (GT) of every image; none for {', '.join(missing)}")
    rng = np.random.default_rng(options.seed)
    per_image = max(1, options.pixels // len(pairs))
    scores, names = [], []
    for event in restore_with(model, checkpoint, pairs, options.restore, spread=True):
        if isinstance(event, InputSkipped):
            raise DataError(pairs[event.index].name, event.message)
        if isinstance(event, ImageRestored):
            result, pair = event.result, pairs[event.index]
            truth, _, mask = window_pair(pair, checkpoint.gt_window, checkpoint.low_window)
            where = np.flatnonzero(mask)
            if where.size > per_image:
                where = rng.choice(where, per_image, replace=False)
            error = np.abs(truth.ravel()[where] - result.image.ravel()[where])
            scores.append(error / result.spread.ravel()[where])
            names.append(pair.name)
            yield Progress("calibrate", len(names), len(pairs), pair.name)
        else:
            yield event
    scores = np.concatenate(scores)
    if not scores.size:
        raise ValueError(f"no sample pixel in {', '.join(names)} (all grid bar or padding): nothing to calibrate on")
    scale = conformal_quantile(scores, options.coverage)
    return Calibration(
        scale=scale,
        nominal_coverage=float(options.coverage),
        pixels=int(scores.size),
        checkpoint=checkpoint.path.name,
        epoch=int(checkpoint.epoch),
        empirical_coverage=float(np.mean(scores <= scale)),
        data=[str(d) for d in data],
        split=options.split,
        images=names,
    )


def calibrate(
    run: str | Path, data: str | Path | Sequence[str | Path], options: CalibrateOptions | None = None
) -> Generator[Progress, None, Calibration]:
    """Calibrate a run's trust intervals on the ``options.split`` (Val) images of dataset folders, and
    write ``calibration.json`` beside its checkpoint (atomically, the run folder locked meanwhile).

    Parameters
    ----------
    run : str or Path
        Run folder (its best.pt) or checkpoint file.
    data : str, Path or sequence of them
        Dataset folders in the published layout (root, sample or split level) holding that split.
    options : CalibrateOptions, optional

    Yields
    ------
    Progress
        The restoration's events, and ``Progress("calibrate", k, n)`` after each image.

    Returns
    -------
    Calibration

    Raises
    ------
    DataError
        A run or folder that cannot be read, no such split with GT/Low pairs in `data`, or another
        process writing in the run folder.
    ValueError
        The shipped pretrained weights (they come calibrated), bad options, too few pixels.
    """
    options = options or CalibrateOptions()
    data = [data] if isinstance(data, (str, Path)) else list(data)
    if not data:
        raise ValueError("no dataset folder given to calibrate on")
    model, checkpoint = load_model(run, resolve_device(options.restore.device))
    if checkpoint.path.parent.resolve() == PRETRAINED_DIR.resolve():
        raise ValueError(
            "the shipped pretrained weights come calibrated (on simulated Val data); to calibrate a network on "
            "your data, train from them (temdeblur train DATA --init pretrained): training calibrates at its end"
        )
    pairs = []
    for folder in data:
        for part in read_dataset(folder, [options.split]):  # named by sample: image names repeat across samples
            pairs += [dataclasses.replace(p, name=f"{part.sample}/{p.name}") for p in part.pairs]
    if not pairs:
        raise DataError(
            ", ".join(map(str, data)),
            f"holds no {options.split} split with GT/Low pairs: calibration needs images with truth that the "
            "run was not trained on (choose the split with --split)",
        )
    with folder_lock(checkpoint.path.parent, "calibrating"):
        calibration = yield from calibrate_with(model, checkpoint, pairs, options, data=[str(d) for d in data])
        write_calibration(checkpoint.path, calibration)
    return calibration
