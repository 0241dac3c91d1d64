"""One frame refined against a reference: ECC, the cross-correlation fallback, and whether to trust it.

Conventions (docs/design.md, Matrix convention): ``frame(A @ [x, y, 1]) ~= reference(x, y)``;
translations ``_yx`` are (ty, tx) in stream px.
"""

from __future__ import annotations

import numpy as np

from ._ecc import EccFailed, cross_correlation, refine_ecc
from ._file import FrameRegistration
from ._settings import RegistrationSettings


def translation_matrix(translation_yx) -> np.ndarray:
    """float64 (2, 3) ``[[1, 0, tx], [0, 1, ty]]`` from napari-order (ty, tx)."""
    ty, tx = translation_yx
    return np.array([[1.0, 0.0, float(tx)], [0.0, 1.0, float(ty)]])


def refine_frame(frame, hq, seed, settings, index) -> tuple[FrameRegistration, str | None]:
    """ECC, or the cross-correlation fallback when ECC fails or does not converge.

    Parameters
    ----------
    frame : numpy.ndarray
        float32 (h, w) stream frame.
    hq : PreparedHQ
        The reference (an HQ image at stream pixels, or a stream frame), see :func:`._ecc.prepare_hq`.
    seed : numpy.ndarray
        float64 (2, 3) starting matrix, docs/design.md's matrix convention.
    settings : RegistrationSettings
    index : int
        The frame's stream index, recorded in the result.

    Returns
    -------
    (FrameRegistration, str or None)
        The registration (unflagged) and a note when the fallback was used.
    """
    why = None
    try:
        result = refine_ecc(frame, hq, seed, settings)
        if result.converged:
            return FrameRegistration(index, result.matrix, result.correlation, True, "ecc"), None
        why = f"ECC did not converge in {settings.iterations} iterations"
    except EccFailed as exc:
        why = f"ECC failed ({exc})"
    result = cross_correlation(frame, hq, seed)
    note = f"frame {index}: {why}; used cross-correlation instead (correlation {result.correlation:.2f})"
    reg = FrameRegistration(index, result.matrix, result.correlation, result.converged, "cross-correlation")
    return reg, note


def refinement_flag(reg: FrameRegistration, settings: RegistrationSettings) -> str | None:
    """Why a refined frame cannot be trusted on its own terms (no convergence, low correlation), or None."""
    if not reg.converged:
        return f"{reg.method} did not converge"
    if not reg.correlation >= settings.min_correlation:
        return f"correlation {reg.correlation:.2f} is below {settings.min_correlation:.2f}"
    return None
