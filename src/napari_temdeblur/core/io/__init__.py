"""Disk I/O of the plugin's data: TIFF images and stacks, the published registered-dataset layout and
acquisition sessions (docs/data_formats.md), and the rules of writing (docs/safety.md): which files a
command may replace, which names may become paths, one writer per folder. Bad files raise DataError
naming the file."""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submod_attrs={
        "_dataset": [
            "BurstPair",
            "DatasetSplit",
            "SPLITS",
            "find_splits",
            "frame_files",
            "read_dataset",
            "read_pair",
            "read_pixel_size",
            "session_of",
            "write_pair",
            "write_pixel_size",
        ],
        "_inputs": ["BurstInputs", "read_inputs"],
        "_pyramid": [
            "MOSAIC_IMAGE",
            "MOSAIC_RECORD",
            "RAW_IMAGE",
            "Pyramid",
            "mosaic_folder",
            "pyramid_factors",
            "read_pyramid",
            "write_pyramid",
        ],
        "_restored": [
            "RESTORE_FORMAT",
            "RESTORE_RECORD",
            "RestoredFolder",
            "is_restored_folder",
            "read_restored_folder",
        ],
        "_files": ["read_json", "tiff_files"],
        "_lock": ["FolderInUse", "folder_lock"],
        "_outputs": ["OverwriteRefused", "check_overwrite", "path_component"],
        "_session": [
            "Session",
            "find_sessions",
            "is_session_folder",
            "open_session",
            "read_session_meta",
            "stream_frame_files",
            "write_session",
        ],
        "_replay": ["replay_session"],
        "_watch": ["ArrivedFrame", "FrameFolder", "StreamView"],
        "_tiff": ["TruncatedStack", "read_image", "tiff_info", "write_image"],
    },
)
