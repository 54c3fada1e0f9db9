"""``python -m bigeval.cli``: the ``bigeval`` command."""

import sys

from bigeval.cli import main

sys.exit(main())
