"""Restoration: a trained run applied to registered bursts or raw stream positions, in blended tiles,
optionally after batch-norm adaptation (docs/restoration.md), with per-pixel trust intervals calibrated
on images with truth (docs/trust.md). One options object, ``RestoreOptions`` (``CalibrateOptions`` for
calibrating)."""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submod_attrs={
        "_apply": [
            "ImageRestored",
            "InputSkipped",
            "Restored",
            "collect_restored",
            "restore",
            "restore_with",
            "to_counts",
        ],
        "_batchnorm": ["adapt_batchnorm"],
        "_calibrate": ["calibrate", "calibrate_with"],
        "_live": ["live"],
        "_live_events": ["FrameArrived", "LiveRate", "LiveResult", "LiveRestored", "MosaicWritten"],
        "_mosaic": ["MosaicResult", "mosaic", "mosaic_positions"],
        "_parts": ["PositionRestored"],
        "_options": ["CalibrateOptions", "LiveOptions", "RestoreOptions"],
        "_stream": ["frame_name", "restore_position", "restore_stream"],
        "_tiling": ["TileProgress", "restore_burst", "tile_layout"],
        "_trust": [
            "CALIBRATION",
            "CALIBRATION_FORMAT",
            "Calibration",
            "METHOD",
            "Uncalibrated",
            "burst_sample",
            "calibration_path",
            "conformal_quantile",
            "edge_factor",
            "read_calibration",
            "restore_with_spread",
            "spread_of",
            "write_calibration",
        ],
    },
)
