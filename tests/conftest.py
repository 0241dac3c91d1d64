"""Shared fixtures: small simulated acquisitions, made once per test session."""

from __future__ import annotations

import dataclasses

import pytest

from napari_temdeblur.core import drain
from napari_temdeblur.core.simulate import SimulationConfig, simulate


@pytest.fixture(scope="session")
def small_cfg() -> SimulationConfig:
    """The demo acquisition with three sessions of four images: Train, Val and Test all present."""
    return dataclasses.replace(SimulationConfig.demo(), sessions=3, hq_per_session=4)


@pytest.fixture(scope="session")
def simulated_sessions(tmp_path_factory, small_cfg):
    out = tmp_path_factory.mktemp("sessions")
    result = drain(simulate(out, small_cfg, ["kidney", "grid"], layout="session", seed=3))
    return result


@pytest.fixture(scope="session")
def simulated_dataset(tmp_path_factory, small_cfg):
    out = tmp_path_factory.mktemp("dataset")
    result = drain(simulate(out, small_cfg, ["kidney", "grid"], layout="dataset", seed=3))
    return result


@pytest.fixture(scope="session")
def kidney(simulated_dataset):
    """The simulated dataset's Kidney sample folder (its Train, Val and Test splits)."""
    return simulated_dataset.out / "Kidney"


@pytest.fixture
def restore_in_dock(make_napari_viewer, simulated_dataset):
    """``restore(run)``: open the simulated Kidney Test split in a new viewer and restore it from the
    Restore dock with `run` (a run folder, checkpoint or exported model), on the CPU; returns the
    restored layer."""

    def restore(run):
        from napari_temdeblur.widgets._dock import RunState

        viewer = make_napari_viewer()
        viewer.open(str(simulated_dataset.out / "Kidney" / "Test"), plugin="napari-temdeblur")
        _, widget = viewer.window.add_plugin_dock_widget("napari-temdeblur", "Restore")
        widget.device.value, widget.score_tile.value, widget.run.value = "cpu", 64, run
        widget.start()
        assert widget.wait(120) is RunState.DONE, widget.status.message
        return viewer.layers["Kidney Test restored"]

    return restore


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run torch on one CPU thread for a test module: tiny networks gain nothing from more, and on a
    busy machine torch's spinning worker threads slow each step tenfold."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def untrained_run():
    """``save(path, name="bu", *, gt_window=(0, 30000), low_window=(0, 60000), frames=(3, 3))``: a
    checkpoint of the tiny `name` network with fresh weights (seed 0) at `path`, returned; for tests of
    restoration's mechanics, which need real weights but no training. Windows are (low, high) counts."""
    import torch

    from napari_temdeblur.core.imaging import IntensityWindow
    from napari_temdeblur.core.models import ModelConfig, build_model, save_checkpoint

    def save(path, name="bu", *, gt_window=(0, 30000), low_window=(0, 60000), frames=(3, 3), epoch=1):
        torch.manual_seed(0)
        cfg = ModelConfig.tiny(name)
        return save_checkpoint(
            path,
            model=cfg,
            state_dict=build_model(cfg, pretrained=False).state_dict(),
            epoch=epoch,
            gt_window=IntensityWindow(*gt_window),
            low_window=IntensityWindow(*low_window),
            frames=frames,
        )

    return save
