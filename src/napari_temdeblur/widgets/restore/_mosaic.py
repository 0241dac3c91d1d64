"""The Restore dock's mosaic box: a raw session stream restored into one overview (``temdeblur mosaic``).

The box names the session (by its stream layer, as the reader opens it) and the output folder; the
Restore dock runs :func:`napari_temdeblur.core.restore.mosaic` with its own run and settings, with
progress and Cancel, and opens the result through the plugin's reader (lazy, in nm, the HQ images
placed). A cancelled mosaic keeps its restored positions: Make mosaic again continues it.
"""

from __future__ import annotations

from pathlib import Path

from magicgui.widgets import ComboBox, Container, FileEdit, PushButton

from napari_temdeblur.layers import LayerKind, kind_of, layer_info


class MosaicBox(Container):
    """Controls for making a mosaic of a session's stream.

    Parameters
    ----------
    viewer : napari.Viewer
        Where the session's stream layers are found.
    """

    def __init__(self, viewer):
        super().__init__(labels=True, label="mosaic")
        self._viewer = viewer
        self.stream = ComboBox(label="session stream", choices=self._streams, tooltip="a raw session's stream layer")
        self.out = FileEdit(
            label="mosaic folder",
            mode="d",
            nullable=True,
            tooltip="where mosaic.ome.zarr goes; a folder begun for this session and run continues",
        )
        self.make_button = PushButton(text="Make mosaic")
        self.extend([self.stream, self.out, self.make_button])

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
        if self.out.value is None or str(self.out.value).strip() in ("", "."):
            raise ValueError("choose the mosaic folder to write to")
        return Path(layer_info(self._viewer.layers[self.stream.value])["path"]), Path(self.out.value)
