"""One writer at a time (issue 16, item 2): folder locks between real processes, never mocks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import napari_temdeblur
from napari_temdeblur import cli
from napari_temdeblur.core import drain
from napari_temdeblur.core.io import FolderInUse, folder_lock

#: The package's source folder, for the child processes (the tests may run from a checkout).
SOURCE = str(Path(napari_temdeblur.__file__).parents[1])

HOLD = """
import sys
from napari_temdeblur.core.io import folder_lock
with folder_lock(sys.argv[1], "holding it for a test"):
    print("locked", flush=True)
    sys.stdin.readline()  # until the test says so, or kills this process
"""

TRY = """
import sys
from napari_temdeblur.core.io import FolderInUse, folder_lock
try:
    with folder_lock(sys.argv[1], "trying"):
        print("got it")
except FolderInUse as exc:
    print(exc)
"""


def _python(code: str, *args, **popen) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SOURCE, os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], env=env, text=True, **popen)


def _holder(folder) -> subprocess.Popen:
    proc = _python(HOLD, folder, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def _try(folder) -> str:
    proc = _python(TRY, folder, stdout=subprocess.PIPE)
    out, _ = proc.communicate(timeout=120)
    return out.strip()


def test_a_second_process_is_told_who_holds_the_folder(tmp_path):
    proc = _holder(tmp_path / "run")
    try:
        with pytest.raises(FolderInUse) as refused, folder_lock(tmp_path / "run", "training"):
            pass
        message = str(refused.value)
        assert f"in use by process {proc.pid} on {socket.gethostname()} since " in message
        assert "holding it for a test" in message and str(tmp_path / "run") in message
    finally:
        proc.communicate("\n", timeout=60)
    with folder_lock(tmp_path / "run", "training"):  # released when the holder ends
        assert "in use by process" in _try(tmp_path / "run")
    assert _try(tmp_path / "run") == "got it"
    assert list((tmp_path / "run").iterdir()) == []  # the lock file goes with the lock


def test_a_lock_left_by_a_killed_process_is_taken_over(tmp_path):
    proc = _holder(tmp_path / "run")
    proc.kill()  # SIGKILL: no clean-up runs in the holder
    proc.wait(timeout=60)
    with folder_lock(tmp_path / "run", "training"):
        assert f"process {os.getpid()}" in _try(tmp_path / "run")


def test_a_training_run_holds_its_folder_from_start_to_end(simulated_dataset, tmp_path, capsys):
    from napari_temdeblur.core.train import TrainingData, train
    from test_train import config

    data = TrainingData.from_folders(simulated_dataset.out / "Kidney")
    out = tmp_path / "run"
    work = train(config("bu", epochs=2), data, out)
    next(work)  # TrainStarted
    assert f"in use by process {os.getpid()}" in _try(out)
    drain(work)
    assert _try(out) == "got it"
    # and a second `temdeblur train` into a folder another process trains in is refused, its files untouched
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    proc = _holder(out)
    try:
        args = ["train", str(simulated_dataset.out / "Kidney"), "--model", "bu", "--width", "tiny", "--out", str(out)]
        assert cli.main([*args, "--resume", "--epochs", "3", "--device", "cpu"]) == 2
        assert f"in use by process {proc.pid}" in capsys.readouterr().err
    finally:
        proc.communicate("\n", timeout=60)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


SAVE = """
import sys, time
from pathlib import Path
from napari_temdeblur.core.register import FrameRegistration, PairRegistration, save_registration, translation_matrix
folder, worker = Path(sys.argv[1]), int(sys.argv[2])
print("ready", flush=True)
while not (folder / "go").exists():  # every worker starts at once: the saves overlap
    time.sleep(0.005)
for k in range(int(sys.argv[3])):
    frame = FrameRegistration(0, translation_matrix((worker, k)), 0.9)
    save_registration(folder, [PairRegistration(f"w{worker}_im{k}", (worker, k), (frame,))])
"""


def test_registrations_saved_by_processes_at_once_are_all_kept(tmp_path):
    """Without a lock around the read-merge-write, such a race kept 36 of these 120 pairs."""
    from napari_temdeblur.core.register import load_registrations

    workers, pairs = 4, 30
    procs = [_python(SAVE, tmp_path, w, pairs, stdout=subprocess.PIPE) for w in range(workers)]
    assert [p.stdout.readline().strip() for p in procs] == ["ready"] * workers
    (tmp_path / "go").touch()
    assert [p.wait(timeout=300) for p in procs] == [0] * workers
    saved = load_registrations(tmp_path)
    assert sorted(saved) == sorted(f"w{w}_im{k}" for w in range(workers) for k in range(pairs))


def test_a_matcher_start_never_replaces_a_hand_alignment_saved_meanwhile(tmp_path):
    from napari_temdeblur.core.register import (
        FrameRegistration,
        PairDone,
        PairFailed,
        PairRegistration,
        RegistrationSettings,
        load_registrations,
        register_session,
        save_registration,
        translation_matrix,
    )
    from test_register import write_shifted_session

    session = write_shifted_session(tmp_path / "s")
    hand = PairRegistration(
        "s1_im1", (1.0, 2.0), (FrameRegistration(2, translation_matrix((1, 2)), 0.9),), init_frame=2, init_source="user"
    )
    events, saved_hand = [], False
    work = register_session(session, RegistrationSettings(streak=False))  # from the frame matcher
    for event in work:
        events.append(event)
        if not saved_hand and event.stage.endswith("s1_im1"):
            # another process (the dock) saves a hand alignment of the image while this run registers it
            save_registration(session.path, [hand])
            saved_hand = True
    kept = load_registrations(session)["s1_im1"]
    assert kept.init_source == "user" and kept.init_translation_yx == (1.0, 2.0)
    assert not any(isinstance(e, PairDone) for e in events)
    (failed,) = [e for e in events if isinstance(e, PairFailed)]
    assert "hand alignment" in failed.message and "kept" in failed.message
