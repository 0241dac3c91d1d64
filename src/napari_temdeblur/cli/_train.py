"""``temdeblur train``: train a network on registered datasets, with a progress display.

Torch-based modules are imported inside the command, so ``temdeblur --help`` and the other
subcommands start without loading torch.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
import sys

from napari_temdeblur.core import time_left
from napari_temdeblur.core.models import MODEL_NAMES, MODELS
from napari_temdeblur.core.train import PRESETS, Preset, TrainConfig, preset_for_device

from ._options import add_options


def add_parser(sub) -> argparse.ArgumentParser:
    """Register the ``train`` subcommand on an ``add_subparsers`` object."""
    p = sub.add_parser(
        "train",
        help="train a restoration network on registered datasets",
        description="Train a network on the Train split of DATA, choosing the best epoch on its Val split. "
        "One epoch is --steps-per-epoch optimiser steps followed by validation. With no other option, "
        "the preset that fits the device: "
        + "; ".join(f"{p.describe()}" for p in PRESETS.values())
        + ". Every option overrides its preset's value. Ctrl-C stops and keeps the best checkpoint.",
    )
    p.add_argument("data", nargs="+", metavar="DATA", help="dataset folder(s) in the published layout")
    p.add_argument("--out", required=True, help="run folder (best.pt, last.pt, config.json, history.csv)")
    p.add_argument(
        "--preset",
        choices=tuple(PRESETS),
        help="starting values: quick (CPU, minutes), thorough (GPU, hours), paper (the published recipe); "
        "default: quick on a CPU, thorough on a GPU",
    )
    p.add_argument(
        "--model",
        choices=MODEL_NAMES,
        metavar="MODEL",
        help="network (default: the preset's, fast-burst but for paper): "
        + "; ".join(f"{s.name} ({s.summary})" for s in MODELS.values()),
    )
    p.add_argument(
        "--width",
        choices=("full", "tiny"),
        help="full: the published network widths (default); tiny: a very small network for quick checks",
    )
    add_options(p, TrainConfig, default_from="the preset's")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last.pt")
    p.add_argument(
        "--hold-out",
        type=_sessions,
        default=(),
        metavar="SESSIONS",
        help="leave these acquisition sessions out of training and validation, e.g. sess2 or 2,3 "
        "(for temdeblur evaluate --cross-validation)",
    )
    p.set_defaults(func=cmd_train, memory_flags=("--patch", "--batch"))
    return p


def training_config(args: argparse.Namespace) -> tuple[TrainConfig, Preset]:
    """The configuration the arguments describe: the preset's values, then every option given."""
    preset = PRESETS[args.preset] if args.preset else preset_for_device(getattr(args, "device", "auto"))
    # `model` is given as a name (and --width), the other fields as they are
    given = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(TrainConfig)
        if f.name != "model" and hasattr(args, f.name)
    }
    return preset.config(model=preset.model_config(args.model, args.width), **given), preset


def _sessions(text: str) -> tuple[int, ...]:
    """'sess2,sess3' or '2,3' -> (2, 3), for --hold-out."""
    sessions = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        match = re.fullmatch(r"(?:sess(?:ion)?[_-]?)?(\d+)", item, re.IGNORECASE)
        if match is None:
            raise argparse.ArgumentTypeError(f"{item!r} is not a session (write sess2 or 2)")
        sessions.append(int(match.group(1)))
    if not sessions:
        raise argparse.ArgumentTypeError(f"no session in {text!r} (write e.g. sess2,sess3 or 2,3)")
    return tuple(sessions)


