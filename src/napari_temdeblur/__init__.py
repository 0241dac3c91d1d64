"""napari-temdeblur: restore TEM images from fast, motion-blurred image streams."""

__version__ = "0.1.0"
