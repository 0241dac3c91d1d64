"""The "Restore" dock: apply a trained run to burst layers, show the result and, with GT, its scores.

The dock cuts the bursts from the chosen layers (:mod:`._job`), runs
:func:`napari_temdeblur.core.restore.restore` and the scoring in a napari thread worker, and shows
the result (:mod:`._view`): restored and input layers, and with a GT layer an SSIM-map layer,
a text overlay with the input's and the restored image's SSIM / PSNR for the image on screen, a
table of per-image scores (copy, CSV) and Compare (GT | input | restored in grid mode).
Everything it shows follows its ``status`` (the shared dock pattern, :mod:`.._dock`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, ProgressBar, PushButton, SpinBox
from napari.utils.notifications import show_info, show_warning
from qtpy.QtWidgets import QFileDialog, QHBoxLayout

from napari_temdeblur.core import Progress, available_devices
from napari_temdeblur.core.evaluate import EvaluateOptions
from napari_temdeblur.core.models import BEST, DEFAULT_MODEL, LAST, PRETRAINED, has_pretrained
from napari_temdeblur.core.restore import RestoreOptions
from napari_temdeblur.layers import find_bursts
from napari_temdeblur.widgets._dock import Dock, RunState, chosen_path, follow_choice, keep_choice, show_progress

from ._job import SCORE_TILE_STEP, RestoreResult, burst_layer_names, gt_layer_names, restore_job, select
from ._live import LiveBox
from ._mosaic import MosaicBox
from ._preview import PreviewBox
from ._view import Comparison, ScoresTable, current_slot, overlay_text, show_result

if TYPE_CHECKING:
    import napari

#: What a run folder is, for messages about a missing or bad one.
RUN_HINT = "a run folder holds best.pt: train one in the Train network dock or with temdeblur train"
#: GT choice meaning "no ground truth: restore only, no scores".
NO_GT = "(none: no scores)"
#: What Compare shows side by side.
COMPARE_IMAGES, COMPARE_TRUST = "GT | input | restored", "restored | trust"


class RestoreWidget(Dock):
    """Dock widget that restores burst layers with a trained run.

    Every control is an attribute whose ``.value`` scripts and tests may set; :meth:`start`,
    :meth:`stop`, :meth:`wait`, :meth:`compare`, :meth:`save_csv` are what the buttons do.

    Parameters
    ----------
    napari_viewer : napari.Viewer
    """

    run_text, stop_text = "Restore", "Cancel"
    stopping_message = "cancelling ..."
    data_hint = RUN_HINT
    memory_hint = "try a smaller inference tile or batch, or the cpu device"

    def __init__(self, napari_viewer: napari.Viewer):
        super().__init__(napari_viewer)
        self.result: RestoreResult | None = None
        self._gt_layer = self._requested_gt = None  # the GT of the result shown / of the restore running
        self._layers: dict = {}
        self._comparison: Comparison | None = None

        restoring, scoring = RestoreOptions(), EvaluateOptions()
        self.run = FileEdit(
            label="run folder",
            mode="d",
            nullable=True,
            tooltip="a training run (best.pt), or the path of a model written by temdeblur export (.onnx, or a "
            "bioimage.io package .zip); "
            "empty: the Train network dock's run, else the pretrained network",
        )
        self.checkpoint = ComboBox(
            label="checkpoint",
            choices=[("best.pt: the epoch with the best val SSIM", BEST), ("last.pt: the latest epoch", LAST)],
            value=BEST,
            tooltip="which weights of the run folder restore",
        )
        self.burst = ComboBox(label="burst layer", choices=self._burst_choices)
        self.gt = ComboBox(label="GT layer", choices=self._gt_choices)
        self.device = ComboBox(label="device", choices=available_devices(), value=restoring.device)
        self.inference_tile = SpinBox(
            # superqt's spin box shows no special-value text, so the label says what 0 means
            label="inference tile (0: auto)",
            min=0,
            max=8192,
            step=16,
            value=restoring.inference_tile or 0,
            tooltip="side of the tiles the network sees, px (smaller: less memory); 0: the network's own",
        )
        self.overlap = SpinBox(label="overlap", min=0, max=1024, step=8, value=restoring.overlap)
        self.batch = SpinBox(label="batch", min=1, max=256, value=restoring.batch, tooltip="tiles per forward pass")
        self.adapt_bn = CheckBox(text="adapt batch norm to these images (new sample type)", value=restoring.adapt_bn)
        # on in the dock (off in the CLI, where it writes more files): a look at where to doubt costs seconds
        self.flags = CheckBox(
            text="flag what the frames contradict",
            value=True,
            tooltip="re-blur the restored image with each frame's motion and outline where it disagrees with the "
            "frames beyond their noise (docs/flags.md)",
        )
        self.score_tile = SpinBox(
            label="score tile",
            min=16,
            max=1024,
            step=16,
            value=scoring.score_tile,
            tooltip="side of the evaluation tiles wholly on the sample, px (the paper's 128)",
        )
        self.top_half = CheckBox(
            text="score the top half only (as evaluate: HQ images overlap by half)", value=not scoring.all_rows
        )
        self.trust = CheckBox(
            text="trust layer (calibrated runs: interval widths)",
            value=True,
            tooltip="each pixel's calibrated interval (docs/trust.md); one more pass of the network",
        )
        self.form = Container(
            widgets=[
                self.run,
                self.checkpoint,
                self.burst,
                self.gt,
                self.device,
                self.inference_tile,
                self.overlap,
                self.batch,
                self.adapt_bn,
                self.flags,
                self.score_tile,
                self.top_half,
                self.trust,
            ]
        )
        self.progress = ProgressBar(label="progress", min=0, max=1, value=0)
        self.controls = Container(widgets=[self.run_button, self.progress])
        self.table = ScoresTable()
        self.copy_button, self.save_button = PushButton(text="Copy table"), PushButton(text="Save CSV...")
        self.compare_button = PushButton(text="Compare")
        self.compare_what = ComboBox(choices=[COMPARE_IMAGES, COMPARE_TRUST], value=COMPARE_IMAGES)
        buttons = QHBoxLayout()
        for button in (self.copy_button, self.save_button, self.compare_what, self.compare_button):
            buttons.addWidget(button.native)
        self.mosaic_box = MosaicBox(self)
        self.preview_box = PreviewBox(self)
        self.live_box = LiveBox(self)
        self.lay_out(
            self.form,
            self.controls,
            self.status_label,
            self.table,
            buttons,
            self.mosaic_box,
            self.preview_box,
            self.live_box,
            stretch=self.table,
        )

        self.copy_button.changed.connect(self.table.copy)
        self.save_button.changed.connect(self._ask_csv)
        self.compare_button.changed.connect(self._toggle_compare)
        self.burst.changed.connect(self._choose_gt)
        napari_viewer.dims.events.current_step.connect(self._update_overlay)
        self.refresh_layers()
        self._render_state()

    # --- inputs ----------------------------------------------------------------------------------

    def trained_run(self) -> Path | None:
        """The run folder of a Train network dock in this viewer whose run has a best.pt, else None."""
        from napari_temdeblur.widgets.train import TrainingWidget  # the docks know each other only via the viewer

        for widget in self.viewer.window.dock_widgets.values():
            if isinstance(widget, TrainingWidget) and not widget.status.running:
                best = widget.status.best_checkpoint
                if best is not None and best.is_file():
                    return best.parent
        return None

    def run_folder(self) -> Path | str:
        """The checkpoint to restore with: the chosen one (best.pt or last.pt) of the chosen run folder,
        else of the Train network dock's run; else ``"pretrained"`` (the default model's shipped
        weights, so a user can restore before any training)."""
        chosen = chosen_path(self.run.value)
        if chosen is not None:
            return chosen / self.checkpoint.value if chosen.is_dir() else chosen
        trained = self.trained_run()
        if trained is not None:
            self.run.value = trained
            return trained / self.checkpoint.value
        if not has_pretrained(DEFAULT_MODEL):
            raise ValueError(f"choose a run folder ({RUN_HINT})")
        return PRETRAINED

    def options(self) -> RestoreOptions:
        """The restore options the controls describe."""
        return RestoreOptions(
            device=self.device.value,
            inference_tile=self.inference_tile.value or None,
            overlap=self.overlap.value,
            batch=self.batch.value,
            adapt_bn=self.adapt_bn.value,
            flags=self.flags.value,
        )

    # --- running ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Restore the chosen burst layer with the current settings (what the Restore button does)."""
        if self.status.running:
            return
        try:
            run = self.run_folder()
            if self.burst.value is None:
                raise ValueError("no burst layer: open a registered dataset (File > Open Folder) or register a session")
            gt = None if self.gt.value in (None, NO_GT) else self.viewer.layers[self.gt.value]
            selection = select(self.viewer.layers[self.burst.value], gt, self.viewer.layers)
            options = dataclasses.replace(self.options(), trust=self.trust.value)  # not live, preview, mosaic
        except ValueError as exc:
            self.fail(exc)
            return
        self.end_compare()
        self.progress.value, self.mosaic_box.running_out = 0, None
        name = f"the pretrained {DEFAULT_MODEL} (no run chosen)" if run == PRETRAINED else _checkpoint_name(Path(run))
        self.status.message = f"restoring {len(selection.pairs)} image(s) of {selection.title} with {name}"
        self._requested_gt = gt
        self.run_work(
            restore_job,
            run,
            selection,
            options,
            score_tile=self.score_tile.value,
            top_half=self.top_half.value,
            on_result=self._on_returned,
        )

    def on_event(self, event: Progress) -> None:
        show_progress(self.progress, event)
        super().on_event(event)
        self.live_box.on_event(event)

    def request_stop(self, worker) -> None:
        if not self.live_box.request_stop(worker):  # live finishes (gaps, mosaic); the rest is cancelled
            super().request_stop(worker)

    def _on_returned(self, result: RestoreResult) -> None:
        self.result, self._gt_layer = result, self._requested_gt
        self._layers = show_result(self.viewer, result)
        self.table.show_scores(result.scores)
        notes = [m for r in result.restored for m in r.messages]
        for note in notes:
            show_warning(f"napari-temdeblur restore: {note}")
        done = f"restored {len(result.restored)} image(s) into '{self._layers['restored'].name}'"
        if result.scored:
            done += "; scores on the sample in the overlay and the table"
            if result.requested_tile:
                done += (
                    f" on {result.score_tile} px tiles: no {result.requested_tile} px tile lies wholly on the "
                    f"sample{' in the top half' if result.top_half else ''} of these images"
                )
        elif result.scores is not None:
            done += f"; no scores: not even a {SCORE_TILE_STEP} px tile lies wholly on the sample" + (
                " in the top half of these images (untick 'score the top half only')" if result.top_half else ""
            )
        if result.trust is not None:
            done += f"; trust intervals in '{self._layers['trust'].name}'"
        elif result.trust_note:
            notes.append(f"no trust layer: {result.trust_note}")
        self.status.message = "; ".join([done, *notes])
        self.status.state = RunState.DONE
        self._update_overlay()
        show_info(f"napari-temdeblur: {done}")

    def stopped_message(self) -> str:
        if self.mosaic_box.running_out is not None:  # parts are saved as they are restored
            out = self.mosaic_box.running_out
            return f"cancelled: the positions restored so far are kept in {out}; Make mosaic continues"
        return "cancelled: nothing was added"

    # --- results ---------------------------------------------------------------------------------

    def overlay(self) -> str:
        """The score text for the image on screen ("" before any restore)."""
        if self.result is None or self._layers.get("restored") not in self.viewer.layers:
            return ""
        slot = current_slot(self.viewer, self._layers["restored"])
        return overlay_text(self.result, slot)

    def _update_overlay(self, _event=None) -> None:
        text = self.overlay()
        overlay = self.viewer.canvas.overlays.text
        overlay.text, overlay.visible = text, bool(text)

    def compare(self) -> None:
        """GT | input | restored side by side (grid mode) with linked contrast limits; or restored | trust."""
        if self.result is None:
            raise ValueError("nothing to compare yet: restore first")
        if self.compare_what.value == COMPARE_TRUST:
            if self._layers.get("trust") not in self.viewer.layers:
                raise ValueError("no trust layer: restore with a calibrated run and 'trust layer' ticked")
            self.end_compare()
            members = [(self._layers["restored"], None), (self._layers["trust"], None)]
            self._comparison = Comparison(self.viewer, members, link=False)
            self.compare_button.text = "End compare"
            return
        members = [(self._layers["input"], None), (self._layers["restored"], None)]
        if self._gt_layer is not None and self._gt_layer in self.viewer.layers:
            members.insert(0, (self._gt_layer, self.result.gt_window))
        self.end_compare()
        self._comparison = Comparison(self.viewer, members)
        self.compare_button.text = "End compare"

    def end_compare(self) -> None:
        """Leave grid mode; the layers visible before Compare are visible again."""
        if self._comparison is not None:
            self._comparison.end()
            self._comparison = None
        self.compare_button.text = "Compare"

    def _toggle_compare(self) -> None:
        try:
            self.end_compare() if self._comparison is not None else self.compare()
        except ValueError as exc:
            self.report(exc)

    def save_csv(self, path: str | Path) -> Path:
        """Write the score table as CSV (see :meth:`ScoresTable.save_csv`)."""
        return self.table.save_csv(path)

    def _ask_csv(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save scores as CSV", "scores.csv", "CSV (*.csv)")
        if path:
            try:
                self.save_csv(path)
            except (ValueError, OSError) as exc:
                self.report(exc)

    # --- state -> controls -----------------------------------------------------------------------

    def render_state(self) -> None:
        running = self.status.running
        self.form.enabled = self.mosaic_box.enabled = not running
        has_result = self.result is not None
        self.compare_button.enabled = has_result and not running
        self.copy_button.enabled = self.save_button.enabled = has_result and self.result.scored

    def _burst_choices(self, _widget=None) -> list[str]:
        return burst_layer_names(self.viewer.layers)

    def _gt_choices(self, _widget=None) -> list[str]:
        return [NO_GT, *gt_layer_names(self.viewer.layers)]

    def refresh_layers(self) -> None:
        """New or removed layers: keep the user's choices where they still exist."""
        keep_choice(self.burst, self._preferred_burst)
        self._choose_gt(keep=True)
        keep_choice(self.mosaic_box.stream)

    def _preferred_burst(self) -> str | None:
        """The burst to score unless the user picks another: a Test split (data no network trained
        on), else Val, else the first burst open."""
        bursts = find_bursts(self.viewer.layers)
        for split in ("Test", "Val"):
            if name := next((b.low.name for b in bursts if b.split == split), None):
                return name
        return next(iter(self._burst_choices()), None)

    def _choose_gt(self, _value=None, keep: bool = False) -> None:
        """The GT partner of the chosen burst when open, else none; `keep` a user's pick."""
        follow_choice(self.gt, self._partner, NO_GT, keep)

    def _partner(self) -> str | None:
        return next((b.gt.name for b in find_bursts(self.viewer.layers) if b.low.name == self.burst.value), None)


def _checkpoint_name(path: Path) -> str:
    """``run/best.pt`` -> ``"run (best.pt)"``, for the status line."""
    return f"{path.parent.name} ({path.name})" if path.suffix == ".pt" else path.name
