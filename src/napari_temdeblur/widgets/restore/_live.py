"""The Restore dock's live box: a session folder watched while the microscope writes its stream, each new
position restored into a growing mosaic (``temdeblur live``, docs/live.md).

The box runs :func:`napari_temdeblur.core.restore.live` with the dock's run and settings in the dock's
thread worker and shows, as events arrive, the newest raw frame, the newest restored position (placed
on the mosaic) and the mosaic at each rebuild, all in nm, and frames/s, positions/s and latency. Stop
(the box's button or the dock's Cancel) sends ``core.STOP`` in: the run fills the gaps and writes the
mosaic, then the box shows it.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from magicgui.widgets import Container, FileEdit, FloatSpinBox, Label, PushButton

from napari_temdeblur.core import STOP, DataError
from napari_temdeblur.core.io import read_pyramid, read_session_meta
from napari_temdeblur.core.restore import (
    FrameArrived,
    LiveOptions,
    LiveRate,
    LiveRestored,
    LiveResult,
    MosaicWritten,
    live,
)
from napari_temdeblur.widgets._dock import RunState, chosen_path


class LiveBox(Container):
    """Controls of live restoration in the Restore dock.

    Parameters
    ----------
    dock : RestoreWidget
        Whose run, settings, worker and status the live run uses.
    """

    def __init__(self, dock):
        super().__init__(labels=True, label="live")
        self._dock = dock
        self.session = FileEdit(
            label="live session", mode="d", nullable=True, tooltip="a session folder whose stream/ the microscope fills"
        )
        self.out = FileEdit(
            label="live mosaic folder", mode="d", nullable=True, tooltip="where mosaic.ome.zarr grows; continued"
        )
        self.idle_timeout = FloatSpinBox(
            label="idle timeout", min=0, max=3600, step=5, value=0, tooltip="stop after this many s without a frame"
        )
        self.idle_timeout.native.setSpecialValueText("never")
        self.button = PushButton(text="Start live")
        self.rate = Label(value="")
        self.rate.native.setWordWrap(True)  # the rates wrap, never widen the dock
        self.extend([self.session, self.out, self.idle_timeout, self.button, self.rate])
        self.running = False
        self._scale = (1.0, 1.0)
        self._name = ""
        self.button.changed.connect(self.toggle)
        dock.status.events.state.connect(self._state)

    def toggle(self) -> None:
        """Start live restoration, or stop the one running (the button)."""
        if self.running:
            self._dock.stop()
        elif not self._dock.status.running:
            self.start()

    def start(self) -> None:
        dock = self._dock
        try:
            run = dock.run_folder()
            session, out = chosen_path(self.session.value), chosen_path(self.out.value)
            if session is None:
                raise ValueError("choose the live session folder (session.json, stream/)")
            if out is None:
                raise ValueError("choose the live mosaic folder to write to")
            size = read_session_meta(session)["stream_pixel_size_nm"]
            options = LiveOptions(
                idle_timeout=self.idle_timeout.value or None,
                restore=dataclasses.replace(dock.options(), adapt_bn=False, flags=False),
            )
        except (ValueError, DataError) as exc:
            dock.fail(exc)
            return
        self._scale, self._name = (size, size), session.name
        self.running, self.button.text, self.rate.value = True, "Stop live", ""
        dock.status.message = f"watching {session / 'stream'} for frames"
        dock.run_work(live, run, session, out, options, on_result=self._done)

    def request_stop(self, worker) -> bool:
        """Send STOP in when live runs (it finishes and writes the mosaic); False when it does not."""
        if not self.running:
            return False
        worker.send(STOP)
        return True

    def on_event(self, event) -> None:
        """Show a live event: the newest frames, the mosaic, the rates."""
        if isinstance(event, FrameArrived) and event.frame is not None:
            self._show(f"{self._name} live raw", event.frame)
        elif isinstance(event, LiveRestored):
            self._show(f"{self._name} live restored", event.image, event.yx)
        elif isinstance(event, MosaicWritten):
            self._show(f"{self._name} live mosaic", read_pyramid(event.path).levels)
        elif isinstance(event, LiveRate):
            self.rate.value = event.message

    def _show(self, name: str, data, yx=(0.0, 0.0)) -> None:
        layers = self._dock.viewer.layers
        translate = (yx[0] * self._scale[0], yx[1] * self._scale[1])
        if name in layers:
            layers[name].data, layers[name].translate = data, translate
            return
        multiscale = isinstance(data, list)
        sample = np.asarray(data[-1] if multiscale else data)
        low, high = np.percentile(sample[sample > 0], (0.5, 99.5)) if sample.any() else (0, 1)
        self._dock.viewer.add_image(
            data,
            name=name,
            multiscale=multiscale,
            scale=self._scale,
            translate=translate,
            units=("nm", "nm"),
            contrast_limits=(float(low), float(max(high, low + 1))),
        )

    def _done(self, result: LiveResult) -> None:
        done = f"live: {result.frames} frames, mosaic of {len(result.positions)} positions in {result.out}"
        self._dock.status.message, self._dock.status.state = done, RunState.DONE

    def _state(self, _state=None) -> None:
        if not self._dock.status.running:
            self.running, self.button.text = False, "Start live"
        self.session.enabled = self.out.enabled = self.idle_timeout.enabled = not self.running
