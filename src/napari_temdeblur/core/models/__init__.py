"""The networks: one registry entry (ModelSpec) per model name, the architectures, and checkpoints
(docs/models.md)."""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submod_attrs={
        "_checkpoint": ["BEST", "Checkpoint", "LAST", "load_checkpoint", "load_model", "save_checkpoint", "versions"],
        "_mobilenet": ["MobileNetV2Features"],
        "_registry": [
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
