"""The small sample pairs shipped in ``sample_data/`` and shown by napari's File > Open Sample."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from napari_temdeblur.core import drain

from ._config import SimulationConfig
from ._experiment import simulate

_CHECKOUT = Path(__file__).resolve().parents[4]  # src/napari_temdeblur/core/simulate/<this file>
#: Repository folder holding the shipped samples. Only a source checkout (editable install) has it;
#: elsewhere it is None and samples are simulated.
SAMPLE_DATA_DIR: Path | None = _CHECKOUT / "sample_data" if (_CHECKOUT / "pyproject.toml").is_file() else None
SAMPLE_SEED = 7


def sample_config() -> SimulationConfig:
    """The demo acquisition cut to one session of two HQ images: a few pairs, simulated in about a second."""
    return dataclasses.replace(SimulationConfig.demo(), sessions=1, hq_per_session=2)


def write_samples(out: Path, specimens: tuple[str, ...] = ("kidney", "grid")) -> Path:
    """Simulate the samples into `out` (published dataset layout, one folder per sample); returns `out`.

    ``python -c "from napari_temdeblur.core.simulate import *; write_samples(SAMPLE_DATA_DIR)"``
    regenerates the shipped files.
    """
    drain(simulate(out, sample_config(), specimens, layout="dataset", seed=SAMPLE_SEED, overwrite=True))
    return out
