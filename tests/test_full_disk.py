"""A full disk (or quota) while training, restoring or registering: the message names the file and says
the disk is full, a good file is never replaced by a partial one, and the files written before are
intact.

Every case runs twice: on a real tiny file system where this process may mount one (root: a tmpfs),
and with the refusal simulated at the lowest write each writer reaches from Python (numpy's short
write under tifffile, torch's file writer, Python's file write, and ``os.write``).
"""

from __future__ import annotations

import errno
import os
import pathlib
import shutil
import subprocess

import numpy as np
import pytest
import tifffile
import torch

from napari_temdeblur import cli
from napari_temdeblur.core import DiskFull, write_json
from napari_temdeblur.core.imaging import IntensityWindow
from napari_temdeblur.core.io import write_image
from napari_temdeblur.core.models import ModelConfig, build_model, load_checkpoint, save_checkpoint
from napari_temdeblur.core.register import (
    FrameRegistration,
    PairRegistration,
    load_registrations,
    save_registration,
    translation_matrix,
)

MB = 2**20


class Disk:
    """A folder on a disk that :meth:`fill` makes full."""

    def __init__(self, folder: pathlib.Path, real: bool, monkeypatch):
        self.folder, self.real, self._monkeypatch = folder, real, monkeypatch

    def fill(self, leave: int = 0) -> None:
        """Leave `leave` bytes free (simulated: none at all)."""
        if self.real:
            free = shutil.disk_usage(self.folder).free
            (self.folder / "filler").write_bytes(bytes(max(0, free - leave)))
        else:
            _refuse_writes_in(self.folder, self._monkeypatch)

    def temporary_files(self) -> list[pathlib.Path]:
        return [p for p in self.folder.rglob(".*") if p.name.endswith(".tmp")]


def _inside(folder: pathlib.Path, path) -> bool:
    return pathlib.Path(os.fspath(path)).absolute().is_relative_to(folder.absolute())


def _refuse_writes_in(folder: pathlib.Path, monkeypatch) -> None:
    """Every writer fails in `folder` as it does on a full disk, after writing part of its data."""
    enospc = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    write_array, save = tifffile.FileHandle.write_array, torch.save
    write_text, write = pathlib.Path.write_text, os.write

    def short_array(self, data, *args, **kwargs):  # numpy's tofile: a short write without an errno
        if _inside(folder, self.path):
            raise OSError(f"{data.nbytes} requested and {data.nbytes // 2} written")
        return write_array(self, data, *args, **kwargs)

    def torch_save(obj, f, *args, **kwargs):  # torch's own file writer
        if isinstance(f, (str, os.PathLike)) and _inside(folder, f):
            pathlib.Path(f).write_bytes(b"PK\x03\x04 part of a checkpoint")
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")
        return save(obj, f, *args, **kwargs)

    def text(self, data, *args, **kwargs):
        if _inside(folder, self):
            raise enospc
        return write_text(self, data, *args, **kwargs)

    def os_write(fd, data):  # what a file system that is full answers
        stat = os.fstat(fd)
        if any(os.path.samestat(stat, p.stat()) for p in folder.rglob("*") if p.is_file()):
            raise enospc
        return write(fd, data)

    monkeypatch.setattr(tifffile.FileHandle, "write_array", short_array)
    monkeypatch.setattr(torch, "save", torch_save)
    monkeypatch.setattr(pathlib.Path, "write_text", text)
    monkeypatch.setattr(os, "write", os_write)


@pytest.fixture(params=["tmpfs", "simulated"])
def disk(request, tmp_path, monkeypatch):
    folder = tmp_path / "disk"
    folder.mkdir()
    if request.param == "simulated":
        yield Disk(folder, False, monkeypatch)
        return
    if os.name != "posix" or os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a real small file system needs root (mount -t tmpfs)")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={2 * MB}", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield Disk(folder, True, monkeypatch)
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _says_full(exc, path) -> None:
    message = str(exc)
    assert message.startswith(f"could not write {path}: the disk is full"), message
    assert "files written before it are intact" in message and "\n" not in message
    assert exc.errno == errno.ENOSPC


def _checkpoint(path, seed: int):
    cfg = ModelConfig.tiny("bu")
    torch.manual_seed(seed)
    window = IntensityWindow(0.0, 1000.0)
    return save_checkpoint(
        path,
        model=cfg,
        state_dict=build_model(cfg).state_dict(),
        epoch=seed,
        gt_window=window,
        low_window=window,
        frames=(3, 3),
    )


WRITERS = {
    "json": (lambda path, k: write_json(path, {"version": k, "data": list(range(20_000 * k))}), "registration.json"),
    "tiff": (lambda path, k: write_image(path, np.full((4 * k, 128, 128), k, np.uint16)), "stream.tif"),
    "checkpoint": (_checkpoint, "best.pt"),
}


