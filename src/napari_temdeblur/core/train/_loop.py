"""The training loop: a generator of progress events that returns a :class:`TrainResult`."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from napari_temdeblur.core import (
    DataError,
    Progress,
    describe_device,
    first_line,
    out_of_memory,
    resolve_device,
)
from napari_temdeblur.core.imaging import tile_scores
from napari_temdeblur.core.io import folder_lock
from napari_temdeblur.core.models import (
    BEST,
    LAST,
    PRETRAINED,
    checkpoint_path,
    count_parameters,
    frames_required,
    load_checkpoint,
    load_model,
    load_weights,
    pretrained_checkpoint,
    save_checkpoint,
)
from napari_temdeblur.core.restore import CalibrateOptions, RestoreOptions, calibrate_with, write_calibration

from ._config import SCRATCH, TrainConfig
from ._data import CropSampler, TrainingData, ValidationTiles, check_frame_counts
from ._events import STOP, BatchDone, EpochDone, TrainResult, TrainStarted
from ._rng import TorchRandomState
from ._run_folder import (
    best_of,
    check_out_folder,
    check_resumable,
    model_words,
    write_config,
    write_history,
)
from ._steps import SupervisedTrainer, make_trainer

#: Validation runs without gradients, so it fits several times the training batch (fewer, faster calls).
VAL_BATCH_FACTOR = 4


class DeviceOutOfMemory(ValueError):
    """The device ran out of memory; the message says what to reduce."""


@contextmanager
def _memory_hint(cfg: TrainConfig, device: torch.device) -> Iterator[None]:
    """Turn the device's out-of-memory errors (CUDA, MPS, CPU allocator) into DeviceOutOfMemory."""
    try:
        yield
    except RuntimeError as exc:  # torch.OutOfMemoryError is a RuntimeError too
        if not out_of_memory(exc):
            raise
        if device.type == "cuda":
            torch.cuda.empty_cache()
        raise DeviceOutOfMemory(
            f"out of memory on {device} training {cfg.model.name} (width {cfg.model.width}) with batch "
            f"{cfg.batch} of {cfg.patch} x {cfg.patch} px crops: try a smaller batch or patch size, a smaller "
            f"width, or the CPU ({first_line(exc)})"
        ) from None


def _validate(
    trainer: SupervisedTrainer, val: ValidationTiles, bursts: list[np.ndarray], device: torch.device, batch: int
) -> tuple[float, float]:
    """Mean SSIM and PSNR over all validation tiles of the network's restoration (clipped to [0, 1])."""
    trainer.train_mode(False)
    ssims, psnrs = [], []
    with torch.no_grad():
        for index, tiles in enumerate(bursts):
            chunks = [
                trainer.model(torch.from_numpy(tiles[i : i + batch]).to(device)).clamp(0, 1)[:, 0].cpu().numpy()
                for i in range(0, len(tiles), batch)
            ]
            ssim, psnr = tile_scores(
                val.paste(index, np.concatenate(chunks)), val.gt[index], val.origins[index], val.size
            )
            ssims.append(ssim)
            psnrs.append(psnr)
    return float(np.concatenate(ssims).mean()), float(np.concatenate(psnrs).mean())


def _input_scores(val: ValidationTiles) -> tuple[float, float]:
    """Mean SSIM and PSNR of the unrestored centre frames on the validation tiles."""
    scores = [
        tile_scores(frame, gt, origins, val.size)
        for frame, gt, origins in zip(val.centre_frames(), val.gt, val.origins)
    ]
    return float(np.concatenate([s for s, _ in scores]).mean()), float(np.concatenate([p for _, p in scores]).mean())


def _time_left(cfg: TrainConfig, epoch: int, first: int, elapsed: float) -> float:
    """Seconds to the run's end at this call's mean epoch time: the last epoch or the time limit,
    whichever comes first (an early stop, unforeseeable, may come sooner)."""
    by_epochs = (cfg.epochs - epoch) * elapsed / (epoch - first + 1)
    return by_epochs if cfg.time_limit_s is None else max(0.0, min(by_epochs, cfg.time_limit_s - elapsed))


def _start_from(model: torch.nn.Module, cfg: TrainConfig) -> None:
    """Load the weights `cfg.init` names (the model's shipped weights, or a run / checkpoint of the same
    model and widths) into a fresh network."""
    path = pretrained_checkpoint(cfg.model.name) if cfg.init == PRETRAINED else checkpoint_path(cfg.init)
    start = load_checkpoint(path)
    if start.model != cfg.model:
        found, wanted = model_words(start.model, cfg.model)
        raise DataError(
            path, f"holds {found}, not the {wanted} to train: start from a run of the same model (or --init scratch)"
        )
    load_weights(model, start)


