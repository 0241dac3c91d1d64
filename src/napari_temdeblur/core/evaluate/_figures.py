"""Figures of restoration results as PNG files: GT | input | each method, on one grey scale.

* :func:`comparison_figure`: one evaluated image (an :class:`~napari_temdeblur.core.evaluate.Example`),
  optionally a crop.
* :func:`synthetic_figure`: the paper's Fig 8, the three synthetic test images
  (:func:`~napari_temdeblur.core.simulate.synthetic_burst`) restored by each run (after the paper's
  batch-norm adaptation), one row per image.

Figures are drawn on a :class:`matplotlib.figure.Figure` with the Agg canvas and never through
``pyplot``, so no global figure state leaks into a running napari. Images are (row, col) floats in
[0, 1] (already windowed) and are drawn pixel for pixel up to :data:`MAX_PANEL_PX` wide.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from napari_temdeblur.core import Progress, atomic_write
from napari_temdeblur.core.imaging import apply_window, psnr, ssim
from napari_temdeblur.core.restore import RestoreOptions, collect_restored, restore
from napari_temdeblur.core.simulate import SYNTHETIC_SPECIMENS, synthetic_burst

from ._images import sample_windows
from ._results import Example
from ._runs import run_keys
from ._written import SOFTWARE

DPI = 100
MIN_PANEL_PX, MAX_PANEL_PX = 160, 480  #: panel width; images are shown at their own width in between
_GAP, _TITLE, _LABEL = 8, 24, 24  # px: between panels, column-title band, row-label band


def _panels(row, crop: tuple[int, int, int, int] | None) -> list[tuple[str, np.ndarray]]:
    """(title, image) of a row's panels, cropped, with clear errors for mismatched or bad images."""
    panels = [("GT", row.gt), ("input", row.input), *row.outputs.items()]
    shape = np.shape(row.gt)
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(f"{row.name}: the GT must be a 2-D image, got shape {shape}")
    for title, image in panels:
        if np.shape(image) != shape:
            raise ValueError(f"{row.name}: {title} is {np.shape(image)} but the GT is {shape}")
    if crop is None:
        return [(title, np.asarray(image, np.float32)) for title, image in panels]
    y, x, h, w = (int(v) for v in crop)
    if h < 1 or w < 1 or y < 0 or x < 0 or y + h > shape[0] or x + w > shape[1]:
        raise ValueError(f"crop (y, x, h, w) = {tuple(crop)} does not lie inside the {shape} image {row.name}")
    return [(title, np.asarray(image, np.float32)[y : y + h, x : x + w]) for title, image in panels]


