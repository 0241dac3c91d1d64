"""The paper's evaluation: every method scored on the same 128 x 128 sample tiles of the test images."""

from __future__ import annotations

import dataclasses
from collections.abc import Generator, Sequence
from pathlib import Path

import numpy as np

from napari_temdeblur.core import Progress
from napari_temdeblur.core.imaging import WINDOW, apply_window
from napari_temdeblur.core.models import checkpoint_path, load_checkpoint
from napari_temdeblur.core.restore import collect_restored, read_calibration, restore

from ._baselines import BASELINES, baseline, estimate_motion_psf
from ._images import EvalImage, prepare, read_samples, sample_windows, score
from ._options import EvaluateOptions
from ._results import INPUT, Evaluation, Example, Fold, MethodScores
from ._runs import held_out_sessions, run_keys, seen_sessions

#: Split name recorded for a cross-validation (images of every split of the held-out sessions).
HELD_OUT = "held-out sessions"


def evaluate(
    data: Sequence[str | Path], runs: Sequence[str | Path] = (), options: EvaluateOptions | None = None
) -> Generator[Progress, None, Evaluation]:
    """Score the unrestored input, the classical baselines and trained runs on a dataset's test tiles.

    Per sample (e.g. Kidney, CalibrationGrid) the GT and Low intensity windows are suggested
    (:func:`~napari_temdeblur.core.imaging.suggest_window`) over the sample's evaluated images.
    Each image is tiled (:func:`~napari_temdeblur.core.imaging.evaluation_tiles`) into regular
    ``score_tile`` x ``score_tile`` tiles lying entirely on the sample mask of the GT and of every
    frame, in the top half of the image unless ``all_rows``. On every tile, SSIM and PSNR
    (:func:`~napari_temdeblur.core.imaging.tile_scores`) against the windowed GT are computed for:

    * ``"input"``: the centre registered frame ``F // 2`` in the Low window;
    * with ``options.baselines``, ``"frame-mean"``, ``"wiener"``, ``"richardson-lucy"``
      (:func:`~napari_temdeblur.core.evaluate.baseline` of the windowed frames, with the PSF
      :func:`~napari_temdeblur.core.evaluate.estimate_motion_psf` fits to this image's GT: an upper
      bound on a motion-PSF deconvolution);
    * each run (key: its folder name): :func:`~napari_temdeblur.core.restore.restore` of the raw
      burst through the run's own windows, its output mapped back to counts and re-windowed with
      the evaluation GT window, so every method is scored in the same units; with
      ``options.uncertainty``, its calibrated intervals too (:class:`TileTrust`, docs/trust.md).

    Parameters
    ----------
    data : sequence of str or Path
        Dataset folders (root, sample or split level).
    runs : sequence of str or Path
        Run folders (with best.pt; config.json too for cross-validation).
    options : EvaluateOptions, optional
        Split, baselines, evaluation tile, rows, cross-validation, examples kept, and how the runs
        restore (defaults: :class:`EvaluateOptions`).

    Returns
    -------
    Evaluation

    Raises
    ------
    DataError
        A folder that is not a dataset, no such split, a run folder without best.pt (or without
        config.json for cross-validation).
    ValueError
        Nothing to compare, runs sharing a folder name, no evaluation tile at all, a run that saw
        every session (cross-validation).
    Uncalibrated
        With ``options.uncertainty``, a run without a calibration (the message says how to calibrate).
    """
    options = options or EvaluateOptions()
    data = [data] if isinstance(data, (str, Path)) else list(data)
    keys = run_keys([runs] if isinstance(runs, (str, Path)) else runs)
    baselines, score_tile = options.baselines, options.score_tile
    if score_tile < WINDOW:
        raise ValueError(f"score_tile must be at least the SSIM window, {WINDOW} px, got {score_tile}")
    if not keys and not baselines:
        raise ValueError("nothing to compare with the input: give at least one run or the baselines")
    if options.cross_validation and not keys:
        raise ValueError("cross-validation needs runs (trained with sessions held out)")
    by_sample, messages = read_samples(data, None if options.cross_validation else options.split)
    plan = _fold_plan(keys, by_sample, messages) if options.cross_validation else None
    restoring = options.restore
    if options.uncertainty:
        for path in keys.values():  # an uncalibrated run is named before the long restoring
            read_calibration(load_checkpoint(checkpoint_path(path)))
        restoring = dataclasses.replace(restoring, trust=True)
    if plan is not None:  # only the held-out images are evaluated (and set the windows)
        wanted = {(s, name) for folds in plan.values() for (s, _), names in folds.items() for name in names}
        by_sample = {s: kept for s, pairs in by_sample.items() if (kept := [p for p in pairs if (s, p.name) in wanted])}

    windows = {sample: sample_windows(pairs) for sample, pairs in by_sample.items()}
    images = _tiled_images(by_sample, windows, score_tile, options.keep_rows_fraction, messages)

    groups = _restore_groups(keys, images, plan)
    total, done = len(images) + len(groups), 0
    scores: dict[tuple[str, str], dict[str, MethodScores]] = {}
    example_ids = [(im.sample, im.name) for im in images[: options.keep_examples]]
    outputs: dict[tuple[str, str], dict[str, np.ndarray]] = {i: {} for i in example_ids}
    for image in images:
        yield Progress(
            "evaluate", done, total, f"input{' and baselines' if baselines else ''}: {image.sample}/{image.name}"
        )
        ident = (image.sample, image.name)
        scores[ident] = {INPUT: score(image.input, image)}
        for method, output in (_baselines(image) if baselines else {}).items():
            scores[ident][method] = score(output, image)
            if ident in outputs:
                outputs[ident][method] = output
        done += 1
    for key, group in groups:
        yield Progress("evaluate", done, total, f"{key} on {len(group)} {group[0].sample} image(s)")
        results = yield from collect_restored(restore(keys[key], [im.pair for im in group], restoring))
        for image, result in zip(group, results):
            messages += result.messages
            output = apply_window(result.counts, windows[image.sample]["gt"])  # the evaluation's GT units
            ident = (image.sample, image.name)
            if result.calibration is None:
                scores[ident][key] = score(output, image)
            else:
                interval = _in_window(result, windows[image.sample]["gt"])
                scores[ident][key] = score(output, image, interval, result.calibration.nominal_coverage)
            if ident in outputs:
                outputs[ident][key] = output
        done += 1
    yield Progress("evaluate", total, total)

    method_keys = [INPUT, *(BASELINES if baselines else ()), *keys]
    by_id = {(im.sample, im.name): im for im in images}
    examples = [Example(i[1], i[0], by_id[i].gt, by_id[i].input, outputs[i]) for i in example_ids]
    evaluation = Evaluation(
        dataset=", ".join(map(str, data)),
        split=HELD_OUT if plan is not None else options.split,
        tiles=0,
        methods={},
        samples={},
        examples=examples,
        windows=windows,
        tile_size=score_tile,
        keep_rows_fraction=options.keep_rows_fraction,
        messages=list(dict.fromkeys(messages)),
    )
    if plan is None:
        _pool_by_sample(evaluation, images, scores, method_keys)
    else:
        _pool_folds(evaluation, plan, by_id, scores, method_keys)
    return evaluation


