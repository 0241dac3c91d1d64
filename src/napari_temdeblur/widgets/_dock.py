"""The one dock pattern: what the Register, Train and Restore docks share (docs/design.md, The docks).

A dock reads its controls into a core options object, runs one core generator in a napari thread
worker and follows its typed progress events. Everything it shows follows one evented
:class:`DockStatus` (``dock.status``): the run button reads its stop text while the state is
``running``, and the form is disabled meanwhile. Closing the dock (napari unparents its widget) stops a
run; a worker left behind reports to no one.
"""

from __future__ import annotations

import functools
import inspect
import sys
import time
import weakref
from collections.abc import Callable, Generator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from magicgui.widgets import Label, ProgressBar, PushButton
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error
from psygnal import evented
from qtpy.QtCore import QEvent, Qt
from qtpy.QtWidgets import QApplication, QFrame, QLayout, QScrollArea, QSizePolicy, QVBoxLayout, QWidget

from napari_temdeblur.core import DataError, DiskFull, Progress, first_line, out_of_memory
from napari_temdeblur.core.io import FolderInUse, OverwriteRefused

if TYPE_CHECKING:
    import napari


class RunState(Enum):
    """Where a dock's work stands (careamics-napari's explicit state).

    ``idle``: nothing run yet. ``running``: a worker runs. ``done``: the work ended by itself.
    ``stopped``: the user stopped it (what it saved so far is kept). ``failed``: an error ended or
    prevented it; the message says why.
    """

    IDLE = "idle"
    RUNNING = "running"
    DONE = "done"
    STOPPED = "stopped"
    FAILED = "failed"


@evented
@dataclass
class DockStatus:
    """What a dock shows; every field change emits ``status.events.<field>``. Docks with more to show
    subclass it (an evented dataclass too)."""

    state: RunState = RunState.IDLE
    message: str = ""

    @property
    def running(self) -> bool:
        return self.state is RunState.RUNNING


def describe_error(exc: BaseException, *, data_hint: str = "", memory_hint: str = "", other_hint: str = "") -> str:
    """One line naming what went wrong and, where it helps, what to try.

    Parameters
    ----------
    exc : BaseException
    data_hint : str
        Appended in brackets to a DataError (a bad file or folder): what a good one holds.
    memory_hint : str
        What to lower when the device ran out of memory.
    other_hint : str
        Appended to any other error (a bug): what is kept.
    """
    if isinstance(exc, (FolderInUse, OverwriteRefused)):  # they say what to do; a hint on the data would mislead
        return str(exc)
    if isinstance(exc, DataError):
        return f"{exc} ({data_hint})" if data_hint else str(exc)
    if isinstance(exc, DiskFull):  # names the file and says what was kept
        return str(exc)
    if out_of_memory(exc):
        return f"out of memory ({first_line(exc)}): {memory_hint}" if memory_hint else f"out of memory ({exc})"
    if isinstance(exc, ValueError):  # the core's messages name the value and what to change
        return str(exc)
    message = f"{type(exc).__name__}: {exc}"
    return f"{message} ({other_hint})" if other_hint else message


#: The value each ComboBox was last given automatically (not by the user), so that a choice made for
#: the user follows layers as they arrive (a dataset's splits open one after the other) while a choice
#: the user made stays.
_AUTOMATIC: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def in_callers_torch_threads(work: Callable) -> Callable:
    """`work` (a generator or plain function) that, wherever it runs, first sets torch's CPU threads to
    the caller's count (when torch is loaded at all).

    torch keeps its thread count per thread once a thread has computed: a worker thread that Qt's pool
    reuses keeps the count of its first job, so without this the dock's results could differ in the
    last digits from the same restoration run in the console, and from one run to the next.
    """
    torch = sys.modules.get("torch")
    if torch is None:
        return work
    threads = torch.get_num_threads()
    if inspect.isgeneratorfunction(work):

        def run(*args, **kwargs):
            torch.set_num_threads(threads)
            return (yield from work(*args, **kwargs))

    else:

        def run(*args, **kwargs):
            torch.set_num_threads(threads)
            return work(*args, **kwargs)

    return functools.wraps(work)(run)


