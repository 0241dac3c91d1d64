"""Out-of-memory and GPU runtime errors: one test shared by the command line, the training loop and the docks."""

from __future__ import annotations

import pytest
import torch

from napari_temdeblur.cli._output import torch_failure
from napari_temdeblur.core import device_failure, out_of_memory
from napari_temdeblur.widgets._dock import describe_error
from napari_temdeblur.widgets.restore import RestoreWidget
from napari_temdeblur.widgets.train import TrainingWidget

#: Allocation failures as torch raises them on CUDA, MPS and the CPU allocator.
OUT_OF_MEMORY = [
    torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    RuntimeError("MPS backend out of memory (MPS allocated: 8.00 GB)"),
    RuntimeError(
        "[enforce fail at alloc_cpu.cpp:114] data. DefaultCPUAllocator: can't allocate memory: you tried "
        "to allocate 1152921504606846976 bytes.\nError code 12 (Cannot allocate memory)"
    ),
    MemoryError(),
]


@pytest.mark.parametrize("exc", OUT_OF_MEMORY, ids=["cuda", "mps", "cpu", "python"])
def test_every_front_end_recognises_the_same_out_of_memory_errors(exc):
    assert out_of_memory(exc)
    for dock in (TrainingWidget, RestoreWidget):  # one describer, each dock's own hint
        described = describe_error(exc, memory_hint=dock.memory_hint)
        assert described.startswith("out of memory (") and described.endswith(dock.memory_hint)
    if isinstance(exc, RuntimeError):
        assert torch_failure(exc, ("--inference-tile", "--batch")).startswith("the device ran out of memory")


def test_device_errors_are_recognised_and_bugs_are_not():
    args = ("--inference-tile", "--batch")
    cuda = RuntimeError("CUDA error: device-side assert triggered\nCUDA kernel errors might be asynchronously reported")
    assert device_failure(cuda) and not out_of_memory(cuda)
    assert torch_failure(cuda, args) == "the device failed (CUDA error: device-side assert triggered): try --device cpu"
    # a bug in our code that merely mentions a device, or raised inside torch (a shape mismatch): traceback kept
    for bug in (
        RuntimeError("Expected all tensors to be on the same device, but found cuda:0 and cpu!"),
        RuntimeError("mat1 and mat2 shapes cannot be multiplied (2x3 and 4x5)"),
        RuntimeError(),
    ):
        assert not device_failure(bug) and not out_of_memory(bug)
        assert torch_failure(bug, args) is None
