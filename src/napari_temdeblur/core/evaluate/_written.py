"""Which files ``temdeblur evaluate`` wrote itself: those it may replace without --overwrite
(docs/safety.md). Each of its outputs says so in its own content, as they are files named one by one
rather than the contents of a folder with a record."""

from __future__ import annotations

from pathlib import Path

from napari_temdeblur.core import DataError
from napari_temdeblur.core.io import read_json

from ._results import EVALUATION_FORMAT

#: The PNG ``Software`` text of the figures (matplotlib's own otherwise).
SOFTWARE = "napari-temdeblur"
#: The first line of the markdown tables ``temdeblur evaluate --markdown`` writes (hidden when rendered).
TABLES_MARK = "<!-- napari-temdeblur evaluate: tables -->"


def written_by_evaluate(path: str | Path) -> bool:
    """Whether `path` is an output of ``temdeblur evaluate``: an evaluation JSON, a figure it drew
    (PNG ``Software`` text), or markdown tables starting with :data:`TABLES_MARK`."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            start = handle.read(len(TABLES_MARK))
        if start.startswith(b"\x89PNG"):
            from PIL import Image  # matplotlib's own dependency

            with Image.open(path) as image:
                return str(image.info.get("Software", "")).startswith(SOFTWARE)
        if start == TABLES_MARK.encode():
            return True
        return read_json(path).get("format") == EVALUATION_FORMAT
    except (DataError, OSError, ValueError):
        return False
