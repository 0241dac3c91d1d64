"""The "Train network" dock: pick data and settings, run the core trainer in a thread worker.

The dock reads its controls into a :class:`~napari_temdeblur.core.train.TrainConfig`, runs
:func:`napari_temdeblur.core.train.train` in a napari thread worker and follows its typed events.
Everything it shows follows one :class:`TrainingStatus`; the Train button reads "Stop" while the
state is ``running``.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

from magicgui.widgets import ComboBox, Container, FileEdit, Label, ProgressBar
from napari.utils.notifications import show_info
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QSizePolicy

from napari_temdeblur.core import Progress, time_left
from napari_temdeblur.core.models import BEST
from napari_temdeblur.core.train import (
    HISTORY,
    STOP,
    BatchDone,
    EpochDone,
    TrainConfig,
    TrainingData,
    TrainResult,
    TrainStarted,
    best_of,
    read_history,
    train,
)
from napari_temdeblur.layers import find_bursts, hold_out, validation_for
from napari_temdeblur.widgets._dock import Dock, RunState, follow_choice, keep_choice

from ._batch_clock import BatchClock
from ._form import SettingsForm
from ._plot import HistoryPlot
from ._status import EpochRecord, TrainingStatus

if TYPE_CHECKING:
    import napari


class DataSource(Enum):
    """Where the training pairs come from."""

    LAYERS = "burst layers in the viewer"
    FOLDER = "dataset folder"


#: Validation choice that holds out images of the training bursts.
HOLD_OUT = "hold out from the training bursts"


def run_training(
    cfg: TrainConfig, load_data: Callable[[], TrainingData], out: Path, resume: bool
) -> Generator[Progress, str | None, TrainResult | None]:
    """The worker's generator: load the data, then train; returns the core's TrainResult.

    A value sent in (``worker.send(STOP)``) goes on to the core trainer, which stops after the
    current batch, keeps its checkpoints and returns a result with ``stopped_reason="cancelled"``.
    A Stop that arrives before training starts returns None.
    """
    if (yield Progress("loading training data", 0, 1)) == STOP:
        return None
    data = load_data()
    return (yield from train(cfg, data, out, resume=resume))


class TrainingWidget(Dock):
    """Dock widget that trains a burst restoration network.

    Parameters
    ----------
    napari_viewer : napari.Viewer
        The viewer whose burst layers can be trained on; its theme colours the plot.
    """

    run_text, stop_text = "Train", "Stop"
    memory_hint = "try a smaller batch or patch, fewer frames, or width tiny"
    other_hint = "the best weights so far stay in the output folder's best.pt"

    def __init__(self, napari_viewer: napari.Viewer):
        super().__init__(napari_viewer, TrainingStatus())
        self._run_folder: Path | None = None
        self._clock = BatchClock()
        self._stopping_timer = QTimer(self)  # while a Stop waits: how far into the batch, every second
        self._stopping_timer.setInterval(1000)
        self._stopping_timer.timeout.connect(self._show_stopping)

        self.source = ComboBox(
            label="training data", choices=[(s.value, s) for s in DataSource], value=DataSource.LAYERS
        )
        self.train_layers = ComboBox(label="train bursts", choices=self._burst_titles)
        self.val_layers = ComboBox(label="validation", choices=self._val_choices)
        self.data_folder = FileEdit(label="dataset folder", mode="d", nullable=True)
        self.data = Container(widgets=[self.source, self.train_layers, self.val_layers, self.data_folder])
        self.settings = SettingsForm()
        self.device_in_use = Label(label="device in use", value="-")
        self.epoch_bar = ProgressBar(label="epoch", min=0, max=1, value=0)
        self.batch_bar = ProgressBar(label="batch", min=0, max=1, value=0)
        self.progress = Container(widgets=[self.device_in_use, self.run_button, self.epoch_bar, self.batch_bar])
        self.result_label = Label()
        self.outcome = Container(widgets=[self.status_label, self.result_label], labels=False)
        self.result_label.native.setWordWrap(True)  # long messages wrap, never widen the dock
        self.result_label.native.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.plot = HistoryPlot(napari_viewer.theme)
        self.lay_out(self.data, self.settings.container, self.progress, self.outcome, self.plot, stretch=self.plot)

        self.source.changed.connect(self._show_source)
        self.train_layers.changed.connect(self._choose_validation)
        napari_viewer.events.theme.connect(self._on_theme)  # a method: napari holds it weakly
        self.status.events.device.connect(lambda text: setattr(self.device_in_use, "value", text or "-"))
        self.status.events.history.connect(self._render_history)
        self.status.events.best_epoch.connect(self._render_history)
        self.refresh_layers()
        self._show_source()
        self._render_state()
        self._render_history()

    # --- training data ---------------------------------------------------------------------------

    def data_loader(self) -> tuple[Callable[[], TrainingData], str]:
        """A function that builds the training data (run in the worker), and a note about it.

        Pairs are cut from the layers here, so a bad choice fails at once; reading a folder and
        deriving intensity windows happen in the worker.
        """
        if self.source.value is DataSource.FOLDER:
            folder = self.data_folder.value
            if folder is None or not str(folder).strip():
                raise ValueError("choose a dataset folder (published layout: <Sample>/<Split>/GT and Low)")
            return (lambda: TrainingData.from_folders([folder])), f"training on the dataset in {folder}"
        bursts = {b.title: b for b in find_bursts(self.viewer.layers)}
        if self.train_layers.value not in bursts:
            raise ValueError(
                "no burst layers to train on: open a registered dataset (File > Open Folder), register "
                "a session, or choose a dataset folder"
            )
        chosen = [bursts[self.train_layers.value]]
        train_pairs = chosen[0].pairs()
        if self.val_layers.value in bursts:
            chosen.append(bursts[self.val_layers.value])
            val_pairs = chosen[1].pairs()
            note = f"training on {chosen[0].title}, validating on {chosen[1].title}"
        else:
            all_pairs = train_pairs
            train_pairs, val_pairs = hold_out(all_pairs)
            held = ", ".join(p.name for p in val_pairs)
            note = f"no validation layers open: holding out {held} of {chosen[0].title} for validation"
            kept = {p.name for p in train_pairs + val_pairs}
            gap = [p.name for p in all_pairs if p.name not in kept]
            if gap:
                note += f" ({', '.join(gap)} overlaps it and is left out)"
        # The layers' windows are what the user sees (the reader's per-sample windows).
        gt_window, low_window = chosen[0].windows()
        sources = [layer.name for burst in chosen for layer in (burst.gt, burst.low)]
        return (
            lambda: TrainingData.from_pairs(
                train_pairs, val_pairs, gt_window=gt_window, low_window=low_window, sources=sources
            )
        ), note

    # --- running ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Start training with the current settings (what the Train button does)."""
        if self.status.running:
            return
        try:
            cfg, out = self.settings.train_config(), self.settings.output_folder()
            load, note = self.data_loader()
        except ValueError as exc:
            self._run_folder = None
            self.fail(exc)
            return
        self.status.history, self.status.best_epoch, self.status.best_checkpoint = (), None, None
        self.status.input_val = None
        self.status.device, self.status.message, self.result_label.value = "", note, ""
        self.epoch_bar.max, self.epoch_bar.value = cfg.epochs, 0
        self.batch_bar.value = 0
        self._run_folder = out
        show_info(f"napari-temdeblur: {note}")
        self._clock.restart()
        self.run_work(run_training, cfg, load, out, self.settings.resume.value, on_result=self._on_returned)

    def request_stop(self, worker) -> None:
        """Stop after the current batch (the trainer returns its result); best.pt keeps the best epoch.
        Until then the status says how far into the batch it is and about how long is left."""
        worker.send(STOP)
        self._stopping_timer.start()

    def _show_stopping(self) -> None:
        if self.status.running:
            self.status.message = self.stopping_message

    @property
    def stopping_message(self) -> str:
        return self._clock.stopping_message()

    def on_event(self, event: Progress) -> None:
        batch = isinstance(event, BatchDone)
        self._clock.event(batch_done=batch, epoch_end=batch and event.done == event.total)
        if isinstance(event, TrainStarted):
            self.status.device = event.device
            self.epoch_bar.max, self.epoch_bar.value = event.total, event.done
            self.batch_bar.max = event.steps_per_epoch
            self.status.input_val = (event.input_val_ssim, event.input_val_psnr)
            if event.done and (self._run_folder / HISTORY).is_file():  # resumed: plot the earlier epochs too
                rows = read_history(self._run_folder / HISTORY)
                self.status.history = tuple(
                    EpochRecord(r["epoch"], r["train_loss"], r["val_ssim"], r["val_psnr"]) for r in rows
                )
                self.status.best_epoch = best_of(rows)[0]
            self.status.message = (
                f"{event.parameters:,} parameters, {event.train_images} training images, {event.val_tiles} "
                f"val tiles (input SSIM {event.input_val_ssim:.4f})"
            )
        elif isinstance(event, BatchDone):
            self.batch_bar.max, self.batch_bar.value = event.total, event.done
            self.status.message = f"epoch {event.epoch}, step {event.done}/{event.total}: loss {event.loss:.4f}"
        elif isinstance(event, EpochDone):
            self.epoch_bar.value = event.done
            self.status.best_epoch = event.best_epoch
            self.status.best_checkpoint = self._run_folder / BEST
            record = EpochRecord(event.epoch, event.train_loss, event.val_ssim, event.val_psnr)
            self.status.history = (*self.status.history, record)
            left = time_left(event.seconds_left)
            self.status.message = (
                f"epoch {event.epoch}: loss {event.train_loss:.4f}, val SSIM {event.val_ssim:.4f}, "
                f"PSNR {event.val_psnr:.2f} dB ({event.seconds:.1f} s per epoch{', ' + left if left else ''})"
            )
        else:
            self.status.message = event.message or event.stage

    def _on_returned(self, result: TrainResult | None) -> None:
        if result is None or result.stopped_reason == "cancelled":
            self.status.message = self.stopped_message()
            self.status.state = RunState.STOPPED
            return
        self.status.best_epoch = result.best_epoch
        self.status.message = (
            f"{result.stopped_reason} after {len(result.history)} epochs: best val SSIM {result.best_val_ssim:.4f} "
            f"at epoch {result.best_epoch} (unrestored input {result.input_val_ssim:.4f})"
        )
        if result.psnr_below_input:
            self.status.message += (
                f"; but its val PSNR {result.best_val_psnr:.2f} dB is below the input's {result.input_val_psnr:.2f} "
                "dB (intensities further off): train longer before using it"
            )
        self.status.state = RunState.DONE

    def stopped_message(self) -> str:
        return f"stopped after {len(self.status.history)} epoch(s)"

    def data_hint_for(self, exc: BaseException) -> str:
        """A problem of the run folder (resume it) or of the training data (what a dataset holds)."""
        run, path = self._run_folder, getattr(exc, "path", None)
        if run is not None and path is not None and run in (path, path.parent):
            return "to continue that run, tick resume"
        return "a dataset folder holds <Sample>/<Split>/GT/<name>.tif and Low/<name>/<name>_<k>.tif"

    # --- state -> controls -----------------------------------------------------------------------

    def render_state(self) -> None:
        running = self.status.running
        if not running:
            self._stopping_timer.stop()
        self.data.enabled = self.settings.container.enabled = not running
        best = self.status.best_checkpoint
        if not running and best is not None and best.is_file():
            self.result_label.value = f"best: epoch {self.status.best_epoch}, {best}"

    def _on_theme(self, event) -> None:
        self.plot.set_theme(event.value)

    def _render_history(self) -> None:
        # no empty axes before the first epoch: the plot appears with something to show
        self.plot.setVisible(bool(self.status.history))
        self.plot.plot(self.status.history, self.status.best_epoch, self.status.input_val)

    def _show_source(self) -> None:
        from_layers = self.source.value is DataSource.LAYERS
        self.train_layers.visible = self.val_layers.visible = from_layers
        self.data_folder.visible = not from_layers

    def _burst_titles(self, _widget=None) -> list[str]:
        return [b.title for b in find_bursts(self.viewer.layers)]

    def _val_choices(self, _widget=None) -> list[str]:
        return [HOLD_OUT] + [t for t in self._burst_titles() if t != self.train_layers.value]

    def refresh_layers(self) -> None:
        """New or removed layers: keep the user's choices where they still exist, else the defaults."""
        keep_choice(
            self.train_layers,
            lambda: next((b.title for b in find_bursts(self.viewer.layers) if b.split == "Train"), None),
        )
        self._choose_validation(keep=True)

    def _choose_validation(self, _value=None, keep: bool = False) -> None:
        """The Val split of the training sample when open, else holding out; `keep` a user's pick."""
        follow_choice(self.val_layers, self._validation_split, HOLD_OUT, keep)

    def _validation_split(self) -> str | None:
        bursts = find_bursts(self.viewer.layers)
        train = next((b for b in bursts if b.title == self.train_layers.value), None)
        val = validation_for(train, bursts) if train is not None else None
        return None if val is None else val.title
