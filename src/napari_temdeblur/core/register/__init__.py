"""Registration of stream frames to sharp HQ images: frame matching, ECC refinement, quality control,
the ``registration.json`` file, burst extraction and export, and on-the-fly stream bursts
(docs/registration.md)."""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submod_attrs={
        "_export": [
            "EXPORT_RECORD",
            "DatasetExport",
            "check_export",
            "export_dataset",
            "extract_burst",
            "sample_name",
        ],
        "_file": ["FrameRegistration", "PairRegistration", "load_registrations", "save_registration", "user_starts"],
        "_matching": ["burst_frames", "hq_at_stream_pixels", "image_problem", "match_frames"],
        "_positions": [
            "FramePosition",
            "POSITIONS_FILE",
            "PositionChain",
            "StreamPositions",
            "load_positions",
            "save_positions",
            "stream_positions",
        ],
        "_pairs": ["PairShift", "PreparedFrame", "match_pair", "overlap_slices", "prepare_frame"],
        "_pipeline": ["FrameDone", "PairDone", "PairFailed", "register_pair", "register_session"],
        "_quality": ["scan_order_outliers"],
        "_refine": ["refine_frame", "refinement_flag", "translation_matrix"],
        "_settings": ["InitialGuess", "MOTIONS", "RegistrationSettings", "read_init_file"],
        "_stream": ["StreamBurst", "positioned_burst", "register_stream_burst"],
    },
)
