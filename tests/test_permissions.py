"""Files and folders this user may not read: the message says "no permission to read X" (never
"corrupt or truncated?"), what a command does not need is skipped, and the napari reader raises no
traceback of the file system's (issue 16, item 6).

Every case runs twice: with the refusal real (``chmod 000``; skipped where permissions are not
enforced, as for root) and simulated at the lowest calls that meet it (``os.stat``, ``os.listdir``,
``os.scandir`` and ``open``), so that it is tested everywhere.
"""

from __future__ import annotations

import builtins
import errno
import io
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_temdeblur._reader import get_reader, read_folder
from napari_temdeblur.core import DataError
from napari_temdeblur.core.io import open_session, read_dataset, read_image, read_inputs, write_session
from napari_temdeblur.core.models import load_checkpoint
from napari_temdeblur.core.train import TrainingData


def _permissions_enforced(tmp_path: Path) -> bool:
    probe = tmp_path / "probe"
    probe.write_bytes(b"x")
    probe.chmod(0)
    try:
        probe.read_bytes()
    except PermissionError:
        return True
    finally:
        probe.chmod(0o644)
    return False


class Locks:
    """Takes away the permission to read files and folders."""

    def __init__(self, real: bool, monkeypatch):
        self.real, self.locked = real, []
        if not real:
            self._simulate(monkeypatch)

    def lock(self, path: Path) -> Path:
        self.locked.append(path.absolute())
        if self.real:
            path.chmod(0)
        return path

    def unlock_all(self) -> None:
        if self.real:
            for path in reversed(self.locked):  # a folder is opened before what it holds
                path.chmod(0o755 if path.is_dir() else 0o644)

    def _refused(self, path, *, inside_only: bool) -> bool:
        if isinstance(path, int):
            return False
        path = Path(os.fsdecode(path)).absolute()
        for locked in self.locked:
            if path != locked and path.is_relative_to(locked):
                return True
            if path == locked and not inside_only:
                return True
        return False

    def _simulate(self, monkeypatch) -> None:
        def refuse(path):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fsdecode(path))

        stat, listdir, scandir, open_ = os.stat, os.listdir, os.scandir, builtins.open

        def guarded_stat(path, *args, **kwargs):  # a locked folder's entries cannot be looked at
            if self._refused(path, inside_only=True):
                refuse(path)
            return stat(path, *args, **kwargs)

        def guarded_list(original):
            def listing(path=".", *args, **kwargs):
                if self._refused(path, inside_only=False):
                    refuse(path)
                return original(path, *args, **kwargs)

            return listing

        def guarded_open(path, *args, **kwargs):
            if self._refused(path, inside_only=False):
                refuse(path)
            return open_(path, *args, **kwargs)

        monkeypatch.setattr(os, "stat", guarded_stat)
        monkeypatch.setattr(os, "listdir", guarded_list(listdir))
        monkeypatch.setattr(os, "scandir", guarded_list(scandir))
        monkeypatch.setattr(builtins, "open", guarded_open)
        monkeypatch.setattr(io, "open", guarded_open)


@pytest.fixture(params=["chmod", "simulated"])
def locks(request, tmp_path, monkeypatch):
    if request.param == "chmod" and not _permissions_enforced(tmp_path):
        pytest.skip("permissions are not enforced for this user (root reads everything)")
    locks = Locks(request.param == "chmod", monkeypatch)
    yield locks
    locks.unlock_all()


@pytest.fixture
def kidney(simulated_dataset, tmp_path):
    return shutil.copytree(simulated_dataset.out / "Kidney", tmp_path / "Kidney")


def _no_permission(message: str, path: Path) -> None:
    assert f"no permission to read {path}" in message, message
    assert "corrupt" not in message and "truncated" not in message and "Errno" not in message


def test_an_unreadable_image_is_named_as_such(kidney, locks):
    gt = locks.lock(sorted((kidney / "Train" / "GT").iterdir())[0])
    with pytest.raises(DataError) as info:
        read_image(gt)
    assert str(info.value) == f"no permission to read {gt}" and info.value.path == gt
    (split,) = read_dataset(kidney / "Train")
    (message,) = split.skipped
    _no_permission(message, gt)
    assert len(split.pairs) == len(list((kidney / "Train" / "GT").iterdir())) - 1


def test_an_unreadable_burst_folder_skips_that_pair_only(kidney, locks):
    name = sorted((kidney / "Train" / "GT").iterdir())[0].stem
    burst = locks.lock(kidney / "Train" / "Low" / name)
    (split,) = read_dataset(kidney / "Train")
    (message,) = split.skipped
    _no_permission(message, burst)
    assert name not in [p.name for p in split.pairs] and split.pairs


