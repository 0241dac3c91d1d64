"""The registration dock's export box: which split each registered HQ image goes to, and where."""

from __future__ import annotations

from collections.abc import Callable

from magicgui.widgets import ComboBox, Container, FileEdit, PushButton
from napari.utils.notifications import show_info, show_warning

from napari_temdeblur.core.io import SPLITS, Session
from napari_temdeblur.core.register import DatasetExport, PairRegistration, export_dataset

#: One split for the whole session, or a split chosen for each HQ image.
SPLIT_MODES = ("per session", "per HQ image")


class ExportBox(Container):
    """Controls for writing registered bursts in the published dataset layout.

    Parameters
    ----------
    current_name : callable () -> str or None
        The HQ image on screen: in "per HQ image" mode, the split box sets and shows its split.
    """

    def __init__(self, current_name: Callable[[], str | None]):
        super().__init__(labels=True, label="export")
        self._current_name = current_name
        self._splits: dict[str, str] = {}  # HQ name -> split, in "per HQ image" mode
        self.split_by = ComboBox(label="split by", choices=SPLIT_MODES)
        self.split = ComboBox(
            label="split",
            choices=SPLITS,
            tooltip="per session: the split of every image; per HQ image: the split of the HQ image on screen",
        )
        self.out = FileEdit(label="dataset folder", mode="d", nullable=True)
        self.export_button = PushButton(text="Export dataset")
        self.extend([self.split_by, self.split, self.out, self.export_button])
        self.split.changed.connect(self._choose)
        self.split_by.changed.connect(lambda: self.show_split(self._current_name()))

    @property
    def per_image(self) -> bool:
        return self.split_by.value == SPLIT_MODES[1]

    def _choose(self, split: str) -> None:
        if self.per_image and self._current_name() is not None:
            self._splits[self._current_name()] = split

    def show_split(self, name: str | None) -> None:
        """Show the split of HQ image `name` (in "per HQ image" mode; Train until chosen)."""
        if self.per_image:
            with self.split.changed.blocked():
                self.split.value = self._splits.get(name, SPLITS[0])

    def split_for(self, _session: Session, name: str) -> str:
        """The split of HQ image `name` (``export_dataset``'s ``split_for``)."""
        return self._splits.get(name, SPLITS[0]) if self.per_image else self.split.value

    def export(self, session: Session, pairs: list[PairRegistration]) -> DatasetExport:
        """Write the registered pairs under the chosen folder (those without accepted frames are left
        out, with the reason, in the result).

        Raises
        ------
        ValueError
            No folder chosen, or no pair registered yet.
        """
        if self.out.value is None:
            raise ValueError("choose the dataset folder to export to")
        if not pairs:
            raise ValueError("no registered HQ image yet: register one before exporting")
        return export_dataset([(session, pairs)], self.out.value, self.split_for)

    def report(self, export: DatasetExport) -> tuple[str, bool]:
        """Tell the user what an export did (a notification per image left out, with the reason);
        returns the status line and whether anything was written."""
        left_out = [f"{name} left out: {reason}" for name, reason in export.dropped.items()]
        for line in left_out:
            show_warning(line)
        if not export.written:
            return "nothing exported: " + "; ".join(left_out), False
        show_info(f"wrote {len(export.written)} files to {self.out.value}")
        return "; ".join([f"exported to {self.out.value}", *left_out]), True
