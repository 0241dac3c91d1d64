"""Take the screenshots of docs/user_guide.md from a real napari viewer.

Run from the repository root on a (virtual) screen::

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python docs/make_screenshots.py

It simulates a small kidney-like acquisition, then drives the plugin's docks the way a user would
(open a session, find frames, drag, register; train from the dataset's layers; restore and compare;
open a ``temdeblur mosaic`` folder; preview a raw stream; run live on a replayed session)
and writes ``docs/images/<name>.png``, downscaled and colour-quantised to keep the repository small.
Each dock's screenshots are one function below. The docks share one pattern (docs/design.md, The
docks): each has a ``run_button`` (Register, Train, Restore), ``wait()`` runs the Qt event loop until
the dock's work ends and returns its ``RunState``. Takes a few minutes on 2 CPU cores (the training run
is most of it).
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import napari
import numpy as np
from PIL import Image
from qtpy.QtWidgets import QScrollArea

from napari_temdeblur.core import drain
from napari_temdeblur.core.simulate import (
    SimulationConfig,
    read_true_translations,
    simulate,
)

IMAGES = Path(__file__).parent / "images"
WINDOW = (1366, 768)  # px, the viewer window: a laptop screen
WIDTH = 1200  # px, the saved screenshots
SEED = 5


def wait(done: Callable[[], bool], timeout: float = 1800.0) -> None:
    """Run the Qt event loop until `done()`, or fail after `timeout` seconds; then let it redraw."""
    from qtpy.QtWidgets import QApplication

    end = time.monotonic() + timeout
    while not done():
        if time.monotonic() > end:
            raise TimeoutError("the dock did not finish in time")
        QApplication.processEvents()
        time.sleep(0.02)
    for _ in range(20):  # let layers, plots and labels redraw
        QApplication.processEvents()
        time.sleep(0.01)


def save(viewer: napari.Viewer, name: str) -> Path:
    """Screenshot the whole window (docks included) to docs/images/<name>.png, small."""
    from napari._qt.dialogs.qt_notification import NapariQtNotification

    for toast in viewer.window._qt_window.findChildren(NapariQtNotification):
        toast.close()  # notifications would cover the canvas overlay text
    wait(lambda: True)
    pixels = viewer.screenshot(canvas_only=False, flash=False)
    image = Image.fromarray(np.asarray(pixels)[..., :3])
    image = image.resize((WIDTH, round(image.height * WIDTH / image.width)), Image.Resampling.LANCZOS)
    path = IMAGES / f"{name}.png"
    image.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    print(f"wrote {path} ({path.stat().st_size // 1024} KiB)")
    return path


def new_viewer() -> napari.Viewer:
    viewer = napari.Viewer(title="napari-temdeblur")
    viewer.window._qt_window.resize(*WINDOW)
    return viewer


def with_dock(folder: Path, dock: str):
    """(viewer, dock widget): a new viewer with `folder` opened and the plugin's `dock` added."""
    viewer = new_viewer()
    viewer.open(str(folder), plugin="napari-temdeblur")
    _, widget = viewer.window.add_plugin_dock_widget("napari-temdeblur", dock)
    return viewer, widget


def simulated(work: Path) -> tuple[Path, Path, Path]:
    """(session folder, its truth file, dataset folder) of a small simulated kidney-like acquisition."""
    one = dataclasses.replace(SimulationConfig.demo(), sessions=1, hq_per_session=2)
    sessions = drain(simulate(work / "sessions", one, ["kidney"], layout="session", seed=SEED))
    small = dataclasses.replace(SimulationConfig.demo(), sessions=3, hq_per_session=4)
    drain(simulate(work / "dataset", small, ["kidney"], layout="dataset", seed=SEED))
    return sessions.folders["Kidney"][0], sessions.truth[0], work / "dataset" / "Kidney"


def sample_data() -> None:
    """File > Open Sample > TEM deblur > Kidney-like tissue, shown side by side in grid mode."""
    viewer = new_viewer()
    viewer.open_sample("napari-temdeblur", "kidney")
    viewer.canvas.grid.enabled = True
    viewer.reset_view()
    save(viewer, "sample_data")
    viewer.close()


def finished(widget, what: str, timeout: float = 1800.0) -> None:
    """Wait for the dock's work to end; fail unless it ended by itself (RunState.DONE)."""
    from napari_temdeblur.widgets._dock import RunState

    state = widget.wait(timeout=timeout)
    if state is not RunState.DONE:
        raise RuntimeError(f"{what} ended {state.value}: {widget.status.message}")


def registration(session: Path, truth: Path) -> None:
    """The registration dock: Find frames, then a hand drag a little off, then Register."""
    viewer, widget = with_dock(session, "Register stream")
    widget.find_button.native.click()
    finished(widget, "find frames")
    # as a user leaves it after dragging: within a few pixels of where the frame belongs
    frame = widget.current_frame()
    true_yx = read_true_translations(truth)[widget.hq_image.value][frame]
    widget.drag.value = True
    widget.shift_y.value, widget.shift_x.value = float(true_yx[0] + 2.5), float(true_yx[1] - 3.0)
    viewer.reset_view()
    save(viewer, "registration_align")
    widget.run_button.native.click()  # Register (it reads Cancel while the registration runs)
    finished(widget, "registration")
    viewer.reset_view()
    save(viewer, "registration_done")
    viewer.close()


