"""napari dock widgets: thin front ends over the core generators, one subpackage per dock on the shared
pattern of :mod:`._dock` (docs/design.md, The docks)."""
