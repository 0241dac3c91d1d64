"""Compute devices: which this machine has, choosing one by name, and telling its failures from bugs.

Torch raises out-of-memory and CUDA / MPS errors as plain ``RuntimeError`` (or subclasses such as
``torch.OutOfMemoryError`` and ``torch.AcceleratorError``) with long multi-line messages. The command
line, the training loop and the docks all ask these questions, so they are answered once here. Torch is
imported inside the functions that need it, so the command line can classify a failure (recognised by
the exception type's name) without loading torch.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

#: Help for every ``device`` option (training, restoration, evaluation).
DEVICE_HELP = "auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps"

#: Phrases of torch's allocation failures on CPU, CUDA and MPS.
_OUT_OF_MEMORY = ("out of memory", "can't allocate memory", "cannot allocate memory", "failed to allocate")
#: Torch's exception types for the two kinds of failure (by name: this module does not import torch).
_OUT_OF_MEMORY_TYPES = {"OutOfMemoryError"}
_DEVICE_TYPES = {"AcceleratorError", "CudaError"}
#: Device runtimes named in their errors ("CUDA error: ...", "cuDNN error", "MPS backend ...").
#: Case-sensitive, so that a bug's "tensors on cuda:0 and cpu" message does not count.
_DEVICE_WORDS = re.compile(r"\b(CUDA|cuDNN|CUDNN|cuBLAS|CUBLAS|cuFFT|CUFFT|NCCL|MPS|HIP|XPU)\b|device-side assert")


def first_line(exc: BaseException) -> str:
    """The first non-blank line of the exception's message (at most 300 characters), or its type's name."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:300]


def _type_names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


def out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an allocation failure: ``MemoryError``, ``torch.OutOfMemoryError``, or a
    RuntimeError whose first line says so (torch's C++ allocators on CPU and MPS)."""
    if isinstance(exc, MemoryError) or _type_names(exc) & _OUT_OF_MEMORY_TYPES:
        return True
    return isinstance(exc, RuntimeError) and any(phrase in first_line(exc).lower() for phrase in _OUT_OF_MEMORY)


def device_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is an error of the GPU runtime (CUDA, cuDNN, MPS, ...) rather than of our code:
    ``torch.AcceleratorError`` or a RuntimeError whose first line names the runtime."""
    if _type_names(exc) & _DEVICE_TYPES:
        return True
    return isinstance(exc, RuntimeError) and _DEVICE_WORDS.search(first_line(exc)) is not None


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def available_devices() -> list[str]:
    """Device names usable here, for a dropdown or ``--device``.

    Returns
    -------
    list of str
        ``"auto"`` first, then ``"cpu"``, then ``"cuda"`` and ``"cuda:<i>"`` per GPU when CUDA works,
        then ``"mps"`` on Apple silicon.
    """
    import torch

    names = ["auto", "cpu"]
    if torch.cuda.is_available():
        names += ["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if _mps_available():
        names.append("mps")
    return names


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """The ``torch.device`` for a name from :func:`available_devices`.

    ``"auto"`` picks CUDA, then Apple MPS, then the CPU.

    Raises
    ------
    ValueError
        When the device does not exist on this machine (the message lists those that do).
    """
    import torch

    name = str(name).strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    if name not in available_devices():
        raise ValueError(f"device {name!r} is not available here; choose one of {', '.join(available_devices())}")
    return torch.device(name)


def describe_device(device: torch.device) -> str:
    """Human-readable device, e.g. ``"cuda:0 (NVIDIA H100 80GB HBM3)"`` or ``"cpu (2 threads)"``."""
    import torch

    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return str(device)
