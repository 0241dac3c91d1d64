"""Restoration: a trained run applied to registered bursts or raw stream positions, in blended tiles,
optionally after batch-norm adaptation (docs/restoration.md). One options object, ``RestoreOptions``."""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submod_attrs={
        "_apply": ["ImageRestored", "InputSkipped", "Restored", "collect_restored", "restore", "to_counts"],
        "_batchnorm": ["adapt_batchnorm"],
        "_live": ["live"],
        "_live_events": ["FrameArrived", "LiveRate", "LiveResult", "LiveRestored", "MosaicWritten"],
        "_mosaic": ["MosaicResult", "mosaic", "mosaic_positions"],
        "_parts": ["PositionRestored"],
        "_options": ["LiveOptions", "RestoreOptions"],
        "_stream": ["frame_name", "restore_position", "restore_stream"],
        "_tiling": ["TileProgress", "restore_burst", "tile_layout"],
    },
)
