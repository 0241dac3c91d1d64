"""The paper's synthetic test images (its Fig 3) as registered bursts, for the Fig 8 experiment.

Wieslander et al. drew three synthetic images (bright and dark spots and bent lines; straight lines in
one direction; lines in two directions), added "synthetic motion ... and Gaussian noise to match the
real data" and restored them with networks trained on real data. Here each image is degraded by the
simulator's own physics, so it looks like the simulated stream the networks were trained on: the
stage path of consecutive 15 ms exposures (scan, vibration, jitter; :mod:`._acquisition`) blurs the
specimen, frames are binned to stream pixels and get the stream's Poisson-Gaussian detector noise. Each
frame's path is centred on the sharp image (plus the dataset layout's registration residual), as a
registration to the sharp image would place it, so the burst is registered and fully covers the image:
no cropping, no padding, no support grid.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage

from napari_temdeblur.core.io import BurstPair

from ._acquisition import bin_pixels, blurred_view, detect, motion_kernel, plan_session
from ._config import SimulationConfig
from ._experiment import session_rng
from ._specimens import render_specimen

#: The paper's three synthetic test images, in its order (Fig 3 and Fig 8, left to right).
SYNTHETIC_SPECIMENS = ("spots", "lines", "crosslines")


def synthetic_burst(
    specimen: str, cfg: SimulationConfig | None = None, *, size: int | None = None, seed: int = 0
) -> BurstPair:
    """One synthetic test image and a registered burst of motion-blurred, noisy stream frames of it.

    Parameters
    ----------
    specimen : str
        One of :data:`SYNTHETIC_SPECIMENS` (any of :data:`~napari_temdeblur.core.simulate.SPECIMENS` works).
    cfg : SimulationConfig, optional
        Stage motion, optics and detector; default :meth:`SimulationConfig.demo`. Its ``burst_frames``
        is the number of frames, ``registration_residual_px`` the registration error.
    size : int, optional
        Side of the sharp image in HQ px, a multiple of ``cfg.stream_binning``; default ``cfg.hq_size``.
    seed : int
        The same seed, specimen and configuration give the same images.

    Returns
    -------
    BurstPair
        Named after the specimen: ``gt`` uint16 (S, S) and ``low`` uint16 (F, S, S) detector counts at
        stream pixels (S = size / binning), frames in exposure order; the GT is the HQ image binned, as
        in the registered dataset layout.
    """
    cfg = cfg or SimulationConfig.demo()
    size = cfg.hq_size if size is None else int(size)
    b = cfg.stream_binning
    if size < 16 * b or size % b:
        raise ValueError(f"size must be a multiple of {b} and at least {16 * b} HQ px, got {size}")
    rng = session_rng(seed, specimen, 0)  # session 0: never one of a simulated acquisition's sessions
    # one HQ image's session plan holds burst_frames + 3 exposures; take the middle ones
    plan = plan_session(dataclasses.replace(cfg, hq_size=size, hq_per_session=1), rng, 1)
    first = (len(plan.exposures) - cfg.burst_frames) // 2
    paths = [e.path - e.centroid for e in plan.exposures[first : first + cfg.burst_frames]]
    paths = [p + rng.normal(0, cfg.registration_residual_px * b, 2) for p in paths]
    margin = int(np.ceil(max(np.abs(p).max() for p in paths))) + 2
    side = size + 2 * margin
    region = render_specimen(specimen, (side, side), cfg.hq_pixel_size_nm, rng)
    region = ndimage.gaussian_filter(region, cfg.optics_sigma_px)  # the optics, as render_strip applies them
    hq = detect(region[margin : margin + size, margin : margin + size], cfg.hq_electrons, cfg.hq_gain, cfg, rng)
    gt = np.round(bin_pixels(hq.astype(np.float64), b)).astype(np.uint16)
    frames = []
    for path in paths:
        kernel, corner = motion_kernel(path + margin)  # the path's centroid falls on the sharp image
        view = bin_pixels(blurred_view(region, kernel, corner, size), b)
        frames.append(detect(view, cfg.stream_electrons, cfg.stream_gain, cfg, rng))
    return BurstPair(specimen, gt, np.stack(frames))
