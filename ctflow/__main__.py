"""``python -m ctflow …`` is the ``ctflow`` command."""

import sys

from .cli import main

sys.exit(main())