def train(
    cfg: TrainConfig, data: TrainingData, out: str | Path, resume: bool = False
) -> Generator[Progress, object, TrainResult]:
    """Train `cfg.model` on `data`, saving the run in `out`.

    Each epoch is ``steps_per_epoch`` optimiser steps on random crops (see :class:`TrainConfig`), then
    a validation pass over the fixed validation tiles. After every epoch best.pt (when the val SSIM
    improved), last.pt (weights, optimiser, scheduler, random states, history) and history.csv are
    written atomically, in that order, so a crash or cancel at any moment leaves valid files and
    ``resume=True`` continues exactly where last.pt was written. On the CPU, a fixed seed gives the
    same history on every run; GPU kernels are not all bit-reproducible.

    Parameters
    ----------
    cfg : TrainConfig
    data : TrainingData
    out : str or Path
        Run folder. Must not hold a run unless `resume`.
    resume : bool
        Continue the run in `out` from its last.pt, up to ``cfg.epochs`` epochs in total (the
        intensity windows of the run are kept; model and frames must match).

    When the run ends (not cancelled) with a best.pt, its trust intervals are calibrated on the Val
    pairs (:func:`~napari_temdeblur.core.restore.calibrate_with`) into the run's calibration.json.

    Yields
    ------
    TrainStarted, then BatchDone per step and EpochDone per epoch; the calibration's progress last.
        Sending :data:`STOP` into the generator ends the run after the current step (the epoch in
        progress is discarded) and returns the result; closing it (GeneratorExit) also leaves the
        saved files valid.

    Returns
    -------
    TrainResult

    Raises
    ------
    DataError
        `out` holds another run (and not `resume`), or last.pt cannot be resumed; FolderInUse when
        another process trains in `out` (the folder is locked from the first event to the end).
    ValueError
        Data too small for the patch or validation tile, unknown device, `resume` with no epoch left
        to train (nothing is written then), or (DeviceOutOfMemory) the device ran out of memory.
    """
    with folder_lock(out, "training"):
        result = yield from _train(cfg, data, Path(out), resume)
        if result.stopped_reason != "cancelled" and result.best_epoch is not None:
            result.calibration, result.calibration_message = yield from _calibrate(cfg, data, Path(out))
        return result


def _calibrate(cfg: TrainConfig, data: TrainingData, out: Path) -> Generator[Progress, object, tuple]:
    """Calibrate best.pt's trust intervals on the Val pairs and write calibration.json (docs/trust.md);
    (Calibration or None, why not). :data:`STOP` sent meanwhile skips it."""
    model, checkpoint = load_model(out / BEST, resolve_device(cfg.device))
    options = CalibrateOptions(restore=RestoreOptions(device=cfg.device))
    work = calibrate_with(model, checkpoint, data.val, options, data=data.sources)
    try:
        event = next(work)
        while True:
            if (yield event) == STOP:
                work.close()
                return None, f"not calibrated (stopped); calibrate with: temdeblur calibrate {out} DATA"
            event = next(work)
    except StopIteration as stop:
        write_calibration(checkpoint.path, stop.value)
        return stop.value, None
    except ValueError as exc:  # e.g. too few sample pixels in tiny Val images: the run itself is fine
        return None, f"not calibrated ({exc}); calibrate with: temdeblur calibrate {out} DATA"