class _Display:
    """Prints training events: the device first, a batch line on terminals, one line per epoch."""

    def __init__(self, cfg: TrainConfig, stream=None):
        self.stream = stream or sys.stdout
        self.cfg, self.live = cfg, self.stream.isatty()
        self.best: tuple[int, float] | None = None

    def __call__(self, event) -> None:
        from napari_temdeblur.core.train import BatchDone, EpochDone, TrainStarted

        if isinstance(event, TrainStarted):
            self.line(
                f"training {self.cfg.model.name} ({event.parameters:,} parameters, from {self.cfg.init}) on "
                f"{event.device}\n"
                f"  {event.train_images} training images, one epoch = {event.steps_per_epoch} steps; "
                f"{event.val_tiles} validation tiles\n"
                f"  input (centre frame) val SSIM {event.input_val_ssim:.4f}, PSNR {event.input_val_psnr:.2f} dB"
                + (f"\n  resuming after epoch {event.done}" if event.done else "")
            )
        elif isinstance(event, BatchDone) and self.live:
            print(
                f"\r  epoch {event.epoch} step {event.step}/{event.total} loss {event.loss:.4f}",
                end="",
                file=self.stream,
                flush=True,
            )
        elif isinstance(event, EpochDone):
            if event.is_best:
                self.best = (event.epoch, event.val_ssim)
            width = len(str(event.total))
            self.line(
                f"epoch {event.epoch:>{width}}/{event.total}  loss {event.train_loss:.4f}  val SSIM "
                f"{event.val_ssim:.4f}  PSNR {event.val_psnr:5.2f} dB  {event.seconds:6.1f} s/epoch  "
                f"{time_left(event.seconds_left)}" + ("  * best" if event.is_best else "")
            )

    def line(self, text: str) -> None:
        # \r + clear-to-end-of-line wipes a batch line still on screen
        print(("\r\033[K" if self.live else "") + text, file=self.stream, flush=True)


def cmd_train(args: argparse.Namespace) -> int:
    from napari_temdeblur.core.train import TrainingData, train

    cfg, preset = training_config(args)
    print(f"preset {preset.describe()}" + ("" if args.preset else " (fits the device; choose with --preset)"))
    preset_values = preset.config().to_dict()
    changed = [f"{k} {v}" for k, v in cfg.to_dict().items() if k != "model" and v != preset_values[k]]
    if cfg.model != preset.model_config():
        changed.insert(0, f"model {cfg.model.name} (width {cfg.model.width})")
    if changed:
        print(f"  changed: {', '.join(changed)}")
    data = TrainingData.from_folders(args.data, hold_out_sessions=args.hold_out)
    for message in data.skipped:
        print(f"  skipped: {message}")
    display = _Display(cfg)
    work = train(cfg, data, args.out, resume=args.resume)
    try:
        while True:
            display(next(work))
    except StopIteration as stop:
        result = stop.value
    except KeyboardInterrupt:
        work.close()
        display.line("interrupted")
        if display.best is None:
            print("no epoch finished; nothing new was saved")
        else:
            print(
                f"best epoch {display.best[0]} (val SSIM {display.best[1]:.4f}) kept in {args.out}/best.pt; "
                f"continue with --resume"
            )
        return 130
    if result.best_epoch is None:
        print(f"stopped ({result.stopped_reason}) before an epoch finished; nothing was saved")
        return 0
    verdict = "beats" if result.best_val_ssim > result.input_val_ssim else "does NOT beat"
    print(
        f"{result.stopped_reason}: best epoch {result.best_epoch}, val SSIM {result.best_val_ssim:.4f} "
        f"({verdict} the input's {result.input_val_ssim:.4f})"
    )
    if result.psnr_below_input:
        print(
            f"note: that epoch's val PSNR {result.best_val_psnr:.2f} dB is below the input's "
            f"{result.input_val_psnr:.2f} dB: its structure is closer to the truth (SSIM) but its intensities "
            "are further off; train longer, or compare with evaluate before using it"
        )
    print(f"checkpoint: {result.out / 'best.pt'}")
    if result.calibration is not None:
        c = result.calibration
        print(
            f"trust intervals calibrated on {c.pixels:,} Val pixels ({c.nominal_coverage:.0%} coverage): "
            f"{result.out / 'calibration.json'}"
        )
    elif result.calibration_message:
        print(f"note: {result.calibration_message}")
    if math.isnan(result.best_val_ssim):
        print("warning: the validation SSIM is not a number; the training diverged (try a smaller --lr)")
    return 0
