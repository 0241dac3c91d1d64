"""Packaging contracts: light imports, the npe2 manifest, the command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from napari_temdeblur.cli import main

#: The package, the npe2 adapters, the layer adapters and the CLI: none of them may pull in torch, napari
#: or Qt (the CLI imports torch only inside the commands that train or restore).
LIGHT_MODULES = [
    "napari_temdeblur",
    "napari_temdeblur._reader",
    "napari_temdeblur._sample_data",
    "napari_temdeblur.layers",
    "napari_temdeblur.cli",
]
#: Core packages and modules built on PyTorch. Every other core module must import without torch ...
TORCH_CORE = ("models", "train", "restore", "evaluate", "imaging._metrics")
#: ... and so must the options and the model registry, from which the command line's parser is built.
LIGHT_IN_TORCH_CORE = ("models._registry", "train._config", "restore._options", "evaluate._options")


def test_importing_the_package_and_core_pulls_in_no_torch_napari_or_qt():
    code = f"""
import importlib, sys
from pathlib import Path
import napari_temdeblur.core as core
root = Path(core.__path__[0])
core_modules = sorted(
    "napari_temdeblur.core." + ".".join(p.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
    for p in root.rglob("*.py") if p.name != "__init__.py" or p.parent != root
)
torch_based = [m for m in core_modules if m.removeprefix("napari_temdeblur.core.").startswith({TORCH_CORE!r})
               and not m.removeprefix("napari_temdeblur.core.").startswith({LIGHT_IN_TORCH_CORE!r})]
light = {LIGHT_MODULES!r} + [m for m in core_modules if m not in torch_based]
for name in light:  # private modules included: packages re-export their names lazily
    importlib.import_module(name)
importlib.import_module("napari_temdeblur.cli").build_parser()  # what temdeblur --help does
with_torch = [m for m in ("torch",) if m in sys.modules]
for name in torch_based:
    importlib.import_module(name)
gui = [m for m in ("napari", "qtpy", "PyQt5", "PyQt6", "PySide6", "magicgui") if m in sys.modules]
print(len(light), len(torch_based), ",".join(with_torch + gui))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    n_light, n_torch, heavy = out.stdout.split(" ", 2)
    assert int(n_light) > 10 and int(n_torch) > 10 and heavy.strip() == ""


def test_manifest_is_valid_and_registered():
    from npe2 import PluginManager, PluginManifest

    manifest = PluginManifest.from_distribution("napari-temdeblur")
    assert {r.command for r in manifest.contributions.readers} == {"napari-temdeblur.get_reader"}
    assert {s.key for s in manifest.contributions.sample_data} == {"kidney", "grid"}
    pm = PluginManager()
    pm.discover()
    assert pm.get_manifest("napari-temdeblur").name == "napari-temdeblur"


def test_cli_simulate_both_layouts(tmp_path, capsys):
    assert main(["simulate", str(tmp_path / "s"), "--specimen", "grid", "--sessions", "1", "--images", "2"]) == 0
    out = capsys.readouterr().out
    assert "wrote session layout" in out and "CalibrationGrid" in out
    assert (tmp_path / "s/CalibrationGrid/sess1/stream.tif").is_file()
    assert (tmp_path / "s/truth/CalibrationGrid/sess1.json").is_file()
    assert (
        main(
            [
                "simulate",
                str(tmp_path / "d"),
                "--specimen",
                "kidney",
                "spots",
                "--layout",
                "dataset",
                "--sessions",
                "3",
                "--images",
                "3",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "wrote dataset layout" in out and "Test 3" in out
    assert sorted(p.name for p in (tmp_path / "d/Spots").iterdir()) == ["Test", "Train", "Val", "sample.json"]


def test_cli_refuses_to_mix_two_simulations(tmp_path, capsys):
    args = ["simulate", str(tmp_path), "--specimen", "lines", "--sessions", "1", "--images", "2"]
    assert main(args) == 0
    assert main(args) == 2
    assert "Lines already exists" in capsys.readouterr().err
    assert main([*args[:-1], "1", "--overwrite"]) == 0
    assert sorted(p.name for p in (tmp_path / "Lines/sess1/hq").iterdir()) == ["sess1_im1.tif"]


def test_cli_reports_bad_input_without_traceback(tmp_path, capsys):
    bad = tmp_path / "sim.json"
    bad.write_text('{"dose": 1}')
    assert main(["simulate", str(tmp_path / "x"), "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "unknown simulation parameter(s): dose" in err and "Traceback" not in err


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "temdeblur"
    out = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=True)
    assert "simulate" in out.stdout and "demo" in out.stdout
