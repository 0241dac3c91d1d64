"""Training presets: starting points that fit the device, offered by ``temdeblur train`` and the dock.

A preset names a model and the :class:`TrainConfig` values that suit where it runs; every value can be
changed afterwards (a flag, a field of the dock). ``temdeblur train DATA --out RUN`` with no other flag
takes ``quick`` on a CPU and ``thorough`` on a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from napari_temdeblur.core.models import DEFAULT_MODEL, ModelConfig

from ._config import TrainConfig


@dataclass(frozen=True)
class Preset:
    """A model and training values for one situation.

    Attributes
    ----------
    name : str
    summary : str
        One line for ``--help`` and the dock.
    model : str
        Model name.
    width : {"full", "tiny"}
        The model's widths (:meth:`ModelConfig.full` / :meth:`ModelConfig.tiny`).
    values : dict
        :class:`TrainConfig` fields (besides ``model``) that differ from its defaults.
    """

    name: str
    summary: str
    model: str
    width: str = "full"
    values: dict = field(default_factory=dict)

    def model_config(self, name: str | None = None, width: str | None = None) -> ModelConfig:
        """The preset's model, or model `name`, at the preset's or the given width ("full"/"tiny")."""
        factory = ModelConfig.tiny if (width or self.width) == "tiny" else ModelConfig.full
        return factory(name or self.model)

    def config(self, model: ModelConfig | None = None, **values) -> TrainConfig:
        """The :class:`TrainConfig` of this preset, with `model` and `values` instead of its own."""
        return TrainConfig(model=model or self.model_config(), **{**self.values, **values})

    def describe(self) -> str:
        """What the preset chose, in one line (printed before training)."""
        cfg = self.config()
        stop = [
            f"{cfg.time_limit_s / 60:g} min" if cfg.time_limit_s else None,
            f"{cfg.patience} epochs without a better val SSIM" if cfg.patience else None,
        ]
        stop = " or ".join(s for s in stop if s) or f"{cfg.epochs} epochs"
        steps = f"{cfg.steps_per_epoch} steps" if cfg.steps_per_epoch else "one crop per training image"
        return (
            f"{self.name} ({self.summary}): {cfg.model.name}, {cfg.patch} px crops, batch {cfg.batch}, "
            f"{steps} per epoch, until {stop}"
        )


#: The presets by name: minutes on a laptop CPU, hours on a GPU, the paper's recipe.
PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset(
            "quick",
            "CPU, minutes",
            DEFAULT_MODEL,
            values={
                "epochs": 100_000,
                "steps_per_epoch": 20,
                "patch": 64,
                "batch": 8,
                "time_limit_s": 300.0,
                "patience": 40,
            },
        ),
        Preset(
            "thorough",
            "GPU, hours",
            DEFAULT_MODEL,
            values={
                "epochs": 100_000,
                "steps_per_epoch": 200,
                "patch": 128,
                "batch": 16,
                "time_limit_s": 4 * 3600.0,
                "patience": 50,
            },
        ),
        Preset("paper", "the published recipe", "bdu-uc-ssim", values={"epochs": 2000, "patch": 128, "batch": 8}),
    )
}


def preset_for_device(device: str) -> Preset:
    """``thorough`` where training runs on a GPU (``device`` cuda..., or auto with CUDA), else ``quick``."""
    from napari_temdeblur.core import resolve_device  # imports torch: only when a device is to be chosen

    return PRESETS["thorough" if resolve_device(device).type == "cuda" else "quick"]
