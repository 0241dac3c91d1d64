"""The Restore dock's preview box: the stream position under napari's frame slider, restored on the fly.

With **Preview** ticked, each move of the frame slider (or napari's play button) asks for the position
it shows in the dock's session stream (the stream layer chosen in its mosaic box): its neighbours are
registered onto it (or, when the dock's mosaic folder holds the session's solved positions, resampled
at them) and it is restored with the dock's run and settings
(:func:`napari_temdeblur.core.restore.restore_position`) in a napari thread worker, so the viewer never
waits. The result goes into one "restored (preview)" layer placed
over that region of the frame. One position is restored at a time; a move while one is being restored
only replaces the position waiting next (latest only), so the preview never works through a backlog of
positions the slider has left. The run is loaded once and kept while the run, checkpoint and device
stay the same; the last :data:`CACHE_POSITIONS` restored positions are kept, so scrubbing back is
instant. A position that cannot be restored (a blank frame, frames that do not register) or a run that
cannot be loaded is said in the dock's status; the preview goes on with the next position.
"""

from __future__ import annotations

import dataclasses
import time
from collections import OrderedDict
from collections.abc import Generator
from pathlib import Path

from magicgui.widgets import CheckBox, Container
from napari.qt.threading import create_worker

from napari_temdeblur.core import DataError, Progress, resolve_device
from napari_temdeblur.core.models import load_model
from napari_temdeblur.core.restore import Restored, mosaic_positions, restore_position
from napari_temdeblur.layers import LayerKind, frame_index, layer_info, tag
from napari_temdeblur.widgets._dock import chosen_path, describe_error, in_callers_torch_threads

from ._view import put_image

#: Restored positions kept (per stream, run and settings), so that going back to one shows it at once.
CACHE_POSITIONS = 8
#: The preview layer's name after the stream layer's title.
PREVIEW = " restored (preview)"


@dataclasses.dataclass(frozen=True)
class Shown:
    """One restored position as the preview layer shows it: the result and the seconds it took."""

    position: int
    result: Restored
    seconds: float


def preview_job(
    loaded, run, device: str, stream, position: int, options, positions, source
) -> Generator[Progress, None, tuple]:
    """Restore one stream position (a generator for a thread worker): load the run unless `loaded`
    (model, checkpoint) is given, then :func:`restore_position`. Returns ((model, checkpoint), Shown)."""
    start = time.perf_counter()
    model, checkpoint = loaded or load_model(run, resolve_device(device))
    # closing this generator (worker.quit()) closes restore_position's at its next tile
    result = yield from restore_position(
        model, checkpoint, stream, position, options, positions=positions, source=source
    )
    return (model, checkpoint), Shown(position, result, time.perf_counter() - start)


