"""``python -m ctflow.cli``."""

import sys

from . import main

sys.exit(main())