def test_an_unreadable_split_that_is_not_used_does_not_stop_training(kidney, locks):
    test = locks.lock(kidney / "Test")
    data = TrainingData.from_folders(kidney)
    assert data.train and data.val and not data.skipped
    splits = read_dataset(kidney)  # everything asked for: the Test split is named, the others open
    assert [s.split for s in splits if s.pairs] == ["Train", "Val"]
    (message,) = [m for s in splits for m in s.skipped]
    _no_permission(message, test)


def test_an_unreadable_train_split_is_named_when_training(kidney, locks):
    gt = locks.lock(kidney / "Train" / "GT")
    with pytest.raises(DataError, match="no readable Train pairs") as info:
        TrainingData.from_folders(kidney)
    _no_permission(str(info.value), gt)


def test_an_unreadable_dataset_or_sample_folder_is_named(simulated_dataset, tmp_path, locks):
    root = tmp_path / "data"
    for sample in ("Kidney", "CalibrationGrid"):
        shutil.copytree(simulated_dataset.out / sample, root / sample)
    kidney = locks.lock(root / "Kidney")
    data = TrainingData.from_folders(root)  # trains on what it can read, and says what it could not
    assert data.train and data.skipped == [f"no permission to read {kidney}"]
    splits = read_dataset(root)
    assert [m for s in splits for m in s.skipped] == [f"no permission to read {kidney}"]
    assert {s.sample for s in splits if s.pairs} == {"CalibrationGrid"}
    with pytest.raises(DataError) as info:
        read_dataset(kidney)
    assert str(info.value) == f"no permission to read {kidney}"


def test_restoring_a_dataset_with_an_unreadable_split_names_it(kidney, locks):
    gt = locks.lock(kidney / "Test" / "GT")
    with pytest.raises(DataError) as info:
        read_inputs(kidney)
    _no_permission(str(info.value), gt)


def _session(path: Path) -> Path:
    rng = np.random.default_rng(0)
    hq = [rng.integers(0, 20000, (32, 32), dtype=np.uint16) for _ in range(2)]
    stream = rng.integers(0, 5000, (4, 16, 16), dtype=np.uint16)
    meta = {"hq_pixel_size_nm": 15.625, "stream_pixel_size_nm": 31.25}
    write_session(path, meta, ["im1", "im2"], hq, stream)
    return path


@pytest.mark.parametrize("part", ["session.json", "hq", "stream.tif", "hq/im1.tif"])
def test_an_unreadable_part_of_a_session_is_named(tmp_path, locks, part):
    session = _session(tmp_path / "sess1")
    locked = locks.lock(session / part)
    with pytest.raises(DataError) as info:
        open_session(session)
    _no_permission(str(info.value), locked)


def test_the_reader_never_raises_a_file_system_error(kidney, tmp_path, locks):
    session = _session(tmp_path / "sess1")
    locks.lock(session / "hq")
    assert get_reader(str(session)) is read_folder
    with pytest.raises(DataError, match="nothing could be opened") as info:
        read_folder(str(session))
    _no_permission(str(info.value), session / "hq")
    test = locks.lock(kidney / "Test")
    with pytest.warns(UserWarning, match=f"no permission to read {test}"):
        layers = read_folder(str(kidney))
    assert [kwargs["name"] for _, kwargs, _ in layers][:2] == ["Kidney Train GT", "Kidney Train Low"]
    locks.lock(kidney)
    assert get_reader(str(kidney)) is None


def test_an_unreadable_checkpoint_is_named_as_such(tmp_path, locks):
    path = tmp_path / "best.pt"
    torch.save({"format": "temdeblur-checkpoint/1"}, path)
    locks.lock(path)
    with pytest.raises(DataError) as info:
        load_checkpoint(path)
    _no_permission(str(info.value), path)


def test_an_unreadable_session_folder_is_named(tmp_path, locks, capsys):
    from napari_temdeblur import cli

    _session(tmp_path / "all" / "sess1")
    locked = locks.lock(_session(tmp_path / "all" / "sess2"))
    with pytest.warns(UserWarning, match=f"no permission to read {locked}"):
        layers = read_folder(str(tmp_path / "all"))
    assert [kwargs["name"] for _, kwargs, _ in layers] == ["sess1 HQ", "sess1 stream"]
    alone = locks.lock(_session(tmp_path / "alone" / "sess3"))
    assert cli.main(["register", str(tmp_path / "alone")]) == 2
    assert capsys.readouterr().err.strip() == f"temdeblur: error: no permission to read {alone}"