def chosen_path(value) -> Path | None:
    """A file or folder field's value as a path, None when nothing is chosen: magicgui's FileEdit holds
    ``Path(".")`` (or an empty or blank text) until the user picks something."""
    if value is None or str(value).strip() in ("", "."):
        return None
    return Path(value)


def keep_choice(combo, preferred: Callable[[], Any] | None = None) -> None:
    """Refresh a ComboBox's choices, keeping the user's choice while it is still offered; otherwise
    (nothing chosen yet, the choice gone, or a choice made automatically before) choose `preferred()`
    when that is offered."""
    if combo not in _AUTOMATIC:  # the value a combo starts with is the first of its choices, not a pick
        _AUTOMATIC[combo] = combo.value

        def picked(value) -> None:  # any other value than the automatic one is the user's pick
            if _AUTOMATIC.get(combo) != value:
                _AUTOMATIC[combo] = None

        combo.changed.connect(picked)
    previous = combo.value
    automatic = _AUTOMATIC.get(combo)
    combo.reset_choices()
    if previous is not None and previous in combo.choices and previous != automatic:
        combo.value = previous
        return
    choice = preferred() if preferred is not None else None
    if choice in combo.choices:
        combo.value = choice
    elif previous in combo.choices:
        combo.value = previous
    _AUTOMATIC[combo] = combo.value


def follow_choice(combo, partner: Callable[[], Any], none: Any, keep: bool = False) -> None:
    """A choice that follows another (the GT of a burst, the Val split of a Train split): set it to
    ``partner()`` (else to `none`); with `keep`, a user's pick other than `none` stays while offered."""
    if keep and combo.value not in (None, none):
        keep_choice(combo, partner)
        return
    combo.reset_choices()
    choice = partner()
    combo.value = choice if choice in combo.choices else none


def show_progress(bar: ProgressBar, event: Progress) -> None:
    """Put a progress event on a progress bar (busy while the total is unknown)."""
    bar.max, bar.value = max(event.total, 1), min(event.done, max(event.total, 1))


