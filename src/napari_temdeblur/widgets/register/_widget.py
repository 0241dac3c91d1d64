"""The registration dock: align a stream frame with an HQ image by hand, refine it with ECC, export.

The microscopist picks the session's HQ and stream layers (as the reader opens them), presses
"Find frames" for the HQ image on screen, corrects the proposed alignment by dragging the stream over
the HQ image (magenta over green: grey where they agree) or by typing the translation, and presses
"Register". The core registers in a thread worker and saves each pair into the session's
``registration.json`` at once; the registered bursts appear as layers beside the session.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, Label, ProgressBar, PushButton, SpinBox
from napari.utils.notifications import show_error, show_warning
from qtpy.QtWidgets import QHBoxLayout

from napari_temdeblur.core import DataError, Progress
from napari_temdeblur.core.io import Session, open_session
from napari_temdeblur.core.register import (
    MOTIONS,
    InitialGuess,
    PairFailed,
    RegistrationSettings,
    load_registrations,
    match_frames,
    user_starts,
)
from napari_temdeblur.layers import LayerKind, frame_index, frame_world, kind_of, layer_info
from napari_temdeblur.widgets._dock import Dock, RunState, keep_choice, show_progress

from . import _alignment as align
from ._bursts import follow_hq_stack, show_bursts
from ._export import ExportBox
from ._run import describe_pair, init_frame, refined_translation_yx, register_and_extract

if TYPE_CHECKING:
    import napari
    from napari.layers import Image

#: Colours that add up to grey where the stream frame and the HQ image agree (both at full strength:
#: a translucent stream would leave the agreement green).
HQ_COLORMAP, STREAM_COLORMAP, STREAM_OPACITY = "green", "magenta", 1.0


class RegistrationWidget(Dock):
    """Dock widget registering the HQ images of one acquisition session with its fast stream.

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
        The viewer holding the session layers (``<session> HQ`` and ``<session> stream``).
    """

    run_text, stop_text = "Register", "Cancel"
    stopping_message = "cancelling after this frame ..."

    def __init__(self, napari_viewer: napari.viewer.Viewer):
        super().__init__(napari_viewer)
        self._session: Session | None = None
        self._registered: dict = {}  # HQ name -> PairRegistration, as saved in registration.json
        self._bursts: dict = {}  # HQ name -> BurstPair shown in the registered layers
        self._inits: dict[str, InitialGuess] = {}  # HQ name -> the user's last alignment for it
        self._moved_layer: Image | None = None  # the stream layer whose moves we follow

        defaults = RegistrationSettings()
        self.hq_layer = ComboBox(label="HQ layer", choices=self._choices(LayerKind.HQ))
        self.stream_layer = ComboBox(label="stream layer", choices=self._choices(LayerKind.STREAM))
        self.hq_image = ComboBox(label="HQ image", choices=self._hq_names)
        self.find_button = PushButton(text="Find frames")
        self.drag = CheckBox(text="Drag to align", value=False)
        tip = "where the HQ image's origin lies in the stream frame: (row, col) in stream pixels"
        self.shift_y = FloatSpinBox(label="translation y", min=-1e5, max=1e5, step=0.25, tooltip=tip)
        self.shift_x = FloatSpinBox(label="translation x", min=-1e5, max=1e5, step=0.25, tooltip=tip)
        self.frames = SpinBox(label="burst frames", min=3, max=8, value=defaults.frames)
        self.motion = ComboBox(label="motion", choices=MOTIONS, value=defaults.motion)
        self.form = Container(
            widgets=[
                self.hq_layer,
                self.stream_layer,
                self.hq_image,
                self.find_button,
                self.drag,
                self.shift_y,
                self.shift_x,
                self.frames,
                self.motion,
            ]
        )
        self.register_all_button = PushButton(text="Register all")
        self.progress = ProgressBar(label="progress", min=0, max=1, value=0)
        self.result = Label(label="frames")
        self.registered = Label(label="registered")
        self.outcome = Container(widgets=[self.progress, self.result, self.registered])
        self.exporter = ExportBox(lambda: self.hq_image.value)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button.native)
        buttons.addWidget(self.register_all_button.native)
        self.lay_out(self.form, buttons, self.status_label, self.outcome, self.exporter)

        self.hq_layer.changed.connect(self._pick_session)
        self.stream_layer.changed.connect(self._pick_session)
        self.hq_image.changed.connect(self._go_to_hq)
        self.drag.changed.connect(self._toggle_drag)
        self.shift_y.changed.connect(self._type_translation)
        self.shift_x.changed.connect(self._type_translation)
        self.find_button.clicked.connect(self.find_frames)
        self.register_all_button.clicked.connect(self.register_all)
        self.exporter.export_button.clicked.connect(self.export)
        self.viewer.dims.events.current_step.connect(self._follow_dims)
        self._pick_session()

    # --- layers and the session --------------------------------------------------------------

    def _choices(self, kind: LayerKind):
        def choices(_widget) -> list[tuple[str, Image]]:  # the session reader tags its layers by kind
            return [(layer.name, layer) for layer in self.viewer.layers if kind_of(layer) is kind]

        return choices

    def _hq_names(self, _widget) -> list[str]:
        return list(self._session.hq_names) if self._session is not None else []

    @property
    def _layers(self) -> tuple[Image, Image]:
        return self.hq_layer.value, self.stream_layer.value

    def _ready(self) -> bool:
        """A session is open and both of its layers are still in the viewer."""
        return self._session is not None and all(layer in self.viewer.layers for layer in self._layers)

    def refresh_layers(self) -> None:
        keep_choice(self.hq_layer)
        keep_choice(self.stream_layer)
        if self._session is not None and not self._ready():  # the choices may empty without a change event
            self._pick_session()

    def _pick_session(self) -> None:
        """Open the session behind the chosen layers, colour them, and restore its registrations."""
        hq, stream = (layer if layer in self.viewer.layers else None for layer in self._layers)
        self.stop()
        self._worker = None  # a run of the previous session reports to no one
        self._follow_moves(stream)
        self._session, self._registered, self._bursts, self._inits = None, {}, {}, {}
        if hq is not None and stream is not None:
            if layer_info(hq).get("path") != layer_info(stream).get("path"):
                show_warning(
                    f"'{hq.name}' and '{stream.name}' come from different sessions: pick the pair of one session"
                )
            else:
                self._open(Path(layer_info(stream)["path"]), hq, stream)
        with self.hq_image.changed.blocked():
            self.hq_image.reset_choices()
        self._show_registered()
        self.status.message = "" if self._session is None else f"session {self._session.name}"
        self.status.state = RunState.IDLE
        self._render_state()
        if self._session is not None:
            name = self._session.hq_names[self.current_index()]
            with self.hq_image.changed.blocked():
                self.hq_image.value = name
            self._restore(name)

    def _open(self, path: Path, hq: Image, stream: Image) -> None:
        try:
            self._session = open_session(path)
            self._registered = load_registrations(self._session)
            # earlier alignments by hand stay the start of a later "Register all"
            self._inits = user_starts(self._registered)
        except (DataError, ValueError) as exc:
            show_error(f"cannot open the session for registration: {exc}")
            self._session = None
            return
        hq.colormap, stream.colormap = HQ_COLORMAP, STREAM_COLORMAP
        stream.blending, stream.opacity = "additive", STREAM_OPACITY

    def _follow_moves(self, stream: Image | None) -> None:
        """Follow translate/affine changes of the chosen stream layer (and stop following the last one)."""
        old = self._moved_layer
        if old is stream:
            return
        if old is not None:
            old.events.translate.disconnect(self._layer_moved)
            old.events.affine.disconnect(self._layer_moved)
            self._set_drag(old, False)
        if stream is not None:
            stream.events.translate.connect(self._layer_moved)
            stream.events.affine.connect(self._layer_moved)
            self._set_drag(stream, self.drag.value)
        self._moved_layer = stream

    # --- where we are: HQ image, frame, translation -------------------------------------------

    def _frame_axis(self) -> int:
        return self.viewer.dims.ndim - self.stream_layer.value.ndim

    def current_index(self) -> int:
        """Index of the HQ image on screen."""
        return frame_index(self.hq_layer.value, self.viewer.dims.point)

    def current_frame(self) -> int:
        """Index of the stream frame on screen."""
        return frame_index(self.stream_layer.value, self.viewer.dims.point)

    def translation_yx(self) -> tuple[float, float]:
        """The alignment on screen, (ty, tx) in stream px: the HQ origin's place in the stream frame."""
        return align.translation_yx(*self._layers, self._session.binning)

    def initial_guess(self) -> InitialGuess:
        """What a registration of the HQ image on screen starts from: the frame and alignment shown."""
        return InitialGuess(frame=self.current_frame(), translation_yx=self.translation_yx())

    def _show_frame(self, index: int, frame: int) -> None:
        """Show stream frame `frame` with HQ image `index` over it."""
        hq, stream = self._layers
        align.show_hq_at_frame(hq, stream, index, frame)
        self.viewer.dims.set_point(self._frame_axis(), frame_world(stream, frame))
        follow_hq_stack(self.viewer, self._session, hq)

    def _follow_dims(self, _event=None) -> None:
        """The slider moved: the HQ image on screen becomes the current one."""
        if not self._ready():
            return
        name = self._session.hq_names[self.current_index()]
        if name != self.hq_image.value:
            with self.hq_image.changed.blocked():
                self.hq_image.value = name
            self._restore(name)

    def _go_to_hq(self, name: str) -> None:
        """The user chose an HQ image: show it over its registered (or nominal) stream frame."""
        if not self._ready() or name is None:
            return
        index = self._session.hq_names.index(name)
        pair = self._registered.get(name)
        if pair is not None:
            self._show_frame(index, init_frame(pair))
        else:
            self.viewer.dims.set_point(self._frame_axis(), frame_world(self.hq_layer.value, index))
        self._restore(name)

    def _restore(self, name: str) -> None:
        """Apply what is known about HQ image `name`: its refined alignment once registered (the start
        stays listed in the result), its result and split."""
        pair = self._registered.get(name)
        shown = refined_translation_yx(pair) if pair is not None else None
        if shown is not None and all(math.isfinite(v) for v in shown):  # a file without a start leaves the layer be
            align.set_translation_yx(*self._layers, self._session.binning, shown)
        self.result.value = describe_pair(pair) if pair is not None else "not registered yet"
        self.exporter.show_split(name)
        self._match_contrast()

    def _match_contrast(self) -> None:
        """Show the stream frame on screen as bright as the HQ image over it (agreement looks grey)."""
        align.match_stream_contrast(*self._layers, self._session, self.current_index(), self.current_frame())

    def _layer_moved(self, _event=None) -> None:
        """The stream layer moved (drag, transform mode, typed numbers): show the new numbers."""
        if not self._ready():
            return
        for box, value in zip((self.shift_y, self.shift_x), self.translation_yx(), strict=True):
            with box.changed.blocked():
                box.value = value

    def _remember(self) -> None:
        """Keep the user's alignment of the HQ image on screen, for "Register all"."""
        self._inits[self._session.hq_names[self.current_index()]] = self.initial_guess()

    def _type_translation(self) -> None:
        if self._ready():
            align.set_translation_yx(*self._layers, self._session.binning, (self.shift_y.value, self.shift_x.value))
            self._remember()

    def _drag(self, layer: Image, event):
        """Mouse-drag callback on the stream layer (while "Drag to align" is on)."""
        yield from align.drag_stream(layer, event)
        self._remember()

    def _toggle_drag(self, on: bool) -> None:
        stream = self.stream_layer.value
        if stream is not None:
            self._set_drag(stream, on)
            if on:
                self.viewer.layers.selection.active = stream

    def _set_drag(self, stream: Image, on: bool) -> None:
        """Make a mouse drag move the stream layer (instead of panning the view) while `on`."""
        callbacks = stream.mouse_drag_callbacks
        if on and self._drag not in callbacks:
            callbacks.append(self._drag)
        elif not on and self._drag in callbacks:
            callbacks.remove(self._drag)
        stream.mouse_pan = not on

    # --- runs -----------------------------------------------------------------------------------

    def _settings(self) -> RegistrationSettings:
        return RegistrationSettings(frames=self.frames.value, motion=self.motion.value)

    def render_state(self) -> None:
        ready = self._session is not None and not self.status.running
        for button in (self.find_button, self.register_all_button, self.exporter.export_button):
            button.enabled = ready
        self.run_button.enabled = self._session is not None
        self.frames.enabled = self.motion.enabled = not self.status.running
        if not self.status.running and self.progress.max == 0:  # no longer busy: full when done
            self.progress.max = 1
            self.progress.value = int(self.status.state is RunState.DONE)

    def _start(self, work, *args, on_result) -> None:
        self.progress.value, self.progress.max = 0, 0  # busy until the first progress event
        self.status.message = "working"
        self.run_work(work, *args, on_result=on_result)

    def find_frames(self) -> None:
        """Match the HQ image on screen against the stream; show the best frame at the proposed alignment."""
        self._start(match_frames, self._session, self.current_index(), self._settings(), on_result=self._matched)

    def _matched(self, match) -> None:
        index = self._session.hq_names.index(match.hq)
        self._show_frame(index, match.best_frame)
        align.set_translation_yx(*self._layers, self._session.binning, match.translation_yx)
        self._match_contrast()
        self.status.message = f"{match.hq}: best frame {match.best_frame} (score {match.score:.3f})"
        self.status.state = RunState.DONE

    def start(self) -> None:
        """Register the HQ image on screen, starting from the frame and alignment shown (the Register button)."""
        if self._session is None:
            return
        self._remember()
        name = self._session.hq_names[self.current_index()]
        self._register({name: self._inits[name]}, [name])

    def register_all(self) -> None:
        """Register every HQ image of the session: from the user's alignment where given, else matched."""
        self._register(dict(self._inits), None)

    def _register(self, inits: dict, names: list[str] | None) -> None:
        # earlier registrations get their bursts shown too (all of them are redone when names is None)
        restored = [p for n, p in self._registered.items() if n not in self._bursts and names and n not in names]
        work = (self._session, self._settings(), inits, names, restored)
        self._start(register_and_extract, *work, on_result=self._registered_done)

    def on_event(self, event: Progress) -> None:
        show_progress(self.progress, event)
        self.status.message = f"{event.stage} {event.message}".rstrip()
        if isinstance(event, PairFailed):
            show_warning(f"{event.hq} was not registered: {event.message}")

    def _registered_done(self, result) -> None:
        pairs, bursts = result
        self._registered.update({pair.hq: pair for pair in pairs})
        for pair in pairs:  # a re-registration that kept no frame must not leave its old burst on screen
            self._bursts.pop(pair.hq, None)
        self._bursts.update(bursts)
        for pair in pairs:
            for message in pair.messages:
                show_warning(f"{pair.hq}: {message}")
        if self._bursts:
            show_bursts(self.viewer, self._session, self._bursts, *self._layers)
            if self.drag.value:  # the new layers became active; the drag works on the active layer only
                self.viewer.layers.selection.active = self.stream_layer.value
        self._show_registered()
        current = self.hq_image.value
        if current in self._registered:  # show where registration put it: the overlay turns grey
            self._go_to_hq(current)
        if pairs:
            self.status.message = f"registered and saved {len(pairs)} HQ image(s)"
            self.status.state = RunState.DONE
        else:
            self.status.message = "no HQ image could be registered (see the warnings)"
            self.status.state = RunState.FAILED

    def stopped_message(self) -> str:
        """After a cancel: what registration.json kept (every image finished before the cancel)."""
        self._registered = load_registrations(self._session)
        self._show_registered()
        return f"cancelled; {len(self._registered)} registered HQ image(s) kept"

    # --- results ---------------------------------------------------------------------------------

    def _show_registered(self) -> None:
        lines = [f"{name}: {len(pair.accepted)} frames" for name, pair in self._registered.items()]
        self.registered.value = "\n".join(lines) if lines else "none yet"

    def export(self) -> None:
        """Write the registered bursts of the session in the published dataset layout."""
        try:
            export = self.exporter.export(self._session, list(self._registered.values()))
        except (DataError, ValueError, OSError) as exc:
            self.fail(exc)
            return
        self.status.message, done = self.exporter.report(export)
        self.status.state = RunState.DONE if done else RunState.FAILED
