"""napari dock widgets: thin front ends over the core generators."""
