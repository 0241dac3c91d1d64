"""The training dock's settings: a preset fills the controls, every control stays editable, and the
controls give a ModelConfig / TrainConfig with a precise error per bad value."""

from __future__ import annotations

from pathlib import Path

from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, LineEdit, SpinBox

from napari_temdeblur.core import available_devices
from napari_temdeblur.core.models import (
    MODEL_NAMES,
    PRETRAINED,
    ModelConfig,
    frames_required,
    has_pretrained,
    size_multiple,
)
from napari_temdeblur.core.train import (
    PRESETS,
    SCRATCH,
    TrainConfig,
    default_frames,
    parse_frames,
    preset_for_device,
)


def _optional(label: str, word: str, tooltip: str) -> LineEdit:
    """A field for a number or `word` (a None of TrainConfig: "auto" steps, "none" for no limit)."""
    return LineEdit(label=label, value=word, tooltip=f"{tooltip}; {word}: leave it to the preset")


def _number(control: LineEdit, word: str, kind: type, what: str):
    """The number typed in `control`, or None for its `word`; a ValueError naming the field otherwise."""
    text = control.value.strip().lower()
    if text in (word, ""):
        return None
    try:
        value = kind(text)
    except ValueError:
        raise ValueError(f"{what} must be a number or {word}, got '{control.value}'") from None
    if not value > 0:
        raise ValueError(f"{what} must be positive or {word}, got '{control.value}'")
    return value


class SettingsForm:
    """Model and training settings; each control is an attribute whose ``.value`` tests may set.

    Attributes
    ----------
    container : magicgui.widgets.Container
        All the controls, labelled, for the dock's layout.
    """

    def __init__(self):
        start = preset_for_device("auto")
        self.preset = ComboBox(
            label="preset",
            choices=[(f"{p.name}: {p.summary}", p.name) for p in PRESETS.values()],
            value=start.name,
            tooltip="fills the settings below; each stays editable",
        )
        self.model = ComboBox(label="model", choices=MODEL_NAMES, value=start.model)
        self.width = LineEdit(label="width", value="full", tooltip="tiny, full (the paper's widths) or a number")
        self.init = LineEdit(
            label="start from",
            value=PRETRAINED,
            tooltip="pretrained (the model's shipped weights), scratch, or a run folder to fine-tune",
        )
        self.epochs = SpinBox(label="epochs", min=1, max=1_000_000)
        self.steps = _optional("steps per epoch", "auto", "optimiser steps per epoch (auto: one crop per image)")
        self.time_limit = _optional("time limit (min)", "none", "stop after this many minutes")
        self.patience = _optional("patience", "none", "stop after this many epochs without a better val SSIM")
        self.patch = SpinBox(label="patch", min=16, max=1024, step=16, tooltip="training crop side, px")
        self.batch = SpinBox(label="batch", min=1, max=1024)
        self.frames = LineEdit(
            label="frames", tooltip="frames per burst: a count, or a range such as 3-5 drawn per batch"
        )
        self.lr = LineEdit(label="learning rate", value="", tooltip="blank: the model's recipe")
        self.val_tile = SpinBox(
            label="val tile", min=16, max=1024, step=16, tooltip="validation tile side, px (the paper's 128)"
        )
        self.device = ComboBox(label="device", choices=available_devices(), value="auto")
        self.out = FileEdit(label="output folder", mode="d", nullable=True)
        self.resume = CheckBox(text="resume from last.pt in the output folder")
        self.container = Container(
            widgets=[
                self.preset,
                self.model,
                self.width,
                self.init,
                self.epochs,
                self.steps,
                self.time_limit,
                self.patience,
                self.patch,
                self.batch,
                self.frames,
                self.lr,
                self.val_tile,
                self.device,
                self.out,
                self.resume,
            ]
        )
        self.preset.changed.connect(self.apply_preset)
        self.model.changed.connect(self._fit_model)
        self.apply_preset()

    def apply_preset(self) -> None:
        """Fill the controls from the chosen preset (device and output folder stay)."""
        preset = PRESETS[self.preset.value]
        cfg = preset.config()
        self.model.value, self.width.value = cfg.model.name, preset.width
        self._fit_model()
        self.init.value = cfg.init
        self.epochs.value, self.patch.value, self.batch.value = cfg.epochs, cfg.patch, cfg.batch
        self.steps.value = str(cfg.steps_per_epoch or "auto")
        self.time_limit.value = f"{cfg.time_limit_s / 60:g}" if cfg.time_limit_s else "none"
        self.patience.value = str(cfg.patience or "none")
        self.val_tile.value, self.lr.value = cfg.val_tile, ""

    def _fit_model(self) -> None:
        """deblurgan takes exactly 3 frames; crops must be multiples of the model's size multiple."""
        cfg = ModelConfig.full(self.model.value)
        required = frames_required(cfg)
        self.frames.value = str(required or default_frames(cfg))
        self.frames.enabled = required is None
        self.patch.step = self.val_tile.step = size_multiple(cfg)
        if self.init.value in (PRETRAINED, SCRATCH):  # a run folder typed by the user stays
            self.init.value = PRETRAINED if has_pretrained(cfg.name) else SCRATCH

    def model_config(self) -> ModelConfig:
        """The chosen model at the width typed (``tiny``, ``full`` or a number)."""
        name, width = self.model.value, self.width.value.strip().lower()
        if width == "tiny":
            return ModelConfig.tiny(name)
        if width == "full":
            return ModelConfig.full(name)
        if not width.isdigit():
            raise ValueError(f"width must be tiny, full or a whole number, got '{self.width.value}'")
        return ModelConfig(name, width=int(width))

    def train_config(self) -> TrainConfig:
        """The TrainConfig the controls describe; a ValueError names a bad value."""
        text = self.lr.value.strip()
        try:
            lr = float(text) if text else None
        except ValueError:
            raise ValueError(f"learning rate must be a number or blank (the model's recipe), got '{text}'") from None
        minutes = _number(self.time_limit, "none", float, "time limit")
        return TrainConfig(
            model=self.model_config(),
            epochs=self.epochs.value,
            steps_per_epoch=_number(self.steps, "auto", int, "steps per epoch"),
            patch=self.patch.value,
            batch=self.batch.value,
            frames=parse_frames(self.frames.value),
            lr=lr,
            device=self.device.value,
            patience=_number(self.patience, "none", int, "patience"),
            time_limit_s=None if minutes is None else 60.0 * minutes,
            val_tile=self.val_tile.value,
            init=self.init.value.strip() or None,
        )

    def output_folder(self) -> Path:
        """The run folder; a ValueError when none is chosen."""
        out = self.out.value
        if out is None or not str(out).strip():
            raise ValueError("choose an output folder for the run (best.pt, last.pt, history.csv go there)")
        return Path(out)
