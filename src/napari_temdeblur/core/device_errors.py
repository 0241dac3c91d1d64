"""Telling the device failures torch raises from bugs: out of memory, and CUDA / MPS errors.

Torch raises both as plain ``RuntimeError`` (or subclasses such as ``torch.OutOfMemoryError`` and
``torch.AcceleratorError``) with long multi-line messages. The command line, the training loop and
the docks all ask these questions, so they are answered once here, without importing torch (the
exception's type is recognised by name) or Qt.
"""

from __future__ import annotations

import re

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
