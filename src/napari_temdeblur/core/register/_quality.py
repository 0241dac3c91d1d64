"""Quality control of registered bursts and sessions: frames that cannot be trusted are flagged with
the reason, frames just outside a burst stand in for flagged ones, and an image whose best frame breaks
the scan order of the others is matched again near where they put it.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from napari_temdeblur.core import DataError, Progress

from ._file import FrameRegistration
from ._matching import FrameMatch, match_frames, stream_frame
from ._refine import refine_frame, refinement_flag, translation_matrix
from ._settings import RegistrationSettings


def quality_control(
    regs: dict, match: FrameMatch, settings: RegistrationSettings, user_start: bool
) -> tuple[dict, list[str]]:
    """Flag frames with low correlation, no convergence, or a registration that disagrees with the
    stage motion the matcher and the other frames show; return the updated frames and messages.

    The whole burst sitting far from the matcher's estimate is a flag only after a user's start:
    from the matcher's own start, ECC moving away means the matcher was imprecise, not that ECC
    locked onto a neighbouring grating period.
    """
    expected = dict(zip(match.frames, match.translations_yx))
    tol = settings.max_disagreement_px
    offsets = {
        t: np.subtract(r.translation_yx, expected[t])
        for t, r in regs.items()
        if r.flag is None and np.all(np.isfinite(expected[t]))
    }
    messages = []
    common = np.median(np.array(list(offsets.values())), axis=0) if offsets else np.zeros(2)
    burst_off = np.hypot(*common) > tol
    if burst_off:
        where = (
            f"{np.hypot(*common):.1f} px (dy {common[0]:+.1f}, dx {common[1]:+.1f}) from where frame matching puts it"
        )
        messages.append(
            f"the burst sits {where}: on a grating, a start one period off; check the start and register again"
            if user_start
            else f"ECC moved the burst {where}"
        )
    out = {}
    for t, r in regs.items():
        flag = r.flag or refinement_flag(r, settings)
        if flag is None and t in offsets and np.hypot(*(offsets[t] - common)) > tol:
            d = offsets[t] - common
            flag = (
                f"disagrees by {np.hypot(*d):.1f} px with the stage motion the other frames and frame matching "
                "show (locked onto the wrong grating period?)"
            )
        if flag is None and burst_off and user_start:
            flag = f"burst {np.hypot(*common):.1f} px from frame matching (wrong grating period?)"
        if flag is not None and flag != r.flag:
            messages.append(f"frame {t} left out: {flag}")
        out[t] = FrameRegistration(r.index, r.matrix, r.correlation, r.converged, r.method, flag)
    return out, messages


def stand_ins(session, hq, regs: dict, missing: int, anchor: int, thumbnails, settings, progress: Progress):
    """Register frames just outside the burst in place of `missing` flagged ones (generator).

    The burst should hold `settings.frames` good frames, as the paper's always did: a dataset whose
    bursts are shorter cannot be trained with the usual frame count. The stage moves steadily
    between frames, so the translations of the burst's good frames, fitted linearly in the frame
    index, seed ECC on the next frame out (alternately after and before the burst, nearest to the
    anchor first). A stand-in is kept only when ECC converges above the correlation threshold
    within `settings.max_disagreement_px` of that line; at most ``missing + 2`` frames are tried.

    Returns
    -------
    (dict of int -> FrameRegistration, list of str)
        The accepted stand-ins by frame index, and messages saying what was tried.
    """
    good = sorted(t for t, r in regs.items() if r.flag is None)
    if len(good) < 2:
        return {}, []
    slope, intercept = np.polyfit(good, np.array([regs[t].translation_yx for t in good]), 1)
    n_frames = session.stream.shape[0]
    before, after = min(regs) - 1, max(regs) + 1
    found, notes = {}, []
    for _ in range(missing + 2):
        if len(found) == missing or (before < 0 and after >= n_frames):
            break
        take_after = after < n_frames and (before < 0 or after - anchor <= anchor - before)
        t = after if take_after else before
        after, before = (after + 1, before) if take_after else (after, before - 1)
        yield dataclasses.replace(progress, message=f"frame {t} in place of a flagged frame")
        if t in thumbnails.problems:
            notes.append(f"frame {t} not used in place of a flagged frame: {thumbnails.problems[t]}")
            continue
        line = slope * t + intercept
        reg, _ = refine_frame(stream_frame(session, t), hq, translation_matrix(line), settings, t)
        off = float(np.hypot(*np.subtract(reg.translation_yx, line)))
        if reg.method == "ecc" and reg.correlation >= settings.min_correlation and off <= settings.max_disagreement_px:
            found[t] = reg
            notes.append(f"frame {t} registered in place of a flagged frame (correlation {reg.correlation:.2f})")
        else:
            notes.append(
                f"frame {t} not used in place of a flagged frame: {reg.method}, correlation "
                f"{reg.correlation:.2f}, {off:.1f} px from the stage motion of the burst"
            )
    return found, notes


def scan_order_outliers(best: dict[int, int]) -> dict[int, int]:
    """Images whose best frame is off the robust line through all (frame ~ a + b * image index).

    Parameters
    ----------
    best : dict of int -> int
        HQ image index -> best frame.

    Returns
    -------
    dict of int -> int
        HQ image index -> the frame the line expects, for images more than max(2, |b| / 4) frames
        off it (Theil-Sen line: the median of pairwise slopes, robust to a minority of outliers).
        Empty for fewer than three images.
    """
    if len(best) < 3:
        return {}
    idx = sorted(best)
    slope = float(np.median([(best[j] - best[i]) / (j - i) for k, i in enumerate(idx) for j in idx[k + 1 :]]))
    offset = float(np.median([best[i] - slope * i for i in idx]))
    expected = {i: int(round(offset + slope * i)) for i in idx}
    return {i: expected[i] for i in idx if abs(best[i] - expected[i]) > max(2.0, 0.25 * abs(slope))}


def enforce_scan_order(session, settings, thumbnails, matches: dict, inits: dict, failed: dict):
    """Re-match images whose best frame breaks the scan order of the others.

    HQ images are taken in scan order and the stream runs along the same scan, so best frames grow
    about linearly with the image index. A periodic specimen (the support grid, a grating) looks
    alike one grid pitch away, where the matcher may prefer another frame; such an image's best
    frame is then sought only near where the robust line through the others puts it. A user's frame
    is taken as given. Needs three or more images matched together. An image with no good match
    near its expected frame moves from `matches` to `failed`, rather than keep a doubtful match.
    """
    best = {
        i: (inits[session.hq_names[i]].frame if session.hq_names[i] in inits else m.best_frame)
        for i, m in matches.items()
    }
    for i, expected in scan_order_outliers(best).items():
        name = session.hq_names[i]
        if name in inits:
            continue
        yield Progress(f"{session.name}: matching frames", 0, 1, f"{name}: checking frames near {expected}")
        near = range(expected - 2, expected + 3)
        try:
            match = match_frames(session, i, settings, thumbnails, candidates=near)
        except (DataError, ValueError) as exc:
            del matches[i]
            failed[i] = f"best-matching frame {best[i]} breaks the scan order (expected near {expected}), and {exc}"
            continue
        note = (
            f"best-matching frame {best[i]} breaks the scan order of the other images (expected near frame "
            f"{expected}; a repeating specimen looks alike a grid pitch away): used frame {match.best_frame}"
        )
        matches[i] = dataclasses.replace(match, messages=(*match.messages, note))
