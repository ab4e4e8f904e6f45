"""``python -m ocean_trio`` is the ``ocean-trio`` command."""

import sys

from ._cli import main

sys.exit(main())
