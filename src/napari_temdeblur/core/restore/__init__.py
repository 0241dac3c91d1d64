"""Restoration: apply a trained run to registered bursts or raw streams, images of any size.

* :func:`restore_burst` (:mod:`.tiling`) runs a network over a burst in overlapping tiles, blends them
  with a smooth weight and returns one image, so memory stays bounded for any image size;
  :func:`restore_burst_steps` is the same as a generator with a :class:`TileProgress` per batch of tiles.
* :func:`adapt_batchnorm` (:mod:`.batchnorm`) is the paper's batch-norm statistics adaptation.
* :func:`restore` (:mod:`.apply`) drives both for a run folder and a list of bursts, as a progress
  generator returning :class:`Restored` images; :func:`restore_each` hands each over as it is done.
* :func:`restore_stream` (:mod:`.stream`) does it for positions of a raw session stream, registering
  each position's frames on the fly.
"""

from .apply import (
    ImageRestored,
    InputSkipped,
    Restored,
    collect_restored,
    restore,
    restore_each,
    to_counts,
)
from .batchnorm import adapt_batchnorm, adapt_batchnorm_steps
from .stream import frame_name, restore_stream, restore_stream_each
from .tiling import TileProgress, restore_burst, restore_burst_steps

__all__ = [
    "ImageRestored", "InputSkipped", "Restored", "TileProgress", "adapt_batchnorm", "adapt_batchnorm_steps",
    "collect_restored", "frame_name", "restore", "restore_burst", "restore_burst_steps", "restore_each",
    "restore_stream", "restore_stream_each", "to_counts",
]