def panel_figure(rows: Sequence, *, crop: tuple[int, int, int, int] | None = None, scores: bool = False) -> Figure:
    """Draw rows of GT | input | each output on one grey scale ([0, 1] black to white).

    Parameters
    ----------
    rows : sequence
        Evaluation :class:`Example` objects (or anything with ``name``, ``gt``, ``input`` and
        ``outputs``); all rows have the same output keys in the same order (the columns).
    crop : (y, x, h, w), optional
        Region of every image to draw, px; default the whole image.
    scores : bool
        Print each input's and output's SSIM and PSNR against the GT over the whole drawn panel in its
        corner (:func:`~napari_temdeblur.core.imaging.ssim`, :func:`~napari_temdeblur.core.imaging.psnr`;
        meaningful where the panel is all sample, as on synthetic images).

    Returns
    -------
    matplotlib.figure.Figure
        With an Agg canvas; one image axes per panel, row-major, titled by its column.
    """
    if not rows:
        raise ValueError("nothing to draw: no images given")
    keys = list(rows[0].outputs)
    for row in rows[1:]:
        if list(row.outputs) != keys:
            raise ValueError(f"{row.name} has outputs {list(row.outputs)} but {rows[0].name} has {keys}")
    drawn = [_panels(row, crop) for row in rows]
    panel_w = int(np.clip(max(p[0][1].shape[1] for p in drawn), MIN_PANEL_PX, MAX_PANEL_PX))
    heights = [max(1, round(panel_w * p[0][1].shape[0] / p[0][1].shape[1])) for p in drawn]
    cols = len(drawn[0])
    width = _LABEL + cols * panel_w + cols * _GAP
    height = _TITLE + sum(heights) + len(heights) * _GAP
    fig = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, facecolor="white")
    FigureCanvasAgg(fig)
    for c, (title, _) in enumerate(drawn[0]):
        fig.text(
            (_LABEL + c * (panel_w + _GAP) + panel_w / 2) / width,
            1 - _TITLE / 2 / height,
            title,
            ha="center",
            va="center",
            fontsize=11,
        )
    top = _TITLE
    for row, panels, h in zip(rows, drawn, heights):
        fig.text(
            _LABEL / 2 / width, 1 - (top + h / 2) / height, row.name, ha="center", va="center", rotation=90, fontsize=10
        )
        gt = panels[0][1]
        for c, (title, image) in enumerate(panels):
            left = _LABEL + c * (panel_w + _GAP)
            ax = fig.add_axes((left / width, 1 - (top + h) / height, panel_w / width, h / height))
            ax.imshow(image, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest", aspect="auto")
            ax.set_axis_off()
            ax.set_label(title)
            if scores and c > 0:
                ax.text(
                    0.02,
                    0.03,
                    f"SSIM {ssim(image, gt):.3f}\nPSNR {psnr(image, gt):.1f} dB",
                    transform=ax.transAxes,
                    fontsize=8,
                    va="bottom",
                    ha="left",
                    color="black",
                    bbox={"facecolor": "white", "alpha": 0.75, "edgecolor": "none", "pad": 2},
                )
        top += h + _GAP
    return fig


def write_png(fig: Figure, png: str | Path) -> Path:
    """Save `fig` as a PNG at its own size and :data:`DPI`, atomically (parent folders created)."""
    # the Software text tells a later run that this file is its own (written_by_evaluate)
    return atomic_write(png, lambda tmp: fig.savefig(tmp, format="png", dpi=DPI, metadata={"Software": SOFTWARE}))


def comparison_figure(example: Example, png: str | Path, *, crop: tuple[int, int, int, int] | None = None) -> Path:
    """Write one image's GT | input | each method's output as a PNG (titles: the method keys).

    Parameters
    ----------
    example : Example
        One evaluated image (``name``, ``gt``, ``input``, ``outputs``: (H, W) floats in [0, 1]).
    png : str or Path
        Output file, replaced atomically.
    crop : (y, x, h, w), optional
        Region to show, px; default the whole image.

    Returns
    -------
    Path
        `png`.
    """
    return write_png(panel_figure([example], crop=crop), png)


def _labelled(work: Generator[Progress, None, object], label: str) -> Generator[Progress, None, object]:
    """Pass `work`'s events on with `label` before their stage; return its result."""
    try:
        while True:
            try:
                event = next(work)
            except StopIteration as stop:
                return stop.value
            yield replace(event, stage=f"{label}: {event.stage}")
    finally:
        work.close()


def synthetic_images(
    runs: Sequence[str | Path], options: RestoreOptions | None = None, *, seed: int = 0, size: int | None = None
) -> Generator[Progress, None, list[Example]]:
    """Restore the paper's three synthetic test images with each run (the data of its Fig 8).

    Parameters
    ----------
    runs : sequence of str or Path
        Run folders (or checkpoint files in them); their folder names are the method keys
        (:func:`._runs.run_keys`: they must differ).
    options : RestoreOptions, optional
        How the runs restore; by default with ``adapt_bn``: each network's batch-norm statistics are
        first adapted to the synthetic images (the paper's ~20 forward passes,
        :func:`~napari_temdeblur.core.restore.adapt_batchnorm`); the run folders are not changed.
    seed : int
        Seed of the synthetic images (:func:`~napari_temdeblur.core.simulate.synthetic_burst`).
    size : int, optional
        Side of the synthetic sharp images in HQ px (stream images are half as wide); default the demo
        acquisition's 512 (256 px images).

    Returns
    -------
    list of Example
        One per specimen of :data:`SYNTHETIC_SPECIMENS` (sample ``"synthetic"``): the GT windowed by
        a window suggested from the three GT images, the centre input frame by one from the three
        bursts, and each run's output in GT counts re-windowed by the GT window: one scale for all.
    """
    if not runs:
        raise ValueError("the synthetic figure needs at least one trained run")
    options = options or RestoreOptions(adapt_bn=True)
    keys = run_keys(runs)
    bursts = []
    for k, specimen in enumerate(SYNTHETIC_SPECIMENS):
        yield Progress("synthetic images", k, len(SYNTHETIC_SPECIMENS), specimen)
        bursts.append(synthetic_burst(specimen, size=size, seed=seed))
    yield Progress("synthetic images", len(bursts), len(bursts))
    windows = sample_windows(bursts)
    gt_window = windows["gt"]
    rows = [
        Example(
            b.name, "synthetic", apply_window(b.gt, gt_window), apply_window(b.low[len(b.low) // 2], windows["low"]), {}
        )
        for b in bursts
    ]
    for key, run in keys.items():
        restored = yield from _labelled(collect_restored(restore(run, bursts, options)), key)
        for row, result in zip(rows, restored):
            row.outputs[key] = apply_window(result.counts, gt_window)
            for message in result.messages:
                yield Progress(key, 0, 0, message)
    return rows


def synthetic_figure(
    runs: Sequence[str | Path],
    png: str | Path,
    options: RestoreOptions | None = None,
    *,
    seed: int = 0,
    size: int | None = None,
) -> Generator[Progress, None, Path]:
    """Write the paper's Fig 8 as a PNG: rows spots, lines, crosslines; columns GT, input, each run.

    Each panel but the GT carries its SSIM and PSNR against the GT (whole image: synthetic images are
    all sample). Parameters as :func:`synthetic_images`; `png` is replaced atomically.

    Returns
    -------
    Path
        `png`.
    """
    rows = yield from synthetic_images(runs, options, seed=seed, size=size)
    yield Progress("figure", 0, 1, str(png))
    path = write_png(panel_figure(rows, scores=True), png)
    yield Progress("figure", 1, 1, str(png))
    return path
