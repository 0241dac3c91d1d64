"""How the restore dock shows a result: layers, the score overlay, Compare, the score table."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
)

from napari_temdeblur.core import atomic_write
from napari_temdeblur.core.imaging import WINDOW
from napari_temdeblur.layers import FLAGS_SUFFIX, TRUST_SUFFIX, LayerKind, flags_kwargs, frame_index, tag, trust_kwargs

from ._job import CSV_COLUMNS, ImageScores, RestoreResult

if TYPE_CHECKING:
    import napari

#: Result layer name suffixes, after the burst's title.
RESTORED, INPUT, SSIM_MAP = " restored", " input", " SSIM map"
#: Pixels the valid SSIM map loses on each side (11-tap window).
SSIM_MARGIN = WINDOW // 2


def _stack(selection, images: list[np.ndarray], shape: tuple[int, ...], fill: float = 0.0) -> np.ndarray:
    """Images placed in their slots of an (N, H, W) stack (or the one (H, W) image) of `fill`."""
    out = np.full(shape, fill, np.float32)
    for slot, image in zip(selection.slots, images):
        target = out[slot] if selection.stacked else out
        target[: image.shape[0], : image.shape[1]] = image
    return out


def put_image(viewer: napari.Viewer, name: str, data: np.ndarray, **kwargs):
    """Add an image layer, or refresh the layer of that name from an earlier restore."""
    if name in viewer.layers:
        layer = viewer.layers[name]
        layer.data, layer.metadata = data, kwargs["metadata"]
        layer.scale, layer.translate, layer.units = kwargs["scale"], kwargs["translate"], kwargs["units"]
        return layer
    return viewer.add_image(data, name=name, **kwargs)


def _placement(selection, margin: float = 0.0) -> dict:
    """scale, translate and units of a result layer: image i where the burst shows it, `margin` px in."""
    ndim = len(selection.shape)
    scale, translate, units = selection.placement or ((1.0,) * ndim, (0.0,) * ndim, ("pixel",) * ndim)
    inset = (0.0,) * (ndim - 2) + (margin * scale[-2], margin * scale[-1])
    return {"scale": scale, "translate": tuple(t + d for t, d in zip(translate, inset)), "units": units}


def show_result(viewer: napari.Viewer, result: RestoreResult) -> dict[str, object]:
    """Add (or refresh) the result layers; returns them by kind ("restored", "input", "ssim-map",
    "flags").

    The restored and input layers are float32 [0, 1], stacked like the burst's GT ((N, H, W) or
    (H, W)); the SSIM map is (N, H - 10, W - 10), translated by 5 px so each value sits on the
    centre of its window, shown on a [0, 1] scale (negative SSIM as 0), NaN (transparent) off the
    sample and in the padding.
    """
    selection = result.selection
    names = [p.name for p in selection.pairs]
    info = {
        "title": selection.title,
        "names": names,
        "slots": selection.slots,
        "valid_shapes": [list(i.shape) for i in result.images],
    }
    grey = {"contrast_limits": (0.0, 1.0), "colormap": "gray"}
    layers = {
        "input": put_image(
            viewer,
            selection.title + INPUT,
            _stack(selection, result.inputs, selection.shape),
            visible=False,
            **grey,
            **_placement(selection),
            metadata=tag(LayerKind.INPUT, **info, window=result.low_window.to_dict()),
        ),
    }
    # With GT the restored image is re-windowed into the scoring GT window, else it keeps the run's.
    window = result.gt_window.to_dict() if result.gt_window else result.restored[0].metadata["windows"]["gt"]
    layers["restored"] = put_image(
        viewer,
        selection.title + RESTORED,
        _stack(selection, result.images, selection.shape),
        **grey,
        **_placement(selection),
        metadata=tag(LayerKind.RESTORED, **info, restore=[r.metadata for r in result.restored], window=window),
    )
    if result.ssim_maps is None and selection.title + SSIM_MAP in viewer.layers:
        viewer.layers.remove(selection.title + SSIM_MAP)  # an earlier restore's, scored against a GT
    if result.ssim_maps is not None:
        shape = (*selection.shape[:-2], *(max(s - 2 * SSIM_MARGIN, 0) for s in selection.shape[-2:]))
        layer = put_image(
            viewer,
            selection.title + SSIM_MAP,
            _stack(selection, result.ssim_maps, shape, np.nan),
            contrast_limits=(0.0, 1.0),
            colormap="viridis",
            **_placement(selection, SSIM_MARGIN),
            visible=False,
            metadata=tag(LayerKind.SSIM_MAP, **info),
        )
        layer.colorbar.visible = True
        layers["ssim-map"] = layer
    if result.trust is None and selection.title + TRUST_SUFFIX in viewer.layers:
        viewer.layers.remove(selection.title + TRUST_SUFFIX)  # an earlier restore's, of other images
    if result.trust is not None:
        layers["trust"] = _trust_layer(viewer, result, info)
    _show_flags(viewer, result, info, layers)
    # The SSIM map lies on top (hidden) so that showing it shows it; the restored layer is the active one.
    viewer.layers.selection.active = layers["restored"]
    return layers


def _trust_layer(viewer: napari.Viewer, result: RestoreResult, info: dict):
    """The interval widths stacked like the restored layer (NaN, transparent, in the padding), on a
    colour bar from 0 to their 99th percentile, hidden until asked for (Compare, or the layer list)."""
    selection = result.selection
    data = _stack(selection, result.trust, selection.shape, np.nan)
    coverage = result.restored[0].calibration.nominal_coverage
    kwargs = trust_kwargs(selection.title, data, info, nominal_coverage=coverage)
    limits = kwargs.pop("contrast_limits")
    layer = put_image(viewer, kwargs.pop("name"), data, **kwargs, **_placement(selection))
    layer.contrast_limits = limits  # also when an earlier restore's layer is refreshed
    layer.colorbar.visible = True
    return layer


def _show_flags(viewer: napari.Viewer, result: RestoreResult, info: dict, layers: dict) -> None:
    """Add (or refresh, or remove when none were made) the flags: a labels layer, 1 where flagged,
    drawn as outlines over the restored image, placed like it."""
    selection, name = result.selection, result.selection.title + FLAGS_SUFFIX
    made = [r.flags for r in result.restored]
    if name in viewer.layers:
        viewer.layers.remove(name)  # labels data of another shape cannot be swapped in place
    if any(f is None for f in made):
        return
    stack = _stack(selection, [f.mask for f in made], selection.shape).astype(np.uint8)
    fractions = [f.fraction for f in made]
    kwargs = flags_kwargs(selection.title, info, fractions=fractions)
    layer = viewer.add_labels(stack, **kwargs, **_placement(selection))
    layer.contour = 1  # outlines: the restored detail inside stays visible
    layers["flags"] = layer


def _flags_text(result: RestoreResult, k: int) -> str:
    flags = result.restored[k].flags
    if flags is None:
        return ""
    return f"\nflags     {flags.fraction:.1%} of the image (outlined)"


def overlay_text(result: RestoreResult, slot: int) -> str:
    """The text overlay for the image in `slot`: input and restored SSIM / PSNR on the sample, and the
    fraction flagged."""
    try:
        k = result.selection.slots.index(slot)
    except ValueError:
        return "this image was not restored"
    return _score_text(result, k) + _flags_text(result, k)


def _score_text(result: RestoreResult, k: int) -> str:
    name = result.selection.pairs[k].name
    trust = ""
    if result.trust is not None:
        coverage = result.restored[k].calibration.nominal_coverage
        trust = f"\ntrust     {coverage:.0%} interval, mean width {float(np.mean(result.trust[k])):.3f} (0-1 intensity)"
    if result.scores is None:
        return f"{name}: restored (no GT, no scores){trust}"
    scores = result.scores[k]
    half = " in the top half" if result.top_half else ""
    if not result.score_tile:
        return f"{name}: no scores: no tile lies wholly on the sample{half} of these images"
    where = f"{result.score_tile} px tile(s) on the sample{half}"
    if scores.tiles == 0:
        return f"{name}: no {where}, so no scores"
    smaller = f" (no {result.requested_tile} px tile fits these images)" if result.requested_tile else ""
    in_ssim, out_ssim, in_psnr, out_psnr = scores.means()
    return (
        f"{name}: {scores.tiles} {where}{smaller}\n"
        f"input     SSIM {in_ssim:.4f}   PSNR {in_psnr:.2f} dB\n"
        f"restored  SSIM {out_ssim:.4f}   PSNR {out_psnr:.2f} dB{trust}"
    )


def current_slot(viewer: napari.Viewer, layer) -> int:
    """Index along `layer`'s image axis shown at the viewer's current slice (0 for a 2-D layer)."""
    return 0 if layer.ndim < 3 else frame_index(layer, viewer.dims.point)


class ContrastLink:
    """Keeps contrast limits in step across layers, each with its own intensity window.

    A layer's limits in [0, 1] window units map to counts through its window (None: already in
    [0, 1]), so a GT in counts and restored / input images in [0, 1] show the same relative range.
    """

    def __init__(self, layers_windows: list[tuple[object, object]]):
        self._members = layers_windows
        self._busy = False
        for layer, _ in layers_windows:
            layer.events.contrast_limits.connect(self._changed)

    def disconnect(self) -> None:
        for layer, _ in self._members:
            layer.events.contrast_limits.disconnect(self._changed)

    def _changed(self, event) -> None:
        if self._busy:
            return
        source = event.source
        window = next(w for layer, w in self._members if layer == source)
        unit = [_to_unit(c, window) for c in source.contrast_limits]
        self._busy = True
        try:
            for layer, w in self._members:
                if layer != source:
                    layer.contrast_limits = [_from_unit(u, w) for u in unit]
        finally:
            self._busy = False


def _to_unit(value: float, window) -> float:
    return value if window is None else (value - window.low) / (window.high - window.low)


def _from_unit(value: float, window) -> float:
    return value if window is None else window.low + value * (window.high - window.low)


class Comparison:
    """Compare mode: layers side by side in grid mode with linked contrast limits, until :meth:`end`.

    Parameters
    ----------
    viewer : napari.Viewer
    members : list of (layer, IntensityWindow or None)
        Left to right; the window maps a layer's counts to [0, 1] (None: already in [0, 1]).
        Every member starts at its full window.
    link : bool
        Link the members' contrast limits (not for layers of different quantities: restored | trust).
    """

    def __init__(self, viewer: napari.Viewer, members: list[tuple[object, object]], link: bool = True):
        self._viewer = viewer
        self._order_before = list(viewer.layers)
        self._visible_before = [layer for layer in viewer.layers if layer.visible]
        chosen = [layer for layer, _ in members]
        # napari fills grid cells with the visible layers in layer-list order (stride 1), so the
        # members go to the top of the list in order and everything else is hidden.
        for layer in viewer.layers:
            layer.visible = any(layer == member for member in chosen)
        for layer in chosen:
            viewer.layers.move(viewer.layers.index(layer), len(viewer.layers))
        grid = viewer.canvas.grid
        grid.stride, grid.shape, grid.enabled = 1, (1, len(chosen)), True
        viewer.reset_view()
        self._link = ContrastLink(members) if link else None
        if link:
            window = members[-1][1]
            chosen[-1].contrast_limits = [_from_unit(0.0, window), _from_unit(1.0, window)]

    def end(self) -> None:
        """Leave grid mode; the layer order and visibility are as before (layers added since go on top)."""
        if self._link is not None:
            self._link.disconnect()
        layers = self._viewer.layers
        self._viewer.canvas.grid.enabled = False
        for layer in reversed(self._order_before):
            if layer in layers:
                layers.move(layers.index(layer), 0)
        for layer in layers:
            layer.visible = any(layer == shown for shown in self._visible_before)


class ScoresTable(QTableWidget):
    """Per-image means (and all tiles pooled) of the last restore with GT; copy and CSV."""

    HEADERS = ("image", "tiles", "input SSIM", "restored SSIM", "input PSNR (dB)", "restored PSNR (dB)")

    def __init__(self):
        super().__init__(0, len(self.HEADERS))
        self.setHorizontalHeaderLabels(self.HEADERS)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.verticalHeader().setVisible(False)
        # the table takes the dock's width and scrolls inside it, rather than widening the dock and
        # squeezing the canvas
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Expanding)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.setMinimumHeight(120)
        self._rows: list[ImageScores] = []

    def show_scores(self, scores: list[ImageScores] | None) -> None:
        """Fill the table; the last row pools every image's tiles ("all")."""
        self._rows = [*scores, ImageScores.pooled("all", scores)] if scores else []
        self.setRowCount(len(self._rows))
        for row, values in enumerate(self.rows()):
            for col, value in enumerate(values):
                text = value if isinstance(value, str) else _format(value, col)
                self.setItem(row, col, QTableWidgetItem(text))
        self.resizeColumnsToContents()

    def rows(self) -> list[tuple]:
        """(image, tiles, input SSIM, restored SSIM, input PSNR, restored PSNR) per row, as in the CSV."""
        return [(s.name, s.tiles, *s.means()) for s in self._rows]

    def to_csv(self, delimiter: str = ",") -> str:
        """The table as CSV text (header :data:`CSV_COLUMNS`, full precision, NaN for no tiles)."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        writer.writerows([name, tiles, *(repr(v) for v in values)] for name, tiles, *values in self.rows())
        return buffer.getvalue()

    def copy(self) -> str:
        """Put the table on the clipboard, tab-separated (pastes into a spreadsheet); returns the text."""
        text = self.to_csv(delimiter="\t")
        QApplication.clipboard().setText(text)
        return text

    def save_csv(self, path: str | Path) -> Path:
        """Write the table as CSV, atomically."""
        if not self._rows:
            raise ValueError("no scores to save: restore with a GT layer first")
        text = self.to_csv()
        return atomic_write(Path(path), lambda tmp: tmp.write_text(text))


def _format(value: float, column: int) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "-"
    return f"{value:.4f}" if column in (2, 3) else f"{value:.2f}"
