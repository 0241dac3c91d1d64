"""Restoration: apply a trained run to registered bursts of any size.

* :func:`restore_burst` (:mod:`.tiling`) runs a network over a burst in overlapping tiles, blends them
  with a smooth weight and returns one image, so memory stays bounded for any image size.
* :func:`adapt_batchnorm` (:mod:`.batchnorm`) is the paper's batch-norm statistics adaptation.
* :func:`restore` (:mod:`.apply`) drives both for a run folder and a list of bursts, as a progress
  generator returning :class:`Restored` images.
"""

from .apply import Restored, restore, to_counts
from .batchnorm import adapt_batchnorm
from .tiling import restore_burst

__all__ = ["Restored", "adapt_batchnorm", "restore", "restore_burst", "to_counts"]
