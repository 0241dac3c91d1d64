"""``python -m napari_temdeblur.cli``: the ``temdeblur`` command."""

import sys

from . import main

sys.exit(main())