def _train(cfg: TrainConfig, data: TrainingData, out: Path, resume: bool) -> Generator[Progress, object, TrainResult]:
    """:func:`train` with its run folder locked."""
    resumed = check_out_folder(out, resume)
    if resumed is not None:
        check_resumable(cfg, resumed)
        data = dataclasses.replace(data, gt_window=resumed.gt_window, low_window=resumed.low_window)
    device = resolve_device(cfg.device)
    sampler = CropSampler(data, cfg.patch, cfg.frame_range, ordered=frames_required(cfg.model) is not None)
    check_frame_counts(data.val, cfg.frame_range[1], "validation")
    val = ValidationTiles.from_data(data, cfg.val_tile)
    val_bursts = val.bursts(cfg.frame_range[1])
    steps = cfg.steps_per_epoch or math.ceil(len(data.train) / cfg.batch)
    input_val = _input_scores(val)

    torch_rng = TorchRandomState(cfg.seed, device)
    rng = np.random.default_rng(cfg.seed)
    deterministic = device.type == "cpu"
    with torch_rng.active(deterministic):
        trainer = make_trainer(cfg, device, pretrained=resumed is None)
    history: list[dict] = []
    if resumed is None and cfg.init != SCRATCH:
        _start_from(trainer.model, cfg)
    if resumed is not None:
        trainer.model.load_state_dict(resumed.state_dict)
        trainer.load_state_dict(resumed.training["trainer"])
        torch_rng.load_state_dict(resumed.training["torch_rng"])
        rng.bit_generator.state = resumed.training["numpy_rng"]
        history = list(resumed.training["history"])
    write_config(out, cfg, data, steps_per_epoch=steps, device=str(device), val_tiles=val.count, input_val=input_val)

    def save(epoch: int, val_ssim: float, is_best: bool) -> None:
        common = dict(
            model=cfg.model,
            state_dict=trainer.model.state_dict(),
            epoch=epoch,
            gt_window=data.gt_window,
            low_window=data.low_window,
            frames=cfg.frame_range,
        )
        if is_best:
            save_checkpoint(out / BEST, val_ssim=val_ssim, **common)
        training = {
            "trainer": trainer.state_dict(),
            "torch_rng": torch_rng.state_dict(),
            "numpy_rng": rng.bit_generator.state,
            "history": history,
            "config": cfg.to_dict(),
        }
        save_checkpoint(out / LAST, val_ssim=val_ssim, training=training, **common)
        write_history(out, history)

    def result(reason: str) -> TrainResult:
        best_epoch, best_ssim = best_of(history)
        best_psnr = next((row["val_psnr"] for row in history if row["epoch"] == best_epoch), math.nan)
        return TrainResult(out, best_epoch, best_ssim, input_val[0], reason, list(history), best_psnr, input_val[1])

    first = len(history) + 1
    stage = f"train {cfg.model.name}"
    command = yield TrainStarted(
        stage,
        first - 1,
        cfg.epochs,
        f"on {describe_device(device)}",
        device=describe_device(device),
        parameters=count_parameters(trainer.model),
        steps_per_epoch=steps,
        train_images=len(sampler.images),
        val_tiles=val.count,
        input_val_ssim=input_val[0],
        input_val_psnr=input_val[1],
    )
    if command == STOP:
        return result("cancelled")
    started = time.monotonic()
    for epoch in range(first, cfg.epochs + 1):
        epoch_start, losses, reason = time.monotonic(), [], None
        trainer.train_mode(True)
        for step in range(1, steps + 1):
            inputs, targets = sampler.batch(rng, cfg.batch)
            with _memory_hint(cfg, device), torch_rng.active(deterministic):
                loss = trainer.step(torch.from_numpy(inputs).to(device), torch.from_numpy(targets).to(device))
            losses.append(loss)
            command = yield BatchDone(f"epoch {epoch}", step, steps, epoch=epoch, step=step, loss=loss)
            if command == STOP:
                return result("cancelled")
            if cfg.time_limit_s is not None and time.monotonic() - started >= cfg.time_limit_s:
                reason = "time-limit"
                break
        lr = trainer.lr
        trainer.end_epoch()
        with _memory_hint(cfg, device):
            val_ssim, val_psnr = _validate(trainer, val, val_bursts, device, VAL_BATCH_FACTOR * cfg.batch)
        previous_best = best_of(history)[1]
        is_best = not history or val_ssim > previous_best
        history.append(
            {
                "epoch": epoch,
                "train_loss": float(np.mean(losses)),
                "val_ssim": val_ssim,
                "val_psnr": val_psnr,
                "seconds": time.monotonic() - epoch_start,
            }
        )
        save(epoch, val_ssim, is_best)
        best_epoch = best_of(history)[0]
        command = yield EpochDone(
            stage,
            epoch,
            cfg.epochs,
            f"val SSIM {val_ssim:.4f}",
            epoch=epoch,
            train_loss=history[-1]["train_loss"],
            val_ssim=val_ssim,
            val_psnr=val_psnr,
            seconds=history[-1]["seconds"],
            is_best=is_best,
            best_epoch=best_epoch,
            lr=lr,
            seconds_left=_time_left(cfg, epoch, first, time.monotonic() - started),
        )
        if command == STOP:
            return result("cancelled")
        if reason is not None:
            return result(reason)
        if cfg.patience is not None and epoch - best_epoch >= cfg.patience:
            return result("early-stop")
    return result("done")