@pytest.mark.parametrize("kind", WRITERS)
def test_a_full_disk_names_the_file_and_keeps_what_was_written(disk, kind):
    write, name = WRITERS[kind]
    earlier, target = disk.folder / "earlier" / name, disk.folder / "out" / name
    write(earlier, 1)
    write(target, 1)
    before = {p: p.read_bytes() for p in (earlier, target)}
    disk.fill(leave=64 * 1024)
    with pytest.raises(DiskFull) as info:
        write(target, 2)  # larger than what is left
    _says_full(info.value, target)
    assert {p: p.read_bytes() for p in (earlier, target)} == before
    assert disk.temporary_files() == []
    with pytest.raises(DiskFull):
        write(disk.folder / "out" / f"new_{name}", 2)
    assert not (disk.folder / "out" / f"new_{name}").exists()


def test_registration_json_on_a_full_disk_keeps_the_saved_pairs(disk):
    frame = FrameRegistration(3, translation_matrix((1.0, 2.0)), 0.9)
    save_registration(disk.folder, [PairRegistration("im1", (1.0, 2.0), (frame,))])
    disk.fill()
    with pytest.raises(DiskFull) as info:
        save_registration(disk.folder, [PairRegistration(f"im{k}", (1.0, 2.0), (frame,) * 50) for k in range(2, 200)])
    _says_full(info.value, disk.folder / "registration.json")
    assert list(load_registrations(disk.folder)) == ["im1"]


TRAIN = ["--model", "bu", "--width", "tiny", "--steps-per-epoch", "1", "--patch", "32", "--batch", "2"]
TRAIN += ["--frames", "2-3", "--val-tile", "64", "--device", "cpu"]


def test_training_on_a_full_disk_says_so_and_keeps_the_saved_epoch(disk, simulated_dataset, capsys):
    run, data = disk.folder / "run", str(simulated_dataset.out / "Kidney")
    assert cli.main(["train", data, "--out", str(run), "--epochs", "1", *TRAIN]) == 0
    saved = {p.name: p.read_bytes() for p in run.iterdir() if p.suffix == ".pt"}
    disk.fill(leave=100 * 1024)  # config.json fits, a checkpoint does not
    capsys.readouterr()
    assert cli.main(["train", data, "--out", str(run), "--epochs", "2", "--resume", *TRAIN]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"temdeblur: error: could not write {run}/") and "the disk is full" in error
    assert "unexpected pos" not in error and "\n" not in error
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.suffix == ".pt"} == saved
    assert load_checkpoint(run / "last.pt").epoch == 1 and disk.temporary_files() == []


def test_restoring_on_a_full_disk_names_the_image(disk, simulated_dataset, capsys):
    gt = sorted((simulated_dataset.out / "Kidney" / "Test" / "GT").iterdir())[0]
    burst = simulated_dataset.out / "Kidney" / "Test" / "Low" / gt.stem
    run = _checkpoint(disk.folder / "run" / "best.pt", 1)
    first = disk.folder / "first"
    args = ["--device", "cpu", "--inference-tile", "64"]
    assert cli.main(["restore", str(run), str(burst), str(first), *args]) == 0
    written = {p: p.read_bytes() for p in first.iterdir()}
    disk.fill(leave=16 * 1024)
    capsys.readouterr()
    assert cli.main(["restore", str(run), str(burst), str(disk.folder / "second"), *args]) == 2
    error = capsys.readouterr().err.strip()
    # restore.json claims each image before its files are written: with no byte free (simulated) it
    # is the first write to fail; with 16 KB free it fits and the image does not
    failed = "restore.json" if not disk.real else gt.stem
    assert error.startswith(f"temdeblur: error: could not write {disk.folder / 'second' / failed}")
    assert "the disk is full" in error and "requested and" not in error
    assert {p: p.read_bytes() for p in first.iterdir()} == written
    assert not any(p.suffix == ".tif" for p in (disk.folder / "second").glob("*")) and disk.temporary_files() == []


def test_an_error_that_is_not_a_full_disk_stays_as_it_was(tmp_path):
    from napari_temdeblur.core import atomic_write

    def fails(tmp):
        raise OSError("40750 requested and 23380 written")  # but the disk has room: not a full disk

    with pytest.raises(OSError, match="40750 requested") as info:
        atomic_write(tmp_path / "x.tif", fails)
    assert not isinstance(info.value, DiskFull) and list(tmp_path.iterdir()) == []


def test_the_docks_show_the_message_as_it_is(tmp_path):
    from napari_temdeblur.widgets._dock import describe_error

    exc = DiskFull(tmp_path / "best.pt", errno.EDQUOT)
    assert describe_error(exc, other_hint="a bug") == str(exc)
    assert "the disk quota is exceeded" in str(exc)