class Dock(QWidget):
    """The shared base of the docks.

    A subclass builds its controls (keeping them as attributes tests can set), lays them out with
    :attr:`run_button` and :attr:`status_label`, implements :meth:`start` (read the controls, then
    :meth:`run_work` a core generator) and reacts to events in :meth:`on_event` and to the result in the
    ``on_result`` it passes to :meth:`run_work`.

    Parameters
    ----------
    napari_viewer : napari.Viewer
    status : DockStatus, optional
        The dock's status (a subclass's own evented status class).
    """

    #: The run button's text, and its text while a run goes on.
    run_text, stop_text = "Run", "Stop"
    #: The status message while a stop is waiting for the work to reach its next step.
    stopping_message = "stopping ..."
    #: Hints of :func:`describe_error` for this dock's errors.
    data_hint = memory_hint = other_hint = ""

    def __init__(self, napari_viewer: napari.Viewer, status: DockStatus | None = None):
        super().__init__()
        self.viewer = napari_viewer
        self.status = status if status is not None else DockStatus()
        self._worker = None
        self.run_button = PushButton(text=self.run_text)
        self.status_label = Label()
        self.status_label.native.setWordWrap(True)  # long messages wrap, never widen the dock
        self.status_label.native.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Minimum)
        self.run_button.changed.connect(self._toggle)
        self.status.events.state.connect(self._render_state)
        self.status.events.message.connect(lambda text: setattr(self.status_label, "value", text))
        for event in (napari_viewer.layers.events.inserted, napari_viewer.layers.events.removed):
            event.connect(self._layers_changed)

    def lay_out(self, *parts, stretch: object | None = None) -> None:
        """Stack `parts` (Qt widgets, magicgui widgets or Qt layouts) top to bottom in a scroll area, so
        a dock never forces the window taller than a laptop screen: what does not fit scrolls. The
        part `stretch` takes the spare height."""
        body = QWidget()
        column = QVBoxLayout(body)
        for part in parts:
            if isinstance(part, QLayout):
                column.addLayout(part)
            else:
                column.addWidget(getattr(part, "native", part), stretch=int(part is stretch))
        # spare height below the controls (with a stretch part, only while that part is hidden)
        column.addStretch(int(stretch is None))
        scroll = QScrollArea()
        scroll.setWidget(body)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)  # wrap, never widen
        # never narrower than the controls (they would be cut off on the right with no scroll bar)
        scroll.setMinimumWidth(body.minimumSizeHint().width() + scroll.verticalScrollBar().sizeHint().width())
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)

    # --- what a dock implements --------------------------------------------------------------------

    def start(self) -> None:
        """Read the controls and :meth:`run_work` the work (what the run button does)."""
        raise NotImplementedError

    def on_event(self, event: Progress) -> None:
        """A progress event of the running work (default: its stage and message as the status)."""
        self.status.message = f"{event.stage}: {event.message}" if event.message else event.stage

    def refresh_layers(self) -> None:
        """Layers were added or removed: refresh the layer choices (with :func:`keep_choice`)."""

    def render_state(self) -> None:
        """Enable or relabel the dock's own controls for ``status.state``."""

    def stopped_message(self) -> str:
        """The status message after a stop."""
        return "stopped"

    def request_stop(self, worker) -> None:
        """Ask the worker to stop at the work's next event (default: close the generator there)."""
        worker.quit()

    # --- running -----------------------------------------------------------------------------------

    def run_work(self, work: Callable[..., Generator | Any], *args, on_result: Callable[[Any], None], **kwargs) -> None:
        """Run ``work(*args, **kwargs)`` (a core generator, or a plain function) in a thread worker.

        Its events go to :meth:`on_event`, its return value to `on_result`, an exception to :meth:`fail`;
        a stopped worker returns nothing and the state becomes ``stopped``. The dock reports errors
        itself (status line and notification), so napari does not re-raise them.
        """
        work = in_callers_torch_threads(work)
        worker = create_worker(work, *args, **kwargs, _start_thread=False, _ignore_errors=True)

        def current(handler):  # a worker left behind by a newer run reports to no one
            return lambda *value: handler(*value) if self._worker is worker else None

        if hasattr(worker, "yielded"):
            worker.yielded.connect(current(self.on_event))
        worker.returned.connect(current(on_result))
        worker.errored.connect(current(self.fail))
        worker.finished.connect(current(self._finished))
        self._worker = worker
        self.status.state = RunState.RUNNING
        worker.start()

    def stop(self) -> None:
        """Stop the running work at its next event; what it saved so far is kept."""
        if self._worker is not None and self.status.running:
            self.request_stop(self._worker)
            self.status.message = self.stopping_message

    def wait(self, timeout: float = 600.0) -> RunState:
        """Process Qt events until the running work ends (for scripts and tests); returns the state."""
        deadline = time.monotonic() + timeout
        while self.status.running or self._worker is not None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"still running after {timeout:g} s")
            QApplication.processEvents()
            time.sleep(0.01)
        return self.status.state

    def fail(self, exc: BaseException) -> None:
        """Show an error in the status line and as a notification; the state becomes ``failed``."""
        self.report(exc)
        self.status.state = RunState.FAILED

    def report(self, exc: BaseException) -> None:
        """Show an error without changing the state (e.g. a failed CSV save keeps the result)."""
        message = describe_error(
            exc, data_hint=self.data_hint_for(exc), memory_hint=self.memory_hint, other_hint=self.other_hint
        )
        self.status.message = message
        show_error(f"napari-temdeblur: {message}")

    def data_hint_for(self, exc: BaseException) -> str:
        """The hint for a DataError (a dock may word it by the file at fault)."""
        return self.data_hint

    def _finished(self) -> None:
        # Neither returned nor errored: the worker was stopped (superqt emits no result then).
        self._worker = None
        if self.status.running:
            self.status.message = self.stopped_message()
            self.status.state = RunState.STOPPED

    def _toggle(self) -> None:
        if self.status.running:
            self.stop()
        else:
            self.start()

    def _render_state(self) -> None:
        running = self.status.running
        self.run_button.text = self.stop_text if running else self.run_text
        self.render_state()

    def _layers_changed(self, _event=None) -> None:
        self.refresh_layers()

    def event(self, event: QEvent) -> bool:
        """Removing the dock (napari unparents its widget) stops a run; saved files stay valid."""
        if event.type() == QEvent.Type.ParentChange and self.parent() is None:
            self.stop()
        return super().event(event)
