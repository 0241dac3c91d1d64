"""Core objects <-> napari layer data, without importing napari: what the reader, the sample data and
the docks put into layers (kinds and metadata: docs/design.md, Layer metadata) and the bursts read
back from them."""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submod_attrs={
        "_build": [
            "FLAGS_SUFFIX",
            "TRUST_SUFFIX",
            "dataset_layers",
            "flags_kwargs",
            "physical",
            "restored_layers",
            "session_layers",
            "split_layers",
            "trust_kwargs",
        ],
        "_bursts": ["BurstLayers", "find_bursts", "hold_out", "validation_for"],
        "_geometry": ["frame_index", "frame_world"],
        "_kinds": ["METADATA_KEY", "LayerKind", "kind_of", "layer_info", "tag"],
        "_mosaic": ["mosaic_layers"],
    },
)
