"""Training: configuration, training data (crops, validation tiles), losses, the training loop and its
events, and the run folder (docs/training.md).

``train(cfg, data, out)`` is a generator of progress events returning a ``TrainResult``; the CLI prints
its events, the training dock runs it in a napari thread worker.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submod_attrs={
        "_config": ["SCRATCH", "TrainConfig", "default_frames", "parse_frames"],
        "_data": ["CropSampler", "TrainingData", "ValidationTiles"],
        "_events": ["BatchDone", "EpochDone", "STOP", "TrainResult", "TrainStarted"],
        "_loop": ["DeviceOutOfMemory", "train"],
        "_losses": [
            "LOSS_NAMES",
            "adversarial_discriminator_loss",
            "adversarial_generator_loss",
            "l1_gradient_loss",
            "l1_loss",
            "l1_ssim_loss",
            "make_loss",
            "ragan_ls_discriminator_loss",
            "ragan_ls_generator_loss",
            "ssim_loss",
        ],
        "_presets": ["PRESETS", "Preset", "preset_for_device"],
        "_run_folder": ["CONFIG", "HISTORY", "best_of", "read_history"],
        "_steps": ["SupervisedTrainer", "make_trainer"],
    },
)
