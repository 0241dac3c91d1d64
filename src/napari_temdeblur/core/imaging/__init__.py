"""Image utilities shared by registration, training, restoration and evaluation: intensity windows,
sample masks, crops and evaluation tiles, windowed bursts, and the one SSIM / PSNR (docs/design.md,
SSIM and PSNR)."""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submod_attrs={
        "_bursts": ["centred_frames", "window_pair"],
        "_intensity": ["IntensityWindow", "apply_window", "matching_window", "suggest_window"],
        "_metrics": ["WINDOW", "psnr", "ssim", "ssim_map", "ssim_torch", "tile_scores"],
        "_preprocess": [
            "TOP_HALF_ROWS",
            "evaluation_tiles",
            "largest_fitting_tile",
            "random_crops",
            "sample_mask",
            "valid_crop_origins",
        ],
    },
)
