"""Restoration: a trained run applied to registered bursts or raw stream positions, in blended tiles,
optionally after batch-norm adaptation (docs/restoration.md). One options object, ``RestoreOptions``."""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submod_attrs={
        '_apply': ['ImageRestored', 'InputSkipped', 'Restored', 'restore', 'restore_each', 'to_counts'],
        '_batchnorm': ['adapt_batchnorm', 'adapt_batchnorm_steps'],
        '_stream': ['frame_name', 'restore_stream', 'restore_stream_each'],
        '_tiling': ['TileProgress', 'restore_burst', 'tile_layout'],
    },
)
