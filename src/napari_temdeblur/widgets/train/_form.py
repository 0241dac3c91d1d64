"""The training dock's settings: controls -> ModelConfig / TrainConfig, with a precise error per bad value."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, LineEdit, SpinBox

from napari_temdeblur.core import available_devices
from napari_temdeblur.core.models import (
    MODEL_NAMES,
    ModelConfig,
    frames_required,
    size_multiple,
)
from napari_temdeblur.core.train import TrainConfig, default_frames, parse_frames

_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
#: The paper's best model (BDU+UC+SSIM) is offered first.
DEFAULT_MODEL = "bdu-uc-ssim"
#: Steps-per-epoch value shown as "auto": one crop per training image per epoch (TrainConfig's None).
AUTO_STEPS = 0


class SettingsForm:
    """Model and training settings; each control is an attribute whose ``.value`` tests may set.

    Attributes
    ----------
    container : magicgui.widgets.Container
        All the controls, labelled, for the dock's layout.
    """

    def __init__(self):
        self.model = ComboBox(label="model", choices=MODEL_NAMES, value=DEFAULT_MODEL)
        self.width = LineEdit(label="width", value="full", tooltip="tiny, full (the paper's widths) or a number")
        self.epochs = SpinBox(label="epochs", min=1, max=1_000_000, value=_DEFAULTS["epochs"])
        self.steps = SpinBox(
            label="steps per epoch",
            min=AUTO_STEPS,
            max=1_000_000,
            value=AUTO_STEPS,
            tooltip="optimiser steps per epoch; auto: one crop per training image",
        )
        self.steps.native.setSpecialValueText("auto")
        self.patch = SpinBox(
            label="patch", min=16, max=1024, step=16, value=_DEFAULTS["patch"], tooltip="training crop side, px"
        )
        self.batch = SpinBox(label="batch", min=1, max=1024, value=_DEFAULTS["batch"])
        self.frames = LineEdit(
            label="frames",
            value=str(default_frames(ModelConfig(DEFAULT_MODEL))),
            tooltip="frames per burst: a count, or a range such as 3-5 drawn per batch",
        )
        self.lr = LineEdit(label="learning rate", value="", tooltip="blank: the paper's recipe for the model")
        self.val_tile = SpinBox(
            label="val tile",
            min=16,
            max=1024,
            step=16,
            value=_DEFAULTS["val_tile"],
            tooltip="validation tile side, px (the paper's 128)",
        )
        self.device = ComboBox(label="device", choices=available_devices(), value="auto")
        self.out = FileEdit(label="output folder", mode="d", nullable=True)
        self.resume = CheckBox(text="resume from last.pt in the output folder")
        self.container = Container(
            widgets=[
                self.model,
                self.width,
                self.epochs,
                self.steps,
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
        self.model.changed.connect(self._fit_model)
        self._fit_model()

    def _fit_model(self) -> None:
        """deblurgan takes exactly 3 frames; crops must be multiples of the model's size multiple."""
        cfg = ModelConfig.full(self.model.value)
        required = frames_required(cfg)
        if required is not None:
            self.frames.value = str(required)
        self.frames.enabled = required is None
        self.patch.step = self.val_tile.step = size_multiple(cfg)

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
            raise ValueError(f"learning rate must be a number or blank (the paper's recipe), got '{text}'") from None
        steps = self.steps.value
        return TrainConfig(
            model=self.model_config(),
            epochs=self.epochs.value,
            steps_per_epoch=None if steps == AUTO_STEPS else steps,
            patch=self.patch.value,
            batch=self.batch.value,
            frames=parse_frames(self.frames.value),
            lr=lr,
            device=self.device.value,
            val_tile=self.val_tile.value,
        )

    def output_folder(self) -> Path:
        """The run folder; a ValueError when none is chosen."""
        out = self.out.value
        if out is None or not str(out).strip():
            raise ValueError("choose an output folder for the run (best.pt, last.pt, history.csv go there)")
        return Path(out)
