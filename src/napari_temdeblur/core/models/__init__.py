"""The networks: one registry entry (ModelSpec) per model name, the architectures, and checkpoints
(docs/models.md)."""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submod_attrs={
        "_bioimageio_network": [
            "BIOIMAGEIO_FORMAT",
            "load_bioimageio",
            "read_bioimageio_description",
        ],
        "_checkpoint": [
            "BEST",
            "LAST",
            "Checkpoint",
            "checkpoint_path",
            "load_checkpoint",
            "load_model",
            "load_weights",
            "save_checkpoint",
            "versions",
        ],
        "_pretrained": [
            "PRETRAINED",
            "PRETRAINED_DIR",
            "has_pretrained",
            "pretrained_checkpoint",
            "pretrained_manifest",
            "resolve_run",
        ],
        "_mobilenet": ["MobileNetV2Features"],
        "_onnx_network": [
            "ONNX_FORMAT",
            "ONNX_METADATA_KEY",
            "FixedNetwork",
            "load_onnx",
            "read_onnx_description",
        ],
        "_registry": [
            "DEFAULT_MODEL",
            "MODELS",
            "MODEL_NAMES",
            "ModelConfig",
            "ModelSpec",
            "Recipe",
            "build_discriminators",
            "build_model",
            "count_parameters",
            "frames_required",
            "model_spec",
            "recipe",
            "size_multiple",
        ],
    },
)
