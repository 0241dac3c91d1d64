"""Live plot of a training run: train loss above; validation SSIM and PSNR below, each with the
unrestored input's value as a dashed reference line (a restoration is worth keeping above both)."""

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
        self.figure = Figure(figsize=(4, 2.6), layout="constrained")
        super().__init__(self.figure)
        self.setMinimumHeight(200)
        self.loss_axes, self.ssim_axes = self.figure.subplots(2, 1, sharex=True, height_ratios=(1, 2))
        self.psnr_axes = self.ssim_axes.twinx()
        self.records: tuple[EpochRecord, ...] = ()
        self.best_epoch: int | None = None
        self.input_val: tuple[float, float] | None = None
        self.set_theme(theme)

    def set_theme(self, theme: str) -> None:
        """Recolour for a napari theme and redraw."""
        colours = get_theme(theme)
        self._background = colours.background.as_hex()
        self._text = colours.text.as_hex()
        self._loss_colour = self._text  # the theme's text colour contrasts with its background
        self._ssim_colour = colours.warning.as_hex()
        self._psnr_colour = colours.highlight.as_hex()
        self.plot(self.records, self.best_epoch, self.input_val)

    def plot(
        self,
        records: Sequence[EpochRecord],
        best_epoch: int | None,
        input_val: tuple[float, float] | None = None,
    ) -> None:
        """Draw the history; the best epoch is ringed on the SSIM curve.

        Parameters
        ----------
        records : sequence of EpochRecord
            Epochs in order (may be empty).
        best_epoch : int or None
            Epoch (1-based) to mark.
        input_val : (float, float), optional
            Val SSIM and PSNR (dB) of the unrestored input, drawn as dashed lines.
        """
        self.records, self.best_epoch, self.input_val = tuple(records), best_epoch, input_val
        self.figure.set_facecolor(self._background)
        epochs = [r.epoch for r in self.records]
        marker = "." if len(epochs) < 30 else None
        curves = (
            (self.loss_axes, [r.train_loss for r in self.records], self._loss_colour, "train loss", None),
            (self.ssim_axes, [r.val_ssim for r in self.records], self._ssim_colour, "val SSIM", 0),
            (self.psnr_axes, [r.val_psnr for r in self.records], self._psnr_colour, "PSNR (dB)", 1),
        )
        for axes, values, colour, label, reference in curves:
            axes.clear()
            axes.plot(epochs, values, color=colour, marker=marker)
            if input_val is not None and reference is not None:
                axes.axhline(input_val[reference], color=colour, linestyle="--", linewidth=0.8)
            axes.set_ylabel(label, color=colour, fontsize=8)
            axes.tick_params(colors=self._text, labelsize=7)
            for spine in axes.spines.values():
                spine.set_color(self._text)
        for axes in (self.loss_axes, self.ssim_axes):
            axes.set_facecolor(self._background)
        self.psnr_axes.patch.set_visible(False)  # the twin lies on top: keep the SSIM curve visible
        self.psnr_axes.yaxis.set_label_position("right")  # clear() moves it back to the left
        self.ssim_axes.set_xlabel("epoch (dashed: the unrestored input)", color=self._text, fontsize=8)
        for record in self.records:
            if record.epoch == best_epoch:
                self.ssim_axes.plot([record.epoch], [record.val_ssim], "o", mfc="none", ms=9, color=self._ssim_colour)
        self.draw_idle()
