"""The TEM fast-stream simulator: specimens, stage path, motion blur and detector noise, written as raw
acquisition sessions or in the registered-dataset layout, with the truth (docs/simulator.md)."""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submod_attrs={
        "_acquisition": ["bin_pixels", "blurred_view", "detect", "motion_kernel"],
        "_config": ["SimulationConfig"],
        "_experiment": ["LAYOUTS", "SAMPLE_NAMES", "SimulationResult", "read_true_translations", "simulate"],
        "_samples": ["SAMPLE_DATA_DIR", "write_samples"],
        "_specimens": ["SPECIMENS", "render_specimen", "support_grid_bars"],
        "_synthetic": ["SYNTHETIC_SPECIMENS", "synthetic_burst"],
    },
)
