"""The Restore dock's mosaic box: a raw session stream restored into one overview (``temdeblur mosaic``).

The box names the session (by its stream layer, as the reader opens it) and the output folder; the
Restore dock runs :func:`napari_temdeblur.core.restore.mosaic` with its own run and settings, with
progress and Cancel, and opens the result through the plugin's reader (lazy, in nm, the HQ images
placed). A cancelled mosaic keeps its restored positions: Make mosaic again continues it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from magicgui.widgets import ComboBox, Container, FileEdit, PushButton
from napari.utils.notifications import show_info

from napari_temdeblur.core.restore import MosaicResult, mosaic
from napari_temdeblur.layers import LayerKind, kind_of, layer_info
from napari_temdeblur.widgets._dock import RunState, chosen_path


class MosaicBox(Container):
    """Controls for making a mosaic of a session's stream, run by the Restore dock.

    Parameters
    ----------
    dock : RestoreWidget
        The dock whose run, settings, worker and status the mosaic uses; its viewer's stream layers
        are the sessions offered.

    Attributes
    ----------
    running_out : Path or None
        While a mosaic runs: the folder its restored positions are kept in (for the cancel message).
    """

    def __init__(self, dock):
        super().__init__(labels=True, label="mosaic")
        self._dock, self._viewer = dock, dock.viewer
        self.running_out: Path | None = None
        self.stream = ComboBox(label="session stream", choices=self._streams, tooltip="a raw session's stream layer")
        self.out = FileEdit(
            label="mosaic folder",
            mode="d",
            nullable=True,
            tooltip="where mosaic.ome.zarr goes; a folder begun for this session and run continues",
        )
        self.make_button = PushButton(text="Make mosaic")
        self.extend([self.stream, self.out, self.make_button])
        self.make_button.changed.connect(self.make)

    def _streams(self, _widget=None) -> list[str]:
        return [layer.name for layer in self._viewer.layers if kind_of(layer) is LayerKind.STREAM]

    def session_and_out(self) -> tuple[Path, Path]:
        """(session folder, output folder) chosen.

        Raises
        ------
        ValueError
            No stream layer or no output folder chosen.
        """
        if self.stream.value is None:
            raise ValueError("no session stream: open an acquisition session (File > Open Folder)")
        out = chosen_path(self.out.value)
        if out is None:
            raise ValueError("choose the mosaic folder to write to")
        return Path(layer_info(self._viewer.layers[self.stream.value])["path"]), out

    def make(self) -> None:
        """Restore the chosen session's stream into one mosaic (``temdeblur mosaic``) with the dock's
        run and settings, then open it (the Make mosaic button)."""
        dock = self._dock
        if dock.status.running:
            return
        try:
            run = dock.run_folder()
            session, out = self.session_and_out()
            # a restart must restore alike; a mosaic keeps no flags
            options = dataclasses.replace(dock.options(), adapt_bn=False, flags=False)
        except ValueError as exc:
            dock.fail(exc)
            return
        dock.progress.value, self.running_out = 0, out
        dock.status.message = f"making the mosaic of {session.name} in {out}"
        if dock.adapt_bn.value:
            dock.status.message += " without batch-norm adaptation (a mosaic continued later must restore alike)"
        dock.run_work(mosaic, run, session, out, options=options, on_result=self._made)

    def _made(self, result: MosaicResult) -> None:
        self._viewer.open(str(result.out), plugin="napari-temdeblur")
        done = f"mosaic of {len(result.positions)} positions in {result.out}"
        if result.resumed:
            done += f" ({result.resumed} restored before)"
        self._dock.status.message, self._dock.status.state = done, RunState.DONE
        show_info(f"napari-temdeblur: {done}")
