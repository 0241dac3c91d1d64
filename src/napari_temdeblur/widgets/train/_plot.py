"""Live plot of a training run: train loss (left axis) and validation SSIM (right axis) per epoch."""

from __future__ import annotations

from collections.abc import Sequence

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from napari.utils.theme import get_theme

from ._status import EpochRecord


class HistoryPlot(FigureCanvasQTAgg):
    """A small matplotlib canvas in napari's theme colours.

    Parameters
    ----------
    theme : str
        napari theme id (``viewer.theme``), e.g. ``"dark"``.
    """

    def __init__(self, theme: str):
        self.figure = Figure(figsize=(4, 2.4), layout="constrained")
        super().__init__(self.figure)
        self.setMinimumHeight(220)
        self.loss_axes = self.figure.add_subplot()
        self.ssim_axes = self.loss_axes.twinx()
        self.records: tuple[EpochRecord, ...] = ()
        self.best_epoch: int | None = None
        self.set_theme(theme)

    def set_theme(self, theme: str) -> None:
        """Recolour for a napari theme and redraw."""
        colours = get_theme(theme)
        self._background = colours.background.as_hex()
        self._text = colours.text.as_hex()
        self._loss_colour = self._text  # the theme's text colour contrasts with its background
        self._ssim_colour = colours.warning.as_hex()
        self.plot(self.records, self.best_epoch)

    def plot(self, records: Sequence[EpochRecord], best_epoch: int | None) -> None:
        """Draw the history; the best epoch is ringed on the SSIM curve.

        Parameters
        ----------
        records : sequence of EpochRecord
            Epochs in order (may be empty).
        best_epoch : int or None
            Epoch (1-based) to mark.
        """
        self.records, self.best_epoch = tuple(records), best_epoch
        self.figure.set_facecolor(self._background)
        epochs = [r.epoch for r in self.records]
        for axes, values, colour, label in (
            (self.loss_axes, [r.train_loss for r in self.records], self._loss_colour, "train loss"),
            (self.ssim_axes, [r.val_ssim for r in self.records], self._ssim_colour, "val SSIM"),
        ):
            axes.clear()
            axes.plot(epochs, values, color=colour, marker="." if len(epochs) < 30 else None)
            axes.set_ylabel(label, color=colour)
            axes.tick_params(colors=self._text, labelsize=8)
            for spine in axes.spines.values():
                spine.set_color(self._text)
        self.loss_axes.set_facecolor(self._background)
        self.ssim_axes.patch.set_visible(False)  # the twin lies on top: keep the loss curve visible
        self.ssim_axes.yaxis.set_label_position("right")  # clear() moves it back to the left
        self.loss_axes.set_xlabel("epoch", color=self._text)
        for record in self.records:
            if record.epoch == best_epoch:
                self.ssim_axes.plot([record.epoch], [record.val_ssim], "o", mfc="none", ms=10, color=self._ssim_colour)
        self.draw_idle()
