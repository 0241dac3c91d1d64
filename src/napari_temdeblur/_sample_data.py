"""npe2 sample data: small simulated kidney-like and calibration-grid bursts.

The files live in the repository's ``sample_data/`` folder (published dataset layout, written by
:func:`napari_temdeblur.core.simulate.write_samples`). Where that folder is absent (an install from a
wheel), the same pairs are simulated on the fly.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from napari_temdeblur.core.io import read_dataset
from napari_temdeblur.core.simulate import SAMPLE_DATA_DIR, SAMPLE_NAMES, write_samples
from napari_temdeblur.layers import dataset_layers


def _sample(specimen: str) -> list[tuple]:
    folder = None if SAMPLE_DATA_DIR is None else SAMPLE_DATA_DIR / SAMPLE_NAMES[specimen]
    if folder is not None and folder.is_dir():
        return dataset_layers(read_dataset(folder))
    with tempfile.TemporaryDirectory(prefix="temdeblur-sample-") as tmp:
        write_samples(Path(tmp), (specimen,))
        return dataset_layers(read_dataset(Path(tmp) / SAMPLE_NAMES[specimen]))


def kidney_sample() -> list[tuple]:
    """A simulated kidney-like tissue pair: GT and a registered 5-frame burst."""
    return _sample("kidney")


def grid_sample() -> list[tuple]:
    """A simulated calibration-grid pair: GT and a registered 5-frame burst."""
    return _sample("grid")