def _in_window(result, window) -> tuple[np.ndarray, np.ndarray]:
    """A restoration's interval (run's GT window) in the evaluation's GT `window`, through counts."""
    run = result.metadata["windows"]["gt"]
    span = run["high"] - run["low"]
    return tuple(apply_window(bound.astype(np.float64) * span + run["low"], window) for bound in result.interval())


def _tiled_images(
    by_sample: dict, windows: dict, score_tile: int, keep_rows_fraction: float | None, messages: list[str]
) -> list[EvalImage]:
    """The windowed images that hold at least one evaluation tile; the others are reported."""
    images = []
    for sample, pairs in by_sample.items():
        for pair in pairs:
            image = prepare(sample, pair, windows[sample], score_tile=score_tile, keep_rows_fraction=keep_rows_fraction)
            if len(image.origins):
                images.append(image)
            else:
                messages.append(
                    f"{sample}/{pair.name}: no {score_tile} x {score_tile} tile of pure sample"
                    + (" in its top part" if keep_rows_fraction else "")
                    + "; not scored"
                )
    if not images:
        raise ValueError(
            f"no image holds a {score_tile} x {score_tile} evaluation tile of pure sample (no grid bar, no "
            "padding); evaluate with a smaller score_tile"
        )
    return images


def _baselines(image: EvalImage) -> dict[str, np.ndarray]:
    """Every classical baseline of one image, the deconvolutions with the PSF fitted to its GT."""
    try:
        psf = estimate_motion_psf(image.gt, image.low)
        return {method: baseline(method, image.low, psf) for method in BASELINES}
    except ValueError as exc:
        raise ValueError(f"{image.sample}/{image.name}: baselines: {exc}") from None


