"""Sharing trained networks with other tools: ONNX export and bioimage.io model packages (the optional ``export`` extra:
``pip install "napari-temdeblur[export]"``; docs/sharing.md)."""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submod_attrs={"_bioimageio": ["BioimageioExport", "export_bioimageio"], "_onnx": ["OnnxExport", "export_onnx"]},
)
