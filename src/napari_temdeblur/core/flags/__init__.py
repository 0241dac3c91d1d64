"""Hallucination flags: re-blur a restored image with each frame's motion, compare with the registered
frames, and mark where they disagree beyond the detector noise (docs/flags.md)."""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submod_attrs={
        "_flags": ["THRESHOLD", "WINDOW_SIGMA_PX", "Flags", "hallucination_flags"],
        "_forward": ["FrameModel", "blur", "fit_motion", "line_kernel"],
    },
)