def _fold_plan(
    keys: dict[str, Path], by_sample: dict, messages: list[str]
) -> dict[str, dict[tuple[str, int], list[str]]]:
    """Run key -> {(sample, session): image names}, all splits: the sessions the run held out (its
    config.json ``data.held_out_sessions``, as in the paper: each model tested on the session it was
    trained without) or, for a run that records none, every session it never saw."""
    unnumbered = [f"{s}/{p.name}" for s, pairs in by_sample.items() for p in pairs if p.session is None]
    if unnumbered:
        messages.append(
            f"no session number in the name (like sess2_im5), left out of the cross-validation: {', '.join(unnumbered)}"
        )
    present = sorted({p.session for pairs in by_sample.values() for p in pairs if p.session is not None})
    plan = {}
    for key, path in keys.items():
        held = held_out_sessions(path)
        if held is not None:
            scored = set(held)
        else:
            seen = seen_sessions(path)
            scored = set(present) - seen
            messages.append(
                f"{key} records no held-out session (trained without --hold-out): scored on the "
                f"sessions it never saw: {', '.join(map(str, sorted(scored))) or 'none'}"
            )
        folds: dict[tuple[str, int], list[str]] = {}
        for sample, pairs in by_sample.items():
            for pair in pairs:
                if pair.session in scored:
                    folds.setdefault((sample, pair.session), []).append(pair.name)
        if not folds:
            data_sessions = ", ".join(map(str, present)) or "none"
            if held is not None:
                raise ValueError(
                    f"run {path} held out sessions {', '.join(map(str, held))}, but the data holds "
                    f"sessions {data_sessions}: nothing to score it on (pass the sample's folder)"
                )
            raise ValueError(
                f"run {path} saw sessions {', '.join(map(str, sorted(seen - {None}))) or 'none'} and the data holds "
                f"sessions {data_sessions}: none is held out (train it with --hold-out SESSION)"
            )
        plan[key] = dict(sorted(folds.items()))
    return plan


def _restore_groups(keys: dict[str, Path], images: list[EvalImage], plan) -> list[tuple[str, list[EvalImage]]]:
    """(run key, images of one sample) to restore: one group per sample, so that batch-norm adaptation
    adapts to one sample type at a time; with a plan, only each run's held-out images."""
    groups = []
    for key in keys:
        for sample in dict.fromkeys(im.sample for im in images):
            group = [
                im
                for im in images
                if im.sample == sample and (plan is None or im.name in plan[key].get((sample, im.pair.session), ()))
            ]
            if group:
                groups.append((key, group))
    return groups


def _pool(parts: list[dict[str, MethodScores]], method_keys: list[str]) -> dict[str, MethodScores]:
    """Tiles of several images or folds pooled per method, for the methods scored on any of them."""
    return {k: MethodScores.concat([p[k] for p in parts if k in p]) for k in method_keys if any(k in p for p in parts)}


def _pool_by_sample(evaluation: Evaluation, images: list[EvalImage], scores: dict, method_keys: list[str]) -> None:
    for sample in dict.fromkeys(im.sample for im in images):
        methods = _pool([scores[(im.sample, im.name)] for im in images if im.sample == sample], method_keys)
        evaluation.samples[sample] = {"tiles": methods[INPUT].tiles, "methods": methods}
    evaluation.methods = _pool([s["methods"] for s in evaluation.samples.values()], method_keys)
    evaluation.tiles = evaluation.methods[INPUT].tiles


def _pool_folds(evaluation: Evaluation, plan: dict, by_id: dict, scores: dict, method_keys: list[str]) -> None:
    for key, folds in plan.items():
        for (sample, session), names in folds.items():
            scored = [scores[(sample, n)] for n in names if (sample, n) in by_id]
            if not scored:
                evaluation.messages.append(f"{key}: no evaluation tile in {sample} session {session}; no fold")
                continue
            keys = [k for k in method_keys if k not in plan or k == key]  # the input, baselines and this run
            methods = _pool(scored, keys)
            evaluation.folds.append(Fold(key, sample, session, methods[INPUT].tiles, methods))
    if not evaluation.folds:
        raise ValueError("no held-out session has an evaluation tile; evaluate with a smaller score_tile")
    for sample in dict.fromkeys(f.sample for f in evaluation.folds):
        methods = _pool([f.methods for f in evaluation.folds if f.sample == sample], method_keys)
        evaluation.samples[sample] = {"tiles": methods[INPUT].tiles, "methods": methods}
    evaluation.methods = _pool([f.methods for f in evaluation.folds], method_keys)
    evaluation.tiles = evaluation.methods[INPUT].tiles