def training(dataset: Path, run: Path) -> None:
    """The training dock after a short fine-tuning of the default network (fast-burst from its
    pretrained start, the CPU preset) on the dataset's layers."""
    viewer, widget = with_dock(dataset, "Train network")
    form = widget.settings
    form.epochs.value, form.steps.value = 12, "6"
    form.val_tile.value = 64  # the demo-size strips hold no 128 px validation tile
    form.device.value, form.out.value = "cpu", run
    widget.run_button.native.click()  # Train (it reads Stop while training)
    finished(widget, "training")
    for layer in viewer.layers:
        layer.visible = layer.name == "Kidney Train GT"
    viewer.reset_view()
    save(viewer, "training")
    viewer.close()


def restoration(dataset: Path, run: Path) -> None:
    """The restore dock: the trained run on the Test bursts with their GT (scores overlay), the SSIM
    map, then Compare (GT | input | restored in grid mode)."""
    viewer, widget = with_dock(dataset / "Test", "Restore")
    widget.run.value, widget.device.value = run, "cpu"
    widget.run_button.native.click()  # Restore (it reads Cancel while restoring)
    finished(widget, "restore")
    viewer.reset_view()
    save(viewer, "restore")
    viewer.layers["Kidney Test SSIM map"].visible = True
    save(viewer, "restore_ssim_map")
    widget.compare()
    viewer.reset_view()
    save(viewer, "restore_compare")
    viewer.close()


def mosaic(session: Path, work: Path) -> None:
    """``temdeblur mosaic`` with the pretrained network, opened from its folder: the raw and the restored
    mosaic side by side in grid mode (HQ layers left out of the grid), with the scale bar in nm."""
    from napari_temdeblur.cli import main as temdeblur

    out = work / "mosaic"
    if temdeblur(["mosaic", str(session), "--run", "pretrained", "--out", str(out), "--raw", "--device", "cpu"]):
        raise RuntimeError("temdeblur mosaic failed")
    viewer = new_viewer()
    viewer.open(str(out), plugin="napari-temdeblur")
    for layer in [layer for layer in viewer.layers if layer.metadata["temdeblur"]["kind"] != "mosaic"]:
        viewer.layers.remove(layer)
    viewer.layers.move(1, 0)  # raw on the left, restored on the right
    viewer.canvas.grid.enabled = True
    viewer.canvas.overlays.scale_bar.visible = True
    viewer.reset_view()
    save(viewer, "mosaic")
    viewer.close()


def preview(session: Path) -> None:
    """The restore dock's Preview on a raw session stream: the position under the frame slider restored
    with the pretrained network (no run chosen) into a layer over the frame, the dock scrolled to it."""
    from qtpy.QtWidgets import QScrollArea

    viewer, widget = with_dock(session, "Restore")
    widget.device.value = "cpu"
    stream = next(layer for layer in viewer.layers if layer.name.endswith(" stream"))
    for layer in viewer.layers:
        layer.visible = layer is stream
    box = widget.preview_box
    viewer.dims.set_current_step(0, stream.data.shape[0] // 2)
    box.preview.value = True
    wait(lambda: not box.busy and box.restored)
    viewer.reset_view()
    widget.findChild(QScrollArea).ensureWidgetVisible(box.native)
    save(viewer, "restore_preview")
    viewer.close()


def live(session: Path, work: Path) -> None:
    """The Restore dock's live box on a session replayed into a folder at 5 frames/s (``temdeblur
    replay``), with the pretrained network: the newest raw frame, the newest restored position and the
    mosaic side by side in grid mode, the rates under Stop live; shot once the idle timeout has ended it."""
    import threading

    from napari_temdeblur.core.io import replay_session

    folder = work / "live-session"
    thread = threading.Thread(target=lambda: drain(replay_session(session, folder, 5.0)), daemon=True)
    thread.start()
    wait(lambda: (folder / "session.json").is_file())
    viewer = new_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-temdeblur", "Restore")
    widget.device.value = "cpu"
    box = widget.live_box
    box.session.value, box.out.value, box.idle_timeout.value = str(folder), str(work / "live-out"), 3.0
    box.button.native.click()
    finished(widget, "live")
    thread.join()
    viewer.canvas.grid.enabled = True
    viewer.canvas.overlays.scale_bar.visible = True
    viewer.reset_view()
    bar = widget.findChild(QScrollArea).verticalScrollBar()
    bar.setValue(bar.maximum())  # the live box, at the bottom of the dock
    save(viewer, "live")
    viewer.close()


def main() -> None:
    import torch

    torch.set_num_threads(1)  # tiny networks gain nothing from more threads; on a busy machine they spin
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only",
        nargs="*",
        choices=["sample_data", "registration", "training", "restoration", "mosaic", "preview", "live"],
        help="screenshots to take (default: all)",
    )
    args = parser.parse_args()
    if args.only and "restoration" in args.only:
        args.only.append("training")  # restores with the run trained there
    IMAGES.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="temdeblur-shots-") as tmp:
        work = Path(tmp)
        session, truth, dataset = simulated(work)
        run = work / "run"
        shots = {
            "sample_data": sample_data,
            "registration": lambda: registration(session, truth),
            "training": lambda: training(dataset, run),
            "restoration": lambda: restoration(dataset, run),
            "mosaic": lambda: mosaic(session, work),
            "preview": lambda: preview(session),
            "live": lambda: live(session, work),
        }
        for name, take in shots.items():
            if not args.only or name in args.only:
                take()
    napari.Viewer.close_all()


if __name__ == "__main__":
    main()