class PreviewBox(Container):
    """Preview of a raw session stream in the Restore dock.

    Parameters
    ----------
    dock : RestoreWidget
        The dock whose run (``run_folder()``), settings (``options()``), session stream and mosaic
        folder (its mosaic box's) and status line the preview uses; its viewer's frame slider is followed.

    Attributes
    ----------
    restored : list of int
        Every position restored so far, in order (cached ones are shown, not restored again).
    """

    def __init__(self, dock):
        super().__init__(labels=False, label="preview")
        self._dock, self._viewer = dock, dock.viewer
        self.stream = dock.mosaic_box.stream  # one session stream for the preview and the mosaic
        self.preview = CheckBox(
            text="Preview: restore the frame under the slider",
            value=False,
            tooltip="restore the session stream's position that the frame slider (or play) shows, with "
            "this dock's run and settings, into a layer over the frame",
        )
        self.append(self.preview)
        self.restored: list[int] = []
        self._loaded: tuple[tuple, object] | None = None  # (run key, (model, checkpoint))
        self._cache: OrderedDict[tuple, Shown] = OrderedDict()
        self._worker = self._pending = None
        self._running_key: tuple | None = None
        self.preview.changed.connect(self._toggled)
        self.stream.changed.connect(self.request)
        dock.form.changed.connect(self.request)  # a new run or setting restores the position again
        dock.status.events.state.connect(self._dock_state)
        self._viewer.dims.events.current_step.connect(self.request)

    @property
    def busy(self) -> bool:
        """Whether a position is being restored."""
        return self._worker is not None

    # --- requests --------------------------------------------------------------------------------

    def request(self, _event=None) -> None:
        """Show the position under the frame slider: from the cache, else restore it (now, or next
        when a position is being restored; a newer request replaces a waiting one)."""
        if not self.preview.value:
            return
        if self._dock.parent() is None:  # the dock was closed (napari unparents it): preview no more
            self.stop()
            return
        layer = self._layer()
        if layer is None:
            self._say("preview: no session stream: open an acquisition session (File > Open Folder)")
            return
        position = frame_index(layer, self._viewer.dims.point)
        if self.busy or self._dock.status.running:  # a run of the dock has the status line and the CPU
            self._pending = position
            return
        try:
            key = self._key(layer)
        except ValueError as exc:
            self._say(f"preview: {describe_error(exc)}")
            return
        if self.busy:  # choosing the run (the Train dock's) filled in the run folder, which asked already
            return
        shown = self._cache.get((*key, position))
        if shown is not None:
            self._cache.move_to_end((*key, position))
            self._show(layer, shown, cached=True)
            return
        self._start(layer, key, position)

    def _layer(self):
        return next((layer for layer in self._viewer.layers if layer.name == self.stream.value), None)

    def _key(self, layer) -> tuple:
        """What a restored position depends on: (stream, run, device, tiling); ValueError without a run."""
        options = self._dock.options()
        return (layer_info(layer).get("path", layer.name), str(self._dock.run_folder()), options.device,
                options.inference_tile, options.overlap, options.batch)  # fmt: skip

    def _start(self, layer, key: tuple, position: int) -> None:
        run, device = key[1], key[2]
        loaded = self._loaded[1] if self._loaded is not None and self._loaded[0] == key[1:3] else None
        # one position's batch-norm adaptation would change the kept model for every later one; the
        # flags are for the Restore button's results (a preview shows no flags layer)
        options = dataclasses.replace(self._dock.options(), adapt_bn=False, flags=False)
        path = Path(layer_info(layer).get("path", ""))
        out = chosen_path(self._dock.mosaic_box.out.value)  # a mosaic folder of this session has its positions solved
        positions = mosaic_positions(out, path, layer.data.shape[0]) if out is not None and path.name else None
        source = path / "stream" if (path / "stream").is_dir() else path / "stream.tif"
        worker = create_worker(
            in_callers_torch_threads(preview_job),
            loaded,
            run,
            device,
            layer.data,
            position,
            options,
            positions,
            source,
            _start_thread=False,
            _ignore_errors=True,
        )

        def current(handler):  # a worker left behind (preview off, or a new run chosen) reports to no one
            return lambda *value: handler(*value) if self._worker is worker else None

        worker.returned.connect(current(self._returned))
        worker.errored.connect(current(lambda exc: self._failed(position, source, exc)))
        worker.finished.connect(current(self._next))
        self._worker, self._running_key, self._pending = worker, key, None
        how = "at its solved positions" if positions is not None else "registering its neighbours"
        self._say(f"preview: restoring position {position} ({how}) ...")
        worker.start()

    # --- results ---------------------------------------------------------------------------------

    def _returned(self, value) -> None:
        loaded, shown = value
        key = self._running_key
        self._loaded = (key[1:3], loaded)
        self.restored.append(shown.position)
        self._cache[(*key, shown.position)] = shown
        while len(self._cache) > CACHE_POSITIONS:
            self._cache.popitem(last=False)
        layer = self._layer()
        if layer is not None and self.preview.value:
            self._show(layer, shown)

    def _failed(self, position: int, source: Path, exc: BaseException) -> None:
        # the run's hint (what a run folder holds) for a run that cannot be loaded, none for the stream's errors
        hint = "" if isinstance(exc, DataError) and exc.path == source else self._dock.data_hint_for(exc)
        why = describe_error(exc, data_hint=hint, memory_hint=self._dock.memory_hint)
        self._say(f"preview of position {position} failed: {why}")

    def _next(self) -> None:
        """The worker ended: restore the position asked for meanwhile, if any."""
        self._worker = None
        if self._pending is not None:
            self._pending = None
            self.request()

    def _show(self, layer, shown: Shown, cached: bool = False) -> None:
        """Put a restored position into the preview layer, over its region of the stream frame."""
        result = shown.result
        scale, translate = tuple(layer.scale[1:]), tuple(layer.translate[1:])
        origin = result.metadata["origin_yx"]
        placement = {
            "scale": scale,
            "translate": tuple(t + o * s for t, o, s in zip(translate, origin, scale)),
            "units": tuple(str(u) for u in layer.units[1:]),
        }
        metadata = tag(
            LayerKind.RESTORED,
            title=layer.name,
            position=shown.position,
            window=result.metadata["windows"]["gt"],
            restore=result.metadata,
        )
        name = layer.name.removesuffix(" stream") + PREVIEW
        put_image(
            self._viewer,
            name,
            result.image,
            contrast_limits=(0.0, 1.0),
            colormap="gray",
            metadata=metadata,
            **placement,
        )
        took = f"restored in {shown.seconds:.2f} s" + (" (kept: shown again at once)" if cached else "")
        notes = f"; {'; '.join(result.messages)}" if result.messages else ""
        self._say(f"preview: position {shown.position} in '{name}', {took}{notes}")

    # --- on / off --------------------------------------------------------------------------------

    def _toggled(self, on: bool) -> None:
        if on:
            self.request()
        else:
            self.stop()

    def stop(self) -> None:
        """Stop previewing: the position being restored stops at its next tile; the layer stays."""
        if self._worker is not None:
            self._worker.quit()
        self._worker = self._pending = None
        if self.preview.value:
            self.preview.value = False  # calls stop again, with nothing left to stop
            return
        self._say("preview off")

    def _dock_state(self) -> None:
        """A run of the dock ended: preview the position the slider moved to meanwhile."""
        if not self._dock.status.running and self._pending is not None and not self.busy:
            self._pending = None
            self.request()

    def _say(self, message: str) -> None:
        if not self._dock.status.running:  # a run's progress keeps the status line
            self._dock.status.message = message
