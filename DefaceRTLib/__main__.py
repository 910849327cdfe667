"""``python -m DefaceRTLib`` is the ``defacert`` command line."""

import sys

from .cli import main

sys.exit(main())
