"""The network architectures; :mod:`napari_temdeblur.core.models` builds them by name.

Kept free of imports so that listing the core's modules (``pkgutil.walk_packages`` imports each
package) does not pull in torch.
"""
